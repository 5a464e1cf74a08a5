/**
 * Value parsing shared by the etcd and consul providers: durations (`10s`, `500ms`, `1m30s`),
 * `host:port` endpoints, booleans. Every failure is RDB_DISCOVERY_SYNTAX naming the provider
 * and the key, thrown before any I/O, so a bad spec changes nothing.
 */
import { ErrorCode, RdbnetError } from '../../../errors.ts';

export function keySyntaxError(provider: string, key: string, problem: string): RdbnetError {
  return new RdbnetError(ErrorCode.DiscoverySyntax, `provider=${provider}: key ${key} ${problem}`);
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go-style duration (`250ms`, `10s`, `1m30s`, `2h`) in milliseconds, or undefined if malformed. */
export function parseDurationText(text: string): number | undefined {
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < text.length) {
    part.lastIndex = at;
    const match = part.exec(text);
    if (match === null) return undefined;
    total += Number(match[1]) * DURATION_UNITS_MS[match[2] as string]!;
    at = part.lastIndex;
  }
  return text.length === 0 ? undefined : total;
}

/** Go-style duration from spec key `key`, within [minMs, maxMs], in milliseconds. */
export function parseDurationKey(
  provider: string,
  key: string,
  text: string,
  minMs: number,
  maxMs: number,
): number {
  const ms = parseDurationText(text);
  if (ms === undefined) {
    throw keySyntaxError(provider, key, `is "${text}", not a duration like 10s, 500ms or 1m`);
  }
  if (ms < minMs || ms > maxMs) {
    throw keySyntaxError(
      provider,
      key,
      `is ${text}; it must be between ${minMs} ms and ${maxMs} ms`,
    );
  }
  return Math.round(ms);
}

export function parseBooleanKey(provider: string, key: string, text: string): boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw keySyntaxError(provider, key, `is "${text}"; write true or false`);
}

export interface HostPort {
  /** Host as written, without brackets (`::1`, `127.0.0.1`, `etcd.internal`). */
  host: string;
  port: number;
  /** `host:port` with IPv6 hosts in brackets, for URLs and messages. */
  text: string;
}

/** `host:port` or `[v6]:port`, or undefined when it is not one. */
export function parseHostPortText(text: string): HostPort | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) return undefined;
  const bracketed = match[1];
  const host = bracketed ?? (match[2] as string);
  return { host, port, text: bracketed === undefined ? `${host}:${port}` : `[${host}]:${port}` };
}

export function parseHostPortKey(provider: string, key: string, text: string): HostPort {
  const parsed = parseHostPortText(text);
  if (parsed === undefined) {
    throw keySyntaxError(provider, key, `has "${text}", not host:port (IPv6 as [::1]:2379)`);
  }
  return parsed;
}
