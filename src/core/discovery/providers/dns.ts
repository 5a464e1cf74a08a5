/**
 * `provider=dns`: nodes from DNS, as CockroachDB and Consul users publish them.
 *
 *   type=srv (default)  SRV records of `name` (`_rdbnet._tcp.db.internal`): ordered by priority
 *                       (lowest first) and, within a priority, by RFC 2782's weighted random
 *                       order; each target resolved to an address (A, else AAAA) through the
 *                       same server; the node's port is the record's.
 *   type=a / type=aaaa  the addresses of `name`, each with `port`.
 *
 * `server=host:port` asks that server (node:dns Resolver.setServers) instead of the system's.
 * Answers are cached, bounded (DNS_CACHE_ENTRIES_MAX), for their TTL: A/AAAA TTLs come from
 * the answers (resolve4/6 with {ttl:true}); node:dns gives no TTL for SRV records, so an SRV
 * answer is kept for SRV_CACHE_MS_MAX at most (and never longer than its targets' TTLs).
 * NXDOMAIN or no records: RDB_DISCOVERY_FAILED; timeout or refusal: RDB_DISCOVERY_UNREACHABLE.
 */
import { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import { ErrorCode, isRdbnetError, RdbnetError } from '../../errors.ts';
import { type Random, systemRandom } from '../../runtime/index.ts';
import type { TimedClock } from '../../runtime/timers.ts';
import { formatHostPort, parseHostPort } from '../../transport/address.ts';
import type {
  DiscoveredNode,
  DiscoveryProvider,
  ProviderContext,
  ProviderFactory,
} from '../provider.ts';
import {
  badValue,
  DISCOVERED_NODES_MAX,
  durationValue,
  oneOfValue,
  portValue,
  valueOr,
} from '../values.ts';

const NAME = 'dns';
/** Default deadline of one DNS query. */
export const DNS_TIMEOUT_MS_DEFAULT = 2000;
/** Most answers kept in one provider's cache; the oldest goes first. */
export const DNS_CACHE_ENTRIES_MAX = 256;
/** Longest time an SRV answer is reused (node:dns does not report SRV TTLs). */
export const SRV_CACHE_MS_MAX = 5000;
/** Longest time any answer is reused, whatever its TTL says. */
export const DNS_CACHE_MS_MAX = 300_000;
/** Targets of one SRV answer resolved at once. */
const TARGET_LOOKUPS_PARALLEL = 16;

const TYPES = ['srv', 'a', 'aaaa'] as const;
type RecordType = (typeof TYPES)[number];

export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/**
 * RFC 2782's order: priorities ascending; within one, repeatedly pick a record with
 * probability weight / (sum of the weights left), records of weight 0 first in the running
 * order so they have a small chance when others have weight (as the RFC arranges them).
 */
export function orderSrvRecords(records: readonly SrvRecord[], random: Random): SrvRecord[] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const record of records) {
    const group = byPriority.get(record.priority) ?? [];
    group.push(record);
    byPriority.set(record.priority, group);
  }
  const out: SrvRecord[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const left = [...byPriority.get(priority)!].sort(
      (a, b) => (a.weight === 0 ? -1 : 0) - (b.weight === 0 ? -1 : 0),
    );
    while (left.length > 0) {
      const total = left.reduce((sum, record) => sum + record.weight, 0);
      let index = 0;
      if (total > 0) {
        // A uniform number in 0..total, then the first record whose running sum reaches it.
        const pick = Math.floor(random.next() * (total + 1));
        let running = 0;
        index = left.findIndex((record) => {
          running += record.weight;
          return running >= pick;
        });
        if (index < 0) index = left.length - 1;
      } else {
        index = random.int(left.length);
      }
      out.push(left.splice(index, 1)[0]!);
    }
  }
  return out;
}

interface CacheEntry<T> {
  value: T;
  expiresAtMs: number;
}

