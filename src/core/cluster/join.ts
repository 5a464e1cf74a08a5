/**
 * Joining: the joiner's side. A pending node whose discovery found a cluster asks one of its
 * members (the leader when known) to add it, every joinRetryMs until it is added, then
 * starts Raft with the members the reply names; a refusal because its id is in use ends the
 * node. `cluster join --seeds` points a pending node at new seeds and waits, bounded, until
 * it is a member.
 */
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import type { ClusterJoinReply, ClusterJoinRequest, JoinReply } from '../protocol/messages.ts';
import { request } from '../rpc/request.ts';
import type { ClusterContext } from './context.ts';
import type { Discovery } from './discovery.ts';
import { fail, validAddress } from './guards.ts';
import type { ClusterState } from './init.ts';
import type { ClusterStatus } from './status.ts';

/** How long `cluster join --seeds` waits for membership when the request names no wait. */
export const JOIN_WAIT_DEFAULT_MS = 30_000;
/** The longest wait `cluster join --seeds` may ask for. */
export const JOIN_WAIT_MAX_MS = 300_000;
/** Between two looks at the state while `cluster join --seeds` waits. */
const JOIN_POLL_MS = 100;

export interface JoinHooks {
  /** The join was accepted: start Raft (the service becomes a member). */
  becomeMember(): void;
}

export class Join {
  private readonly ctx: ClusterContext;
  private readonly discovery: Discovery;
  private readonly status: ClusterStatus;
  private readonly hooks: JoinHooks;

  constructor(ctx: ClusterContext, discovery: Discovery, status: ClusterStatus, hooks: JoinHooks) {
    this.ctx = ctx;
    this.discovery = discovery;
    this.status = status;
    this.hooks = hooks;
  }

  /** The cluster being joined: only its members are asked. */
  private clusterId = '';

  /** pending → joining `clusterId`: asks to be added until it is, or the node stops. */
  start(clusterId: string): void {
    this.clusterId = clusterId;
    this.ctx.state = 'joining';
    this.joinLoop().catch((error: unknown) => {
      this.ctx.log.error('join failed', { reason: String((error as Error).message) });
    });
  }

  private async joinLoop(): Promise<void> {
    const { ctx } = this;
    let lastReason = '';
    while (ctx.state === 'joining' && !ctx.stopping) {
      const targets = ctx.peers
        .fresh()
        .filter((peer) => peer.clusterId !== '' && peer.clusterId === this.clusterId);
      // Prefer the leader when a node names it and its breaker lets requests through;
      // otherwise any member the balancer picks (it forwards to the leader).
      const leaderId = targets.find((peer) => peer.leader !== '')?.leader;
      const leader = targets.find((peer) => peer.id === leaderId);
      const pickedAddress =
        leader !== undefined && ctx.peerAvailable(leader.address)
          ? leader.address
          : ctx.pickPeer(targets.map((peer) => peer.address));
      const target = targets.find((peer) => peer.address === pickedAddress) ?? leader;
      if (target !== undefined) {
        try {
          // One attempt: this loop retries on its own schedule, and a join must not be
          // proposed twice by the guard's retries.
          const reply = await request(
            ctx.guardedPeer(target.address, 1),
            'joinRequest',
            { id: ctx.id, address: ctx.address, clusterId: '', forwarded: false },
            ctx.timeouts.forwardDeadlineMs + ctx.tunables.peerRequestTimeoutMs,
          );
          if (ctx.state !== 'joining' || ctx.stopping) return;
          this.adoptJoin(reply);
          return;
        } catch (error) {
          const reason = (error as Error).message;
          if (isRdbnetError(error, ErrorCode.MemberStateLost)) {
            // Retrying cannot help until the cluster removed this id: stop, saying why.
            ctx.log.error('cannot join: a voter of this id exists', {
              target: target.address,
              reason,
            });
            ctx.resolveFailed(
              new RdbnetError(ErrorCode.MemberStateLost, reason, {
                hint: `if this node's data is lost: stop it; once the cluster has removed ${ctx.id} (deadVoterRemoveAfterMs after gossip sees it dead), start it again with an empty --data-dir`,
              }),
            );
            return;
          }
          if (isRdbnetError(error, ErrorCode.IdInUse)) {
            // Another process is this node, as far as the cluster knows: give up and stop.
            ctx.log.error('cannot join: node id in use', {
              target: target.address,
              code: error.code,
              reason,
            });
            ctx.resolveFailed(
              new RdbnetError(ErrorCode.IdInUse, reason, {
                hint: 'each node needs its own id; a node restarted elsewhere may take its id back once its old process has been gone from gossip for idReclaimAfterMs',
              }),
            );
            return;
          }
          if (
            isRdbnetError(error, ErrorCode.JoinNotInGossip) ||
            isRdbnetError(error, ErrorCode.IdReclaimPending)
          ) {
            // Every retry: the operator must see that this node cannot become a member.
            ctx.log.warn('join refused; retrying', {
              target: target.address,
              code: error.code,
              reason,
            });
          } else if (isRdbnetError(error, ErrorCode.ClusterExists)) {
            ctx.log.error('cannot join', { target: target.address, reason });
          } else if (reason !== lastReason) {
            ctx.log.info('join attempt failed; retrying', { target: target.address, reason });
          }
          lastReason = reason;
        }
      }
      await ctx.sleep(ctx.tunables.joinRetryMs);
      this.discovery.startRound();
    }
  }

