/**
 * provider=consul: the passing instances of one Consul service, from the local agent's HTTP
 * API (`GET /v1/health/service/NAME?passing=true`, optionally by tag and datacenter), watched
 * with blocking queries (`index=` + `wait=`, the X-Consul-Index rules of Consul's "Blocking
 * Queries" page: an index that goes backwards starts over, one below 1 counts as 1).
 *
 * A node registers as one service instance with a TTL check
 * (`PUT /v1/agent/service/register`, `Check: {TTL, DeregisterCriticalServiceAfter}`), keeps it
 * passing every TTL/3 (`PUT /v1/agent/check/pass/service:ID`), registers again if the agent
 * forgot it (an agent restart, or the critical service was reaped), and deregisters on close
 * (`PUT /v1/agent/service/deregister/ID`). A node that dies without leaving turns critical
 * after the TTL — no longer passing, so no longer discovered — and is removed by the agent
 * after `deregister_after`.
 *
 * CONSUL_HTTP_ADDR (`host:port`, `http://…` or `https://…`) and CONSUL_HTTP_TOKEN are read from
 * the environment as Consul's own CLI does, when the spec does not say.
 */
import type { Dispatcher } from 'undici';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { backoffDelayMs, systemRandom } from '../../runtime/index.ts';
import type { TimerHandle } from '../../runtime/timers.ts';
import {
  abortablePause,
  type HttpAnswer,
  HttpUnreachable,
  headerValue,
  httpCall,
  JSON_CONTENT,
} from '../http.ts';
import type {
  DiscoveredNode,
  DiscoveryProvider,
  ProviderContext,
  ProviderFactory,
  Registration,
  SelfRegistration,
} from '../provider.ts';
import { undici } from '../undici.ts';
import { badValue, durationValue, type EndpointAddress, parseEndpointText } from '../values.ts';
import {
  KV_LIST_BYTES_MAX,
  KV_REGISTRATIONS_MAX,
  KV_SMALL_ANSWER_BYTES_MAX,
  KV_TIMEOUT_MS_DEFAULT,
  KV_TIMEOUT_MS_MAX,
  KV_TIMEOUT_MS_MIN,
  KV_TTL_MS_DEFAULT,
  KV_TTL_MS_MAX,
  KV_TTL_MS_MIN,
  KV_WATCH_BACKOFF_BASE_MS,
  KV_WATCH_BACKOFF_CAP_MS,
} from './kv/limits.ts';
import { checkSelfRegistration, sameNodeLists } from './kv/registrations.ts';

const PROVIDER = 'consul';

export const CONSUL_SERVICE_DEFAULT = 'rdbnet';
export const CONSUL_ADDRESS_DEFAULT = '127.0.0.1:8500';
/**
 * DeregisterCriticalServiceAfter (`deregister_after=`), default 1 m. Consul raises values below
 * one minute to one minute and reaps every 30 s, so a dead node's entry goes 1–1.5 min after
 * its check turned critical (it stops being *discovered* as soon as the TTL runs out).
 */
export const CONSUL_DEREGISTER_AFTER_MS_DEFAULT = 60_000;
export const CONSUL_DEREGISTER_AFTER_MS_MIN = 1_000;
export const CONSUL_DEREGISTER_AFTER_MS_MAX = 72 * 3_600_000;
/** The `wait=` of a blocking query (Consul caps it at 10 min and adds up to wait/16). */
export const CONSUL_WATCH_WAIT_MS = 60_000;
/** Blocking queries start at least this far apart, so an index that keeps moving cannot spin. */
export const CONSUL_WATCH_CALLS_GAP_MS = 100;
/** Consul's limits on service meta: 64 pairs, keys of [A-Za-z0-9_-]{1,128}, values ≤ 512. */
const CONSUL_META_PAIRS_MAX = 64;
const CONSUL_META_KEY = /^[A-Za-z0-9_-]{1,128}$/;
const CONSUL_META_VALUE_CHARS_MAX = 512;

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface ConsulConfig {
  service: string;
  scheme: 'http' | 'https';
  address: EndpointAddress;
  tag: string | undefined;
  datacenter: string | undefined;
  token: string | undefined;
  timeoutMs: number;
  ttlMs: number;
  deregisterAfterMs: number;
}

