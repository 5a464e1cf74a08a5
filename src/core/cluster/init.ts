/**
 * What a node hands its cluster service (ClusterServiceInit), the states the service moves
 * through, gossip's view of the members as the service reads it, and the cluster tunables
 * an operator may change — each with its default and its bounds, which the node config
 * (config/node-config.ts) uses too, so the two can never disagree.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { RaftConfig } from '../membership/raft/config.ts';
import type { NodeId } from '../membership/raft/types.ts';
import type { LocalEndpoint } from '../protocol/handshake.ts';
import type { PeerTransport } from '../rpc/peer.ts';
import type { Clock, Counters, Logger, Random } from '../runtime/index.ts';
import type { TlsMaterial } from '../security/tls.ts';
import type { ConnectionOptions } from '../transport/options.ts';
import type { LeftMarkerStore } from './left-marker.ts';
import type { ClusterTimeouts } from './timings.ts';

/**
 * `pending`: started with --join, no cluster yet (exchanging ids and addresses with the
 * seeds); `joining`: found an existing cluster, asking to be added; `member`: Raft running;
 * `left`: removed at its own request (the node then stops).
 */
export type ClusterState = 'pending' | 'joining' | 'member' | 'left';

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

/** The cluster service's knobs an operator may need to turn (node config fields of the same
 * names). The defaults are CLUSTER_TUNABLES_DEFAULT. */
export interface ClusterTunables {
  /** How often a node without a cluster exchanges ids and addresses with its seeds and the
   * peers it heard of; also how often a bootstrap waiting for its nodes looks again. */
  discoveryIntervalMs: number;
  /** Deadline of one node-to-node request: a peer exchange, a Raft batch, a status hop to the
   * leader, a vouch (the founding configuration gets twice this). */
  peerRequestTimeoutMs: number;
  /** Between two join attempts of a joining node, and between two offers of the founding
   * configuration to a founding voter. */
  joinRetryMs: number;
  /** How long an automatic bootstrap (--bootstrap-expect), or a `cluster bootstrap` request
   * that names no wait, waits for its nodes to know each other. */
  bootstrapWaitMs: number;
  /** The leader adds a node only once its own gossip has it alive at the address it asks to
   * join with; it waits this long for that (the joiner's gossip join is under way), then
   * refuses the join with RDB_JOIN_NOT_IN_GOSSIP (the joiner retries). */
  joinGossipWaitMs: number;
  /** A learner is caught up, and promoted to voter, when its match index is within this many
   * entries of the leader's last index. */
  promoteLagMaxEntries: number;
  /** How often the leader looks for voters gossip reports dead (see DeadVoters), and every
   * member notes which voters gossip does not list. */
  deadVoterCheckIntervalMs: number;
}

export const CLUSTER_TUNABLES_DEFAULT: Readonly<ClusterTunables> = Object.freeze({
  discoveryIntervalMs: 250,
  peerRequestTimeoutMs: 1000,
  joinRetryMs: 500,
  bootstrapWaitMs: 30_000,
  joinGossipWaitMs: 5000,
  promoteLagMaxEntries: 10,
  deadVoterCheckIntervalMs: 1000,
});

/** Longest wait `cluster bootstrap --wait` may ask for (and bootstrapWaitMs may be). */
export const BOOTSTRAP_WAIT_MAX_MS = 300_000;

/** Inclusive integer bounds of every tunable: below the minimum a loop would spin or a
 * request could never answer; above the maximum a mistake would look like a hang. */
export const CLUSTER_TUNABLE_BOUNDS: Readonly<
  Record<keyof ClusterTunables, { min: number; max: number }>
> = Object.freeze({
  discoveryIntervalMs: { min: 10, max: 60_000 },
  peerRequestTimeoutMs: { min: 10, max: 60_000 },
  joinRetryMs: { min: 10, max: 60_000 },
  bootstrapWaitMs: { min: 1, max: BOOTSTRAP_WAIT_MAX_MS },
  joinGossipWaitMs: { min: 1, max: 300_000 },
  promoteLagMaxEntries: { min: 0, max: 1_000_000 },
  deadVoterCheckIntervalMs: { min: 10, max: 60_000 },
});

