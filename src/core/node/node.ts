/**
 * The node facade: builds every part from one NodeConfig, owns the lifecycle
 * (starting → running → stopping → stopped) and answers the admin API. Its cluster service
 * runs the cluster configuration (Raft) with the other members.
 */
import {
  type AdminSource,
  adminHandler,
  type CertificateAdmin,
  type ClusterRequests,
  type MembershipRequests,
} from '../api/admin.ts';
import { ClusterService } from '../cluster/service.ts';
import { raftCoreConfig } from '../cluster/timings.ts';
import { clusterTunablesOf, NODE_PRESETS, type NodeConfig } from '../config/node-config.ts';
import {
  checkRegistrable,
  closeSources,
  type DiscoverySource,
  openSources,
  type ProviderContext,
  RetryJoin,
  SelfRegistrations,
} from '../discovery/index.ts';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { clusterHealth } from '../health/cluster-health.ts';
import type { PeerResilience } from '../lb/registry.ts';
import { type PeerInfo, PROTOCOL_VERSION } from '../protocol/handshake.ts';
import type {
  CertInfoReply,
  CertRotateReply,
  HealthReply,
  KeyringRequest,
  LbStatusReply,
  MemberEventsReply,
  MembersReply,
  NodeHealth,
  StatusReply,
} from '../protocol/messages.ts';
import { request } from '../rpc/request.ts';
import {
  Counters,
  type LogFields,
  type Logger,
  LogLimiter,
  systemClock,
  systemRandom,
} from '../runtime/index.ts';
import type { KeyBits } from '../security/pki.ts';
import type { TlsMaterial } from '../security/tls.ts';
import { formatHostPort, parseHostPort } from '../transport/address.ts';
import { dial } from '../transport/dial.ts';
import { MemoryBudget } from '../transport/memory-budget.ts';
import { connectionOptions } from '../transport/options.ts';
import { TransportServer, type TransportServerStats } from '../transport/server.ts';
import { SOFTWARE_VERSION } from '../version.ts';
import { NodeCertificates } from './certificates.ts';
import { loadNodeCredentials } from './credentials.ts';
import { lockDataDir, readOrCreateNodeRecord } from './data-dir.ts';
import {
  gossipCounters,
  gossipKeyringPath,
  loadNodeKeyring,
  NodeGossip,
  nodeAddressOf,
} from './gossip.ts';
import { createPeerResilience, lbStatusReply } from './resilience.ts';

export type NodeState = 'starting' | 'running' | 'stopping' | 'stopped';

/** Members asked over TCP by one health request, and how long each may take. */
const DIAGNOSE_MEMBERS_MAX = 8;
const DIAGNOSE_TIMEOUT_MS = 500;

/** A certificate closer than this to expiry makes the node's health degraded. */
export const CERT_DAYS_LEFT_WARN = 30;

/** Lines about refused or failed connections: this many in full per interval, then one
 * summary of the rest per interval, so a flood of strangers cannot flood the log. */
const CONNECTION_LOG_BURST = 10;
const CONNECTION_LOG_INTERVAL_MS = 10_000;

export class RdbnetNode implements AdminSource {
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
  private nodeCertificates: NodeCertificates | null = null;
  private clusterService: ClusterService | null = null;
  private gossip: NodeGossip | null = null;
  private readonly budget: MemoryBudget;
  private readonly connectionLog = new LogLimiter({
    intervalMs: CONNECTION_LOG_INTERVAL_MS,
    burst: CONNECTION_LOG_BURST,
    clock: systemClock,
  });
  private connectionLogTimer: NodeJS.Timeout | null = null;
  /** Breaker, retry budget, rate limit and latency per peer, for what this node sends. */
  readonly resilience: PeerResilience = createPeerResilience();
  /** --retry-join lookups (null without --retry-join, or once stopped). */
  private retryJoin: RetryJoin | null = null;
  /** --register registrations (null without --register). */
  private registrations: SelfRegistrations | null = null;
  private discoverySources: DiscoverySource[] = [];

  private constructor(config: NodeConfig, id: string, clusterId: string, log: Logger) {
    this.config = config;
    this.id = id;
    this.clusterId = clusterId;
    this.log = log;
    this.budget = new MemoryBudget(config.bufferedBytesMax);
  }

