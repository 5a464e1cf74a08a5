/**
 * Transmit-limited broadcast queue: what we have to tell the cluster, piggybacked on every
 * packet we send until each item has gone out `limit` times.
 *
 * Items are about a member, and newer news about a member replaces older (sending stale
 * news only wastes room) — except suspicions from different members: each is an
 * independent confirmation that shortens everyone's suspicion timeout, so they coexist
 * (replacing one with another, as memberlist does, can starve a timeout of the
 * confirmations it needs). Selection prefers the items sent the fewest times, so new
 * information goes first; within one transmit count, oldest first. The queue is bounded:
 * when full, the item sent the most times is dropped and counted.
 */

/** Smallest encoded broadcast (a leave with a 1-byte id); less room than this is no room. */
const PART_BYTES_MIN = 3 + 4 + 2;

interface Item {
  member: string;
  /** News that must spread fast (refutations, deaths, leaves): see Swim.runGossip. */
  urgent: boolean;
  /** Set on a suspicion: the member that suspects. */
  confirmer: string | undefined;
  part: Uint8Array;
  transmits: number;
}

export class BroadcastQueue {
  /** Items dropped because the queue was full. */
  dropped = 0;
  private readonly capacity: number;
  private count = 0;
  private urgentCount = 0;
  private readonly byMember = new Map<string, Item[]>();
  /** Items by transmit count, so selection never sorts. */
  private readonly buckets: Set<Item>[] = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.count;
  }

  /** Queued items marked urgent. */
  get urgent(): number {
    return this.urgentCount;
  }

  /** Whether anything about `member` is still waiting to be sent. */
  has(member: string): boolean {
    return this.byMember.has(member);
  }

  /**
   * Queues `part` (an encoded broadcast) about `member`. Without `confirmer` it replaces
   * everything queued about the member; with one (a suspicion) it replaces only that
   * confirmer's suspicion and any non-suspicion news.
   */
  enqueue(member: string, part: Uint8Array, confirmer?: string, urgent = false): void {
    const items = this.byMember.get(member);
    if (items !== undefined) {
      for (const old of [...items]) {
        if (confirmer === undefined || old.confirmer === undefined || old.confirmer === confirmer) {
          this.remove(old);
        }
      }
    }
    if (this.count >= this.capacity) this.dropMostSent();
    const item: Item = { member, urgent, confirmer, part, transmits: 0 };
    const list = this.byMember.get(member);
    if (list === undefined) this.byMember.set(member, [item]);
    else list.push(item);
    this.count++;
    if (urgent) this.urgentCount++;
    this.bucket(0).add(item);
  }

  /** Drops everything queued about `member`. */
  forget(member: string): void {
    for (const item of [...(this.byMember.get(member) ?? [])]) this.remove(item);
  }

  /**
   * Appends to `out` the parts that fit in `budgetBytes`, at most `countMax` of them, fewest
   * transmits first. Each chosen item counts one transmit and leaves the queue at `limit`.
   * Items about `skipMember` (the recipient) are left for others: what we say about a member
   * to that member itself goes separately (the buddy system), and its own alive is news to
   * nobody there. Returns the bytes used.
   */
  fill(
    out: Uint8Array[],
    budgetBytes: number,
    countMax: number,
    limit: number,
    skipMember?: string,
  ): number {
    let used = 0;
    const chosen: Item[] = [];
    for (let t = 0; t < this.buckets.length; t++) {
      const bucket = this.buckets[t]!;
      if (bucket.size === 0) continue;
      if (t >= limit) {
        // The limit shrinks with the cluster; items already sent enough are done.
        for (const item of [...bucket]) this.remove(item);
        continue;
      }
      if (out.length >= countMax || budgetBytes - used < PART_BYTES_MIN) continue;
      for (const item of bucket) {
        if (item.part.length <= budgetBytes - used && item.member !== skipMember) {
          out.push(item.part);
          used += item.part.length;
          chosen.push(item);
          if (out.length >= countMax || budgetBytes - used < PART_BYTES_MIN) break;
        }
      }
    }
    // Moved only now, so an item cannot be chosen twice for one packet.
    for (const item of chosen) {
      if (item.transmits + 1 >= limit) {
        this.remove(item);
      } else {
        this.buckets[item.transmits]!.delete(item);
        item.transmits++;
        this.bucket(item.transmits).add(item);
      }
    }
    return used;
  }

  private bucket(transmits: number): Set<Item> {
    while (this.buckets.length <= transmits) this.buckets.push(new Set());
    return this.buckets[transmits]!;
  }

  private remove(item: Item): void {
    this.buckets[item.transmits]!.delete(item);
    const items = this.byMember.get(item.member)!;
    if (items.length === 1) {
      this.byMember.delete(item.member);
    } else {
      items.splice(items.indexOf(item), 1);
    }
    this.count--;
    if (item.urgent) this.urgentCount--;
  }

  private dropMostSent(): void {
    for (let t = this.buckets.length - 1; t >= 0; t--) {
      for (const item of this.buckets[t]!) {
        this.remove(item);
        this.dropped++;
        return;
      }
    }
  }
}
