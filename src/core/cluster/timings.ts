/**
 * A node's Raft timings in milliseconds, with named presets (`lan` is the base; `wan` and
 * `local` override it, as the SWIM presets do). The Raft core counts time in ticks
 * (membership/raft/config.ts); `raftCoreConfig` turns these into its electionTicks and
 * heartbeatTicks, and the cluster service runs the core every `tickMs`.
 */
import {
  DEFAULT_RAFT_CONFIG,
  DEFAULT_TICK_MS,
  type RaftConfig,
} from '../membership/raft/config.ts';

export interface RaftTimings {
  /** Time between two ticks of the Raft core: the resolution of every Raft timer.
   * lan 50 ms. */
  tickMs: number;
  /**
   * Base election timeout, a whole number of ticks. A follower that hears nothing from a
   * leader for a random time in [electionTimeoutMs, 2 × electionTimeoutMs) campaigns; with
   * check-quorum a leader that has not heard from a quorum within it steps down; a leadership
   * transfer not done within it is abandoned. About 10 round trips or more, so that a few
   * lost heartbeats never start an election. lan 500 ms.
   */
  electionTimeoutMs: number;
  /** Time between two leader heartbeats, a whole number of ticks, shorter than the election
   * timeout (about a round trip: ten heartbeats per election timeout). lan 50 ms. */
  heartbeatIntervalMs: number;
  /** Run a pre-vote round before an election, so a node that cannot win (partitioned, or
   * with a stale log) never raises the term and deposes a healthy leader. lan true. */
  preVote: boolean;
  /** A leader that has not heard from a quorum within the election timeout steps down, and
   * followers honour a leader lease. lan true. */
  checkQuorum: boolean;
  /** Time a proposal (a membership or address change) has to be committed and applied on the
   * leader before it fails with RDB_REQUEST_TIMEOUT. lan 5000 ms. */
  proposalTimeoutMs: number;
  /** Time a request forwarded to the leader (join, remove, transfer, leave) may take,
   * retries on a new leader included, before RDB_NO_LEADER. At least proposalTimeoutMs,
   * since the leader answers after its proposal. lan 8000 ms. */
  forwardDeadlineMs: number;
  /** Time `cluster transfer-leader` waits for leadership to move. At least the election
   * timeout, after which the core gives a transfer up. lan 3000 ms. */
  transferTimeoutMs: number;
}

/** The cluster service's deadlines: the part of RaftTimings the core does not see. */
export type ClusterTimeouts = Pick<
  RaftTimings,
  'proposalTimeoutMs' | 'forwardDeadlineMs' | 'transferTimeoutMs'
>;

/** The base: a LAN with sub-millisecond RTTs; the core's own defaults. */
export const RAFT_TIMINGS_LAN: Readonly<RaftTimings> = Object.freeze({
  tickMs: DEFAULT_TICK_MS,
  electionTimeoutMs: DEFAULT_RAFT_CONFIG.electionTicks * DEFAULT_TICK_MS,
  heartbeatIntervalMs: DEFAULT_RAFT_CONFIG.heartbeatTicks * DEFAULT_TICK_MS,
  preVote: DEFAULT_RAFT_CONFIG.preVote,
  checkQuorum: DEFAULT_RAFT_CONFIG.checkQuorum,
  proposalTimeoutMs: 5000,
  forwardDeadlineMs: 8000,
  transferTimeoutMs: 3000,
});

/**
 * Between regions, RTTs up to ~300 ms: a heartbeat per round trip, an election timeout of ten
 * (3-6 s randomized), 100 ms ticks (finer ones buy nothing at these RTTs). Proposals and
 * forwarded requests get room for an election plus a few round trips.
 */
export const RAFT_TIMINGS_WAN: Readonly<RaftTimings> = Object.freeze({
  ...RAFT_TIMINGS_LAN,
  tickMs: 100,
  electionTimeoutMs: 3000,
  heartbeatIntervalMs: 300,
  proposalTimeoutMs: 15_000,
  forwardDeadlineMs: 20_000,
  transferTimeoutMs: 6000,
});

/** One machine or loopback (development, tests): a leader is replaced in 250-500 ms. */
export const RAFT_TIMINGS_LOCAL: Readonly<RaftTimings> = Object.freeze({
  ...RAFT_TIMINGS_LAN,
  tickMs: 25,
  electionTimeoutMs: 250,
  heartbeatIntervalMs: 25,
});

