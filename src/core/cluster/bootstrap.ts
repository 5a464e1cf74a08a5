/**
 * Bootstrap: founding a cluster, once. A zero-config node founds a single-node cluster at
 * start; `cluster bootstrap --expect N` (or --bootstrap-expect N) waits until N nodes without
 * a cluster know each other and are alive in this node's gossip, makes the founding
 * configuration with them as voters, persists it here (index 1, term 1), hands it to the
 * others (BootstrapCommitRequest, retried in the background for a voter still starting),
 * and starts the first election. Refused wherever a cluster already exists.
 */
import { ErrorCode, isRdbnetError } from '../errors.ts';
import { ClusterConfig } from '../membership/raft/cluster-config.ts';
import { bootstrapSnapshot } from '../membership/raft/storage.ts';
import type { NodeId } from '../membership/raft/types.ts';
import { NONE } from '../membership/raft/types.ts';
import type {
  BootstrapCommitRequest,
  ClusterBootstrapReply,
  ClusterBootstrapRequest,
  PeerAddress,
} from '../protocol/messages.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import { request as ask } from '../rpc/request.ts';
import type { KnownPeer } from './address-book.ts';
import type { ClusterContext } from './context.ts';
import type { Discovery } from './discovery.ts';
import { fail, nodePeer } from './guards.ts';
import { BOOTSTRAP_WAIT_MAX_MS } from './init.ts';
import type { ClusterStatus } from './status.ts';

/** After bootstrap, how long to wait for the first leader before answering without one. */
export const BOOTSTRAP_LEADER_WAIT_MS = 5000;
/** Largest `--expect`: founding voters. */
export const BOOTSTRAP_VOTERS_MAX = 64;
/** How long the founder keeps offering the founding configuration to an unreachable voter. */
export const FOUNDING_RETRY_DEADLINE_MS = 60_000;
/** The founder's first offers to each voter last this many join retries before the answer. */
const FOUNDING_FIRST_OFFER_RETRIES = 10;

/**
 * An automatic bootstrap (--bootstrap-expect) found a node without a cluster whose id is lower
 * than this node's: that node founds the cluster, this one joins it. Not a failure.
 */
export class BootstrapDeferred extends Error {
  readonly lowerId: string;
  constructor(lowerId: string) {
    super(`${lowerId} has a lower id and founds the cluster`);
    this.lowerId = lowerId;
  }
}

export interface BootstrapHooks {
  /** The founding configuration is persisted: start Raft (the service becomes a member). */
  becomeMember(): void;
}

export class Bootstrap {
  private bootstrapping = false;
  private adopting = false;

  private readonly ctx: ClusterContext;
  private readonly discovery: Discovery;
  private readonly status: ClusterStatus;
  private readonly hooks: BootstrapHooks;

  constructor(
    ctx: ClusterContext,
    discovery: Discovery,
    status: ClusterStatus,
    hooks: BootstrapHooks,
  ) {
    this.ctx = ctx;
    this.discovery = discovery;
    this.status = status;
    this.hooks = hooks;
  }

  /** A bootstrap of this node's, or its adoption of a founding configuration, is under way. */
  get busy(): boolean {
    return this.bootstrapping || this.adopting;
  }

  /** A node started without seeds (or with --bootstrap-expect 1) founds a cluster alone. */
  async foundAlone(): Promise<void> {
    const { ctx } = this;
    if (ctx.storage.hardStateNow().term !== 0) {
      fail(
        ErrorCode.ConfigInvalid,
        `data dir ${ctx.init.dataDir} holds Raft state of a cluster this node was joining`,
        'start it with --join <member address> to finish joining, or use a fresh --data-dir',
      );
    }
    const clusterId = ctx.newClusterId();
    const founding = ClusterConfig.founding(clusterId, [{ id: ctx.id, address: ctx.address }]);
    await this.adoptFounding([ctx.id], founding.encode());
    ctx.log.info('bootstrapped a single-node cluster', { cluster: clusterId });
    ctx.driver!.campaign();
  }

  async onBootstrap(request: ClusterBootstrapRequest): Promise<ClusterBootstrapReply> {
    const expect = request.expect;
    if (!Number.isInteger(expect) || expect < 1 || expect > BOOTSTRAP_VOTERS_MAX) {
      fail(ErrorCode.Usage, `--expect must be 1..${BOOTSTRAP_VOTERS_MAX}, got ${expect}`);
    }
    this.refuseIfInCluster();
    const waitMs =
      request.waitMs > 0
        ? Math.min(request.waitMs, BOOTSTRAP_WAIT_MAX_MS)
        : this.ctx.tunables.bootstrapWaitMs;
    return this.bootstrap(expect, waitMs, () => true);
  }

