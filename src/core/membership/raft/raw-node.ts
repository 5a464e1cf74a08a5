/**
 * RawNode: the application-facing wrapper around the Raft state machine, shaped like
 * etcd-io/raft's rawnode.go. Inputs: tick(), step(), propose…(), campaign(),
 * transferLeader(). Output: ready(), whose contract is documented on `Ready` in types.ts;
 * then advance().
 *
 * Restart: a RawNode built over existing storage starts from the latest snapshot's
 * membership with applied = snapshot index, and hands every committed entry after it out
 * again, so the application must rebuild its state machine from that snapshot. Membership
 * changes are then re-applied in order, which keeps the configuration exact without a
 * separately persisted "applied" index.
 */
import { assert, ErrorCode, RdbnetError } from '../../errors.ts';
import type { Random } from '../../runtime/index.ts';
import type { RaftConfig } from './config.ts';
import { validateRaftConfig } from './config.ts';
import type { ProgressState } from './progress.ts';
import { Raft, RaftProposalError } from './raft.ts';
import type { PersistentRaftStorage } from './storage.ts';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  RaftRole,
  Ready,
  Snapshot,
  SoftState,
} from './types.ts';
import { encodeConfChange, MESSAGE_TYPES, NONE } from './types.ts';

export interface RawNodeOptions {
  id: NodeId;
  /** Read by the core; written by the application from each Ready, and by compact(). */
  storage: PersistentRaftStorage;
  /** Overrides of DEFAULT_RAFT_CONFIG; validated here. */
  config?: Partial<RaftConfig>;
  /** Randomizes election timeouts; pass a seeded one in simulations. */
  random: Random;
}

export interface PeerProgress {
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
  /** Heard from since the last check-quorum round. */
  recentActive: boolean;
  /** Ticks since the leader last heard from this peer. */
  ticksSinceContact: number;
  inflightMsgs: number;
  pendingSnapshot: number;
}

export interface RaftStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  lead: NodeId;
  role: RaftRole;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  config: ConfState;
  leadTransferee: NodeId;
  /** Logical ticks since this RawNode was created. */
  ticks: number;
  /** Per member, leader only (empty elsewhere): what the leader knows of each log. */
  progress: Record<NodeId, PeerProgress>;
  counters: Record<string, number>;
}

/** The cheap part of RaftStatus, for callers that poll it after every input. */
export interface BasicStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  lead: NodeId;
  role: RaftRole;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
}

interface InFlightReady {
  lastEntry: { index: number; term: number } | undefined;
  snapshotIndex: number | undefined;
  committedEntries: Entry[];
}

export class RawNode {
  private readonly raft: Raft;
  private readonly storage: PersistentRaftStorage;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private inFlight: InFlightReady | undefined;

  constructor(options: RawNodeOptions) {
    const config = validateRaftConfig(options.config);
    this.storage = options.storage;
    this.raft = new Raft({
      id: options.id,
      storage: options.storage,
      config,
      random: options.random,
    });
    this.prevSoftState = this.raft.softState();
    // The stored hard state is what the first Ready compares against.
    this.prevHardState = options.storage.initialState().hardState;
  }

  get id(): NodeId {
    return this.raft.id;
  }

  get config(): RaftConfig {
    return this.raft.config;
  }

  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (pre-vote first when enabled). */
  campaign(): void {
    this.raft.startCampaign();
  }

  /**
   * Feeds a message from a peer. Throws RDB_MESSAGE_MALFORMED for a message that is not for
   * this node or is internally inconsistent (the transport should close that connection).
   */
  step(message: Message): void {
    validateMessage(message, this.raft.id);
    this.raft.step(message);
  }

  /**
   * Proposes a normal entry. On a follower it is forwarded to the leader, which may still
   * drop it; only committed entries count. Throws RaftProposalError when refused here.
   */
  propose(data: Uint8Array): void {
    this.proposeEntry({ term: 0, index: 0, type: 'normal', data });
  }

  /** Proposes a single-server membership change; it takes effect when applied. */
  proposeConfChange(change: ConfChange): void {
    const problem = this.raft.role === 'leader' ? this.raft.checkConfChange(change) : undefined;
    if (problem !== undefined) throw new RaftProposalError('conf-change-invalid', problem);
    this.proposeEntry({ term: 0, index: 0, type: 'confChange', data: encodeConfChange(change) });
  }

  private proposeEntry(entry: Entry): void {
    const reason = this.raft.propose([entry]);
    if (reason === undefined) return;
    this.raft.counters.increment(`raft.proposals_dropped.${reason}`);
    throw new RaftProposalError(reason, `node ${this.raft.id}, term ${this.raft.term}`);
  }

