/**
 * Delivery guarantees beneath the routing patterns: which errors a retry may cure, the
 * backoff between attempts (exponential with full jitter), the per-peer window of messages
 * sent and not yet acknowledged (backpressure), and the receiver's deduplication window for
 * exactly-once (bounded by count, age and stored reply bytes; kept in a DedupStore — the
 * node's data dir — so that it survives a reconnect and a restart of the receiving process).
 */
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import type { Clock, Random, Timers } from '../runtime/index.ts';
import type { DedupRecord, DedupStore } from './dedup-store.ts';
import type { DataPlaneLimits } from './limits.ts';

export type Delivery = 'at-most-once' | 'at-least-once' | 'exactly-once';

export const DELIVERIES: readonly Delivery[] = ['at-most-once', 'at-least-once', 'exactly-once'];

/** The wire code of each delivery (TopicMessage.delivery; 0 is at-most-once, the default). */
export const DeliveryCode = { AtMostOnce: 0, AtLeastOnce: 1, ExactlyOnce: 2 } as const;
export type DeliveryCode = (typeof DeliveryCode)[keyof typeof DeliveryCode];

const CODE_OF: Record<Delivery, DeliveryCode> = {
  'at-most-once': DeliveryCode.AtMostOnce,
  'at-least-once': DeliveryCode.AtLeastOnce,
  'exactly-once': DeliveryCode.ExactlyOnce,
};

export function deliveryCode(delivery: Delivery): DeliveryCode {
  return CODE_OF[delivery];
}

/** The delivery a wire code names; an unknown one is RDB_USAGE. */
export function deliveryOf(code: number | undefined): Delivery {
  const found = DELIVERIES.find((delivery) => CODE_OF[delivery] === (code ?? 0));
  if (found === undefined) throw new RdbnetError(ErrorCode.Usage, `unknown delivery code ${code}`);
  return found;
}

/** Throws RDB_USAGE unless `value` names a delivery. */
export function parseDelivery(value: unknown): Delivery {
  if (typeof value === 'string' && (DELIVERIES as readonly string[]).includes(value)) {
    return value as Delivery;
  }
  throw new RdbnetError(
    ErrorCode.Usage,
    `delivery must be one of ${DELIVERIES.join(', ')}, got ${String(value)}`,
  );
}

/** Longest caller-given idempotency key in bytes. */
export const IDEMPOTENCY_KEY_BYTES_MAX = 128;

/** Throws RDB_USAGE unless `key` is a usable idempotency key. */
export function validateIdempotencyKey(key: string): string {
  if (typeof key !== 'string' || key === '') {
    throw new RdbnetError(ErrorCode.Usage, 'an idempotency key must not be empty');
  }
  if (Buffer.byteLength(key) > IDEMPOTENCY_KEY_BYTES_MAX) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `idempotency key is ${Buffer.byteLength(key)} bytes; at most ${IDEMPOTENCY_KEY_BYTES_MAX}`,
    );
  }
  return key;
}

/**
 * Errors after which the same message may be sent again: it was lost, not answered in time,
 * the connection went, or the receiver (or this node) was full for now. A refusal that the
 * same message would meet again (unknown topic, too large, forbidden, the handler's own
 * failure) is final.
 */
const RETRYABLE = new Set<string>([
  ErrorCode.RequestTimeout,
  ErrorCode.NodeUnreachable,
  ErrorCode.ConnectionClosed,
  ErrorCode.HandshakeTimeout,
  ErrorCode.IdleTimeout,
  ErrorCode.InflightLimit,
  ErrorCode.WriteQueueFull,
  ErrorCode.MemoryBudget,
  ErrorCode.RateLimited,
  ErrorCode.CircuitOpen,
  ErrorCode.QueueFull,
  // The sender's own pool of connections to the peer was busy: a later attempt may find room.
  ErrorCode.PoolExhausted,
  ErrorCode.DeadlinePassed,
]);

export function isRetryable(error: unknown): boolean {
  return isRdbnetError(error) && RETRYABLE.has(error.code);
}

/**
 * Milliseconds to wait before retry number `retry` (1 = the first retry): uniform in
 * [0, min(max, base · 2^(retry-1))] — full jitter, so senders that failed together do not
 * retry together.
 */
export function backoffMs(
  retry: number,
  limits: Pick<DataPlaneLimits, 'retryBackoffBaseMs' | 'retryBackoffMaxMs'>,
  random: Random,
): number {
  const ceiling = Math.min(
    limits.retryBackoffMaxMs,
    limits.retryBackoffBaseMs * 2 ** Math.min(retry - 1, 30),
  );
  return Math.floor(random.next() * (ceiling + 1));
}

