/**
 * ClusterService: a node's part in the cluster configuration. It owns the Raft driver and
 * its storage (`<dataDir>/raft`), the node-to-node links Raft traffic uses, discovery
 * through seed addresses, bootstrap, joining, automatic promotion of caught-up learners,
 * and the cluster requests of operators (status, transfer-leader, leave), forwarding to the
 * leader what only the leader can do.
 *
 * States: `pending` (started with --join, no cluster yet: exchanging ids and addresses with
 * the seeds), `joining` (found an existing cluster, asking to be added), `member` (Raft
 * running), `left` (removed at its own request; the node then stops).
 *
 * Raft membership follows gossip membership (the `gossip` view of ClusterServiceInit): the
 * leader adds a node only once its gossip has it alive (joinAsLeader), founding voters must
 * be alive in the founder's gossip (bootstrap), a node id held by a live process cannot be
 * taken by another address (idClaim), and a voter gossip reports dead or does not list is
 * removed after deadVoterRemoveAfterMs when quorum stays safe (deadVoterToRemove).
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import { ClusterConfig } from '../membership/raft/cluster-config.ts';
import type { RaftConfig } from '../membership/raft/config.ts';
import { DEFAULT_TICK_MS, validateRaftConfig } from '../membership/raft/config.ts';
import { FileRaftStorage } from '../membership/raft/file-storage.ts';
import { quorum, RaftProposalError } from '../membership/raft/raft.ts';
import { bootstrapSnapshot } from '../membership/raft/storage.ts';
import type { ConfChange, Message, NodeId } from '../membership/raft/types.ts';
import { NONE } from '../membership/raft/types.ts';
import type { LocalEndpoint } from '../protocol/handshake.ts';
import type {
  BootstrapCommitRequest,
  ClusterBootstrapReply,
  ClusterBootstrapRequest,
  ClusterJoinReply,
  ClusterJoinRequest,
  ClusterMember,
  ClusterStatusReply,
  ClusterStatusRequest,
  ConfChangeTiming,
  DecodedEnvelope,
  Envelope,
  EnvelopeKind,
  JoinReply,
  JoinRequest,
  LeaveReply,
  LeaveRequest,
  PeerAddress,
  PeerExchange,
  RaftBatch,
  RemoveMemberRequest,
  TransferLeaderReply,
  TransferLeaderRequest,
} from '../protocol/messages.ts';
import { call } from '../rpc/call.ts';
import {
  type Clock,
  type Counters,
  type Logger,
  systemClock,
  systemRandom,
} from '../runtime/index.ts';
import { writeFileAtomic } from '../security/certs-dir.ts';
import { validateName } from '../security/identity.ts';
import type { TlsMaterial } from '../security/tls.ts';
import { parseHostPort } from '../transport/address.ts';
import type { Connection } from '../transport/connection.ts';
import type { ConnectionOptions } from '../transport/options.ts';
import type { ReconnectingLink } from '../transport/reconnecting.ts';
import { isRetryableProposalError, type ProposalResult, RaftDriver } from './driver.ts';
import { PeerLinks } from './peers.ts';
import { messageFromWire, messageToWire } from './raft-codec.ts';
import { raftStoragePaths } from './storage-files.ts';
import {
  type ClusterTimeouts,
  RAFT_TIMINGS_LAN,
  type RaftTimings,
  raftTimingsOf,
} from './timings.ts';

// ---------------------------------------------------------------- bounds and timings

/** How often a node without a cluster exchanges ids and addresses with what it knows. */
export const DISCOVERY_INTERVAL_MS = 250;
/** A peer counts for bootstrap only if it answered (or asked) within this long. */
export const PEER_FRESH_MS = 5000;
/** Peers remembered before bootstrap; more are ignored. */
export const PEERS_MAX = 256;
/** Peer addresses contacted in one discovery round. */
export const DISCOVERY_TARGETS_MAX = 64;
/** How long `cluster join --seeds` waits for membership by default, and at most. */
export const JOIN_WAIT_DEFAULT_MS = 30_000;
export const JOIN_WAIT_MAX_MS = 300_000;
const JOIN_POLL_MS = 100;
/** One node-to-node request (exchange, Raft batch, status hop). */
export const PEER_REQUEST_TIMEOUT_MS = 1000;
/** `cluster bootstrap` waits this long for `--expect` nodes unless told otherwise. */
export const BOOTSTRAP_WAIT_DEFAULT_MS = 30_000;
export const BOOTSTRAP_WAIT_MAX_MS = 300_000;
/** After bootstrap, how long to wait for the first leader before answering without one. */
export const BOOTSTRAP_LEADER_WAIT_MS = 5000;
/** Largest `--expect`: founding voters. */
export const BOOTSTRAP_VOTERS_MAX = 64;
/** Retry interval of a join, and of sending the founding configuration to a founding voter. */
export const JOIN_RETRY_MS = 500;
/** How long the founder keeps offering the founding configuration to an unreachable voter. */
export const FOUNDING_RETRY_DEADLINE_MS = 60_000;
/** A learner is caught up (and promoted) when its match index is within this of the last index. */
export const PROMOTE_LAG_MAX_ENTRIES = 10;
/** How often the leader looks for caught-up learners. */
export const PROMOTE_CHECK_MS = 100;
/** How often a member whose address changed tells the others. */
export const ANNOUNCE_INTERVAL_MS = 500;
/** How often a member checks it has a connection open to every voter (see warmLinks). */
export const LINK_WARM_INTERVAL_MS = 1000;
/** Between two rounds of asking members whether an unknown sender is one of them. */
export const VOUCH_INTERVAL_MS = 1000;
/** Membership-change timings kept for `cluster status`. */
export const CONF_CHANGE_TIMINGS_MAX = 256;
/** Between answering `cluster leave` and stopping, so the answer leaves first. */
export const LEFT_EXIT_DELAY_MS = 150;
/** How often the leader looks for voters gossip reports dead (see removeDeadVoter), and how
 * often every member notes which voters gossip does not list (see trackMissingVoters). */
export const DEAD_VOTER_CHECK_MS = 1000;
/**
 * The leader adds a node only once its own gossip view has it alive at the address it asks
 * to join with; it waits this long for that (the joiner's gossip join is under way), then
 * refuses the join with RDB_JOIN_NOT_IN_GOSSIP (the joiner retries).
 */
export const JOIN_GOSSIP_WAIT_MS = 5000;
const JOIN_GOSSIP_POLL_MS = 50;
/** Joins waiting for gossip at once on a leader; more are refused with RDB_INFLIGHT_LIMIT. */
export const JOIN_GOSSIP_WAITERS_MAX = 64;
/** Default of ClusterServiceInit.idReclaimAfterMs (gossip's lan deadReclaimMs). */
export const ID_RECLAIM_AFTER_MS_DEFAULT = 5000;
/** A refused address change of a member is logged at most this often per member. */
const ID_REFUSAL_LOG_INTERVAL_MS = 5000;
/**
 * A cluster of at least this many voters is never shrunk below it by the automatic removal
 * of dead voters (an operator may still `cluster leave --force`); a smaller cluster keeps
 * at least one voter.
 */
export const DEAD_VOTER_MIN_VOTERS = 3;

const LEFT_MARKER = 'left.json';

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
  'leaveRequest',
]);

export type ClusterState = 'pending' | 'joining' | 'member' | 'left';

export interface ClusterServiceInit {
  id: NodeId;
  dataDir: string;
  /** The certificates' cluster name (the handshake's cluster id). */
  clusterName: string;
  /** --join seed addresses; undefined when not given (a zero-config node bootstraps itself). */
  seeds: readonly string[] | undefined;
  /** --bootstrap-expect: bootstrap automatically once this many nodes know each other. */
  bootstrapExpect: number | undefined;
  local: LocalEndpoint;
  tls(): TlsMaterial | null;
  connection: ConnectionOptions;
  log: Logger;
  counters: Counters;
  raft?: Partial<RaftConfig>;
  tickMs?: number;
  /** Proposal, forwarding and transfer deadlines; absent ones are the LAN preset's. */
  timeouts?: Partial<ClusterTimeouts>;
  clock?: Clock;
  /**
   * A voter gossip reports `dead` (or does not list) continuously for longer than this is
   * removed by the leader when quorum stays safe (see removeDeadVoter). Undefined or ≤ 0:
   * never.
   */
  deadVoterRemoveAfterMs?: number;
  /**
   * Another process may take a member's id (at another address) only once gossip has
   * reported the holder dead or left for this long (see idClaim). Default
   * ID_RECLAIM_AFTER_MS_DEFAULT.
   */
  idReclaimAfterMs?: number;
  /** This node's gossip view of the members; null (or absent) while gossip does not run. */
  gossip?: () => readonly GossipLiveness[] | null;
  /** `cluster join --seeds` gave new seeds: gossip should join through them too. */
  onSeeds?: (seeds: readonly string[]) => void;
}

/**
 * One member as gossip (SWIM) sees it: for joins (a node joins only once alive in gossip),
 * ids in use, and the automatic removal of dead voters.
 */
export interface GossipLiveness {
  id: NodeId;
  /** alive, suspect, dead or left; `missing` (made here, see withMissingVoters): a voter
   * gossip does not list. */
  state: string;
  /** How long it has been in `state`, continuously. */
  inStateMs: number;
  /** The address the member advertises for this protocol (joins, Raft), as it gossips it. */
  address: string;
}

/**
 * Gossip's view plus one `missing` entry for each voter (other than `self`) it does not
 * list, missing since the time recorded in `missingSinceMs` — which this updates: voters
 * gossip lists (and ids no longer voters) are dropped from it, newly missing ones start at
 * `nowMs`.
 */
export function withMissingVoters(
  self: NodeId,
  voters: readonly NodeId[],
  gossip: readonly GossipLiveness[],
  missingSinceMs: Map<NodeId, number>,
  nowMs: number,
): GossipLiveness[] {
  const listed = new Set(gossip.map((member) => member.id));
  const out = [...gossip];
  const missing = new Set<NodeId>();
  for (const id of voters) {
    if (id === self || listed.has(id)) continue;
    missing.add(id);
    const since = missingSinceMs.get(id) ?? nowMs;
    missingSinceMs.set(id, since);
    out.push({ id, state: 'missing', inStateMs: nowMs - since, address: '' });
  }
  for (const id of missingSinceMs.keys()) if (!missing.has(id)) missingSinceMs.delete(id);
  return out;
}