  /** Asks the leader (this node, or forwarded) to hand leadership to `transferee`. */
  transferLeader(transferee: NodeId): void {
    this.raft.transferLeader(transferee);
  }

  /** The transport could not deliver to `id`: replicate to it cautiously (probe). */
  reportUnreachable(id: NodeId): void {
    this.raft.reportUnreachable(id);
  }

  /** The transport knows whether a MsgSnap to `id` arrived. */
  reportSnapshot(id: NodeId, succeeded: boolean): void {
    this.raft.reportSnapshot(id, succeeded);
  }

  hasReady(): boolean {
    if (this.inFlight !== undefined) return false;
    const raft = this.raft;
    const soft = raft.softState();
    return (
      soft.lead !== this.prevSoftState.lead ||
      soft.role !== this.prevSoftState.role ||
      !sameHardState(raft.hardState(), this.prevHardState) ||
      raft.msgs.length > 0 ||
      raft.log.hasNextUnstableEntries() ||
      raft.log.nextUnstableSnapshot() !== undefined ||
      raft.log.hasNextCommittedEntries()
    );
  }

  /** Collects what must be persisted, sent and applied; call advance() when done. */
  ready(): Ready {
    if (this.inFlight !== undefined) {
      throw new RdbnetError(ErrorCode.Usage, 'raft: advance() the previous Ready first');
    }
    const raft = this.raft;
    const soft = raft.softState();
    const hard = raft.hardState();
    const softChanged =
      soft.lead !== this.prevSoftState.lead || soft.role !== this.prevSoftState.role;
    const hardChanged = !sameHardState(hard, this.prevHardState);
    const entries = raft.log.nextUnstableEntries();
    const snapshot = raft.log.nextUnstableSnapshot();
    const committedEntries = raft.log.nextCommittedEntries();
    const messages = raft.msgs;
    raft.msgs = [];
    const ready: Ready = {
      softState: softChanged ? soft : undefined,
      hardState: hardChanged ? hard : undefined,
      entries,
      snapshot,
      committedEntries,
      messages,
      mustSync:
        entries.length > 0 ||
        snapshot !== undefined ||
        hard.term !== this.prevHardState.term ||
        hard.vote !== this.prevHardState.vote,
    };
    raft.log.acceptUnstable();
    if (committedEntries.length > 0) raft.log.acceptApplying(committedEntries.at(-1)!.index);
    this.prevSoftState = soft;
    this.prevHardState = hard;
    const last = entries.at(-1);
    this.inFlight = {
      lastEntry: last === undefined ? undefined : { index: last.index, term: last.term },
      snapshotIndex: snapshot?.metadata.index,
      committedEntries,
    };
    return ready;
  }

  /** The last Ready was persisted, sent and applied. */
  advance(): void {
    const done = this.inFlight;
    if (done === undefined) {
      throw new RdbnetError(ErrorCode.Usage, 'raft: advance() without a Ready');
    }
    this.inFlight = undefined;
    if (done.snapshotIndex !== undefined) this.raft.onSnapshotStable(done.snapshotIndex);
    if (done.lastEntry !== undefined) {
      this.raft.onStable(done.lastEntry.index, done.lastEntry.term);
    }
    this.raft.onApplied(done.committedEntries);
  }

  /** True when enough entries were applied since the latest snapshot to take a new one. */
  compactionDue(): boolean {
    // A snapshot from the leader is on its way to storage; it will replace the log anyway.
    if (this.raft.log.hasPendingSnapshot()) return false;
    const snapshotIndex = this.storage.snapshot().metadata.index;
    return this.raft.log.applied - snapshotIndex >= this.raft.config.compactionThresholdEntries;
  }