  static async start(config: NodeConfig, log: Logger): Promise<RdbnetNode> {
    // Discovery specs are built (their values checked) before anything is read or written: a
    // bad spec, or --register with a provider that cannot register, changes nothing (exit 64).
    const discoveryContext: ProviderContext = {
      env: process.env,
      clock: systemClock,
      log: (level, message, fields) => log[level](message, { ...fields }),
    };
    const retryJoinSources =
      config.retryJoin.length === 0 ? [] : openSources(config.retryJoin, discoveryContext);
    const registerSources =
      config.register.length === 0 ? [] : openSources(config.register, discoveryContext);
    checkRegistrable(registerSources);
    const discoverySources = [...retryJoinSources, ...registerSources];
    try {
      return await RdbnetNode.startWith(
        config,
        log,
        retryJoinSources,
        registerSources,
        discoverySources,
      );
    } catch (error) {
      await closeSources(discoverySources);
      throw error;
    }
  }

  private static async startWith(
    config: NodeConfig,
    log: Logger,
    retryJoinSources: DiscoverySource[],
    registerSources: DiscoverySource[],
    discoverySources: DiscoverySource[],
  ): Promise<RdbnetNode> {
    const record = await readOrCreateNodeRecord(config.dataDir, config.id);
    const unlock = await lockDataDir(config.dataDir);
    try {
      let clusterId = config.cluster;
      let credentials: Awaited<ReturnType<typeof loadNodeCredentials>> | null = null;
      if (!config.insecure) {
        const hosts = [
          ...new Set([config.listen.host, config.advertise.host, 'localhost', '127.0.0.1', '::1']),
        ].filter((host) => host !== '0.0.0.0' && host !== '::');
        credentials = await loadNodeCredentials({
          certsDir: config.certsDir,
          nodeId: record.id,
          createMissing: config.certsDirIsDefault,
          defaultCluster: config.cluster,
          hosts,
        });
        for (const file of credentials.created) log.info('created certificate file', { file });
        clusterId = credentials.identity.cluster;
      } else {
        log.warn(
          'running without TLS (--insecure): connections are neither encrypted nor authenticated',
        );
      }
      // Read before anything listens: a missing keyring stops the start here.
      const keyring = await loadNodeKeyring(config, log);
      const node = new RdbnetNode(config, record.id, clusterId, log);
      node.unlock = unlock;
      if (credentials !== null) {
        node.nodeCertificates = await NodeCertificates.load({
          certsDir: config.certsDir,
          nodeId: record.id,
          identity: credentials.identity,
          tls: credentials.tls,
          log,
          counters: node.counters,
          onChange: (material) => node.server?.updateTls(material),
        });
      }
      // The Raft storage is opened (and verified) before the node listens: a damaged log or
      // a data dir that left its cluster stops the start here.
      node.clusterService = await ClusterService.open({
        id: record.id,
        dataDir: config.dataDir,
        clusterName: clusterId,
        // --retry-join alone still means "wait for a cluster", as an empty --join does.
        seeds: config.join ?? (config.retryJoin.length > 0 ? [] : undefined),
        bootstrapExpect: config.bootstrapExpect,
        clusterId: config.clusterId,
        local: { id: record.id, clusterId, role: 'node', softwareVersion: SOFTWARE_VERSION },
        tls: () => node.nodeCertificates?.tls ?? null,
        connection: config.connection,
        log,
        counters: node.counters,
        deadVoterRemoveAfterMs: config.deadVoterRemoveAfterMs,
        // The preset's (or overridden) Raft timings: ticks for the core, deadlines for the service.
        tickMs: config.raft.tickMs,
        raft: raftCoreConfig(config.raft),
        timeouts: {
          proposalTimeoutMs: config.raft.proposalTimeoutMs,
          forwardDeadlineMs: config.raft.forwardDeadlineMs,
          transferTimeoutMs: config.raft.transferTimeoutMs,
        },
        idReclaimAfterMs: config.idReclaimAfterMs,
        tunables: clusterTunablesOf(config),
        // Gossip starts after the cluster service; until then there is no view.
        onSeeds: (seeds) => {
          node.gossip?.driver.join(seeds).catch((error: unknown) => {
            log.warn('gossip join through new seeds gave up', { reason: (error as Error).message });
          });
        },
        gossip: () => {
          const gossip = node.gossip;
          if (gossip === null) return null;
          const now = systemClock.nowMs();
          return gossip.driver.members().map((member) => ({
            id: member.id,
            state: member.state,
            inStateMs: now - member.stateChangedAtMs,
            address: nodeAddressOf(member),
          }));
        },
      });
      try {
        await node.listen(credentials?.tls ?? null);
        await node.clusterService.start(node.address);
        // Gossip binds UDP on the listen host and the bound TCP port number.
        const wildcard = config.listen.host === '0.0.0.0' || config.listen.host === '::';
        node.gossip = await NodeGossip.start({
          id: record.id,
          host: wildcard ? config.advertise.host : config.listen.host,
          port: Number(node.listenAddress.split(':').pop()),
          keyring,
          keyringPath: config.insecure ? null : gossipKeyringPath(config.certsDir),
          preset: NODE_PRESETS[config.preset].gossip,
          advertise: node.address,
          deadReclaimMs: config.idReclaimAfterMs,
          clusterId,
          // A restarted member also knows its peers from the Raft configuration.
          seeds: [...new Set([...(config.join ?? []), ...node.clusterService.memberAddresses()])],
          links: {
            local: { id: record.id, clusterId, role: 'node', softwareVersion: SOFTWARE_VERSION },
            tls: () => node.nodeCertificates?.tls ?? null,
            options: config.connection,
          },
          log,
          resilience: node.resilience,
        });
      } catch (error) {
        await node.gossip?.stop();
        await node.server?.close(0);
        await node.clusterService.stop();
        throw error;
      }
      node.discoverySources = discoverySources;
      node.startDiscovery(retryJoinSources, registerSources);
      return node;
    } catch (error) {
      await unlock();
      throw error;
    }
  }

