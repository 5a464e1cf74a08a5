/**
 * provider=etcd: nodes registered under one etcd v3 prefix, one key per node
 * (`PREFIX/ID` → JSON `{"id","address","meta"}`) attached to a lease the node keeps alive, so
 * a node that dies without leaving disappears when its lease expires.
 *
 * It speaks etcd's JSON gRPC gateway over HTTP(S) (`/v3/kv/range`, `/v3/kv/put`,
 * `/v3/kv/deleterange`, `/v3/lease/grant|keepalive|revoke`, `/v3/watch`; keys and values in
 * base64), which etcd serves under `/v3/` since 3.4 (Debian's etcd-server is 3.4) — no gRPC
 * stack needed. Endpoints are tried in order, starting from the last one that answered.
 * The watch is a streamed `/v3/watch` answer (one JSON object per line) over the prefix; after
 * any break it reads the prefix again and re-opens the watch from that revision, with bounded
 * backoff, so no change is missed and no stale entry survives a reconnect.
 */
import { readFileSync } from 'node:fs';
import type { Dispatcher } from 'undici';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { backoffDelayMs, systemRandom } from '../../runtime/index.ts';
import type { TimerHandle } from '../../runtime/timers.ts';
import { abortablePause, HttpUnreachable, httpCall, httpStream, JSON_CONTENT } from '../http.ts';
import type {
  DiscoveredNode,
  DiscoveryProvider,
  ProviderContext,
  ProviderFactory,
  Registration,
  SelfRegistration,
} from '../provider.ts';
import { undici } from '../undici.ts';
import {
  badValue,
  booleanValue,
  durationValue,
  type EndpointAddress,
  endpointValue,
} from '../values.ts';
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
import {
  checkSelfRegistration,
  decodeRegistrationValue,
  encodeRegistrationValue,
  sameNodeLists,
} from './kv/registrations.ts';

const PROVIDER = 'etcd';

export const ETCD_PREFIX_DEFAULT = '/rdbnet/default';
/** At most this many endpoints in `endpoints=`. */
export const ETCD_ENDPOINTS_MAX = 16;
/** A prefix longer than this is a mistake. */
export const ETCD_PREFIX_CHARS_MAX = 512;
/**
 * A watch stream that carried nothing (not even a progress notification) for this long is
 * re-opened after a fresh read, so a connection that died silently is noticed within it.
 */
export const ETCD_WATCH_IDLE_MS = 60_000;
/** gRPC status codes etcd's gateway puts in its error documents. */
const GRPC_NOT_FOUND = 5;
const GRPC_UNAVAILABLE = 14;

export interface EtcdTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export interface EtcdConfig {
  endpoints: EndpointAddress[];
  /** Without a trailing slash: `/rdbnet/c1`; registrations are `PREFIX/ID`. */
  prefix: string;
  ttlSeconds: number;
  timeoutMs: number;
  /** null: plain HTTP. */
  tls: EtcdTls | null;
}

type ReadFile = (path: string) => Buffer;

function readKeyFile(key: string, path: string, readFile: ReadFile): Buffer {
  try {
    return readFile(path);
  } catch (error) {
    const code = (error as { code?: string }).code ?? String(error);
    throw badValue(PROVIDER, key, `names ${path}, which cannot be read (${code})`);
  }
}

