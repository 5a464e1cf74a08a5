/**
 * ClusterContext: what every room of the cluster service shares — the init and its resolved
 * settings, the Raft storage and driver, the peer links, the address book, the state
 * (pending/joining/member/left), and the small tables several rooms read (vouched members,
 * last contact, configuration-change timings).
 *
 * It is also the one place the service touches the outside world: `clock` (read time),
 * `timers` (repeat, delay), `sleep`, `newClusterId` and `random` come from the init's
 * injected clock and randomness (the system's when none is given); `transport` carries
 * every node-to-node request (PeerLinks over mTLS, or the simulator's); `storage` is the
 * Raft storage the service was opened with; `leftMarker` keeps left.json. A simulated node
 * replaces them through ClusterServiceInit and nowhere else.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode } from '../errors.ts';
import { DEFAULT_TICK_MS } from '../membership/raft/config.ts';
import type { NodeId } from '../membership/raft/types.ts';
import type { ConfChangeTiming } from '../protocol/messages.ts';
import { PEER_REQUEST_TIMEOUT_DEFAULT_MS, type PeerTransport, peerSender } from '../rpc/peer.ts';
import type { RequestSender } from '../rpc/request.ts';
import {
  type Clock,
  type Counters,
  type Logger,
  type Random,
  randomUuid,
  setRepeating,
  sleep,
  systemClock,
  systemRandom,
  type Timers,
  timersOf,
} from '../runtime/index.ts';
import { AddressBook, KnownPeers } from './address-book.ts';
import type { ProposalResult, RaftDriver, RaftDriverStorage } from './driver.ts';
import { fail } from './guards.ts';
import {
  type ClusterServiceInit,
  type ClusterState,
  type ClusterTunables,
  type GossipLiveness,
  type PeerGuard,
  resolveClusterTunables,
} from './init.ts';
import { type LeftMarkerStore, leftMarkerFile } from './left-marker.ts';
import { PeerLinks } from './peers.ts';
import { type ClusterTimeouts, RAFT_TIMINGS_LAN } from './timings.ts';

/** Membership-change timings kept for `cluster status`; the oldest is dropped beyond it. */
export const CONF_CHANGE_TIMINGS_MAX = 256;
/** Between two looks at a condition waitFor waits on (a leader elected, leadership moved). */
const WAIT_POLL_MS = 10;

/** Timers the cluster service schedules with; replaced as a whole by a simulated node. */
export interface ClusterTimers {
  /** Calls `fn` every `ms` until cancelled. */
  every(ms: number, fn: () => void): { cancel(): void };
  /** Calls `fn` once, `ms` from now. */
  after(ms: number, fn: () => void): void;
}

/** ClusterTimers on `timers` (the system's, or the simulator's EventQueue). */
export function clusterTimersOn(timers: Timers): ClusterTimers {
  return {
    every(ms, fn) {
      const repeating = setRepeating(timers, ms, fn);
      return { cancel: () => repeating.stop() };
    },
    after(ms, fn) {
      timers.setTimer(ms, fn);
    },
  };
}

/**
 * The Raft storage the service runs on: what the driver persists to, plus what only a file
 * storage has (counters for `node status`), optional so MemoryStorage serves the simulator.
 */
export interface ClusterRaftStorage extends RaftDriverStorage {
  hardStateNow(): { term: number; vote: NodeId; commit: number };
  stats?(): { syncs: number; bytesWritten: number; segments: number; watermarkWrites: number };
}

export class ClusterContext {
  readonly init: ClusterServiceInit;
  readonly id: NodeId;
  readonly log: Logger;
  readonly counters: Counters;
  readonly clock: Clock;
  readonly random: Random;
  readonly timers: ClusterTimers;
  /** The clock's own timers: what sleep waits on. */
  private readonly clockTimers: Timers;
  readonly tickMs: number;
  readonly timeouts: ClusterTimeouts;
  readonly tunables: ClusterTunables;
  readonly storage: ClusterRaftStorage;
  /** Every node-to-node request goes through it (see peer()). */
  readonly transport: PeerTransport;
  /** Breaker, retry budget and limits around requests to peers (see guardedPeer); null when
   * the node gave none (requests then go straight to the transport). */
  readonly peerGuard: PeerGuard | null;
  readonly leftMarker: LeftMarkerStore;
  readonly peers: KnownPeers;
  readonly addresses: AddressBook;