export type IdClaimDecision =
  | { allowed: true }
  /** `live`: the holder is alive or suspect; otherwise dead or left within the window. */
  | { allowed: false; holder: GossipLiveness; live: boolean };

/**
 * May a process at `address` take the node id `id`? Not while gossip has that id alive or
 * suspect at another address (another live process holds it), nor while the holder there is
 * dead or left for less than `reclaimAfterMs` (gossip may still be wrong, and the holder's
 * address is where Raft reaches it). An id gossip does not know, or knows at this same
 * address (a restart in place), is free.
 */
export function idClaim(
  id: NodeId,
  address: string,
  gossip: readonly GossipLiveness[],
  reclaimAfterMs: number,
): IdClaimDecision {
  const holder = gossip.find((member) => member.id === id);
  if (holder === undefined || holder.address === address) return { allowed: true };
  if (holder.state === 'alive' || holder.state === 'suspect') {
    return { allowed: false, holder, live: true };
  }
  if (holder.inStateMs < reclaimAfterMs) return { allowed: false, holder, live: false };
  return { allowed: true };
}

/** Milliseconds as seconds for messages: "5", "1.2". */
function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

export type DeadVoterDecision =
  | { remove: NodeId; deadForMs: number; state: string }
  | { remove: null; reason: string; candidate?: NodeId };

/**
 * Which voter, if any, the leader `self` removes automatically (at most one per call):
 * one gossip reports `dead`, or does not list at all (`missing`, see withMissingVoters),
 * for longer than `afterMs` (the longest first), and only when after its removal (1) the
 * remaining voters alive in gossip (this node counts as alive) are a majority of the new
 * voter set, and (2) the new set keeps at least DEAD_VOTER_MIN_VOTERS voters if the
 * cluster had that many, and at least one otherwise. A voter gossip does not list and has
 * no `missing` entry for is not alive (it counts against the majority) and is not removed.
 * A voter that left gossip (a clean stop) is not removed while gossip remembers it.
 */
export function deadVoterToRemove(
  self: NodeId,
  voters: readonly NodeId[],
  gossip: readonly GossipLiveness[],
  afterMs: number,
): DeadVoterDecision {
  const byId = new Map(gossip.map((member) => [member.id, member]));
  const dead = voters
    .filter((id) => id !== self)
    .map((id) => ({ id, member: byId.get(id) }))
    .filter(
      ({ member }) =>
        (member?.state === 'dead' || member?.state === 'missing') && member.inStateMs > afterMs,
    )
    .sort((a, b) => b.member!.inStateMs - a.member!.inStateMs || (a.id < b.id ? -1 : 1));
  const first = dead[0];
  if (first === undefined) return { remove: null, reason: 'no voter dead long enough' };
  const remaining = voters.filter((id) => id !== first.id);
  const minVoters = voters.length >= DEAD_VOTER_MIN_VOTERS ? DEAD_VOTER_MIN_VOTERS : 1;
  if (remaining.length < minVoters) {
    return {
      remove: null,
      candidate: first.id,
      reason: `removing ${first.id} would leave ${remaining.length} voter(s); the minimum is ${minVoters}`,
    };
  }
  const alive = remaining.filter((id) => id === self || byId.get(id)?.state === 'alive');
  const needed = quorum(remaining.length);
  if (alive.length < needed) {
    return {
      remove: null,
      candidate: first.id,
      reason: `removing ${first.id} would leave ${remaining.length} voter(s) of which ${alive.length} are alive; a majority needs ${needed}`,
    };
  }
  return { remove: first.id, deadForMs: first.member!.inStateMs, state: first.member!.state };
}

interface KnownPeer {
  id: NodeId;
  address: string;
  clusterId: string;
  bootstrapExpect: number;
  leader: string;
  /** When it last answered or asked us directly; 0 when we only heard of it. */
  seenAtMs: number;
}

function fail(code: ErrorCode, message: string, hint?: string): never {
  throw new RdbnetError(code, message, hint === undefined ? undefined : { hint });
}

/** Errors after which a forwarded request is worth sending again (to the same or a new leader). */
const FORWARD_RETRY_CODES = new Set<string>([
  ErrorCode.NotLeader,
  ErrorCode.NoLeader,
  ErrorCode.NodeUnreachable,
  ErrorCode.ConnectionClosed,
  ErrorCode.HandshakeTimeout,
  ErrorCode.RequestTimeout,
]);

/** The Raft core's proposal refusals, in this layer's error codes. */
function proposalError(error: RaftProposalError): RdbnetError {
  switch (error.reason) {
    case 'no-leader':
    case 'not-member':
    case 'transfer-in-progress':
      return new RdbnetError(ErrorCode.NotLeader, error.message);
    case 'conf-change-invalid':
      return new RdbnetError(ErrorCode.NotMember, error.message);
    default:
      return new RdbnetError(ErrorCode.InflightLimit, error.message);
  }
}

export class ClusterService {
  state: ClusterState = 'pending';
  /** Resolves when this node has left the cluster at its own request (the node then stops). */
  readonly left: Promise<void>;
  /** Resolves with the error when the Raft storage failed (the node must stop). */
  readonly failed: Promise<Error>;

  private readonly init: ClusterServiceInit;
  private readonly storage: FileRaftStorage;
  private readonly links: PeerLinks;
  private readonly clock: Clock;
  private readonly tickMs: number;
  private readonly timeouts: ClusterTimeouts;
  private driver: RaftDriver | null = null;
  private address = '';
  private stopping = false;
  private resolveLeft!: () => void;
  private resolveFailed!: (error: Error) => void;

  // discovery
  private readonly peers = new Map<NodeId, KnownPeer>();
  private readonly exchanging = new Set<string>();
  /** Seed addresses that turned out to be this node. */
  private readonly selfAddresses = new Set<string>();
  private discoveryTimer: NodeJS.Timeout | null = null;
  /** Seeds added at run time by `cluster join --seeds`, bounded like discovery itself. */
  private readonly extraSeeds = new Set<string>();
  private discoveryRunning: Promise<void> | null = null;
  private bootstrapping = false;
  private adopting = false;
  private joinedClusterId = '';

  // membership
  /** Members named in the join reply, accepted as Raft peers until the snapshot arrives. */
  private preApplyMembers = new Map<NodeId, string>();
  /** Addresses members told us directly, ahead of the committed configuration. */
  private readonly addressHints = new Map<NodeId, string>();
  private readonly addressProposals = new Map<NodeId, Promise<void>>();
  private readonly confChangeTimings: ConfChangeTiming[] = [];
  /**
   * When a Raft batch last arrived from each member (this node's clock). Real contact: the
   * core's own contact ticks start fresh at every election, so a dead follower looks live
   * for an election timeout after a failover.
   */
  private readonly lastHeardMs = new Map<NodeId, number>();
  /** Members this node's configuration does not know yet, vouched for by a member (askVouch). */
  private readonly vouched = new Set<NodeId>();
  private readonly vouchAskedMs = new Map<NodeId, number>();
  private readonly addressForwardedMs = new Map<NodeId, number>();
  private promoting = false;
  private lastPromoteCheckMs = 0;
  private removingDead = false;
  private lastDeadCheckMs = 0;
  /** Voters gossip does not list, and since when (this node's clock): see withMissingVoters. */
  private readonly missingSinceMs = new Map<NodeId, number>();
  /** Joins waiting on this leader for the joiner to appear in gossip (JOIN_GOSSIP_WAITERS_MAX). */
  private gossipWaiters = 0;
  /** When a refused address change was last logged, per member (bounded by PEERS_MAX). */
  private readonly idRefusalLoggedMs = new Map<NodeId, number>();
  /** The last reason a dead voter was kept, logged once per change. */
  private deadKeptReason = '';
  private lastAnnounceMs = 0;
  private lastRetainMs = 0;
  private lastWarmMs = 0;

  private constructor(init: ClusterServiceInit, storage: FileRaftStorage) {
    this.init = init;
    this.storage = storage;
    this.clock = init.clock ?? systemClock;
    this.tickMs = init.tickMs ?? DEFAULT_TICK_MS;
    this.timeouts = {
      proposalTimeoutMs: init.timeouts?.proposalTimeoutMs ?? RAFT_TIMINGS_LAN.proposalTimeoutMs,
      forwardDeadlineMs: init.timeouts?.forwardDeadlineMs ?? RAFT_TIMINGS_LAN.forwardDeadlineMs,
      transferTimeoutMs: init.timeouts?.transferTimeoutMs ?? RAFT_TIMINGS_LAN.transferTimeoutMs,
    };
    this.links = new PeerLinks({ local: init.local, tls: init.tls, options: init.connection });
    this.left = new Promise((resolve) => {
      this.resolveLeft = resolve;
    });
    this.failed = new Promise((resolve) => {
      this.resolveFailed = resolve;
    });
  }