/** Checks every key's value (RDB_DISCOVERY_SYNTAX naming the key); reads only the TLS files. */
export function parseEtcdConfig(
  args: ReadonlyMap<string, string>,
  readFile: ReadFile = readFileSync,
): EtcdConfig {
  const endpointTexts = (args.get('endpoints') ?? '').split(',').map((text) => text.trim());
  if (endpointTexts.length > ETCD_ENDPOINTS_MAX) {
    throw badValue(
      PROVIDER,
      'endpoints',
      `lists ${endpointTexts.length}; at most ${ETCD_ENDPOINTS_MAX}`,
    );
  }
  const endpoints = endpointTexts.map((text) => endpointValue(PROVIDER, 'endpoints', text));

  const prefix = args.get('prefix') ?? ETCD_PREFIX_DEFAULT;
  if (prefix.length > ETCD_PREFIX_CHARS_MAX || !/^(\/[^/\s]+)+$/.test(prefix)) {
    throw badValue(
      PROVIDER,
      'prefix',
      `is "${prefix}"; write a path like /rdbnet/NAME (no spaces, no trailing /, at most ${ETCD_PREFIX_CHARS_MAX} characters)`,
    );
  }

  const ttlText = args.get('ttl');
  const ttlMs =
    ttlText === undefined
      ? KV_TTL_MS_DEFAULT
      : durationValue(PROVIDER, 'ttl', ttlText, { minMs: KV_TTL_MS_MIN, maxMs: KV_TTL_MS_MAX });
  if (ttlMs % 1000 !== 0) {
    throw badValue(PROVIDER, 'ttl', `is ${ttlText}; etcd leases count whole seconds`);
  }

  const timeoutText = args.get('timeout');
  const timeoutMs =
    timeoutText === undefined
      ? KV_TIMEOUT_MS_DEFAULT
      : durationValue(PROVIDER, 'timeout', timeoutText, {
          minMs: KV_TIMEOUT_MS_MIN,
          maxMs: KV_TIMEOUT_MS_MAX,
        });

  const tlsText = args.get('tls');
  const useTls = tlsText === undefined ? false : booleanValue(PROVIDER, 'tls', tlsText);
  for (const key of ['ca', 'cert', 'key']) {
    if (args.has(key) && !useTls) throw badValue(PROVIDER, key, 'needs tls=true');
  }
  if (args.has('cert') !== args.has('key')) {
    throw badValue(
      PROVIDER,
      args.has('cert') ? 'key' : 'cert',
      'is required with cert= and key= together',
    );
  }
  let tls: EtcdTls | null = null;
  if (useTls) {
    tls = {};
    for (const key of ['ca', 'cert', 'key'] as const) {
      const path = args.get(key);
      if (path !== undefined) tls[key] = readKeyFile(key, path, readFile);
    }
  }
  return { endpoints, prefix, ttlSeconds: ttlMs / 1000, timeoutMs, tls };
}

/** etcd wants bytes as base64 in JSON. */
function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

function unb64(text: unknown): string {
  return typeof text === 'string' ? Buffer.from(text, 'base64').toString('utf8') : '';
}

/**
 * The key range holding a prefix's registrations: `PREFIX/` up to `PREFIX0` ('0' follows '/'),
 * so `/rdbnet/c1` never reads `/rdbnet/c10/...`.
 */
export function registrationRange(prefix: string): { key: string; range_end: string } {
  return { key: b64(`${prefix}/`), range_end: b64(`${prefix}0`) };
}

interface EtcdKv {
  key?: string;
  value?: string;
  mod_revision?: string;
}

/** What a raw etcd kv says: a node, or why it is not one (a bad value someone else wrote). */
export function nodeFromKv(kv: EtcdKv): { key: string; node?: DiscoveredNode; problem?: string } {
  const key = unb64(kv.key);
  const decoded = decodeRegistrationValue(unb64(kv.value), `etcd:${key}`);
  return typeof decoded === 'string' ? { key, problem: decoded } : { key, node: decoded };
}

/** The error etcd's gateway answered, with its gRPC code (5 not found, 14 unavailable...). */
export class EtcdAnswerError extends RdbnetError {
  readonly grpcCode: number | undefined;

  constructor(message: string, grpcCode: number | undefined) {
    super(ErrorCode.DiscoveryFailed, message);
    this.name = 'EtcdAnswerError';
    this.grpcCode = grpcCode;
  }
}

function answerError(
  endpoint: string,
  path: string,
  status: number,
  text: string,
): EtcdAnswerError {
  let message = text.slice(0, 200);
  let grpcCode: number | undefined;
  try {
    const doc = JSON.parse(text) as { message?: unknown; error?: unknown; code?: unknown };
    if (typeof doc.message === 'string') message = doc.message;
    else if (typeof doc.error === 'string') message = doc.error;
    if (typeof doc.code === 'number') grpcCode = doc.code;
  } catch {
    // not JSON: keep the text
  }
  return new EtcdAnswerError(
    `provider=etcd: ${endpoint} answered ${path} with HTTP ${status}: ${message}`,
    grpcCode,
  );
}

