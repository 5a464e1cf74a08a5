/**
 * The data plane of one node: messages to topics, node to node and from clients, routed by
 * the node's gossip membership. One service with every face over it — the admin API answers
 * TopicMessage and PingRequest with handle() and ping(), the library calls the routing
 * patterns directly (send, request, broadcast, multicast, scatterGather, quorum, fanOut).
 *
 * Delivery, per message, beneath every pattern (src/core/dataplane/delivery.ts):
 * - at-most-once (the default): sent once; its acknowledgement (send: the receiver's queue
 *   took it; request: the handler answered) or a typed error comes back.
 * - at-least-once: acknowledged only after the receiver's handler accepted it (returned
 *   without throwing); retried with exponential backoff and full jitter across reconnects,
 *   within deliveryAttemptsMax attempts and the message's deadline, at most
 *   unackedPerPeerMax unacknowledged per peer (backpressure). Then RDB_DELIVERY_FAILED.
 * - exactly-once: as at-least-once, with an idempotency key per message; the receiver's
 *   deduplication window runs the handler once per key and answers every copy with the
 *   stored reply. With a dedupStore (the node's data dir) the window survives a restart of
 *   the receiver, kill -9 included (docs/dataplane.md, "What survives a restart").
 */
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import { type MemberCandidate, selectFromMembers } from '../lb/select.ts';
import type { StrategyName } from '../lb/strategy.ts';
import {
  type PingReply,
  type PingRequest,
  type PingRtt,
  TopicKindCode,
  type TopicMessage,
  type TopicMiss,
  type TopicReply,
} from '../protocol/messages.ts';
import { type PeerTransport, peerSender } from '../rpc/peer.ts';
import { request } from '../rpc/request.ts';
import {
  type Clock,
  type Counters,
  type Random,
  randomUuid,
  sleep,
  systemClock,
  systemRandom,
  type Timers,
  timersOf,
} from '../runtime/index.ts';
import {
  Priority,
  type PriorityName,
  parsePriority,
  priorityFromWire,
  priorityName,
  priorityToWire,
} from '../transport/priority.ts';
import type { DedupStore } from './dedup-store.ts';
import {
  backoffMs,
  DedupWindow,
  type Delivery,
  DeliveryCode,
  deliveryCode,
  deliveryOf,
  isRetryable,
  parseDelivery,
  UnackedWindow,
  validateIdempotencyKey,
} from './delivery.ts';
import type { DataPlaneLimits } from './limits.ts';
import {
  ECHO_TOPIC,
  type TopicDelivery,
  type TopicHandler,
  TopicRegistry,
  validateTopicName,
} from './topics.ts';

/** Message kinds by TopicKindCode, as counters and metrics name them. */
export const TOPIC_KIND_NAMES = ['send', 'request', 'broadcast', 'multicast'] as const;
/** builtin: the node's own topics (echo); user: every topic a program registered. */
export type TopicClass = 'builtin' | 'user';

/** The node counter of messages received of `kind` to a topic of `topicClass`. */
export function receivedCounterName(kind: string, topicClass: TopicClass): string {
  return `dataplane.received.${kind}.${topicClass}`;
}

/** Built once, so counting a received message allocates no name. */
const RECEIVED_COUNTERS = TOPIC_KIND_NAMES.map((kind) => ({
  builtin: receivedCounterName(kind, 'builtin'),
  user: receivedCounterName(kind, 'user'),
}));

/** A member as the data plane routes to it (from the node's gossip view). */
export interface DataPlaneMember {
  id: string;
  /** host:port of its binary protocol. */
  address: string;
  /** alive, suspect, dead or left. */
  state: string;
  groups: readonly string[];
  score: number;
  rttMs: number | null;
  isSelf: boolean;
}

/**
 * Who a message goes to: a node id, several, every alive member of a group, nodes chosen by
 * a load-balancing strategy (src/core/lb) over the alive members, or every alive member.
 */
export type Target =
  | string
  | { id: string }
  | { ids: readonly string[] }
  | { group: string }
  | { strategy: StrategyName; key?: string; count?: number }
  | { all: true };

export type { Delivery } from './delivery.ts';

export interface MessageOptions {
  /** Milliseconds from the call until the answer must be back. Default deadlineDefaultMs. */
  deadlineMs?: number;
  /** Default at-most-once. */
  delivery?: Delivery;
  /** exactly-once only: the key the receiver deduplicates on (at most 128 bytes); by default
   * this node's id, a per-process id and a sequence number. */
  idempotencyKey?: string;
  /** Stops waiting (the straggler of a quorum); a local handler sees its signal aborted. */
  signal?: AbortSignal;
  /** critical, high, normal (the default) or low: how the message and its reply are scheduled
   * on every connection they cross (a large message goes in chunks; chunks of more urgent
   * messages go first, weighted so that low still moves). */
  priority?: PriorityName;
}

export interface ManyOptions extends MessageOptions {
  /** Requests in flight at once; default and ceiling fanOutConcurrencyMax. */
  concurrency?: number;
}