  /**
   * Opens the Raft storage in `<dataDir>/raft` (replaying and verifying it against its
   * watermark, so a lost log is refused here and Raft never starts on it). Refuses a data
   * dir whose node left its cluster.
   */
  static async open(init: ClusterServiceInit): Promise<ClusterService> {
    const marker = await readFile(join(init.dataDir, LEFT_MARKER), 'utf8').catch(() => undefined);
    if (marker !== undefined) {
      let detail = '';
      try {
        const parsed = JSON.parse(marker) as { clusterId?: string; leftAt?: string };
        detail = ` ${parsed.clusterId ?? ''} at ${parsed.leftAt ?? '?'}`;
      } catch {
        // the marker's presence is what counts
      }
      fail(
        ErrorCode.ConfigInvalid,
        `node '${init.id}' left cluster${detail}; data dir ${init.dataDir} cannot be used again`,
        'start it with a fresh --data-dir to join a cluster again',
      );
    }
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

  /** Decides what this node is (member, new single node, or waiting) and starts. */
  async start(address: string): Promise<void> {
    this.address = address;
    const { init } = this;
    if (this.hasCluster()) {
      this.startDriver();
      const config = this.driver!.config;
      init.log.info('cluster member', {
        cluster: config.clusterId,
        voters: [...config.voters],
        learners: [...config.learners],
      });
      // A single voter need not wait an election timeout to lead itself again.
      if (config.voters.size === 1 && config.voters.has(init.id)) this.driver!.campaign();
      return;
    }
    const expect = init.bootstrapExpect;
    if ((init.seeds === undefined && expect === undefined) || expect === 1) {
      if (this.storage.hardStateNow().term !== 0) {
        fail(
          ErrorCode.ConfigInvalid,
          `data dir ${init.dataDir} holds Raft state of a cluster this node was joining`,
          'start it with --join <member address> to finish joining, or use a fresh --data-dir',
        );
      }
      const clusterId = randomUUID();
      const founding = ClusterConfig.founding(clusterId, [{ id: init.id, address }]);
      await this.adoptFounding([init.id], founding.encode());
      init.log.info('bootstrapped a single-node cluster', { cluster: clusterId });
      this.driver!.campaign();
      return;
    }
    this.state = 'pending';
    init.log.info('waiting for a cluster', {
      seeds: init.seeds ?? [],
      bootstrapExpect: expect ?? null,
    });
    this.discoveryTimer = setInterval(() => this.discoveryTick(), DISCOVERY_INTERVAL_MS);
    this.discoveryTick();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.discoveryTimer !== null) clearInterval(this.discoveryTimer);
    this.discoveryTimer = null;
    const driver = this.driver;
    this.driver = null;
    if (driver !== null) await driver.stop();
    else await this.storage.close();
    this.links.close();
  }

  get clusterId(): string {
    return this.driver?.config.clusterId || this.joinedClusterId;
  }

