/**
 * Admission: the leader's side of a join (JoinRequest, from the joiner or forwarded by a
 * member). Raft membership follows gossip membership: a node id another live process holds
 * is refused (RDB_ID_IN_USE), and a new node is added as a learner only once this leader's
 * gossip has it alive at the address it joins with (RDB_JOIN_NOT_IN_GOSSIP after
 * joinGossipWaitMs). A member already in the configuration just has its address recorded.
 */
import { ErrorCode } from '../errors.ts';
import type { NodeId } from '../membership/raft/types.ts';
import type { JoinReply, JoinRequest } from '../protocol/messages.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import { request as ask } from '../rpc/request.ts';
import { validateName } from '../security/identity.ts';
import type { ClusterContext } from './context.ts';
import type { Forwarding } from './forwarding.ts';
import { fail, nodePeer, seconds, validAddress } from './guards.ts';
import type { IdClaims } from './id-claims.ts';
import type { ClusterStatus } from './status.ts';

/** Between two looks at gossip while a join waits for the joiner to be alive there. */
const JOIN_GOSSIP_POLL_MS = 50;
/** Joins waiting for gossip at once on a leader; more are refused with RDB_INFLIGHT_LIMIT. */
export const JOIN_GOSSIP_WAITERS_MAX = 64;

export class Admission {
  /** Joins waiting on this leader for the joiner to appear in gossip (JOIN_GOSSIP_WAITERS_MAX). */
  private gossipWaiters = 0;

  private readonly ctx: ClusterContext;
  private readonly idClaims: IdClaims;
  private readonly forwarding: Forwarding;
  private readonly status: ClusterStatus;

  constructor(
    ctx: ClusterContext,
    idClaims: IdClaims,
    forwarding: Forwarding,
    status: ClusterStatus,
  ) {
    this.ctx = ctx;
    this.idClaims = idClaims;
    this.forwarding = forwarding;
    this.status = status;
  }

  async onJoin(request: JoinRequest, from: PeerIdentity): Promise<JoinReply> {
    const { ctx } = this;
    const peer = nodePeer(from);
    if (request.forwarded) {
      if (!ctx.isMemberPeer(peer.id)) {
        fail(ErrorCode.Forbidden, `${peer.id} is not a member and may not forward requests`);
      }
    } else if (peer.authenticated && peer.id !== request.id) {
      fail(ErrorCode.Forbidden, `node ${peer.id} may only ask to join for itself`);
    }
    validateName('node id', request.id);
    if (!validAddress(request.address)) {
      fail(ErrorCode.Usage, `join request with a bad address '${request.address}'`);
    }
    const driver = ctx.requireMember();
    const clusterId = driver.config.clusterId;
    if (request.clusterId !== '' && request.clusterId !== clusterId) {
      fail(
        ErrorCode.ClusterExists,
        `node ${request.id} belongs to cluster ${request.clusterId}, this is cluster ${clusterId}`,
        'a node belongs to one cluster: start it with a fresh --data-dir to join this one',
      );
    }
    // A joiner sends no cluster id (it has no Raft state); a member passing on another
    // member's new address sends the cluster's (forwarding.forwardAddress).
    const withoutState = request.clusterId === '';
    return this.forwarding.onLeader(
      () => this.joinAsLeader(request.id, request.address, withoutState),
      request.forwarded,
      (leader, timeoutMs) => ask(leader, 'joinRequest', { ...request, forwarded: true }, timeoutMs),
    );
  }

  /**
   * Adds `id` at `address` as a learner (or, a member already, records its address). Raft
   * membership follows gossip membership: refused while another live process holds the id
   * (RDB_ID_IN_USE), and a new node only once this leader's gossip has it alive at that
   * address (waiting up to joinGossipWaitMs, else RDB_JOIN_NOT_IN_GOSSIP).
   */
  private async joinAsLeader(
    id: NodeId,
    address: string,
    withoutState: boolean,
  ): Promise<JoinReply> {
    const { ctx } = this;
    const inUse = this.idClaims.idInUse(id, address);
    if (inUse !== null) throw inUse;
    const current = ctx.requireMember();
    const clusterId = current.config.clusterId;
    const progress = current.status().progress[id];
    const hadState = ctx.lastHeardMs.has(id) || (progress !== undefined && progress.match > 0);
    if (withoutState && current.config.voters.has(id) && hadState) {
      // A voter restarted with its data dir never asks to join (it is a member already): this
      // one has no log and no vote, yet this leader has heard from a process of this id, so it
      // once had them. Letting it vote again could elect two leaders in one term. A founding
      // voter that never got the founding configuration (it found the cluster first) was
      // never heard from: it joins and gets the snapshot.
      ctx.counters.increment('cluster.joins_refused.member_state_lost');
      fail(
        ErrorCode.MemberStateLost,
        `node ${id} is a voter of cluster ${clusterId} but asks to join with no Raft state: its data dir was lost, or another process is using its id`,
        `if ${id}'s data is lost: stop this process; once the cluster has removed ${id} (automatically, deadVoterRemoveAfterMs after gossip sees it dead), start it again with an empty --data-dir`,
      );
    }
    if (!ctx.requireMember().config.isMember(id)) await this.waitAliveInGossip(id, address);
    const deadline = ctx.clock.nowMs() + ctx.timeouts.proposalTimeoutMs;
    await this.forwarding.ensureAddress(id, address);
    let added = false;
    if (!ctx.requireMember().config.isMember(id)) {
      const result = await this.forwarding.proposeConfChange(
        { type: 'addLearner', nodeId: id },
        deadline,
      );
      ctx.recordTiming('addLearner', id, result);
      added = true;
    }
    const driver = ctx.requireMember();
    return {
      clusterId: driver.config.clusterId,
      members: this.status.memberList(driver),
      leader: driver.leader,
      added,
    };
  }

  /**
   * Waits (up to joinGossipWaitMs) until this node's gossip has `id` alive at `address`;
   * RDB_ID_IN_USE as soon as another process holds the id, RDB_JOIN_NOT_IN_GOSSIP at the
   * deadline.
   */
  private async waitAliveInGossip(id: NodeId, address: string): Promise<void> {
    const { ctx } = this;
    if (this.gossipWaiters >= JOIN_GOSSIP_WAITERS_MAX) {
      fail(
        ErrorCode.InflightLimit,
        `${JOIN_GOSSIP_WAITERS_MAX} joins are waiting for gossip on ${ctx.id} already`,
      );
    }
    this.gossipWaiters++;
    try {
      const waitMs = ctx.tunables.joinGossipWaitMs;
      const deadline = ctx.clock.nowMs() + waitMs;
      for (;;) {
        const view = ctx.gossipView();
        if (view !== null) {
          const inUse = this.idClaims.idInUse(id, address, view);
          if (inUse !== null) throw inUse;
          const entry = view.find((member) => member.id === id);
          if (entry?.state === 'alive' && entry.address === address) return;
        }
        if (ctx.clock.nowMs() >= deadline) {
          fail(
            ErrorCode.JoinNotInGossip,
            `${id} is not alive in gossip on ${ctx.id} after ${seconds(waitMs)} s: ` +
              "check that it holds the cluster's gossip key, and that UDP is open between it and the members",
          );
        }
        if (ctx.stopping) fail(ErrorCode.ConnectionClosed, `node ${ctx.id} is stopping`);
        await ctx.sleep(JOIN_GOSSIP_POLL_MS);
      }
    } finally {
      this.gossipWaiters--;
    }
  }
}
