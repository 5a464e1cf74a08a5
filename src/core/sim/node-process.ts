/**
 * One simulated `rdbnet node start` process: the NodeEnvironment a whole RdbnetNode runs on
 * in the simulator. Time and every timer come from the EventQueue, chance from a seeded
 * Random, the Raft storage is a MemoryStorage that outlives the process (its data dir), the
 * listener and the node-to-node transport are one address on the SimPeerNetwork, and gossip's
 * datagrams go over SimDatagrams. The node runs --insecure (no certificates to load).
 *
 * kill() is kill -9: every timer the process set is cleared, its address leaves the peer
 * network and its datagram sockets close, so none of its code runs again; what it wrote to
 * its storage stays for the next process on the same data dir.
 */
import type { ClusterServiceInit } from '../cluster/init.ts';
import type { LeftMarkerStore } from '../cluster/left-marker.ts';
import { ClusterService } from '../cluster/service.ts';
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { DatagramBindInit, DatagramTransport } from '../membership/gossip/index.ts';
import type { MemoryStorage } from '../membership/raft/storage.ts';
import type { NodeEnvironment } from '../node/environment.ts';
import { NO_OPEN_CONNECTIONS, type NodeListener } from '../node/listener.ts';
import { createPeerResilience } from '../node/resilience.ts';
import { type PeerRequestHandler, peerSender } from '../rpc/peer.ts';
import { request } from '../rpc/request.ts';
import type { Random, TimedClock, TimerHandle } from '../runtime/index.ts';
import type { Keyring } from '../security/keyring.ts';
import type { SimDatagrams } from './datagrams.ts';
import type { EventQueue } from './index.ts';
import type { SimPeerNetwork, SimPeerTransport } from './peers.ts';

/** What survives a simulated process: its data dir. */
export interface SimDataDir {
  readonly storage: MemoryStorage;
  readonly leftMarker: LeftMarkerStore;
  /** Held by a live process (an flock the OS drops when the process dies). */
  locked: boolean;
}

export interface SimNodeProcessInit {
  id: string;
  /** host:port it listens and advertises on (gossip binds the same host and port). */
  address: string;
  pid: number;
  queue: EventQueue;
  random: Random;
  peers: SimPeerNetwork;
  datagrams: SimDatagrams;
  dataDir: SimDataDir;
  /** The cluster's gossip keyring (shared, as a copied keyring file would be). */
  keyring: Keyring;
}

export class SimNodeProcess {
  readonly environment: NodeEnvironment;
  /** The cluster service the node opened (for the simulation's invariants; read only). */
  cluster: ClusterService | null = null;
  private readonly init: SimNodeProcessInit;
  private readonly transport: SimPeerTransport;
  private readonly timers = new Set<TimerHandle>();
  private readonly sockets = new Set<DatagramTransport>();
  /** The node's admin handler once it listens; until then requests find no listener. */
  private handler: PeerRequestHandler | null = null;
  private killed = false;

  constructor(init: SimNodeProcessInit) {
    this.init = init;
    const { queue, address } = init;
    this.transport = init.peers.attach(
      address,
      { id: init.id, role: 'node', authenticated: true },
      (envelope, from) => {
        if (this.handler === null) {
          throw new RdbnetError(ErrorCode.NodeUnreachable, `nothing listens at ${address} yet`);
        }
        return this.handler(envelope, from);
      },
    );
    const timers = this.timers;
    const clock: TimedClock = {
      nowMs: () => queue.nowMs(),
      wallMs: () => queue.wallMs(),
      setTimer: (delayMs, run, options) => {
        if (this.killed) {
          const dead = queue.setTimer(delayMs, () => {}, options);
          queue.clearTimer(dead);
          return dead;
        }
        const handle = queue.setTimer(
          delayMs,
          () => {
            timers.delete(handle);
            run();
          },
          options,
        );
        timers.add(handle);
        return handle;
      },
      clearTimer: (handle) => {
        timers.delete(handle);
        queue.clearTimer(handle);
      },
    };
    const dataDir = init.dataDir;
    this.environment = {
      clock,
      random: init.random,
      pid: init.pid,
      nodeRecord: async () => ({ id: init.id, createdAt: new Date(queue.wallMs()).toISOString() }),
      lockDataDir: async () => {
        if (dataDir.locked) {
          throw new RdbnetError(ErrorCode.ConfigInvalid, `data dir of ${init.id} is in use`);
        }
        dataDir.locked = true;
        return async () => {
          dataDir.locked = false;
        };
      },
      certificates: async () => null,
      keyring: async () => init.keyring,
      openCluster: async (clusterInit: ClusterServiceInit) => {
        this.cluster = await ClusterService.onStorage(
          { ...clusterInit, leftMarker: dataDir.leftMarker },
          dataDir.storage,
        );
        return this.cluster;
      },
      listen: async (listenInit) => this.listen(listenInit.handler),
      peers: this.transport,
      datagrams: async (bindInit: DatagramBindInit) => {
        const socket = await init.datagrams.bind(bindInit);
        this.sockets.add(socket);
        return socket;
      },
      resilience: () => createPeerResilience(clock, init.random),
      answersStatus: async (to, _local, _tls, timeoutMs) => {
        try {
          await request(peerSender(this.transport, to), 'statusRequest', {}, timeoutMs);
          return true;
        } catch {
          return false;
        }
      },
    };
  }

  get alive(): boolean {
    return !this.killed;
  }

  private listen(handler: PeerRequestHandler): NodeListener {
    this.handler = handler;
    return {
      boundAddress: this.init.address,
      tls: false,
      openConnections: () => NO_OPEN_CONNECTIONS,
      counters: () => ({}),
      updateTls: () => {},
      close: async () => {
        this.handler = null;
        this.init.peers.detach(this.init.address);
      },
    };
  }

  /** kill -9: no code of this process runs again; its data dir is released. */
  async kill(): Promise<void> {
    if (this.killed) return;
    this.killed = true;
    this.handler = null;
    for (const handle of this.timers) this.init.queue.clearTimer(handle);
    this.timers.clear();
    this.init.peers.detach(this.init.address);
    for (const socket of this.sockets) await socket.close();
    this.sockets.clear();
    this.init.dataDir.locked = false;
  }
}
