/**
 * What the two LAN providers (mdns, broadcast) share: the local interface they send on, given
 * by name or address (an unknown one is RDB_DISCOVERY_SYNTAX naming the provider and the key,
 * thrown in `create()` before any socket is opened), its subnet broadcast address, their
 * duration bounds, and how a socket that cannot be used is reported.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { badValue } from '../values.ts';

/** What `timeout=` and `interval=` may say on the local link: 100 ms .. 1 min. */
export const LAN_DURATION_BOUNDS = { minMs: 100, maxMs: 60_000 } as const;

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
  throw badValue(
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

/** A socket that could not be bound, joined or sent on: RDB_DISCOVERY_UNREACHABLE with its errno. */
export function lanUnreachable(provider: string, endpoint: string, error: unknown): RdbnetError {
  const code = (error as NodeJS.ErrnoException)?.code ?? String(error);
  return new RdbnetError(
    ErrorCode.DiscoveryUnreachable,
    `provider=${provider}: cannot use ${endpoint}: ${code}`,
    { cause: error },
  );
}

/** What an aborted wait rejects with: the caller's reason, else an AbortError. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('aborted', 'AbortError');
}