export interface SendResult {
  to: string;
}
export interface RequestResult {
  from: string;
  reply: Uint8Array;
  latencyMs: number;
}
export interface AckResult {
  acked: string[];
  missing: TopicMiss[];
}
export interface GatherResult {
  responses: { id: string; reply: Uint8Array }[];
  missing: TopicMiss[];
  /** Some target did not answer, or was no longer waited for (the caller stopped). */
  partial: boolean;
}
export interface QuorumResult {
  acked: string[];
  /** Targets that had not answered when the quorum was reached: no longer waited for. */
  cancelled: string[];
  missing: TopicMiss[];
  replies: { id: string; reply: Uint8Array }[];
}

/** A quorum or scatter-gather that fell short; `result` holds what did come back. */
export class QuorumError extends RdbnetError {
  readonly result: GatherResult;
  constructor(message: string, result: GatherResult) {
    super(ErrorCode.QuorumNotReached, message);
    this.name = 'QuorumError';
    this.result = result;
  }
}

export interface DataPlaneInit {
  selfId: string;
  limits: DataPlaneLimits;
  /** The node's current gossip view, itself included. */
  members(): readonly DataPlaneMember[];
  /** Node-to-node requests (the node's own PeerLinks in production). */
  peers: PeerTransport;
  clock?: Clock;
  random?: Random;
  counters?: Counters;
  /** Where answered exactly-once keys are recorded so that a restart does not run them again;
   * none: the window lives in memory and dies with the process. */
  dedupStore?: DedupStore;
}

/** Bytes sent with each RTT probe. */
const PING_PAYLOAD_BYTES = 16;

/** An absent bytes field decodes as protobufjs's shared empty array, not a Uint8Array. */
export function bytesOf(field: Uint8Array | undefined | null): Uint8Array {
  return field instanceof Uint8Array ? field : new Uint8Array(field ?? 0);
}

/** How one message is to be delivered (checked options, with its key when exactly-once). */
interface Guarantee {
  delivery: Delivery;
  /** exactly-once: the caller's key, or null for one this node makes. */
  key: string | null;
  priority: Priority;
}

const AT_MOST_ONCE: Guarantee = { delivery: 'at-most-once', key: null, priority: Priority.Normal };

interface ManyOutcome {
  ok: { id: string; reply: Uint8Array }[];
  missing: TopicMiss[];
  cancelled: string[];
}

/** A member messages may be sent to: this node, or one gossip calls alive or suspect. */
function isLive(member: DataPlaneMember): boolean {
  return member.isSelf || member.state === 'alive' || member.state === 'suspect';
}

const KIND_NAMES: Record<number, TopicDelivery['kind']> = {
  [TopicKindCode.Send]: 'send',
  [TopicKindCode.Request]: 'request',
  [TopicKindCode.Broadcast]: 'broadcast',
  [TopicKindCode.Multicast]: 'multicast',
};

export class DataPlane {
  readonly topics: TopicRegistry;
  private readonly init: DataPlaneInit;
  private readonly clock: Clock;
  private readonly random: Random;
  private outbound = 0;
  private readonly counters: Counters | undefined;
  private readonly timers: Timers;
  /** The receiver's exactly-once memory (survives reconnects; a restart too with a store). */
  private readonly dedup: DedupWindow;
  /** at-least-once and exactly-once messages unacknowledged, by peer id. */
  private readonly windows = new Map<string, UnackedWindow>();
  /** This process's part of the keys it makes: keys of an earlier run never collide. */
  private readonly incarnation: string;
  private sequence = 0;
  private retries = 0;
  private deliveryFailed = 0;
  private reliableAcked = 0;

  constructor(init: DataPlaneInit) {
    this.init = init;
    this.clock = init.clock ?? systemClock;
    this.timers = timersOf(this.clock);
    this.random = init.random ?? systemRandom;
    this.counters = init.counters;
    this.topics = new TopicRegistry(init.limits, this.clock, init.counters);
    this.dedup = new DedupWindow(init.limits, this.clock, init.dedupStore ?? null);
    this.incarnation = randomUuid(this.random).slice(0, 8);
  }

  get limits(): DataPlaneLimits {
    return this.init.limits;
  }

  /** Flushes the exactly-once store to disk and closes it (the node stops). */
  close(): void {
    this.dedup.close();
  }

  register(topic: string, handler: TopicHandler): () => void {
    return this.topics.register(topic, handler);
  }

  // ---- the routing patterns

  /** One way: resolves once the target's topic queue has taken the message. */
  async send(
    target: Target,
    topic: string,
    payload: Uint8Array | string,
    options: MessageOptions = {},
  ): Promise<SendResult> {
    const { bytes, deadlineAtMs, guarantee } = this.check(topic, payload, options);
    const member = this.single(target);
    await this.deliver(
      member,
      topic,
      bytes,
      TopicKindCode.Send,
      deadlineAtMs,
      options.signal,
      guarantee,
    );
    return { to: member.id };
  }

