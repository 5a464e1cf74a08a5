/**
 * `provider=mdns`: multicast DNS service discovery (RFC 6762, RFC 6763) of
 * `_rdbnet._tcp.local`, over UDP 224.0.0.251:5353, interoperable with avahi and Bonjour.
 *
 * Browsing asks for the service's PTR records and follows them to each instance's SRV (host
 * and port), TXT (`id=`, `cluster=`, `v=`) and the host's A/AAAA (mdns-cache.ts); watch()
 * keeps browsing, honours TTLs and goodbyes (TTL 0), and re-asks on a backing-off schedule.
 * register() is a responder for this node: it announces its records at start (twice, a
 * second apart), answers queries for them, and says goodbye on close.
 *
 * Not done: IPv6 (ff02::fb), probing for name conflicts (RFC 6762 §8.1: ids are unique
 * within a cluster, and the instance name is the node id), the random 20–120 ms delay on
 * shared answers.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import type { TimerHandle } from '../../runtime/timers.ts';
import { parseHostPort } from '../../transport/address.ts';
import type {
  DiscoveredNode,
  DiscoveryProvider,
  ProviderContext,
  ProviderFactory,
  Registration,
  SelfRegistration,
} from '../provider.ts';
import { badValue, durationValue, valueOr } from '../values.ts';
import { abortReason, interfaceKey, LAN_DURATION_BOUNDS, lanUnreachable } from './lan.ts';
import { MdnsCache } from './mdns-cache.ts';
import {
  decodeMessage,
  emptyMessage,
  encodeMessage,
  FLAGS_RESPONSE,
  isResponse,
  labelsOf,
  MdnsFormatError,
  type Message,
  nameKey,
  type Question,
  RecordType,
  type ResourceRecord,
} from './mdns-codec.ts';

const NAME = 'mdns';
export const MDNS_GROUP = '224.0.0.251';
export const MDNS_PORT = 5353;
export const MDNS_TIMEOUT_MS_DEFAULT = 2000;
/** Continuous browsing re-asks after 1 s, 2 s, 4 s … up to this (RFC 6762 §5.2 allows 60 min). */
export const MDNS_QUERY_INTERVAL_MAX_MS = 60_000;
/** How often a browser drops expired records and asks for what is missing. */
const MAINTENANCE_INTERVAL_MS = 1000;
/** Questions for missing records asked per maintenance round, at most. */
const MISSING_QUESTIONS_MAX = 32;
/**
 * A record is multicast in answer to queries at most once per this (RFC 6762 §6 asks one
 * second), so a flood of queries cannot make this node flood the link. Announcements and
 * goodbyes are not limited.
 */
export const MDNS_ANSWER_REPEAT_MIN_MS = 1000;
/** RFC 6762 §10: host-bound records (SRV, A) live 120 s, the others 75 min. */
const TTL_HOST_RECORDS_S = 120;
const TTL_OTHER_RECORDS_S = 4500;
/** RFC 6762 §6.7: answers to legacy (non-5353) askers carry at most this TTL. */
const TTL_LEGACY_MAX_S = 10;
/** TXT bytes published per node, at most (RFC 6763 §6.2 suggests staying under 1300). */
const TXT_BYTES_MAX = 1300;
/** Failure lines logged per provider; later ones are only counted. */
const LOG_LINES_MAX = 5;

export interface MdnsOptions {
  /** `_rdbnet._tcp` */
  service: string;
  /** `local` */
  domain: string;
  /** The IPv4 address of the interface to use; absent: every non-loopback IPv4 one. */
  interfaceAddress?: string;
  timeoutMs: number;
}

export interface MdnsStats {
  received: number;
  malformed: number;
  queriesSent: number;
  responsesSent: number;
  /** Records refused because a browse cache was full. */
  refused: number;
}

/** The IPv4 addresses to join the group on and send from. */
function interfaceAddresses(options: MdnsOptions): string[] {
  if (options.interfaceAddress !== undefined) return [options.interfaceAddress];
  const found: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const entry of list ?? []) {
      if (entry.family === 'IPv4' && !entry.internal) found.push(entry.address);
    }
  }
  // A host with no other interface still has loopback: nodes on it can find each other.
  return found.length > 0 ? found : ['127.0.0.1'];
}

/** A socket on 5353 in the group on every chosen interface; sends go out on each. */
class MulticastEndpoint {
  readonly socket: Socket;
  readonly addresses: string[];