interface WindowWaiter {
  resolve(): void;
  reject(error: unknown): void;
  timer: ReturnType<Timers['setTimer']>;
}

/**
 * Messages sent to one peer with at-least-once or exactly-once and not yet acknowledged.
 * A sender over the window waits (bounded by its deadline, and by unackedPerPeerMax waiters)
 * for a slot: a slow or unreachable receiver slows its senders down.
 */
export class UnackedWindow {
  unacked = 0;
  private readonly waiters: WindowWaiter[] = [];
  private readonly size: number;
  private readonly timers: Timers;

  constructor(size: number, timers: Timers) {
    this.size = size;
    this.timers = timers;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Takes a slot, waiting at most `waitMs`; RDB_QUEUE_FULL when it cannot. */
  async acquire(peer: string, waitMs: number): Promise<void> {
    if (this.unacked < this.size && this.waiters.length === 0) {
      this.unacked++;
      return;
    }
    if (this.waiters.length >= this.size || waitMs <= 0) {
      throw this.full(peer);
    }
    await new Promise<void>((resolve, reject) => {
      const waiter: WindowWaiter = {
        resolve,
        reject,
        timer: this.timers.setTimer(waitMs, () => {
          const at = this.waiters.indexOf(waiter);
          if (at >= 0) this.waiters.splice(at, 1);
          reject(this.full(peer));
        }),
      };
      this.waiters.push(waiter);
    });
  }

  /** Gives a slot back: to the first waiter, or to the window. */
  release(): void {
    const next = this.waiters.shift();
    if (next === undefined) {
      this.unacked--;
      return;
    }
    this.timers.clearTimer(next.timer);
    next.resolve();
  }

  private full(peer: string): RdbnetError {
    return new RdbnetError(
      ErrorCode.QueueFull,
      `${this.unacked} messages to ${peer} are not yet acknowledged (unackedPerPeerMax ${this.size}); slow down`,
    );
  }
}

interface DedupEntry {
  atMs: number;
  /** Wall clock of the answer (what the store records; 0 while the handler runs). */
  wallMs: number;
  /** The handler's outcome; shared by every copy that arrives while it runs. */
  reply: Promise<Uint8Array>;
  /** Set once the handler answered: the reply, and its size. */
  stored: Uint8Array | null;
  bytes: number | null;
}

export interface DedupStats {
  entries: number;
  replyBytes: number;
  suppressed: number;
  evicted: number;
  /** Keys loaded from the store when this process started (answered by an earlier one). */
  restored: number;
  /** Answered keys the store failed to record: deduplicated until this process ends only. */
  persistFailed: number;
}

/**
 * The receiver's memory of exactly-once messages by idempotency key: the first copy runs the
 * handler, every later copy (a retry, a network duplicate, a copy that arrives after a
 * reconnect) gets the stored reply without running it again. A handler that fails forgets the
 * key, so a retry may run it again. Bounded by entries (dedupWindowMax), age
 * (dedupWindowAgeMs) and stored reply bytes (dedupReplyBytesMax): the oldest answered entries
 * go first. An entry whose handler still runs is never evicted; a window full of those
 * refuses new keys with RDB_QUEUE_FULL.
 *
 * With a store, every answered key is recorded (dedup-store.ts) before its reply is handed
 * back — so before it is acknowledged — and the next process of this node starts with the
 * window the store holds (within the same bounds; ages by the wall clock). A key answered,
 * recorded and acknowledged is never run again by this node, kill -9 included. What a restart
 * can still repeat: a handler that finished but whose record was not yet written when the
 * process died (the instant between the two), and keys the store failed to record
 * (persistFailed). Without a store the window is in memory only.
 */
export class DedupWindow {
  private readonly entries = new Map<string, DedupEntry>();
  private replyBytes = 0;
  private suppressed = 0;
  private evicted = 0;
  private restored = 0;
  private persistFailed = 0;
  private readonly limits: DataPlaneLimits;
  private readonly clock: Clock;
  private readonly store: DedupStore | null;

  constructor(limits: DataPlaneLimits, clock: Clock, store: DedupStore | null = null) {
    this.limits = limits;
    this.clock = clock;
    this.store = store;
    if (store !== null) this.restore(store.load());
  }