  /** --retry-join lookups until a member; --register registrations. */
  private startDiscovery(retryJoin: DiscoverySource[], register: DiscoverySource[]): void {
    const service = this.clusterService!;
    if (retryJoin.length > 0 && service.state !== 'member') {
      this.retryJoin = new RetryJoin({
        sources: retryJoin,
        clock: systemClock,
        random: systemRandom,
        log: this.log,
        self: this.address,
        isMember: () => service.state === 'member' || service.state === 'left',
        onSeeds: (addresses) => service.addDiscoveredSeeds(addresses),
      });
      this.retryJoin.start();
    }
    if (register.length > 0) {
      this.registrations = new SelfRegistrations({
        sources: register,
        clock: systemClock,
        random: systemRandom,
        log: this.log,
      });
      this.registrations.start({
        id: this.id,
        address: this.address,
        meta: { cluster: service.clusterId, clusterName: this.clusterId },
      });
    }
  }

  /** Resolves when this node left its cluster (`rdbnet cluster leave`): it should stop. */
  get left(): Promise<void> {
    return this.clusterService?.left ?? new Promise(() => {});
  }

  /** Resolves with the error when the node's Raft storage failed: it must stop. */
  get failed(): Promise<Error> {
    return this.clusterService?.failed ?? new Promise(() => {});
  }

  /**
   * Members of the cluster configuration, and nodes gossip knows alive: exempt from the idle
   * timeout and from connectionsMax, so Raft and gossip links are never cut for being quiet.
   */
  private isClusterPeer(peer: PeerInfo): boolean {
    if (peer.role !== 'node' || !peer.authenticated) return false;
    if (this.clusterService?.isMember(peer.id) === true) return true;
    return (
      this.gossip?.driver
        .members()
        .some(
          (member) =>
            member.id === peer.id && (member.state === 'alive' || member.state === 'suspect'),
        ) === true
    );
  }

  /** Logs a line about a refused or failed connection, unless too many came lately. */
  private connectionWarning(kind: string, msg: string, fields: LogFields): void {
    if (this.connectionLog.admit(kind)) this.log.warn(msg, fields);
  }

  private connectionInfo(kind: string, msg: string, fields: LogFields): void {
    if (this.connectionLog.admit(kind)) this.log.info(msg, fields);
  }

  private logSuppressedConnections(): void {
    const summary = this.connectionLog.takeSummary();
    if (summary === null) return;
    this.log.warn('connection log lines suppressed', {
      intervalMs: CONNECTION_LOG_INTERVAL_MS,
      total: summary.total,
      byKind: summary.suppressed,
    });
  }