  private constructor(socket: Socket, addresses: string[]) {
    this.socket = socket;
    this.addresses = addresses;
  }

  static async open(addresses: string[], onMessage: (packet: Buffer, from: RemoteInfo) => void) {
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('message', onMessage);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (error) => {
        socket.close();
        reject(lanUnreachable(NAME, `${MDNS_GROUP}:${MDNS_PORT}`, error));
      });
      socket.bind({ port: MDNS_PORT, address: '0.0.0.0', exclusive: false }, () => {
        socket.removeAllListeners('error');
        resolve();
      });
    });
    try {
      socket.setMulticastTTL(255);
      socket.setMulticastLoopback(true);
      for (const address of addresses) socket.addMembership(MDNS_GROUP, address);
    } catch (error) {
      socket.close();
      throw lanUnreachable(NAME, `${MDNS_GROUP}:${MDNS_PORT} on ${addresses.join(',')}`, error);
    }
    socket.on('error', () => {});
    return new MulticastEndpoint(socket, addresses);
  }

  /**
   * Sends to the group on every interface; resolves with how many sends failed. Never
   * rejects: a send after close, or a vanished interface, is a failure counted here.
   */
  async multicast(packet: Buffer): Promise<number> {
    let failures = 0;
    for (const address of this.addresses) {
      failures += await new Promise<number>((resolve) => {
        try {
          this.socket.setMulticastInterface(address);
          this.socket.send(packet, MDNS_PORT, MDNS_GROUP, (error) => resolve(error ? 1 : 0));
        } catch {
          resolve(1);
        }
      });
    }
    return failures;
  }

  unicast(packet: Buffer, to: RemoteInfo): void {
    try {
      this.socket.send(packet, to.port, to.address, () => {});
    } catch {
      // closed meanwhile: the asker asks again
    }
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

/** A DNS label for this node's host name: `rdbnet-<id>` in [a-z0-9-], at most 63 bytes. */
function hostLabelOf(id: string): string {
  const cleaned = `rdbnet-${id}`
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 63)
    .replace(/-+$/, '');
  return cleaned;
}

/** The records this node answers for; throws RDB_DISCOVERY_FAILED if it cannot be named. */
export function ownRecords(
  self: SelfRegistration,
  options: MdnsOptions,
  localAddresses: string[],
): ResourceRecord[] {
  const serviceName = `${options.service}.${options.domain}`;
  if (Buffer.byteLength(self.id) > 63 || self.id === '') {
    throw new RdbnetError(
      ErrorCode.DiscoveryFailed,
      `provider=${NAME}: node id "${self.id}" cannot be an instance name (1..63 bytes)`,
    );
  }
  const instance = `${self.id.replace(/[\\.]/g, (c) => `\\${c}`)}.${serviceName}`;
  const { host, port } = parseHostPort(self.address, 'registered address');
  let target: string;
  let addresses: string[];
  if (isIPv4(host) || isIPv6(host)) {
    target = `${hostLabelOf(self.id)}.${options.domain}`;
    addresses = host === '0.0.0.0' || host === '::' ? localAddresses : [host];
  } else {
    // A name (db.internal): published as the SRV target, resolved by whoever reads it.
    target = host;
    addresses = [];
  }
  const txt: string[] = [`id=${self.id}`, 'v=1'];
  let txtBytes = txt.reduce((sum, text) => sum + Buffer.byteLength(text) + 1, 0);
  for (const [key, value] of Object.entries(self.meta)) {
    const text = `${key}=${value}`;
    const bytes = Buffer.byteLength(text) + 1;
    if (
      key === 'id' ||
      key === 'v' ||
      key === '' ||
      bytes > 256 ||
      txtBytes + bytes > TXT_BYTES_MAX
    ) {
      continue;
    }
    txt.push(text);
    txtBytes += bytes;
  }
  const records: ResourceRecord[] = [
    {
      name: '_services._dns-sd._udp.local',
      ttl: TTL_OTHER_RECORDS_S,
      data: { type: RecordType.PTR, target: serviceName },
    },
    {
      name: serviceName,
      ttl: TTL_OTHER_RECORDS_S,
      data: { type: RecordType.PTR, target: instance },
    },
    {
      name: instance,
      ttl: TTL_HOST_RECORDS_S,
      cacheFlush: true,
      data: { type: RecordType.SRV, srv: { priority: 0, weight: 0, port, target } },
    },
    {
      name: instance,
      ttl: TTL_OTHER_RECORDS_S,
      cacheFlush: true,
      data: { type: RecordType.TXT, strings: txt },
    },
  ];
  for (const address of addresses) {
    records.push({
      name: target,
      ttl: TTL_HOST_RECORDS_S,
      cacheFlush: true,
      data: isIPv4(address) ? { type: RecordType.A, address } : { type: RecordType.AAAA, address },
    });
  }
  return records;
}