/** A bounded TTL cache on the injected clock: expired entries are dropped when read. */
export class TtlCache<T> {
  private readonly entries = new Map<string, CacheEntry<T>>();
  private readonly clock: { nowMs(): number };
  private readonly entriesMax: number;

  constructor(clock: { nowMs(): number }, entriesMax = DNS_CACHE_ENTRIES_MAX) {
    this.clock = clock;
    this.entriesMax = entriesMax;
  }

  get(key: string): T | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (this.clock.nowMs() >= entry.expiresAtMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Keeps `value` for ttlMs (capped at DNS_CACHE_MS_MAX); a TTL of 0 is not cached. */
  set(key: string, value: T, ttlMs: number): void {
    if (ttlMs <= 0) return;
    this.entries.delete(key);
    if (this.entries.size >= this.entriesMax) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, {
      value,
      expiresAtMs: this.clock.nowMs() + Math.min(ttlMs, DNS_CACHE_MS_MAX),
    });
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The resolver calls the provider makes; node:dns's Resolver in production. */
export interface DnsResolver {
  resolveSrv(name: string): Promise<SrvRecord[]>;
  resolve4(name: string, options: { ttl: true }): Promise<{ address: string; ttl: number }[]>;
  resolve6(name: string, options: { ttl: true }): Promise<{ address: string; ttl: number }[]>;
  cancel(): void;
}

interface Addresses {
  addresses: string[];
  ttlMs: number;
}

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'NODATA']);
const UNREACHABLE = new Set([
  'ETIMEOUT',
  'ECONNREFUSED',
  'EREFUSED',
  'ESERVFAIL',
  'ECANCELLED',
  'ECONNRESET',
]);

export interface DnsSettings {
  name: string;
  type: RecordType;
  /** `host:port` of the server to ask; null: the system's resolvers. */
  server: string | null;
  port: number | null;
  timeoutMs: number;
}

export class DnsProvider implements DiscoveryProvider {
  readonly name = NAME;
  private readonly settings: DnsSettings;
  private readonly resolver: DnsResolver;
  private readonly random: Random;
  private readonly ctx: ProviderContext;
  private readonly srvCache: TtlCache<SrvRecord[]>;
  private readonly addressCache: TtlCache<Addresses>;

  constructor(settings: DnsSettings, ctx: ProviderContext, random: Random, resolver?: DnsResolver) {
    this.settings = settings;
    this.ctx = ctx;
    this.random = random;
    this.srvCache = new TtlCache(ctx.clock);
    this.addressCache = new TtlCache(ctx.clock);
    if (resolver !== undefined) {
      this.resolver = resolver;
    } else {
      const real = new dnsPromises.Resolver({ timeout: settings.timeoutMs, tries: 1 });
      if (settings.server !== null) real.setServers([settings.server]);
      this.resolver = real;
    }
  }

  private get where(): string {
    return this.settings.server ?? 'the system resolver';
  }

