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
import { OPERATIONS } from '../api/authorization.ts';
import type { ClusterService } from '../cluster/service.ts';
import type { NodeConfig } from '../config/node-config.ts';
import { DataPlane, type DataPlaneMember } from '../dataplane/dataplane.ts';
import { type DataPlaneLimits, dataPlaneLimits } from '../dataplane/limits.ts';
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
import { graphqlMount } from '../http/graphql-mount.ts';
import { type HttpMounts, type NodeHttpServer, startHttpServer } from '../http/server.ts';
import type { PeerResilience } from '../lb/registry.ts';
import { exposition } from '../metrics/exposition.ts';
import { listenMetrics, type MetricsListener } from '../metrics/http.ts';
import { type NodeMetricsSource, registerNodeMetrics } from '../metrics/node-metrics.ts';
import { registerProcessMetrics } from '../metrics/process-metrics.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { RpcMetrics } from '../metrics/rpc.ts';
import { type PeerInfo, PROTOCOL_VERSION } from '../protocol/handshake.ts';
import type {
  HealthReply,
  KeyringRequest,
  LbStatusReply,
  LogTailReply,
  LogTailRequest,
  MemberEventsReply,
  MembersReply,
  NodeHealth,
  PoolStatsReply,
  StatusReply,
} from '../protocol/messages.ts';
import type { PeerIdentity, PeerRequestHandler } from '../rpc/peer.ts';
import { Counters, type Logger, LogLimiter, type TimerHandle } from '../runtime/index.ts';
import { parseLogLevel } from '../runtime/log.ts';
import type { LogTail } from '../runtime/log-tail.ts';
import { EMPTY_ACL_POLICY } from '../security/acl.ts';
import type { Keyring } from '../security/keyring.ts';
import { formatHostPort } from '../transport/address.ts';
import { ConnectionPools } from '../transport/pool.ts';
import { dialPoolConnector } from '../transport/pool-dial.ts';
import { SOFTWARE_VERSION } from '../version.ts';
import { NodeAccess } from './access.ts';
import {
  clusterServiceInit,
  localEndpointOf,
  type NodeParts,
  nodeGossipInit,
  nodeHttpInit,
} from './assemble.ts';
import { AuditLog } from './audit-log.ts';
import { certificateAdmin, type NodeCertificates } from './certificates.ts';
import { type NodeEnvironment, productionEnvironment } from './environment.ts';
import { firewallLimitsOf, NodeFirewall } from './firewall.ts';
import { gossipCounters, NodeGossip, nodeAddressOf, nodeGroupsOf } from './gossip.ts';
import { NO_OPEN_CONNECTIONS, type NodeListener } from './listener.ts';
import { lbStatusReply } from './resilience.ts';

/** What an embedding program may add to a node it starts in-process (the library API), and
 * the environment it runs on (the real one by default; the simulator passes its own). */
export interface NodeStartOptions {
  environment?: NodeEnvironment;
  /** The data plane's bounds; DATA_PLANE_LIMITS_DEFAULT for what is not given. */
  dataPlane?: Partial<DataPlaneLimits>;
  /** A new Raft leader became known ('' while none is). */
  onLeaderChange?(leader: string, term: number): void;
  /** The lines the node's logger keeps for `rdbnet monitor` (none without it). */
  logTail?: LogTail;
  /** What the embedding program mounts on the HTTP face (`/metrics`, GraphQL). */
  http?: HttpMounts;
}

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