function sameRecord(a: ResourceRecord, b: ResourceRecord): boolean {
  return (
    nameKey(a.name) === nameKey(b.name) &&
    a.data.type === b.data.type &&
    JSON.stringify(a.data) === JSON.stringify(b.data)
  );
}

/**
 * The answer to one query from this node's records (RFC 6762 §6): matching records as
 * answers, minus those the asker listed as known with at least half their TTL left (§7.1),
 * and what resolves them as additionals (RFC 6763 §12). Undefined: nothing to say.
 */
export function answerQuery(query: Message, own: readonly ResourceRecord[]): Message | undefined {
  if (isResponse(query)) return undefined;
  const known = (record: ResourceRecord): boolean =>
    query.answers.some((answer) => sameRecord(answer, record) && answer.ttl >= record.ttl / 2);
  const answers: ResourceRecord[] = [];
  for (const question of query.questions) {
    for (const record of own) {
      if (nameKey(record.name) !== nameKey(question.name)) continue;
      if (question.type !== RecordType.ANY && question.type !== record.data.type) continue;
      if (known(record) || answers.includes(record)) continue;
      answers.push(record);
    }
  }
  if (answers.length === 0) return undefined;
  const additionals: ResourceRecord[] = [];
  const add = (record: ResourceRecord): void => {
    if (!answers.includes(record) && !additionals.includes(record)) additionals.push(record);
  };
  for (const answer of answers) {
    const data = answer.data;
    const follow =
      'target' in data && data.type === RecordType.PTR
        ? data.target
        : 'srv' in data
          ? data.srv.target
          : undefined;
    if (follow === undefined) continue;
    for (const record of own) {
      if (nameKey(record.name) !== nameKey(follow)) continue;
      add(record);
      if ('srv' in record.data) {
        const host = nameKey(record.data.srv.target);
        for (const address of own) if (nameKey(address.name) === host) add(address);
      }
    }
  }
  const response = emptyMessage(FLAGS_RESPONSE);
  response.answers = answers;
  response.additionals = additionals;
  return response;
}

export class MdnsProvider implements DiscoveryProvider {
  readonly name = NAME;
  readonly options: MdnsOptions;
  readonly stats: MdnsStats = {
    received: 0,
    malformed: 0,
    queriesSent: 0,
    responsesSent: 0,
    refused: 0,
  };
  private readonly ctx: ProviderContext;
  private readonly closers = new Set<() => Promise<void>>();
  private logLines = 0;

  constructor(options: MdnsOptions, ctx: ProviderContext) {
    this.options = options;
    this.ctx = ctx;
  }

  private get serviceName(): string {
    return `${this.options.service}.${this.options.domain}`;
  }

  private get source(): string {
    return `${NAME}:${this.serviceName}`;
  }

  private logOnce(message: string, fields?: Record<string, unknown>): void {
    if (this.logLines >= LOG_LINES_MAX) return;
    this.logLines++;
    this.ctx.log('warn', message, fields);
  }

  private decode(packet: Buffer, from: RemoteInfo): Message | undefined {
    this.stats.received++;
    try {
      return decodeMessage(packet);
    } catch (error) {
      if (!(error instanceof MdnsFormatError)) throw error;
      this.stats.malformed++;
      this.logOnce(`provider=${NAME}: ignored a malformed packet: ${error.message}`, {
        from: from.address,
      });
      return undefined;
    }
  }

  /** Never rejects: a name that cannot be encoded or a failed send is logged and skipped. */
  private async ask(endpoint: MulticastEndpoint, questions: Question[]): Promise<void> {
    if (questions.length === 0) return;
    const query = emptyMessage();
    query.questions = questions.slice(0, MISSING_QUESTIONS_MAX);
    let packet: Buffer;
    try {
      packet = encodeMessage(query);
    } catch (error) {
      this.logOnce(`provider=${NAME}: cannot ask: ${(error as Error).message}`);
      return;
    }
    this.stats.queriesSent++;
    const failures = await endpoint.multicast(packet);
    if (failures > 0) this.logOnce(`provider=${NAME}: ${failures} query sends failed`);
  }

