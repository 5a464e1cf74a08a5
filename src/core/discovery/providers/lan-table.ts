/**
 * The nodes a LAN listener (mdns browse, broadcast listen) currently believes in: each with
 * the time it stops being believed unless heard of again. Bounded: at `nodesMax` a new node is
 * refused and counted (the ones already known are kept, so a flood cannot push them out).
 * Pure: the caller passes the monotonic time in.
 */
import type { DiscoveredNode } from '../provider.ts';

export class LiveNodeTable {
  private readonly entries = new Map<string, { node: DiscoveredNode; expiresAtMs: number }>();
  /** New nodes refused because the table was full. */
  refused = 0;

  readonly nodesMax: number;

  constructor(nodesMax: number) {
    this.nodesMax = nodesMax;
  }

  /** Adds or refreshes `key`; true when the visible list changed. */
  upsert(key: string, node: DiscoveredNode, nowMs: number, ttlMs: number): boolean {
    const current = this.entries.get(key);
    if (current === undefined && this.entries.size >= this.nodesMax) {
      this.refused++;
      return false;
    }
    this.entries.set(key, { node, expiresAtMs: nowMs + ttlMs });
    return current === undefined || !sameNode(current.node, node);
  }

  /** Removes `key` (a goodbye); true when it was there. */
  remove(key: string): boolean {
    return this.entries.delete(key);
  }

  /** Drops every node not heard of in time; true when any went. */
  expire(nowMs: number): boolean {
    let changed = false;
    for (const [key, entry] of this.entries) {
      if (entry.expiresAtMs <= nowMs) {
        this.entries.delete(key);
        changed = true;
      }
    }
    return changed;
  }

  /** The earliest expiry, for the next timer; undefined when empty. */
  nextExpiryMs(): number | undefined {
    let earliest: number | undefined;
    for (const entry of this.entries.values()) {
      if (earliest === undefined || entry.expiresAtMs < earliest) earliest = entry.expiresAtMs;
    }
    return earliest;
  }

  /** Sorted by address, so two lists of the same nodes compare equal. */
  list(): DiscoveredNode[] {
    return [...this.entries.values()]
      .map((entry) => entry.node)
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  get size(): number {
    return this.entries.size;
  }
}

function sameNode(a: DiscoveredNode, b: DiscoveredNode): boolean {
  return (
    a.address === b.address &&
    a.id === b.id &&
    a.source === b.source &&
    JSON.stringify(a.meta) === JSON.stringify(b.meta)
  );
}
