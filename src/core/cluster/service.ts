/**
 * ClusterService: a node's part in the cluster configuration, and the facade over the rooms
 * of this folder. It owns the lifecycle and the state machine —
 *
 *   pending ──(discovery finds a cluster)──► joining ──(added)──► member ──(leave)──► left
 *      └──────────────(bootstrap: founding configuration)────────────┘
 *
 * (`pending`: started with --join, no cluster yet; a node without seeds founds a cluster
 * alone at start) — opens the Raft storage, starts the Raft driver when the node becomes a
 * member, and dispatches each cluster request to the room that answers it:
 *
 *   discovery.ts    peer exchange with seeds and known peers; members' new addresses
 *   gossip-rejoin.ts  peers discovery found that gossip lacks: gossip joins them
 *   bootstrap.ts    founding a cluster (alone, --expect N, the founding configuration)
 *   join.ts         the joiner: join loop, `cluster join --seeds`
 *   admission.ts    the leader admitting a joiner (gossip gating, id in use)
 *   raft-traffic.ts Raft batches out and in, vouching for unknown senders
 *   chores.ts       after every tick: own address, promotions, link upkeep
 *   dead-voters.ts  the automatic removal of voters gossip reports gone
 *   forwarding.ts   what only the leader does, from any member; retried proposals
 *   status.ts       `cluster status`; operator.ts: transfer-leader, leave, removal
 *
 * All share one ClusterContext (context.ts): state, driver, links, address book, and the
 * clock, timers and randomness a simulated node would replace.
 */

import { ErrorCode } from '../errors.ts';
import type { RaftConfig } from '../membership/raft/config.ts';
import { validateRaftConfig } from '../membership/raft/config.ts';
import { FileRaftStorage } from '../membership/raft/file-storage.ts';
import type { NodeId } from '../membership/raft/types.ts';
import type {
  AclReply,
  AclRequest,
  BootstrapCommitRequest,
  ClusterBootstrapRequest,
  ClusterJoinRequest,
  ClusterRemoveRequest,
  ClusterStatusRequest,
  DecodedEnvelope,
  Envelope,
  EnvelopeKind,
  JoinRequest,
  LeaveRequest,
  PeerExchange,
  RaftBatch,
  RemoveMemberRequest,
  TransferLeaderRequest,
} from '../protocol/messages.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import { type AclPolicy, EMPTY_ACL_POLICY } from '../security/acl.ts';
import { AclChanges, type AclCommand } from './acl-changes.ts';
import type { KnownPeer } from './address-book.ts';
import { Admission } from './admission.ts';
import { Bootstrap, BootstrapDeferred } from './bootstrap.ts';
import { Chores } from './chores.ts';
import { ClusterContext, type ClusterRaftStorage } from './context.ts';
import { DeadVoters } from './dead-voters.ts';
import { Discovery } from './discovery.ts';
import { RaftDriver } from './driver.ts';
import { Forwarding } from './forwarding.ts';
import { GossipRejoin } from './gossip-rejoin.ts';
import { fail } from './guards.ts';
import { IdClaims } from './id-claims.ts';
import type { ClusterServiceInit, ClusterState } from './init.ts';
import { Join } from './join.ts';
import { leftMarkerFile } from './left-marker.ts';
import { Operator } from './operator.ts';
import { RaftTraffic } from './raft-traffic.ts';
import { ClusterStatus } from './status.ts';
import { raftStoragePaths } from './storage-files.ts';
import { type RaftTimings, raftTimingsOf } from './timings.ts';

/** Every Envelope kind the cluster service answers. */
export const CLUSTER_KINDS: ReadonlySet<EnvelopeKind> = new Set<EnvelopeKind>([
  'raftBatch',
  'peerExchangeRequest',
  'bootstrapCommitRequest',
  'joinRequest',
  'removeMemberRequest',
  'clusterBootstrapRequest',
  'clusterJoinRequest',
  'clusterStatusRequest',
  'transferLeaderRequest',
  'clusterRemoveRequest',
  'leaveRequest',
]);