  private async listen(tls: TlsMaterial | null): Promise<void> {
    const log = this.log;
    const counters = this.counters;
    const config = this.config;
    this.server = new TransportServer({
      local: {
        id: this.id,
        clusterId: this.clusterId,
        role: 'node',
        softwareVersion: SOFTWARE_VERSION,
      },
      tls,
      options: config.connection,
      connectionsMax: config.connectionsMax,
      unauthenticatedConnectionsMax: config.unauthenticatedConnectionsMax,
      unauthenticatedConnectionsPerSourceMax: config.unauthenticatedConnectionsPerSourceMax,
      ...(config.idleTimeoutMs === 0 ? {} : { idleTimeoutMs: config.idleTimeoutMs }),
      budget: this.budget,
      exempt: (peer) => this.isClusterPeer(peer),
      handler: adminHandler(this, {
        onForbidden: (operation, connection, error) => {
          counters.increment('auth.forbidden');
          counters.increment(`auth.forbidden.${operation}`);
          log.warn('request refused', {
            remote: connection.remoteAddress,
            peer: connection.peer?.id,
            role: connection.peer?.role,
            operation,
            reason: error.message,
          });
        },
      }),
      ...(this.nodeCertificates === null
        ? {}
        : { admit: this.nodeCertificates.admit.bind(this.nodeCertificates) }),
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
            this.connectionInfo(`closed.${error.code}`, 'connection closed', {
              remote: connection.remoteAddress,
              code: error.code,
              reason: error.message,
            });
          }
        },
        onProtocolError: (connection, error) => {
          counters.increment(`protocol.errors.${error.code}`);
          // Refused in the handshake (a hello whose role or id the certificate does not back).
          if (connection.peer === null) counters.increment(`connections.rejected.${error.code}`);
          this.connectionWarning(`protocol.${error.code}`, 'protocol error from peer', {
            remote: connection.remoteAddress,
            code: error.code,
            reason: error.message,
          });
        },
        onRejected: (remote, error) => {
          counters.increment(`connections.rejected.${error.code}`);
          this.connectionWarning(`rejected.${error.code}`, 'connection rejected', {
            remote,
            code: error.code,
            reason: error.message,
          });
        },
      },
    });
    this.connectionLogTimer = setInterval(
      () => this.logSuppressedConnections(),
      CONNECTION_LOG_INTERVAL_MS,
    );
    this.connectionLogTimer.unref();
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
    // Deregister first (bounded), so nobody is sent here while the node goes.
    await this.retryJoin?.stop();
    await this.registrations?.close();
    await closeSources(this.discoverySources);
    // Leave gossip first (bounded), while the node still answers push-pull.
    await this.gossip?.stop();
    await this.clusterService?.stop();
    await this.server?.close(this.config.shutdownGraceMs);
    if (this.connectionLogTimer !== null) clearInterval(this.connectionLogTimer);
    this.logSuppressedConnections();
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
      preset: this.config.preset,
      raft: this.clusterService?.raftTimings() ?? { ...this.config.raft },
      counters: {
        ...this.counters.snapshot(),
        ...this.clusterService?.counters(),
        ...(this.gossip === null ? {} : gossipCounters(this.gossip.stats())),
        ...(this.server === null ? {} : transportCounters(this.server.stats(), this.budget)),
        ...this.resilience.counters(),
        'frames.in': framesIn,
        'frames.out': framesOut,
      },
    };
  }

  /**
   * Health as this node sees it (rules in health/cluster-health.ts): its own state — critical
   * when not serving or when its certificate has expired, degraded when the certificate
   * expires within CERT_DAYS_LEFT_WARN days — with its gossip view and the voters of its
   * Raft configuration: every voter must be alive in gossip.
   */
  health(): HealthReply {
    const live = this.state === 'running' || this.state === 'starting';
    const ready = this.state === 'running';
    const problems = ready ? [] : [`node is ${this.state}`];
    // An --insecure node has no certificate to expire; report it as never expiring.
    const certDaysLeft = this.nodeCertificates?.daysLeft() ?? Number.POSITIVE_INFINITY;
    if (certDaysLeft <= 0) problems.push('certificate expired');
    else if (certDaysLeft < CERT_DAYS_LEFT_WARN) {
      problems.push(`certificate expires in ${certDaysLeft.toFixed(1)} days`);
    }
    const self: NodeHealth = {
      id: this.id,
      address: this.address,
      state: ready ? 'alive' : this.state,
      phi: 0,
      lastHeartbeatMs: 0,
      live,
      ready,
      problems,
      certDaysLeft: Number.isFinite(certDaysLeft) ? Number(certDaysLeft.toFixed(2)) : 0,
      hasCertificate: this.nodeCertificates !== null,
      score: 1,
    };
    return clusterHealth({
      self,
      selfCritical: !ready || certDaysLeft <= 0,
      members: this.gossip?.members() ?? [],
      voters: this.clusterService?.voterAddresses() ?? null,
    });
  }

  /** Gossip membership for the admin API; null until gossip runs. */
  get membership(): MembershipRequests | null {
    const gossip = this.gossip;
    if (gossip === null) return null;
    return {
      onStream: (from: string, payload: Uint8Array) => gossip.onStream(from, payload),
      members: (): MembersReply => ({ id: this.id, members: gossip.members() }),
      events: (afterSeq: number): MemberEventsReply => ({
        id: this.id,
        ...gossip.events(afterSeq),
      }),
      keyring: (request: KeyringRequest, fromId: string) => gossip.keyringRequest(request, fromId),
    };
  }

  /** `rdbnet lb status`: every peer's breaker, ejections, in-flight, latency, drops. */
  lbStatus(): LbStatusReply {
    return lbStatusReply(this.id, this.resilience, this.gossip?.members() ?? []);
  }

  /** Cluster requests for the admin API; null while starting. */
  get cluster(): ClusterRequests | null {
    return this.clusterService;
  }

  /**
   * health() plus the diagnosis operators asked memberlist for: each member gossip calls
   * suspect or dead, and each voter gossip does not know (a few, bounded), is asked for its
   * status over the binary protocol. When it answers over TCP, it is gossip (UDP, or the
   * gossip key) between the two nodes that fails, and the reply says so.
   */
  async healthDiagnosed(): Promise<HealthReply> {
    const reply = this.health();
    const troubled = reply.nodes
      .filter(
        (node) =>
          (node.state === 'suspect' || node.state === 'dead' || node.state === 'missing') &&
          node.address !== '',
      )
      .slice(0, DIAGNOSE_MEMBERS_MAX);
    await Promise.all(
      troubled.map(async (member) => {
        if (!(await this.answersOverTcp(member.address))) return;
        const port = member.address.split(':').pop();
        member.problems.push(
          member.state === 'missing'
            ? `${member.id} answers over TCP at ${member.address} but is not in gossip: ` +
                `check that it holds the cluster's gossip key and that UDP port ${port} is open between the nodes`
            : `${member.id} answers over TCP at ${member.address} but not to gossip over UDP: ` +
                `check that UDP port ${port} is open between the nodes and that they share a gossip key`,
        );
      }),
    );
    return reply;
  }

  private async answersOverTcp(address: string): Promise<boolean> {
    try {
      const connection = await dial({
        address: parseHostPort(address),
        local: {
          id: this.id,
          clusterId: this.clusterId,
          role: 'node',
          softwareVersion: SOFTWARE_VERSION,
        },
        tls: this.nodeCertificates?.tls ?? null,
        options: connectionOptions({
          handshakeTimeoutMs: DIAGNOSE_TIMEOUT_MS,
          requestTimeoutMs: DIAGNOSE_TIMEOUT_MS,
        }),
      });
      try {
        await request(connection, 'statusRequest', {});
        return true;
      } finally {
        connection.close();
      }
    } catch {
      return false;
    }
  }

  /** Certificate operations for the admin API; null on --insecure nodes. */
  get certificates(): CertificateAdmin | null {
    const certificates = this.nodeCertificates;
    if (certificates === null) return null;
    return {
      beginRotation: (keyBits: number): CertRotateReply => {
        if (keyBits !== 2048 && keyBits !== 3072 && keyBits !== 4096) {
          throw new RdbnetError(
            ErrorCode.Usage,
            `key bits must be 2048, 3072 or 4096, not ${keyBits}`,
          );
        }
        const begun = certificates.beginRotation(keyBits as KeyBits);
        return { ...begun, nodeId: this.id, clusterId: this.clusterId };
      },
      installCertificate: async (certPem: string) => {
        const info = await certificates.installCertificate(certPem);
        return { serial: info.serial, notAfter: info.notAfter };
      },
      setTrustBundle: (bundlePem: string) => certificates.setTrustBundle(bundlePem),
      setRevocations: (serials: string[]) => certificates.setRevocations(serials),
      info: (): CertInfoReply => ({
        certPem: certificates.tls.cert,
        bundlePem: certificates.tls.ca,
        revokedSerials: certificates.revokedSerials,
      }),
      proveIdentity: (nonce: Uint8Array) => certificates.proveIdentity(nonce),
    };
  }

  /** SIGHUP: re-read certificates, trust bundle and revocation list from the certs dir. */
  async reloadCertificates(): Promise<void> {
    await this.nodeCertificates?.reload();
  }
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
    'memory.buffered_bytes': memory.bufferedBytes,
    'memory.buffered_bytes_peak': memory.bufferedBytesPeak,
    'memory.buffered_bytes_max': memory.bufferedBytesMax,
    'memory.budget_refusals': memory.refusals,
  };
}
