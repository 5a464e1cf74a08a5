/**
 * Message priorities and the weighted scheduler of a connection's write path.
 *
 * Four priorities: critical, high, normal, low. What is waiting to be written is queued by
 * priority; the scheduler hands items out in rounds of weighted round robin: in every round each
 * priority may take up to its weight in turns, critical first, then high, normal and low. A
 * round ends when no priority with turns left has anything waiting. So critical traffic goes
 * first while it has turns, and a low item at the head of its queue waits at most one round
 * (the sum of the other weights, in items) however much more urgent traffic keeps coming:
 * nothing starves. Pure: no sockets, no clock.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';

/** Lower is more urgent; also the value of a frame's two priority bits. */
export const Priority = { Critical: 0, High: 1, Normal: 2, Low: 3 } as const;
export type Priority = (typeof Priority)[keyof typeof Priority];
export const PRIORITY_LEVELS = 4;

export const PRIORITY_NAMES = ['critical', 'high', 'normal', 'low'] as const;
export type PriorityName = (typeof PRIORITY_NAMES)[number];

/**
 * Turns per round of critical, high, normal and low. Critical gets 64 for every one low gets:
 * under a saturating low-priority transfer a critical message waits for at most the item being
 * written, and low still moves (one item in every 85 when everything is busy).
 */
export const PRIORITY_WEIGHTS_DEFAULT: readonly number[] = Object.freeze([64, 16, 4, 1]);

/**
 * TopicMessage.priority on the wire: 0 is proto3's default, so an absent field (and every
 * message of an older sender) means normal.
 */
const WIRE_BY_PRIORITY = [1, 2, 0, 3] as const;
const PRIORITY_BY_WIRE: readonly Priority[] = [
  Priority.Normal,
  Priority.Critical,
  Priority.High,
  Priority.Low,
];

export function priorityToWire(priority: Priority): number {
  return WIRE_BY_PRIORITY[priority];
}

/** A TopicMessage's priority field; an unknown value (a newer sender's) is normal. */
export function priorityFromWire(code: number | undefined): Priority {
  return PRIORITY_BY_WIRE[code ?? 0] ?? Priority.Normal;
}

/** 'critical' | 'high' | 'normal' | 'low' (any case) as a Priority; RDB_USAGE otherwise. */
export function parsePriority(name: string): Priority {
  const index = PRIORITY_NAMES.indexOf(String(name).toLowerCase() as PriorityName);
  if (index < 0) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `priority must be one of ${PRIORITY_NAMES.join(', ')}, got "${name}"`,
    );
  }
  return index as Priority;
}

export function priorityName(priority: Priority): PriorityName {
  return PRIORITY_NAMES[priority];
}

/**
 * Items queued by priority, handed out by weighted round robin. Bounded: `push` beyond
 * `itemsMax` items in all throws (the caller keeps the bound below it; reaching it is a bug).
 */
export class WeightedScheduler<T> {
  private readonly queues: T[][] = [[], [], [], []];
  /** Index of each queue's head: items are taken from the front without shifting arrays. */
  private readonly heads = [0, 0, 0, 0];
  private readonly turnsLeft: number[];
  private readonly weights: readonly number[];
  private readonly itemsMax: number;
  private count = 0;

  constructor(itemsMax: number, weights: readonly number[] = PRIORITY_WEIGHTS_DEFAULT) {
    if (
      weights.length !== PRIORITY_LEVELS ||
      !weights.every((weight) => Number.isInteger(weight) && weight >= 1)
    ) {
      throw new Error(`invariant violated: four positive integer weights, got ${weights}`);
    }
    if (!(Number.isInteger(itemsMax) && itemsMax >= 1)) {
      throw new Error(`invariant violated: itemsMax must be a positive integer, got ${itemsMax}`);
    }
    this.weights = weights;
    this.turnsLeft = [...weights];
    this.itemsMax = itemsMax;
  }

  /** Items waiting, over every priority. */
  get size(): number {
    return this.count;
  }

  /** Items waiting at one priority. */
  sizeOf(priority: Priority): number {
    return this.queues[priority]!.length - this.heads[priority]!;
  }

  push(priority: Priority, item: T): void {
    if (this.count >= this.itemsMax) {
      throw new Error(
        `invariant violated: scheduler holds ${this.count} items (max ${this.itemsMax})`,
      );
    }
    this.queues[priority]!.push(item);
    this.count++;
  }

  /** Puts `item` back at the head of its priority's queue (it goes again next at that
   * priority): what a stream that still has credit does after each chunk. */
  pushFront(priority: Priority, item: T): void {
    if (this.count >= this.itemsMax) {
      throw new Error(
        `invariant violated: scheduler holds ${this.count} items (max ${this.itemsMax})`,
      );
    }
    const head = this.heads[priority]!;
    if (head > 0) {
      this.heads[priority] = head - 1;
      this.queues[priority]![head - 1] = item;
    } else {
      this.queues[priority]!.unshift(item);
    }
    this.count++;
  }

  /** The next item by weighted round robin, or undefined when nothing waits. */
  next(): T | undefined {
    if (this.count === 0) return undefined;
    for (let pass = 0; pass < 2; pass++) {
      for (let priority = 0; priority < PRIORITY_LEVELS; priority++) {
        if (this.turnsLeft[priority]! > 0 && this.sizeOf(priority as Priority) > 0) {
          this.turnsLeft[priority]!--;
          return this.take(priority);
        }
      }
      // Every priority with work has used its turns: a new round.
      for (let priority = 0; priority < PRIORITY_LEVELS; priority++) {
        this.turnsLeft[priority] = this.weights[priority]!;
      }
    }
    throw new Error('invariant violated: items counted but none found');
  }

  /** Removes every item `drop` answers true for (a cancelled stream); returns how many. */
  remove(drop: (item: T) => boolean): number {
    let removed = 0;
    for (let priority = 0; priority < PRIORITY_LEVELS; priority++) {
      const kept = this.queues[priority]!.slice(this.heads[priority]).filter((item) => {
        if (!drop(item)) return true;
        removed++;
        return false;
      });
      this.queues[priority] = kept;
      this.heads[priority] = 0;
    }
    this.count -= removed;
    return removed;
  }

  private take(priority: number): T {
    const queue = this.queues[priority]!;
    const item = queue[this.heads[priority]!]!;
    this.heads[priority]!++;
    this.count--;
    if (this.heads[priority] === queue.length) {
      queue.length = 0;
      this.heads[priority] = 0;
    } else if (this.heads[priority]! > 1024 && this.heads[priority]! * 2 > queue.length) {
      this.queues[priority] = queue.slice(this.heads[priority]);
      this.heads[priority] = 0;
    }
    return item;
  }
}