export class ClusterService {
  /** Resolves when this node has left the cluster at its own request (the node then stops). */
  readonly left: Promise<void>;
  /** Resolves with the error when this node must stop: its Raft storage failed, or the
   * cluster refused it because another live process holds its id. */
  readonly failed: Promise<Error>;

  private readonly ctx: ClusterContext;
  private readonly discovery: Discovery;
  private readonly gossipRejoin: GossipRejoin;
  private readonly bootstrapper: Bootstrap;
  private readonly joiner: Join;
  private readonly admission: Admission;
  private readonly raftTraffic: RaftTraffic;
  private readonly chores: Chores;
  private readonly status: ClusterStatus;
  private readonly operator: Operator;
  private readonly aclChanges: AclChanges;

  private constructor(init: ClusterServiceInit, storage: ClusterRaftStorage) {
    const ctx = new ClusterContext(init, storage);
    this.ctx = ctx;
    this.left = ctx.left;
    this.failed = ctx.failed;
    const idClaims = new IdClaims(ctx);
    const forwarding = new Forwarding(ctx);
    this.status = new ClusterStatus(ctx);
    this.gossipRejoin = new GossipRejoin(ctx);
    this.discovery = new Discovery(ctx, idClaims, forwarding, {
      afterRound: () => {
        this.gossipRejoin.afterRound();
        this.afterDiscovery();
      },
    });
    const becomeMember = { becomeMember: () => this.startDriver() };
    this.bootstrapper = new Bootstrap(ctx, this.discovery, this.status, becomeMember);
    this.joiner = new Join(ctx, this.discovery, this.status, becomeMember);
    this.admission = new Admission(ctx, idClaims, forwarding, this.status);
    this.raftTraffic = new RaftTraffic(ctx);
    this.chores = new Chores(ctx, this.discovery, forwarding, new DeadVoters(ctx));
    this.operator = new Operator(ctx, forwarding);
    this.aclChanges = new AclChanges(ctx, forwarding);
  }

  /**
   * Opens the Raft storage in `<dataDir>/raft` (replaying and verifying it against its
   * watermark, so a lost log is refused here and Raft never starts on it). Refuses a data
   * dir whose node left its cluster.
   */
  static async open(init: ClusterServiceInit): Promise<ClusterService> {
    await (init.leftMarker ?? leftMarkerFile(init.dataDir)).refuseIfLeft(init.id);
    const paths = raftStoragePaths(init.dataDir);
    let service: ClusterService | undefined;
    const storage = await FileRaftStorage.open(paths.dir, {
      watermarkPath: paths.watermarkPath,
      nodeId: init.id,
      clusterId: () => service?.clusterId ?? '',
    });
    if (storage.recovery.tornTail !== undefined) {
      init.log.warn('raft log: truncated a torn tail left by a crash', {
        ...storage.recovery.tornTail,
      });
    }
    if (storage.recovery.watermarkMissing) {
      init.log.warn('raft watermark was missing; written again from the log', {
        file: paths.watermarkPath,
      });
    }
    service = new ClusterService(init, storage);
    return service;
  }

  /**
   * A service on Raft storage the caller opened (the simulator's MemoryStorage; a restart is
   * a new service on the same storage). Refuses, like open(), a node whose left marker
   * (init.leftMarker, required here: there is no data dir to look in) says it left.
   */
  static async onStorage(
    init: ClusterServiceInit & { leftMarker: NonNullable<ClusterServiceInit['leftMarker']> },
    storage: ClusterRaftStorage,
  ): Promise<ClusterService> {
    await init.leftMarker.refuseIfLeft(init.id);
    return new ClusterService(init, storage);
  }

