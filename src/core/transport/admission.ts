/**
 * Bookkeeping of unauthenticated connections (TCP accepted, TLS handshake or rdbnet Hello not
 * done yet), kept apart from authenticated ones so strangers cannot use up the slots peers and
 * operators need. Pure: the server feeds it accepts, authentications, closes and the time, and
 * closes what it is told to.
 *
 * Overflow behaviour: a new connection always gets a slot. When its source already holds
 * `perSourceMax`, that source's oldest connection makes room; when the table holds `totalMax`,
 * the oldest connection of all makes room. A handshake takes milliseconds, so the oldest
 * unauthenticated connections are the ones least likely to be a peer: a stranger that opens
 * sockets and says nothing holds at most `perSourceMax` of them per address, each only until
 * newer ones push it out, and a peer or admin client that completes its handshake before
 * `totalMax` (or, sharing a stranger's address, `perSourceMax`) newer connections arrive
 * always gets in. (Taking room from the source holding the most instead was tried: it cut a
 * client making 40 connections at once from one address while 100 strangers' addresses held
 * 10 each — the per-source cap already bounds what one address can hold.)
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ConfigFieldError } from '../errors.ts';

export interface UnauthenticatedLimits {
  /** Unauthenticated connections held at once, from all sources. */
  totalMax: number;
  /** Unauthenticated connections held at once from one source (see sourceKey). */
  perSourceMax: number;
}

interface Entry {
  source: string;
  acceptedAtMs: number;
}

export class UnauthenticatedTable<T> {
  readonly limits: UnauthenticatedLimits;
  /** In admission order, so the first entry is the oldest. */
  private readonly entries = new Map<T, Entry>();
  /** Per source, in admission order. */
  private readonly bySource = new Map<string, Set<T>>();

  constructor(limits: UnauthenticatedLimits) {
    for (const [name, value] of Object.entries(limits)) {
      if (!(Number.isSafeInteger(value) && value > 0)) {
        throw new ConfigFieldError(name, `must be a positive integer, got ${value}`);
      }
    }
    this.limits = limits;
  }

  get size(): number {
    return this.entries.size;
  }

  has(item: T): boolean {
    return this.entries.has(item);
  }

  countFrom(source: string): number {
    return this.bySource.get(source)?.size ?? 0;
  }

  /**
   * Takes in `item` from `source` (a sourceKey) and returns the connection to close to make
   * room for it, if any; that one is already out of the table.
   */
  admit(item: T, source: string, nowMs: number): T | undefined {
    if (this.entries.has(item)) throw new Error('invariant violated: connection admitted twice');
    let victim: T | undefined;
    const own = this.bySource.get(source);
    if (own !== undefined && own.size >= this.limits.perSourceMax) {
      victim = first(own);
    } else if (this.entries.size >= this.limits.totalMax) {
      victim = first(this.entries.keys());
    }
    if (victim !== undefined) this.remove(victim);
    this.entries.set(item, { source, acceptedAtMs: nowMs });
    let set = this.bySource.get(source);
    if (set === undefined) {
      set = new Set();
      this.bySource.set(source, set);
    }
    set.add(item);
    return victim;
  }

  /** The connection authenticated or closed; absent items are ignored. */
  remove(item: T): void {
    const entry = this.entries.get(item);
    if (entry === undefined) return;
    this.entries.delete(item);
    const set = this.bySource.get(entry.source);
    set?.delete(item);
    if (set?.size === 0) this.bySource.delete(entry.source);
  }

  /** Connections admitted at or before `acceptedAtOrBeforeMs`, oldest first; they stay in the table. */
  admittedBy(acceptedAtOrBeforeMs: number): T[] {
    const out: T[] = [];
    for (const [item, entry] of this.entries) {
      if (entry.acceptedAtMs > acceptedAtOrBeforeMs) break;
      out.push(item);
    }
    return out;
  }
}

function first<T>(items: Iterable<T>): T | undefined {
  for (const item of items) return item;
  return undefined;
}

/**
 * The source a connection is counted against: its IPv4 address (also when it arrives as an
 * IPv4-mapped IPv6 address), or for IPv6 its /64 prefix, since one host usually holds a whole
 * /64 and could otherwise pick a fresh address per connection.
 */
export function sourceKey(address: string | undefined): string {
  if (address === undefined || address === '') return '?';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1]!;
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return address;
  return `${expandIpv6(address).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, as lower-case hex without leading zeros. */
function expandIpv6(address: string): string[] {
  const withoutZone = address.split('%')[0]!;
  const [head = '', tail] = withoutZone.split('::');
  const parse = (part: string): string[] => (part === '' ? [] : part.split(':'));
  let left = parse(head);
  let right = tail === undefined ? [] : parse(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4 forms other than the mapped one) is two groups.
  const convert = (groups: string[]): string[] =>
    groups.flatMap((group) => {
      if (!group.includes('.')) return [group];
      const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  left = convert(left);
  right = convert(right);
  const zeros = tail === undefined ? [] : Array(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((group) => Number.parseInt(group, 16).toString(16));
}
