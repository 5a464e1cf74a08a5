/**
 * The node facade: builds every part from one NodeConfig, owns the lifecycle
 * (starting → running → stopping → stopped) and answers the admin API.
 */
import { adminHandler } from '../api/admin.ts';
import type { NodeConfig } from '../config/node-config.ts';
import { ErrorCode } from '../errors.ts';
import { PROTOCOL_VERSION } from '../protocol/handshake.ts';
import type { HealthReply, StatusReply } from '../protocol/messages.ts';
import { Counters, type Logger, systemClock } from '../runtime/index.ts';
import type { TlsMaterial } from '../security/tls.ts';
import { formatHostPort } from '../transport/address.ts';
import { TransportServer } from '../transport/server.ts';
import { SOFTWARE_VERSION } from '../version.ts';
import { loadNodeCredentials } from './credentials.ts';
import { lockDataDir, readOrCreateNodeRecord } from './data-dir.ts';

export type NodeState = 'starting' | 'running' | 'stopping' | 'stopped';

export class RdbnetNode {
  readonly id: string;
  readonly clusterId: string;
  readonly config: NodeConfig;
  readonly counters = new Counters();
  state: NodeState = 'starting';
  private readonly log: Logger;
  private readonly startedAtMs = systemClock.nowMs();
  private readonly startedAtWallMs = systemClock.wallMs();
  private server: TransportServer | null = null;
  private unlock: (() => Promise<void>) | null = null;
  private listenAddress = '';

  private constructor(config: NodeConfig, id: string, clusterId: string, log: Logger) {
    this.config = config;
    this.id = id;
    this.clusterId = clusterId;
    this.log = log;
  }

  static async start(config: NodeConfig, log: Logger): Promise<RdbnetNode> {
    const record = await readOrCreateNodeRecord(config.dataDir, config.id);
    const unlock = await lockDataDir(config.dataDir);
    try {
      let clusterId = config.cluster;
      let tls = null;
      if (!config.insecure) {
        const hosts = [
          ...new Set([config.listen.host, config.advertise.host, 'localhost', '127.0.0.1', '::1']),
        ].filter((host) => host !== '0.0.0.0' && host !== '::');
        const credentials = await loadNodeCredentials({
          certsDir: config.certsDir,
          nodeId: record.id,
          createMissing: config.certsDirIsDefault,
          defaultCluster: config.cluster,
          hosts,
        });
        for (const file of credentials.created) log.info('created certificate file', { file });
        clusterId = credentials.identity.cluster;
        tls = credentials.tls;
      } else {
        log.warn(
          'running without TLS (--insecure): connections are neither encrypted nor authenticated',
        );
      }
      const node = new RdbnetNode(config, record.id, clusterId, log);
      node.unlock = unlock;
      await node.listen(tls);
      return node;
    } catch (error) {
      await unlock();
      throw error;
    }
  }

  private async listen(tls: TlsMaterial | null): Promise<void> {
    const log = this.log;
    const counters = this.counters;
    this.server = new TransportServer({
      local: {
        id: this.id,
        clusterId: this.clusterId,
        role: 'node',
        softwareVersion: SOFTWARE_VERSION,
      },
      tls,
      options: this.config.connection,
      connectionsMax: this.config.connectionsMax,
      handler: adminHandler(this),
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
          if (error !== undefined && error.code !== ErrorCode.ConnectionClosed) {
            counters.increment(`connections.failed.${error.code}`);
            log.info('connection closed', {
              remote: connection.remoteAddress,
              code: error.code,
              reason: error.message,
            });
          }
        },
        onProtocolError: (connection, error) => {
          counters.increment(`protocol.errors.${error.code}`);
          log.warn('protocol error from peer', {
            remote: connection.remoteAddress,
            code: error.code,
            reason: error.message,
          });
        },
        onRejected: (remote, error) => {
          counters.increment(`connections.rejected.${error.code}`);
          log.warn('connection rejected', { remote, code: error.code, reason: error.message });
        },
      },
    });
    const bound = await this.server.listen(this.config.listen.host, this.config.listen.port);
    this.listenAddress = formatHostPort({ host: bound.address, port: bound.port });
    this.state = 'running';
    log.info('node running', {
      id: this.id,
      cluster: this.clusterId,
      listen: this.listenAddress,
      advertise: this.address,
      tls: tls !== null,
      certsDir: tls === null ? undefined : this.config.certsDir,
      dataDir: this.config.dataDir,
      version: SOFTWARE_VERSION,
    });
  }

  /** The address others reach this node at (the bound port when listening on port 0). */
  get address(): string {
    const port =
      this.config.advertise.port === 0
        ? Number(this.listenAddress.split(':').pop())
        : this.config.advertise.port;
    return formatHostPort({ host: this.config.advertise.host, port });
  }

  get boundAddress(): string {
    return this.listenAddress;
  }

  async stop(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = 'stopping';
    this.log.info('node stopping', { graceMs: this.config.shutdownGraceMs });
    await this.server?.close(this.config.shutdownGraceMs);
    await this.unlock?.();
    this.state = 'stopped';
    this.log.info('node stopped', { id: this.id });
  }

  status(): StatusReply {
    const connections = this.server?.connections ?? new Set();
    let framesIn = this.counters.get('frames.in');
    let framesOut = this.counters.get('frames.out');
    for (const connection of connections) {
      framesIn += connection.framesIn;
      framesOut += connection.framesOut;
    }
    return {
      id: this.id,
      address: this.address,
      version: SOFTWARE_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      uptimeMs: Math.round(systemClock.nowMs() - this.startedAtMs),
      state: this.state,
      clusterId: this.clusterId,
      startedAtMs: this.startedAtWallMs,
      pid: process.pid,
      tls: this.server?.tls ?? false,
      connections: connections.size,
      counters: { ...this.counters.snapshot(), 'frames.in': framesIn, 'frames.out': framesOut },
    };
  }

  /** Health of the one node this build knows of; cluster-wide health arrives with membership. */
  health(): HealthReply {
    const live = this.state === 'running' || this.state === 'starting';
    const ready = this.state === 'running';
    const problems = ready ? [] : [`node is ${this.state}`];
    return {
      status: ready ? 'healthy' : 'critical',
      quorum: ready,
      nodes: [
        {
          id: this.id,
          address: this.address,
          state: ready ? 'alive' : this.state,
          phi: 0,
          lastHeartbeatMs: 0,
          live,
          ready,
          problems,
        },
      ],
    };
  }
}