function parseAnswer<T>(endpoint: string, path: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new RdbnetError(
      ErrorCode.DiscoveryFailed,
      `provider=etcd: ${endpoint} answered ${path} with something that is not JSON`,
    );
  }
}

const NEVER_ABORTED = new AbortController().signal;

/** The endpoints and their failover: one JSON call, tried at each endpoint in turn. */
class EtcdClient {
  private preferred = 0;
  readonly dispatcher: Dispatcher;
  readonly config: EtcdConfig;
  readonly ctx: ProviderContext;

  constructor(config: EtcdConfig, ctx: ProviderContext) {
    this.config = config;
    this.ctx = ctx;
    const tls = config.tls;
    this.dispatcher = new (undici().Agent)({
      connect: {
        timeout: config.timeoutMs,
        ...(tls?.ca === undefined ? {} : { ca: tls.ca }),
        ...(tls?.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
      },
    });
  }

  url(endpoint: EndpointAddress, path: string): string {
    return `${this.config.tls === null ? 'http' : 'https'}://${endpoint.text}/v3${path}`;
  }

  /** Endpoint indexes in the order to try: the last that answered, then the others in order. */
  order(): number[] {
    const n = this.config.endpoints.length;
    return Array.from({ length: n }, (_, i) => (this.preferred + i) % n);
  }

  answered(index: number): void {
    this.preferred = index;
  }

  unreachable(failures: string[]): RdbnetError {
    return new RdbnetError(
      ErrorCode.DiscoveryUnreachable,
      `provider=etcd: no endpoint answered: ${failures.join('; ')}`,
      { hint: 'check that etcd runs there and that endpoints= (and tls=) are right' },
    );
  }

  async call<T>(
    path: string,
    body: unknown,
    signal: AbortSignal,
    bytesMax = KV_SMALL_ANSWER_BYTES_MAX,
  ): Promise<T> {
    const failures: string[] = [];
    for (const index of this.order()) {
      const endpoint = this.config.endpoints[index]!;
      try {
        const answer = await httpCall({
          provider: PROVIDER,
          endpoint: endpoint.text,
          url: this.url(endpoint, path),
          method: 'POST',
          headers: JSON_CONTENT,
          body: JSON.stringify(body),
          timeoutMs: this.config.timeoutMs,
          bytesMax,
          signal,
          dispatcher: this.dispatcher,
          timers: this.ctx.clock,
        });
        if (answer.status !== 200) {
          const error = answerError(endpoint.text, path, answer.status, answer.text);
          // A member that lost its leader cannot serve; another may.
          if (error.grpcCode === GRPC_UNAVAILABLE) {
            failures.push(`${endpoint.text} (${error.message})`);
            continue;
          }
          throw error;
        }
        this.answered(index);
        return parseAnswer<T>(endpoint.text, path, answer.text);
      } catch (error) {
        if (!(error instanceof HttpUnreachable)) throw error;
        failures.push(`${error.endpoint} (${error.reason})`);
      }
    }
    throw this.unreachable(failures);
  }
}

interface RangeAnswer {
  header?: { revision?: string };
  kvs?: EtcdKv[];
  more?: boolean;
}

interface WatchLine {
  result?: {
    header?: { revision?: string };
    created?: boolean;
    canceled?: boolean;
    compact_revision?: string;
    cancel_reason?: string;
    events?: Array<{ type?: string; kv?: EtcdKv }>;
  };
  error?: { message?: string; grpc_code?: number };
}

class EtcdProvider implements DiscoveryProvider {
  readonly name = PROVIDER;
  private readonly client: EtcdClient;
  private readonly registrations = new Set<EtcdRegistration>();
  /** Keys whose bad value was already logged, so a watch does not repeat it (bounded). */
  private readonly reportedBadKeys = new Set<string>();
  private closed: Promise<void> | undefined;
  readonly config: EtcdConfig;
  readonly ctx: ProviderContext;

  constructor(config: EtcdConfig, ctx: ProviderContext) {
    this.config = config;
    this.ctx = ctx;
    this.client = new EtcdClient(config, ctx);
  }

  private noteBadValue(key: string, problem: string): void {
    if (this.reportedBadKeys.has(key) || this.reportedBadKeys.size >= KV_REGISTRATIONS_MAX) return;
    this.reportedBadKeys.add(key);
    this.ctx.log('warn', `provider=etcd: ${key} is not a registration (${problem}); ignored`);
  }

