/**
 * Raft core configuration: one typed object, a comment on every field, every queue and
 * window bounded (ARCHITECTURE.md practices 4, 5, 7).
 *
 * The core counts time in ticks and never reads a clock: the node layer calls
 * `RawNode.tick()` every `tickMs` of its own choosing. DEFAULT_TICK_MS is what it should
 * choose unless it has a reason not to, and the defaults below are reasoned in that unit.
 */
import { ErrorCode, RdbnetError } from '../../errors.ts';
import type { Random } from '../../runtime/index.ts';

/** Recommended tick length for the node layer: 10 ticks = a 500 ms election timeout base. */
export const DEFAULT_TICK_MS = 50;

export interface RaftConfig {
  /**
   * Base election timeout in ticks. A follower (or candidate) that hears nothing from a
   * leader for a randomized timeout in [electionTicks, 2 * electionTicks) campaigns; a leader
   * with check-quorum steps down when it has not heard from a quorum within electionTicks;
   * a follower that heard from its leader within electionTicks ignores (pre-)votes (lease);
   * a leadership transfer is abandoned after electionTicks. Default 10 (500 ms at 50 ms
   * ticks): an order of magnitude above LAN round trips and GC pauses, yet failover stays
   * well under a second and a half.
   */
  electionTicks: number;
  /**
   * Ticks between leader heartbeats. Default 1 (50 ms): ten heartbeats per election
   * timeout, so a few lost heartbeats never start an election. Must be < electionTicks.
   */
  heartbeatTicks: number;
  /**
   * Run a pre-vote round (Raft thesis 9.6) before a real election: a node that cannot win
   * (partitioned, or with a stale log) never raises its term, so it cannot depose a healthy
   * leader when it rejoins. Default true.
   */
  preVote: boolean;
  /**
   * A leader steps down when it has not heard from a quorum of voters within electionTicks,
   * and followers honour a leader lease (ignore votes while their leader is live). Stops a
   * partitioned leader from accepting proposals forever and removed nodes from disrupting
   * the group. Default true.
   */
  checkQuorum: boolean;
  /**
   * Most entry bytes in one MsgApp (an entry larger than this is still sent, alone). Bounds
   * the size of a replication message; kept well below the transport's 16 MiB frame limit.
   * Default 1 MiB.
   */
  maxSizePerMsgBytes: number;
  /**
   * Flow control: most MsgApp messages in flight to one follower in the replicate state
   * before the leader waits for acknowledgements. Together with maxSizePerMsgBytes it bounds
   * unacknowledged bytes per follower. Default 256 (pipelines a fast LAN; 256 small
   * messages cost little memory, 256 full ones is the explicit worst case).
   */
  maxInflightMsgs: number;
  /**
   * Most payload bytes a leader accepts into its log that are not yet committed (then
   * applied); proposals beyond this are rejected (backpressure) instead of growing the log
   * while a quorum is slow or absent. Default 32 MiB.
   */
  maxUncommittedEntriesBytes: number;
  /**
   * Most bytes of committed entries handed to the application in one Ready, so catching up
   * on a long log is applied in bounded batches. Default 16 MiB.
   */
  maxCommittedSizePerReadyBytes: number;
  /**
   * Largest payload of a single proposal. Must not exceed maxSizePerMsgBytes or
   * maxUncommittedEntriesBytes, so every entry fits both. Default 1 MiB.
   */
  maxEntryBytes: number;
  /**
   * Applied entries since the latest snapshot after which `RawNode.compactionDue()` says the
   * application should take a snapshot and call `compact()`. Bounds log length (memory and
   * restart replay time). Default 10,000.
   */
  compactionThresholdEntries: number;
  /**
   * Entries kept before a new snapshot's index when compacting, so a follower that fell
   * slightly behind catches up from the log rather than by a full snapshot. Default 1,000.
   */
  compactionRetainEntries: number;
}