/** `host:port` or `http(s)://host:port` (CONSUL_HTTP_ADDR's forms). */
function parseAgentAddress(text: string): { scheme?: 'http' | 'https'; address?: EndpointAddress } {
  const match = /^(?:(https?):\/\/)?([^/]+?)\/?$/.exec(text);
  if (match === null) return {};
  const scheme = match[1] as 'http' | 'https' | undefined;
  return {
    ...(scheme === undefined ? {} : { scheme }),
    address: parseEndpointText(match[2] as string),
  };
}

/** Checks every key's value (RDB_DISCOVERY_SYNTAX naming the key or variable); no I/O. */
export function parseConsulConfig(
  args: ReadonlyMap<string, string>,
  env: Readonly<Record<string, string | undefined>>,
): ConsulConfig {
  const service = args.get('service') ?? CONSUL_SERVICE_DEFAULT;
  if (!NAME_PATTERN.test(service)) {
    throw badValue(
      PROVIDER,
      'service',
      `is "${service}"; a service name is letters, digits, - _ . (at most 128)`,
    );
  }

  let scheme: 'http' | 'https' = 'http';
  let address: EndpointAddress | undefined;
  const addressKey = args.get('address');
  const envAddress = env['CONSUL_HTTP_ADDR'];
  if (addressKey !== undefined) {
    const parsed = parseAgentAddress(addressKey);
    if (parsed.address === undefined) {
      throw badValue(
        PROVIDER,
        'address',
        `has "${addressKey}", not host:port (IPv6 as [::1]:8500)`,
      );
    }
    address = parsed.address;
    scheme = parsed.scheme ?? scheme;
  } else if (envAddress !== undefined && envAddress !== '') {
    const parsed = parseAgentAddress(envAddress);
    if (parsed.address === undefined) {
      throw new RdbnetError(
        ErrorCode.DiscoverySyntax,
        `provider=consul: CONSUL_HTTP_ADDR is "${envAddress}", not host:port or http(s)://host:port`,
      );
    }
    address = parsed.address;
    scheme = parsed.scheme ?? scheme;
  } else {
    address = parseEndpointText(CONSUL_ADDRESS_DEFAULT)!;
  }
  const schemeKey = args.get('scheme');
  if (schemeKey !== undefined) {
    if (schemeKey !== 'http' && schemeKey !== 'https') {
      throw badValue(PROVIDER, 'scheme', `is "${schemeKey}"; write http or https`);
    }
    scheme = schemeKey;
  }

  const tag = args.get('tag');
  if (tag !== undefined && !/^\S{1,255}$/.test(tag)) {
    throw badValue(PROVIDER, 'tag', 'must be 1..255 characters without spaces');
  }
  if (args.has('datacenter') && args.has('dc')) {
    throw badValue(PROVIDER, 'dc', 'and datacenter name the same thing; give one');
  }
  const datacenterKey = args.has('dc') ? 'dc' : 'datacenter';
  const datacenter = args.get(datacenterKey);
  if (datacenter !== undefined && !NAME_PATTERN.test(datacenter)) {
    throw badValue(PROVIDER, datacenterKey, `is "${datacenter}", not a datacenter name`);
  }

  const token = args.get('token') ?? (env['CONSUL_HTTP_TOKEN'] || undefined);
  if (token !== undefined && !/^[\x21-\x7e]{1,512}$/.test(token)) {
    throw badValue(PROVIDER, 'token', 'must be printable ASCII without spaces (at most 512)');
  }

  const duration = (key: string, fallback: number, min: number, max: number): number => {
    const text = args.get(key);
    return text === undefined
      ? fallback
      : durationValue(PROVIDER, key, text, { minMs: min, maxMs: max });
  };
  return {
    service,
    scheme,
    address,
    tag,
    datacenter,
    token,
    timeoutMs: duration('timeout', KV_TIMEOUT_MS_DEFAULT, KV_TIMEOUT_MS_MIN, KV_TIMEOUT_MS_MAX),
    ttlMs: duration('ttl', KV_TTL_MS_DEFAULT, KV_TTL_MS_MIN, KV_TTL_MS_MAX),
    deregisterAfterMs: duration(
      'deregister_after',
      CONSUL_DEREGISTER_AFTER_MS_DEFAULT,
      CONSUL_DEREGISTER_AFTER_MS_MIN,
      CONSUL_DEREGISTER_AFTER_MS_MAX,
    ),
  };
}

