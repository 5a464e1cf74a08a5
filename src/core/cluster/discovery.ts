/**
 * Discovery: how nodes learn of each other through the peer exchange (PeerExchange: id,
 * address, cluster, bootstrap-expect, leader, and the peers each knows). A node without a
 * cluster exchanges with its seeds and every peer it heard of, every discoveryIntervalMs,
 * and after each round lets the service decide (join a cluster found, or bootstrap). Members
 * answer exchanges too: that is how a member restarted on a new address tells the others,
 * who record it (the leader commits it, a follower passes it on) unless another live process
 * holds that id.
 */
import { ErrorCode } from '../errors.ts';
import type { PeerAddress, PeerExchange } from '../protocol/messages.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import { request } from '../rpc/request.ts';
import { PEERS_MAX } from './address-book.ts';
import type { ClusterContext } from './context.ts';
import type { Forwarding } from './forwarding.ts';
import { fail, nodePeer, validAddress } from './guards.ts';
import type { IdClaims } from './id-claims.ts';

/** Peer addresses contacted in one discovery round; also bounds the seeds added at run time. */
export const DISCOVERY_TARGETS_MAX = 64;

export interface DiscoveryHooks {
  /** A round ended (and the node is not stopping): time to look at what was learnt. */
  afterRound(): void;
}

export class Discovery {
  /** Addresses with an exchange in flight: one at a time each. */
  private readonly exchanging = new Set<string>();
  /** Seed addresses that turned out to be this node. */
  private readonly selfAddresses = new Set<string>();
  /** Seeds added at run time by `cluster join --seeds`, bounded by DISCOVERY_TARGETS_MAX. */
  private readonly extraSeeds = new Set<string>();
  /** Seeds found by `--retry-join` lookups: replaced by each lookup's answer, bounded too. */
  private discoveredSeeds: readonly string[] = [];
  private timer: { cancel(): void } | null = null;
  private running: Promise<void> | null = null;

  private readonly ctx: ClusterContext;
  private readonly idClaims: IdClaims;
  private readonly forwarding: Forwarding;
  private readonly hooks: DiscoveryHooks;

  constructor(
    ctx: ClusterContext,
    idClaims: IdClaims,
    forwarding: Forwarding,
    hooks: DiscoveryHooks,
  ) {
    this.ctx = ctx;
    this.idClaims = idClaims;
    this.forwarding = forwarding;
    this.hooks = hooks;
  }

  /** Exchanges now and every discoveryIntervalMs from now on. */
  start(): void {
    this.repeat();
    this.tick();
  }

  /** Starts the repeating exchange if it is not running (and the node is not stopping). */
  repeat(): void {
    if (this.timer !== null || this.ctx.stopping) return;
    this.timer = this.ctx.timers.every(this.ctx.tunables.discoveryIntervalMs, () => this.tick());
  }

  /** Stops the repeating exchange: the node is a member, or stopping. */
  stopRepeating(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** Seeds from `cluster join --seeds`, asked from the next round on. */
  addSeeds(seeds: readonly string[]): void {
    for (const seed of seeds) {
      if (this.extraSeeds.size >= DISCOVERY_TARGETS_MAX) break;
      this.extraSeeds.add(seed);
    }
  }

  /** Seeds from a `--retry-join` lookup: they replace the previous lookup's. */
  setDiscoveredSeeds(seeds: readonly string[]): void {
    this.discoveredSeeds = [...new Set(seeds)].slice(0, DISCOVERY_TARGETS_MAX);
  }

  /** One round now unless one is running, or the node no longer looks for a cluster. */
  tick(): void {
    const { state } = this.ctx;
    if (this.ctx.stopping || state === 'member' || state === 'left') return;
    this.startRound();
  }

  /** One round now unless one is running (a joining node asks again between its tries). */
  startRound(): void {
    if (this.running !== null || this.ctx.stopping) return;
    this.running = this.round().finally(() => {
      this.running = null;
    });
  }

  /** One exchange with every seed and known peer, then a look at what was learnt. */
  async round(): Promise<void> {
    const { ctx } = this;
    const targets = new Set<string>([
      ...(ctx.init.seeds ?? []),
      ...this.extraSeeds,
      ...this.discoveredSeeds,
    ]);
    for (const peer of ctx.peers.values()) targets.add(peer.address);
    targets.delete(ctx.address);
    for (const address of this.selfAddresses) targets.delete(address);
    const round = [...targets].slice(0, DISCOVERY_TARGETS_MAX).map(async (address) => {
      if (this.exchanging.has(address)) return;
      this.exchanging.add(address);
      try {
        // Rounds keep their own pace, and a seed not up yet must not be shut out by a breaker
        // once it is: measured only.
        const reply = await request(
          ctx.observedPeer(address),
          'peerExchangeRequest',
          this.exchangeInfo(),
          ctx.tunables.peerRequestTimeoutMs,
        );
        if (reply.id === ctx.id) {
          this.selfAddresses.add(address);
          return;
        }
        ctx.peers.note(reply, true);
        for (const heard of reply.peers ?? []) ctx.peers.note(heard, false);
      } catch {
        // Not up yet, or gone: asked again next round.
      } finally {
        this.exchanging.delete(address);
      }
    });
    await Promise.all(round);
    if (!ctx.stopping) this.hooks.afterRound();
  }

  /** What this node says of itself: a member lists the members, others the peers they know. */
  exchangeInfo(): PeerExchange {
    const { ctx } = this;
    const peers: PeerAddress[] = [];
    const driver = ctx.driver;
    if (driver !== null) {
      for (const member of driver.config.members()) {
        const address = ctx.addressOf(member.id);
        if (member.id !== ctx.id && address !== undefined) peers.push({ id: member.id, address });
      }
    } else {
      for (const peer of ctx.peers.values()) peers.push({ id: peer.id, address: peer.address });
    }
    return {
      id: ctx.id,
      address: ctx.address,
      clusterId: ctx.clusterId,
      bootstrapExpect: ctx.init.bootstrapExpect ?? 0,
      peers: peers.slice(0, PEERS_MAX),
      leader: driver?.leader ?? '',
    };
  }

  onPeerExchange(info: PeerExchange, from: PeerIdentity): PeerExchange {
    const { ctx } = this;
    const peer = nodePeer(from);
    if (peer.authenticated && info.id !== peer.id) {
      fail(ErrorCode.Forbidden, `node ${peer.id} may only speak for itself, not for ${info.id}`);
    }
    ctx.peers.note(info, true);
    const driver = ctx.driver;
    if (
      driver !== null &&
      ctx.state === 'member' &&
      driver.config.isMember(info.id) &&
      validAddress(info.address) &&
      driver.config.addresses.get(info.id) !== info.address
    ) {
      // Not while another live process holds the id (a second process claiming it): Raft
      // would then talk to that one.
      const inUse = this.idClaims.idInUse(info.id, info.address);
      if (inUse !== null) {
        this.idClaims.logRefusal(info.id, info.address, inUse);
        return this.exchangeInfo();
      }
      // A member restarted on a new address: reach it there at once, and have it recorded.
      if (ctx.addresses.hints.get(info.id) !== info.address) {
        ctx.addresses.hints.set(info.id, info.address);
        ctx.log.info('member address changed', { node: info.id, address: info.address });
      }
      if (driver.isLeader) this.forwarding.ensureAddress(info.id, info.address).catch(() => {});
      else this.forwarding.forwardAddress(driver, info.id, info.address);
    }
    return this.exchangeInfo();
  }
}
