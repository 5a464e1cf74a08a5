/**
 * The node-to-node request seam (ARCHITECTURE.md practice 3). A node asks another node one
 * Envelope at a time through a `PeerTransport` (in production PeerLinks, over mTLS
 * ReconnectingLinks; in the simulator a transport over sim's SimNetwork), and answers what
 * others ask with a `PeerRequestHandler`, which learns who asks from a `PeerIdentity`
 * rather than from a socket — so the same handler serves a real Connection (which is one)
 * and a simulated peer.
 */
import type { PeerInfo } from '../protocol/handshake.ts';
import type { DecodedEnvelope, Envelope } from '../protocol/messages.ts';
import type { RequestSender } from './request.ts';

/** Who sent a request: what a handler may base its decisions on. A Connection is one. */
export interface PeerIdentity {
  /** What the handshake proved (or, on --insecure, claimed); null before a handshake. */
  readonly peer: Pick<PeerInfo, 'id' | 'role' | 'authenticated' | 'clientRole'> | null;
  /** Where the request came from, host:port (for a TCP peer, its ephemeral source port). */
  readonly remoteAddress: string;
}

/** Answers one request; throw a RdbnetError to answer with that error. */
export type PeerRequestHandler = (
  request: DecodedEnvelope,
  from: PeerIdentity,
) => Envelope | Promise<Envelope>;

export interface PeerTransport {
  /**
   * Sends `envelope` to the node listening on `address` (host:port) and resolves with its
   * reply. Rejects with a typed error: RDB_NODE_UNREACHABLE (no connection within
   * `timeoutMs`), RDB_REQUEST_TIMEOUT (no reply within it), RDB_CONNECTION_CLOSED, a bound's
   * RDB_INFLIGHT_LIMIT, or the error the peer answered with.
   */
  request(address: string, envelope: Envelope, timeoutMs: number): Promise<DecodedEnvelope>;
  /**
   * True when nothing to `address` is open or being opened, so a first request would wait
   * for a dial and a handshake (a transport without connections is never cold).
   */
  isCold(address: string): boolean;
  /**
   * True when a connection to `address` is open now (not cold, not dialing, not waiting to
   * redial). Optional: a transport without connections leaves it out (never cold either).
   */
  isOpen?(address: string): boolean;
  /** Lets go of whatever is kept for addresses not in `keep` (open connections). */
  retain(keep: ReadonlySet<string>): void;
  /** Ends every exchange; later requests are refused with RDB_CONNECTION_CLOSED. */
  close(): void;
}

/** One peer of a transport as a RequestSender, for `request()` (request.ts). */
export function peerSender(transport: PeerTransport, address: string): RequestSender {
  return {
    request: (envelope, timeoutMs) =>
      transport.request(address, envelope, timeoutMs ?? PEER_REQUEST_TIMEOUT_DEFAULT_MS),
  };
}

/** A request sent through peerSender without its own timeout waits this long. */
export const PEER_REQUEST_TIMEOUT_DEFAULT_MS = 1000;