  /**
   * Browses until `signal` aborts: asks at once, again on the backing-off schedule, and for
   * what is missing each second; `onChange` gets the node list whenever it changes.
   */
  private async browse(
    signal: AbortSignal,
    onChange: (nodes: DiscoveredNode[]) => void,
  ): Promise<MdnsCache> {
    const cache = new MdnsCache(this.serviceName);
    let last = '[]';
    const report = (): void => {
      const nodes = cache.resolve(this.source);
      const text = JSON.stringify(nodes);
      if (text === last) return;
      last = text;
      onChange(nodes);
    };
    const endpoint = await MulticastEndpoint.open(
      interfaceAddresses(this.options),
      (packet, from) => {
        const message = this.decode(packet, from);
        if (message === undefined) return;
        const refusedBefore = cache.refused;
        if (cache.ingest(message, this.ctx.clock.nowMs())) report();
        this.stats.refused += cache.refused - refusedBefore;
      },
    );
    const browseQuestion: Question = { name: this.serviceName, type: RecordType.PTR };
    let queryTimer: TimerHandle | undefined;
    let maintenanceTimer: TimerHandle | undefined;
    let intervalMs = 1000;
    const query = (): void => {
      void this.ask(endpoint, [browseQuestion]);
      queryTimer = this.ctx.clock.setTimer(intervalMs, query);
      intervalMs = Math.min(intervalMs * 2, MDNS_QUERY_INTERVAL_MAX_MS);
    };
    const maintain = (): void => {
      if (cache.expire(this.ctx.clock.nowMs())) report();
      void this.ask(endpoint, cache.missing());
      maintenanceTimer = this.ctx.clock.setTimer(MAINTENANCE_INTERVAL_MS, maintain);
    };
    // The first follow-up comes soon: a responder that sent only the PTR is asked at once.
    maintenanceTimer = this.ctx.clock.setTimer(MAINTENANCE_INTERVAL_MS / 4, maintain);
    query();
    await new Promise<void>((resolve) => {
      const stop = async (): Promise<void> => {
        this.closers.delete(stop);
        if (queryTimer !== undefined) this.ctx.clock.clearTimer(queryTimer);
        if (maintenanceTimer !== undefined) this.ctx.clock.clearTimer(maintenanceTimer);
        endpoint.close();
        resolve();
      };
      this.closers.add(stop);
      if (signal.aborted) void stop();
      else signal.addEventListener('abort', () => void stop(), { once: true });
    });
    return cache;
  }