  /** The prefix's registrations by key, and the revision they were read at. */
  private async readAll(
    signal: AbortSignal,
  ): Promise<{ entries: Map<string, DiscoveredNode>; revision: bigint }> {
    const answer = await this.client.call<RangeAnswer>(
      '/kv/range',
      { ...registrationRange(this.config.prefix), limit: String(KV_REGISTRATIONS_MAX) },
      signal,
      KV_LIST_BYTES_MAX,
    );
    if (answer.more === true) {
      this.ctx.log(
        'warn',
        `provider=etcd: more than ${KV_REGISTRATIONS_MAX} registrations under ${this.config.prefix}; the first ${KV_REGISTRATIONS_MAX} are used`,
      );
    }
    const entries = new Map<string, DiscoveredNode>();
    for (const kv of answer.kvs ?? []) {
      const { key, node, problem } = nodeFromKv(kv);
      if (node !== undefined) entries.set(key, node);
      else this.noteBadValue(key, problem ?? 'unreadable');
    }
    const revision = /^\d{1,20}$/.test(answer.header?.revision ?? '')
      ? BigInt(answer.header!.revision!)
      : undefined;
    if (revision === undefined) {
      throw new RdbnetError(
        ErrorCode.DiscoveryFailed,
        'provider=etcd: the range answer carries no revision to watch from',
      );
    }
    return { entries, revision };
  }

  async discover(signal: AbortSignal): Promise<DiscoveredNode[]> {
    const { entries } = await this.readAll(signal);
    return listOf(entries);
  }

  async watch(onChange: (nodes: DiscoveredNode[]) => void, signal: AbortSignal): Promise<void> {
    let last: DiscoveredNode[] | undefined;
    const emit = (entries: Map<string, DiscoveredNode>) => {
      const nodes = listOf(entries);
      if (last !== undefined && sameNodeLists(last, nodes)) return;
      last = nodes;
      onChange(nodes);
    };
    let attempt = 0;
    // Ends when the caller aborts, or when close() released the sockets under it.
    while (!signal.aborted && this.closed === undefined) {
      let pauseMs = 0;
      try {
        const { entries, revision } = await this.readAll(signal);
        emit(entries);
        await this.follow(entries, revision + 1n, signal, emit, () => {
          attempt = 0;
        });
      } catch (error) {
        if (signal.aborted || this.closed !== undefined) break;
        // The first read decides: an etcd that cannot be reached at all is the caller's error.
        if (last === undefined) throw error;
        pauseMs = backoffDelayMs(
          attempt++,
          KV_WATCH_BACKOFF_BASE_MS,
          KV_WATCH_BACKOFF_CAP_MS,
          systemRandom,
        );
        this.ctx.log(
          'warn',
          `provider=etcd: watch broke (${(error as Error).message}); again in ${pauseMs} ms`,
        );
      }
      await abortablePause(this.ctx.clock, pauseMs, signal);
    }
  }