/** One entry of `/v1/health/service/NAME` (the fields used here). */
export interface ConsulServiceEntry {
  Node?: { Node?: string; Address?: string; Datacenter?: string };
  Service?: {
    ID?: string;
    Service?: string;
    Tags?: string[] | null;
    Address?: string;
    Port?: number;
    Meta?: Record<string, string> | null;
  };
}

/** A health entry as a node: the service's address (the node's when empty) and port. */
export function nodeFromEntry(
  entry: ConsulServiceEntry,
  service: string,
): DiscoveredNode | undefined {
  const host = entry.Service?.Address || entry.Node?.Address;
  const port = entry.Service?.Port;
  if (host === undefined || host === '' || typeof port !== 'number' || port < 1 || port > 65_535) {
    return undefined;
  }
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const meta: Record<string, string> = {};
  for (const [key, value] of Object.entries(entry.Service?.Meta ?? {})) {
    if (typeof value === 'string') meta[key] = value;
  }
  if (entry.Node?.Node !== undefined) meta['consul_node'] = entry.Node.Node;
  if (entry.Node?.Datacenter !== undefined) meta['datacenter'] = entry.Node.Datacenter;
  const tags = entry.Service?.Tags ?? [];
  if (tags.length > 0) meta['tags'] = tags.join(',');
  const node: DiscoveredNode = { address, source: `consul:${service}`, meta };
  if (entry.Service?.ID !== undefined && entry.Service.ID !== '') node.id = entry.Service.ID;
  return node;
}

/**
 * The index for the next blocking query from the one an answer carried (Consul's blocking
 * queries page): one that went backwards starts over at 0; a missing or non-positive one is 1.
 */
export function nextBlockingIndex(previous: bigint, answered: string | undefined): bigint {
  let index: bigint;
  try {
    index = answered === undefined ? 0n : BigInt(answered);
  } catch {
    index = 0n;
  }
  if (index < 1n) return 1n;
  if (index < previous) return 0n;
  return index;
}

function consulDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

const NEVER_ABORTED = new AbortController().signal;

class ConsulProvider implements DiscoveryProvider {
  readonly name = PROVIDER;
  readonly config: ConsulConfig;
  readonly ctx: ProviderContext;
  readonly dispatcher: Dispatcher;
  private readonly registrations = new Set<ConsulRegistration>();
  private closed: Promise<void> | undefined;

  constructor(config: ConsulConfig, ctx: ProviderContext) {
    this.config = config;
    this.ctx = ctx;
    this.dispatcher = new (undici().Agent)({ connect: { timeout: config.timeoutMs } });
  }

