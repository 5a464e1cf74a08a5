/**
 * HTTP for every provider that asks an HTTP API (etcd, consul, k8s, aws, gce, azure), over
 * undici (the chosen client) with every wait and size bounded: a request has a deadline
 * (armed on the injected clock), an answer a byte cap, a stream a line cap. A source that
 * cannot be reached (refused, reset, no answer in time, a TLS failure) is an `HttpUnreachable`
 * naming the endpoint, so a caller with several endpoints can try the next one; `apiCall`
 * turns it into RDB_DISCOVERY_UNREACHABLE for the providers with one. An answer too large is
 * RDB_DISCOVERY_FAILED, and so is an API's error answer (`apiFailed`, with the API's message).
 */
import { StringDecoder } from 'node:string_decoder';
import type { Agent, Dispatcher } from 'undici';
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { TimedClock, Timers } from '../runtime/timers.ts';
import { undici } from './undici.ts';

/** Per-request deadline of the API-backed providers when the spec gives no `timeout=`. */
export const REQUEST_TIMEOUT_MS_DEFAULT = 5_000;
/** The longest `timeout=` accepted: a discovery lookup is not a long poll. */
export const REQUEST_TIMEOUT_MS_MAX = 120_000;
/** What their `timeout=` may say (`500ms`, `5s`; a bare number is milliseconds, as it always was). */
export const API_TIMEOUT_BOUNDS = {
  minMs: 1,
  maxMs: REQUEST_TIMEOUT_MS_MAX,
  bareUnitMs: 1,
} as const;
/** An API response body larger than this is refused (RDB_DISCOVERY_FAILED), not buffered. */
export const RESPONSE_BYTES_MAX = 8 * 1024 * 1024;
/** TCP+TLS connect deadline of the agents built here. */
export const CONNECT_TIMEOUT_MS = 5_000;

/** The header of a JSON request body (etcd's gateway and consul's agent read it). */
export const JSON_CONTENT: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
};

/** The endpoint could not be reached or did not answer in time. */
export class HttpUnreachable extends Error {
  readonly endpoint: string;
  readonly reason: string;

  constructor(endpoint: string, reason: string) {
    super(`${endpoint}: ${reason}`);
    this.name = 'HttpUnreachable';
    this.endpoint = endpoint;
    this.reason = reason;
  }
}

export interface HttpCall {
  /** The provider's name, for messages. */
  provider: string;
  /** What messages name: `host:port` as the user wrote it, or an API's `endpointOf(url)`. */
  endpoint: string;
  url: string | URL;
  method: 'GET' | 'POST' | 'PUT';
  headers?: Record<string, string>;
  body?: string;
  /** Deadline for the whole call (a stream: until its headers arrive). */
  timeoutMs: number;
  /** The answer (a stream: one line of it) may hold at most this many bytes. */
  bytesMax: number;
  signal: AbortSignal;
  dispatcher: Dispatcher;
  timers: Timers;
}

export interface HttpAnswer {
  status: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  text: string;
}

export interface HttpStream {
  status: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The body split on newlines; ends when the server ends it. */
  lines: AsyncIterable<string>;
  /** The whole body when the status is not 200 (an error document), capped. */
  text(): Promise<string>;
}

function describeNetworkError(error: unknown): string {
  const candidate = error as { code?: unknown; message?: unknown; cause?: unknown };
  const code = typeof candidate.code === 'string' ? candidate.code : undefined;
  const message = typeof candidate.message === 'string' ? candidate.message : String(error);
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return 'connect timed out';
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET') return 'connection closed by the server';
  return code === undefined ? message : `${code}: ${message}`;
}

function tooLarge(call: HttpCall, what: string, bytes: number): RdbnetError {
  return new RdbnetError(
    ErrorCode.DiscoveryFailed,
    `provider=${call.provider}: ${call.endpoint} answered ${what} of ${bytes}+ bytes; at most ${call.bytesMax}`,
  );
}

