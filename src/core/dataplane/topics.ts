/**
 * Topics on one node: handlers registered by name (bounded in count and name length) and the
 * one bounded queue every inbound message waits in for a handler. A full queue refuses with
 * RDB_QUEUE_FULL (the sender slows down); a message whose deadline passes while it waits is
 * dropped with RDB_DEADLINE_PASSED, counted, and answered with that error.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { Clock, Counters } from '../runtime/index.ts';
import { timersOf } from '../runtime/index.ts';
import type { DataPlaneLimits } from './limits.ts';

/** What a handler is given. */
export interface TopicDelivery {
  topic: string;
  payload: Uint8Array;
  /** The node (or, for a client's message delivered where it arrived, the client) it came from. */
  from: string;
  /** The sender's message id. */
  id: string;
  /** send (no reply goes back), request, broadcast or multicast. */
  kind: 'send' | 'request' | 'broadcast' | 'multicast';
  /** Aborted when the deadline passes or the sender stopped waiting (a quorum's straggler). */
  signal: AbortSignal;
}

/** What a handler may answer: bytes, a string (sent as UTF-8), or nothing. */
export type TopicAnswer = Uint8Array | string | undefined | null;
export type TopicHandler = (delivery: TopicDelivery) => TopicAnswer | Promise<TopicAnswer>;

/** Every node answers this topic with the payload it was sent. */
export const ECHO_TOPIC = 'echo';

const TOPIC_NAME = /^[A-Za-z0-9._:/-]+$/;

/** Throws RDB_TOPIC_INVALID unless `topic` is a name the node could register. */
export function validateTopicName(
  topic: string,
  limits: Pick<DataPlaneLimits, 'topicNameBytesMax'>,
): string {
  if (typeof topic !== 'string' || topic === '') {
    throw new RdbnetError(ErrorCode.TopicInvalid, 'a topic name is required');
  }
  if (Buffer.byteLength(topic) > limits.topicNameBytesMax) {
    throw new RdbnetError(
      ErrorCode.TopicInvalid,
      `topic name is ${Buffer.byteLength(topic)} bytes; at most ${limits.topicNameBytesMax}`,
    );
  }
  if (!TOPIC_NAME.test(topic)) {
    throw new RdbnetError(
      ErrorCode.TopicInvalid,
      `topic "${topic}" may hold only letters, digits and . _ : / -`,
    );
  }
  return topic;
}

export function answerBytes(answer: TopicAnswer): Uint8Array {
  if (answer === undefined || answer === null) return new Uint8Array(0);
  if (typeof answer === 'string') return new TextEncoder().encode(answer);
  return answer;
}