export const RAFT_TIMINGS_PRESETS = Object.freeze({
  lan: RAFT_TIMINGS_LAN,
  wan: RAFT_TIMINGS_WAN,
  local: RAFT_TIMINGS_LOCAL,
});

/** Longest tick: a coarser one makes every Raft timer too imprecise to reason about. */
export const RAFT_TICK_MS_MAX = 1000;
/** Upper bound of every other Raft duration: catches seconds given where ms were meant. */
export const RAFT_DURATION_MS_MAX = 600_000;
/** The core's own bound on electionTicks (membership/raft/config.ts). */
const ELECTION_TICKS_MAX = 10_000;

/** The tick-based fields of the Raft core's config. */
export function raftCoreConfig(timings: RaftTimings): Partial<RaftConfig> {
  return {
    electionTicks: timings.electionTimeoutMs / timings.tickMs,
    heartbeatTicks: timings.heartbeatIntervalMs / timings.tickMs,
    preVote: timings.preVote,
    checkQuorum: timings.checkQuorum,
  };
}

/** The timings a running core uses, back in milliseconds (for `node status`). */
export function raftTimingsOf(
  tickMs: number,
  core: RaftConfig,
  timeouts: ClusterTimeouts,
): RaftTimings {
  return {
    tickMs,
    electionTimeoutMs: core.electionTicks * tickMs,
    heartbeatIntervalMs: core.heartbeatTicks * tickMs,
    preVote: core.preVote,
    checkQuorum: core.checkQuorum,
    ...timeouts,
  };
}

export interface RaftTimingsProblem {
  /** The field to blame (for a relation between two, the first named). */
  field: keyof RaftTimings;
  /** The other field of a relation, if any. */
  other?: keyof RaftTimings;
  message: string;
}

/**
 * Relations between the timings (each field's own range is checked where it is parsed):
 * whole ticks, heartbeat shorter than the election timeout, and deadlines that leave the core
 * time to finish. Empty when they work together. `prefix` goes before field names in messages.
 */
export function raftTimingsProblems(timings: RaftTimings, prefix = ''): RaftTimingsProblem[] {
  const problems: RaftTimingsProblem[] = [];
  const named = (key: keyof RaftTimings) => `${prefix}${key} (${timings[key]})`;
  const { tickMs, electionTimeoutMs, heartbeatIntervalMs } = timings;
  const electionTicks = electionTimeoutMs / tickMs;
  if (!Number.isInteger(electionTicks)) {
    problems.push({
      field: 'electionTimeoutMs',
      other: 'tickMs',
      message: `${named('electionTimeoutMs')} is not a whole number of ${named('tickMs')} ticks`,
    });
  } else if (electionTicks < 2 || electionTicks > ELECTION_TICKS_MAX) {
    problems.push({
      field: 'electionTimeoutMs',
      other: 'tickMs',
      message: `${named('electionTimeoutMs')} must be 2 to ${ELECTION_TICKS_MAX} ticks of ${named('tickMs')}`,
    });
  }
  if (!Number.isInteger(heartbeatIntervalMs / tickMs)) {
    problems.push({
      field: 'heartbeatIntervalMs',
      other: 'tickMs',
      message: `${named('heartbeatIntervalMs')} is not a whole number of ${named('tickMs')} ticks`,
    });
  } else if (heartbeatIntervalMs >= electionTimeoutMs) {
    problems.push({
      field: 'heartbeatIntervalMs',
      other: 'electionTimeoutMs',
      message: `${named('heartbeatIntervalMs')} must be less than ${named('electionTimeoutMs')}`,
    });
  }
  if (timings.transferTimeoutMs < electionTimeoutMs) {
    problems.push({
      field: 'transferTimeoutMs',
      other: 'electionTimeoutMs',
      message: `${named('transferTimeoutMs')} must be at least ${named('electionTimeoutMs')}`,
    });
  }
  if (timings.forwardDeadlineMs < timings.proposalTimeoutMs) {
    problems.push({
      field: 'forwardDeadlineMs',
      other: 'proposalTimeoutMs',
      message: `${named('forwardDeadlineMs')} must be at least ${named('proposalTimeoutMs')}`,
    });
  }
  return problems;
}