  private refuseIfInCluster(): void {
    const { ctx } = this;
    const { id } = ctx;
    switch (ctx.state) {
      case 'member':
        fail(
          ErrorCode.ClusterExists,
          `node ${id} already belongs to cluster ${ctx.clusterId}: a cluster is bootstrapped once`,
          'add nodes with `rdbnet node start --join <member address>`',
        );
        break;
      case 'joining':
        fail(ErrorCode.ClusterExists, `node ${id} found an existing cluster and is joining it`);
        break;
      case 'left':
        fail(ErrorCode.NotMember, `node ${id} has left its cluster`);
        break;
      default:
        break;
    }
    if (this.busy) {
      fail(ErrorCode.ClusterExists, `a bootstrap is already under way on node ${id}`);
    }
    if (ctx.hasCluster() || ctx.storage.hardStateNow().term !== 0) {
      fail(
        ErrorCode.ClusterExists,
        `data dir ${ctx.init.dataDir} already holds a cluster's Raft state`,
      );
    }
  }

  /**
   * Waits until `expect` nodes without a cluster know each other (this one included), makes
   * the founding configuration with this node and the expect - 1 lowest other ids as voters,
   * persists it here, hands it to the others, and starts the first election.
   *
   * `deferToLowerId` (automatic bootstraps): every node that reaches --bootstrap-expect runs
   * this, each with its own partial view, and only the lowest id may found. Peers learnt while
   * waiting can be lower than this node; founding then would take them as voters of a second
   * cluster while they found their own. So each look, any eligible node without a cluster with
   * a lower id ends this bootstrap with BootstrapDeferred.
   */
  async bootstrap(
    expect: number,
    waitMs: number,
    eligible: (peer: KnownPeer) => boolean,
    deferToLowerId = false,
  ): Promise<ClusterBootstrapReply> {
    const { ctx } = this;
    this.bootstrapping = true;
    let voters: PeerAddress[];
    let clusterId: string;
    let data: Uint8Array;
    try {
      const deadline = ctx.clock.nowMs() + waitMs;
      let candidates: KnownPeer[];
      for (;;) {
        if (expect > 1) await this.discovery.round();
        const existing = ctx.peers.fresh().find((peer) => peer.clusterId !== '');
        if (existing !== undefined) {
          fail(
            ErrorCode.ClusterExists,
            `node ${existing.id} at ${existing.address} already belongs to cluster ${existing.clusterId}`,
            'that cluster is bootstrapped already: start new nodes with --join pointing at one of its members',
          );
        }
        const found = ctx.peers
          .fresh()
          .filter((peer) => peer.clusterId === '' && eligible(peer))
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        const lower = found[0];
        if (deferToLowerId && lower !== undefined && lower.id < ctx.id) {
          throw new BootstrapDeferred(lower.id);
        }
        // Founding voters are gossip members too, like every node that joins later: one this
        // node's gossip does not have alive (another gossip key, UDP blocked) is left out.
        const view = ctx.gossipView();
        candidates = found.filter(
          (peer) =>
            view?.some(
              (member) =>
                member.id === peer.id &&
                member.state === 'alive' &&
                member.address === peer.address,
            ) === true,
        );
        if (candidates.length + 1 >= expect) break;
        if (ctx.clock.nowMs() >= deadline) {
          const known = [ctx.id, ...candidates.map((peer) => peer.id)].join(', ');
          const outside = found.filter((peer) => !candidates.includes(peer)).map((p) => p.id);
          fail(
            ErrorCode.RequestTimeout,
            `only ${candidates.length + 1} of ${expect} nodes found within ${waitMs} ms (${known})` +
              (outside.length > 0
                ? `; not alive in gossip here: ${outside.join(', ')} (check their gossip key)`
                : ''),
            'start the missing nodes with --join pointing at this one, or check their seeds',
          );
        }
        await ctx.sleep(ctx.tunables.discoveryIntervalMs);
        if (ctx.stopping) fail(ErrorCode.ConnectionClosed, 'node is stopping');
      }
      if (ctx.state !== 'pending') this.refuseIfInCluster();
      voters = [
        { id: ctx.id, address: ctx.address },
        ...candidates.slice(0, expect - 1).map((peer) => ({ id: peer.id, address: peer.address })),
      ];
      clusterId = ctx.newClusterId();
      data = ClusterConfig.founding(clusterId, voters).encode();
      await this.adoptFounding(
        voters.map((voter) => voter.id),
        data,
      );
    } finally {
      this.bootstrapping = false;
    }
    ctx.log.info('bootstrapped the cluster', {
      cluster: clusterId,
      voters: voters.map((voter) => voter.id),
    });
    const others = voters.filter((voter) => voter.id !== ctx.id);
    const request: BootstrapCommitRequest = { clusterId, voters, config: data };
    const firstOfferMs = ctx.tunables.joinRetryMs * FOUNDING_FIRST_OFFER_RETRIES;
    const sent = await Promise.all(
      others.map((voter) =>
        this.sendFounding(voter, request, ctx.clock.nowMs() + firstOfferMs).then(
          () => undefined,
          (error: unknown) => ({ voter, error: error as Error }),
        ),
      ),
    );
    for (const failure of sent) {
      if (failure === undefined) continue;
      ctx.log.warn('founding configuration not delivered yet', {
        node: failure.voter.id,
        reason: failure.error.message,
      });
      if (!isRdbnetError(failure.error, ErrorCode.ClusterExists)) {
        // Keep offering it in the background; the voter may still be starting.
        this.sendFounding(
          failure.voter,
          request,
          ctx.clock.nowMs() + FOUNDING_RETRY_DEADLINE_MS,
        ).catch(() => {});
      }
    }
    const driver = ctx.requireMember();
    driver.campaign();
    await ctx.waitFor(() => ctx.driver?.leader !== NONE, BOOTSTRAP_LEADER_WAIT_MS);
    return {
      clusterId,
      leader: ctx.driver?.leader ?? '',
      members: this.status.memberList(ctx.requireMember()),
    };
  }

