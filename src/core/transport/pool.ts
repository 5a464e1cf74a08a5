/**
 * Connection pools per peer, the layer above one Connection: a node keeps between
 * connectionsMin and connectionsMax connections to every peer it talks to, and node-wide at
 * most nodeConnectionsMax.
 *
 * - Warm-up: a peer gossip reports joined (or alive again) is `warm`: its pool is filled to
 *   connectionsMin at once, and refilled after a connection is lost, with backoff, at most
 *   replaceAttemptsMax failed dials in a row (then it waits for the next request or the next
 *   membership event, so a dead peer costs a bounded number of dials).
 * - Picking: a request goes to the open connection with the fewest requests in flight. Only
 *   when every open one carries connectionInflightMax does the pool open another (below
 *   connectionsMax); the request waits, in a FIFO of at most waitersMax, for the first
 *   connection with room — at most waitTimeoutMs (and never past its own deadline), then
 *   RDB_POOL_EXHAUSTED (RDB_NODE_UNREACHABLE when no connection to the peer opened at all).
 * - Eviction, by one maintenance pass every maintenanceIntervalMs: a connection idle for
 *   idleTimeoutMs is closed while the pool holds more than connectionsMin (as HikariCP's
 *   idleTimeout spares minimumIdle); one older than lifetimeMaxMs is retired (no new
 *   requests, closed once its last one is answered) and replaced; when the node is at
 *   nodeConnectionsMax, a new connection first closes the least recently used idle one of
 *   any peer (LRU), or is not opened.
 * - Health: an idle connection not heard from for healthCheckIntervalMs is sent an echo; one
 *   that does not answer within healthCheckTimeoutMs, or closes with an error, is removed
 *   (evicted as unhealthy) and replaced up to connectionsMin.
 *
 * Pure policy: connections come from an injected PoolConnector (dial.ts's in production,
 * a scripted one in the unit tests) and time from an injected TimedClock, so every rule
 * above is tested in virtual time.
 */
