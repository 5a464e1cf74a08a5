/**
 * Deterministic simulation for tests and benchmarks (never imported by production code):
 * a virtual clock, a discrete-event queue and a simulated network that can drop, delay,
 * duplicate, reorder and partition — all driven by one seeded Random, so a failing run is
 * replayed exactly from its seed.
 */
import type { Clock, Random, TimedClock, TimerHandle, TimerOptions } from '../runtime/index.ts';

export class VirtualClock implements Clock {
  private now = 0;
  /** Wall time at virtual time zero; arbitrary but fixed so traces are replayable. */
  private readonly epochMs: number;

  constructor(epochMs = 1_700_000_000_000) {
    this.epochMs = epochMs;
  }

  nowMs(): number {
    return this.now;
  }

  wallMs(): number {
    return this.epochMs + this.now;
  }

  /** Only the event queue moves time, and only forwards. */
  setNow(ms: number): void {
    if (ms < this.now)
      throw new Error(`invariant violated: virtual time went back from ${this.now} to ${ms}`);
    this.now = ms;
  }
}

interface ScheduledEvent {
  atMs: number;
  seq: number;
  run: () => void;
  /** Cleared before it fired: skipped when it comes up (lazy deletion from the heap). */
  cancelled: boolean;
}

/** Lets every promise continuation queued so far run (and those they queue, in turn). */
function drainMicrotasks(): Promise<void> {
  // setImmediate runs after node has emptied the microtask queue; nothing else is pending
  // in a simulation, so what runs in between is exactly the continuations, in their order.
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Min-heap of events ordered by time, then by scheduling order (stable, deterministic).
 * It is also the simulation's TimedClock: `setTimer` schedules an event, so a driver given
 * the queue as its clock has its timers fire in virtual time.
 */
export class EventQueue implements TimedClock {
  readonly clock: VirtualClock;
  private readonly heap: ScheduledEvent[] = [];
  private seq = 0;
  private cancelledInHeap = 0;
  /** Events run so far; a bound in runUntil keeps a livelocked simulation from spinning forever. */
  eventsRun = 0;

  constructor(clock = new VirtualClock()) {
    this.clock = clock;
  }

  /** Events still to run (cleared timers not counted). */
  get size(): number {
    return this.heap.length - this.cancelledInHeap;
  }

  nowMs(): number {
    return this.clock.nowMs();
  }

  wallMs(): number {
    return this.clock.wallMs();
  }

  schedule(delayMs: number, run: () => void): TimerHandle {
    // NaN (an undefined delay) fires at once, as node's setTimeout does.
    const delay = delayMs > 0 ? delayMs : 0;
    const event: ScheduledEvent = {
      atMs: this.clock.nowMs() + delay,
      seq: this.seq++,
      run,
      cancelled: false,
    };
    this.push(event);
    return event as unknown as TimerHandle;
  }

  /** Timers: the same as schedule; `unref` means nothing without a process to keep alive. */
  setTimer(delayMs: number, run: () => void, _options?: TimerOptions): TimerHandle {
    return this.schedule(delayMs, run);
  }

  clearTimer(handle: TimerHandle): void {
    // An event is in the heap exactly while it is neither run nor cleared.
    const event = handle as unknown as ScheduledEvent;
    if (event.cancelled) return;
    event.cancelled = true;
    this.cancelledInHeap++;
  }

  /** Runs every `periodMs`, first after `firstDelayMs`, while `keepGoing()` says so. */
  every(
    periodMs: number,
    run: () => void,
    firstDelayMs = periodMs,
    keepGoing: () => boolean = () => true,
  ): void {
    const tick = () => {
      if (!keepGoing()) return;
      run();
      this.schedule(periodMs, tick);
    };
    this.schedule(firstDelayMs, tick);
  }

  /** Runs events up to and including time `untilMs`; the clock ends at `untilMs`. */
  runUntil(untilMs: number, eventsMax = 50_000_000): void {
    for (let event = this.nextDue(untilMs); event !== undefined; event = this.nextDue(untilMs)) {
      this.runEvent(event, eventsMax);
    }
    this.clock.setNow(Math.max(this.clock.nowMs(), untilMs));
  }

  runFor(durationMs: number, eventsMax?: number): void {
    this.runUntil(this.clock.nowMs() + durationMs, eventsMax);
  }

  /**
   * runUntil for code that awaits: after each event the promise continuations it started
   * run before the next event, as node runs them between two timer callbacks, so async
   * code observes the virtual time it was woken at. Stops early, at the time of the event
   * after which `done()` holds, and returns whether it did (without `done`: false).
   */
  async runUntilAsync(
    untilMs: number,
    done?: () => boolean,
    eventsMax = 50_000_000,
  ): Promise<boolean> {
    await drainMicrotasks();
    if (done?.() === true) return true;
    for (let event = this.nextDue(untilMs); event !== undefined; event = this.nextDue(untilMs)) {
      this.runEvent(event, eventsMax);
      await drainMicrotasks();
      if (done?.() === true) return true;
    }
    this.clock.setNow(Math.max(this.clock.nowMs(), untilMs));
    return false;
  }

  runForAsync(durationMs: number, done?: () => boolean, eventsMax?: number): Promise<boolean> {
    return this.runUntilAsync(this.clock.nowMs() + durationMs, done, eventsMax);
  }

  /** The earliest live event due by `untilMs`, taken off the heap; cleared ones are dropped. */
  private nextDue(untilMs: number): ScheduledEvent | undefined {
    while (this.heap.length > 0 && this.heap[0]!.atMs <= untilMs) {
      const event = this.pop();
      if (!event.cancelled) return event;
      this.cancelledInHeap--;
    }
    return undefined;
  }

  private runEvent(event: ScheduledEvent, eventsMax: number): void {
    if (this.eventsRun >= eventsMax) throw new Error(`simulation exceeded ${eventsMax} events`);
    this.clock.setNow(event.atMs);
    this.eventsRun++;
    // Marked so a clearTimer from inside (or later) is a no-op, as for a fired node timer.
    event.cancelled = true;
    event.run();
  }

  private push(event: ScheduledEvent): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): ScheduledEvent {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left;
        if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right;
        if (smallest === i) break;
        [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
        i = smallest;
      }
    }
    return top;
  }
}