/**
 * Stops reading a response body. undici's body emits 'error' ("Request aborted") when
 * destroyed; with no listener that would be an uncaught exception, so one is added first.
 */
function discardBody(body: {
  on(event: 'error', listener: () => void): unknown;
  destroy(): unknown;
}): void {
  body.on('error', () => {});
  body.destroy();
}

async function readCapped(call: HttpCall, answer: Dispatcher.ResponseData): Promise<string> {
  // A declared length over the cap is refused before a byte of the body is read.
  const declared = Number(answer.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > call.bytesMax) {
    discardBody(answer.body);
    throw tooLarge(call, 'a body', declared);
  }
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of answer.body as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > call.bytesMax) {
      discardBody(answer.body);
      throw tooLarge(call, 'a body', bytes);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

interface Started {
  answer: Dispatcher.ResponseData;
  /** True once the deadline aborted the request. */
  timedOut(): boolean;
  /** Stops the deadline (a stream, once its headers are in). */
  clearDeadline(): void;
  /** Stops forwarding the caller's abort; call when the request is over. */
  detach(): void;
}

/**
 * Starts the request; settles when the headers arrived (the body is still to be read). The
 * caller's signal is forwarded by a listener removed when the request is over, not through
 * AbortSignal.any, so a long-lived signal does not collect one dependent per request.
 */
async function start(call: HttpCall): Promise<Started> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = call.timers.setTimer(call.timeoutMs, () => {
    timedOut = true;
    controller.abort();
  });
  const forwardAbort = () => controller.abort(call.signal.reason);
  if (call.signal.aborted) forwardAbort();
  else call.signal.addEventListener('abort', forwardAbort, { once: true });
  const started: Omit<Started, 'answer'> = {
    timedOut: () => timedOut,
    clearDeadline: () => call.timers.clearTimer(timer),
    detach: () => call.signal.removeEventListener('abort', forwardAbort),
  };
  try {
    const answer = await undici().request(call.url, {
      method: call.method,
      headers: call.headers ?? {},
      body: call.body,
      signal: controller.signal,
      dispatcher: call.dispatcher,
    });
    return { answer, ...started };
  } catch (error) {
    started.clearDeadline();
    started.detach();
    throw classify(call, started.timedOut(), error);
  }
}

function classify(call: HttpCall, timedOut: boolean, error: unknown): unknown {
  if (call.signal.aborted) return call.signal.reason;
  if (error instanceof RdbnetError) return error;
  if (timedOut) return new HttpUnreachable(call.endpoint, `no answer within ${call.timeoutMs} ms`);
  return new HttpUnreachable(call.endpoint, describeNetworkError(error));
}

/** One request and its whole answer, within `timeoutMs` and `bytesMax`. */
export async function httpCall(call: HttpCall): Promise<HttpAnswer> {
  const started = await start(call);
  const { answer } = started;
  try {
    const text = await readCapped(call, answer);
    return { status: answer.statusCode, headers: answer.headers, text };
  } catch (error) {
    throw classify(call, started.timedOut(), error);
  } finally {
    started.clearDeadline();
    started.detach();
  }
}

/**
 * A streaming request (etcd's watch): `timeoutMs` bounds the wait for the headers only; the
 * body is read line by line, each line at most `bytesMax` characters, until the server ends
 * it or `signal` aborts. A connection that dies mid-stream ends `lines` with an
 * HttpUnreachable. Read `lines` or `text()` to the end (or break out): either releases it.
 */