import { ConfigFieldError, ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import type { DecodedEnvelope, Envelope } from '../protocol/messages.ts';
import {
  backoffDelayMs,
  type Random,
  systemRandom,
  type TimedClock,
  type TimerHandle,
} from '../runtime/index.ts';

export interface PoolOptions {
  /** Connections kept open to every warm peer (one gossip reports joined or alive): opened
   * when it joins, replaced when one is lost or retired. Default 1. */
  connectionsMin: number;
  /** Most connections to one peer, opening ones included. Default 4. */
  connectionsMax: number;
  /** Requests one pooled connection carries at once before the pool counts it busy and
   * opens another (or, at connectionsMax, makes requests wait). Default 64. */
  connectionInflightMax: number;
  /** Requests that may wait for a connection of one peer; one more is refused at once with
   * RDB_POOL_EXHAUSTED. Default 256. */
  waitersMax: number;
  /** Longest wait for a connection with room (never past the request's own deadline); then
   * RDB_POOL_EXHAUSTED, or RDB_NODE_UNREACHABLE when no connection to the peer is open.
   * Default 5000 ms. */
  waitTimeoutMs: number;
  /** A connection with nothing in flight for this long is closed, while its pool holds more
   * than connectionsMin. Default 60000 ms. */
  idleTimeoutMs: number;
  /** A connection older than this is retired and replaced (certificates and routes get
   * renewed, load spreads over restarted peers). Default 1800000 ms (30 minutes). */
  lifetimeMaxMs: number;
  /** An idle connection not heard from for this long is sent an echo. Default 10000 ms. */
  healthCheckIntervalMs: number;
  /** The echo's deadline; a connection that misses it is removed. Default 2000 ms. */
  healthCheckTimeoutMs: number;
  /** Pooled connections this node keeps to all peers together; at the cap a new one first
   * closes the least recently used idle connection, or is not opened. Default 256. */
  nodeConnectionsMax: number;
  /** Peers the node keeps a pool for; the least recently used empty pool makes room.
   * Default 1024. */
  peersMax: number;
  /** Failed dials in a row while refilling a warm pool before the pool stops trying (until
   * the next request or membership event). Default 5. */
  replaceAttemptsMax: number;
  /** Backoff between refill dials: full jitter, doubling from base up to max. Defaults
   * 100 ms and 5000 ms. */
  replaceBackoffBaseMs: number;
  replaceBackoffMaxMs: number;
  /** How often eviction, health checks and refills run. Default 1000 ms. */
  maintenanceIntervalMs: number;
}

export const DEFAULT_POOL_OPTIONS: Readonly<PoolOptions> = Object.freeze({
  connectionsMin: 1,
  connectionsMax: 4,
  connectionInflightMax: 64,
  waitersMax: 256,
  waitTimeoutMs: 5000,
  idleTimeoutMs: 60_000,
  lifetimeMaxMs: 1_800_000,
  healthCheckIntervalMs: 10_000,
  healthCheckTimeoutMs: 2000,
  nodeConnectionsMax: 256,
  peersMax: 1024,
  replaceAttemptsMax: 5,
  replaceBackoffBaseMs: 100,
  replaceBackoffMaxMs: 5000,
  maintenanceIntervalMs: 1000,
});

/** The defaults with `overrides`; a bad value is a ConfigFieldError naming the field. */
export function poolOptions(overrides: Partial<PoolOptions> = {}): PoolOptions {
  const options = { ...DEFAULT_POOL_OPTIONS, ...overrides };
  for (const [name, value] of Object.entries(options)) {
    const least = name === 'connectionsMin' ? 0 : 1;
    if (!Number.isInteger(value) || value < least) {
      throw new ConfigFieldError(name, `must be an integer of at least ${least}, got ${value}`);
    }
  }
  if (options.connectionsMin > options.connectionsMax) {
    throw new ConfigFieldError(
      'connectionsMin',
      `must be at most connectionsMax (${options.connectionsMax}), got ${options.connectionsMin}`,
    );
  }
  if (options.connectionsMax > options.nodeConnectionsMax) {
    throw new ConfigFieldError(
      'connectionsMax',
      `must be at most nodeConnectionsMax (${options.nodeConnectionsMax}), got ${options.connectionsMax}`,
    );
  }
  if (options.replaceBackoffBaseMs > options.replaceBackoffMaxMs) {
    throw new ConfigFieldError(
      'replaceBackoffBaseMs',
      `must be at most replaceBackoffMaxMs (${options.replaceBackoffMaxMs}), got ${options.replaceBackoffBaseMs}`,
    );
  }
  return options;
}

/** One open connection as the pool uses it (a Connection is one). */
export interface PooledLink {
  request(envelope: Envelope, timeoutMs: number): Promise<DecodedEnvelope>;
  /** Closes after what is queued is flushed; outstanding requests fail. */
  close(): void;
  /** Still usable (false once it closes or fails). */
  isOpen(): boolean;
}

/** Where pooled connections come from. */
export interface PoolConnector {
  /**
   * Opens one connection to `address` (host:port), handshaken; rejects with a typed error.
   * `onClosed` is called once when an opened connection goes, with the error when it was not
   * a clean close.
   */
  open(address: string, onClosed: (error: RdbnetError | undefined) => void): Promise<PooledLink>;
}

export type EvictionReason = 'idle' | 'lifetime' | 'lru' | 'unhealthy';

/** One peer's pool, as `rdbnet pool stats` shows it. */
export interface PeerPoolStats {
  /** The peer's node id when a membership event named it; '' otherwise. */
  peer: string;
  address: string;
  /** Open connections (retiring ones included); of them idle (nothing in flight) and in use. */
  open: number;
  idle: number;
  inUse: number;
  /** Connections being dialed now. */
  opening: number;
  /** Requests waiting for a connection. */
  waiting: number;
  /** Connections closed by the pool or lost, by reason. */
  evicted: Record<EvictionReason, number>;
  /** Connections opened; dials that failed. */
  created: number;
  failed: number;
  /** Requests sent through the pool; refused with RDB_POOL_EXHAUSTED. */
  requests: number;
  exhausted: number;
  /** The pool fills itself to connectionsMin (a member gossip reports alive). */
  warm: boolean;
  /** Error code of the last failed dial or lost connection; '' when none. */
  lastError: string;
}

type EntryState = 'opening' | 'open' | 'retiring' | 'closed';

interface Entry {
  pool: PeerPool;
  link: PooledLink | null;
  state: EntryState;
  inflight: number;
  createdAtMs: number;
  /** When a request last started or finished on it (LRU and idle time). */
  lastUsedMs: number;
  /** When it last answered anything (a request or a health check). */
  lastHealthyMs: number;
  checking: boolean;
  /** Why a retiring connection will be counted as evicted once it drains. */
  retireReason: EvictionReason | null;
}

interface Waiter {
  envelope: Envelope;
  timeoutMs: number;
  startedAtMs: number;
  timer: TimerHandle;
  resolve(reply: DecodedEnvelope): void;
  reject(error: RdbnetError): void;
}

class PeerPool {
  readonly address: string;
  peerId = '';
  readonly entries: Entry[] = [];
  readonly waiters: Waiter[] = [];
  warm = false;
  /** Failed dials in a row (any dial: a refill or one a request asked for). */
  dialFailures = 0;
  /** Refills wait until then after a failed dial (backoff). */
  nextDialAtMs = 0;
  lastUsedMs: number;
  created = 0;
  failed = 0;
  requests = 0;
  exhausted = 0;
  lastError = '';
  readonly evicted: Record<EvictionReason, number> = { idle: 0, lifetime: 0, lru: 0, unhealthy: 0 };

  constructor(address: string, nowMs: number) {
    this.address = address;
    this.lastUsedMs = nowMs;
  }

  /** Connections that count against connectionsMax: open, retiring and opening. */
  get size(): number {
    return this.entries.length;
  }

  /** Open or opening connections that are not retiring: what counts towards connectionsMin. */
  get active(): number {
    let count = 0;
    for (const entry of this.entries) if (entry.state !== 'retiring') count++;
    return count;
  }

  get opening(): number {
    let count = 0;
    for (const entry of this.entries) if (entry.state === 'opening') count++;
    return count;
  }

  get usable(): number {
    let count = 0;
    for (const entry of this.entries) if (entry.state === 'open' && entry.link!.isOpen()) count++;
    return count;
  }
}

export interface ConnectionPoolsInit {
  connector: PoolConnector;
  options?: Partial<PoolOptions>;
  clock: TimedClock;
  random?: Random;
}

/** The echo a health check sends: the smallest request every node answers. */
const HEALTH_CHECK_ENVELOPE: Envelope = { echoRequest: { data: new Uint8Array(0) } };

/**
 * Every peer's pool of one node, under one node-wide connection cap. A PeerTransport
 * (rpc/peer.ts): `request(address, …)` sends over the pool of that address.
 */
export class ConnectionPools {
  readonly options: PoolOptions;
  private readonly connector: PoolConnector;
  private readonly clock: TimedClock;
  private readonly random: Random;
  private readonly pools = new Map<string, PeerPool>();
  /** Entries of every pool that are not closed (opening ones included). */
  private total = 0;
  private maintenanceTimer: TimerHandle | null = null;
  private closed = false;
  /** Dials the node-wide cap refused (no idle connection to close in their place). */
  private capRefused = 0;

  constructor(init: ConnectionPoolsInit) {
    this.options = poolOptions(init.options);
    this.connector = init.connector;
    this.clock = init.clock;
    this.random = init.random ?? systemRandom;
  }

  // ---- PeerTransport

  request(address: string, envelope: Envelope, timeoutMs: number): Promise<DecodedEnvelope> {
    if (this.closed) {
      return Promise.reject(
        new RdbnetError(ErrorCode.ConnectionClosed, `connection pools are closed (to ${address})`),
      );
    }
    const pool = this.poolOf(address);
    pool.requests++;
    pool.lastUsedMs = this.clock.nowMs();
    const entry = this.pick(pool);
    if (entry !== null) return this.run(entry, envelope, timeoutMs);
    if (pool.waiters.length >= this.options.waitersMax) {
      pool.exhausted++;
      return Promise.reject(
        new RdbnetError(
          ErrorCode.PoolExhausted,
          `${pool.waiters.length} requests already wait for a connection to ${address} (pool waitersMax)`,
        ),
      );
    }
    // Demand resets a pool that gave up refilling: someone wants this peer now.
    if (pool.usable === 0 && pool.opening === 0) pool.dialFailures = 0;
    if (!this.grow(pool, true) && pool.size === 0) {
      // Nothing to wait for: the node-wide cap left no idle connection to close for this one.
      pool.exhausted++;
      return Promise.reject(
        new RdbnetError(
          ErrorCode.PoolExhausted,
          `no connection to ${address}: the node holds nodeConnectionsMax (${this.options.nodeConnectionsMax}) pooled connections, none idle`,
        ),
      );
    }
    return new Promise<DecodedEnvelope>((resolve, reject) => {
      const waitMs = Math.max(0, Math.min(timeoutMs, this.options.waitTimeoutMs));
      const waiter: Waiter = {
        envelope,
        timeoutMs,
        startedAtMs: this.clock.nowMs(),
        resolve,
        reject,
        timer: this.clock.setTimer(
          waitMs,
          () => {
            const at = pool.waiters.indexOf(waiter);
            if (at >= 0) pool.waiters.splice(at, 1);
            reject(this.waitError(pool, waitMs));
          },
          { unref: true },
        ),
      };
      pool.waiters.push(waiter);
    });
  }

  /** No connection to `address` is open or being opened. */
  isCold(address: string): boolean {
    const pool = this.pools.get(address);
    return pool === undefined || pool.size === 0;
  }

  /** Some connection to `address` is open now. */
  isOpen(address: string): boolean {
    const pool = this.pools.get(address);
    return pool !== undefined && pool.usable > 0;
  }

  /** Closes and forgets the pools of addresses not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const [address, pool] of this.pools) {
      if (keep.has(address)) continue;
      this.dropPool(pool, `the pool of ${address} was let go`);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.maintenanceTimer !== null) this.clock.clearTimer(this.maintenanceTimer);
    this.maintenanceTimer = null;
    for (const pool of [...this.pools.values()]) this.dropPool(pool, 'connection pools closed');
  }

  // ---- membership

  /** The member at `address` joined or is alive again: fill its pool to connectionsMin. */
  warm(address: string, peerId = ''): void {
    if (this.closed) return;
    const pool = this.poolOf(address);
    if (peerId !== '') pool.peerId = peerId;
    pool.warm = true;
    pool.dialFailures = 0;
    pool.nextDialAtMs = 0;
    this.refill(pool);
  }

  /**
   * The member at `address` is dead or left: its connections are closed, waiting requests
   * fail, and the pool stops refilling; its counters stay for `stats()`.
   */
  cool(address: string): void {
    const pool = this.pools.get(address);
    if (pool === undefined) return;
    pool.warm = false;
    for (const entry of [...pool.entries]) this.remove(entry, null);
    this.failWaiters(
      pool,
      new RdbnetError(ErrorCode.NodeUnreachable, `${address} left the membership view`),
    );
  }

  // ---- observation

  stats(): PeerPoolStats[] {
    const rows: PeerPoolStats[] = [];
    for (const pool of this.pools.values()) {
      let open = 0;
      let idle = 0;
      for (const entry of pool.entries) {
        if (entry.state !== 'open' && entry.state !== 'retiring') continue;
        open++;
        if (entry.inflight === 0) idle++;
      }
      rows.push({
        peer: pool.peerId,
        address: pool.address,
        open,
        idle,
        inUse: open - idle,
        opening: pool.opening,
        waiting: pool.waiters.length,
        evicted: { ...pool.evicted },
        created: pool.created,
        failed: pool.failed,
        requests: pool.requests,
        exhausted: pool.exhausted,
        warm: pool.warm,
        lastError: pool.lastError,
      });
    }
    return rows.sort((a, b) => a.address.localeCompare(b.address));
  }

  /** Node-wide: pooled connections (opening included), and dials the cap refused. */
  counters(): Record<string, number> {
    let waiting = 0;
    for (const pool of this.pools.values()) waiting += pool.waiters.length;
    return {
      'pool.peers': this.pools.size,
      'pool.connections': this.total,
      'pool.waiting': waiting,
      'pool.cap_refused': this.capRefused,
    };
  }

  /** One maintenance pass now (the timer runs it every maintenanceIntervalMs). */
  maintain(): void {
    if (this.closed) return;
    const now = this.clock.nowMs();
    const options = this.options;
    for (const pool of this.pools.values()) {
      for (const entry of [...pool.entries]) {
        if (entry.state !== 'open') continue;
        if (!entry.link!.isOpen()) {
          this.lost(entry, undefined);
          continue;
        }
        if (now - entry.createdAtMs >= options.lifetimeMaxMs) {
          this.retire(entry, 'lifetime');
          continue;
        }
        if (entry.inflight > 0 || entry.checking) continue;
        if (
          now - entry.lastUsedMs >= options.idleTimeoutMs &&
          pool.active > options.connectionsMin
        ) {
          this.remove(entry, 'idle');
          continue;
        }
        if (now - entry.lastHealthyMs >= options.healthCheckIntervalMs) this.check(entry);
      }
      this.refill(pool);
    }
  }

  // ---- the policy

  private poolOf(address: string): PeerPool {
    let pool = this.pools.get(address);
    if (pool !== undefined) return pool;
    if (this.pools.size >= this.options.peersMax) this.dropLeastRecentPool();
    pool = new PeerPool(address, this.clock.nowMs());
    this.pools.set(address, pool);
    this.armMaintenance();
    return pool;
  }

  /** The open connection with the fewest requests in flight, if one has room. */
  private pick(pool: PeerPool): Entry | null {
    let best: Entry | null = null;
    for (const entry of pool.entries) {
      if (entry.state !== 'open' || !entry.link!.isOpen()) continue;
      if (entry.inflight >= this.options.connectionInflightMax) continue;
      if (best === null || entry.inflight < best.inflight) best = entry;
    }
    return best;
  }

  private run(entry: Entry, envelope: Envelope, timeoutMs: number): Promise<DecodedEnvelope> {
    entry.inflight++;
    entry.lastUsedMs = this.clock.nowMs();
    return entry.link!.request(envelope, timeoutMs).then(
      (reply) => {
        this.settled(entry, true);
        return reply;
      },
      (error: unknown) => {
        this.settled(entry, false);
        throw error;
      },
    );
  }

  private settled(entry: Entry, answered: boolean): void {
    entry.inflight--;
    const now = this.clock.nowMs();
    entry.lastUsedMs = now;
    if (answered) entry.lastHealthyMs = now;
    if (entry.state === 'retiring' && entry.inflight === 0) {
      this.remove(entry, entry.retireReason);
      this.refill(entry.pool);
      return;
    }
    this.dispatch(entry.pool);
  }

  /** Hands waiting requests to connections with room, oldest first. */
  private dispatch(pool: PeerPool): void {
    while (pool.waiters.length > 0) {
      const entry = this.pick(pool);
      if (entry === null) return;
      const waiter = pool.waiters.shift()!;
      this.clock.clearTimer(waiter.timer);
      // The time spent waiting counts against the request's deadline.
      const leftMs = waiter.timeoutMs - (this.clock.nowMs() - waiter.startedAtMs);
      this.run(entry, waiter.envelope, Math.max(1, leftMs)).then(waiter.resolve, waiter.reject);
    }
  }

  /**
   * Opens one more connection when the pool is below connectionsMax and the node below its
   * cap (for a request, closing the least recently used idle connection of any peer to get
   * there). `forDemand`: a request waits for it.
   */
  private grow(pool: PeerPool, forDemand: boolean): boolean {
    if (pool.size >= this.options.connectionsMax) return false;
    // Requests a dial already under way will make room for need no second one.
    if (
      forDemand &&
      pool.opening > 0 &&
      pool.waiters.length < pool.opening * this.options.connectionInflightMax
    ) {
      return false;
    }
    if (this.total >= this.options.nodeConnectionsMax) {
      // Only a request takes another peer's connection: were refills to, two warm pools at the
      // cap would take each other's connections on every maintenance pass.
      if (!forDemand) {
        this.capRefused++;
        return false;
      }
      const victim = this.leastRecentlyUsedIdle(pool);
      if (victim === null) {
        this.capRefused++;
        return false;
      }
      this.remove(victim, 'lru');
    }
    this.open(pool);
    return true;
  }

  private leastRecentlyUsedIdle(exclude: PeerPool): Entry | null {
    let victim: Entry | null = null;
    for (const pool of this.pools.values()) {
      if (pool === exclude) continue;
      for (const entry of pool.entries) {
        if (entry.state !== 'open' || entry.inflight > 0 || entry.checking) continue;
        if (victim === null || entry.lastUsedMs < victim.lastUsedMs) victim = entry;
      }
    }
    return victim;
  }

  private open(pool: PeerPool): void {
    const now = this.clock.nowMs();
    const entry: Entry = {
      pool,
      link: null,
      state: 'opening',
      inflight: 0,
      createdAtMs: now,
      lastUsedMs: now,
      lastHealthyMs: now,
      checking: false,
      retireReason: null,
    };
    pool.entries.push(entry);
    this.total++;
    let opened: Promise<PooledLink>;
    try {
      opened = this.connector.open(pool.address, (error) => this.lost(entry, error));
    } catch (error) {
      opened = Promise.reject(error);
    }
    opened.then(
      (link) => {
        if (entry.state !== 'opening') {
          // The pool was cooled, dropped or closed while this dialed.
          link.close();
          return;
        }
        const openedAt = this.clock.nowMs();
        entry.link = link;
        entry.state = 'open';
        entry.createdAtMs = openedAt;
        entry.lastUsedMs = openedAt;
        entry.lastHealthyMs = openedAt;
        pool.created++;
        pool.dialFailures = 0;
        this.dispatch(pool);
      },
      (error: unknown) => {
        if (entry.state !== 'opening') return;
        this.detach(entry);
        pool.failed++;
        pool.dialFailures++;
        const typed = isRdbnetError(error)
          ? error
          : new RdbnetError(ErrorCode.NodeUnreachable, `cannot reach ${pool.address}`, {
              cause: error,
            });
        pool.lastError = typed.code;
        pool.nextDialAtMs =
          this.clock.nowMs() +
          backoffDelayMs(
            pool.dialFailures - 1,
            this.options.replaceBackoffBaseMs,
            this.options.replaceBackoffMaxMs,
            this.random,
          );
        // Nothing else can serve the waiting requests: they learn why now.
        if (pool.usable === 0 && pool.opening === 0) this.failWaiters(pool, typed);
      },
    );
  }

  /** Fills a warm pool up to connectionsMin, unless it backs off or gave up. */
  private refill(pool: PeerPool): void {
    if (!pool.warm || this.closed) return;
    if (pool.dialFailures >= this.options.replaceAttemptsMax) return;
    if (this.clock.nowMs() < pool.nextDialAtMs) return;
    // After a failure, one dial at a time: a dead peer is not dialed connectionsMin times over.
    const wanted =
      pool.dialFailures > 0
        ? Math.min(1, this.options.connectionsMin - pool.active)
        : this.options.connectionsMin - pool.active;
    if (pool.dialFailures > 0 && pool.opening > 0) return;
    for (let i = 0; i < wanted; i++) if (!this.grow(pool, false)) return;
  }

  /** Sends an idle connection an echo; a miss removes it as unhealthy. */
  private check(entry: Entry): void {
    entry.checking = true;
    entry.link!.request(HEALTH_CHECK_ENVELOPE, this.options.healthCheckTimeoutMs).then(
      () => {
        entry.checking = false;
        entry.lastHealthyMs = this.clock.nowMs();
      },
      (error: unknown) => {
        entry.checking = false;
        if (entry.state !== 'open' && entry.state !== 'retiring') return;
        entry.pool.lastError = isRdbnetError(error) ? error.code : ErrorCode.Internal;
        this.remove(entry, 'unhealthy');
        this.refill(entry.pool);
      },
    );
  }

  /** No new requests for `entry`; closed now when idle, else once its last request ends. */
  private retire(entry: Entry, reason: EvictionReason): void {
    if (entry.inflight === 0) {
      this.remove(entry, reason);
    } else {
      entry.state = 'retiring';
      entry.retireReason = reason;
    }
    this.refill(entry.pool);
  }

  /** A connection closed under the pool (the peer went, a socket error). */
  private lost(entry: Entry, error: RdbnetError | undefined): void {
    if (entry.state !== 'open' && entry.state !== 'retiring') return;
    const pool = entry.pool;
    if (error !== undefined) pool.lastError = error.code;
    // A retiring connection that closes was going anyway; the rest were lost.
    this.remove(entry, entry.state === 'retiring' ? entry.retireReason : 'unhealthy');
    this.refill(pool);
    if (pool.usable === 0 && pool.opening === 0 && pool.waiters.length > 0) this.grow(pool, true);
  }

  /** Closes `entry` and counts it under `reason` (null: not an eviction, the pool went). */
  private remove(entry: Entry, reason: EvictionReason | null): void {
    if (entry.state === 'closed') return;
    const link = entry.link;
    this.detach(entry);
    if (reason !== null) entry.pool.evicted[reason]++;
    link?.close();
  }

  private detach(entry: Entry): void {
    entry.state = 'closed';
    const at = entry.pool.entries.indexOf(entry);
    if (at >= 0) entry.pool.entries.splice(at, 1);
    this.total--;
  }

  private waitError(pool: PeerPool, waitMs: number): RdbnetError {
    if (pool.usable === 0) {
      return new RdbnetError(
        ErrorCode.NodeUnreachable,
        `no connection to ${pool.address} within ${waitMs} ms${pool.lastError === '' ? '' : ` (last error ${pool.lastError})`}`,
      );
    }
    pool.exhausted++;
    return new RdbnetError(
      ErrorCode.PoolExhausted,
      `every connection to ${pool.address} stayed busy for ${waitMs} ms (${pool.size} of connectionsMax ${this.options.connectionsMax})`,
    );
  }

  private failWaiters(pool: PeerPool, error: RdbnetError): void {
    const waiters = pool.waiters.splice(0);
    for (const waiter of waiters) {
      this.clock.clearTimer(waiter.timer);
      waiter.reject(error);
    }
  }

  private dropPool(pool: PeerPool, why: string): void {
    for (const entry of [...pool.entries]) this.remove(entry, null);
    this.failWaiters(pool, new RdbnetError(ErrorCode.ConnectionClosed, why));
    this.pools.delete(pool.address);
  }

  /** At peersMax: forget the least recently used pool without connections (or any). */
  private dropLeastRecentPool(): void {
    let victim: PeerPool | null = null;
    for (const pool of this.pools.values()) {
      const empty = pool.size === 0 && pool.waiters.length === 0;
      const victimEmpty = victim !== null && victim.size === 0 && victim.waiters.length === 0;
      if (
        victim === null ||
        (empty && !victimEmpty) ||
        (empty === victimEmpty && pool.lastUsedMs < victim.lastUsedMs)
      ) {
        victim = pool;
      }
    }
    if (victim !== null)
      this.dropPool(victim, `the pool of ${victim.address} made room (peersMax)`);
  }

  private armMaintenance(): void {
    if (this.maintenanceTimer !== null || this.closed) return;
    this.maintenanceTimer = this.clock.setTimer(
      this.options.maintenanceIntervalMs,
      () => {
        this.maintenanceTimer = null;
        this.maintain();
        if (this.pools.size > 0) this.armMaintenance();
      },
      { unref: true },
    );
  }
}