  /** One request to the agent; an answer other than 200 is RDB_DISCOVERY_FAILED with its text. */
  async request(
    method: 'GET' | 'PUT',
    path: string,
    options: { body?: unknown; signal: AbortSignal; extraWaitMs?: number; bytesMax?: number },
  ): Promise<HttpAnswer> {
    const endpoint = this.config.address.text;
    try {
      return await httpCall({
        provider: PROVIDER,
        endpoint,
        url: `${this.config.scheme}://${endpoint}${path}`,
        method,
        headers:
          this.config.token === undefined
            ? JSON_CONTENT
            : { ...JSON_CONTENT, 'x-consul-token': this.config.token },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        timeoutMs: this.config.timeoutMs + (options.extraWaitMs ?? 0),
        bytesMax: options.bytesMax ?? KV_SMALL_ANSWER_BYTES_MAX,
        signal: options.signal,
        dispatcher: this.dispatcher,
        timers: this.ctx.clock,
      });
    } catch (error) {
      if (!(error instanceof HttpUnreachable)) throw error;
      throw new RdbnetError(
        ErrorCode.DiscoveryUnreachable,
        `provider=consul: the agent at ${endpoint} did not answer (${error.reason})`,
        {
          hint: 'check that a Consul agent runs there, and address= (or CONSUL_HTTP_ADDR) and scheme=',
        },
      );
    }
  }

  failed(path: string, answer: HttpAnswer): RdbnetError {
    const text = answer.text.trim().split('\n')[0]?.slice(0, 200) ?? '';
    const hint =
      answer.status === 403
        ? { hint: 'give an ACL token with token= or CONSUL_HTTP_TOKEN' }
        : undefined;
    return new RdbnetError(
      ErrorCode.DiscoveryFailed,
      `provider=consul: ${this.config.address.text} answered ${path.split('?')[0]} with HTTP ${answer.status}: ${text}`,
      hint,
    );
  }

  private healthPath(index?: bigint): string {
    const query = new URLSearchParams({ passing: 'true' });
    if (this.config.tag !== undefined) query.set('tag', this.config.tag);
    if (this.config.datacenter !== undefined) query.set('dc', this.config.datacenter);
    if (index !== undefined) {
      query.set('index', index.toString());
      query.set('wait', consulDuration(CONSUL_WATCH_WAIT_MS));
    }
    return `/v1/health/service/${encodeURIComponent(this.config.service)}?${query}`;
  }

  private async health(
    signal: AbortSignal,
    index?: bigint,
  ): Promise<{ nodes: DiscoveredNode[]; index: string | undefined }> {
    const path = this.healthPath(index);
    const answer = await this.request('GET', path, {
      signal,
      bytesMax: KV_LIST_BYTES_MAX,
      // Consul may hold a blocking query for wait + wait/16.
      ...(index === undefined
        ? {}
        : { extraWaitMs: CONSUL_WATCH_WAIT_MS + CONSUL_WATCH_WAIT_MS / 16 }),
    });
    if (answer.status !== 200) throw this.failed(path, answer);
    let entries: unknown;
    try {
      entries = JSON.parse(answer.text);
    } catch {
      entries = undefined;
    }
    if (!Array.isArray(entries)) {
      throw new RdbnetError(
        ErrorCode.DiscoveryFailed,
        `provider=consul: ${this.config.address.text} answered the health query with something that is not a JSON list`,
      );
    }
    if (entries.length > KV_REGISTRATIONS_MAX) {
      this.ctx.log(
        'warn',
        `provider=consul: ${entries.length} instances of ${this.config.service}; the first ${KV_REGISTRATIONS_MAX} are used`,
      );
    }
    const nodes: DiscoveredNode[] = [];
    for (const entry of entries.slice(0, KV_REGISTRATIONS_MAX) as ConsulServiceEntry[]) {
      const node = nodeFromEntry(entry, this.config.service);
      if (node !== undefined) nodes.push(node);
    }
    nodes.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    return { nodes, index: headerValue(answer.headers, 'x-consul-index') };
  }

  async discover(signal: AbortSignal): Promise<DiscoveredNode[]> {
    return (await this.health(signal)).nodes;
  }