export class RdbnetNode implements AdminSource, NodeMetricsSource {
  readonly id: string;
  readonly clusterId: string;
  readonly config: NodeConfig;
  readonly counters: Counters;
  /** The node's Prometheus metrics (served by --metrics, or mounted by a caller with
   * metricsRequestListener). */
  readonly metrics = new MetricsRegistry();
  private readonly rpcMetrics: RpcMetrics;
  /** The node's one admin handler, every request goes through it: the binary protocol's, the
   * HTTP face's and GraphQL's (null until the node listens). */
  private handler: PeerRequestHandler | null = null;
  /** The --metrics listener; null without --metrics. */
  private metricsListener: MetricsListener | null = null;
  /** The process_* and nodejs_* metrics' event-loop sampler (real environment only). */
  private processMetrics: { stop(): void } | null = null;
  state: NodeState = 'starting';
  private readonly log: Logger;
  private readonly environment: NodeEnvironment;
  private readonly startedAtMs: number;
  private readonly startedAtWallMs: number;
  private listener: NodeListener | null = null;
  private unlock: (() => Promise<void>) | null = null;
  private nodeCertificates: NodeCertificates | null = null;
  private clusterService: ClusterService | null = null;
  private gossip: NodeGossip | null = null;
  /** Messages to topics (src/core/dataplane); null until gossip runs. */
  private dataPlaneService: DataPlane | null = null;
  /** The data plane's own pools of connections per peer, apart from gossip's and Raft's
   * links (none when the environment brings a transport: the simulator's). */
  private dataPools: ConnectionPools | null = null;
  /** Stops following gossip's membership events (warm-up and cool-down of the pools). */
  private unsubscribePools: (() => void) | null = null;
  /** The ACL's enforcement and `rdbnet acl|audit` requests; null until the node listens. */
  access: NodeAccess | null = null;
  /** Refusals and admin changes (audit-log.ts); null until the node listens. */
  auditLog: AuditLog | null = null;
  /** Per-source limits and bans; null until the node listens. */
  firewall: NodeFirewall | null = null;
  private readonly connectionLog: LogLimiter;
  private connectionLogTimer: TimerHandle | null = null;
  /** The HTTP face (`--http`); null without it, or until the node runs. */
  private http: NodeHttpServer | null = null;
  /** Breaker, retry budget, rate limit and latency per peer, for what this node sends. */
  readonly resilience: PeerResilience;
  /** --retry-join lookups (null without --retry-join, or once stopped). */
  private retryJoin: RetryJoin | null = null;
  /** --register registrations (null without --register). */
  private registrations: SelfRegistrations | null = null;
  private discoverySources: DiscoverySource[] = [];
  private tail: LogTail | null = null;

  private constructor(
    config: NodeConfig,
    id: string,
    clusterId: string,
    log: Logger,
    environment: NodeEnvironment,
    counters: Counters,
  ) {
    this.config = config;
    this.counters = counters;
    this.id = id;
    this.clusterId = clusterId;
    this.log = log;
    this.environment = environment;
    this.startedAtMs = environment.clock.nowMs();
    this.startedAtWallMs = environment.clock.wallMs();
    this.connectionLog = new LogLimiter({
      intervalMs: CONNECTION_LOG_INTERVAL_MS,
      burst: CONNECTION_LOG_BURST,
      clock: environment.clock,
    });
    this.resilience = environment.resilience();
    this.rpcMetrics = new RpcMetrics(this.metrics, Object.keys(OPERATIONS), environment.clock);
    registerNodeMetrics(this.metrics, this, environment.clock);
  }

  /**
   * Starts a node on `environment` (by default the real one: files, sockets, system time):
   * its record and lock in the data dir, certificates, gossip keyring, Raft storage, then
   * the listener, the cluster service and gossip.
   */
  static async start(
    config: NodeConfig,
    log: Logger,
    options: NodeStartOptions = {},
  ): Promise<RdbnetNode> {
    const environment = options.environment ?? productionEnvironment();
    // Discovery specs are built (their values checked) before anything is read or written: a
    // bad spec, or --register with a provider that cannot register, changes nothing (exit 64).
    // The real sources are opened once the gossip key (broadcast's) is known.
    const discoveryContext = (gossipKey: Uint8Array): ProviderContext => ({
      env: process.env,
      clock: environment.clock,
      log: (level, message, fields) => log[level](message, { ...fields }),
      gossipKey,
    });
    const open = (entries: readonly string[], context: ProviderContext) =>
      entries.length === 0 ? [] : openSources(entries, context);
    const checked = open(
      [...config.retryJoin, ...config.register],
      discoveryContext(new Uint8Array(32)),
    );
    checkRegistrable(checked.slice(config.retryJoin.length));
    await closeSources(checked);
    // Validate, then act: nothing is written before the port and certificates are known good.
    await environment.preflight?.(config);
    const record = await environment.nodeRecord(config);
    const unlock = await environment.lockDataDir(config);
    try {
      let node: RdbnetNode | null = null;
      const counters = new Counters();
      const loaded = await environment.certificates({
        config,
        nodeId: record.id,
        log,
        counters,
        onChange: (material) => {
          node?.listener?.updateTls(material);
          node?.http?.updateTls(material);
        },
      });
      // Read before anything listens: a missing keyring stops the start here.
      const keyring = await environment.keyring(config, log);
      const clusterId = loaded?.clusterId ?? config.cluster;
      node = new RdbnetNode(config, record.id, clusterId, log, environment, counters);
      node.unlock = unlock;
      node.tail = options.logTail ?? null;
      // Process metrics belong to a real process; simulated nodes share the simulator's.
      if (options.environment === undefined) {
        node.processMetrics = registerProcessMetrics(node.metrics);
      }
      node.nodeCertificates = loaded?.certificates ?? null;
      const context = discoveryContext(keyring.primaryBytes());
      const retryJoin = open(config.retryJoin, context);
      const register = open(config.register, context);
      node.discoverySources = [...retryJoin, ...register];
      try {
        await node.assemble(keyring, options);
      } catch (error) {
        node.processMetrics?.stop();
        await closeSources(node.discoverySources);
        throw error;
      }
      node.startDiscovery(retryJoin, register);
      return node;
    } catch (error) {
      await unlock();
      throw error;
    }
  }

