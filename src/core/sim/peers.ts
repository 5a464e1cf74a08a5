/**
 * Node-to-node requests on the simulated network: a PeerTransport per simulated node and
 * the delivery of each request to the PeerRequestHandler of the node it is addressed to,
 * with the SimNetwork's latency, loss, duplication, partitions and crashes on the way there
 * and back. Envelopes go through the real protobuf codec both ways, so whatever would not
 * survive the wire does not survive here either, and the network counts real sizes.
 *
 * Failures look like PeerLinks' to the caller: a request to a node that is down, cut off or
 * not listening fails with RDB_NODE_UNREACHABLE once its timeout has passed (a real link
 * keeps redialing until then); one whose request or reply was lost on the way fails with
 * RDB_REQUEST_TIMEOUT; an error the handler throws comes back with its code.
 */
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import { FRAME_HEADER_BYTES } from '../protocol/frame.ts';
import {
  type DecodedEnvelope,
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
} from '../protocol/messages.ts';
import type { PeerIdentity, PeerRequestHandler, PeerTransport } from '../rpc/peer.ts';
import type { TimerHandle, Timers } from '../runtime/index.ts';
import type { SimNetwork } from './index.ts';

/** Requests one simulated node may have waiting for replies; more are refused at once. */
export const SIM_PEER_REQUESTS_INFLIGHT_MAX = 4096;

export type SimPeerPacket =
  | { type: 'request'; id: number; bytes: Uint8Array; peer: PeerIdentity['peer'] }
  | { type: 'reply'; id: number; bytes: Uint8Array }
  | { type: 'error'; id: number; code: string; message: string };

