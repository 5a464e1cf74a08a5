/**
 * Gossip rejoin: a node looking for a cluster needs its peers alive in its own gossip —
 * bootstrap takes only those as founding voters, and a leader admits a joiner only once its
 * gossip has it. Gossip's join at start gives up after its attempts (about 20 s); when no seed
 * answered by then (TLS handshakes timing out on an overloaded machine, seeds still starting),
 * gossip stays in islands of one or two nodes although the peer exchange finds everyone
 * later, and no cluster ever forms. So after each discovery round of a pending or joining
 * node, the peers it heard from directly that its gossip does not have alive are handed to
 * gossip to join (a push-pull with each): one such join at a time, at most every
 * GOSSIP_REJOIN_INTERVAL_MS, at most DISCOVERY_TARGETS_MAX addresses each.
 */
import type { ClusterContext } from './context.ts';
import { DISCOVERY_TARGETS_MAX } from './discovery.ts';

/** Shortest time between two gossip joins asked for by the cluster service. */
export const GOSSIP_REJOIN_INTERVAL_MS = 1000;

export class GossipRejoin {
  /** A join asked for here has not ended yet. */
  private joining = false;
  /** When the last one was asked for (-Infinity: never). */
  private lastJoinMs = Number.NEGATIVE_INFINITY;
  private readonly ctx: ClusterContext;

  constructor(ctx: ClusterContext) {
    this.ctx = ctx;
  }

  /** After a discovery round: asks gossip to join the fresh peers it does not have alive. */
  afterRound(): void {
    const { ctx } = this;
    const join = ctx.init.joinGossip;
    if (join === undefined || this.joining || ctx.stopping) return;
    if (ctx.state !== 'pending' && ctx.state !== 'joining') return;
    const now = ctx.clock.nowMs();
    if (now - this.lastJoinMs < GOSSIP_REJOIN_INTERVAL_MS) return;
    const view = ctx.gossipView();
    if (view === null) return; // gossip does not run yet: its own join comes first
    const alive = new Set(view.filter((member) => member.state === 'alive').map((m) => m.id));
    const missing = ctx.peers
      .fresh()
      .filter((peer) => !alive.has(peer.id))
      .map((peer) => peer.address)
      .slice(0, DISCOVERY_TARGETS_MAX);
    if (missing.length === 0) return;
    this.joining = true;
    this.lastJoinMs = now;
    // node status: how often discovery had to pull gossip together.
    ctx.init.counters.increment('cluster.gossip_rejoins');
    ctx.log.debug('gossip rejoin: peers found by discovery are not alive in gossip', {
      addresses: missing,
    });
    join(missing).finally(() => {
      this.joining = false;
    });
  }
}