export async function httpStream(call: HttpCall): Promise<HttpStream> {
  const started = await start(call);
  started.clearDeadline();
  const body = started.answer.body;
  const release = () => {
    body.destroy();
    started.detach();
  };
  async function* lines(): AsyncGenerator<string> {
    const decoder = new StringDecoder('utf8');
    let pending = '';
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        // Search only the new text for a newline: a long line costs linear time, not quadratic.
        let searchFrom = pending.length;
        pending += decoder.write(chunk);
        let newline = pending.indexOf('\n', searchFrom);
        while (newline >= 0) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line !== '') yield line;
          searchFrom = 0;
          newline = pending.indexOf('\n', searchFrom);
        }
        if (pending.length > call.bytesMax) throw tooLarge(call, 'a line', pending.length);
      }
      const rest = (pending + decoder.end()).trim();
      if (rest !== '') yield rest;
    } catch (error) {
      throw classify(call, false, error);
    } finally {
      release();
    }
  }
  return {
    status: started.answer.statusCode,
    headers: started.answer.headers,
    lines: lines(),
    text: async () => {
      try {
        return await readCapped(call, started.answer);
      } finally {
        release();
      }
    },
  };
}

/** The first value of a response header (undici gives arrays for repeated headers). */
export function headerValue(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  name: string,
): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `https://host:port/path` without the query (which may carry tokens or signatures). */
export function endpointOf(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** A connection pool for one provider; `tls` carries a custom CA or a client certificate. */
export function createAgent(tls?: {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
}): Agent {
  return new (undici().Agent)({
    connect: { timeout: CONNECT_TIMEOUT_MS, ...(tls ?? {}) },
    connections: 4,
    keepAliveTimeout: 4_000,
  });
}

export interface ApiCall {
  /** Provider name, for the one-line error. */
  provider: string;
  url: URL;
  method?: 'GET' | 'POST' | 'PUT';
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  clock: TimedClock;
  signal: AbortSignal;
  dispatcher: Dispatcher;
  /** Default RESPONSE_BYTES_MAX. */
  bodyBytesMax?: number;
}

export interface ApiResponse {
  status: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  body: string;
}

/**
 * One request of a provider with a single API endpoint, its whole body read (up to the cap).
 * Resolves with any HTTP status; rejects with RDB_DISCOVERY_UNREACHABLE on connect/TLS
 * failures and on the deadline, RDB_DISCOVERY_FAILED when the body is over the cap, and
 * rethrows the caller's abort.
 */
export async function apiCall(call: ApiCall): Promise<ApiResponse> {
  const endpoint = endpointOf(call.url);
  try {
    const answer = await httpCall({
      provider: call.provider,
      endpoint,
      url: call.url,
      method: call.method ?? 'GET',
      ...(call.headers === undefined ? {} : { headers: call.headers }),
      ...(call.body === undefined ? {} : { body: call.body }),
      timeoutMs: call.timeoutMs,
      bytesMax: call.bodyBytesMax ?? RESPONSE_BYTES_MAX,
      signal: call.signal,
      dispatcher: call.dispatcher,
      timers: call.clock,
    });
    return { status: answer.status, headers: answer.headers, body: answer.text };
  } catch (error) {
    if (!(error instanceof HttpUnreachable)) throw error;
    throw new RdbnetError(
      ErrorCode.DiscoveryUnreachable,
      `provider=${call.provider}: cannot reach ${endpoint}: ${error.reason}`,
      { cause: error },
    );
  }
}

/** RDB_DISCOVERY_FAILED with the API's own message: `provider=aws: HTTP 401 AuthFailure: ...`. */
export function apiFailed(provider: string, status: number, apiMessage: string): RdbnetError {
  const oneLine = apiMessage.replace(/\s+/g, ' ').trim().slice(0, 400);
  return new RdbnetError(
    ErrorCode.DiscoveryFailed,
    `provider=${provider}: HTTP ${status}${oneLine === '' ? '' : `: ${oneLine}`}`,
  );
}

/** Parses a JSON body or fails naming the endpoint. */
export function parseJsonBody(provider: string, url: URL, body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new RdbnetError(
      ErrorCode.DiscoveryFailed,
      `provider=${provider}: ${endpointOf(url)} answered something that is not JSON`,
    );
  }
}

/** Waits `ms` on `timers`, or less if `signal` aborts first; never rejects. */
export function abortablePause(timers: Timers, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      timers.clearTimer(handle);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const handle = timers.setTimer(ms, done);
    signal.addEventListener('abort', done, { once: true });
  });
}
