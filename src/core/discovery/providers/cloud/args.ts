/**
 * Value checks shared by the API-backed providers: each throws RDB_DISCOVERY_SYNTAX naming the
 * provider and the key, before any I/O (the seam's contract for `create()`).
 */
import { isIP } from 'node:net';
import { ErrorCode, RdbnetError } from '../../../errors.ts';
import { REQUEST_TIMEOUT_MS_DEFAULT, REQUEST_TIMEOUT_MS_MAX } from './http.ts';

export function badValue(provider: string, key: string, problem: string): RdbnetError {
  return new RdbnetError(ErrorCode.DiscoverySyntax, `provider=${provider}: ${key} ${problem}`);
}

/** The rdbnet port to pair with addresses an API returns (`port=`), default 7400. */
export function portArg(
  provider: string,
  args: ReadonlyMap<string, string>,
  key = 'port',
  fallback = 7400,
): number {
  const text = args.get(key);
  if (text === undefined) return fallback;
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw badValue(provider, key, `must be a port 1..65535, got "${text}"`);
  }
  return Number(text);
}

/** `timeout=` as `500ms`, `5s` or plain milliseconds; 1 ms .. REQUEST_TIMEOUT_MS_MAX. */
export function timeoutArg(provider: string, args: ReadonlyMap<string, string>): number {
  const text = args.get('timeout');
  if (text === undefined) return REQUEST_TIMEOUT_MS_DEFAULT;
  const match = /^(\d{1,9})(ms|s)?$/.exec(text);
  const ms = match === null ? Number.NaN : Number(match[1]) * (match[2] === 's' ? 1000 : 1);
  if (!(ms >= 1 && ms <= REQUEST_TIMEOUT_MS_MAX)) {
    throw badValue(
      provider,
      'timeout',
      `must be a duration like 5s or 500ms up to ${REQUEST_TIMEOUT_MS_MAX / 1000}s, got "${text}"`,
    );
  }
  return ms;
}

/** An http(s) base URL given as a key or taken from a default. */
export function urlArg(provider: string, key: string, text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw badValue(provider, key, `must be an http:// or https:// URL, got "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw badValue(provider, key, `must be an http:// or https:// URL, got "${text}"`);
  }
  return url;
}

/** One of a fixed set of words. */
export function choiceArg<T extends string>(
  provider: string,
  args: ReadonlyMap<string, string>,
  key: string,
  choices: readonly T[],
  fallback: T,
): T {
  const text = args.get(key);
  if (text === undefined) return fallback;
  if (!(choices as readonly string[]).includes(text)) {
    throw badValue(provider, key, `must be one of ${choices.join(', ')}, got "${text}"`);
  }
  return text as T;
}

/** A name made of the characters an API path segment allows here (no `/`, no spaces). */
export function nameArg(
  provider: string,
  key: string,
  text: string,
  pattern: RegExp,
  shape: string,
): string {
  if (!pattern.test(text)) throw badValue(provider, key, `must be ${shape}, got "${text}"`);
  return text;
}

/** `host:port` with IPv6 hosts in brackets, as DiscoveredNode.address wants. */
export function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
