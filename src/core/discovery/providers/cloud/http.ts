/**
 * The one HTTP call the API-backed providers (k8s, aws, gce, azure) make, with the limits
 * every one of them needs: a deadline on the injected clock, a cap on the response body, and
 * the two failure kinds the seam distinguishes — the source could not be reached
 * (RDB_DISCOVERY_UNREACHABLE) or it answered with an error (RDB_DISCOVERY_FAILED, which the
 * provider builds from the API's own message). undici is the chosen HTTP client.
 */
import { Agent, type Dispatcher, request } from 'undici';
import { ErrorCode, RdbnetError } from '../../../errors.ts';
import type { TimedClock } from '../../../runtime/timers.ts';

/** Per-request deadline when the spec gives no `timeout=`. */
export const REQUEST_TIMEOUT_MS_DEFAULT = 5_000;
/** The longest `timeout=` accepted: a discovery lookup is not a long poll. */
export const REQUEST_TIMEOUT_MS_MAX = 120_000;
/** What `timeout=` may say (`500ms`, `5s`; a bare number is milliseconds, as it always was here). */
export const CLOUD_TIMEOUT_BOUNDS = {
  minMs: 1,
  maxMs: REQUEST_TIMEOUT_MS_MAX,
  bareUnitMs: 1,
} as const;
/** A response body larger than this is refused (RDB_DISCOVERY_FAILED), not buffered. */
export const RESPONSE_BYTES_MAX = 8 * 1024 * 1024;
/** TCP+TLS connect deadline of the agents built here. */
export const CONNECT_TIMEOUT_MS = 5_000;

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface HttpCall {
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
  bodyBytesMax?: number;
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
  return new Agent({
    connect: { timeout: CONNECT_TIMEOUT_MS, ...(tls ?? {}) },
    connections: 4,
    keepAliveTimeout: 4_000,
  });
}

/**
 * Stops reading a response body. undici's body emits 'error' ("Request aborted") when
 * destroyed; with no listener that would be an uncaught exception, so one is added first.
 */
export function discardBody(body: {
  on(event: 'error', listener: () => void): unknown;
  destroy(): unknown;
}): void {
  body.on('error', () => {});
  body.destroy();
}

function unreachable(provider: string, url: URL, reason: string, cause: unknown): RdbnetError {
  return new RdbnetError(
    ErrorCode.DiscoveryUnreachable,
    `provider=${provider}: cannot reach ${endpointOf(url)}: ${reason}`,
    { cause },
  );
}

/** What went wrong, for the one line: undici's message (it names the errno), else the code. */
function reasonOf(error: unknown): string {
  const err = error as { code?: string; message?: string; cause?: { code?: string } };
  if (typeof err?.message === 'string' && err.message !== '') return err.message;
  return err?.code ?? err?.cause?.code ?? String(error);
}

/**
 * Makes one request and reads the whole body (up to the cap). Resolves with any HTTP status;
 * rejects with RDB_DISCOVERY_UNREACHABLE on connect/TLS failures and on the deadline, with
 * RDB_DISCOVERY_FAILED when the body is over the cap, and rethrows the caller's abort.
 */
export async function httpCall(call: HttpCall): Promise<HttpResponse> {
  const bodyBytesMax = call.bodyBytesMax ?? RESPONSE_BYTES_MAX;
  const deadline = new AbortController();
  let timedOut = false;
  const timer = call.clock.setTimer(call.timeoutMs, () => {
    timedOut = true;
    deadline.abort();
  });
  const signal = AbortSignal.any([call.signal, deadline.signal]);
  try {
    const response = await request(call.url, {
      method: call.method ?? 'GET',
      headers: call.headers ?? {},
      body: call.body ?? null,
      dispatcher: call.dispatcher,
      signal,
    });
    const declared = Number(response.headers['content-length'] ?? Number.NaN);
    if (Number.isFinite(declared) && declared > bodyBytesMax) {
      discardBody(response.body);
      throw tooLarge(call, declared, bodyBytesMax);
    }
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of response.body) {
      received += (chunk as Buffer).length;
      if (received > bodyBytesMax) {
        discardBody(response.body);
        throw tooLarge(call, received, bodyBytesMax);
      }
      chunks.push(chunk as Buffer);
    }
    return {
      status: response.statusCode,
      headers: response.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    };
  } catch (error) {
    if (error instanceof RdbnetError) throw error;
    if (call.signal.aborted) throw call.signal.reason ?? error;
    if (timedOut) {
      throw unreachable(call.provider, call.url, `no answer within ${call.timeoutMs} ms`, error);
    }
    throw unreachable(call.provider, call.url, reasonOf(error), error);
  } finally {
    call.clock.clearTimer(timer);
  }
}

function tooLarge(call: HttpCall, bytes: number, max: number): RdbnetError {
  return new RdbnetError(
    ErrorCode.DiscoveryFailed,
    `provider=${call.provider}: ${endpointOf(call.url)} answered ${bytes}+ bytes; at most ${max}`,
  );
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

/** Waits `ms` on the injected clock; resolves early (not rejects) when `signal` aborts. */
export function sleepUnlessAborted(
  clock: TimedClock,
  ms: number,
  signal: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clock.clearTimer(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = clock.setTimer(ms, done);
    signal.addEventListener('abort', done, { once: true });
  });
}