  state: ClusterState = 'pending';
  driver: RaftDriver | null = null;
  /** The address this node advertises (set by start). */
  address = '';
  stopping = false;
  /** The cluster a join reply (or a leave) named, for status before the driver knows it. */
  joinedClusterId = '';
  /** The cluster ids a pending node found among its candidates when there were two or more
   * and no --cluster-id chose (RDB_DISCOVERY_AMBIGUOUS); empty otherwise. */
  ambiguousClusters: string[] = [];
  /** Members this node's configuration does not know yet, vouched for by a member (see
   * RaftTraffic.askVouch); forgotten once their removal is applied. */
  readonly vouched = new Set<NodeId>();
  /**
   * When a Raft batch last arrived from each member (this node's clock). Real contact: the
   * core's own contact ticks start fresh at every election, so a dead follower looks live
   * for an election timeout after a failover.
   */
  readonly lastHeardMs = new Map<NodeId, number>();
  /** The last CONF_CHANGE_TIMINGS_MAX membership changes this node made, for status. */
  readonly confChangeTimings: ConfChangeTiming[] = [];

  /** Resolves when this node has left the cluster at its own request (the node then stops). */
  readonly left: Promise<void>;
  /** Resolves with the error when this node cannot go on (storage failed, id in use). */
  readonly failed: Promise<Error>;
  /** Ends `left`. */
  resolveLeft!: () => void;
  /** Ends `failed`. */
  resolveFailed!: (error: Error) => void;

  constructor(init: ClusterServiceInit, storage: ClusterRaftStorage) {
    this.init = init;
    this.id = init.id;
    this.log = init.log;
    this.counters = init.counters;
    this.storage = storage;
    this.clock = init.clock ?? systemClock;
    this.clockTimers = timersOf(this.clock);
    this.timers = clusterTimersOn(this.clockTimers);
    this.random = init.random ?? systemRandom;
    this.tickMs = init.tickMs ?? DEFAULT_TICK_MS;
    this.timeouts = {
      proposalTimeoutMs: init.timeouts?.proposalTimeoutMs ?? RAFT_TIMINGS_LAN.proposalTimeoutMs,
      forwardDeadlineMs: init.timeouts?.forwardDeadlineMs ?? RAFT_TIMINGS_LAN.forwardDeadlineMs,
      transferTimeoutMs: init.timeouts?.transferTimeoutMs ?? RAFT_TIMINGS_LAN.transferTimeoutMs,
    };
    this.tunables = resolveClusterTunables(init.tunables);
    this.transport =
      init.transport ??
      new PeerLinks({ local: init.local, tls: init.tls, options: init.connection });
    this.peerGuard = init.peerGuard ?? null;
    this.leftMarker = init.leftMarker ?? leftMarkerFile(init.dataDir);
    this.peers = new KnownPeers(init.id, this.clock);
    this.addresses = new AddressBook((id) => this.driver?.config.addresses.get(id), this.peers);
    this.left = new Promise((resolve) => {
      this.resolveLeft = resolve;
    });
    this.failed = new Promise((resolve) => {
      this.resolveFailed = resolve;
    });
  }

  /** Waits `ms` on the clock's timers. */
  sleep(ms: number): Promise<void> {
    return sleep(this.clockTimers, ms);
  }

  /** A fresh cluster id for a founding configuration: from the injected randomness when
   * there is one (a seeded simulation names the same cluster in every replay). */
  newClusterId(): string {
    return this.init.random === undefined ? randomUUID() : randomUuid(this.random);
  }

  /** The node at `address` as a RequestSender, for request() (rpc/request.ts). */
  peer(address: string): RequestSender {
    return peerSender(this.transport, address);
  }

  /**
   * The node at `address` behind the peer guard: a request is refused at once while the
   * peer's breaker is open (RDB_CIRCUIT_OPEN) or a limit is reached, and a failure that
   * surely did not run there (unreachable, closed before an answer) is retried within the
   * request's timeout and the retry budget — at most `attemptsMax` attempts in all (1 for a
   * request that must not run twice, or whose caller retries on its own schedule).
   */
  guardedPeer(address: string, attemptsMax?: number): RequestSender {
    const guard = this.peerGuard;
    if (guard === null) return this.peer(address);
    const options = attemptsMax === undefined ? undefined : { attemptsMax };
    return {
      request: (envelope, timeoutMs = PEER_REQUEST_TIMEOUT_DEFAULT_MS) =>
        guard.call(
          address,
          (remainingMs) =>
            this.transport.request(
              address,
              envelope,
              Math.max(1, Math.min(timeoutMs, remainingMs ?? timeoutMs)),
            ),
          this.clock.nowMs() + timeoutMs,
          options,
        ),
    };
  }