  /** --retry-join lookups until a member; --register registrations. */
  private startDiscovery(retryJoin: DiscoverySource[], register: DiscoverySource[]): void {
    const service = this.clusterService!;
    const { clock, random } = this.environment;
    if (retryJoin.length > 0 && service.state !== 'member') {
      this.retryJoin = new RetryJoin({
        sources: retryJoin,
        clock,
        random,
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
        clock,
        random,
        log: this.log,
      });
      this.registrations.start({
        id: this.id,
        address: this.address,
        meta: { cluster: service.clusterId, clusterName: this.clusterId },
      });
    }
  }

  /** Opens the cluster service, listens, starts it and gossip; undoes what ran on a failure. */
  private async assemble(keyring: Keyring, options: NodeStartOptions): Promise<void> {
    const parts: NodeParts = {
      id: this.id,
      clusterId: this.clusterId,
      config: this.config,
      environment: this.environment,
      log: this.log,
      counters: this.counters,
      resilience: this.resilience,
      tls: () => this.nodeCertificates?.tls ?? null,
      gossip: () => this.gossip,
      admitDatagram: (ip) =>
        (this.firewall?.admitsDatagram(ip) ?? true) && (this.access?.admitsDatagram(ip) ?? true),
    };
    // The Raft storage is opened (and verified) before the node listens: a damaged log or
    // a data dir that left its cluster stops the start here.
    const clusterService = await this.environment.openCluster({
      ...clusterServiceInit(parts),
      ...(options.onLeaderChange === undefined ? {} : { onLeaderChange: options.onLeaderChange }),
    });
    this.clusterService = clusterService;
    try {
      await this.listen();
      await clusterService.start(this.address);
      this.gossip = await NodeGossip.start(
        nodeGossipInit(parts, {
          keyring,
          boundAddress: this.boundAddress,
          advertise: this.address,
          memberAddresses: clusterService.memberAddresses(),
        }),
      );
      this.startDataPlane(dataPlaneLimits(options.dataPlane));
      if (this.config.metrics !== undefined) {
        this.metricsListener = await listenMetrics(this.config.metrics, this.metrics);
        this.log.info('metrics listening', { metrics: this.metricsListener.address });
      }
      if (this.config.http !== undefined) {
        this.http = await startHttpServer(
          nodeHttpInit(parts, {
            http: this.config.http,
            admin: this.handler!,
            certificates: this.nodeCertificates,
            ready: () => this.state === 'running' && clusterService.state === 'member',
            mounts: options.http ?? {
              metrics: () => exposition(this.metrics),
              graphql: graphqlMount(() => ({ admin: this, handler: this.handler! })),
            },
          }),
        );
      }
    } catch (error) {
      await this.http?.close();
      await this.metricsListener?.close();
      this.metricsListener = null;
      this.stopPools();
      await this.gossip?.stop();
      await this.listener?.close(0);
      this.stopConnectionLogTimer();
      await clusterService.stop();
      throw error;
    }
  }

  private startDataPlane(limits: DataPlaneLimits): void {
    let peers = this.environment.peers;
    if (peers === undefined) {
      this.dataPools = new ConnectionPools({
        connector: dialPoolConnector({
          local: localEndpointOf(this),
          tls: () => this.nodeCertificates?.tls ?? null,
          options: this.config.connection,
        }),
        options: this.config.pool,
        clock: this.environment.clock,
        random: this.environment.random,
      });
      this.followMembershipWithPools(this.dataPools);
      peers = this.dataPools;
    }
    this.dataPlaneService = new DataPlane({
      selfId: this.id,
      limits,
      peers,
      counters: this.counters,
      members: () => this.members(),
      ...(this.environment.dedupStore === undefined
        ? {}
        : { dedupStore: this.environment.dedupStore(this.config) }),
    });
  }

