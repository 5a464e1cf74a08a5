/**
 * Values inside discovery specs (`timeout=2s`, `addrs=a:1,b:2`, `port=7400`, `tls=true`),
 * checked the same way by every provider: a bad one is RDB_DISCOVERY_SYNTAX naming the
 * provider and the key, thrown from `create()` before any I/O, so a bad spec changes nothing.
 * Also the bounds every provider shares.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import { formatHostPort, parseHostPort } from '../transport/address.ts';

/** Most nodes one lookup returns; the rest are dropped (a source that large is a mistake). */
export const DISCOVERED_NODES_MAX = 1024;

/** The rdbnet port paired with the addresses a cloud API returns when the spec has no `port=`. */
export const NODE_PORT_DEFAULT = 7400;

/** A bad value of `key` for `provider`: exit 64, one line naming both. */
export function badValue(
  provider: string,
  key: string,
  problem: string,
  hint?: string,
): RdbnetError {
  return new RdbnetError(
    ErrorCode.DiscoverySyntax,
    `provider=${provider}: ${key} ${problem}`,
    hint === undefined ? undefined : { hint },
  );
}

/** `parse(text)`, or `fallback` when the spec leaves the key out (`text` undefined). */
export function valueOr<T>(text: string | undefined, fallback: T, parse: (text: string) => T): T {
  return text === undefined ? fallback : parse(text);
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * A Go-style duration (`250ms`, `10s`, `1.5s`, `1m30s`, `2h`, as go-discover's users write
 * them) in milliseconds, or undefined when malformed. A bare number counts in `bareUnitMs`
 * when given (the providers that took one keep their unit: seconds for dns, milliseconds for
 * the cloud APIs) and is malformed otherwise.
 */
export function parseDurationText(text: string, bareUnitMs?: number): number | undefined {
  if (/^\d+(?:\.\d+)?$/.test(text)) {
    return bareUnitMs === undefined ? undefined : Number(text) * bareUnitMs;
  }
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

export interface DurationBounds {
  minMs: number;
  maxMs: number;
  /** The unit of a bare number (`2` = 2 s with 1000); without it a bare number is refused. */
  bareUnitMs?: number;
}

/** A duration from spec key `key`, within [minMs, maxMs], in whole milliseconds. */
export function durationValue(
  provider: string,
  key: string,
  text: string,
  bounds: DurationBounds,
): number {
  const ms = parseDurationText(text.trim(), bounds.bareUnitMs);
  if (ms === undefined) {
    throw badValue(
      provider,
      key,
      `must be a duration like 500ms, 2s or 1m, got "${text}"`,
      'for example 500ms, 2s, 1m30s',
    );
  }
  if (ms < bounds.minMs || ms > bounds.maxMs) {
    throw badValue(
      provider,
      key,
      `must be a duration from ${bounds.minMs} ms to ${bounds.maxMs} ms, got "${text}"`,
    );
  }
  return Math.round(ms);
}

/** A TCP/UDP port, 1..65535. */
export function portValue(provider: string, key: string, text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw badValue(provider, key, `must be a port in 1..65535, got "${text}"`);
  }
  return port;
}

/** `true` or `false`, nothing else (no yes/1/on: a typo must not flip a switch). */
export function booleanValue(provider: string, key: string, text: string): boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw badValue(provider, key, `is "${text}"; write true or false`);
}

/** One of a fixed set of words. */
export function oneOfValue<T extends string>(
  provider: string,
  key: string,
  text: string,
  values: readonly T[],
): T {
  if (!(values as readonly string[]).includes(text)) {
    throw badValue(provider, key, `must be one of ${values.join(', ')}, got "${text}"`);
  }
  return text as T;
}

/** A name made of the characters `pattern` allows (an API path segment: no `/`, no spaces). */
export function nameValue(
  provider: string,
  key: string,
  text: string,
  pattern: RegExp,
  shape: string,
): string {
  if (!pattern.test(text)) throw badValue(provider, key, `must be ${shape}, got "${text}"`);
  return text;
}

/** An http(s) base URL. */
export function urlValue(provider: string, key: string, text: string): URL {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw badValue(provider, key, `must be an http:// or https:// URL, got "${text}"`);
  }
  return url;
}

export interface EndpointAddress {
  /** Host as written, without brackets (`::1`, `127.0.0.1`, `etcd.internal`). */
  host: string;
  port: number;
  /** `host:port` with IPv6 hosts in brackets, for URLs and messages. */
  text: string;
}

/**
 * `host:port` or `[v6]:port` of a server a provider talks to, or undefined when it is not
 * one (no scheme, no bare IPv6 without brackets, port 1..65535).
 */
export function parseEndpointText(text: string): EndpointAddress | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) return undefined;
  const bracketed = match[1];
  const host = bracketed ?? (match[2] as string);
  return { host, port, text: bracketed === undefined ? `${host}:${port}` : `[${host}]:${port}` };
}

export function endpointValue(provider: string, key: string, text: string): EndpointAddress {
  const parsed = parseEndpointText(text);
  if (parsed === undefined) {
    throw badValue(provider, key, `has "${text}", not host:port (IPv6 as [::1]:2379)`);
  }
  return parsed;
}

/** A node's `host:port` normalised (IPv6 in brackets), or null when it is not one. */
export function normalAddress(text: string): string | null {
  try {
    const parsed = parseHostPort(text);
    if (parsed.port === 0 || parsed.host === '') return null;
    return formatHostPort(parsed);
  } catch {
    return null;
  }
}

/** A comma-separated list of host:port, normalised and de-duplicated, at least one. */
export function addressListValue(provider: string, key: string, text: string): string[] {
  const out: string[] = [];
  for (const item of text.split(',')) {
    if (item.trim() === '') continue;
    const address = normalAddress(item);
    if (address === null) {
      throw badValue(provider, key, `holds "${item}", not host:port`, 'for example 127.0.0.1:7001');
    }
    if (!out.includes(address)) out.push(address);
  }
  if (out.length === 0) throw badValue(provider, key, 'holds no address');
  if (out.length > DISCOVERED_NODES_MAX) {
    throw badValue(provider, key, `holds ${out.length} addresses; at most ${DISCOVERED_NODES_MAX}`);
  }
  return out;
}
