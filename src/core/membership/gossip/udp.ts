/**
 * The gossip datagram transport: one UDP socket, every packet sealed with the cluster
 * keyring (AES-256-GCM, see security/keyring.ts).
 *
 * One socket both sends and receives, bound to the address the node advertises: SWIM
 * answers a ping to the datagram's source address, so the source must be the member's
 * advertised address (memberlist's net_transport does the same on its bind address).
 *
 * Bounds: a datagram larger than `datagramBytesMax` (the MTU, default 1400 bytes) is
 * neither sent nor accepted. Received packets are handled synchronously as the socket
 * delivers them — the kernel's receive buffer is the only queue, so a flood overflows
 * there (counted by the OS) instead of in our memory. Sends that find more than
 * `sendQueueBytesMax` already waiting in the socket are dropped, like a full NIC queue.
 * Every drop is counted by reason, and logged at most once per reason per `dropLogIntervalMs`.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import type { Clock, Logger } from '../../runtime/index.ts';
import { systemClock } from '../../runtime/index.ts';
import { KEYRING_OVERHEAD_BYTES, type Keyring, KeyringOpenError } from '../../security/keyring.ts';
import { formatHostPort, type HostPort, parseHostPort } from '../../transport/address.ts';
import type { DatagramTransport } from './datagram.ts';

/** Default largest datagram on the wire, sealed: fits a 1500-byte Ethernet MTU with room for
 * IP/UDP headers and tunnels (VXLAN, WireGuard) on the way. */
export const DATAGRAM_BYTES_MAX_DEFAULT = 1400;
/** Default kernel receive buffer asked for (memberlist asks for 2 MiB too); the OS may cap it
 * (Linux: net.core.rmem_max). */
export const RECEIVE_BUFFER_BYTES_DEFAULT = 2 * 1024 * 1024;
/** Default bytes allowed to wait in the socket's send queue before new sends are dropped. */
export const SEND_QUEUE_BYTES_MAX_DEFAULT = 1024 * 1024;
/** Parsed destination addresses cached; the cache is cleared when full (SWIM talks to a
 * bounded set of members, so it refills with the live ones). */
const ADDRESS_CACHE_MAX = 4096;
const DROP_LOG_INTERVAL_MS = 10_000;
/** close() waits at most this long for sends already handed to the socket (dgram resolves
 * the destination asynchronously even for an IP literal, so a send issued just before
 * close — the last leave broadcast, say — would otherwise be discarded). */
const CLOSE_FLUSH_MS = 100;

export type UdpDropReason =
  /** Received datagram larger than datagramBytesMax. */
  | 'oversize'
  /** From a source the node's access control list refuses gossip. */
  | 'refused'
  /** No installed key opens it (another cluster's key or id, or altered on the way). */
  | 'unknownKey'
  /** Too short to be a sealed packet. */
  | 'malformed'
  /** A sealed-packet version we do not speak. */
  | 'version'
  /** A packet to send that would exceed datagramBytesMax once sealed (a budget bug upstream). */
  | 'sendOversize'
  /** The socket's send queue held more than sendQueueBytesMax. */
  | 'sendQueueFull'
  /** A destination that is not host:port. */
  | 'sendAddressInvalid'
  /** The OS refused the send (EHOSTUNREACH, ENETUNREACH, …). */
  | 'sendError'
  /** send() after close(). */
  | 'closed';

export interface UdpStats {
  packetsSent: number;
  packetsReceived: number;
  /** On the wire, sealed. */
  bytesSent: number;
  bytesReceived: number;
  dropped: Record<UdpDropReason, number>;
}

export interface UdpTransportOptions {
  /** IP address to bind and advertise; its family picks udp4 or udp6. */
  host: string;
  /** 0 lets the OS pick a free port (tests); a node binds its --listen port. */
  port: number;
  keyring: Keyring;
  /** Authenticated with every packet (not sent): packets of another cluster do not open. */
  aad: string;
  /** Called with each packet that opened: the sender's "host:port" and the plaintext. */
  onPacket: (fromAddress: string, plaintext: Uint8Array) => void;
  /** Whether a datagram from this IP may be taken in (the node's ACL); false drops it
   * (`dropped.refused`) before it is opened. Default: every source. */
  admitSource?: (ip: string) => boolean;
  /** Largest datagram sent or accepted, sealed. Default 1400. */
  datagramBytesMax?: number;
  receiveBufferBytes?: number;
  sendQueueBytesMax?: number;
  logger?: Logger;
  clock?: Clock;
}

/** Zeroed counters of a datagram transport (the UDP one and the simulator's). */
export function newDatagramStats(): UdpStats {
  return {
    packetsSent: 0,
    packetsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    dropped: {
      oversize: 0,
      refused: 0,
      unknownKey: 0,
      malformed: 0,
      version: 0,
      sendOversize: 0,
      sendQueueFull: 0,
      sendAddressInvalid: 0,
      sendError: 0,
      closed: 0,
    },
  };
}

/** The production DatagramTransport. */
export class UdpTransport implements DatagramTransport {
  /** Where the socket is bound, "host:port" (the port the OS chose if 0 was asked for). */
  readonly address: string;
  readonly datagramBytesMax: number;
  private readonly socket: Socket;
  private readonly options: UdpTransportOptions;
  private readonly sendQueueBytesMax: number;
  private readonly clock: Clock;
  private readonly counts: UdpStats = newDatagramStats();
  private readonly addresses = new Map<string, HostPort | null>();
  private readonly droppedLoggedAtMs = new Map<UdpDropReason, number>();
  private closed = false;
  private sendsInFlight = 0;
  private flushed: (() => void) | undefined;
  private readonly onSent = (error: Error | null): void => {
    this.sendsInFlight--;
    if (error !== null) this.drop('sendError', undefined, error.message);
    if (this.sendsInFlight === 0) this.flushed?.();
  };