  /**
   * Warm-up from gossip: a member that joins (or is alive again) gets its pool filled to
   * pool.connectionsMin; one that is dead or left has its pool emptied and no longer refilled.
   * Members alive before this runs are warmed at once.
   */
  private followMembershipWithPools(pools: ConnectionPools): void {
    for (const member of this.members()) {
      if (!member.isSelf && member.state === 'alive') pools.warm(member.address, member.id);
    }
    this.unsubscribePools = this.onMemberEvent((event) => {
      if (event.id === this.id || event.address === '') return;
      switch (event.type) {
        case 'join':
        case 'alive':
          pools.warm(event.address, event.id);
          return;
        case 'dead':
        case 'left':
          pools.cool(event.address);
          return;
      }
    });
  }

  private stopPools(): void {
    this.unsubscribePools?.();
    this.unsubscribePools = null;
    this.dataPools?.close();
  }

  /** `rdbnet pool stats`: the data plane's pool of every peer, named by gossip when it can
   * be (an empty list when the environment brings its own transport). */
  poolStats(): PoolStatsReply {
    const byAddress = new Map(this.members().map((member) => [member.address, member.id]));
    const peers = (this.dataPools?.stats() ?? []).map((row) => ({
      ...row,
      peer: byAddress.get(row.address) ?? row.peer,
    }));
    return { id: this.id, peers };
  }

  /** Subscribes to gossip's membership events (join, suspect, alive, dead, left, update)
   * about other members; returns the unsubscribe. Nothing is reported before gossip runs. */
  onMemberEvent(
    listener: (event: { type: string; id: string; address: string }) => void,
  ): () => void {
    const gossip = this.gossip;
    if (gossip === null) return () => {};
    return gossip.driver.on('event', (event) =>
      listener({ type: event.type, id: event.id, address: event.address }),
    );
  }

  /** Members of the gossip view, as the data plane routes to them (itself included):
   * advertised addresses and groups. */
  members(): DataPlaneMember[] {
    const gossip = this.gossip;
    if (gossip === null) return [];
    return gossip.driver.members().map((member) => ({
      id: member.id,
      address: nodeAddressOf(member),
      state: member.state,
      groups: nodeGroupsOf(member),
      score: member.isSelf ? 1 : member.score,
      rttMs: member.rttMs === undefined || !Number.isFinite(member.rttMs) ? null : member.rttMs,
      isSelf: member.isSelf,
    }));
  }