  /** A query bounded by the timeout and the caller's signal; errors typed. */
  private async query<T>(
    what: string,
    name: string,
    run: () => Promise<T>,
    signal: AbortSignal,
  ): Promise<T | null> {
    signal.throwIfAborted();
    const { timeoutMs } = this.settings;
    let timer: ReturnType<TimedClock['setTimer']> | null = null;
    const onAbort = () => this.resolver.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await Promise.race([
        run(),
        new Promise<never>((_, reject) => {
          // c-ares has its own timeout; this one also covers its retries and a stuck socket.
          timer = this.ctx.clock.setTimer(timeoutMs * 2, () =>
            reject(
              new RdbnetError(
                ErrorCode.DiscoveryUnreachable,
                `provider=dns: ${this.where} did not answer the ${what} query for ${name} within ${timeoutMs * 2} ms`,
                { hint: 'check server= and that the DNS server is running' },
              ),
            ),
          );
        }),
      ]);
    } catch (error) {
      if (isRdbnetError(error)) throw error;
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (signal.aborted) throw signal.reason;
      if (NOT_FOUND.has(code)) return null;
      if (UNREACHABLE.has(code)) {
        throw new RdbnetError(
          ErrorCode.DiscoveryUnreachable,
          `provider=dns: ${this.where} did not answer the ${what} query for ${name} (${code}) within ${timeoutMs} ms`,
          { hint: 'check server= and that the DNS server is running' },
        );
      }
      throw new RdbnetError(
        ErrorCode.DiscoveryFailed,
        `provider=dns: the ${what} query for ${name} at ${this.where} failed: ${code || (error as Error).message}`,
      );
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (timer !== null) this.ctx.clock.clearTimer(timer);
    }
  }

  /** A and/or AAAA addresses of `host`, from the cache while their TTL lasts. */
  private async addresses(
    host: string,
    families: 'a' | 'aaaa' | 'both',
    signal: AbortSignal,
  ): Promise<Addresses> {
    const key = `${families} ${host}`;
    const cached = this.addressCache.get(key);
    if (cached !== undefined) return cached;
    const answers: { address: string; ttl: number }[] = [];
    if (families !== 'aaaa') {
      answers.push(
        ...((await this.query(
          'A',
          host,
          () => this.resolver.resolve4(host, { ttl: true }),
          signal,
        )) ?? []),
      );
    }
    if (families === 'aaaa' || (families === 'both' && answers.length === 0)) {
      answers.push(
        ...((await this.query(
          'AAAA',
          host,
          () => this.resolver.resolve6(host, { ttl: true }),
          signal,
        )) ?? []),
      );
    }
    const result: Addresses = {
      addresses: answers.map((answer) => answer.address),
      ttlMs: answers.length === 0 ? 0 : Math.min(...answers.map((answer) => answer.ttl)) * 1000,
    };
    this.addressCache.set(key, result, result.ttlMs);
    return result;
  }

  async discover(signal: AbortSignal): Promise<DiscoveredNode[]> {
    const { name, type, port } = this.settings;
    const source = `dns:${name}`;
    if (type !== 'srv') {
      const { addresses, ttlMs } = await this.addresses(name, type, signal);
      if (addresses.length === 0) {
        throw new RdbnetError(
          ErrorCode.DiscoveryFailed,
          `provider=dns: no ${type.toUpperCase()} records for ${name} at ${this.where}`,
        );
      }
      return addresses.slice(0, DISCOVERED_NODES_MAX).map((address) => ({
        address: formatHostPort({ host: address, port: port! }),
        source,
        meta: { ttl: String(Math.round(ttlMs / 1000)) },
      }));
    }
    let records = this.srvCache.get(name);
    const fromCache = records !== undefined;
    if (records === undefined) {
      records = (
        (await this.query('SRV', name, () => this.resolver.resolveSrv(name), signal)) ?? []
      )
        // RFC 2782: a target of "." means the service is decidedly not available here.
        .filter((record) => record.name !== '' && record.name !== '.')
        .slice(0, DISCOVERED_NODES_MAX);
    }
    if (records.length === 0) {
      throw new RdbnetError(
        ErrorCode.DiscoveryFailed,
        `provider=dns: no SRV records for ${name} at ${this.where}`,
        { hint: 'check name= (e.g. _rdbnet._tcp.db.internal) and the records the server holds' },
      );
    }
    const ordered = orderSrvRecords(records, this.random);
    const resolved: (DiscoveredNode | null)[] = new Array(ordered.length).fill(null);
    let ttlMs = SRV_CACHE_MS_MAX;
    for (let start = 0; start < ordered.length; start += TARGET_LOOKUPS_PARALLEL) {
      await Promise.all(
        ordered.slice(start, start + TARGET_LOOKUPS_PARALLEL).map(async (record, offset) => {
          const target = record.name.replace(/\.$/, '');
          let host: string | undefined;
          if (isIP(target) !== 0) host = target;
          else {
            const found = await this.addresses(target, 'both', signal);
            ttlMs = Math.min(ttlMs, found.ttlMs);
            host = found.addresses[0];
          }
          if (host === undefined) {
            this.ctx.log('warn', 'SRV target has no address', {
              provider: NAME,
              target,
              server: this.where,
            });
            return;
          }
          resolved[start + offset] = {
            address: formatHostPort({ host, port: record.port }),
            source,
            meta: {
              target,
              priority: String(record.priority),
              weight: String(record.weight),
            },
          };
        }),
      );
    }
    if (!fromCache) this.srvCache.set(name, records, ttlMs);
    const nodes = resolved.filter((node): node is DiscoveredNode => node !== null);
    if (nodes.length === 0) {
      throw new RdbnetError(
        ErrorCode.DiscoveryFailed,
        `provider=dns: no SRV target of ${name} resolves to an address at ${this.where}`,
      );
    }
    return nodes;
  }

  async close(): Promise<void> {
    this.resolver.cancel();
  }
}

