/**
 * HTTP for the etcd and consul providers, over undici with every wait and size bounded: a
 * request has a deadline (armed on the injected clock), an answer a byte cap, a stream a line
 * cap. A source that cannot be reached (refused, reset, no answer in time, a TLS failure) is
 * an `HttpUnreachable` naming the endpoint, so a caller can try the next endpoint or report
 * RDB_DISCOVERY_UNREACHABLE; an answer too large is RDB_DISCOVERY_FAILED.
 */
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
  return code === undefined || message.includes(code) ? message : `${code}: ${message}`;
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

/** Starts the request; settles when the headers arrived (the body is still to be read). */
async function start(call: HttpCall): Promise<{
  answer: Dispatcher.ResponseData;
  deadline: AbortController;
  disarm: () => void;
}> {
  const deadline = new AbortController();
  const timer = call.timers.setTimer(call.timeoutMs, () => deadline.abort());
  const disarm = () => call.timers.clearTimer(timer);
  try {
    const answer = await request(call.url, {
      method: call.method,
      headers: { 'content-type': 'application/json', ...call.headers },
      body: call.body,
      signal: AbortSignal.any([call.signal, deadline.signal]),
      dispatcher: call.dispatcher,
    });
    return { answer, deadline, disarm };
  } catch (error) {
    disarm();
    throw classify(call, deadline, error);
  }
}

function classify(call: HttpCall, deadline: AbortController, error: unknown): unknown {
  if (call.signal.aborted) return call.signal.reason;
  if (error instanceof RdbnetError) return error;
  if (deadline.signal.aborted) {
    return new HttpUnreachable(call.endpoint, `no answer within ${call.timeoutMs} ms`);
  }
  return new HttpUnreachable(call.endpoint, describeNetworkError(error));
}

/** One request and its whole answer, within `timeoutMs` and `bytesMax`. */
export async function httpCall(call: HttpCall): Promise<HttpAnswer> {
  const { answer, deadline, disarm } = await start(call);
  try {
    const text = await readCapped(call, answer.body, () => answer.body.destroy());
    return { status: answer.statusCode, headers: answer.headers, text };
  } catch (error) {
    throw classify(call, deadline, error);
  } finally {
    disarm();
  }
}

/**
 * A streaming request (etcd's watch): `timeoutMs` bounds the wait for the headers only; the
 * body is read line by line, each line at most `bytesMax`, until the server ends it or
 * `signal` aborts. A connection that dies mid-stream ends `lines` with an HttpUnreachable.
 */
export async function httpStream(call: HttpCall): Promise<HttpStream> {
  const { answer, deadline, disarm } = await start(call);
  disarm();
  const body = answer.body;
  async function* lines(): AsyncGenerator<string> {
    let pending = '';
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        pending += chunk.toString('utf8');
        let newline = pending.indexOf('\n');
        while (newline >= 0) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line !== '') yield line;
          newline = pending.indexOf('\n');
        }
        if (Buffer.byteLength(pending) > call.bytesMax) {
          body.destroy();
          throw tooLarge(call, 'a streamed line');
        }
      }
      if (pending.trim() !== '') yield pending.trim();
    } catch (error) {
      throw classify(call, deadline, error);
    } finally {
      body.destroy();
    }
  }
  return {
    status: answer.statusCode,
    headers: answer.headers,
    lines: lines(),
    text: () => readCapped(call, body, () => body.destroy()),
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
