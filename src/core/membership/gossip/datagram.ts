/**
 * The gossip datagram seam: what the GossipDriver needs from a packet network. In a node it
 * is the keyring-sealed UDP socket (udp.ts); in the simulator, a transport over sim's
 * SimNetwork. The driver hands plaintext SWIM packets in and gets plaintext packets back:
 * sealing, size limits and drop counting are the transport's.
 */
import type { Keyring } from '../../security/keyring.ts';
import type { UdpStats } from './udp.ts';

export interface DatagramTransport {
  /** The address bound and advertised, "host:port" (with the port chosen if 0 was asked). */
  readonly address: string;
  /** Seals and sends one packet, best effort. Returns false if it was dropped (and counted). */
  send(toAddress: string, plaintext: Uint8Array): boolean;
  /** Counters in the UDP transport's shape; a transport counts the drop reasons that apply. */
  stats(): UdpStats;
  /** Stops sending and receiving; idempotent. */
  close(): Promise<void>;
}

export interface DatagramBindInit {
  /** IP address to bind and advertise. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Seals every packet sent and opens every packet received. */
  keyring: Keyring;
  /** Authenticated with every packet (not sent). */
  aad: string;
  /** Largest datagram sent or accepted, sealed. */
  datagramBytesMax: number;
  /** Called with each packet that opened: the sender's "host:port" and the plaintext. */
  onPacket(fromAddress: string, plaintext: Uint8Array): void;
}

/** Binds a datagram transport; rejects with RDB_CONFIG_INVALID when it cannot. */
export type DatagramBinder = (init: DatagramBindInit) => Promise<DatagramTransport>;