const MIB = 1024 * 1024;

export const DEFAULT_RAFT_CONFIG: Readonly<RaftConfig> = Object.freeze({
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  maxSizePerMsgBytes: MIB,
  maxInflightMsgs: 256,
  maxUncommittedEntriesBytes: 32 * MIB,
  maxCommittedSizePerReadyBytes: 16 * MIB,
  maxEntryBytes: MIB,
  compactionThresholdEntries: 10_000,
  compactionRetainEntries: 1_000,
});

/** Upper bounds that catch unit mistakes (milliseconds given where ticks were meant). */
const ELECTION_TICKS_MAX = 10_000;
const INFLIGHT_MSGS_MAX = 65_536;
const BYTES_MAX = 1024 * MIB;

function invalid(message: string): never {
  throw new RdbnetError(ErrorCode.ConfigInvalid, `raft config: ${message}`);
}

function integerIn(name: keyof RaftConfig, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    invalid(`${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

/** Merges `overrides` over the defaults and checks every field; throws RDB_CONFIG_INVALID. */
export function validateRaftConfig(overrides: Partial<RaftConfig> = {}): RaftConfig {
  const merged = { ...DEFAULT_RAFT_CONFIG, ...overrides };
  for (const key of Object.keys(overrides)) {
    if (!(key in DEFAULT_RAFT_CONFIG)) invalid(`unknown field ${key}`);
  }
  const config: RaftConfig = {
    electionTicks: integerIn('electionTicks', merged.electionTicks, 2, ELECTION_TICKS_MAX),
    heartbeatTicks: integerIn('heartbeatTicks', merged.heartbeatTicks, 1, ELECTION_TICKS_MAX),
    preVote: merged.preVote,
    checkQuorum: merged.checkQuorum,
    maxSizePerMsgBytes: integerIn('maxSizePerMsgBytes', merged.maxSizePerMsgBytes, 1, BYTES_MAX),
    maxInflightMsgs: integerIn('maxInflightMsgs', merged.maxInflightMsgs, 1, INFLIGHT_MSGS_MAX),
    maxUncommittedEntriesBytes: integerIn(
      'maxUncommittedEntriesBytes',
      merged.maxUncommittedEntriesBytes,
      1,
      BYTES_MAX,
    ),
    maxCommittedSizePerReadyBytes: integerIn(
      'maxCommittedSizePerReadyBytes',
      merged.maxCommittedSizePerReadyBytes,
      1,
      BYTES_MAX,
    ),
    maxEntryBytes: integerIn('maxEntryBytes', merged.maxEntryBytes, 1, BYTES_MAX),
    compactionThresholdEntries: integerIn(
      'compactionThresholdEntries',
      merged.compactionThresholdEntries,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    compactionRetainEntries: integerIn(
      'compactionRetainEntries',
      merged.compactionRetainEntries,
      0,
      Number.MAX_SAFE_INTEGER,
    ),
  };
  if (typeof config.preVote !== 'boolean') invalid('preVote must be a boolean');
  if (typeof config.checkQuorum !== 'boolean') invalid('checkQuorum must be a boolean');
  if (config.heartbeatTicks >= config.electionTicks) {
    invalid(
      `heartbeatTicks (${config.heartbeatTicks}) must be less than electionTicks (${config.electionTicks})`,
    );
  }
  if (config.maxEntryBytes > config.maxSizePerMsgBytes) {
    invalid('maxEntryBytes must not exceed maxSizePerMsgBytes');
  }
  if (config.maxEntryBytes > config.maxUncommittedEntriesBytes) {
    invalid('maxEntryBytes must not exceed maxUncommittedEntriesBytes');
  }
  return config;
}

/** A fresh election timeout, uniform in [electionTicks, 2 * electionTicks). */
export function randomizedElectionTicks(config: RaftConfig, random: Random): number {
  return config.electionTicks + random.int(config.electionTicks);
}