  async watch(onChange: (nodes: DiscoveredNode[]) => void, signal: AbortSignal): Promise<void> {
    let last: DiscoveredNode[] | undefined;
    let index = 0n;
    let attempt = 0;
    // Ends when the caller aborts, or when close() released the sockets under it.
    while (!signal.aborted && this.closed === undefined) {
      const startedMs = this.ctx.clock.nowMs();
      let pauseMs = 0;
      try {
        const answer = await this.health(signal, last === undefined ? undefined : index);
        attempt = 0;
        index = nextBlockingIndex(index, answer.index);
        if (last === undefined || !sameNodeLists(last, answer.nodes)) {
          last = answer.nodes;
          onChange(answer.nodes);
        }
        pauseMs = Math.max(0, CONSUL_WATCH_CALLS_GAP_MS - (this.ctx.clock.nowMs() - startedMs));
      } catch (error) {
        if (signal.aborted || this.closed !== undefined) break;
        // The first query decides: an agent that cannot be reached at all is the caller's error.
        if (last === undefined) throw error;
        index = 0n;
        pauseMs = backoffDelayMs(
          attempt++,
          KV_WATCH_BACKOFF_BASE_MS,
          KV_WATCH_BACKOFF_CAP_MS,
          systemRandom,
        );
        this.ctx.log(
          'warn',
          `provider=consul: watch query failed (${(error as Error).message}); again in ${pauseMs} ms`,
        );
      }
      await abortablePause(this.ctx.clock, pauseMs, signal);
    }
  }

  async register(self: SelfRegistration, signal: AbortSignal): Promise<Registration> {
    if (this.closed !== undefined) {
      throw new RdbnetError(ErrorCode.DiscoveryFailed, 'provider=consul: register after close');
    }
    checkSelfRegistration(PROVIDER, self);
    const registration = new ConsulRegistration(this, self, () =>
      this.registrations.delete(registration),
    );
    await registration.start(signal);
    this.registrations.add(registration);
    return registration;
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      await Promise.allSettled([...this.registrations].map((registration) => registration.close()));
      await this.dispatcher.destroy();
    })();
    return this.closed;
  }
}

/** Service meta Consul accepts; the rest is logged and left out. */
function consulMeta(
  meta: Record<string, string>,
  log: ProviderContext['log'],
): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [key, value] of Object.entries(meta)) {
    if (
      Object.keys(kept).length >= CONSUL_META_PAIRS_MAX ||
      !CONSUL_META_KEY.test(key) ||
      value.length > CONSUL_META_VALUE_CHARS_MAX
    ) {
      log(
        'warn',
        `provider=consul: meta ${key} is not registered (Consul allows ${CONSUL_META_PAIRS_MAX} keys of letters, digits, - _, values of at most ${CONSUL_META_VALUE_CHARS_MAX} characters)`,
      );
      continue;
    }
    kept[key] = value;
  }
  return kept;
}

/** One service instance with a TTL check, kept passing every TTL/3. */
class ConsulRegistration implements Registration {
  private readonly provider: ConsulProvider;
  private readonly self: SelfRegistration;
  private readonly onClosed: () => void;
  private readonly checkId: string;
  private timer: TimerHandle | undefined;
  private tick: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(provider: ConsulProvider, self: SelfRegistration, onClosed: () => void) {
    this.provider = provider;
    this.self = self;
    this.onClosed = onClosed;
    this.checkId = `service:${self.id}`;
  }

  private get periodMs(): number {
    return Math.max(500, Math.floor(this.provider.config.ttlMs / 3));
  }

  async start(signal: AbortSignal): Promise<void> {
    await this.registerService(signal);
    this.schedule();
  }

  private async registerService(signal: AbortSignal): Promise<void> {
    const { config, ctx } = this.provider;
    const host = parseEndpointText(this.self.address)!;
    const body = {
      ID: this.self.id,
      Name: config.service,
      Address: host.host,
      Port: host.port,
      Tags: config.tag === undefined ? [] : [config.tag],
      Meta: consulMeta(this.self.meta, ctx.log),
      Check: {
        CheckID: this.checkId,
        Name: `rdbnet node ${this.self.id} TTL`,
        TTL: consulDuration(config.ttlMs),
        DeregisterCriticalServiceAfter: consulDuration(config.deregisterAfterMs),
      },
    };
    const path = '/v1/agent/service/register';
    const registered = await this.provider.request('PUT', path, { body, signal });
    if (registered.status !== 200) throw this.provider.failed(path, registered);
    // A TTL check starts critical; pass it now so the node is discoverable at once.
    await this.pass(signal);
  }