  private async sendFounding(
    voter: PeerAddress,
    request: BootstrapCommitRequest,
    deadlineMs: number,
  ): Promise<void> {
    const { ctx } = this;
    for (;;) {
      try {
        // Its own retry loop waits for a voter that is not up yet: measured, never refused.
        await ask(
          ctx.observedPeer(voter.address),
          'bootstrapCommitRequest',
          request,
          ctx.tunables.peerRequestTimeoutMs * 2,
        );
        return;
      } catch (error) {
        if (isRdbnetError(error, ErrorCode.ClusterExists) || ctx.clock.nowMs() >= deadlineMs) {
          throw error;
        }
        if (ctx.stopping) return;
        await ctx.sleep(ctx.tunables.joinRetryMs);
      }
    }
  }

  /** Persists the bootstrap snapshot (index 1, term 1) and starts Raft on it. */
  private async adoptFounding(voters: NodeId[], data: Uint8Array): Promise<void> {
    const { ctx } = this;
    if (ctx.hasCluster() || ctx.storage.lastIndex() > 0) {
      fail(ErrorCode.ClusterExists, `node ${ctx.id} already holds a cluster's Raft state`);
    }
    this.adopting = true;
    try {
      ctx.storage.applySnapshot(bootstrapSnapshot(voters, [], data));
      ctx.storage.setHardState({ term: 1, vote: NONE, commit: 1 });
      await ctx.storage.sync();
      this.hooks.becomeMember();
    } finally {
      this.adopting = false;
    }
  }

  /** A founding voter receives the founder's configuration (a retry of one it has is fine). */
  async onBootstrapCommit(request: BootstrapCommitRequest, from: PeerIdentity): Promise<void> {
    const { ctx } = this;
    const peer = nodePeer(from);
    const self = ctx.id;
    if (ctx.state === 'member' && ctx.clusterId === request.clusterId) return; // a retry
    if (ctx.state !== 'pending') {
      fail(
        ErrorCode.ClusterExists,
        ctx.state === 'member'
          ? `node ${self} already belongs to cluster ${ctx.clusterId}`
          : `node ${self} is ${ctx.state === 'joining' ? 'joining an existing cluster' : 'not available'}`,
      );
    }
    if (this.busy) {
      fail(ErrorCode.ClusterExists, `node ${self} is bootstrapping a cluster itself`);
    }
    if (ctx.storage.hardStateNow().term !== 0) {
      fail(ErrorCode.ClusterExists, `node ${self} holds Raft state of another cluster`);
    }
    const voters = (request.voters ?? []).map((voter) => voter.id);
    if (!voters.includes(self) || !voters.includes(peer.id)) {
      fail(ErrorCode.Usage, `founding configuration from ${peer.id} does not list both of us`);
    }
    const config = ClusterConfig.fromSnapshot({
      metadata: { index: 1, term: 1, confState: { voters, learners: [] } },
      data: request.config,
    });
    if (config.clusterId !== request.clusterId) {
      fail(ErrorCode.MessageMalformed, 'founding configuration names another cluster id');
    }
    await this.adoptFounding(voters, request.config);
    ctx.log.info('adopted the founding configuration', {
      cluster: request.clusterId,
      founder: peer.id,
      voters,
    });
  }
}
