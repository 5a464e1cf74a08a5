/**
 * Values inside discovery specs (`timeout=2s`, `addrs=a:1,b:2`, `port=7400`), checked the
 * same way by every provider: a bad one is RDB_DISCOVERY_SYNTAX naming the provider and the
 * key, thrown from `create()` before any I/O. Also the bounds every provider shares.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import { formatHostPort, parseHostPort } from '../transport/address.ts';

/** Most nodes one lookup returns; the rest are dropped (a source that large is a mistake). */
export const DISCOVERED_NODES_MAX = 1024;

/** A bad value of `key` for `provider`: exit 64, one line naming both. */
export function badValue(provider: string, key: string, problem: string, hint?: string) {
  return new RdbnetError(
    ErrorCode.DiscoverySyntax,
    `provider=${provider}: ${key} ${problem}`,
    hint === undefined ? undefined : { hint },
  );
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `250ms`, `2s`, `1.5s`, `5m`, `1h` (a bare number is seconds, as in go-discover). */
export function durationMs(
  provider: string,
  key: string,
  text: string,
  bounds: { minMs: number; maxMs: number },
): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const ms = match === null ? Number.NaN : Number(match[1]) * DURATION_UNITS_MS[match[2] ?? 's']!;
  if (!Number.isFinite(ms) || ms < bounds.minMs || ms > bounds.maxMs) {
    throw badValue(
      provider,
      key,
      `must be a duration from ${bounds.minMs} ms to ${bounds.maxMs} ms, got "${text}"`,
      'for example 500ms, 2s or 1m',
    );
  }
  return Math.round(ms);
}

/** An integer in min..max. */
export function integerValue(
  provider: string,
  key: string,
  text: string,
  min: number,
  max: number,
): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw badValue(provider, key, `must be an integer in ${min}..${max}, got "${text}"`);
  }
  return value;
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

/** `host:port` normalised (IPv6 in brackets), or null when it is not one. */
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