function before(a: ScheduledEvent, b: ScheduledEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

export interface NetworkFaults {
  /** Probability a message is lost. */
  dropRate: number;
  /** Probability a delivered message is delivered twice. */
  duplicateRate: number;
  /** One-way delay is uniform in [delayMinMs, delayMaxMs]; a spread reorders messages. */
  delayMinMs: number;
  delayMaxMs: number;
}

export const PERFECT_NETWORK: Readonly<NetworkFaults> = Object.freeze({
  dropRate: 0,
  duplicateRate: 0,
  delayMinMs: 1,
  delayMaxMs: 1,
});

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  bytes: number;
}

/**
 * Message passing between named endpoints. Partitions are symmetric groups: endpoints in
 * different groups cannot reach each other; endpoints in no group reach everyone not cut off.
 * A "down" endpoint neither sends nor receives (a crashed or stalled process).
 */
export class SimNetwork<Message> {
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, bytes: 0 };
  private readonly endpoints = new Map<string, (from: string, message: Message) => void>();
  private readonly down = new Set<string>();
  private groupOf = new Map<string, number>();
  private faults: NetworkFaults;
  private readonly queue: EventQueue;
  private readonly random: Random;
  private readonly sizeOf: (message: Message) => number;
  private linkDelayMs: ((from: string, to: string) => number) | null = null;

  constructor(
    queue: EventQueue,
    random: Random,
    faults: NetworkFaults = PERFECT_NETWORK,
    sizeOf: (message: Message) => number = () => 0,
  ) {
    this.queue = queue;
    this.random = random;
    this.faults = { ...faults };
    this.sizeOf = sizeOf;
  }

  register(address: string, deliver: (from: string, message: Message) => void): void {
    this.endpoints.set(address, deliver);
  }

  unregister(address: string): void {
    this.endpoints.delete(address);
  }

  /** A fixed one-way delay per link, added to the faults' uniform delay (null: none): a
   * network with geography, for coordinates and route choices. */
  setLinkDelay(delayMs: ((from: string, to: string) => number) | null): void {
    this.linkDelayMs = delayMs;
  }

  setFaults(faults: Partial<NetworkFaults>): void {
    this.faults = { ...this.faults, ...faults };
  }

  /** Splits the network into groups that cannot reach each other. */
  partition(groups: string[][]): void {
    this.groupOf = new Map();
    groups.forEach((group, index) => {
      for (const address of group) this.groupOf.set(address, index);
    });
  }

  heal(): void {
    this.groupOf = new Map();
  }

  setDown(address: string, isDown: boolean): void {
    if (isDown) this.down.add(address);
    else this.down.delete(address);
  }

  isDown(address: string): boolean {
    return this.down.has(address);
  }

  canReach(from: string, to: string): boolean {
    if (this.down.has(from) || this.down.has(to)) return false;
    const a = this.groupOf.get(from);
    const b = this.groupOf.get(to);
    return a === undefined || b === undefined || a === b;
  }

  send(from: string, to: string, message: Message): void {
    this.stats.sent++;
    this.stats.bytes += this.sizeOf(message);
    if (!this.canReach(from, to) || this.random.next() < this.faults.dropRate) {
      this.stats.dropped++;
      return;
    }
    this.deliverLater(from, to, message);
    if (this.random.next() < this.faults.duplicateRate) {
      this.stats.duplicated++;
      this.deliverLater(from, to, message);
    }
  }

  private deliverLater(from: string, to: string, message: Message): void {
    const { delayMinMs, delayMaxMs } = this.faults;
    const delay =
      delayMinMs +
      this.random.next() * (delayMaxMs - delayMinMs) +
      (this.linkDelayMs === null ? 0 : this.linkDelayMs(from, to));
    this.queue.schedule(delay, () => {
      // Reachability is checked again on arrival: a partition or crash in between loses it.
      const deliver = this.endpoints.get(to);
      if (deliver === undefined || !this.canReach(from, to)) {
        this.stats.dropped++;
        return;
      }
      this.stats.delivered++;
      deliver(from, message);
    });
  }
}