  /** true when passed; false when the agent no longer knows the check. */
  private async pass(signal: AbortSignal): Promise<boolean> {
    const path = `/v1/agent/check/pass/${encodeURIComponent(this.checkId)}`;
    const answer = await this.provider.request('PUT', path, { signal });
    if (answer.status === 200) return true;
    if (answer.status === 404 || (answer.status === 500 && /unknown check/i.test(answer.text)))
      return false;
    throw this.provider.failed(path, answer);
  }

  private schedule(): void {
    if (this.closing !== undefined) return;
    this.timer = this.provider.ctx.clock.setTimer(this.periodMs, () => {
      this.tick = this.keepPassing();
    });
  }

  private async keepPassing(): Promise<void> {
    const { ctx } = this.provider;
    try {
      const passed = await this.pass(NEVER_ABORTED);
      if (!passed && this.closing === undefined) {
        ctx.log(
          'warn',
          `provider=consul: the agent forgot service ${this.self.id}; registering it again`,
        );
        await this.registerService(NEVER_ABORTED);
      }
    } catch (error) {
      ctx.log(
        'warn',
        `provider=consul: keeping ${this.checkId} passing failed (${(error as Error).message}); next try in ${this.periodMs} ms`,
      );
    } finally {
      this.schedule();
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.timer !== undefined) this.provider.ctx.clock.clearTimer(this.timer);
      await this.tick;
      try {
        const path = `/v1/agent/service/deregister/${encodeURIComponent(this.self.id)}`;
        const answer = await this.provider.request('PUT', path, { signal: NEVER_ABORTED });
        // 404: already gone (reaped, or the agent restarted): what deregistering wanted.
        if (answer.status !== 200 && answer.status !== 404)
          throw this.provider.failed(path, answer);
      } finally {
        this.onClosed();
      }
    })();
    return this.closing;
  }
}

export const consulProvider: ProviderFactory = {
  name: PROVIDER,
  summary:
    "passing instances of a Consul service from the agent's health API; blocking-query watch; TTL-check registration",
  example: 'provider=consul service=rdbnet address=127.0.0.1:8500 tag=c1',
  keys: [
    {
      name: 'service',
      required: false,
      doc: `Consul service name (default ${CONSUL_SERVICE_DEFAULT})`,
    },
    {
      name: 'address',
      required: false,
      doc: `agent host:port (default CONSUL_HTTP_ADDR, else ${CONSUL_ADDRESS_DEFAULT})`,
    },
    {
      name: 'scheme',
      required: false,
      doc: 'http or https (default http, or the scheme of CONSUL_HTTP_ADDR)',
    },
    {
      name: 'tag',
      required: false,
      doc: 'only instances with this tag; a registration carries it',
    },
    { name: 'datacenter', required: false, doc: "datacenter to query (default the agent's)" },
    { name: 'dc', required: false, doc: 'same as datacenter=' },
    {
      name: 'token',
      required: false,
      doc: 'ACL token sent as X-Consul-Token (default CONSUL_HTTP_TOKEN)',
    },
    { name: 'timeout', required: false, doc: 'deadline of one request, 100ms..60s (default 5s)' },
    { name: 'ttl', required: false, doc: "TTL of a registration's check, 2s..300s (default 10s)" },
    {
      name: 'deregister_after',
      required: false,
      doc: 'DeregisterCriticalServiceAfter of a registration (default 1m; Consul raises less to 1m)',
    },
  ],
  create(args: ReadonlyMap<string, string>, ctx: ProviderContext): DiscoveryProvider {
    return new ConsulProvider(parseConsulConfig(args, ctx.env), ctx);
  },
};