  /** The window an earlier process left: answered entries, oldest first, bounds applied. */
  private restore(records: readonly DedupRecord[]): void {
    const nowMs = this.clock.nowMs();
    const wallNowMs = this.clock.wallMs();
    for (const record of records) {
      const ageMs = Math.max(0, wallNowMs - record.wallMs);
      if (ageMs > this.limits.dedupWindowAgeMs) continue;
      const known = this.entries.get(record.key);
      if (known !== undefined) {
        // A key recorded again (after a rewrite raced nothing; defensive): keep the newest.
        this.entries.delete(record.key);
        this.replyBytes -= known.bytes ?? 0;
      }
      this.entries.set(record.key, {
        atMs: nowMs - ageMs,
        wallMs: record.wallMs,
        reply: Promise.resolve(record.reply),
        stored: record.reply,
        bytes: record.reply.length,
      });
      this.replyBytes += record.reply.length;
    }
    this.evict(0);
    this.restored = this.entries.size;
  }

  /** Flushes and closes the store (the node stops). */
  close(): void {
    this.store?.close();
  }

  /**
   * The stored (or pending) reply of `key`, or the handler run once for it. The handler gets
   * `record`, to call with its answer as soon as it has one (before its promise resolves):
   * the key is then recorded at once.
   */
  run(
    key: string,
    handler: (record: (reply: Uint8Array) => void) => Promise<Uint8Array>,
  ): Promise<Uint8Array> {
    this.evict(1);
    const known = this.entries.get(key);
    if (known !== undefined) {
      this.suppressed++;
      return known.reply;
    }
    if (this.entries.size >= this.limits.dedupWindowMax) {
      throw new RdbnetError(
        ErrorCode.QueueFull,
        `the deduplication window holds ${this.entries.size} messages still running (dedupWindowMax); slow down`,
      );
    }
    const entry: DedupEntry = {
      atMs: this.clock.nowMs(),
      wallMs: 0,
      reply: Promise.resolve(new Uint8Array(0)),
      stored: null,
      bytes: null,
    };
    this.entries.set(key, entry);
    // The reply is handed back only after answered() recorded it: nothing is acknowledged
    // that a restart would forget.
    entry.reply = handler((reply) => this.answered(key, entry, reply)).then(
      (reply) => {
        this.answered(key, entry, reply);
        return reply;
      },
      (error: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        throw error;
      },
    );
    return entry.reply;
  }

  private answered(key: string, entry: DedupEntry, reply: Uint8Array): void {
    if (this.entries.get(key) !== entry || entry.stored !== null) return;
    entry.wallMs = this.clock.wallMs();
    entry.stored = reply;
    entry.bytes = reply.length;
    this.replyBytes += reply.length;
    if (this.store !== null) {
      try {
        this.store.append({ key, wallMs: entry.wallMs, reply });
      } catch {
        // The handler ran: failing its reply would only make the sender retry into this same
        // entry. It stays deduplicated for this process; counted, and shown in the stats.
        this.persistFailed++;
      }
    }
    this.evict(0);
    this.compact();
  }

  /** Rewrites the store with the live window once it holds a window's worth of dead records. */
  private compact(): void {
    const store = this.store;
    if (store === null || store.appendedSinceRewrite < this.limits.dedupWindowMax) return;
    const live: DedupRecord[] = [];
    for (const [key, entry] of this.entries) {
      if (entry.stored !== null) live.push({ key, wallMs: entry.wallMs, reply: entry.stored });
    }
    try {
      store.rewrite(live);
    } catch {
      this.persistFailed++;
    }
  }

  stats(): DedupStats {
    return {
      entries: this.entries.size,
      replyBytes: this.replyBytes,
      suppressed: this.suppressed,
      evicted: this.evicted,
      restored: this.restored,
      persistFailed: this.persistFailed,
    };
  }

  /** Drops the oldest answered entries while a bound is exceeded (keeping room for
   * `reserve` more entries) or they are too old. */
  private evict(reserve: number): void {
    const oldestAllowedMs = this.clock.nowMs() - this.limits.dedupWindowAgeMs;
    for (const [key, entry] of this.entries) {
      const over =
        this.entries.size + reserve > this.limits.dedupWindowMax ||
        this.replyBytes > this.limits.dedupReplyBytesMax ||
        entry.atMs < oldestAllowedMs;
      if (!over || entry.bytes === null) return;
      this.entries.delete(key);
      this.replyBytes -= entry.bytes;
      this.evicted++;
    }
  }
}