function isThenable(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

interface Waiting {
  delivery: TopicDelivery;
  handler: TopicHandler;
  deadlineAtMs: number;
  controller: AbortController;
  resolve(reply: Uint8Array): void;
  reject(error: unknown): void;
  onAnswer: ((reply: Uint8Array) => void) | undefined;
}

export interface TopicQueueStats {
  topics: number;
  queued: number;
  running: number;
  delivered: number;
  refusedQueueFull: number;
  expired: number;
  failed: number;
}

export class TopicRegistry {
  private readonly handlers = new Map<string, TopicHandler>();
  private readonly waiting: Waiting[] = [];
  private running = 0;
  private readonly limits: DataPlaneLimits;
  private readonly clock: Clock;
  private readonly counters: Counters | undefined;
  private delivered = 0;
  private refusedQueueFull = 0;
  private expired = 0;
  private failed = 0;

  constructor(limits: DataPlaneLimits, clock: Clock, counters?: Counters) {
    this.limits = limits;
    this.clock = clock;
    this.counters = counters;
    this.handlers.set(ECHO_TOPIC, ({ payload }) => payload);
  }

  /** Registers (or replaces) the handler of `topic`; returns a function that removes it. */
  register(topic: string, handler: TopicHandler): () => void {
    validateTopicName(topic, this.limits);
    if (!this.handlers.has(topic) && this.handlers.size >= this.limits.topicsMax) {
      throw new RdbnetError(
        ErrorCode.TopicInvalid,
        `this node has ${this.handlers.size} topics already; topicsMax is ${this.limits.topicsMax}`,
      );
    }
    this.handlers.set(topic, handler);
    return () => {
      if (this.handlers.get(topic) === handler) this.handlers.delete(topic);
    };
  }

  get names(): string[] {
    return [...this.handlers.keys()].sort();
  }

  /**
   * Queues a delivery for its topic's handler. `accepted` resolves as soon as the queue has
   * taken it (what `send` acknowledges); `reply` when the handler answered. Refuses at once,
   * before anything is queued: an unknown topic, an oversize payload, a full queue.
   * `onAnswer` is called with the handler's answer as soon as there is one — in the same
   * synchronous stretch as a handler that returns a value — before `reply` resolves: what
   * must be recorded with the handler's work (exactly-once's dedup log) leaves no gap of a
   * whole batch of handlers for a kill -9 to fall into.
   */
  enqueue(
    delivery: Omit<TopicDelivery, 'signal'>,
    deadlineAtMs: number,
    outerSignal?: AbortSignal,
    onAnswer?: (reply: Uint8Array) => void,
  ): { reply: Promise<Uint8Array> } {
    const handler = this.handlers.get(delivery.topic);
    if (handler === undefined) {
      this.counters?.increment('dataplane.topic_unknown');
      throw new RdbnetError(
        ErrorCode.TopicUnknown,
        `no handler for topic "${delivery.topic}" on this node`,
      );
    }
    if (delivery.payload.length > this.limits.messageBytesMax) {
      throw new RdbnetError(
        ErrorCode.MessageTooLarge,
        `payload is ${delivery.payload.length} bytes; messageBytesMax is ${this.limits.messageBytesMax}`,
      );
    }
    if (this.waiting.length >= this.limits.queueDepthMax) {
      this.refusedQueueFull++;
      this.counters?.increment('dataplane.queue_full');
      throw new RdbnetError(
        ErrorCode.QueueFull,
        `the topic queue holds ${this.waiting.length} messages (queueDepthMax); slow down`,
      );
    }
    const controller = new AbortController();
    if (outerSignal !== undefined) {
      if (outerSignal.aborted) controller.abort(outerSignal.reason);
      else
        outerSignal.addEventListener('abort', () => controller.abort(outerSignal.reason), {
          once: true,
        });
    }
    let resolve!: (reply: Uint8Array) => void;
    let reject!: (error: unknown) => void;
    const reply = new Promise<Uint8Array>((ok, fail) => {
      resolve = ok;
      reject = fail;
    });
    this.waiting.push({
      delivery: { ...delivery, signal: controller.signal },
      handler,
      deadlineAtMs,
      controller,
      resolve,
      reject,
      onAnswer,
    });
    this.pump();
    return { reply };
  }

  private pump(): void {
    while (this.running < this.limits.handlersConcurrentMax && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      const leftMs = next.deadlineAtMs - this.clock.nowMs();
      if (leftMs <= 0 || next.controller.signal.aborted) {
        this.expired++;
        this.counters?.increment('dataplane.expired');
        next.controller.abort();
        next.reject(
          new RdbnetError(
            ErrorCode.DeadlinePassed,
            `the deadline passed while the message waited in the queue of topic "${next.delivery.topic}"`,
          ),
        );
        continue;
      }
      this.run(next, leftMs);
    }
  }

  private run(item: Waiting, leftMs: number): void {
    this.running++;
    const timers = timersOf(this.clock);
    let settled = false;
    const finish = (): void => {
      settled = true;
      timers.clearTimer(timer);
      this.running--;
      this.pump();
    };
    // The handler is told (its signal) and the waiter answered when the deadline passes; a
    // handler that ignores its signal still holds its slot until it returns.
    const timer = timers.setTimer(leftMs, () => {
      if (settled) return;
      this.expired++;
      this.counters?.increment('dataplane.expired');
      item.controller.abort();
      item.reject(
        new RdbnetError(
          ErrorCode.DeadlinePassed,
          `the handler of topic "${item.delivery.topic}" did not answer within ${Math.round(leftMs)} ms`,
        ),
      );
    });
    let result: ReturnType<TopicHandler>;
    try {
      result = item.handler(item.delivery);
    } catch (error) {
      this.failed++;
      finish();
      item.reject(error);
      return;
    }
    // A value (not a promise) is the answer now: recorded before the next handler runs.
    let early: Uint8Array | null = null;
    if (item.onAnswer !== undefined && !isThenable(result)) {
      early = answerBytes(result as TopicAnswer);
      item.onAnswer(early);
    }
    Promise.resolve(result).then(
      (answer) => {
        if (!item.controller.signal.aborted) {
          this.delivered++;
          const bytes = early ?? answerBytes(answer);
          if (early === null) item.onAnswer?.(bytes);
          item.resolve(bytes);
        }
        finish();
      },
      (error: unknown) => {
        this.failed++;
        item.reject(error);
        finish();
      },
    );
  }

  stats(): TopicQueueStats {
    return {
      topics: this.handlers.size,
      queued: this.waiting.length,
      running: this.running,
      delivered: this.delivered,
      refusedQueueFull: this.refusedQueueFull,
      expired: this.expired,
      failed: this.failed,
    };
  }
}