  /**
   * Follows one watch stream from `startRevision`, applying events to `entries`. Returns when
   * the stream must be re-opened after a fresh read (the revision was compacted, or the stream
   * stayed idle); throws when it broke or etcd cancelled it.
   */
  private async follow(
    entries: Map<string, DiscoveredNode>,
    startRevision: bigint,
    signal: AbortSignal,
    emit: (entries: Map<string, DiscoveredNode>) => void,
    onCreated: () => void,
  ): Promise<void> {
    const idle = new AbortController();
    const streamSignal = AbortSignal.any([signal, idle.signal]);
    let idleTimer: TimerHandle | undefined;
    const rearmIdle = () => {
      if (idleTimer !== undefined) this.ctx.clock.clearTimer(idleTimer);
      idleTimer = this.ctx.clock.setTimer(ETCD_WATCH_IDLE_MS, () => idle.abort());
    };
    const failures: string[] = [];
    try {
      for (const index of this.client.order()) {
        const endpoint = this.config.endpoints[index]!;
        rearmIdle();
        let stream: Awaited<ReturnType<typeof httpStream>>;
        try {
          stream = await httpStream({
            provider: PROVIDER,
            endpoint: endpoint.text,
            url: this.client.url(endpoint, '/watch'),
            method: 'POST',
            headers: JSON_CONTENT,
            body: JSON.stringify({
              create_request: {
                ...registrationRange(this.config.prefix),
                start_revision: startRevision.toString(),
                progress_notify: true,
              },
            }),
            timeoutMs: this.config.timeoutMs,
            bytesMax: KV_LIST_BYTES_MAX,
            signal: streamSignal,
            dispatcher: this.client.dispatcher,
            timers: this.ctx.clock,
          });
        } catch (error) {
          if (error instanceof HttpUnreachable) {
            failures.push(`${error.endpoint} (${error.reason})`);
            continue;
          }
          throw error;
        }
        if (stream.status !== 200) {
          throw answerError(endpoint.text, '/watch', stream.status, await stream.text());
        }
        this.client.answered(index);
        for await (const text of stream.lines) {
          rearmIdle();
          const line = parseAnswer<WatchLine>(endpoint.text, '/watch', text);
          if (line.error !== undefined) {
            throw new RdbnetError(
              ErrorCode.DiscoveryFailed,
              `provider=etcd: watch at ${endpoint.text} failed: ${line.error.message ?? 'no reason given'}`,
            );
          }
          const result = line.result ?? {};
          if (result.created === true) onCreated();
          if (result.compact_revision !== undefined && result.compact_revision !== '0') return;
          if (result.canceled === true) {
            // etcd cancels a watch it will not serve (permission, a bad range): back off.
            throw new RdbnetError(
              ErrorCode.DiscoveryFailed,
              `provider=etcd: ${endpoint.text} cancelled the watch: ${result.cancel_reason ?? 'no reason given'}`,
            );
          }
          const events = result.events ?? [];
          if (events.length === 0) continue;
          for (const event of events) {
            const { key, node, problem } = nodeFromKv(event.kv ?? {});
            if (event.type === 'DELETE' || node === undefined) {
              entries.delete(key);
              if (event.type !== 'DELETE') this.noteBadValue(key, problem ?? 'unreadable');
            } else if (entries.has(key) || entries.size < KV_REGISTRATIONS_MAX) {
              entries.set(key, node);
            }
          }
          emit(entries);
        }
        throw new HttpUnreachable(endpoint.text, 'the watch stream ended');
      }
      throw this.client.unreachable(failures);
    } catch (error) {
      if (idle.signal.aborted && !signal.aborted) return;
      throw error;
    } finally {
      if (idleTimer !== undefined) this.ctx.clock.clearTimer(idleTimer);
    }
  }

  async register(self: SelfRegistration, signal: AbortSignal): Promise<Registration> {
    if (this.closed !== undefined) {
      throw new RdbnetError(ErrorCode.DiscoveryFailed, 'provider=etcd: register after close');
    }
    const registration = new EtcdRegistration(this.client, this.config, self, () =>
      this.registrations.delete(registration),
    );
    await registration.start(signal);
    this.registrations.add(registration);
    return registration;
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      await Promise.allSettled([...this.registrations].map((registration) => registration.close()));
      await this.client.dispatcher.destroy();
    })();
    return this.closed;
  }
}

function listOf(entries: Map<string, DiscoveredNode>): DiscoveredNode[] {
  return [...entries.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, node]) => node);
}

/**
 * One node's key under a lease: granted, written, kept alive every TTL/3 (two keep-alives may
 * fail before the lease lapses), written again under a new lease if etcd forgot the old one
 * (etcd was down longer than the TTL), revoked and deleted by close().
 */
class EtcdRegistration implements Registration {
  private leaseId: string | undefined;
  private timer: TimerHandle | undefined;
  private tick: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly key: string;
  private readonly client: EtcdClient;
  private readonly config: EtcdConfig;
  private readonly self: SelfRegistration;
  private readonly onClosed: () => void;

  constructor(
    client: EtcdClient,
    config: EtcdConfig,
    self: SelfRegistration,
    onClosed: () => void,
  ) {
    checkSelfRegistration(PROVIDER, self);
    this.client = client;
    this.config = config;
    this.self = self;
    this.onClosed = onClosed;
    this.key = `${config.prefix}/${self.id}`;
  }