  /** Decides what this node is (member, new single node, or waiting) and starts. */
  async start(address: string): Promise<void> {
    const { ctx } = this;
    const { init } = ctx;
    ctx.address = address;
    if (ctx.hasCluster()) {
      this.startDriver();
      const config = ctx.driver!.config;
      init.log.info('cluster member', {
        cluster: config.clusterId,
        voters: [...config.voters],
        learners: [...config.learners],
      });
      // A single voter need not wait an election timeout to lead itself again.
      if (config.voters.size === 1 && config.voters.has(init.id)) ctx.driver!.campaign();
      return;
    }
    const expect = init.bootstrapExpect;
    if ((init.seeds === undefined && expect === undefined) || expect === 1) {
      await this.bootstrapper.foundAlone();
      return;
    }
    ctx.state = 'pending';
    init.log.info('waiting for a cluster', {
      seeds: init.seeds ?? [],
      bootstrapExpect: expect ?? null,
    });
    this.discovery.start();
  }

  async stop(): Promise<void> {
    const { ctx } = this;
    ctx.stopping = true;
    this.discovery.stopRepeating();
    const driver = ctx.driver;
    ctx.driver = null;
    if (driver !== null) await driver.stop();
    else await ctx.storage.close?.();
    ctx.transport.close();
  }

  get state(): ClusterState {
    return this.ctx.state;
  }

  get clusterId(): string {
    return this.ctx.clusterId;
  }

  /** The running Raft driver (null until this node is a member): read-only inspection, for
   * the simulator's invariants. */
  get raftDriver(): RaftDriver | null {
    return this.ctx.driver;
  }

