/**
 * HTTP for the etcd and consul providers, over undici with every wait and size bounded: a
 * request has a deadline (armed on the injected clock), an answer a byte cap, a stream a line
 * cap. A source that cannot be reached (refused, reset, no answer in time, a TLS failure) is
 * an `HttpUnreachable` naming the endpoint, so a caller can try the next endpoint or report
 * RDB_DISCOVERY_UNREACHABLE; an answer too large is RDB_DISCOVERY_FAILED.
 */
import { StringDecoder } from 'node:string_decoder';
import { type Dispatcher, request } from 'undici';
import { ErrorCode, RdbnetError } from '../../../errors.ts';
import type { Timers } from '../../../runtime/timers.ts';

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
  /** `host:port` as the user wrote it, for messages. */
  endpoint: string;
  url: string;
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

function tooLarge(call: HttpCall, what: string): RdbnetError {
  return new RdbnetError(
    ErrorCode.DiscoveryFailed,
    `provider=${call.provider}: ${what} from ${call.endpoint} is larger than ${call.bytesMax} bytes`,
  );
}

async function readCapped(
  call: HttpCall,
  body: AsyncIterable<Buffer>,
  destroy: () => void,
): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.length;
    if (bytes > call.bytesMax) {
      destroy();
      throw tooLarge(call, 'the answer');
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
    const answer = await request(call.url, {
      method: call.method,
      headers: { 'content-type': 'application/json', ...call.headers },
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
    const text = await readCapped(call, answer.body, () => answer.body.destroy());
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
        if (pending.length > call.bytesMax) throw tooLarge(call, 'a streamed line');
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
        return await readCapped(call, body, () => body.destroy());
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
