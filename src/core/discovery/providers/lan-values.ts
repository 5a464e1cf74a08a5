/**
 * Value checks shared by the two LAN providers (mdns, broadcast): durations written the way
 * go-discover's users write them (`500ms`, `2s`, `1m`), ports, and a local interface given by
 * name or address. Every check throws RDB_DISCOVERY_SYNTAX naming the provider and the key, so
 * a bad spec fails in `create()` before any socket is opened.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ErrorCode, RdbnetError } from '../../errors.ts';

export function keySyntax(provider: string, key: string, problem: string, hint?: string) {
  return new RdbnetError(
    ErrorCode.DiscoverySyntax,
    `provider=${provider}: key ${key} ${problem}`,
    hint === undefined ? undefined : { hint },
  );
}

const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** `250ms`, `2s`, `1.5s`, `1m` → milliseconds, within [minMs, maxMs]. */
export function durationKey(
  provider: string,
  key: string,
  text: string,
  minMs: number,
  maxMs: number,
): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  const ms = match
    ? Math.round(Number(match[1]) * (DURATION_UNIT_MS[match[2] as string] ?? 0))
    : NaN;
  if (!Number.isFinite(ms)) {
    throw keySyntax(provider, key, `must be a duration like 500ms, 2s or 1m, got "${text}"`);
  }
  if (ms < minMs || ms > maxMs) {
    throw keySyntax(provider, key, `must be between ${minMs}ms and ${maxMs / 1000}s, got ${text}`);
  }
  return ms;
}

export function portKey(provider: string, key: string, text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw keySyntax(provider, key, `must be a port in 1..65535, got "${text}"`);
  }
  return port;
}

export interface LocalInterface {
  /** The interface's name (`eth0`, `veth-a`). */
  name: string;
  /** Its first IPv4 address, when it has one. */
  ipv4?: { address: string; netmask: string };
  /** Its first IPv6 address, when it has one (link-local ones carry no scope here). */
  ipv6?: string;
}

/**
 * The local interface named `text`, or the one holding the address `text`. Reading the
 * interface table is no network I/O, so create() may do it; an unknown one is a syntax error
 * naming the key, with the names that exist as the hint.
 */
export function interfaceKey(provider: string, key: string, text: string): LocalInterface {
  const table = networkInterfaces();
  for (const [name, addresses] of Object.entries(table)) {
    const list = addresses ?? [];
    if (name !== text && !list.some((entry) => entry.address === text)) continue;
    const found: LocalInterface = { name };
    const v4 = list.find((entry) => entry.family === 'IPv4');
    if (v4 !== undefined) found.ipv4 = { address: v4.address, netmask: v4.netmask };
    const v6 = list.find((entry) => entry.family === 'IPv6');
    if (v6 !== undefined) found.ipv6 = v6.address;
    return found;
  }
  const kind = isIP(text) === 0 ? 'interface' : 'interface address';
  throw keySyntax(
    provider,
    key,
    `names no local ${kind} "${text}"`,
    `interfaces: ${Object.keys(table).join(', ')}`,
  );
}

/** The IPv4 subnet broadcast address of `address`/`netmask` (host bits all set). */
export function broadcastAddressOf(address: string, netmask: string): string {
  const a = address.split('.').map(Number);
  const m = netmask.split('.').map(Number);
  return a.map((octet, i) => (octet | (~(m[i] as number) & 0xff)) & 0xff).join('.');
}