/** Checks the keys; a bad value is RDB_DISCOVERY_SYNTAX naming it. */
export function dnsSettings(args: ReadonlyMap<string, string>): DnsSettings {
  const name = args.get('name')!.replace(/\.$/, '');
  if (
    !/^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*$/.test(name) ||
    name.length > 253
  ) {
    throw badValue(
      NAME,
      'name',
      `"${name}" is not a DNS name`,
      'for example _rdbnet._tcp.db.internal',
    );
  }
  const type = oneOfValue(NAME, 'type', args.get('type') ?? 'srv', TYPES);
  const serverText = args.get('server');
  let server: string | null = null;
  if (serverText !== undefined) {
    // A bare IP means port 53.
    const text =
      isIP(serverText) !== 0 ? formatHostPort({ host: serverText, port: 53 }) : serverText;
    try {
      const parsed = parseHostPort(text);
      if (isIP(parsed.host) !== 0 && parsed.port !== 0) server = formatHostPort(parsed);
    } catch {
      // refused below
    }
    if (server === null) {
      throw badValue(
        NAME,
        'server',
        `must be an IP address with an optional port, got "${serverText}"`,
        'for example 127.0.0.1:5353',
      );
    }
  }
  const portText = args.get('port');
  let port: number | null = null;
  if (type === 'srv') {
    if (portText !== undefined)
      throw badValue(NAME, 'port', 'is for type=a and type=aaaa (SRV records carry the port)');
  } else {
    if (portText === undefined) throw badValue(NAME, 'port', `is required with type=${type}`);
    port = portValue(NAME, 'port', portText);
  }
  // A bare number is seconds here, as go-discover's dns users write it.
  const timeoutMs = valueOr(args.get('timeout'), DNS_TIMEOUT_MS_DEFAULT, (text) =>
    durationValue(NAME, 'timeout', text, { minMs: 10, maxMs: 30_000, bareUnitMs: 1000 }),
  );
  return { name, type, server, port, timeoutMs };
}

export const dnsProvider: ProviderFactory = {
  name: NAME,
  summary:
    'SRV records (priority and weight honoured, targets resolved to A/AAAA), or A/AAAA records with a port.',
  example: 'provider=dns name=_rdbnet._tcp.db.internal server=127.0.0.1:5353',
  keys: [
    { name: 'name', required: true, doc: 'the DNS name to look up, e.g. _rdbnet._tcp.db.internal' },
    { name: 'type', required: false, doc: 'srv (default), a or aaaa' },
    {
      name: 'server',
      required: false,
      doc: 'DNS server ip[:port] to ask (default: the system resolvers; port 53)',
    },
    {
      name: 'port',
      required: false,
      doc: "the nodes' port, with type=a or type=aaaa (required there)",
    },
    { name: 'timeout', required: false, doc: 'deadline of one query, 10ms..30s (default 2s)' },
  ],
  create(args, ctx) {
    return new DnsProvider(dnsSettings(args), ctx, systemRandom);
  },
};
