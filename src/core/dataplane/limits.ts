/**
 * The data plane's bounds (ARCHITECTURE.md practice 4): every table, queue and wait has a
 * named limit with a documented default and a defined overflow behaviour.
 */
import { ConfigFieldError } from '../errors.ts';

export interface DataPlaneLimits {
  /** Topics a node may register (the built-in `echo` included). One more is
   * RDB_TOPIC_INVALID. Default 256. */
  topicsMax: number;
  /** Longest topic name in bytes. Default 128. */
  topicNameBytesMax: number;
  /** Largest payload of one message, either way. A larger one is refused with
   * RDB_MESSAGE_TOO_LARGE before it is sent (and again by the receiver). Default 1 MiB. */
  messageBytesMax: number;
  /** Messages waiting for a handler on this node, over every topic. One more is refused with
   * RDB_QUEUE_FULL: the sender learns it must slow down (backpressure). Default 1024. */
  queueDepthMax: number;
  /** Handlers running at once on this node; the rest wait in the queue. Default 64. */
  handlersConcurrentMax: number;
  /** Messages this node has sent and not yet seen answered. One more is refused at once
   * with RDB_QUEUE_FULL. Default 4096. */
  outboundInflightMax: number;
  /** Deadline of a message that names none. Default 5000 ms. */
  deadlineDefaultMs: number;
  /** Longest deadline a message may ask for. Default 60000 ms. */
  deadlineMaxMs: number;
  /** Requests fanOut (and broadcast, multicast, scatterGather, quorum) keep in flight at
   * once, unless the call asks for fewer. Default 32. */
  fanOutConcurrencyMax: number;
  /** Groups a node may belong to (node config `groups`, gossiped in its metadata). Default 8. */
  groupsMax: number;
  /** Longest group name in bytes. Default 32 (groups travel in gossip's 512-byte metadata). */
  groupNameBytesMax: number;
  /** at-least-once and exactly-once: attempts to get one message acknowledged (the first
   * send and its retries), all within the message's deadline. Then RDB_DELIVERY_FAILED.
   * Default 10. */
  deliveryAttemptsMax: number;
  /** How long one attempt waits for its acknowledgement before it is retried (never past
   * the message's deadline). Default 2000 ms. */
  attemptTimeoutMs: number;
  /** Backoff before retry n is uniform in [0, min(retryBackoffMaxMs, retryBackoffBaseMs ·
   * 2^(n-1))] (full jitter). Defaults 20 ms and 2000 ms. */
  retryBackoffBaseMs: number;
  retryBackoffMaxMs: number;
  /** at-least-once and exactly-once messages to one peer sent and not yet acknowledged; a
   * sender over it waits (until its deadline, at most this many waiters) for a slot, then
   * RDB_QUEUE_FULL. Default 1024. */
  unackedPerPeerMax: number;
  /** exactly-once: idempotency keys the receiver remembers (with their replies). Default
   * 100000. */
  dedupWindowMax: number;
  /** exactly-once: how long the receiver remembers a key; longer than deadlineMaxMs, so no
   * retry of a message outlives its key by age. Default 300000 ms (5 minutes). */
  dedupWindowAgeMs: number;
  /** exactly-once: bytes of stored replies the window may hold. Default 64 MiB. */
  dedupReplyBytesMax: number;
}

export const DATA_PLANE_LIMITS_DEFAULT: Readonly<DataPlaneLimits> = Object.freeze({
  topicsMax: 256,
  topicNameBytesMax: 128,
  messageBytesMax: 1024 * 1024,
  queueDepthMax: 1024,
  handlersConcurrentMax: 64,
  outboundInflightMax: 4096,
  deadlineDefaultMs: 5000,
  deadlineMaxMs: 60_000,
  fanOutConcurrencyMax: 32,
  groupsMax: 8,
  groupNameBytesMax: 32,
  deliveryAttemptsMax: 10,
  attemptTimeoutMs: 2000,
  retryBackoffBaseMs: 20,
  retryBackoffMaxMs: 2000,
  unackedPerPeerMax: 1024,
  dedupWindowMax: 100_000,
  dedupWindowAgeMs: 300_000,
  dedupReplyBytesMax: 64 * 1024 * 1024,
});

/** The defaults with `overrides`; a bad value is RDB_CONFIG_INVALID naming the field. */
export function dataPlaneLimits(overrides: Partial<DataPlaneLimits> = {}): DataPlaneLimits {
  const limits = { ...DATA_PLANE_LIMITS_DEFAULT, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new ConfigFieldError(name, `must be a positive integer, got ${value}`);
    }
  }
  if (limits.deadlineDefaultMs > limits.deadlineMaxMs) {
    throw new ConfigFieldError(
      'deadlineDefaultMs',
      `must be at most deadlineMaxMs (${limits.deadlineMaxMs}), got ${limits.deadlineDefaultMs}`,
    );
  }
  if (limits.retryBackoffBaseMs > limits.retryBackoffMaxMs) {
    throw new ConfigFieldError(
      'retryBackoffBaseMs',
      `must be at most retryBackoffMaxMs (${limits.retryBackoffMaxMs}), got ${limits.retryBackoffBaseMs}`,
    );
  }
  if (limits.dedupWindowAgeMs <= limits.deadlineMaxMs) {
    throw new ConfigFieldError(
      'dedupWindowAgeMs',
      `must be longer than deadlineMaxMs (${limits.deadlineMaxMs}), got ${limits.dedupWindowAgeMs}`,
    );
  }
  return limits;
}