  /** Resolves with the target handler's reply, or a typed error (RDB_DEADLINE_PASSED …). */
  async request(
    target: Target,
    topic: string,
    payload: Uint8Array | string,
    options: MessageOptions = {},
  ): Promise<RequestResult> {
    const startedMs = this.clock.nowMs();
    const { bytes, deadlineAtMs, guarantee } = this.check(topic, payload, options);
    const member = this.single(target);
    const reply = await this.deliver(
      member,
      topic,
      bytes,
      TopicKindCode.Request,
      deadlineAtMs,
      options.signal,
      guarantee,
    );
    return { from: member.id, reply, latencyMs: this.clock.nowMs() - startedMs };
  }

  /** To every live member (alive or suspect; this node too): who acknowledged, who did not
   * and why. Members gossip has declared dead or left are not sent to. */
  async broadcast(
    topic: string,
    payload: Uint8Array | string,
    options: ManyOptions = {},
  ): Promise<AckResult> {
    return this.acknowledged({ all: true }, topic, payload, options);
  }

  /** To every alive member of `group` (node config `groups`, learned through gossip). */
  async multicast(
    group: string,
    topic: string,
    payload: Uint8Array | string,
    options: ManyOptions = {},
  ): Promise<AckResult> {
    return this.acknowledged({ group }, topic, payload, options);
  }

  /**
   * A request to each target; waits for every answer or the deadline. At least
   * `minResponses` answers (default: all) or QuorumError with the partial result.
   */
  async scatterGather(
    targets: Target,
    topic: string,
    payload: Uint8Array | string,
    options: ManyOptions & { minResponses?: number } = {},
  ): Promise<GatherResult> {
    const { bytes, deadlineAtMs, guarantee } = this.check(topic, payload, options);
    const members = this.many(targets);
    const minResponses = options.minResponses ?? members.length;
    this.checkCount('minResponses', minResponses, members.length);
    // One message to many: one id for all its copies (and no id to make per target).
    const id = randomUuid(this.random);
    const outcome = await this.runMany(members, {
      concurrency: this.concurrency(options),
      stopAfter: members.length,
      call: (member, signal) =>
        this.deliver(
          member,
          topic,
          bytes,
          TopicKindCode.Request,
          deadlineAtMs,
          signal,
          guarantee,
          id,
        ),
      signal: options.signal,
    });
    const result: GatherResult = {
      responses: outcome.ok,
      missing: outcome.missing,
      partial: outcome.missing.length + outcome.cancelled.length > 0,
    };
    if (result.responses.length < minResponses) {
      throw new QuorumError(
        `${result.responses.length} of ${members.length} answered; ${minResponses} needed`,
        result,
      );
    }
    return result;
  }

  /**
   * Requests to N targets, resolved once `acks` (W) of them answered: the stragglers are no
   * longer waited for (a local handler's signal is aborted; a remote answer is dropped).
   */
  async quorum(
    targets: Target,
    topic: string,
    payload: Uint8Array | string,
    options: ManyOptions & { acks: number },
  ): Promise<QuorumResult> {
    const { bytes, deadlineAtMs, guarantee } = this.check(topic, payload, options);
    const members = this.many(targets);
    this.checkCount('acks', options.acks, members.length);
    const outcome = await this.runMany(members, {
      concurrency: this.concurrency(options),
      stopAfter: options.acks,
      call: (member, signal) =>
        this.deliver(member, topic, bytes, TopicKindCode.Request, deadlineAtMs, signal, guarantee),
      signal: options.signal,
    });
    if (outcome.ok.length < options.acks) {
      throw new QuorumError(
        `${outcome.ok.length} of ${members.length} acknowledged; ${options.acks} needed`,
        { responses: outcome.ok, missing: outcome.missing, partial: true },
      );
    }
    this.counters?.increment('dataplane.quorum.cancelled', outcome.cancelled.length);
    return {
      acked: outcome.ok.map((answer) => answer.id),
      cancelled: outcome.cancelled,
      missing: outcome.missing,
      replies: outcome.ok,
    };
  }

  /** A request to every target, at most `concurrency` in flight; every answer or miss. */
  async fanOut(
    targets: Target,
    topic: string,
    payload: Uint8Array | string,
    options: ManyOptions = {},
  ): Promise<GatherResult> {
    const { bytes, deadlineAtMs, guarantee } = this.check(topic, payload, options);
    const members = this.many(targets);
    const outcome = await this.runMany(members, {
      concurrency: this.concurrency(options),
      stopAfter: members.length,
      call: (member, signal) =>
        this.deliver(member, topic, bytes, TopicKindCode.Request, deadlineAtMs, signal, guarantee),
      signal: options.signal,
    });
    return {
      responses: outcome.ok,
      missing: outcome.missing,
      partial: outcome.missing.length + outcome.cancelled.length > 0,
    };
  }

