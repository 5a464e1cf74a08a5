/**
 * The live streams behind GraphQL subscriptions, fed the way `rdbnet cluster events --follow`
 * is: the node's memberEventsRequest asked again every FOLLOW_POLL_MS with the last sequence
 * number seen (and, for leader and health changes, clusterStatusRequest and healthRequest,
 * reported when their answer changes). One poll per stream and node serves every subscriber;
 * each subscriber has a bounded queue, and a subscriber that falls SUBSCRIBER_QUEUE_MAX events
 * behind loses the oldest ones (counted). Each subscriber's own principal is checked once, by
 * asking the same request as itself before it is added.
 */
import type { HealthReply, MemberEventRecord } from '../protocol/messages.ts';
import type { TimedClock, TimerHandle } from '../runtime/index.ts';
import type { AdminAsk } from './admin-requests.ts';

/** How often each stream asks the node (the member stream as `cluster events --follow`). */
export const MEMBER_POLL_MS = 100;
export const LEADER_POLL_MS = 250;
export const HEALTH_POLL_MS = 500;
/** Events a subscriber may have waiting; past it the oldest are dropped. */
export const SUBSCRIBER_QUEUE_MAX = 256;
/** Subscribers of one stream of one node at once; one more is refused. */
export const SUBSCRIBERS_MAX = 4096;

export interface LeaderChange {
  leader: string;
  term: number;
  at: string;
}

export interface StreamKinds {
  member: MemberEventRecord;
  leader: LeaderChange;
  health: HealthReply;
}
export type StreamKind = keyof StreamKinds;

/** One subscriber: an async iterator over its events, ended by return(). */
export class Subscriber<T> implements AsyncIterableIterator<T> {
  private readonly queue: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | null = null;
  private done = false;
  /** Events dropped because the queue was full. */
  dropped = 0;
  private readonly onEnd: () => void;

  constructor(onEnd: () => void) {
    this.onEnd = onEnd;
  }

  push(event: T): void {
    if (this.done) return;
    if (this.waiting !== null) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: event, done: false });
      return;
    }
    if (this.queue.length >= SUBSCRIBER_QUEUE_MAX) {
      this.queue.shift();
      this.dropped++;
    }
    this.queue.push(event);
  }

  next(): Promise<IteratorResult<T>> {
    const event = this.queue.shift();
    if (event !== undefined) return Promise.resolve({ value: event, done: false });
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<T>> {
    if (!this.done) {
      this.done = true;
      this.queue.length = 0;
      this.waiting?.({ value: undefined, done: true });
      this.waiting = null;
      this.onEnd();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** What a stream polls with: the node's requests as an internal reader, and time. */
export interface StreamInit {
  ask: AdminAsk;
  clock: TimedClock;
  /** A failed poll (the node stopping, say): logged by the caller; the stream keeps polling. */
  onPollError?(kind: StreamKind, error: unknown): void;
}

interface Poller<T> {
  intervalMs: number;
  /** Events since the last poll (the first poll sets the baseline and returns the current
   * state for streams of states, nothing for the member stream). */
  poll(): Promise<T[]>;
  /** What a new subscriber is sent first (the current state), if anything. */
  current(): T | undefined;
}

function memberPoller(ask: AdminAsk): Poller<MemberEventRecord> {
  let afterSeq: number | null = null;
  return {
    intervalMs: MEMBER_POLL_MS,
    async poll() {
      if (afterSeq === null) {
        afterSeq = (await ask('memberEventsRequest', { afterSeq: 0 })).lastSeq;
        return [];
      }
      const reply = await ask('memberEventsRequest', { afterSeq });
      afterSeq = reply.events.at(-1)?.seq ?? Math.max(afterSeq, reply.lastSeq);
      return reply.events;
    },
    current: () => undefined,
  };
}

function leaderPoller(ask: AdminAsk, clock: TimedClock): Poller<LeaderChange> {
  let last: LeaderChange | undefined;
  return {
    intervalMs: LEADER_POLL_MS,
    async poll() {
      const reply = await ask('clusterStatusRequest', { localOnly: true });
      if (last !== undefined && last.leader === reply.leader && last.term === reply.term) {
        return [];
      }
      last = {
        leader: reply.leader,
        term: reply.term,
        at: new Date(clock.wallMs()).toISOString(),
      };
      return [last];
    },
    current: () => last,
  };
}

/** What makes two health answers different: the status and each node's state. */
function healthKey(health: HealthReply): string {
  return JSON.stringify([
    health.status,
    health.quorum,
    health.nodes.map((node) => [node.id, node.state, node.live, node.ready]),
  ]);
}

function healthPoller(ask: AdminAsk): Poller<HealthReply> {
  let last: HealthReply | undefined;
  let lastKey = '';
  return {
    intervalMs: HEALTH_POLL_MS,
    async poll() {
      const reply = await ask('healthRequest', {});
      const key = healthKey(reply);
      if (last !== undefined && key === lastKey) return [];
      last = reply;
      lastKey = key;
      return [reply];
    },
    current: () => last,
  };
}

/** One polled stream and its subscribers. */
class Stream<T> {
  private readonly subscribers = new Set<Subscriber<T>>();
  private timer: TimerHandle | null = null;
  private polling = false;
  private readonly poller: Poller<T>;
  private readonly init: StreamInit;
  private readonly kind: StreamKind;

  constructor(kind: StreamKind, poller: Poller<T>, init: StreamInit) {
    this.kind = kind;
    this.poller = poller;
    this.init = init;
  }

  get size(): number {
    return this.subscribers.size;
  }

  add(subscriber: Subscriber<T>): void {
    this.subscribers.add(subscriber);
    const current = this.poller.current();
    if (current !== undefined) subscriber.push(current);
    if (this.timer === null && !this.polling) void this.tick();
  }

  remove(subscriber: Subscriber<T>): void {
    this.subscribers.delete(subscriber);
    if (this.subscribers.size === 0 && this.timer !== null) {
      this.init.clock.clearTimer(this.timer);
      this.timer = null;
    }
  }

  private async tick(): Promise<void> {
    this.timer = null;
    this.polling = true;
    try {
      for (const event of await this.poller.poll()) {
        for (const subscriber of this.subscribers) subscriber.push(event);
      }
    } catch (error) {
      this.init.onPollError?.(this.kind, error);
    } finally {
      this.polling = false;
    }
    if (this.subscribers.size > 0) {
      this.timer = this.init.clock.setTimer(this.poller.intervalMs, () => void this.tick(), {
        unref: true,
      });
    }
  }
}

/** The member, leader and health streams of one node. */
export class NodeStreams {
  private readonly streams: { [K in StreamKind]: Stream<StreamKinds[K]> };

  constructor(init: StreamInit) {
    this.streams = {
      member: new Stream('member', memberPoller(init.ask), init),
      leader: new Stream('leader', leaderPoller(init.ask, init.clock), init),
      health: new Stream('health', healthPoller(init.ask), init),
    };
  }

  /** A new subscriber of `kind`; undefined when SUBSCRIBERS_MAX are subscribed already. */
  subscribe<K extends StreamKind>(kind: K): Subscriber<StreamKinds[K]> | undefined {
    const stream = this.streams[kind] as unknown as Stream<StreamKinds[K]>;
    if (stream.size >= SUBSCRIBERS_MAX) return undefined;
    const subscriber: Subscriber<StreamKinds[K]> = new Subscriber(() => stream.remove(subscriber));
    stream.add(subscriber);
    return subscriber;
  }

  subscribers(kind: StreamKind): number {
    return this.streams[kind].size;
  }
}
