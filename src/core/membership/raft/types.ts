/**
 * Raft data types, shaped after etcd-io/raft's raftpb so a protobuf codec can map them one to
 * one later. Everything here is plain data: the state machine in raft.ts reads and produces it.
 */
import { ErrorCode, RdbnetError } from '../../errors.ts';

/**
 * A node's Raft id. Strings, like the rest of rdbnet's node ids. An id must never be reused
 * for a node that lost its data: the node layer should add an incarnation suffix if it
 * re-adds a wiped node under the same name.
 */
export type NodeId = string;

/** "No node": no vote cast, no known leader. */
export const NONE: NodeId = '';

export type EntryType = 'normal' | 'confChange';

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque to Raft for `normal`; an encoded ConfChange for `confChange`. */
  data: Uint8Array;
}

/** What must be durable before any message from the same Ready leaves the node. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export const EMPTY_HARD_STATE: Readonly<HardState> = Object.freeze({
  term: 0,
  vote: NONE,
  commit: 0,
});

/** The membership in effect; both lists sorted so equal configurations compare equal. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMetadata {
  /** Last log index the snapshot covers. */
  index: number;
  /** Term of the entry at `index`. */
  term: number;
  /** Membership as of `index`. */
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** The application's state machine as of `metadata.index`; opaque to Raft. */
  data: Uint8Array;
}

/**
 * Single-server membership changes. `promoteLearner` turns a learner (that has caught up)
 * into a voter; demoting a voter is not offered: remove it and add it back as a learner.
 */
export type ConfChangeType = 'addVoter' | 'addLearner' | 'promoteLearner' | 'removeNode';

export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
}

export type RaftRole = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/**
 * Messages between Raft nodes (the etcd-io/raft names, so traces read the same). Local
 * inputs (ticks, campaign, proposals on this node, snapshot and unreachable reports) are
 * RawNode methods, not messages, so a peer can never inject them.
 */
export type MessageType =
  | 'MsgProp'
  | 'MsgApp'
  | 'MsgAppResp'
  | 'MsgVote'
  | 'MsgVoteResp'
  | 'MsgPreVote'
  | 'MsgPreVoteResp'
  | 'MsgSnap'
  | 'MsgHeartbeat'
  | 'MsgHeartbeatResp'
  | 'MsgTransferLeader'
  | 'MsgTimeoutNow';

export const MESSAGE_TYPES: readonly MessageType[] = [
  'MsgProp',
  'MsgApp',
  'MsgAppResp',
  'MsgVote',
  'MsgVoteResp',
  'MsgPreVote',
  'MsgPreVoteResp',
  'MsgSnap',
  'MsgHeartbeat',
  'MsgHeartbeatResp',
  'MsgTransferLeader',
  'MsgTimeoutNow',
];

/**
 * One flat shape for every type (as raftpb.Message), so the wire codec stays trivial; fields a
 * type does not use are zero. Field meaning per type:
 * - MsgApp: `index`/`logTerm` identify the entry before `entries`; `commit` is the leader's.
 * - MsgAppResp: `index` is the follower's last matching index, or on `reject` the rejected
 *   `index` with `rejectHint`/`logTerm` pointing at the follower's best guess of a match.
 * - MsgVote/MsgPreVote: `index`/`logTerm` describe the candidate's last entry; `term` is the
 *   term campaigned for (one ahead of the sender's own term for a pre-vote).
 * - MsgHeartbeat: `commit` is min(follower's match, leader commit).
 * - MsgTransferLeader: `transferee` is the node that should become leader.
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  /** 0 only for MsgProp, which is forwarded without a term. */
  term: number;
  logTerm: number;
  index: number;
  commit: number;
  entries: Entry[];
  reject: boolean;
  rejectHint: number;
  /** A vote requested because of a leadership transfer: bypasses the leader lease. */
  transfer: boolean;
  transferee: NodeId;
  snapshot?: Snapshot;
}

/** Builds a message with zero values for every field not given. */
export function makeMessage(
  fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>,
): Message {
  return {
    term: 0,
    logTerm: 0,
    index: 0,
    commit: 0,
    entries: [],
    reject: false,
    rejectHint: 0,
    transfer: false,
    transferee: NONE,
    ...fields,
  };
}

/** Volatile state, reported when it changes; never persisted. */
export interface SoftState {
  lead: NodeId;
  role: RaftRole;
}

/**
 * Everything the application must do after one round of inputs, in this order:
 * 1. persist `snapshot`, `entries` and `hardState` (durably when `mustSync`);
 * 2. only then send `messages` — acks and votes in them promise that state is durable;
 * 3. restore the state machine from `snapshot`, apply `committedEntries` in order;
 * 4. call `advance()`.
 */
export interface Ready {
  softState: SoftState | undefined;
  hardState: HardState | undefined;
  /** Entries to append to stable storage; they may replace a conflicting suffix. */
  entries: Entry[];
  snapshot: Snapshot | undefined;
  /** Committed entries to apply to the state machine, bounded in bytes by the config. */
  committedEntries: Entry[];
  messages: Message[];
  /** False when only the commit index changed: the write may skip fsync. */
  mustSync: boolean;
}

/** Fixed per-entry cost counted in message and batch sizes (index, term, type, framing). */
export const ENTRY_OVERHEAD_BYTES = 24;

export function entryBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

export function payloadBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const entry of entries) total += entry.data.byteLength;
  return total;
}

const CONF_CHANGE_TYPES: readonly ConfChangeType[] = [
  'addVoter',
  'addLearner',
  'promoteLearner',
  'removeNode',
];

/** JSON keeps conf-change entries readable in logs and dumps; they are rare and tiny. */
export function encodeConfChange(change: ConfChange): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ type: change.type, nodeId: change.nodeId }));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(data));
  } catch (cause) {
    throw new RdbnetError(ErrorCode.MessageMalformed, 'conf change entry is not JSON', { cause });
  }
  const candidate = parsed as { type?: unknown; nodeId?: unknown } | null;
  if (
    candidate === null ||
    typeof candidate !== 'object' ||
    !CONF_CHANGE_TYPES.includes(candidate.type as ConfChangeType) ||
    typeof candidate.nodeId !== 'string' ||
    candidate.nodeId === NONE
  ) {
    throw new RdbnetError(ErrorCode.MessageMalformed, 'conf change entry is malformed');
  }
  return { type: candidate.type as ConfChangeType, nodeId: candidate.nodeId };
}

export function describeConfChange(change: ConfChange): string {
  return `${change.type} ${change.nodeId}`;
}