  /** RTTs measured here: to one member, or to every alive member. */
  async rtts(to: string | null): Promise<PingRtt[]> {
    const members =
      to === null
        ? this.alive().filter((member) => !member.isSelf)
        : [this.single(to)].filter((member) => !member.isSelf);
    const rows: PingRtt[] = [];
    await this.runMany(members, {
      concurrency: this.init.limits.fanOutConcurrencyMax,
      stopAfter: members.length,
      call: async (member) => {
        rows.push(await this.measure(member));
        return new Uint8Array(0);
      },
    });
    return rows.sort((a, b) => a.to.localeCompare(b.to));
  }

  // ---- the faces: what the admin API answers

  /** A TopicMessage from a client or a member (`fromName`: its certificate's name). */
  async handle(received: TopicMessage, fromName: string): Promise<TopicReply> {
    const limits = this.init.limits;
    // Decoded messages keep proto3 defaults on their prototype: copied field by field.
    const message: TopicMessage = {
      topic: received.topic,
      payload: bytesOf(received.payload),
      deadlineMs: received.deadlineMs,
      id: received.id,
      kind: received.kind,
      to: received.to,
      group: received.group,
      forwarded: received.forwarded,
      delivery: received.delivery ?? DeliveryCode.AtMostOnce,
      idempotencyKey: received.idempotencyKey ?? '',
    };
    const receivedCounters = RECEIVED_COUNTERS[message.kind];
    if (receivedCounters !== undefined) {
      this.init.counters?.increment(
        message.topic === ECHO_TOPIC ? receivedCounters.builtin : receivedCounters.user,
      );
    }
    if (message.deadlineMs > limits.deadlineMaxMs) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `deadline ${message.deadlineMs} ms is longer than deadlineMaxMs (${limits.deadlineMaxMs})`,
      );
    }
    const delivery = deliveryOf(message.delivery);
    if (message.idempotencyKey !== '' && delivery !== 'exactly-once') {
      throw new RdbnetError(ErrorCode.Usage, 'an idempotency key needs exactly-once delivery');
    }
    const options: MessageOptions = {
      deadlineMs: message.deadlineMs || limits.deadlineDefaultMs,
      delivery,
      priority: priorityName(priorityFromWire(received.priority)),
      ...(message.idempotencyKey === '' ? {} : { idempotencyKey: message.idempotencyKey }),
    };
    const empty: TopicReply = { payload: new Uint8Array(0), from: '', acked: [], missing: [] };
    switch (message.kind) {
      case TopicKindCode.Send:
      case TopicKindCode.Request: {
        const here = message.to === '' || message.to === this.init.selfId;
        if (!here && message.forwarded) {
          throw new RdbnetError(
            ErrorCode.TargetUnknown,
            `a message for ${message.to} reached ${this.init.selfId}`,
          );
        }
        if (message.kind === TopicKindCode.Send) {
          if (here) {
            const checked = this.check(message.topic, message.payload, options);
            await this.receive(message, fromName, checked);
            return { ...empty, from: this.init.selfId };
          }
          const sent = await this.send(message.to, message.topic, message.payload, options);
          return { ...empty, from: sent.to };
        }
        if (here) {
          const checked = this.check(message.topic, message.payload, options);
          const reply = await this.receive(message, fromName, checked);
          return { ...empty, payload: reply, from: this.init.selfId };
        }
        const answered = await this.request(message.to, message.topic, message.payload, options);
        return { ...empty, payload: answered.reply, from: answered.from };
      }
      case TopicKindCode.Broadcast:
      case TopicKindCode.Multicast: {
        if (message.forwarded) {
          throw new RdbnetError(ErrorCode.Usage, 'a broadcast is not forwarded twice');
        }
        const result =
          message.kind === TopicKindCode.Broadcast
            ? await this.broadcast(message.topic, message.payload, options)
            : await this.multicast(message.group, message.topic, message.payload, options);
        return { ...empty, from: this.init.selfId, acked: result.acked, missing: result.missing };
      }
      default:
        throw new RdbnetError(ErrorCode.Usage, `unknown message kind ${message.kind as number}`);
    }
  }

  /** A PingRequest: this node's RTTs, and with `all` (not forwarded) every member's. */
  async ping(asked: PingRequest): Promise<PingReply> {
    if (!asked.all) {
      if (asked.to === '') throw new RdbnetError(ErrorCode.Usage, 'ping needs a target or all');
      return { rtts: await this.rtts(asked.to) };
    }
    const own = await this.rtts(null);
    if (asked.forwarded) return { rtts: own };
    const others = this.alive().filter((member) => !member.isSelf);
    const rows: PingRtt[] = [...own];
    const deadlineMs = this.init.limits.deadlineDefaultMs;
    await this.runMany(others, {
      concurrency: this.init.limits.fanOutConcurrencyMax,
      stopAfter: others.length,
      call: async (member) => {
        try {
          const reply = await request(
            peerSender(this.init.peers, member.address),
            'pingRequest',
            { to: '', all: true, forwarded: true },
            deadlineMs,
          );
          rows.push(...reply.rtts);
        } catch (error) {
          const code = isRdbnetError(error) ? error.code : ErrorCode.Internal;
          rows.push({ from: member.id, to: '', rttMs: -1, error: code });
        }
        return new Uint8Array(0);
      },
    });
    return { rtts: rows };
  }

  stats(): Record<string, number> {
    const topics = this.topics.stats();
    const dedup = this.dedup.stats();
    let unacked = 0;
    let windowWaiting = 0;
    for (const window of this.windows.values()) {
      unacked += window.unacked;
      windowWaiting += window.waiting;
    }
    return {
      'dataplane.delivery.acked': this.reliableAcked,
      'dataplane.delivery.retries': this.retries,
      'dataplane.delivery.failed': this.deliveryFailed,
      'dataplane.delivery.unacked': unacked,
      'dataplane.delivery.unacked_waiting': windowWaiting,
      'dataplane.dedup.window': dedup.entries,
      'dataplane.dedup.reply_bytes': dedup.replyBytes,
      'dataplane.dedup.suppressed': dedup.suppressed,
      'dataplane.dedup.evicted': dedup.evicted,
      'dataplane.dedup.restored': dedup.restored,
      'dataplane.dedup.persist_failed': dedup.persistFailed,
      'dataplane.topics': topics.topics,
      'dataplane.queued': topics.queued,
      'dataplane.running': topics.running,
      'dataplane.delivered': topics.delivered,
      'dataplane.refused_queue_full': topics.refusedQueueFull,
      'dataplane.expired': topics.expired,
      'dataplane.handler_failed': topics.failed,
      'dataplane.outbound_inflight': this.outbound,
    };
  }

  // ---- inside

  /** Validates a message before anything is sent: topic, size, deadline, delivery. */
  private check(
    topic: string,
    payload: Uint8Array | string,
    options: MessageOptions,
  ): { bytes: Uint8Array; deadlineAtMs: number; guarantee: Guarantee } {
    const limits = this.init.limits;
    validateTopicName(topic, limits);
    const delivery =
      options.delivery === undefined ? 'at-most-once' : parseDelivery(options.delivery);
    let key: string | null = null;
    if (options.idempotencyKey !== undefined) {
      if (delivery !== 'exactly-once') {
        throw new RdbnetError(ErrorCode.Usage, 'an idempotency key needs exactly-once delivery');
      }
      key = validateIdempotencyKey(options.idempotencyKey);
    }
    const priority =
      options.priority === undefined ? Priority.Normal : parsePriority(options.priority);
    const guarantee =
      delivery === 'at-most-once' && priority === Priority.Normal
        ? AT_MOST_ONCE
        : { delivery, key, priority };
    const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
    if (bytes.length > limits.messageBytesMax) {
      throw new RdbnetError(
        ErrorCode.MessageTooLarge,
        `payload is ${bytes.length} bytes; messageBytesMax is ${limits.messageBytesMax}`,
      );
    }
    const deadlineMs = options.deadlineMs ?? limits.deadlineDefaultMs;
    if (!Number.isFinite(deadlineMs) || deadlineMs > limits.deadlineMaxMs) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `deadline must be at most ${limits.deadlineMaxMs} ms, got ${deadlineMs}`,
      );
    }
    if (deadlineMs <= 0) {
      throw new RdbnetError(ErrorCode.DeadlinePassed, 'the deadline passed before sending');
    }
    return { bytes, deadlineAtMs: this.clock.nowMs() + deadlineMs, guarantee };
  }

  /**
   * A message for a handler on this node, as its delivery asks: at-most-once acknowledges a
   * send once queued; at-least-once and exactly-once once the handler accepted it; exactly-once
   * runs the handler once per idempotency key (every other copy gets the stored reply).
   */
  private receive(
    message: Pick<TopicMessage, 'topic' | 'kind' | 'id'>,
    from: string,
    checked: { bytes: Uint8Array; deadlineAtMs: number; guarantee: Guarantee },
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const { bytes, deadlineAtMs, guarantee } = checked;
    if (guarantee.delivery === 'at-most-once') {
      const reply = this.accept(message, from, bytes, deadlineAtMs, signal);
      return message.kind === TopicKindCode.Send ? Promise.resolve(new Uint8Array(0)) : reply;
    }
    const run = (onAnswer?: (reply: Uint8Array) => void): Promise<Uint8Array> =>
      this.handled(message, from, bytes, deadlineAtMs, signal, onAnswer);
    if (guarantee.delivery === 'at-least-once') return run();
    // A client that named no key gets one made here: its copies are not deduplicated (it
    // sent only one), but everything after this node is.
    const key = guarantee.key ?? this.newKey();
    return this.dedup.run(`${message.topic}\u0000${key}`, run);
  }

  /** A key no other message of any run of any node has: node id, process id, sequence. */
  private newKey(): string {
    this.sequence++;
    return `${this.init.selfId}/${this.incarnation}/${this.sequence}`;
  }

  /** Queues a message for a local handler and resolves when the handler has answered. */
  private handled(
    message: Pick<TopicMessage, 'topic' | 'kind' | 'id'>,
    from: string,
    payload: Uint8Array,
    deadlineAtMs: number,
    signal?: AbortSignal,
    onAnswer?: (reply: Uint8Array) => void,
  ): Promise<Uint8Array> {
    try {
      return this.topics.enqueue(
        {
          topic: message.topic,
          payload,
          from,
          id: message.id,
          kind: KIND_NAMES[message.kind] ?? 'send',
        },
        deadlineAtMs,
        signal,
        onAnswer,
      ).reply;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private checkCount(name: string, count: number, of: number): void {
    if (!Number.isInteger(count) || count < 1 || count > of) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `${name} must be an integer from 1 to the ${of} targets, got ${count}`,
      );
    }
  }

  private concurrency(options: ManyOptions): number {
    const max = this.init.limits.fanOutConcurrencyMax;
    const asked = options.concurrency ?? max;
    if (!Number.isInteger(asked) || asked < 1) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `concurrency must be a positive integer, got ${asked}`,
      );
    }
    return Math.min(asked, max);
  }

  /** Queues a message for a local handler; a send's later failure is counted, not thrown. */
  private accept(
    message: Pick<TopicMessage, 'topic' | 'kind' | 'id'>,
    from: string,
    payload: Uint8Array,
    deadlineAtMs: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const { reply } = this.topics.enqueue(
      {
        topic: message.topic,
        payload,
        from,
        id: message.id,
        kind: KIND_NAMES[message.kind] ?? 'send',
      },
      deadlineAtMs,
      signal,
    );
    if (message.kind === TopicKindCode.Send) {
      reply.catch(() => this.counters?.increment('dataplane.send_failed_after_ack'));
    }
    return reply;
  }

  private members(): readonly DataPlaneMember[] {
    return this.init.members();
  }

  /** Members a broadcast reaches: alive and suspect ones (a suspect member may well answer;
   * if it does not, it is a miss with its code, never dropped silently). */
  private alive(): DataPlaneMember[] {
    return this.members().filter(isLive);
  }

  /** One member by id: RDB_TARGET_UNKNOWN when gossip has none, RDB_TARGET_DEAD when down. */
  private single(target: Target): DataPlaneMember {
    const id = typeof target === 'string' ? target : 'id' in target ? target.id : null;
    if (id === null) {
      const [first, ...rest] = this.many(target);
      if (first === undefined || rest.length > 0) {
        throw new RdbnetError(ErrorCode.Usage, 'send and request take exactly one target');
      }
      return first;
    }
    const member = this.known(id);
    if (!isLive(member)) {
      throw new RdbnetError(ErrorCode.TargetDead, `member ${id} is ${member.state}`);
    }
    return member;
  }

  /** A member of the view, whatever its state; RDB_TARGET_UNKNOWN when there is none. */
  private known(id: string, view = this.members()): DataPlaneMember {
    const member = view.find((candidate) => candidate.id === id);
    if (member === undefined) {
      throw new RdbnetError(
        ErrorCode.TargetUnknown,
        `no member "${id}" in ${this.init.selfId}'s view of the cluster`,
        { hint: '`rdbnet cluster members` lists the members' },
      );
    }
    return member;
  }

  /** Every member a target names (each once). */
  private many(target: Target): DataPlaneMember[] {
    if (typeof target === 'string' || 'id' in target) return [this.single(target)];
    if ('ids' in target) {
      // A dead one stays a target: it becomes a miss (RDB_TARGET_DEAD) of a many-target call,
      // so a quorum of W of N still counts it among the N.
      // One view for every id: building it reads every member's gossip state.
      const view = this.members();
      return [...new Set(target.ids)].map((id) => this.known(id, view));
    }
    if ('all' in target) return this.alive();
    if ('group' in target) {
      const members = this.alive().filter((member) => member.groups.includes(target.group));
      if (members.length === 0) {
        throw new RdbnetError(ErrorCode.TargetUnknown, `no live member in group "${target.group}"`);
      }
      return members;
    }
    const candidates: MemberCandidate[] = this.members().map((member) => ({
      id: member.id,
      address: member.address,
      state: member.isSelf ? 'alive' : member.state,
      score: member.isSelf ? 1 : member.score,
      rttMs: member.rttMs,
    }));
    const chosen = selectFromMembers(candidates, {
      strategy: target.strategy,
      key: target.key ?? null,
      count: target.count ?? 1,
      random: this.random,
    });
    return chosen.nodes.map((id) => this.single(id));
  }

  private async acknowledged(
    target: Target,
    topic: string,
    payload: Uint8Array | string,
    options: ManyOptions,
  ): Promise<AckResult> {
    const { bytes, deadlineAtMs, guarantee } = this.check(topic, payload, options);
    const members = this.many(target);
    const id = randomUuid(this.random);
    return this.runMany(members, {
      concurrency: this.concurrency(options),
      stopAfter: members.length,
      call: (member, signal) =>
        this.deliver(member, topic, bytes, TopicKindCode.Send, deadlineAtMs, signal, guarantee, id),
      signal: options.signal,
    }).then((outcome) => ({
      acked: outcome.ok.map((answer) => answer.id).sort(),
      missing: outcome.missing.sort((a, b) => a.id.localeCompare(b.id)),
    }));
  }

  /** Sends one message to one member (locally when it is this node); maps failures to codes. */
  private deliver(
    member: DataPlaneMember,
    topic: string,
    payload: Uint8Array,
    kind: TopicKindCode,
    deadlineAtMs: number,
    signal: AbortSignal | undefined,
    guarantee: Guarantee = AT_MOST_ONCE,
    id: string = randomUuid(this.random),
  ): Promise<Uint8Array> {
    // Not async: one promise fewer per target on the fan-out path; a refusal still rejects.
    try {
      if (!isLive(member)) {
        throw new RdbnetError(ErrorCode.TargetDead, `member ${member.id} is ${member.state}`);
      }
      if (member.isSelf) {
        return this.receive(
          { topic, kind, id },
          this.init.selfId,
          {
            bytes: payload,
            deadlineAtMs,
            guarantee,
          },
          signal,
        );
      }
      const message: TopicMessage = {
        topic,
        payload,
        deadlineMs: 0,
        id,
        kind,
        to: member.id,
        group: '',
        forwarded: true,
      };
      // Normal is the field's absence: the same bytes as before priorities existed.
      if (guarantee.priority !== Priority.Normal) {
        message.priority = priorityToWire(guarantee.priority);
      }
      if (guarantee.delivery === 'at-most-once') {
        return this.attempt(member, message, deadlineAtMs, deadlineAtMs);
      }
      message.delivery = deliveryCode(guarantee.delivery);
      if (guarantee.delivery === 'exactly-once')
        message.idempotencyKey = guarantee.key ?? this.newKey();
      return this.reliably(member, message, deadlineAtMs, signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * at-least-once and exactly-once: the same message (same id and key) until it is
   * acknowledged, a final error comes back, deliveryAttemptsMax attempts failed, the deadline
   * passed or the caller stopped; backoff with full jitter between attempts. A slot of the
   * peer's unacknowledged window is held throughout.
   */
  private async reliably(
    member: DataPlaneMember,
    message: TopicMessage,
    deadlineAtMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    const limits = this.init.limits;
    const window = this.windowOf(member.id);
    await window.acquire(member.id, deadlineAtMs - this.clock.nowMs());
    let lastError: unknown = null;
    let attempts = 0;
    const callerStopped = (): boolean => signal?.aborted === true;
    try {
      while (attempts < limits.deliveryAttemptsMax) {
        if (callerStopped()) break;
        if (attempts > 0) {
          const waitMs = backoffMs(attempts, limits, this.random);
          if (this.clock.nowMs() + waitMs >= deadlineAtMs) break;
          await sleep(this.timers, waitMs);
          if (callerStopped()) break;
          this.retries++;
          this.counters?.increment('dataplane.delivery.retries');
        }
        const attemptEndMs = Math.min(deadlineAtMs, this.clock.nowMs() + limits.attemptTimeoutMs);
        if (attemptEndMs - this.clock.nowMs() < 1) break;
        attempts++;
        try {
          const reply = await this.attempt(member, message, attemptEndMs, deadlineAtMs);
          this.reliableAcked++;
          return reply;
        } catch (error) {
          lastError = error;
          if (!isRetryable(error)) throw this.typed(error, member);
        }
      }
    } finally {
      window.release();
    }
    this.deliveryFailed++;
    this.counters?.increment('dataplane.delivery.failed');
    const why = isRdbnetError(lastError) ? `; last: ${lastError.code} ${lastError.message}` : '';
    const stopped = callerStopped() ? ' (the caller stopped)' : '';
    throw new RdbnetError(
      ErrorCode.DeliveryFailed,
      `${member.id} did not acknowledge ${message.topic} after ${attempts} attempt(s)${stopped}${why}`,
      lastError === null ? {} : { cause: lastError },
    );
  }

  private windowOf(peer: string): UnackedWindow {
    let window = this.windows.get(peer);
    if (window === undefined) {
      window = new UnackedWindow(this.init.limits.unackedPerPeerMax, this.timers);
      this.windows.set(peer, window);
    }
    return window;
  }

  /**
   * One request to a remote member: waits until `attemptEndMs`; the receiver is told the
   * whole message's deadline, so its handler is not cut short by one attempt's timeout.
   */
  private async attempt(
    member: DataPlaneMember,
    message: TopicMessage,
    attemptEndMs: number,
    deadlineAtMs: number,
  ): Promise<Uint8Array> {
    const nowMs = this.clock.nowMs();
    const waitMs = Math.floor(attemptEndMs - nowMs);
    const leftMs = Math.floor(deadlineAtMs - nowMs);
    if (waitMs <= 0 || leftMs <= 0) {
      throw new RdbnetError(ErrorCode.DeadlinePassed, `the deadline passed before ${member.id}`);
    }
    if (this.outbound >= this.init.limits.outboundInflightMax) {
      this.counters?.increment('dataplane.outbound_full');
      throw new RdbnetError(
        ErrorCode.QueueFull,
        `${this.outbound} messages in flight from this node (outboundInflightMax); slow down`,
      );
    }
    this.outbound++;
    try {
      const reply = await request(
        peerSender(this.init.peers, member.address),
        'topicRequest',
        { ...message, deadlineMs: leftMs },
        waitMs,
      );
      return bytesOf(reply.payload);
    } catch (error) {
      if (message.delivery !== undefined) throw error;
      throw this.typed(error, member);
    } finally {
      this.outbound--;
    }
  }

  private typed(error: unknown, member: DataPlaneMember): unknown {
    if (!isRdbnetError(error)) return error;
    switch (error.code) {
      case ErrorCode.RequestTimeout:
        return new RdbnetError(
          ErrorCode.DeadlinePassed,
          `${member.id} did not answer before the deadline`,
          { cause: error },
        );
      case ErrorCode.NodeUnreachable:
      case ErrorCode.ConnectionClosed:
      case ErrorCode.HandshakeTimeout:
        return new RdbnetError(
          ErrorCode.TargetDead,
          `${member.id} at ${member.address} could not be reached: ${error.message}`,
          { cause: error },
        );
      default:
        return error;
    }
  }

  /** Measures one RTT to `member`: a first echo opens the connection, the second is timed. */
  private async measure(member: DataPlaneMember): Promise<PingRtt> {
    const sender = peerSender(this.init.peers, member.address);
    const data = new Uint8Array(PING_PAYLOAD_BYTES);
    const deadlineMs = this.init.limits.deadlineDefaultMs;
    try {
      await request(sender, 'echoRequest', { data }, deadlineMs);
      const startedMs = this.clock.nowMs();
      await request(sender, 'echoRequest', { data }, deadlineMs);
      const rttMs = this.clock.nowMs() - startedMs;
      return { from: this.init.selfId, to: member.id, rttMs, error: '' };
    } catch (error) {
      const typed = this.typed(error, member);
      const code = isRdbnetError(typed) ? typed.code : ErrorCode.Internal;
      return { from: this.init.selfId, to: member.id, rttMs: -1, error: code };
    }
  }

  /**
   * Calls `call` for each member with at most `concurrency` in flight, until `stopAfter`
   * succeeded or the caller's signal aborts (what is still running or not yet started is
   * `cancelled`, and a local handler sees its signal abort), or every call finished. Every
   * failure is a miss with its code.
   */
  private runMany(
    members: readonly DataPlaneMember[],
    plan: {
      concurrency?: number;
      stopAfter: number;
      call(member: DataPlaneMember, signal: AbortSignal): Promise<Uint8Array>;
      signal?: AbortSignal | undefined;
    },
  ): Promise<ManyOutcome> {
    const outcome: ManyOutcome = { ok: [], missing: [], cancelled: [] };
    const controller = new AbortController();
    const concurrency = Math.max(1, plan.concurrency ?? this.init.limits.fanOutConcurrencyMax);
    const pending = new Set<string>();
    let next = 0;
    let finished = false;
    return new Promise<ManyOutcome>((resolve) => {
      const finish = (): void => {
        if (finished) return;
        finished = true;
        plan.signal?.removeEventListener('abort', stopEarly);
        const leftOver = pending.size > 0 || next < members.length;
        outcome.cancelled.push(...pending, ...members.slice(next).map((member) => member.id));
        pending.clear();
        next = members.length;
        // Aborting dispatches an event: only when a call is left to stop.
        if (leftOver) controller.abort();
        resolve(outcome);
      };
      const stopEarly = (): void => finish();
      if (plan.signal?.aborted === true) {
        finish();
        return;
      }
      plan.signal?.addEventListener('abort', stopEarly, { once: true });
      const settled = (member: DataPlaneMember): boolean => !finished && pending.delete(member.id);
      const launch = (): void => {
        if (outcome.ok.length >= plan.stopAfter) {
          finish();
          return;
        }
        while (!finished && pending.size < concurrency && next < members.length) {
          const member = members[next++]!;
          pending.add(member.id);
          plan.call(member, controller.signal).then(
            (reply) => {
              if (!settled(member)) return;
              outcome.ok.push({ id: member.id, reply });
              launch();
            },
            (error: unknown) => {
              if (!settled(member)) return;
              const typed = isRdbnetError(error) ? error : null;
              outcome.missing.push({
                id: member.id,
                code: typed?.code ?? ErrorCode.Internal,
                message: typed?.message ?? String(error),
              });
              launch();
            },
          );
        }
        if (pending.size === 0 && next >= members.length) finish();
      };
      launch();
    });
  }
}
