/**
 * Delivery guarantees beneath the routing patterns: which errors a retry may cure, the
 * backoff between attempts (exponential with full jitter), the per-peer window of messages
 * sent and not yet acknowledged (backpressure), and the receiver's deduplication window for
 * exactly-once (bounded by count, age and stored reply bytes; in memory only, so it survives
 * a reconnect but not a restart of the receiving process).
 */
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import type { Clock, Random, Timers } from '../runtime/index.ts';
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
  /** The handler's outcome; shared by every copy that arrives while it runs. */
  reply: Promise<Uint8Array>;
  /** Set once the handler answered: the stored reply's size. */
  bytes: number | null;
}

export interface DedupStats {
  entries: number;
  replyBytes: number;
  suppressed: number;
  evicted: number;
}

/**
 * The receiver's memory of exactly-once messages by idempotency key: the first copy runs the
 * handler, every later copy (a retry, a network duplicate, a copy that arrives after a
 * reconnect) gets the stored reply without running it again. A handler that fails forgets the
 * key, so a retry may run it again. Bounded by entries (dedupWindowMax), age
 * (dedupWindowAgeMs) and stored reply bytes (dedupReplyBytesMax): the oldest answered entries
 * go first. An entry whose handler still runs is never evicted; a window full of those
 * refuses new keys with RDB_QUEUE_FULL. In memory only: lost when the process ends.
 */
export class DedupWindow {
  private readonly entries = new Map<string, DedupEntry>();
  private replyBytes = 0;
  private suppressed = 0;
  private evicted = 0;
  private readonly limits: DataPlaneLimits;
  private readonly clock: Clock;

  constructor(limits: DataPlaneLimits, clock: Clock) {
    this.limits = limits;
    this.clock = clock;
  }

  /** The stored (or pending) reply of `key`, or the handler run once for it. */
  run(key: string, handler: () => Promise<Uint8Array>): Promise<Uint8Array> {
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
    const entry: DedupEntry = { atMs: this.clock.nowMs(), reply: handler(), bytes: null };
    this.entries.set(key, entry);
    entry.reply.then(
      (reply) => {
        if (this.entries.get(key) !== entry) return;
        entry.bytes = reply.length;
        this.replyBytes += reply.length;
        this.evict(0);
      },
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    return entry.reply;
  }

  stats(): DedupStats {
    return {
      entries: this.entries.size,
      replyBytes: this.replyBytes,
      suppressed: this.suppressed,
      evicted: this.evicted,
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
