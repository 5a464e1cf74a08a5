/**
 * Where to reach a node. Four sources, most recent knowledge first: what a member told us
 * directly (hints, ahead of the committed configuration), the committed configuration, the
 * members a join reply named (until the snapshot that lists them arrives), and the peers
 * discovery heard of before this node had a cluster (KnownPeers, bounded by PEERS_MAX).
 */
import type { NodeId } from '../membership/raft/types.ts';
import type { PeerAddress, PeerExchange } from '../protocol/messages.ts';
import type { Clock } from '../runtime/index.ts';
import { validAddress } from './guards.ts';

/** Peers remembered before bootstrap; more are ignored. Also bounds the other per-node
 * tables of the cluster service (vouch rounds, refusal logs). */
export const PEERS_MAX = 256;
/** A peer counts for bootstrap and joins only if it answered (or asked) within this long. */
export const PEER_FRESH_MS = 5000;

export interface KnownPeer {
  id: NodeId;
  address: string;
  clusterId: string;
  bootstrapExpect: number;
  leader: string;
  /** When it last answered or asked us directly; 0 when we only heard of it. */
  seenAtMs: number;
}

/** The peers discovery learnt of: from their own exchange (direct) or from another's list. */
export class KnownPeers {
  private readonly peers = new Map<NodeId, KnownPeer>();

  private readonly self: NodeId;
  private readonly clock: Clock;

  constructor(self: NodeId, clock: Clock) {
    this.self = self;
    this.clock = clock;
  }

  get(id: NodeId): KnownPeer | undefined {
    return this.peers.get(id);
  }

  values(): IterableIterator<KnownPeer> {
    return this.peers.values();
  }

  /** Records a peer: everything it says of itself when `direct`, only its address (and only
   * if new) when another peer named it. Beyond PEERS_MAX, new peers are ignored. */
  note(info: Omit<PeerExchange, 'peers'> | PeerAddress, direct: boolean): void {
    if (!info.id || info.id === this.self || !validAddress(info.address)) return;
    const existing = this.peers.get(info.id);
    if (!direct) {
      if (existing !== undefined || this.peers.size >= PEERS_MAX) return;
      this.peers.set(info.id, {
        id: info.id,
        address: info.address,
        clusterId: '',
        bootstrapExpect: 0,
        leader: '',
        seenAtMs: 0,
      });
      return;
    }
    if (existing === undefined && this.peers.size >= PEERS_MAX) return;
    const full = info as PeerExchange;
    this.peers.set(info.id, {
      id: info.id,
      address: info.address,
      clusterId: full.clusterId ?? '',
      bootstrapExpect: full.bootstrapExpect ?? 0,
      leader: full.leader ?? '',
      seenAtMs: this.clock.nowMs(),
    });
  }

  /** Peers that answered or asked within PEER_FRESH_MS. */
  fresh(): KnownPeer[] {
    const since = this.clock.nowMs() - PEER_FRESH_MS;
    return [...this.peers.values()].filter((peer) => peer.seenAtMs > 0 && peer.seenAtMs >= since);
  }
}

export class AddressBook {
  /** Addresses members told us directly, ahead of the committed configuration. */
  readonly hints = new Map<NodeId, string>();
  /** Members named in the join reply, accepted as Raft peers until the snapshot arrives. */
  preApplyMembers = new Map<NodeId, string>();

  /** The committed configuration's address of a member ('' or undefined: none). */
  private readonly committed: (id: NodeId) => string | undefined;
  private readonly peers: KnownPeers;

  constructor(committed: (id: NodeId) => string | undefined, peers: KnownPeers) {
    this.committed = committed;
    this.peers = peers;
  }

  /** Where to reach `id`: what it told us, the committed configuration, or discovery. */
  addressOf(id: NodeId): string | undefined {
    return (
      this.hints.get(id) ??
      (this.committed(id) || undefined) ??
      this.preApplyMembers.get(id) ??
      this.peers.get(id)?.address
    );
  }
}