  /** Raft and cluster counters for `node status`. */
  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    const driver = this.driver;
    if (driver !== null) Object.assign(out, driver.status().counters);
    const stats = this.storage.stats();
    out['raft.storage.syncs'] = stats.syncs;
    out['raft.storage.bytes_written'] = stats.bytesWritten;
    out['raft.storage.segments'] = stats.segments;
    out['raft.storage.watermark_writes'] = stats.watermarkWrites;
    return out;
  }

  /** The Raft timings this node runs with: its driver's, or the ones it will start it with. */
  raftTimings(): RaftTimings {
    const core = this.driver?.raftConfig ?? validateRaftConfig(this.init.raft);
    return raftTimingsOf(this.tickMs, core, this.timeouts);
  }

  /** The voters of the applied configuration; null while this node belongs to no cluster. */
  voters(): string[] | null {
    const driver = this.driver;
    if (driver === null || driver.config.voters.size === 0) return null;
    return [...driver.config.voters];
  }

  /** The voters of the applied configuration with their addresses; null outside a cluster. */
  voterAddresses(): { id: NodeId; address: string }[] | null {
    const driver = this.driver;
    if (driver === null || driver.config.voters.size === 0) return null;
    return [...driver.config.voters].map((id) => ({ id, address: this.addressOf(id) ?? '' }));
  }

  /** True when `id` is a member of the cluster configuration (applied, or added by an entry
   * already in the log). */
  isMember(id: string): boolean {
    return this.isMemberPeer(id);
  }

  /** Addresses of the other members of the applied configuration (gossip seeds on restart). */
  memberAddresses(): string[] {
    const driver = this.driver;
    if (driver === null) return [];
    const out: string[] = [];
    for (const [id, address] of driver.config.addresses) {
      if (id !== this.init.id && address !== '') out.push(address);
    }
    return out;
  }

  handles(kind: EnvelopeKind): boolean {
    return CLUSTER_KINDS.has(kind);
  }

  handle(request: DecodedEnvelope, connection: Connection): Envelope | Promise<Envelope> {
    if (this.stopping) fail(ErrorCode.ConnectionClosed, `node ${this.init.id} is stopping`);
    const body = request.body;
    switch (request.kind) {
      case 'raftBatch':
        return this.onRaftBatch(body as RaftBatch, connection);
      case 'peerExchangeRequest':
        return { peerExchangeReply: this.onPeerExchange(body as PeerExchange, connection) };
      case 'bootstrapCommitRequest':
        return this.onBootstrapCommit(body as BootstrapCommitRequest, connection).then(() => ({
          bootstrapCommitReply: {},
        }));
      case 'joinRequest':
        return this.onJoin(body as JoinRequest, connection).then((joinReply) => ({ joinReply }));
      case 'removeMemberRequest':
        return this.onRemoveMember(body as RemoveMemberRequest, connection).then((index) => ({
          removeMemberReply: { index },
        }));
      case 'clusterBootstrapRequest':
        return this.onBootstrap(body as ClusterBootstrapRequest).then((clusterBootstrapReply) => ({
          clusterBootstrapReply,
        }));
      case 'clusterJoinRequest':
        return this.onJoinThrough(body as ClusterJoinRequest).then((clusterJoinReply) => ({
          clusterJoinReply,
        }));
      case 'clusterStatusRequest':
        return this.onStatus(body as ClusterStatusRequest).then((clusterStatusReply) => ({
          clusterStatusReply,
        }));
      case 'transferLeaderRequest':
        return this.onTransfer(body as TransferLeaderRequest, connection).then(
          (transferLeaderReply) => ({ transferLeaderReply }),
        );
      case 'leaveRequest':
        return this.onLeave(body as LeaveRequest).then((leaveReply) => ({ leaveReply }));
      default:
        return fail(ErrorCode.MethodUnknown, `no cluster handler for ${request.kind}`);
    }
  }

  // ---------------------------------------------------------------- Raft traffic

  private startDriver(): void {
    const { init } = this;
    const driver = new RaftDriver({
      id: init.id,
      storage: this.storage,
      ...(init.raft === undefined ? {} : { raft: init.raft }),
      tickMs: this.tickMs,
      random: systemRandom,
      clock: this.clock,
      log: init.log,
      send: (to, messages) => this.sendRaft(to, messages),
      events: {
        onLeaderChange: (leader, term) => {
          init.counters.increment('cluster.leader_changes');
          init.log.info('raft leader', { leader: leader || null, term });
        },
        onApplied: (change) => {
          const { record } = change;
          if (
            record.op === 'setAddress' &&
            this.addressHints.get(record.nodeId) === record.address
          ) {
            this.addressHints.delete(record.nodeId);
          }
          if (record.op === 'removeNode') this.vouched.delete(record.nodeId);
          init.log.info('cluster configuration changed', {
            index: record.index,
            op: record.op,
            node: record.nodeId || undefined,
            address: record.address || undefined,
          });
        },
        onRestored: (config) => {
          this.preApplyMembers.clear();
          init.log.info('cluster configuration restored from a snapshot', {
            cluster: config.clusterId,
            index: config.appliedIndex,
          });
        },
        onTick: () => this.housekeeping(),
        onFatal: (error) => this.resolveFailed(error),
      },
    });
    this.driver = driver;
    this.state = 'member';
    if (this.discoveryTimer !== null) clearInterval(this.discoveryTimer);
    this.discoveryTimer = null;
    driver.start();
  }

  private sendRaft(to: NodeId, messages: Message[]): void {
    const counters = this.init.counters;
    const snapshots = messages.some((message) => message.type === 'MsgSnap');
    const address = this.addressOf(to);
    if (address === undefined) {
      counters.increment('raft.batches_dropped.no_address');
      this.driver?.reportUnreachable(to);
      if (snapshots) this.driver?.reportSnapshot(to, false);
      return;
    }
    counters.increment('raft.messages_out', messages.length);
    this.links
      .link(address)
      .request(
        { raftBatch: { messages: messages.map(messageToWire), to } },
        PEER_REQUEST_TIMEOUT_MS,
      )
      .then(
        () => {
          if (snapshots) this.driver?.reportSnapshot(to, true);
        },
        (error: unknown) => {
          const code = isRdbnetError(error) ? error.code : ErrorCode.Internal;
          counters.increment(`raft.batches_failed.${code}`);
          this.driver?.reportUnreachable(to);
          if (snapshots) this.driver?.reportSnapshot(to, false);
        },
      );
  }

  private onRaftBatch(batch: RaftBatch, connection: Connection): Envelope {
    const peer = nodePeer(connection);
    const driver = this.driver;
    if (driver === null || this.state !== 'member') {
      fail(ErrorCode.NotMember, `${this.init.id} is not in a cluster (yet)`);
    }
    if (batch.to !== this.init.id) {
      this.init.counters.increment('raft.batches_refused.misaddressed');
      fail(ErrorCode.NotMember, `raft batch for '${batch.to}' reached node ${this.init.id}`);
    }
    if (
      !driver.isKnownMember(peer.id) &&
      !this.preApplyMembers.has(peer.id) &&
      !this.vouched.has(peer.id)
    ) {
      this.init.counters.increment('raft.batches_refused.not_member');
      this.askVouch(peer.id);
      fail(ErrorCode.NotMember, `${peer.id} is not a member of cluster ${this.clusterId}`);
    }
    const messages = (batch.messages ?? []).map((wire) =>
      messageFromWire(wire, peer.id, this.init.id),
    );
    driver.step(messages);
    this.lastHeardMs.set(peer.id, this.clock.nowMs());
    this.init.counters.increment('raft.messages_in', messages.length);
    return { raftBatchReply: {} };
  }

  /**
   * A node this one does not know as a member sends Raft traffic: maybe this node's
   * configuration is stale (it was down while that node was added, and that node now leads,
   * so the log entry that would tell it is exactly what it refuses to receive). It asks the
   * members it knows (over their node links, TLS-authenticated); when one of them, in the
   * same cluster, lists the node as a member, that node is accepted until a removal of it
   * is applied. At most one round per node per VOUCH_INTERVAL_MS.
   */
  private askVouch(id: NodeId): void {
    const driver = this.driver;
    const now = this.clock.nowMs();
    if (driver === null || this.vouchAskedMs.size >= PEERS_MAX) return;
    if (now - (this.vouchAskedMs.get(id) ?? Number.NEGATIVE_INFINITY) < VOUCH_INTERVAL_MS) return;
    this.vouchAskedMs.set(id, now);
    const clusterId = driver.config.clusterId;
    for (const member of driver.config.members()) {
      if (member.id === this.init.id || member.id === id) continue;
      const address = this.addressOf(member.id);
      if (address === undefined) continue;
      call(
        this.links.link(address),
        { clusterStatusRequest: { localOnly: true } },
        'clusterStatusReply',
        PEER_REQUEST_TIMEOUT_MS,
      ).then(
        (reply) => {
          const listed = (reply.members ?? []).find((entry) => entry.id === id);
          if (
            reply.id === member.id &&
            reply.clusterId === clusterId &&
            listed !== undefined &&
            !this.vouched.has(id)
          ) {
            this.vouched.add(id);
            // Where to answer it: the voucher's committed address for it.
            if (this.addressOf(id) === undefined && validAddress(listed.address)) {
              this.addressHints.set(id, listed.address);
            }
            this.vouchAskedMs.delete(id);
            this.init.log.info('member vouched for by another member', { node: id, by: member.id });
          }
        },
        () => {},
      );
    }
  }

  /** Where to reach `id`: what it told us, the committed configuration, or discovery. */
  private addressOf(id: NodeId): string | undefined {
    return (
      this.addressHints.get(id) ??
      (this.driver?.config.addresses.get(id) || undefined) ??
      this.preApplyMembers.get(id) ??
      this.peers.get(id)?.address
    );
  }

  private hasCluster(): boolean {
    return this.storage.snapshot().metadata.index > 0;
  }

  private requireMember(): RaftDriver {
    const driver = this.driver;
    if (driver === null || this.state !== 'member') {
      const why =
        this.state === 'left'
          ? 'has left its cluster'
          : this.state === 'joining'
            ? 'is still joining a cluster'
            : 'is not in a cluster yet';
      fail(
        ErrorCode.NotMember,
        `node ${this.init.id} ${why}`,
        this.state === 'pending'
          ? 'run `rdbnet cluster bootstrap --expect N` on one of the nodes'
          : undefined,
      );
    }
    return driver;
  }

  /** Leader chores after every tick: own address, promotions, link cleanup. */
  private housekeeping(): void {
    const driver = this.driver;
    if (driver === null || this.state !== 'member' || this.stopping) return;
    const now = this.clock.nowMs();
    const config = driver.config;
    const self = this.init.id;
    if (config.isMember(self) && config.addresses.get(self) !== this.address) {
      if (driver.isLeader) {
        this.ensureAddress(self, this.address).catch(() => {});
      } else if (now - this.lastAnnounceMs >= ANNOUNCE_INTERVAL_MS) {
        this.lastAnnounceMs = now;
        this.announce();
      }
    }
    if (driver.isLeader && !this.promoting && now - this.lastPromoteCheckMs >= PROMOTE_CHECK_MS) {
      this.lastPromoteCheckMs = now;
      this.promoteCaughtUpLearner(driver);
    }
    if (now - this.lastDeadCheckMs >= DEAD_VOTER_CHECK_MS) {
      this.lastDeadCheckMs = now;
      // Every member keeps the clock of missing voters, so a new leader starts with it.
      const liveness = this.voterLiveness(driver, now);
      if (liveness !== null && driver.isLeader && !this.promoting && !this.removingDead) {
        this.removeDeadVoter(driver, liveness);
      }
    }
    if (now - this.lastWarmMs >= LINK_WARM_INTERVAL_MS) {
      this.lastWarmMs = now;
      this.warmLinks(driver);
    }
    if (now - this.lastRetainMs >= 5000) {
      this.lastRetainMs = now;
      const keep = new Set<string>();
      for (const member of config.members()) {
        const address = this.addressOf(member.id);
        if (address !== undefined) keep.add(address);
      }
      for (const address of this.preApplyMembers.values()) keep.add(address);
      for (const id of this.vouched) {
        const address = this.addressOf(id);
        if (address !== undefined) keep.add(address);
      }
      this.links.retain(keep);
    }
  }

  /**
   * Keeps a connection open to every voter. Followers do not talk to each other while a
   * leader lives, so without this the first pre-vote after a leader's death would wait for a
   * TLS handshake — a window in which both survivors can campaign at once and split the vote.
   */
  private warmLinks(driver: RaftDriver): void {
    for (const id of driver.config.voters) {
      if (id === this.init.id) continue;
      const address = this.addressOf(id);
      if (address === undefined) continue;
      const link = this.links.link(address);
      if (link.state !== 'idle' && link.state !== 'failed') continue;
      call(
        link,
        { peerExchangeRequest: this.exchangeInfo() },
        'peerExchangeReply',
        PEER_REQUEST_TIMEOUT_MS,
      ).catch(() => {});
    }
  }

  /** A member whose address changed says so to every other member (see onPeerExchange). */
  private announce(): void {
    const driver = this.driver;
    if (driver === null) return;
    const targets = new Set(driver.config.members().map((member) => member.id));
    for (const id of this.vouched) targets.add(id);
    if (driver.leader !== NONE) targets.add(driver.leader);
    targets.delete(this.init.id);
    for (const id of targets) {
      const address = this.addressOf(id);
      if (address === undefined) continue;
      call(
        this.links.link(address),
        { peerExchangeRequest: this.exchangeInfo() },
        'peerExchangeReply',
        PEER_REQUEST_TIMEOUT_MS,
      ).catch(() => {});
    }
  }

  private promoteCaughtUpLearner(driver: RaftDriver): void {
    const config = driver.config;
    if (config.learners.size === 0) return;
    const status = driver.status();
    for (const id of [...config.learners].sort()) {
      const progress = status.progress[id];
      if (
        progress === undefined ||
        progress.state !== 'replicate' ||
        status.lastIndex - progress.match > PROMOTE_LAG_MAX_ENTRIES ||
        !this.heardWithin(id, driver.raftConfig.electionTicks * this.tickMs)
      ) {
        continue;
      }
      this.promoting = true;
      this.init.log.info('promoting a caught-up learner', {
        node: id,
        match: progress.match,
        last: status.lastIndex,
      });
      driver
        .proposeConfChange({ type: 'promoteLearner', nodeId: id }, this.timeouts.proposalTimeoutMs)
        .then(
          (result) => this.recordTiming('promoteLearner', id, result),
          (error: unknown) => {
            if (!isRetryableProposalError(error)) {
              this.init.log.info('promotion not done', { node: id, reason: String(error) });
            }
          },
        )
        .finally(() => {
          this.promoting = false;
        });
      return;
    }
  }

  /** Gossip's view plus the voters it does not list (see withMissingVoters); null without
   * gossip. */
  private voterLiveness(driver: RaftDriver, nowMs: number): GossipLiveness[] | null {
    const gossip = this.gossipView();
    if (gossip === null) return null;
    return withMissingVoters(
      this.init.id,
      [...driver.config.voters],
      gossip,
      this.missingSinceMs,
      nowMs,
    );
  }

  /**
   * Leader only, at most every DEAD_VOTER_CHECK_MS: proposes the removal of one voter gossip
   * reports dead (or does not list) for longer than deadVoterRemoveAfterMs, when
   * deadVoterToRemove finds it safe. Never while another configuration change is unapplied:
   * the proposal goes straight to the core (no retry), which refuses it then
   * ('conf-change-pending'), and none starts while a promotion or an earlier removal of this
   * kind is in flight. The removal takes the
   * same path as `cluster leave` (a committed removeNode, in the history and the timings of
   * `cluster status`).
   */
  private removeDeadVoter(driver: RaftDriver, liveness: readonly GossipLiveness[]): void {
    const afterMs = this.init.deadVoterRemoveAfterMs;
    if (afterMs === undefined || afterMs <= 0) return;
    const decision = deadVoterToRemove(this.init.id, [...driver.config.voters], liveness, afterMs);
    if (decision.remove === null) {
      const reason = decision.candidate === undefined ? '' : decision.reason;
      if (reason !== this.deadKeptReason) {
        this.deadKeptReason = reason;
        if (reason !== '') this.init.log.warn('dead voter kept: quorum not safe', { reason });
      }
      return;
    }
    const id = decision.remove;
    this.deadKeptReason = '';
    this.removingDead = true;
    this.init.log.warn('removing a dead voter', {
      node: id,
      gossip: decision.state,
      deadForMs: Math.round(decision.deadForMs),
      voters: [...driver.config.voters],
    });
    driver
      .proposeConfChange({ type: 'removeNode', nodeId: id }, this.timeouts.proposalTimeoutMs)
      .then(
        (result) => {
          this.recordTiming('removeNode', id, result);
          this.init.counters.increment('cluster.dead_voters_removed');
          this.init.log.info('removed a dead voter', { node: id, index: result.index });
        },
        (error: unknown) => {
          // Another change still unapplied: tried again at the next check.
          if (!isRetryableProposalError(error)) {
            this.init.log.info('dead voter not removed', { node: id, reason: String(error) });
          }
        },
      )
      .finally(() => {
        this.removingDead = false;
      });
  }

  private recordTiming(op: string, nodeId: NodeId, result: ProposalResult): void {
    this.confChangeTimings.push({
      index: result.index,
      op,
      nodeId,
      commitMs: Number(result.commitMs.toFixed(3)),
    });
    if (this.confChangeTimings.length > CONF_CHANGE_TIMINGS_MAX) this.confChangeTimings.shift();
  }

  // ---------------------------------------------------------------- discovery

  private exchangeInfo(): PeerExchange {
    const peers: PeerAddress[] = [];
    const driver = this.driver;
    if (driver !== null) {
      for (const member of driver.config.members()) {
        const address = this.addressOf(member.id);
        if (member.id !== this.init.id && address !== undefined)
          peers.push({ id: member.id, address });
      }
    } else {
      for (const peer of this.peers.values()) peers.push({ id: peer.id, address: peer.address });
    }
    return {
      id: this.init.id,
      address: this.address,
      clusterId: this.clusterId,
      bootstrapExpect: this.init.bootstrapExpect ?? 0,
      peers: peers.slice(0, PEERS_MAX),
      leader: driver?.leader ?? '',
    };
  }

  private onPeerExchange(info: PeerExchange, connection: Connection): PeerExchange {
    const peer = nodePeer(connection);
    if (peer.authenticated && info.id !== peer.id) {
      fail(ErrorCode.Forbidden, `node ${peer.id} may only speak for itself, not for ${info.id}`);
    }
    this.notePeer(info, true);
    const driver = this.driver;
    if (
      driver !== null &&
      this.state === 'member' &&
      driver.config.isMember(info.id) &&
      validAddress(info.address) &&
      driver.config.addresses.get(info.id) !== info.address
    ) {
      // Not while another live process holds the id (a second process claiming it): Raft
      // would then talk to that one.
      const inUse = this.idInUse(info.id, info.address);
      if (inUse !== null) {
        this.logIdRefusal(info.id, info.address, inUse);
        return this.exchangeInfo();
      }
      // A member restarted on a new address: reach it there at once, and have it recorded.
      if (this.addressHints.get(info.id) !== info.address) {
        this.addressHints.set(info.id, info.address);
        this.init.log.info('member address changed', { node: info.id, address: info.address });
      }
      if (driver.isLeader) this.ensureAddress(info.id, info.address).catch(() => {});
      else this.forwardAddress(driver, info.id, info.address);
    }
    return this.exchangeInfo();
  }

  /**
   * A follower passes a member's new address on to the leader (as a forwarded JoinRequest):
   * the member may not know the leader (it was down while the leader was added).
   */
  private forwardAddress(driver: RaftDriver, id: NodeId, address: string): void {
    const now = this.clock.nowMs();
    if (
      now - (this.addressForwardedMs.get(id) ?? Number.NEGATIVE_INFINITY) <
      ANNOUNCE_INTERVAL_MS
    ) {
      return;
    }
    const leader = driver.leader;
    const leaderAddress = leader === NONE ? undefined : this.addressOf(leader);
    if (leaderAddress === undefined) return;
    this.addressForwardedMs.set(id, now);
    call(
      this.links.link(leaderAddress),
      { joinRequest: { id, address, clusterId: driver.config.clusterId, forwarded: true } },
      'joinReply',
      this.timeouts.forwardDeadlineMs,
    ).catch(() => {});
  }

  private notePeer(info: Omit<PeerExchange, 'peers'> | PeerAddress, direct: boolean): void {
    if (!info.id || info.id === this.init.id || !validAddress(info.address)) return;
    const existing = this.peers.get(info.id);
    if (!direct) {
      if (existing !== undefined || this.peers.size >= PEERS_MAX) return;
      this.peers.set(info.id, {
        id: info.id,
        address: info.address,
        clusterId: '',
        bootstrapExpect: 0,
        leader: '',
        seenAtMs: 0,
      });
      return;
    }
    if (existing === undefined && this.peers.size >= PEERS_MAX) return;
    const full = info as PeerExchange;
    this.peers.set(info.id, {
      id: info.id,
      address: info.address,
      clusterId: full.clusterId ?? '',
      bootstrapExpect: full.bootstrapExpect ?? 0,
      leader: full.leader ?? '',
      seenAtMs: this.clock.nowMs(),
    });
  }

  private freshPeers(): KnownPeer[] {
    const since = this.clock.nowMs() - PEER_FRESH_MS;
    return [...this.peers.values()].filter((peer) => peer.seenAtMs > 0 && peer.seenAtMs >= since);
  }

  private discoveryTick(): void {
    if (this.stopping || this.state === 'member' || this.state === 'left') return;
    if (this.discoveryRunning !== null) return;
    this.discoveryRunning = this.discoveryRound().finally(() => {
      this.discoveryRunning = null;
    });
  }

  /** One exchange with every seed and known peer, then a look at what was learnt. */
  private async discoveryRound(): Promise<void> {
    const targets = new Set<string>([...(this.init.seeds ?? []), ...this.extraSeeds]);
    for (const peer of this.peers.values()) targets.add(peer.address);
    targets.delete(this.address);
    for (const address of this.selfAddresses) targets.delete(address);
    const round = [...targets].slice(0, DISCOVERY_TARGETS_MAX).map(async (address) => {
      if (this.exchanging.has(address)) return;
      this.exchanging.add(address);
      try {
        const reply = await call(
          this.links.link(address),
          { peerExchangeRequest: this.exchangeInfo() },
          'peerExchangeReply',
          PEER_REQUEST_TIMEOUT_MS,
        );
        if (reply.id === this.init.id) {
          this.selfAddresses.add(address);
          return;
        }
        this.notePeer(reply, true);
        for (const heard of reply.peers ?? []) this.notePeer(heard, false);
      } catch {
        // Not up yet, or gone: asked again next round.
      } finally {
        this.exchanging.delete(address);
      }
    });
    await Promise.all(round);
    if (!this.stopping) this.afterDiscovery();
  }

  private afterDiscovery(): void {
    if (this.state !== 'pending' || this.bootstrapping || this.adopting) return;
    const inCluster = this.freshPeers().filter((peer) => peer.clusterId !== '');
    if (inCluster.length > 0) {
      this.startJoining();
      return;
    }
    const expect = this.init.bootstrapExpect;
    if (expect === undefined || expect <= 1) return;
    const candidates = this.freshPeers().filter(
      (peer) => peer.clusterId === '' && peer.bootstrapExpect === expect,
    );
    if (candidates.length + 1 < expect) return;
    const ids = [this.init.id, ...candidates.map((peer) => peer.id)].sort();
    if (ids[0] !== this.init.id) return; // the lowest id among them bootstraps
    this.init.log.info('bootstrap-expect reached: bootstrapping', {
      expect,
      nodes: ids.slice(0, expect),
    });
    this.bootstrap(
      expect,
      BOOTSTRAP_WAIT_DEFAULT_MS,
      (peer) => peer.bootstrapExpect === expect,
    ).catch((error: unknown) => {
      this.init.log.warn('automatic bootstrap failed', {
        reason: String((error as Error).message),
      });
    });
  }

  // ---------------------------------------------------------------- joining

  private startJoining(): void {
    this.state = 'joining';
    this.joinLoop().catch((error: unknown) => {
      this.init.log.error('join failed', { reason: String((error as Error).message) });
    });
  }

  private async joinLoop(): Promise<void> {
    let lastReason = '';
    while (this.state === 'joining' && !this.stopping) {
      const targets = this.freshPeers().filter((peer) => peer.clusterId !== '');
      // Prefer a node that names a leader, and the leader itself when we know where it is.
      const leaderId = targets.find((peer) => peer.leader !== '')?.leader;
      const target = targets.find((peer) => peer.id === leaderId) ?? targets[0];
      if (target !== undefined) {
        try {
          const reply = await call(
            this.links.link(target.address),
            {
              joinRequest: {
                id: this.init.id,
                address: this.address,
                clusterId: '',
                forwarded: false,
              },
            },
            'joinReply',
            this.timeouts.forwardDeadlineMs + PEER_REQUEST_TIMEOUT_MS,
          );
          if (this.state !== 'joining' || this.stopping) return;
          this.adoptJoin(reply);
          return;
        } catch (error) {
          const reason = (error as Error).message;
          if (isRdbnetError(error, ErrorCode.IdInUse)) {
            // Another process is this node, as far as the cluster knows: give up and stop.
            this.init.log.error('cannot join: node id in use', {
              target: target.address,
              code: error.code,
              reason,
            });
            this.resolveFailed(
              new RdbnetError(ErrorCode.IdInUse, reason, {
                hint: 'each node needs its own id; a node restarted elsewhere may take its id back once its old process has been gone from gossip for idReclaimAfterMs',
              }),
            );
            return;
          }
          if (isRdbnetError(error, ErrorCode.JoinNotInGossip)) {
            // Every retry: the operator must see that this node cannot become a member.
            this.init.log.warn('join refused; retrying', {
              target: target.address,
              code: error.code,
              reason,
            });
          } else if (isRdbnetError(error, ErrorCode.ClusterExists)) {
            this.init.log.error('cannot join', { target: target.address, reason });
          } else if (reason !== lastReason) {
            this.init.log.info('join attempt failed; retrying', { target: target.address, reason });
          }
          lastReason = reason;
        }
      }
      await sleep(JOIN_RETRY_MS);
      if (this.discoveryRunning === null && !this.stopping) {
        this.discoveryRunning = this.discoveryRound().finally(() => {
          this.discoveryRunning = null;
        });
      }
    }
  }

  private adoptJoin(reply: JoinReply): void {
    this.joinedClusterId = reply.clusterId;
    this.preApplyMembers = new Map(
      (reply.members ?? [])
        .filter((member) => member.id !== this.init.id && validAddress(member.address))
        .map((member) => [member.id, member.address]),
    );
    this.startDriver();
    this.init.log.info(reply.added ? 'joined the cluster as a learner' : 'rejoined the cluster', {
      cluster: reply.clusterId,
      leader: reply.leader || null,
    });
  }

  private async onJoin(request: JoinRequest, connection: Connection): Promise<JoinReply> {
    const peer = nodePeer(connection);
    if (request.forwarded) {
      if (!this.isMemberPeer(peer.id)) {
        fail(ErrorCode.Forbidden, `${peer.id} is not a member and may not forward requests`);
      }
    } else if (peer.authenticated && peer.id !== request.id) {
      fail(ErrorCode.Forbidden, `node ${peer.id} may only ask to join for itself`);
    }
    validateName('node id', request.id);
    if (!validAddress(request.address)) {
      fail(ErrorCode.Usage, `join request with a bad address '${request.address}'`);
    }
    const driver = this.requireMember();
    const clusterId = driver.config.clusterId;
    if (request.clusterId !== '' && request.clusterId !== clusterId) {
      fail(
        ErrorCode.ClusterExists,
        `node ${request.id} belongs to cluster ${request.clusterId}, this is cluster ${clusterId}`,
        'a node belongs to one cluster: start it with a fresh --data-dir to join this one',
      );
    }
    return this.onLeader(
      () => this.joinAsLeader(request.id, request.address),
      request.forwarded,
      (link, timeoutMs) =>
        call(link, { joinRequest: { ...request, forwarded: true } }, 'joinReply', timeoutMs),
    );
  }

  /**
   * Adds `id` at `address` as a learner (or, a member already, records its address). Raft
   * membership follows gossip membership: refused while another live process holds the id
   * (RDB_ID_IN_USE), and a new node only once this leader's gossip has it alive at that
   * address (waiting up to JOIN_GOSSIP_WAIT_MS, else RDB_JOIN_NOT_IN_GOSSIP).
   */
  private async joinAsLeader(id: NodeId, address: string): Promise<JoinReply> {
    const inUse = this.idInUse(id, address);
    if (inUse !== null) throw inUse;
    if (!this.requireMember().config.isMember(id)) await this.waitAliveInGossip(id, address);
    const deadline = this.clock.nowMs() + this.timeouts.proposalTimeoutMs;
    await this.ensureAddress(id, address);
    let added = false;
    if (!this.requireMember().config.isMember(id)) {
      const result = await this.proposeConfChange({ type: 'addLearner', nodeId: id }, deadline);
      this.recordTiming('addLearner', id, result);
      added = true;
    }
    const driver = this.requireMember();
    return {
      clusterId: driver.config.clusterId,
      members: this.memberList(driver),
      leader: driver.leader,
      added,
    };
  }

  /** This node's gossip view (see GossipLiveness); null while gossip does not run. */
  private gossipView(): readonly GossipLiveness[] | null {
    return this.init.gossip?.() ?? null;
  }

  /**
   * RDB_ID_IN_USE when another process holds `id` (see idClaim) for a process at `address`
   * that claims it; null when the id is free, or when there is no gossip view to tell.
   */
  private idInUse(
    id: NodeId,
    address: string,
    view: readonly GossipLiveness[] | null = this.gossipView(),
  ): RdbnetError | null {
    if (view === null) return null;
    const windowMs = this.init.idReclaimAfterMs ?? ID_RECLAIM_AFTER_MS_DEFAULT;
    const decision = idClaim(id, address, view, windowMs);
    if (decision.allowed) return null;
    const { holder } = decision;
    const cluster = this.clusterId || this.init.clusterName;
    const message = decision.live
      ? `node id ${id} is already alive in cluster ${cluster} at ${holder.address}` +
        `${holder.state === 'suspect' ? ' (suspect)' : ''}; pick another --id, or stop that node`
      : `node id ${id} is held in cluster ${cluster} by the node at ${holder.address}, ` +
        `${holder.state} for ${seconds(holder.inStateMs)} s; another address may take it once ` +
        `that node has been ${holder.state} for ${seconds(windowMs)} s (idReclaimAfterMs): ` +
        'wait, or pick another --id';
    return new RdbnetError(ErrorCode.IdInUse, message);
  }

  private logIdRefusal(id: NodeId, address: string, error: RdbnetError): void {
    const now = this.clock.nowMs();
    const last = this.idRefusalLoggedMs.get(id);
    if (last !== undefined && now - last < ID_REFUSAL_LOG_INTERVAL_MS) return;
    if (this.idRefusalLoggedMs.size >= PEERS_MAX) this.idRefusalLoggedMs.clear();
    this.idRefusalLoggedMs.set(id, now);
    this.init.log.warn('member address change refused: node id in use', {
      node: id,
      address,
      reason: error.message,
    });
  }

  /**
   * Waits (up to JOIN_GOSSIP_WAIT_MS) until this node's gossip has `id` alive at `address`;
   * RDB_ID_IN_USE as soon as another process holds the id, RDB_JOIN_NOT_IN_GOSSIP at the
   * deadline.
   */
  private async waitAliveInGossip(id: NodeId, address: string): Promise<void> {
    if (this.gossipWaiters >= JOIN_GOSSIP_WAITERS_MAX) {
      fail(
        ErrorCode.InflightLimit,
        `${JOIN_GOSSIP_WAITERS_MAX} joins are waiting for gossip on ${this.init.id} already`,
      );
    }
    this.gossipWaiters++;
    try {
      const deadline = this.clock.nowMs() + JOIN_GOSSIP_WAIT_MS;
      for (;;) {
        const view = this.gossipView();
        if (view !== null) {
          const inUse = this.idInUse(id, address, view);
          if (inUse !== null) throw inUse;
          const entry = view.find((member) => member.id === id);
          if (entry?.state === 'alive' && entry.address === address) return;
        }
        if (this.clock.nowMs() >= deadline) {
          fail(
            ErrorCode.JoinNotInGossip,
            `${id} is not alive in gossip on ${this.init.id} after ${seconds(JOIN_GOSSIP_WAIT_MS)} s: ` +
              "check that it holds the cluster's gossip key, and that UDP is open between it and the members",
          );
        }
        if (this.stopping) fail(ErrorCode.ConnectionClosed, `node ${this.init.id} is stopping`);
        await sleep(JOIN_GOSSIP_POLL_MS);
      }
    } finally {
      this.gossipWaiters--;
    }
  }

  /** Commits `address` for `id` (leader only); one proposal per id at a time. */
  private ensureAddress(id: NodeId, address: string): Promise<void> {
    const driver = this.requireMember();
    if (driver.config.addresses.get(id) === address) return Promise.resolve();
    const inFlight = this.addressProposals.get(id);
    if (inFlight !== undefined) return inFlight.then(() => this.ensureAddress(id, address));
    const proposal = this.proposeRetrying(
      () =>
        this.requireMember().proposeCommand(
          { op: 'setAddress', id, address },
          this.timeouts.proposalTimeoutMs,
        ),
      this.clock.nowMs() + this.timeouts.proposalTimeoutMs,
    )
      .then(() => undefined)
      .finally(() => this.addressProposals.delete(id));
    this.addressProposals.set(id, proposal);
    return proposal;
  }

  private proposeConfChange(change: ConfChange, deadlineMs: number): Promise<ProposalResult> {
    return this.proposeRetrying(
      () =>
        this.requireMember().proposeConfChange(
          change,
          Math.max(1, deadlineMs - this.clock.nowMs()),
        ),
      deadlineMs,
    );
  }

  /** Retries while an earlier change is still being applied (one change at a time). */
  private async proposeRetrying(
    propose: () => Promise<ProposalResult>,
    deadlineMs: number,
  ): Promise<ProposalResult> {
    for (;;) {
      try {
        return await propose();
      } catch (error) {
        if (isRetryableProposalError(error) && this.clock.nowMs() < deadlineMs) {
          await sleep(10);
          continue;
        }
        if (error instanceof RaftProposalError) throw proposalError(error);
        throw error;
      }
    }
  }

  // ---------------------------------------------------------------- leader forwarding

  private isMemberPeer(id: NodeId): boolean {
    return this.driver?.isKnownMember(id) === true;
  }

  /**
   * Runs `local` when this node leads; otherwise sends the request to the leader with
   * `remote` (never onward again from there: a forwarded request that reaches a node that
   * is no longer the leader is refused with RDB_NOT_LEADER, and retried from here with the
   * new leader), until the forward deadline.
   */
  private async onLeader<T>(
    local: () => Promise<T>,
    forwarded: boolean,
    remote: (link: ReconnectingLink, timeoutMs: number) => Promise<T>,
  ): Promise<T> {
    const deadline = this.clock.nowMs() + this.timeouts.forwardDeadlineMs;
    let lastError: unknown;
    for (;;) {
      const driver = this.requireMember();
      const remaining = deadline - this.clock.nowMs();
      if (driver.isLeader) {
        try {
          return await local();
        } catch (error) {
          if (forwarded || !isRdbnetError(error, ErrorCode.NotLeader) || remaining <= 0)
            throw error;
          lastError = error;
        }
      } else if (forwarded) {
        fail(
          ErrorCode.NotLeader,
          `${this.init.id} is not the leader (leader: ${driver.leader || 'unknown'})`,
        );
      } else {
        const leader = driver.leader;
        const address = leader === NONE ? undefined : this.addressOf(leader);
        if (address !== undefined && remaining > 0) {
          try {
            return await remote(this.links.link(address), Math.max(1, remaining));
          } catch (error) {
            if (!isRdbnetError(error) || !FORWARD_RETRY_CODES.has(error.code)) throw error;
            lastError = error;
          }
        }
      }
      if (this.clock.nowMs() >= deadline) {
        fail(
          ErrorCode.NoLeader,
          `no leader could be reached within ${this.timeouts.forwardDeadlineMs} ms${lastError ? ` (${(lastError as Error).message})` : ''}`,
          'an election may be under way, or a quorum of voters is down: see `rdbnet cluster status`',
        );
      }
      await sleep(50);
    }
  }

  // ---------------------------------------------------------------- bootstrap

  /**
   * `cluster join --seeds`: a node still waiting for a cluster looks for one through these
   * seeds as well, and the answer waits (bounded) until it is a member. A node already in a
   * cluster is refused: a node belongs to one cluster for the life of its data dir.
   */
  private async onJoinThrough(request: ClusterJoinRequest): Promise<ClusterJoinReply> {
    if (this.state === 'member') {
      fail(
        ErrorCode.ClusterExists,
        `node ${this.init.id} already belongs to cluster ${this.clusterId}`,
        'a node joins one cluster for the life of its data dir; start it on a fresh --data-dir with --join to move it',
      );
    }
    if (this.state === 'left')
      fail(ErrorCode.ClusterExists, `node ${this.init.id} has left its cluster`);
    const seeds = [...new Set(request.seeds)].filter((seed) => seed !== this.address);
    if (seeds.length === 0) fail(ErrorCode.Usage, 'no seed addresses to join through');
    for (const seed of seeds) {
      if (this.extraSeeds.size >= DISCOVERY_TARGETS_MAX) break;
      this.extraSeeds.add(seed);
    }
    this.init.onSeeds?.(seeds);
    if (this.discoveryTimer === null && !this.stopping) {
      this.discoveryTimer = setInterval(() => this.discoveryTick(), DISCOVERY_INTERVAL_MS);
    }
    this.discoveryTick();
    const waitMs = Math.min(request.waitMs || JOIN_WAIT_DEFAULT_MS, JOIN_WAIT_MAX_MS);
    const deadline = this.clock.nowMs() + waitMs;
    // A field, not a local: discovery changes it while we wait.
    while ((this.state as ClusterState) !== 'member') {
      if (this.stopping) fail(ErrorCode.ConnectionClosed, `node ${this.init.id} is stopping`);
      if (this.clock.nowMs() >= deadline) {
        fail(
          ErrorCode.RequestTimeout,
          `node ${this.init.id} is not a member after ${waitMs} ms (still ${this.state})`,
          'check that the seeds are members of a running cluster and reachable from the node',
        );
      }
      await new Promise((resolve) => setTimeout(resolve, JOIN_POLL_MS));
    }
    // Membership is decided before the configuration that names us is applied here: wait
    // (within the same deadline) until this node's own view lists it.
    let status = await this.onStatus({ localOnly: true });
    while (!status.members.some((member) => member.id === this.init.id)) {
      if (this.clock.nowMs() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, JOIN_POLL_MS));
      status = await this.onStatus({ localOnly: true });
    }
    return { clusterId: status.clusterId, leader: status.leader, members: status.members };
  }

  private refuseIfInCluster(): void {
    const { id } = this.init;
    switch (this.state) {
      case 'member':
        fail(
          ErrorCode.ClusterExists,
          `node ${id} already belongs to cluster ${this.clusterId}: a cluster is bootstrapped once`,
          'add nodes with `rdbnet node start --join <member address>`',
        );
        break;
      case 'joining':
        fail(ErrorCode.ClusterExists, `node ${id} found an existing cluster and is joining it`);
        break;
      case 'left':
        fail(ErrorCode.NotMember, `node ${id} has left its cluster`);
        break;
      default:
        break;
    }
    if (this.bootstrapping || this.adopting) {
      fail(ErrorCode.ClusterExists, `a bootstrap is already under way on node ${id}`);
    }
    if (this.hasCluster() || this.storage.hardStateNow().term !== 0) {
      fail(
        ErrorCode.ClusterExists,
        `data dir ${this.init.dataDir} already holds a cluster's Raft state`,
      );
    }
  }

  private async onBootstrap(request: ClusterBootstrapRequest): Promise<ClusterBootstrapReply> {
    const expect = request.expect;
    if (!Number.isInteger(expect) || expect < 1 || expect > BOOTSTRAP_VOTERS_MAX) {
      fail(ErrorCode.Usage, `--expect must be 1..${BOOTSTRAP_VOTERS_MAX}, got ${expect}`);
    }
    this.refuseIfInCluster();
    const waitMs =
      request.waitMs > 0
        ? Math.min(request.waitMs, BOOTSTRAP_WAIT_MAX_MS)
        : BOOTSTRAP_WAIT_DEFAULT_MS;
    return this.bootstrap(expect, waitMs, () => true);
  }

  /**
   * Waits until `expect` nodes without a cluster know each other (this one included), makes
   * the founding configuration with this node and the expect - 1 lowest other ids as voters,
   * persists it here, hands it to the others, and starts the first election.
   */
  private async bootstrap(
    expect: number,
    waitMs: number,
    eligible: (peer: KnownPeer) => boolean,
  ): Promise<ClusterBootstrapReply> {
    this.bootstrapping = true;
    let voters: PeerAddress[];
    let clusterId: string;
    let data: Uint8Array;
    try {
      const deadline = this.clock.nowMs() + waitMs;
      let candidates: KnownPeer[];
      for (;;) {
        if (expect > 1) await this.discoveryRound();
        const existing = this.freshPeers().find((peer) => peer.clusterId !== '');
        if (existing !== undefined) {
          fail(
            ErrorCode.ClusterExists,
            `node ${existing.id} at ${existing.address} already belongs to cluster ${existing.clusterId}`,
            'that cluster is bootstrapped already: start new nodes with --join pointing at one of its members',
          );
        }
        const found = this.freshPeers()
          .filter((peer) => peer.clusterId === '' && eligible(peer))
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        // Founding voters are gossip members too, like every node that joins later: one this
        // node's gossip does not have alive (another gossip key, UDP blocked) is left out.
        const view = this.gossipView();
        candidates = found.filter(
          (peer) =>
            view?.some(
              (member) =>
                member.id === peer.id &&
                member.state === 'alive' &&
                member.address === peer.address,
            ) === true,
        );
        if (candidates.length + 1 >= expect) break;
        if (this.clock.nowMs() >= deadline) {
          const known = [this.init.id, ...candidates.map((peer) => peer.id)].join(', ');
          const outside = found.filter((peer) => !candidates.includes(peer)).map((p) => p.id);
          fail(
            ErrorCode.RequestTimeout,
            `only ${candidates.length + 1} of ${expect} nodes found within ${waitMs} ms (${known})` +
              (outside.length > 0
                ? `; not alive in gossip here: ${outside.join(', ')} (check their gossip key)`
                : ''),
            'start the missing nodes with --join pointing at this one, or check their seeds',
          );
        }
        await sleep(DISCOVERY_INTERVAL_MS);
        if (this.stopping) fail(ErrorCode.ConnectionClosed, 'node is stopping');
      }
      if (this.state !== 'pending') this.refuseIfInCluster();
      voters = [
        { id: this.init.id, address: this.address },
        ...candidates.slice(0, expect - 1).map((peer) => ({ id: peer.id, address: peer.address })),
      ];
      clusterId = randomUUID();
      data = ClusterConfig.founding(clusterId, voters).encode();
      await this.adoptFounding(
        voters.map((voter) => voter.id),
        data,
      );
    } finally {
      this.bootstrapping = false;
    }
    this.init.log.info('bootstrapped the cluster', {
      cluster: clusterId,
      voters: voters.map((voter) => voter.id),
    });
    const others = voters.filter((voter) => voter.id !== this.init.id);
    const request: BootstrapCommitRequest = { clusterId, voters, config: data };
    const sent = await Promise.all(
      others.map((voter) =>
        this.sendFounding(voter, request, this.clock.nowMs() + JOIN_RETRY_MS * 10).then(
          () => undefined,
          (error: unknown) => ({ voter, error: error as Error }),
        ),
      ),
    );
    for (const failure of sent) {
      if (failure === undefined) continue;
      this.init.log.warn('founding configuration not delivered yet', {
        node: failure.voter.id,
        reason: failure.error.message,
      });
      if (!isRdbnetError(failure.error, ErrorCode.ClusterExists)) {
        // Keep offering it in the background; the voter may still be starting.
        this.sendFounding(
          failure.voter,
          request,
          this.clock.nowMs() + FOUNDING_RETRY_DEADLINE_MS,
        ).catch(() => {});
      }
    }
    const driver = this.requireMember();
    driver.campaign();
    await this.waitFor(() => this.driver?.leader !== NONE, BOOTSTRAP_LEADER_WAIT_MS);
    return {
      clusterId,
      leader: this.driver?.leader ?? '',
      members: this.memberList(this.requireMember()),
    };
  }

  private async sendFounding(
    voter: PeerAddress,
    request: BootstrapCommitRequest,
    deadlineMs: number,
  ): Promise<void> {
    for (;;) {
      try {
        await call(
          this.links.link(voter.address),
          { bootstrapCommitRequest: request },
          'bootstrapCommitReply',
          PEER_REQUEST_TIMEOUT_MS * 2,
        );
        return;
      } catch (error) {
        if (isRdbnetError(error, ErrorCode.ClusterExists) || this.clock.nowMs() >= deadlineMs) {
          throw error;
        }
        if (this.stopping) return;
        await sleep(JOIN_RETRY_MS);
      }
    }
  }

  /** Persists the bootstrap snapshot (index 1, term 1) and starts Raft on it. */
  private async adoptFounding(voters: NodeId[], data: Uint8Array): Promise<void> {
    if (this.hasCluster() || this.storage.lastIndex() > 0) {
      fail(ErrorCode.ClusterExists, `node ${this.init.id} already holds a cluster's Raft state`);
    }
    this.adopting = true;
    try {
      this.storage.applySnapshot(bootstrapSnapshot(voters, [], data));
      this.storage.setHardState({ term: 1, vote: NONE, commit: 1 });
      await this.storage.sync();
      this.startDriver();
    } finally {
      this.adopting = false;
    }
  }

  private async onBootstrapCommit(
    request: BootstrapCommitRequest,
    connection: Connection,
  ): Promise<void> {
    const peer = nodePeer(connection);
    const self = this.init.id;
    if (this.state === 'member' && this.clusterId === request.clusterId) return; // a retry
    if (this.state !== 'pending') {
      fail(
        ErrorCode.ClusterExists,
        this.state === 'member'
          ? `node ${self} already belongs to cluster ${this.clusterId}`
          : `node ${self} is ${this.state === 'joining' ? 'joining an existing cluster' : 'not available'}`,
      );
    }
    if (this.bootstrapping || this.adopting) {
      fail(ErrorCode.ClusterExists, `node ${self} is bootstrapping a cluster itself`);
    }
    if (this.storage.hardStateNow().term !== 0) {
      fail(ErrorCode.ClusterExists, `node ${self} holds Raft state of another cluster`);
    }
    const voters = (request.voters ?? []).map((voter) => voter.id);
    if (!voters.includes(self) || !voters.includes(peer.id)) {
      fail(ErrorCode.Usage, `founding configuration from ${peer.id} does not list both of us`);
    }
    const config = ClusterConfig.fromSnapshot({
      metadata: { index: 1, term: 1, confState: { voters, learners: [] } },
      data: request.config,
    });
    if (config.clusterId !== request.clusterId) {
      fail(ErrorCode.MessageMalformed, 'founding configuration names another cluster id');
    }
    await this.adoptFounding(voters, request.config);
    this.init.log.info('adopted the founding configuration', {
      cluster: request.clusterId,
      founder: peer.id,
      voters,
    });
  }

  // ---------------------------------------------------------------- operator commands

  private memberList(driver: RaftDriver): ClusterMember[] {
    const status = driver.status();
    const self = this.init.id;
    return driver.config.members().map((member) => {
      const progress = status.progress[member.id];
      let role: string;
      if (!member.voter) role = 'learner';
      else if (member.id === status.lead) role = 'leader';
      else if (member.id === self && status.role !== 'follower') role = 'candidate';
      else role = status.lead !== NONE ? 'follower' : 'unknown';
      return {
        id: member.id,
        address: this.addressOf(member.id) ?? member.address,
        role,
        voter: member.voter,
        matchIndex: progress?.match ?? 0,
        lag: progress === undefined ? 0 : Math.max(0, status.lastIndex - progress.match),
        lastContactMs: this.lastContactMs(member.id),
        progress: progress?.state ?? '',
      };
    });
  }

  /** Milliseconds since a Raft batch from `id` arrived; 0 for this node, -1 when never. */
  private lastContactMs(id: NodeId): number {
    if (id === this.init.id) return 0;
    const heard = this.lastHeardMs.get(id);
    return heard === undefined ? -1 : Math.round(this.clock.nowMs() - heard);
  }

  private heardWithin(id: NodeId, ms: number): boolean {
    if (id === this.init.id) return true;
    const heard = this.lastHeardMs.get(id);
    return heard !== undefined && this.clock.nowMs() - heard <= ms;
  }

  private localStatus(): ClusterStatusReply {
    const driver = this.driver;
    const base = {
      clusterName: this.init.clusterName,
      id: this.init.id,
      state: this.state,
      confChangeTimings: [...this.confChangeTimings],
    };
    if (driver === null) {
      return {
        ...base,
        clusterId: this.joinedClusterId,
        leader: '',
        leaderAddress: '',
        term: 0,
        commitIndex: 0,
        appliedIndex: 0,
        lastIndex: 0,
        role: '',
        members: [],
        progressFrom: '',
        history: [],
        settings: {},
        knownPeers: [...this.peers.values()].map((peer) => ({
          id: peer.id,
          address: peer.address,
        })),
      };
    }
    const status = driver.status();
    const config = driver.config;
    return {
      ...base,
      clusterId: config.clusterId || this.joinedClusterId,
      leader: status.lead,
      leaderAddress: status.lead === NONE ? '' : (this.addressOf(status.lead) ?? ''),
      term: status.term,
      commitIndex: status.commit,
      appliedIndex: config.appliedIndex,
      lastIndex: status.lastIndex,
      role: status.role,
      members: this.memberList(driver),
      progressFrom: status.role === 'leader' ? this.init.id : '',
      history: [...config.history],
      settings: Object.fromEntries(config.settings),
      knownPeers: [],
    };
  }

  private async onStatus(request: ClusterStatusRequest): Promise<ClusterStatusReply> {
    const local = this.localStatus();
    const driver = this.driver;
    if (request.localOnly || driver === null || driver.isLeader || local.leader === NONE) {
      return local;
    }
    const address = this.addressOf(local.leader);
    if (address === undefined) return local;
    try {
      const remote = await call(
        this.links.link(address),
        { clusterStatusRequest: { localOnly: true } },
        'clusterStatusReply',
        PEER_REQUEST_TIMEOUT_MS,
      );
      if (remote.role !== 'leader') return local;
      const byId = new Map((remote.members ?? []).map((member) => [member.id, member]));
      for (const member of local.members) {
        const seen = byId.get(member.id);
        if (seen === undefined) continue;
        member.matchIndex = seen.matchIndex;
        member.lag = seen.lag;
        member.lastContactMs = seen.lastContactMs;
        member.progress = seen.progress;
      }
      local.progressFrom = remote.id;
    } catch {
      // The local view stands; progressFrom stays empty.
    }
    return local;
  }

  private async onTransfer(
    request: TransferLeaderRequest,
    connection: Connection,
  ): Promise<TransferLeaderReply> {
    // Roles are the admin API's table (an operator asks, a node only forwards); membership
    // is known here.
    const peer = connection.peer!;
    if (request.forwarded && !this.isMemberPeer(peer.id)) {
      fail(ErrorCode.Forbidden, `${peer.id} is not a member and may not forward requests`);
    }
    const driver = this.requireMember();
    const to = request.to;
    if (!driver.config.voters.has(to)) {
      fail(
        ErrorCode.NotMember,
        `'${to}' is not a voter of cluster ${driver.config.clusterId}`,
        `voters: ${[...driver.config.voters].sort().join(', ')}`,
      );
    }
    return this.onLeader(
      () => this.transferAsLeader(to),
      request.forwarded,
      (link, timeoutMs) =>
        call(
          link,
          { transferLeaderRequest: { to, forwarded: true } },
          'transferLeaderReply',
          timeoutMs,
        ),
    );
  }

  private async transferAsLeader(to: NodeId): Promise<TransferLeaderReply> {
    const driver = this.requireMember();
    if (driver.leader !== to) {
      driver.transferLeader(to);
      const moved = await this.waitFor(
        () => this.driver?.leader === to,
        this.timeouts.transferTimeoutMs,
      );
      if (!moved) {
        fail(
          ErrorCode.RequestTimeout,
          `leadership did not move to ${to} within ${this.timeouts.transferTimeoutMs} ms`,
          'the new leader must be a voter that is reachable and caught up',
        );
      }
    }
    return { leader: to, term: this.driver?.term ?? driver.term };
  }

  private async onRemoveMember(
    request: RemoveMemberRequest,
    connection: Connection,
  ): Promise<number> {
    const peer = nodePeer(connection);
    if (peer.authenticated && request.id !== peer.id) {
      fail(ErrorCode.Forbidden, `node ${peer.id} may only ask for its own removal`);
    }
    const driver = this.requireMember();
    // Asked again after a lost answer: already done.
    if (!driver.config.isMember(request.id) && driver.isLeader) return 0;
    if (!this.isMemberPeer(peer.id)) fail(ErrorCode.Forbidden, `${peer.id} is not a member`);
    if (!driver.isLeader) {
      fail(
        ErrorCode.NotLeader,
        `${this.init.id} is not the leader (leader: ${driver.leader || 'unknown'})`,
      );
    }
    return this.removeAsLeader(request.id, request.force);
  }

  private async removeAsLeader(id: NodeId, force: boolean): Promise<number> {
    const driver = this.requireMember();
    const config = driver.config;
    if (!config.isMember(id)) return 0;
    if (config.voters.has(id)) {
      const remaining = [...config.voters].filter((voter) => voter !== id);
      if (remaining.length === 0) {
        fail(ErrorCode.QuorumAtRisk, `${id} is the last voter: removing it would end the cluster`);
      }
      if (!force) {
        // Live: a Raft batch from it arrived within an election timeout (a follower answers
        // every heartbeat of the leader).
        const liveMs = driver.raftConfig.electionTicks * this.tickMs;
        const live = remaining.filter((voter) => this.heardWithin(voter, liveMs));
        const needed = quorum(remaining.length);
        if (live.length < needed) {
          fail(
            ErrorCode.QuorumAtRisk,
            `removing ${id} would leave ${remaining.length} voter(s) of which ${live.length} answer; a quorum needs ${needed}`,
            'bring the other voters back first, or pass --force to remove it anyway',
          );
        }
      }
    }
    const result = await this.proposeConfChange(
      { type: 'removeNode', nodeId: id },
      this.clock.nowMs() + this.timeouts.proposalTimeoutMs,
    );
    this.recordTiming('removeNode', id, result);
    return result.index;
  }

  private async onLeave(request: LeaveRequest): Promise<LeaveReply> {
    const driver = this.requireMember();
    const self = this.init.id;
    const force = request.force === true;
    if (driver.isLeader) await this.handOverBeforeLeaving(driver);
    await this.onLeader(
      () => this.removeAsLeader(self, force),
      false,
      (link, timeoutMs) =>
        call(
          link,
          { removeMemberRequest: { id: self, force } },
          'removeMemberReply',
          timeoutMs,
        ).then((reply) => reply.index),
    );
    const clusterId = this.clusterId;
    this.state = 'left';
    await writeFileAtomic(
      join(this.init.dataDir, LEFT_MARKER),
      `${JSON.stringify({ clusterId, id: self, leftAt: new Date().toISOString() })}\n`,
      0o600,
    );
    this.init.log.info('left the cluster; stopping', { cluster: clusterId });
    this.joinedClusterId = clusterId;
    // Raft keeps running until the node stops, so a leader that removed itself still sends
    // the commit of its removal to the others; 'left' refuses every new request.
    setTimeout(() => this.resolveLeft(), LEFT_EXIT_DELAY_MS);
    return { left: true, id: self };
  }

  /**
   * A leader that is asked to leave first hands leadership to the most caught-up voter that
   * answers, so the cluster does not wait an election timeout without a leader. When that
   * fails, it removes itself as leader (the core then steps down once the removal applied).
   */
  private async handOverBeforeLeaving(driver: RaftDriver): Promise<void> {
    const status = driver.status();
    const liveMs = driver.raftConfig.electionTicks * this.tickMs;
    const candidates = [...driver.config.voters]
      .filter((id) => id !== this.init.id && this.heardWithin(id, liveMs))
      .sort((a, b) => (status.progress[b]?.match ?? 0) - (status.progress[a]?.match ?? 0));
    const target = candidates[0];
    if (target === undefined) return;
    try {
      await this.transferAsLeader(target);
      this.init.log.info('handed leadership over before leaving', { leader: target });
    } catch (error) {
      this.init.log.info('leadership hand-over failed; removing this leader itself', {
        reason: (error as Error).message,
      });
    }
  }

  private async waitFor(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = this.clock.nowMs() + timeoutMs;
    while (!predicate()) {
      if (this.clock.nowMs() >= deadline || this.stopping) return false;
      await sleep(10);
    }
    return true;
  }
}

function nodePeer(connection: Connection): NonNullable<Connection['peer']> {
  const peer = connection.peer;
  if (peer === null || peer.role !== 'node') {
    fail(ErrorCode.Forbidden, 'this request is for nodes (node certificates) only');
  }
  return peer;
}

function validAddress(address: string | undefined): address is string {
  if (typeof address !== 'string' || address === '') return false;
  try {
    const parsed = parseHostPort(address);
    return parsed.port > 0;
  } catch {
    return false;
  }
}