  private constructor(socket: Socket, address: string, options: UdpTransportOptions) {
    this.socket = socket;
    this.address = address;
    this.options = options;
    this.datagramBytesMax = options.datagramBytesMax ?? DATAGRAM_BYTES_MAX_DEFAULT;
    this.sendQueueBytesMax = options.sendQueueBytesMax ?? SEND_QUEUE_BYTES_MAX_DEFAULT;
    this.clock = options.clock ?? systemClock;
    socket.on('message', (packet, remote) => this.onMessage(packet, remote));
    // Errors on an unconnected UDP socket are per-send (ICMP, routes); they never end it.
    socket.on('error', (error) => this.drop('sendError', undefined, error.message));
  }

  /** Binds the socket; rejects with RDB_CONFIG_INVALID if the address cannot be bound. */
  static async bind(options: UdpTransportOptions): Promise<UdpTransport> {
    const datagramBytesMax = options.datagramBytesMax ?? DATAGRAM_BYTES_MAX_DEFAULT;
    if (
      !Number.isInteger(datagramBytesMax) ||
      datagramBytesMax <= KEYRING_OVERHEAD_BYTES ||
      datagramBytesMax > 65_507
    ) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `datagramBytesMax must be an integer in ${KEYRING_OVERHEAD_BYTES + 1}..65507`,
      );
    }
    const family = isIP(options.host);
    if (family === 0) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `gossip must bind an IP address, not '${options.host}'`,
        { hint: 'the address is advertised to other members, who answer to it' },
      );
    }
    const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', ipv6Only: family === 6 });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => {
        socket.close();
        reject(
          new RdbnetError(
            ErrorCode.ConfigInvalid,
            `cannot bind gossip UDP ${formatHostPort(options)}: ${error.message}`,
            { cause: error },
          ),
        );
      };
      socket.once('error', onError);
      socket.bind({ address: options.host, port: options.port, exclusive: true }, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    const receiveBufferBytes = options.receiveBufferBytes ?? RECEIVE_BUFFER_BYTES_DEFAULT;
    try {
      socket.setRecvBufferSize(receiveBufferBytes);
    } catch (error) {
      options.logger?.warn('gossip: cannot set the UDP receive buffer size', {
        bytes: receiveBufferBytes,
        error,
      });
    }
    const bound = socket.address();
    return new UdpTransport(
      socket,
      formatHostPort({ host: bound.address, port: bound.port }),
      options,
    );
  }

  /** Seals and sends one packet. Returns false if it was dropped (and counted). */
  send(toAddress: string, plaintext: Uint8Array): boolean {
    if (this.closed) return this.drop('closed');
    if (plaintext.length + KEYRING_OVERHEAD_BYTES > this.datagramBytesMax) {
      return this.drop('sendOversize', toAddress);
    }
    const to = this.resolve(toAddress);
    if (to === null) return this.drop('sendAddressInvalid', toAddress);
    if (this.socket.getSendQueueSize() > this.sendQueueBytesMax) {
      return this.drop('sendQueueFull', toAddress);
    }
    const sealed = this.options.keyring.seal(plaintext, this.options.aad);
    this.counts.packetsSent++;
    this.counts.bytesSent += sealed.length;
    this.sendsInFlight++;
    this.socket.send(sealed, to.port, to.host, this.onSent);
    return true;
  }

  stats(): UdpStats {
    return { ...this.counts, dropped: { ...this.counts.dropped } };
  }

  /** Stops receiving and sending, lets the sends already issued leave (bounded wait), then
   * closes the socket. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sendsInFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_FLUSH_MS);
        this.flushed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private onMessage(packet: Buffer, remote: RemoteInfo): void {
    if (this.closed) return;
    if (this.options.admitSource !== undefined && !this.options.admitSource(remote.address)) {
      this.counts.dropped.refused++;
      return;
    }
    const from = formatHostPort({ host: remote.address, port: remote.port });
    if (packet.length > this.datagramBytesMax) {
      this.drop('oversize', from);
      return;
    }
    let plaintext: Uint8Array;
    try {
      plaintext = this.options.keyring.open(packet, this.options.aad);
    } catch (error) {
      if (!(error instanceof KeyringOpenError)) throw error;
      this.drop(error.reason === 'unknown-key' ? 'unknownKey' : error.reason, from);
      return;
    }
    this.counts.packetsReceived++;
    this.counts.bytesReceived += packet.length;
    this.options.onPacket(from, plaintext);
  }

  private resolve(address: string): HostPort | null {
    let parsed = this.addresses.get(address);
    if (parsed === undefined) {
      try {
        parsed = parseHostPort(address);
        // A name would make every send a DNS lookup, and the other family cannot be reached
        // from this socket at all.
        if (isIP(parsed.host) !== isIP(this.options.host)) parsed = null;
      } catch {
        parsed = null;
      }
      if (this.addresses.size >= ADDRESS_CACHE_MAX) this.addresses.clear();
      this.addresses.set(address, parsed);
    }
    return parsed;
  }

  private drop(reason: UdpDropReason, peer?: string, detail?: string): false {
    this.counts.dropped[reason]++;
    const logger = this.options.logger;
    if (logger !== undefined) {
      const now = this.clock.nowMs();
      const last = this.droppedLoggedAtMs.get(reason);
      if (last === undefined || now - last >= DROP_LOG_INTERVAL_MS) {
        this.droppedLoggedAtMs.set(reason, now);
        logger.warn('gossip: UDP packet dropped', {
          reason,
          peer,
          detail,
          dropped: this.counts.dropped[reason],
        });
      }
    }
    return false;
  }
}
