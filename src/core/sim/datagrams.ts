/**
 * Gossip's datagram transport on the simulated network: the DatagramTransport a GossipDriver
 * binds through `SimDatagrams.bind` instead of a UDP socket. Packets are sealed and opened
 * with the keyring exactly as UdpTransport does (same size limits, same drop reasons), then
 * carried by a SimNetwork — so loss, delay, duplication, partitions and crashes are the
 * network's, seeded and replayable. (Seals use random nonces: the bytes differ between
 * runs, their sizes and everything decided from them do not.)
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type {
  DatagramBindInit,
  DatagramTransport,
  UdpDropReason,
  UdpStats,
} from '../membership/gossip/index.ts';
import { newDatagramStats } from '../membership/gossip/udp.ts';
import { KEYRING_OVERHEAD_BYTES, KeyringOpenError } from '../security/keyring.ts';
import { formatHostPort, parseHostPort } from '../transport/address.ts';
import type { SimNetwork } from './index.ts';

/** Ports handed out for port 0, upward from here (the ephemeral range, as an OS would). */
const SIM_EPHEMERAL_PORT_FIRST = 49_152;

/** Binds simulated datagram transports on one SimNetwork. */
export class SimDatagrams {
  readonly network: SimNetwork<Uint8Array>;
  private readonly bound = new Set<string>();
  private nextPort = SIM_EPHEMERAL_PORT_FIRST;

  constructor(network: SimNetwork<Uint8Array>) {
    this.network = network;
  }

  /** A DatagramBinder (GossipDriverOptions.datagrams). Refuses an address bound already. */
  readonly bind = async (init: DatagramBindInit): Promise<DatagramTransport> => {
    const port = init.port === 0 ? this.nextPort++ : init.port;
    const address = formatHostPort({ host: init.host, port });
    if (this.bound.has(address)) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `cannot bind gossip UDP ${address}: address in use (simulated)`,
      );
    }
    this.bound.add(address);
    return new SimDatagramTransport(address, init, this.network, () => this.bound.delete(address));
  };
}

class SimDatagramTransport implements DatagramTransport {
  readonly address: string;
  private readonly init: DatagramBindInit;
  private readonly network: SimNetwork<Uint8Array>;
  private readonly release: () => void;
  private readonly counts = newDatagramStats();
  private closed = false;

  constructor(
    address: string,
    init: DatagramBindInit,
    network: SimNetwork<Uint8Array>,
    release: () => void,
  ) {
    this.address = address;
    this.init = init;
    this.network = network;
    this.release = release;
    network.register(address, (from, packet) => this.receive(from, packet));
  }

  send(toAddress: string, plaintext: Uint8Array): boolean {
    if (this.closed) return this.drop('closed');
    if (plaintext.length + KEYRING_OVERHEAD_BYTES > this.init.datagramBytesMax) {
      return this.drop('sendOversize');
    }
    try {
      parseHostPort(toAddress);
    } catch {
      return this.drop('sendAddressInvalid');
    }
    const sealed = this.init.keyring.seal(plaintext, this.init.aad);
    this.counts.packetsSent++;
    this.counts.bytesSent += sealed.length;
    this.network.send(this.address, toAddress, sealed);
    return true;
  }

  stats(): UdpStats {
    return { ...this.counts, dropped: { ...this.counts.dropped } };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.network.unregister(this.address);
    this.release();
  }

  private receive(from: string, packet: Uint8Array): void {
    if (this.closed) return;
    if (packet.length > this.init.datagramBytesMax) {
      this.drop('oversize');
      return;
    }
    let plaintext: Uint8Array;
    try {
      plaintext = this.init.keyring.open(packet, this.init.aad);
    } catch (error) {
      if (!(error instanceof KeyringOpenError)) throw error;
      this.drop(error.reason === 'unknown-key' ? 'unknownKey' : error.reason);
      return;
    }
    this.counts.packetsReceived++;
    this.counts.bytesReceived += packet.length;
    this.init.onPacket(from, plaintext);
  }

  private drop(reason: UdpDropReason): false {
    this.counts.dropped[reason]++;
    return false;
  }
}