  /** Raft and cluster counters for `node status`. */
  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    const driver = this.ctx.driver;
    if (driver !== null) Object.assign(out, driver.status().counters);
    const stats = this.ctx.storage.stats?.();
    if (stats !== undefined) {
      out['raft.storage.syncs'] = stats.syncs;
      out['raft.storage.bytes_written'] = stats.bytesWritten;
      out['raft.storage.segments'] = stats.segments;
      out['raft.storage.watermark_writes'] = stats.watermarkWrites;
    }
    return out;
  }

  /** The Raft timings this node runs with: its driver's, or the ones it will start it with. */
  raftTimings(): RaftTimings {
    const { ctx } = this;
    const core: RaftConfig = ctx.driver?.raftConfig ?? validateRaftConfig(ctx.init.raft);
    return raftTimingsOf(ctx.tickMs, core, ctx.timeouts);
  }

  /** The voters of the applied configuration; null while this node belongs to no cluster. */
  voters(): string[] | null {
    const driver = this.ctx.driver;
    if (driver === null || driver.config.voters.size === 0) return null;
    return [...driver.config.voters];
  }

  /** The voters of the applied configuration with their addresses; null outside a cluster. */
  voterAddresses(): { id: NodeId; address: string }[] | null {
    const driver = this.ctx.driver;
    if (driver === null || driver.config.voters.size === 0) return null;
    return [...driver.config.voters].map((id) => ({ id, address: this.ctx.addressOf(id) ?? '' }));
  }

  /** True when `id` is a member of the cluster configuration (applied, or added by an entry
   * already in the log). */
  isMember(id: string): boolean {
    return this.ctx.isMemberPeer(id);
  }

  /** Addresses of the other members of the applied configuration (gossip seeds on restart). */
  memberAddresses(): string[] {
    const driver = this.ctx.driver;
    if (driver === null) return [];
    const out: string[] = [];
    for (const [id, address] of driver.config.addresses) {
      if (id !== this.ctx.id && address !== '') out.push(address);
    }
    return out;
  }

  /** The access control list of the applied configuration (the empty one before a cluster). */
  aclPolicy(): AclPolicy {
    return this.ctx.driver?.config.acl ?? EMPTY_ACL_POLICY;
  }

  /** `rdbnet acl add|remove|default`: applied through the leader (acl-changes.ts). */
  changeAcl(command: AclCommand, request: AclRequest, from: PeerIdentity): Promise<AclReply> {
    const { ctx } = this;
    if (ctx.stopping) fail(ErrorCode.ConnectionClosed, `node ${ctx.id} is stopping`);
    const peer = from.peer!;
    return this.aclChanges.change(command, request, {
      id: peer.id,
      forwardedByMember: peer.role === 'node' && ctx.isMemberPeer(peer.id),
    });
  }

  handles(kind: EnvelopeKind): boolean {
    return CLUSTER_KINDS.has(kind);
  }

  handle(request: DecodedEnvelope, from: PeerIdentity): Envelope | Promise<Envelope> {
    if (this.ctx.stopping) fail(ErrorCode.ConnectionClosed, `node ${this.ctx.id} is stopping`);
    const body = request.body;
    switch (request.kind) {
      case 'raftBatch':
        return this.raftTraffic.onRaftBatch(body as RaftBatch, from);
      case 'peerExchangeRequest':
        return {
          peerExchangeReply: this.discovery.onPeerExchange(body as PeerExchange, from),
        };
      case 'bootstrapCommitRequest':
        return this.bootstrapper
          .onBootstrapCommit(body as BootstrapCommitRequest, from)
          .then(() => ({ bootstrapCommitReply: {} }));
      case 'joinRequest':
        return this.admission
          .onJoin(body as JoinRequest, from)
          .then((joinReply) => ({ joinReply }));
      case 'removeMemberRequest':
        return this.operator
          .onRemoveMember(body as RemoveMemberRequest, from)
          .then((index) => ({ removeMemberReply: { index } }));
      case 'clusterBootstrapRequest':
        return this.bootstrapper
          .onBootstrap(body as ClusterBootstrapRequest)
          .then((clusterBootstrapReply) => ({ clusterBootstrapReply }));
      case 'clusterJoinRequest':
        return this.joiner
          .onJoinThrough(body as ClusterJoinRequest)
          .then((clusterJoinReply) => ({ clusterJoinReply }));
      case 'clusterStatusRequest':
        return this.status
          .onStatus(body as ClusterStatusRequest)
          .then((clusterStatusReply) => ({ clusterStatusReply }));
      case 'clusterRemoveRequest':
        return this.operator
          .onClusterRemove(body as ClusterRemoveRequest, from)
          .then((clusterRemoveReply) => ({ clusterRemoveReply }));
      case 'transferLeaderRequest':
        return this.operator
          .onTransfer(body as TransferLeaderRequest, from)
          .then((transferLeaderReply) => ({ transferLeaderReply }));
      case 'leaveRequest':
        return this.operator.onLeave(body as LeaveRequest).then((leaveReply) => ({ leaveReply }));
      default:
        return fail(ErrorCode.MethodUnknown, `no cluster handler for ${request.kind}`);
    }
  }

  /** → member: starts the Raft driver on the storage, and stops looking for a cluster. */
  private startDriver(): void {
    const { ctx } = this;
    const { init } = ctx;
    const driver = new RaftDriver({
      id: init.id,
      storage: ctx.storage,
      ...(init.raft === undefined ? {} : { raft: init.raft }),
      tickMs: ctx.tickMs,
      random: ctx.random,
      clock: ctx.clock,
      log: init.log,
      send: (to, messages) => this.raftTraffic.sendRaft(to, messages),
      events: {
        onLeaderChange: (leader, term) => {
          init.counters.increment('cluster.leader_changes');
          init.log.info('raft leader', { leader: leader || null, term });
          init.onLeaderChange?.(leader, term);
        },
        onApplied: (change) => {
          const { record } = change;
          const hints = ctx.addresses.hints;
          if (record.op === 'setAddress' && hints.get(record.nodeId) === record.address) {
            hints.delete(record.nodeId);
          }
          if (record.op === 'removeNode') ctx.vouched.delete(record.nodeId);
          init.log.info('cluster configuration changed', {
            index: record.index,
            op: record.op,
            node: record.nodeId || undefined,
            address: record.address || undefined,
          });
        },
        onRestored: (config) => {
          ctx.addresses.preApplyMembers.clear();
          init.log.info('cluster configuration restored from a snapshot', {
            cluster: config.clusterId,
            index: config.appliedIndex,
          });
        },
        onTick: () => this.chores.housekeeping(),
        onFatal: (error) => ctx.resolveFailed(error),
      },
    });
    ctx.driver = driver;
    ctx.state = 'member';
    this.discovery.stopRepeating();
    driver.start();
  }

  /**
   * Two or more clusters among the candidates and no --cluster-id: joining either would be a
   * guess (a retry-join that quietly picks one is how operators end up with split clusters),
   * so the node joins none, logs the ids (once per change) and counts it; `cluster join`
   * fails with RDB_DISCOVERY_AMBIGUOUS while it lasts.
   */
  private refuseAmbiguous(clusters: string[], inCluster: readonly KnownPeer[]): void {
    const { ctx } = this;
    if (ctx.ambiguousClusters.join(',') === clusters.join(',')) return;
    ctx.ambiguousClusters = clusters;
    ctx.init.counters.increment('cluster.discovery_ambiguous');
    ctx.log.error('two or more clusters among the candidates: joining none', {
      code: ErrorCode.DiscoveryAmbiguous,
      clusters: clusters.map((cluster) => ({
        cluster,
        nodes: inCluster
          .filter((peer) => peer.clusterId === cluster)
          .map((peer) => `${peer.id}@${peer.address}`)
          .slice(0, 8),
      })),
      hint: 'restart this node with --cluster-id ID naming the cluster to join',
    });
  }

  /** `--retry-join` found these seeds: exchange with them from the next round (now). */
  addDiscoveredSeeds(seeds: readonly string[]): void {
    const { ctx } = this;
    if (ctx.stopping || ctx.state === 'member' || ctx.state === 'left') return;
    this.discovery.setDiscoveredSeeds(seeds);
    ctx.init.onSeeds?.(seeds);
    this.discovery.repeat();
    this.discovery.tick();
  }

  /** After each discovery round of a pending node: join a cluster found, or bootstrap once
   * --bootstrap-expect nodes know each other (the lowest id among them founds it). */
  private afterDiscovery(): void {
    const { ctx } = this;
    if (ctx.state !== 'pending' || this.bootstrapper.busy) return;
    const inCluster = ctx.peers.fresh().filter((peer) => peer.clusterId !== '');
    const wanted = ctx.init.clusterId;
    const clusters = [...new Set(inCluster.map((peer) => peer.clusterId))].sort();
    if (wanted !== undefined) {
      // Told which: join that one only, and never found another.
      if (clusters.includes(wanted)) this.joiner.start(wanted);
      return;
    }
    if (clusters.length > 1) {
      this.refuseAmbiguous(clusters, inCluster);
      return;
    }
    if (ctx.ambiguousClusters.length > 0) {
      ctx.log.info('one cluster among the candidates again', { cluster: clusters[0] ?? null });
      ctx.ambiguousClusters = [];
    }
    if (clusters.length === 1) {
      this.joiner.start(clusters[0]!);
      return;
    }
    const expect = ctx.init.bootstrapExpect;
    if (expect === undefined || expect <= 1) return;
    const candidates = ctx.peers
      .fresh()
      .filter((peer) => peer.clusterId === '' && peer.bootstrapExpect === expect);
    if (candidates.length + 1 < expect) return;
    const ids = [ctx.id, ...candidates.map((peer) => peer.id)].sort();
    if (ids[0] !== ctx.id) return; // the lowest id among them bootstraps
    ctx.log.info('bootstrap-expect reached: bootstrapping', {
      expect,
      nodes: ids.slice(0, expect),
    });
    this.bootstrapper
      .bootstrap(
        expect,
        ctx.tunables.bootstrapWaitMs,
        (peer) => peer.bootstrapExpect === expect,
        true,
      )
      .catch((error: unknown) => {
        if (error instanceof BootstrapDeferred) {
          ctx.log.info('bootstrap left to a lower id', { node: error.lowerId });
          return;
        }
        ctx.log.warn('automatic bootstrap failed', {
          reason: String((error as Error).message),
        });
      });
  }
}