  async start(signal: AbortSignal): Promise<void> {
    const periodMs = await this.writeUnderNewLease(signal);
    this.schedule(periodMs);
  }

  /** Grants a lease, writes the key under it; returns the keep-alive period. */
  private async writeUnderNewLease(signal: AbortSignal): Promise<number> {
    const grant = await this.client.call<{ ID?: string; TTL?: string }>(
      '/lease/grant',
      { TTL: String(this.config.ttlSeconds) },
      signal,
    );
    if (grant.ID === undefined) {
      throw new RdbnetError(
        ErrorCode.DiscoveryFailed,
        'provider=etcd: lease grant answered without a lease id',
      );
    }
    this.leaseId = grant.ID;
    await this.client.call(
      '/kv/put',
      { key: b64(this.key), value: b64(encodeRegistrationValue(this.self)), lease: grant.ID },
      signal,
    );
    const grantedSeconds = Number(grant.TTL ?? this.config.ttlSeconds);
    return Math.max(500, Math.floor((grantedSeconds * 1000) / 3));
  }

  private schedule(periodMs: number): void {
    if (this.closing !== undefined) return;
    this.timer = this.client.ctx.clock.setTimer(periodMs, () => {
      this.tick = this.keepAlive(periodMs);
    });
  }

  private async keepAlive(periodMs: number): Promise<void> {
    let nextMs = periodMs;
    try {
      const answer = await this.client.call<{ result?: { TTL?: string } }>(
        '/lease/keepalive',
        { ID: this.leaseId },
        NEVER_ABORTED,
      );
      if (this.closing !== undefined) return;
      if (!(Number(answer.result?.TTL ?? '0') > 0)) {
        this.client.ctx.log(
          'warn',
          `provider=etcd: the lease of ${this.key} expired; registering it again`,
        );
        nextMs = await this.writeUnderNewLease(NEVER_ABORTED);
      }
    } catch (error) {
      this.client.ctx.log(
        'warn',
        `provider=etcd: keep-alive of ${this.key} failed (${(error as Error).message}); next try in ${periodMs} ms`,
      );
    } finally {
      this.schedule(nextMs);
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.timer !== undefined) this.client.ctx.clock.clearTimer(this.timer);
      await this.tick;
      try {
        if (this.leaseId !== undefined) {
          try {
            await this.client.call('/lease/revoke', { ID: this.leaseId }, NEVER_ABORTED);
          } catch (error) {
            if (!(error instanceof EtcdAnswerError && error.grpcCode === GRPC_NOT_FOUND))
              throw error;
          }
        }
        await this.client.call('/kv/deleterange', { key: b64(this.key) }, NEVER_ABORTED);
      } finally {
        this.onClosed();
      }
    })();
    return this.closing;
  }
}

export const etcdProvider: ProviderFactory = {
  name: PROVIDER,
  summary:
    'nodes registered under an etcd v3 prefix, each key kept alive by a lease; watched for changes',
  example: 'provider=etcd endpoints=127.0.0.1:2379 prefix=/rdbnet/c1 ttl=10s',
  keys: [
    {
      name: 'endpoints',
      required: true,
      doc: 'etcd client endpoints host:port,host:port (tried in order, failover)',
    },
    {
      name: 'prefix',
      required: false,
      doc: `key prefix; each node is PREFIX/ID (default ${ETCD_PREFIX_DEFAULT})`,
    },
    {
      name: 'ttl',
      required: false,
      doc: 'lease TTL of a registration, whole seconds 2s..300s (default 10s)',
    },
    { name: 'timeout', required: false, doc: 'deadline of one request, 100ms..60s (default 5s)' },
    { name: 'tls', required: false, doc: 'true: HTTPS to etcd (default false)' },
    {
      name: 'ca',
      required: false,
      doc: 'PEM file of the CA that signed etcd (with tls=true; default: system CAs)',
    },
    {
      name: 'cert',
      required: false,
      doc: 'PEM client certificate for etcd --client-cert-auth (with tls=true and key=)',
    },
    { name: 'key', required: false, doc: 'PEM private key of cert= (with tls=true)' },
  ],
  create(args: ReadonlyMap<string, string>, ctx: ProviderContext): DiscoveryProvider {
    return new EtcdProvider(parseEtcdConfig(args), ctx);
  },
};