  private adoptJoin(reply: JoinReply): void {
    const { ctx } = this;
    ctx.joinedClusterId = reply.clusterId;
    ctx.addresses.preApplyMembers = new Map(
      (reply.members ?? [])
        .filter((member) => member.id !== ctx.id && validAddress(member.address))
        .map((member) => [member.id, member.address]),
    );
    this.hooks.becomeMember();
    ctx.log.info(reply.added ? 'joined the cluster as a learner' : 'rejoined the cluster', {
      cluster: reply.clusterId,
      leader: reply.leader || null,
    });
  }

  /**
   * `cluster join --seeds`: a node still waiting for a cluster looks for one through these
   * seeds as well, and the answer waits (bounded) until it is a member. A node already in a
   * cluster is refused: a node belongs to one cluster for the life of its data dir.
   */
  async onJoinThrough(request: ClusterJoinRequest): Promise<ClusterJoinReply> {
    const { ctx } = this;
    if (ctx.state === 'member') {
      fail(
        ErrorCode.ClusterExists,
        `node ${ctx.id} already belongs to cluster ${ctx.clusterId}`,
        'a node joins one cluster for the life of its data dir; start it on a fresh --data-dir with --join to move it',
      );
    }
    if (ctx.state === 'left') fail(ErrorCode.ClusterExists, `node ${ctx.id} has left its cluster`);
    const seeds = [...new Set(request.seeds)].filter((seed) => seed !== ctx.address);
    if (seeds.length === 0) fail(ErrorCode.Usage, 'no seed addresses to join through');
    this.discovery.addSeeds(seeds);
    ctx.init.onSeeds?.(seeds);
    this.discovery.repeat();
    this.discovery.tick();
    const waitMs = Math.min(request.waitMs || JOIN_WAIT_DEFAULT_MS, JOIN_WAIT_MAX_MS);
    const deadline = ctx.clock.nowMs() + waitMs;
    // Read again at every turn: discovery changes it while we wait.
    while ((ctx.state as ClusterState) !== 'member') {
      if (ctx.stopping) fail(ErrorCode.ConnectionClosed, `node ${ctx.id} is stopping`);
      if (ctx.ambiguousClusters.length > 1) {
        fail(
          ErrorCode.DiscoveryAmbiguous,
          `node ${ctx.id} found ${ctx.ambiguousClusters.length} clusters among its candidates (${ctx.ambiguousClusters.join(', ')}) and joins none`,
          'restart it with --cluster-id ID naming the one to join',
        );
      }
      if (ctx.clock.nowMs() >= deadline) {
        fail(
          ErrorCode.RequestTimeout,
          `node ${ctx.id} is not a member after ${waitMs} ms (still ${ctx.state})`,
          'check that the seeds are members of a running cluster and reachable from the node',
        );
      }
      await ctx.sleep(JOIN_POLL_MS);
    }
    // Membership is decided before the configuration that names us is applied here: wait
    // (within the same deadline) until this node's own view lists it.
    let status = await this.status.onStatus({ localOnly: true });
    while (!status.members.some((member) => member.id === ctx.id)) {
      if (ctx.clock.nowMs() >= deadline) break;
      await ctx.sleep(JOIN_POLL_MS);
      status = await this.status.onStatus({ localOnly: true });
    }
    return { clusterId: status.clusterId, leader: status.leader, members: status.members };
  }
}
