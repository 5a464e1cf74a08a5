/**
 * Node-to-node links: one ReconnectingLink per peer address, dialed with this node's own
 * node certificate (role 'node'), so the peer can tell a member from an operator. The TLS
 * material is read at every dial, so a rotated certificate is used from the next connection.
 * PeerLinks is the production PeerTransport (rpc/peer.ts); the simulator has its own.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { LocalEndpoint } from '../protocol/handshake.ts';
import type { DecodedEnvelope, Envelope } from '../protocol/messages.ts';
import type { PeerTransport } from '../rpc/peer.ts';
import type { TlsMaterial } from '../security/tls.ts';
import { parseHostPort } from '../transport/address.ts';
import type { DialInit } from '../transport/dial.ts';
import type { ConnectionOptions } from '../transport/options.ts';
import { ReconnectingLink, type ReconnectOptions } from '../transport/reconnecting.ts';

/**
 * Peer links retry fast and give up early: Raft resends on its own (heartbeats, probes),
 * so a message waiting long for a dead peer is worth nothing, and a restarted peer should
 * be reached within a heartbeat or two.
 */
export const PEER_RECONNECT_OPTIONS: Readonly<ReconnectOptions> = Object.freeze({
  baseDelayMs: 50,
  capDelayMs: 1000,
  attemptsMax: 8,
  waitersMax: 64,
});

/** Links kept at once; addresses beyond this are refused (bounded like every table). */
export const PEER_LINKS_MAX = 1024;

export interface PeerLinksInit {
  local: LocalEndpoint;
  /** Current TLS material (null: --insecure), read at every dial. */
  tls(): TlsMaterial | null;
  options: ConnectionOptions;
}

export class PeerLinks implements PeerTransport {
  private readonly links = new Map<string, ReconnectingLink>();
  private readonly init: PeerLinksInit;
  private closed = false;

  constructor(init: PeerLinksInit) {
    this.init = init;
  }

  /** The link to `address` (host:port), created on first use. */
  link(address: string): ReconnectingLink {
    let link = this.links.get(address);
    if (link !== undefined) return link;
    if (this.closed) throw new Error('invariant violated: peer links used after close');
    if (this.links.size >= PEER_LINKS_MAX) this.evictOne();
    const init = this.init;
    const dialInit: DialInit = {
      address: parseHostPort(address, 'peer address'),
      local: init.local,
      options: init.options,
      // A getter: ReconnectingLink spreads this object at every dial.
      get tls() {
        return init.tls();
      },
    };
    link = new ReconnectingLink(dialInit, PEER_RECONNECT_OPTIONS);
    this.links.set(address, link);
    return link;
  }

  /** PeerTransport: one request on the link to `address` (made on first use). */
  request(address: string, envelope: Envelope, timeoutMs: number): Promise<DecodedEnvelope> {
    if (this.closed) {
      return Promise.reject(
        new RdbnetError(ErrorCode.ConnectionClosed, `peer links are closed (to ${address})`),
      );
    }
    let link: ReconnectingLink;
    try {
      link = this.link(address);
    } catch (error) {
      // A malformed address: a typed refusal, like every other failure of a request.
      return Promise.reject(error);
    }
    return link.request(envelope, timeoutMs);
  }

  /** PeerTransport: no link yet, or one that is neither open nor dialing. */
  isCold(address: string): boolean {
    const state = this.links.get(address)?.state;
    return state === undefined || state === 'idle' || state === 'failed';
  }

  /** PeerTransport: the link is open now (not idle, dialing, backing off or failed). */
  isOpen(address: string): boolean {
    return this.links.get(address)?.state === 'open';
  }

  /** Closes every link whose address is not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const [address, link] of this.links) {
      if (keep.has(address)) continue;
      link.close();
      this.links.delete(address);
    }
  }

  close(): void {
    this.closed = true;
    for (const link of this.links.values()) link.close();
    this.links.clear();
  }

  get size(): number {
    return this.links.size;
  }

  private evictOne(): void {
    for (const [address, link] of this.links) {
      if (link.state === 'open' || link.state === 'connecting') continue;
      link.close();
      this.links.delete(address);
      return;
    }
    const [address, link] = this.links.entries().next().value!;
    link.close();
    this.links.delete(address);
  }
}
