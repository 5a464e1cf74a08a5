/**
 * Where a node answers requests: the seam between the node and its accepting side. In
 * production a TransportServer (TCP + mTLS) with the node's connection limits, memory budget
 * and connection events; in the simulator an address on the simulated peer network. Either
 * way every request goes to the node's own admin handler.
 */
import type { NodeConfig } from '../config/node-config.ts';
import { ErrorCode } from '../errors.ts';
import type { PeerInfo } from '../protocol/handshake.ts';
import type { PeerRequestHandler } from '../rpc/peer.ts';
import type { Counters, LogFields, Logger } from '../runtime/index.ts';
import type { TlsMaterial } from '../security/tls.ts';
import { formatHostPort } from '../transport/address.ts';
import { MemoryBudget } from '../transport/memory-budget.ts';
import {
  type ConnectionGate,
  TransportServer,
  type TransportServerStats,
} from '../transport/server.ts';
import { SOFTWARE_VERSION } from '../version.ts';
import type { NodeCertificates } from './certificates.ts';

/** What a node asks of the side that accepts its requests. */
export interface NodeListener {
  /** host:port actually bound (the real port when the config asked for port 0). */
  readonly boundAddress: string;
  /** Whether requests arrive over TLS. */
  readonly tls: boolean;
  /** Connections open now, with the frames and bytes they carried so far. */
  openConnections(): OpenConnections;
  /** Connection-limit and memory-budget counters for `node status` (some are gauges). */
  counters(): Record<string, number>;
  /** New certificate or trust material for connections accepted from now on. */
  updateTls(material: TlsMaterial): void;
  /** Stops accepting; gives open connections up to `graceMs` to finish. */
  close(graceMs: number): Promise<void>;
}

export interface OpenConnections {
  count: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
}

export const NO_OPEN_CONNECTIONS: OpenConnections = {
  count: 0,
  framesIn: 0,
  framesOut: 0,
  bytesIn: 0,
  bytesOut: 0,
};

/** What the node hands its listener. */
export interface NodeListenInit {
  id: string;
  clusterId: string;
  config: NodeConfig;
  tls: TlsMaterial | null;
  certificates: NodeCertificates | null;
  /** The node's admin handler: every request, from peers and operators. */
  handler: PeerRequestHandler;
  log: Logger;
  counters: Counters;
  /** Members and gossip peers: exempt from the idle timeout and connectionsMax. */
  isClusterPeer(peer: PeerInfo): boolean;
  /** The ACL's gates at accept and handshake (absent: none). */
  gate?: ConnectionGate;
  /** Logs a line about a refused or failed connection unless too many came lately. */
  connectionLine(level: 'info' | 'warn', kind: string, msg: string, fields: LogFields): void;
}

/** `rdbnet node start`'s listener: a TransportServer on config.listen. */
export async function listenTransport(init: NodeListenInit): Promise<NodeListener> {
  const { config, counters, log } = init;
  const budget = new MemoryBudget(config.bufferedBytesMax);
  const server = new TransportServer({
    local: {
      id: init.id,
      clusterId: init.clusterId,
      role: 'node',
      softwareVersion: SOFTWARE_VERSION,
    },
    tls: init.tls,
    options: config.connection,
    connectionsMax: config.connectionsMax,
    unauthenticatedConnectionsMax: config.unauthenticatedConnectionsMax,
    unauthenticatedConnectionsPerSourceMax: config.unauthenticatedConnectionsPerSourceMax,
    ...(config.idleTimeoutMs === 0 ? {} : { idleTimeoutMs: config.idleTimeoutMs }),
    budget,
    exempt: (peer) => init.isClusterPeer(peer),
    ...(init.gate === undefined ? {} : { gate: init.gate }),
    handler: init.handler,
    ...(init.certificates === null
      ? {}
      : { admit: init.certificates.admit.bind(init.certificates) }),
    events: {
      onOpen: (connection) => {
        counters.increment('connections.accepted');
        log.debug('connection open', {
          remote: connection.remoteAddress,
          peer: connection.peer?.id,
          role: connection.peer?.role,
        });
      },
      onClose: (connection, error) => {
        counters.increment('frames.in', connection.framesIn);
        counters.increment('frames.out', connection.framesOut);
        counters.increment('bytes.in', connection.bytesIn);
        counters.increment('bytes.out', connection.bytesOut);
        if (error !== undefined && error.code !== ErrorCode.ConnectionClosed) {
          counters.increment(`connections.failed.${error.code}`);
          init.connectionLine('info', `closed.${error.code}`, 'connection closed', {
            remote: connection.remoteAddress,
            code: error.code,
            reason: error.message,
          });
        }
      },
      onProtocolError: (connection, error) => {
        counters.increment(`protocol.errors.${error.code}`);
        // Refused in the handshake (a hello whose role or id the certificate does not back).
        if (connection.peer === null) {
          counters.increment(`connections.rejected.${error.code}`);
          init.gate?.failed?.(connection.remoteAddress, error);
        }
        init.connectionLine('warn', `protocol.${error.code}`, 'protocol error from peer', {
          remote: connection.remoteAddress,
          code: error.code,
          reason: error.message,
        });
      },
      onRejected: (remote, error) => {
        counters.increment(`connections.rejected.${error.code}`);
        init.connectionLine('warn', `rejected.${error.code}`, 'connection rejected', {
          remote,
          code: error.code,
          reason: error.message,
        });
      },
    },
  });
  let bound: Awaited<ReturnType<TransportServer['listen']>>;
  try {
    bound = await server.listen(config.listen.host, config.listen.port);
  } catch (error) {
    // Not listening (the port is taken): stop what listen() started (its sweep timer).
    await server.close(0);
    throw error;
  }
  return {
    boundAddress: formatHostPort({ host: bound.address, port: bound.port }),
    get tls() {
      return server.tls;
    },
    openConnections: () => {
      let framesIn = 0;
      let framesOut = 0;
      let bytesIn = 0;
      let bytesOut = 0;
      for (const connection of server.connections) {
        framesIn += connection.framesIn;
        framesOut += connection.framesOut;
        bytesIn += connection.bytesIn;
        bytesOut += connection.bytesOut;
      }
      return { count: server.connections.size, framesIn, framesOut, bytesIn, bytesOut };
    },
    counters: () => transportCounters(server.stats(), budget),
    updateTls: (material) => server.updateTls(material),
    close: (graceMs) => server.close(graceMs),
  };
}

/** Connection limits and the memory budget as `node status` counters (some are gauges). */
function transportCounters(
  stats: TransportServerStats,
  budget: MemoryBudget,
): Record<string, number> {
  const memory = budget.stats();
  return {
    'connections.authenticated': stats.authenticated,
    'connections.preauth.open': stats.unauthenticated,
    'connections.preauth.evicted': stats.preauthEvicted,
    'connections.preauth.timed_out': stats.preauthTimedOut,
    'connections.limit_refused': stats.connectionLimitRefused,
    'connections.idle_closed': stats.idleClosed,
    'connections.acl_refused': stats.gateRefused,
    'memory.buffered_bytes': memory.bufferedBytes,
    'memory.buffered_bytes_peak': memory.bufferedBytesPeak,
    'memory.buffered_bytes_max': memory.bufferedBytesMax,
    'memory.budget_refusals': memory.refusals,
  };
}