/** The given tunables over the defaults; RDB_CONFIG_INVALID for one out of its bounds. */
export function resolveClusterTunables(given: Partial<ClusterTunables> = {}): ClusterTunables {
  const out = { ...CLUSTER_TUNABLES_DEFAULT };
  for (const key of Object.keys(CLUSTER_TUNABLE_BOUNDS) as (keyof ClusterTunables)[]) {
    const value = given[key];
    if (value === undefined) continue;
    const { min, max } = CLUSTER_TUNABLE_BOUNDS[key];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `cluster ${key} must be an integer in ${min}..${max}, got ${value}`,
      );
    }
    out[key] = value;
  }
  return out;
}

export interface ClusterServiceInit {
  id: NodeId;
  /** Called when this node learns of a new Raft leader ('' while none is known): the
   * library's leader events. */
  onLeaderChange?(leader: string, term: number): void;
  dataDir: string;
  /** The certificates' cluster name (the handshake's cluster id). */
  clusterName: string;
  /** --join seed addresses; undefined when not given (a zero-config node bootstraps itself). */
  seeds: readonly string[] | undefined;
  /** --bootstrap-expect: bootstrap automatically once this many nodes know each other. */
  bootstrapExpect: number | undefined;
  /**
   * --cluster-id: the only cluster this node may join (it then never bootstraps one). Absent:
   * any one cluster its candidates belong to — and none while they belong to two or more.
   */
  clusterId?: string | undefined;
  local: LocalEndpoint;
  tls(): TlsMaterial | null;
  connection: ConnectionOptions;
  log: Logger;
  counters: Counters;
  raft?: Partial<RaftConfig>;
  tickMs?: number;
  /** Proposal, forwarding and transfer deadlines; absent ones are the LAN preset's. */
  timeouts?: Partial<ClusterTimeouts>;
  /** Discovery, join, bootstrap, promotion and dead-voter knobs; absent ones are
   * CLUSTER_TUNABLES_DEFAULT's. */
  tunables?: Partial<ClusterTunables>;
  /**
   * Time, and through timersOf every timer the service sets (Raft ticks, discovery and join
   * loops, chores, waits). Default systemClock; the simulator passes its EventQueue.
   */
  clock?: Clock;
  /** Raft's election randomness and new cluster ids. Default systemRandom (and randomUUID). */
  random?: Random;
  /** Node-to-node requests. Default PeerLinks over mTLS from `local`, `tls`, `connection`. */
  transport?: PeerTransport;
  /** The left marker. Default `<dataDir>/left.json`. */
  leftMarker?: LeftMarkerStore;
  /**
   * A voter gossip reports `dead` (or does not list) continuously for longer than this is
   * removed by the leader when quorum stays safe (see DeadVoters). Undefined or ≤ 0: never.
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
  /**
   * Gossip should join through these addresses (a push-pull with each; see GossipRejoin);
   * resolves once that join has ended, whatever came of it. Absent: never asked.
   */
  joinGossip?: (addresses: readonly string[]) => Promise<void>;
  /**
   * The resilience the node puts around what it sends its peers (the node's PeerResilience,
   * shared with gossip): forwards to the leader, the status hop, joins and the links' upkeep
   * go through its breaker, retry budget and limits; Raft batches and discovery exchanges,
   * which keep their own schedules, are only measured. Absent: requests go straight out.
   */
  peerGuard?: PeerGuard;
}

/**
 * What the cluster service needs of src/core/lb's PeerResilience (which is one), so this layer
 * does not depend on the balancer's.
 */
export interface PeerGuard {
  /** Sends through the peer's rate limit, concurrency limit and circuit breaker (a refusal is
   * RDB_RATE_LIMITED, RDB_INFLIGHT_LIMIT or RDB_CIRCUIT_OPEN), retrying what may be retried
   * within the deadline, the retry budget and `options.attemptsMax`. */
  call<T>(
    address: string,
    work: (remainingMs: number | undefined) => Promise<T>,
    deadlineMs?: number,
    options?: { attemptsMax?: number },
  ): Promise<T>;
  /** Sends whatever the guards say, measured (latency, in flight, errors) and counted. */
  observe<T>(address: string, work: () => Promise<T>): Promise<T>;
  /** False while the peer's breaker is open or it is ejected. */
  available(address: string): boolean;
  /** One of `addresses` by the balancer (p2c over latency, in flight and errors), leaving out
   * unavailable ones; null when none is left. */
  pick(addresses: readonly string[]): string | null;
}