  /** The node at `address`, measured by the peer guard (latency, in flight, errors for `lb
   * status` and the balancer) but never refused or retried: for traffic that keeps its own
   * schedule (Raft batches, discovery exchanges, the founding configuration). */
  observedPeer(address: string): RequestSender {
    const guard = this.peerGuard;
    if (guard === null) return this.peer(address);
    return {
      request: (envelope, timeoutMs = PEER_REQUEST_TIMEOUT_DEFAULT_MS) =>
        guard.observe(address, () => this.transport.request(address, envelope, timeoutMs)),
    };
  }

  /** False while the peer guard refuses `address` (breaker open, ejected). */
  peerAvailable(address: string): boolean {
    return this.peerGuard?.available(address) ?? true;
  }

  /** One of `addresses` by the peer guard's balancer (skipping unavailable peers), else the
   * first; undefined for none. */
  pickPeer(addresses: readonly string[]): string | undefined {
    if (addresses.length === 0) return undefined;
    return this.peerGuard?.pick(addresses) ?? addresses[0];
  }

  get clusterId(): string {
    return this.driver?.config.clusterId || this.joinedClusterId;
  }

  /** Where to reach `id` (see AddressBook). */
  addressOf(id: NodeId): string | undefined {
    return this.addresses.addressOf(id);
  }

  /** True once this data dir holds a cluster (a snapshot past index 0). */
  hasCluster(): boolean {
    return this.storage.snapshot().metadata.index > 0;
  }

  /** The driver of a member; RDB_NOT_MEMBER (saying why) otherwise. */
  requireMember(): RaftDriver {
    const driver = this.driver;
    if (driver === null || this.state !== 'member') {
      const why =
        this.state === 'left'
          ? 'has left its cluster'
          : this.state === 'joining'
            ? 'is still joining a cluster'
            : 'is not in a cluster yet';
      fail(
        ErrorCode.NotMember,
        `node ${this.id} ${why}`,
        this.state === 'pending'
          ? 'run `rdbnet cluster bootstrap --expect N` on one of the nodes'
          : undefined,
      );
    }
    return driver;
  }

  /** True when `id` is in the applied configuration or added by an entry in the log. */
  isMemberPeer(id: NodeId): boolean {
    return this.driver?.isKnownMember(id) === true;
  }

  /** This node's gossip view (see GossipLiveness); null while gossip does not run. */
  gossipView(): readonly GossipLiveness[] | null {
    return this.init.gossip?.() ?? null;
  }

  /** Milliseconds since a Raft batch from `id` arrived; 0 for this node, -1 when never. */
  lastContactMs(id: NodeId): number {
    if (id === this.id) return 0;
    const heard = this.lastHeardMs.get(id);
    return heard === undefined ? -1 : Math.round(this.clock.nowMs() - heard);
  }

  /** True when a Raft batch from `id` arrived within `ms` (always for this node). */
  heardWithin(id: NodeId, ms: number): boolean {
    if (id === this.id) return true;
    const heard = this.lastHeardMs.get(id);
    return heard !== undefined && this.clock.nowMs() - heard <= ms;
  }

  /** Notes how long a committed membership change took, for `cluster status`. */
  recordTiming(op: string, nodeId: NodeId, result: ProposalResult): void {
    this.confChangeTimings.push({
      index: result.index,
      op,
      nodeId,
      commitMs: Number(result.commitMs.toFixed(3)),
    });
    if (this.confChangeTimings.length > CONF_CHANGE_TIMINGS_MAX) this.confChangeTimings.shift();
  }

  /** Polls `predicate` every WAIT_POLL_MS; false at the timeout or when stopping. */
  async waitFor(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = this.clock.nowMs() + timeoutMs;
    while (!predicate()) {
      if (this.clock.nowMs() >= deadline || this.stopping) return false;
      await this.sleep(WAIT_POLL_MS);
    }
    return true;
  }
}