/** Bytes a packet stands for on the wire, one frame (for the network's byte counter). */
export function simPeerPacketBytes(packet: SimPeerPacket): number {
  const payload =
    packet.type === 'error' ? packet.code.length + packet.message.length : packet.bytes.length;
  return FRAME_HEADER_BYTES + payload;
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

interface Pending {
  resolve(reply: DecodedEnvelope): void;
  reject(error: RdbnetError): void;
  timer: TimerHandle;
}

interface Endpoint {
  transport: SimPeerTransport;
  handler: PeerRequestHandler | null;
}

/** The simulated nodes that talk to each other, each at its own address. */
export class SimPeerNetwork {
  readonly network: SimNetwork<SimPeerPacket>;
  readonly timers: Timers;
  private readonly endpoints = new Map<string, Endpoint>();

  /** `timers` must run on the same queue as `network` (pass the EventQueue). */
  constructor(network: SimNetwork<SimPeerPacket>, timers: Timers) {
    this.network = network;
    this.timers = timers;
  }

  /**
   * Makes `address` a node: requests to it go to `handler` (null: it asks, never answers),
   * and it asks others through the transport returned, as `peer`.
   */
  attach(
    address: string,
    peer: NonNullable<PeerIdentity['peer']>,
    handler: PeerRequestHandler | null,
  ): SimPeerTransport {
    if (this.endpoints.has(address)) {
      throw new Error(`invariant violated: simulated address ${address} is in use`);
    }
    const transport = new SimPeerTransport(this, address, { ...peer });
    this.endpoints.set(address, { transport, handler });
    this.network.register(address, (from, packet) => this.deliver(address, from, packet));
    return transport;
  }

  /** The process at `address` is gone: it stops answering and its own requests fail. */
  detach(address: string): void {
    const endpoint = this.endpoints.get(address);
    if (endpoint === undefined) return;
    this.endpoints.delete(address);
    this.network.unregister(address);
    endpoint.transport.close();
  }

  /** Whether a request from `from` to `to` can get there now. */
  reachable(from: string, to: string): boolean {
    return this.endpoints.get(to)?.handler != null && this.network.canReach(from, to);
  }

  private deliver(address: string, from: string, packet: SimPeerPacket): void {
    const endpoint = this.endpoints.get(address);
    if (endpoint === undefined) return;
    if (packet.type !== 'request') {
      endpoint.transport.settle(packet);
      return;
    }
    if (endpoint.handler === null) return;
    const reply = (answer: SimPeerPacket): void => {
      // The node may have gone (or come back as a new process) while it worked on this.
      if (this.endpoints.get(address) === endpoint) this.network.send(address, from, answer);
    };
    const fail = (error: unknown): void => {
      const typed = isRdbnetError(error)
        ? error
        : new RdbnetError(ErrorCode.Internal, 'internal error while handling the request');
      reply({ type: 'error', id: packet.id, code: typed.code, message: typed.message });
    };
    let result: Envelope | Promise<Envelope>;
    try {
      result = endpoint.handler(decodeEnvelope(packet.bytes), {
        peer: packet.peer,
        remoteAddress: from,
      });
    } catch (error) {
      fail(error);
      return;
    }
    const answer = (envelope: Envelope): void =>
      reply({ type: 'reply', id: packet.id, bytes: encodeEnvelope(envelope) });
    if (result instanceof Promise) result.then(answer, fail);
    else answer(result);
  }
}

/** One simulated node's PeerTransport (made by SimPeerNetwork.attach). */
export class SimPeerTransport implements PeerTransport {
  readonly address: string;
  private readonly net: SimPeerNetwork;
  private readonly peer: NonNullable<PeerIdentity['peer']>;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** Requests sent, and how they ended. */
  readonly stats = { sent: 0, replied: 0, failed: 0, timedOut: 0, refused: 0 };

  constructor(net: SimPeerNetwork, address: string, peer: NonNullable<PeerIdentity['peer']>) {
    this.net = net;
    this.address = address;
    this.peer = peer;
  }

  request(address: string, envelope: Envelope, timeoutMs: number): Promise<DecodedEnvelope> {
    if (this.closed) {
      this.stats.refused++;
      return Promise.reject(
        new RdbnetError(ErrorCode.ConnectionClosed, `peer transport of ${this.address} is closed`),
      );
    }
    if (this.pending.size >= SIM_PEER_REQUESTS_INFLIGHT_MAX) {
      this.stats.refused++;
      return Promise.reject(
        new RdbnetError(
          ErrorCode.InflightLimit,
          `${this.pending.size} requests from ${this.address} already wait for replies`,
        ),
      );
    }
    const id = this.nextId++;
    const reachable = this.net.reachable(this.address, address);
    let bytes: Uint8Array;
    try {
      bytes = encodeEnvelope(envelope);
    } catch (error) {
      return Promise.reject(error);
    }
    this.stats.sent++;
    return new Promise<DecodedEnvelope>((resolve, reject) => {
      const timer = this.net.timers.setTimer(timeoutMs, () => {
        this.pending.delete(id);
        this.stats.timedOut++;
        reject(
          reachable
            ? new RdbnetError(
                ErrorCode.RequestTimeout,
                `no reply from ${address} within ${timeoutMs} ms`,
              )
            : new RdbnetError(
                ErrorCode.NodeUnreachable,
                `no connection to ${address} within ${timeoutMs} ms`,
              ),
        );
      });
      this.pending.set(id, { resolve, reject, timer });
      this.net.network.send(this.address, address, {
        type: 'request',
        id,
        bytes,
        peer: { ...this.peer },
      });
    });
  }

  isCold(_address: string): boolean {
    return false;
  }

  retain(_keep: ReadonlySet<string>): void {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const pending of this.pending.values()) {
      this.net.timers.clearTimer(pending.timer);
      pending.reject(
        new RdbnetError(ErrorCode.ConnectionClosed, `peer transport of ${this.address} closed`),
      );
    }
    this.pending.clear();
  }

  /** A reply or an error for one of our requests (a late or duplicated one is ignored). */
  settle(packet: Exclude<SimPeerPacket, { type: 'request' }>): void {
    const pending = this.pending.get(packet.id);
    if (pending === undefined) return;
    this.pending.delete(packet.id);
    this.net.timers.clearTimer(pending.timer);
    if (packet.type === 'error') {
      this.stats.failed++;
      const code = KNOWN_CODES.has(packet.code)
        ? (packet.code as ErrorCode)
        : ErrorCode.RemoteError;
      pending.reject(new RdbnetError(code, packet.message));
      return;
    }
    let reply: DecodedEnvelope;
    try {
      reply = decodeEnvelope(packet.bytes);
    } catch (error) {
      this.stats.failed++;
      pending.reject(error as RdbnetError);
      return;
    }
    this.stats.replied++;
    pending.resolve(reply);
  }
}
