/**
 * The checks every cluster request handler starts with: a typed refusal (`fail`), the node
 * on the other end of a connection (node certificates only), and whether a peer-supplied
 * address is one this node could dial. Kept apart so each room refuses bad input the same way.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import { parseHostPort } from '../transport/address.ts';

/** Throws the typed error (with its hint) that answers the request. */
export function fail(code: ErrorCode, message: string, hint?: string): never {
  throw new RdbnetError(code, message, hint === undefined ? undefined : { hint });
}

/** The peer of a node-to-node request; RDB_FORBIDDEN for clients. */
export function nodePeer(from: PeerIdentity): NonNullable<PeerIdentity['peer']> {
  const peer = from.peer;
  if (peer === null || peer.role !== 'node') {
    fail(ErrorCode.Forbidden, 'this request is for nodes (node certificates) only');
  }
  return peer;
}

/** A "host:port" with a port: an address a peer may hand us for a member. */
export function validAddress(address: string | undefined): address is string {
  if (typeof address !== 'string' || address === '') return false;
  try {
    const parsed = parseHostPort(address);
    return parsed.port > 0;
  } catch {
    return false;
  }
}

/** Milliseconds as seconds for messages: "5", "1.2". */
export function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}
