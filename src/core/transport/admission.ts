/**
 * Bookkeeping of unauthenticated connections (TCP accepted, TLS handshake or rdbnet Hello not
 * done yet), kept apart from authenticated ones so strangers cannot use up the slots peers and
 * operators need. Pure: the server feeds it accepts, authentications, closes and the time, and
 * closes what it is told to.
 *
 * Overflow behaviour: a new connection always gets a slot. When its source already holds
 * `perSourceMax`, that source's oldest connection makes room; when the table holds `totalMax`,
 * the oldest connection of the source holding the most makes room. So a stranger that opens
 * sockets and says nothing only ever displaces its own (or the biggest holder's) oldest
 * sockets, and a peer or admin client that completes its handshake within the time it takes
 * others to open that many connections always gets in — even from a stranger's address.
 */
import { isIPv4, isIPv6 } from 'node:net';

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
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
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
      victim = this.oldestOfBiggestSource();
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

  /** Ties go to the source whose oldest connection is older. */
  private oldestOfBiggestSource(): T | undefined {
    let best: Set<T> | undefined;
    let bestOldestMs = Number.POSITIVE_INFINITY;
    for (const set of this.bySource.values()) {
      const oldest = first(set);
      const oldestMs =
        oldest === undefined ? Number.POSITIVE_INFINITY : this.entries.get(oldest)!.acceptedAtMs;
      if (
        best === undefined ||
        set.size > best.size ||
        (set.size === best.size && oldestMs < bestOldestMs)
      ) {
        best = set;
        bestOldestMs = oldestMs;
      }
    }
    return best === undefined ? undefined : first(best);
  }
}

function first<T>(set: Set<T>): T | undefined {
  for (const item of set) return item;
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