  /** The data plane: topics, send/request/broadcast/…; null until the node runs. */
  get dataPlane(): DataPlane | null {
    return this.dataPlaneService;
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

  private logSuppressedConnections(): void {
    const summary = this.connectionLog.takeSummary();
    if (summary === null) return;
    this.log.warn('connection log lines suppressed', {
      intervalMs: CONNECTION_LOG_INTERVAL_MS,
      total: summary.total,
      byKind: summary.suppressed,
    });
  }

  /** The node's one admin handler, shared by the binary listener and the HTTP face. */
  /** The node's one admin handler (binary protocol, HTTP, GraphQL): the ACL and firewall
   * first, then the role table; RPC metrics, the audit log and the forbidden counter. */
  private createAdminHandler(access: NodeAccess, firewall: NodeFirewall): PeerRequestHandler {
    const { log, counters } = this;
    const who = (connection: PeerIdentity) =>
      connection.peer === null ? '' : `${connection.peer.role}/${connection.peer.id}`;
    return adminHandler(this, {
      rpc: this.rpcMetrics,
      admit: (operation, request, connection) => {
        try {
          access.admitRequest(operation, request, connection);
        } catch (error) {
          counters.increment('acl.denied');
          throw error;
        }
        // Members' traffic (Raft, gossip, forwards) is not rate limited: it is the cluster's.
        const peer = connection.peer;
        if (peer?.role === 'node' && peer.authenticated && this.clusterService?.isMember(peer.id)) {
          return;
        }
        firewall.onMessage(connection, operation);
      },
      onChange: (operation, connection, error) => {
        // ACL changes are audited by NodeAccess itself, with the rule they add or remove.
        if (operation === 'acl.change') return;
        access.record(
          error === undefined ? 'allow' : 'fail',
          'admin',
          connection.remoteAddress,
          who(connection),
          operation,
          undefined,
          error === undefined ? 'applied' : `${error.code}: ${error.message}`,
        );
      },
      onForbidden: (operation, connection, error) => {
        counters.increment('auth.forbidden');
        counters.increment(`auth.forbidden.${operation}`);
        access.record(
          'deny',
          'message',
          connection.remoteAddress,
          who(connection),
          operation,
          undefined,
          error.message,
        );
        log.warn('request refused', {
          remote: connection.remoteAddress,
          peer: connection.peer?.id,
          role: connection.peer?.role,
          operation,
          reason: error.message,
        });
      },
    });
  }

  private async listen(): Promise<void> {
    const { log, config } = this;
    const tls = this.nodeCertificates?.tls ?? null;
    const counters = this.counters;
    const auditLog = new AuditLog({
      clock: this.environment.clock,
      counters,
      sink: this.environment.auditSink?.(config) ?? null,
    });
    this.auditLog = auditLog;
    const firewall = new NodeFirewall({
      id: this.id,
      limits: firewallLimitsOf(config),
      clock: this.environment.clock,
      counters,
      audit: auditLog,
    });
    this.firewall = firewall;
    const access = new NodeAccess({
      id: this.id,
      audit: auditLog,
      firewall,
      policy: () => this.clusterService?.aclPolicy() ?? EMPTY_ACL_POLICY,
      change: (command, request, from) => {
        const cluster = this.clusterService;
        if (cluster === null || cluster.state !== 'member') {
          throw new RdbnetError(ErrorCode.NotMember, 'the node is not a member of a cluster yet');
        }
        return cluster.changeAcl(command, request, from);
      },
    });
    this.access = access;
    this.handler = this.createAdminHandler(access, firewall);
    this.listener = await this.environment.listen({
      id: this.id,
      clusterId: this.clusterId,
      config,
      tls,
      certificates: this.nodeCertificates,
      gate: {
        // The ACL first: a source it refuses costs the firewall nothing.
        accept: (remoteIp) => access.onAccept(remoteIp) ?? firewall.onAccept(remoteIp),
        closed: (remoteIp) => firewall.onClosed(remoteIp),
        handshake: (remoteAddress, peer) => {
          access.onHandshake(remoteAddress, peer);
          firewall.onHandshake(remoteAddress, `${peer.role}/${peer.id}`);
        },
        failed: (remoteAddress, error) => firewall.onHandshakeFailed(remoteAddress, error),
      },
      handler: this.handler,
      log,
      counters,
      isClusterPeer: (peer) => this.isClusterPeer(peer),
      connectionLine: (level, kind, msg, fields) => {
        if (this.connectionLog.admit(kind)) log[level](msg, fields);
      },
    });
    this.armConnectionLogTimer();
    this.state = 'running';
    log.info('node running', {
      id: this.id,
      cluster: this.clusterId,
      listen: this.boundAddress,
      advertise: this.address,
      tls: tls !== null,
      certsDir: tls === null ? undefined : config.certsDir,
      dataDir: config.dataDir,
      version: SOFTWARE_VERSION,
    });
  }

  /** Every CONNECTION_LOG_INTERVAL_MS: one summary of the connection lines held back. */
  private armConnectionLogTimer(): void {
    this.connectionLogTimer = this.environment.clock.setTimer(
      CONNECTION_LOG_INTERVAL_MS,
      () => {
        this.logSuppressedConnections();
        if (this.connectionLogTimer !== null) this.armConnectionLogTimer();
      },
      { unref: true },
    );
  }

  private stopConnectionLogTimer(): void {
    if (this.connectionLogTimer === null) return;
    this.environment.clock.clearTimer(this.connectionLogTimer);
    this.connectionLogTimer = null;
  }

  /** The address others reach this node at (the bound port when listening on port 0). */
  get address(): string {
    const port =
      this.config.advertise.port === 0
        ? Number(this.boundAddress.split(':').pop())
        : this.config.advertise.port;
    return formatHostPort({ host: this.config.advertise.host, port });
  }

  /** host:port the HTTP face listens on (null without --http, or until it does). */
  get httpAddress(): string | null {
    return this.http?.boundAddress ?? null;
  }

  /** host:port the node listens on ('' until it does). */
  get boundAddress(): string {
    return this.listener?.boundAddress ?? '';
  }

  /** The admin handler every request goes through, with the node's hooks (metrics, the
   * forbidden counter): what the HTTP and GraphQL faces call. Null until the node listens. */
  get requestHandler(): PeerRequestHandler | null {
    return this.handler;
  }

  /** host:port of the --metrics listener; null without --metrics. */
  get metricsAddress(): string | null {
    return this.metricsListener?.address ?? null;
  }

  async stop(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = 'stopping';
    this.log.info('node stopping', { graceMs: this.config.shutdownGraceMs });
    await this.metricsListener?.close();
    this.processMetrics?.stop();
    // Deregister first (bounded), so nobody is sent here while the node goes.
    await this.retryJoin?.stop();
    await this.registrations?.close();
    await closeSources(this.discoverySources);
    // Leave gossip first (bounded), while the node still answers push-pull.
    await this.http?.close();
    await this.gossip?.stop();
    this.stopPools();
    await this.clusterService?.stop();
    await this.listener?.close(this.config.shutdownGraceMs);
    this.dataPlaneService?.close();
    this.stopConnectionLogTimer();
    this.logSuppressedConnections();
    // The last refusals and changes reach the audit file before the data dir is released.
    await this.auditLog?.drain();
    await this.unlock?.();
    this.state = 'stopped';
    this.log.info('node stopped', { id: this.id });
  }

  status(): StatusReply {
    const open = this.listener?.openConnections() ?? NO_OPEN_CONNECTIONS;
    return {
      id: this.id,
      address: this.address,
      version: SOFTWARE_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      uptimeMs: Math.round(this.environment.clock.nowMs() - this.startedAtMs),
      state: this.state,
      clusterId: this.clusterId,
      startedAtMs: this.startedAtWallMs,
      pid: this.environment.pid,
      tls: this.listener?.tls ?? false,
      connections: open.count,
      preset: this.config.preset,
      raft: this.clusterService?.raftTimings() ?? { ...this.config.raft },
      counters: {
        ...this.counters.snapshot(),
        ...this.clusterService?.counters(),
        ...(this.gossip === null ? {} : gossipCounters(this.gossip.stats())),
        ...this.listener?.counters(),
        ...this.http?.counters(),
        ...this.resilience.counters(),
        ...this.dataPlaneService?.stats(),
        ...this.dataPools?.counters(),
        'frames.in': this.counters.get('frames.in') + open.framesIn,
        'frames.out': this.counters.get('frames.out') + open.framesOut,
        'bytes.in': this.counters.get('bytes.in') + open.bytesIn,
        'bytes.out': this.counters.get('bytes.out') + open.bytesOut,
      },
    };
  }

  /** Raft's term, leader, role and indexes; null while this node belongs to no cluster. */
  raftProgress(): ReturnType<NodeMetricsSource['raftProgress']> {
    return this.clusterService?.raftDriver?.basicStatus() ?? null;
  }

  /** When the node's certificate expires (wall ms); null on --insecure nodes. */
  certificateNotAfterMs(): number | null {
    const certificates = this.nodeCertificates;
    return certificates === null ? null : Date.parse(certificates.certificate.notAfter);
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

  /** `rdbnet monitor`: the log lines after `afterSeq` at `minLevel` or above. */
  logTail(request: LogTailRequest): LogTailReply {
    if (this.tail === null) {
      throw new RdbnetError(ErrorCode.MethodUnknown, 'this node keeps no log lines to tail');
    }
    const level = parseLogLevel(request.minLevel || 'info');
    if (level === undefined) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `unknown log level ${JSON.stringify(request.minLevel.slice(0, 20))}: debug, info, warn or error`,
      );
    }
    return this.tail.since(request.afterSeq, level);
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

  private answersOverTcp(address: string): Promise<boolean> {
    const tls = this.nodeCertificates?.tls ?? null;
    return this.environment.answersStatus(address, localEndpointOf(this), tls, DIAGNOSE_TIMEOUT_MS);
  }

  /** Certificate operations for the admin API; null on --insecure nodes. */
  get certificates(): CertificateAdmin | null {
    const certificates = this.nodeCertificates;
    return certificates === null ? null : certificateAdmin(certificates, this.id, this.clusterId);
  }

  /** SIGHUP: re-read certificates, trust bundle and revocation list from the certs dir. */
  async reloadCertificates(): Promise<void> {
    await this.nodeCertificates?.reload();
  }
}