  /**
   * Records `snapshotData` (the state machine as of applied index `index`) as the latest
   * snapshot and drops log entries before it, keeping compactionRetainEntries of them for
   * followers that are only slightly behind.
   */
  compact(index: number, snapshotData: Uint8Array): Snapshot {
    const log = this.raft.log;
    const current = this.storage.snapshot().metadata.index;
    if (!Number.isInteger(index) || index > log.applied || index <= current) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `raft: compact index ${index} must be applied (<= ${log.applied}) and newer than the snapshot (${current})`,
      );
    }
    // Only the durable log can be compacted; applied entries are durable (Ready contract).
    assert(index <= this.storage.lastIndex(), `compact ${index} beyond stable log`);
    const snapshot = this.storage.createSnapshot(index, this.raft.confStateAt(index), snapshotData);
    this.raft.compactedTo(index);
    const compactTo = index - this.raft.config.compactionRetainEntries;
    if (compactTo >= this.storage.firstIndex()) this.storage.compact(compactTo);
    this.raft.counters.increment('raft.compactions');
    return snapshot;
  }

  basicStatus(): BasicStatus {
    const raft = this.raft;
    return {
      id: raft.id,
      term: raft.term,
      vote: raft.vote,
      lead: raft.lead,
      role: raft.role,
      commit: raft.log.committed,
      applied: raft.log.applied,
      firstIndex: raft.log.firstIndex(),
      lastIndex: raft.log.lastIndex(),
    };
  }

  status(): RaftStatus {
    const raft = this.raft;
    const progress: Record<NodeId, PeerProgress> = {};
    if (raft.role === 'leader') {
      for (const id of [...raft.progress.keys()].sort()) {
        const pr = raft.progress.get(id)!;
        progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          isLearner: pr.isLearner,
          recentActive: id === raft.id || pr.recentActive,
          ticksSinceContact: id === raft.id ? 0 : raft.ticks - pr.lastContactTick,
          inflightMsgs: pr.inflights.size,
          pendingSnapshot: pr.pendingSnapshot,
        };
      }
    }
    return {
      id: raft.id,
      term: raft.term,
      vote: raft.vote,
      lead: raft.lead,
      role: raft.role,
      commit: raft.log.committed,
      applied: raft.log.applied,
      firstIndex: raft.log.firstIndex(),
      lastIndex: raft.log.lastIndex(),
      config: raft.confState(),
      leadTransferee: raft.leadTransferee,
      ticks: raft.ticks,
      progress,
      counters: raft.counters.snapshot(),
    };
  }

  /** Every entry in this node's log, stable and unstable (tests and invariant checks). */
  logEntries(): Entry[] {
    return this.raft.log.allEntries();
  }

  /** Term of the entry at `index`, or undefined when compacted or absent. */
  termAt(index: number): number | undefined {
    return this.raft.log.term(index);
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function malformed(detail: string): never {
  throw new RdbnetError(ErrorCode.MessageMalformed, `raft message: ${detail}`);
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Shape checks for a message from the network; protocol invariants stay asserts inside. */
function validateMessage(m: Message, self: NodeId): void {
  if (!MESSAGE_TYPES.includes(m.type)) malformed(`unknown type ${String(m.type)}`);
  if (m.to !== self) malformed(`${m.type} for ${m.to} delivered to ${self}`);
  if (typeof m.from !== 'string' || m.from === NONE || m.from === self) {
    malformed(`${m.type} has bad sender ${String(m.from)}`);
  }
  for (const field of ['term', 'logTerm', 'index', 'commit', 'rejectHint'] as const) {
    if (!isIndex(m[field])) malformed(`${m.type} has bad ${field} ${String(m[field])}`);
  }
  if (m.type !== 'MsgProp' && m.type !== 'MsgPreVoteResp' && m.term === 0) {
    malformed(`${m.type} without a term`);
  }
  if (!Array.isArray(m.entries)) malformed(`${m.type} entries is not a list`);
  if (m.type === 'MsgApp') {
    m.entries.forEach((entry, i) => {
      if (entry.index !== m.index + 1 + i || !isIndex(entry.term) || entry.term > m.term) {
        malformed(`MsgApp entry ${i} (${entry.index}/${entry.term}) does not follow ${m.index}`);
      }
      if (entry.term < m.logTerm) malformed('MsgApp entry term below its predecessor');
    });
  } else if (m.type === 'MsgProp') {
    if (m.entries.length === 0) malformed('MsgProp without entries');
  } else if (m.entries.length > 0) {
    malformed(`${m.type} carries entries`);
  }
  for (const entry of m.entries) {
    if (
      !(entry.data instanceof Uint8Array) ||
      (entry.type !== 'normal' && entry.type !== 'confChange')
    ) {
      malformed(`${m.type} has a malformed entry`);
    }
  }
  if (m.type === 'MsgSnap') {
    const snapshot = m.snapshot;
    if (
      snapshot === undefined ||
      !isIndex(snapshot.metadata?.index) ||
      !isIndex(snapshot.metadata.term) ||
      !(snapshot.data instanceof Uint8Array) ||
      !Array.isArray(snapshot.metadata.confState?.voters) ||
      !Array.isArray(snapshot.metadata.confState.learners)
    ) {
      malformed('MsgSnap without a well-formed snapshot');
    }
  }
  if (
    m.type === 'MsgTransferLeader' &&
    (typeof m.transferee !== 'string' || m.transferee === NONE)
  ) {
    malformed('MsgTransferLeader without a transferee');
  }
}