  async discover(signal: AbortSignal): Promise<DiscoveredNode[]> {
    signal.throwIfAborted();
    const window = new AbortController();
    const timer = this.ctx.clock.setTimer(this.options.timeoutMs, () => window.abort());
    const onAbort = (): void => window.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const cache = await this.browse(window.signal, () => {});
      if (signal.aborted) throw abortReason(signal);
      return cache.resolve(this.source);
    } finally {
      this.ctx.clock.clearTimer(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  async watch(onChange: (nodes: DiscoveredNode[]) => void, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    await this.browse(signal, onChange);
  }

  async register(self: SelfRegistration, signal: AbortSignal): Promise<Registration> {
    signal.throwIfAborted();
    const addresses = interfaceAddresses(this.options);
    const own = ownRecords(self, this.options, addresses);
    const lastAnsweredAtMs = new Map<ResourceRecord, number>();
    const endpoint = await MulticastEndpoint.open(addresses, (packet, from) => {
      const message = this.decode(packet, from);
      if (message === undefined) return;
      const legacy = from.port !== MDNS_PORT;
      const response = answerQuery(message, own);
      if (response === undefined) return;
      if (!legacy) {
        const nowMs = this.ctx.clock.nowMs();
        const due = (record: ResourceRecord): boolean =>
          nowMs - (lastAnsweredAtMs.get(record) ?? Number.NEGATIVE_INFINITY) >=
          MDNS_ANSWER_REPEAT_MIN_MS;
        response.answers = response.answers.filter(due);
        if (response.answers.length === 0) return;
        response.additionals = response.additionals.filter(due);
        for (const record of [...response.answers, ...response.additionals]) {
          lastAnsweredAtMs.set(record, nowMs);
        }
      }
      this.stats.responsesSent++;
      if (legacy) {
        // RFC 6762 §6.7: a one-shot asker gets a unicast DNS answer with its id and question.
        response.id = message.id;
        response.questions = message.questions;
        for (const section of [response.answers, response.additionals]) {
          section.forEach((record, i) => {
            section[i] = {
              ...record,
              ttl: Math.min(record.ttl, TTL_LEGACY_MAX_S),
              cacheFlush: false,
            };
          });
        }
        endpoint.unicast(encodeMessage(response), from);
      } else {
        void endpoint.multicast(encodeMessage(response));
      }
    });
    const announcement = (ttl: number | undefined): Buffer => {
      const message = emptyMessage(FLAGS_RESPONSE);
      message.answers = own.map((record) => (ttl === undefined ? record : { ...record, ttl }));
      return encodeMessage(message);
    };
    // RFC 6762 §8.3: announce at least twice, one second apart.
    const failures = await endpoint.multicast(announcement(undefined));
    if (failures === endpoint.addresses.length) {
      endpoint.close();
      throw lanUnreachable(
        NAME,
        `${MDNS_GROUP}:${MDNS_PORT} on ${endpoint.addresses.join(',')}`,
        'send failed',
      );
    }
    this.stats.responsesSent++;
    let closed = false;
    const again = this.ctx.clock.setTimer(1000, () => {
      if (closed) return;
      this.stats.responsesSent++;
      void endpoint.multicast(announcement(undefined));
    });
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      this.closers.delete(close);
      signal.removeEventListener('abort', onAbort);
      this.ctx.clock.clearTimer(again);
      // Goodbye (RFC 6762 §10.1): the same records with TTL 0.
      await endpoint.multicast(announcement(0));
      endpoint.close();
    };
    const onAbort = (): void => void close();
    signal.addEventListener('abort', onAbort, { once: true });
    this.closers.add(close);
    return { close };
  }

  async close(): Promise<void> {
    await Promise.all([...this.closers].map((closer) => closer()));
  }
}

function labelKey(key: string, text: string, pattern: RegExp, shape: string): string {
  const labels = labelsOf(text);
  if (labels.length === 0 || !labels.every((label) => pattern.test(label))) {
    throw badValue(NAME, key, `must be ${shape}, got "${text}"`);
  }
  return labels.join('.');
}

export const mdnsProvider: ProviderFactory = {
  name: NAME,
  summary:
    'Multicast DNS service discovery (RFC 6762/6763) of _rdbnet._tcp.local on the local link; interoperable with avahi and Bonjour',
  example: 'provider=mdns service=_rdbnet._tcp timeout=2s',
  keys: [
    {
      name: 'service',
      required: false,
      doc: 'DNS-SD service type, _name._tcp or _name._udp (default _rdbnet._tcp)',
    },
    { name: 'domain', required: false, doc: 'mDNS domain (default local)' },
    {
      name: 'interface',
      required: false,
      doc: 'local interface (name or IPv4 address) to use (default: every non-loopback IPv4 interface)',
    },
    {
      name: 'timeout',
      required: false,
      doc: `how long one discover browses (default ${MDNS_TIMEOUT_MS_DEFAULT / 1000}s)`,
    },
  ],
  create(args, ctx) {
    const serviceText = args.get('service') ?? '_rdbnet._tcp';
    const service = labelKey(
      'service',
      serviceText,
      /^_[A-Za-z0-9-]{1,15}$/,
      'a service type like _rdbnet._tcp',
    );
    if (!/^_[A-Za-z0-9-]{1,15}\._(tcp|udp)$/.test(service)) {
      throw badValue(NAME, 'service', `must be _name._tcp or _name._udp, got "${serviceText}"`);
    }
    const domain = labelKey(
      'domain',
      args.get('domain') ?? 'local',
      /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/,
      'a domain name like local',
    );
    const timeoutMs = valueOr(args.get('timeout'), MDNS_TIMEOUT_MS_DEFAULT, (text) =>
      durationValue(NAME, 'timeout', text, LAN_DURATION_BOUNDS),
    );
    const options: MdnsOptions = { service, domain, timeoutMs };
    const interfaceText = args.get('interface');
    if (interfaceText !== undefined) {
      const local = interfaceKey(NAME, 'interface', interfaceText);
      if (local.ipv4 === undefined) {
        throw badValue(NAME, 'interface', `"${interfaceText}" has no IPv4 address for mDNS`);
      }
      options.interfaceAddress = local.ipv4.address;
    }
    return new MdnsProvider(options, ctx);
  },
};
