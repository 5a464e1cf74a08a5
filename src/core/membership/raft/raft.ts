/**
 * The Raft state machine: ticks and messages in, messages and log changes out. No I/O, no
 * clock, no global randomness — RawNode (raw-node.ts) wraps it in the Ready/advance cycle.
 * The structure follows etcd-io/raft's raft.go; the comments say where and why we differ.
 *
 * Membership changes take effect when the entry is APPLIED (etcd's choice), not when it is
 * appended (the Raft thesis' choice). Why, and why it is safe:
 * - A configuration is then always a committed fact. No node ever acts on a configuration
 *   that may be rolled back, so a truncated log never has to "undo" membership, and a
 *   snapshot's ConfState is simply the configuration as of its index.
 * - Safety needs consecutive configurations' majorities to overlap, and every node to lag at
 *   most one change behind the newest committed one. Three rules give that:
 *   1. one change at a time: a leader refuses a change while an earlier one is not applied
 *      (pendingConfIndex > applied), so C(k+1) is proposed only once C(k) is applied;
 *   2. a new leader refuses a change until it has committed an entry of its own term (the
 *      fix for the single-server-change bug Ongaro reported on raft-dev in 2015): the empty
 *      entry appended on election commits everything before it, including any change left
 *      over from earlier terms, and pendingConfIndex covers that whole prefix;
 *   3. a node does not campaign while it has committed but unapplied changes. Since C(k+2)
 *      is replicated only after C(k+1) is committed and MsgApp carries the leader's commit,
 *      any node holding C(k+2) knows C(k+1) is committed, so a candidate runs on a
 *      configuration at most one behind the latest committed one, whose majorities overlap.
 * - The price: a change takes effect a round trip later than with append-time semantics.
 */
import { assert, ErrorCode, RdbnetError } from '../../errors.ts';
import { Counters, type Random } from '../../runtime/index.ts';
import type { RaftConfig } from './config.ts';
import { randomizedElectionTicks } from './config.ts';
import { RaftLog } from './log.ts';
import { Progress } from './progress.ts';
import type { RaftStorage } from './storage.ts';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  MessageType,
  NodeId,
  RaftRole,
  Snapshot,
  SoftState,
} from './types.ts';
import { decodeConfChange, makeMessage, NONE, payloadBytes } from './types.ts';

/** Why a proposal was not accepted. Stable strings: tests and callers match on them. */
export type ProposalDropReason =
  /** No known leader to handle or forward it (election in progress). */
  | 'no-leader'
  /** The leader is handing over leadership; retry on the new leader. */
  | 'transfer-in-progress'
  /** This leader was removed from the configuration. */
  | 'not-member'
  /** Payload larger than maxEntryBytes. */
  | 'entry-too-large'
  /** The leader's uncommitted tail would exceed maxUncommittedEntriesBytes (backpressure). */
  | 'uncommitted-bytes-exceeded'
  /** A new leader has not yet committed an entry of its own term (conf changes only). */
  | 'no-commit-in-term'
  /** An earlier configuration change is not applied yet (conf changes only). */
  | 'conf-change-pending'
  /** The change does not fit the current configuration (e.g. adding a member twice). */
  | 'conf-change-invalid';

/** Closest existing codes until raft-specific ones exist (named in the hand-over notes). */
const DROP_CODES: Record<ProposalDropReason, ErrorCode> = {
  'no-leader': ErrorCode.NodeUnreachable,
  'transfer-in-progress': ErrorCode.NodeUnreachable,
  'not-member': ErrorCode.NodeUnreachable,
  'entry-too-large': ErrorCode.FrameTooLarge,
  'uncommitted-bytes-exceeded': ErrorCode.InflightLimit,
  'no-commit-in-term': ErrorCode.InflightLimit,
  'conf-change-pending': ErrorCode.InflightLimit,
  'conf-change-invalid': ErrorCode.Usage,
};

export class RaftProposalError extends RdbnetError {
  readonly reason: ProposalDropReason;

  constructor(reason: ProposalDropReason, detail: string) {
    super(DROP_CODES[reason], `raft proposal dropped (${reason}): ${detail}`);
    this.name = 'RaftProposalError';
    this.reason = reason;
  }
}

export interface RaftOptions {
  id: NodeId;
  storage: RaftStorage;
  /** Already validated (validateRaftConfig). */
  config: RaftConfig;
  /** Election timeout randomization; seeded in simulations. */
  random: Random;
}

type CampaignKind = 'preElection' | 'election' | 'transfer';
type VoteResult = 'won' | 'lost' | 'pending';

/** Membership as of a log index, kept so compact() can record the right ConfState. */
interface ConfPoint {
  index: number;
  confState: ConfState;
}

const VOTE_RESPONSE: Partial<Record<MessageType, MessageType>> = {
  MsgVote: 'MsgVoteResp',
  MsgPreVote: 'MsgPreVoteResp',
};

export class Raft {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  /** Named event counters (ARCHITECTURE.md practice 10). */
  readonly counters = new Counters();
  private readonly random: Random;

  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: RaftRole = 'follower';

  readonly voters = new Set<NodeId>();
  readonly learners = new Set<NodeId>();
  /** Every member, this node included while it is one; meaningful on the leader. */
  progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();
  /** Outbox, drained by RawNode.ready(). */
  msgs: Message[] = [];

  electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Ticks since start; progress records contact times in this unit. */
  ticks = 0;
  leadTransferee: NodeId = NONE;
  /** Leader: index of the newest entry that may hold an unapplied conf change. */
  private pendingConfIndex = 0;
  /** Leader: payload bytes appended in this term and not yet applied. */
  uncommittedBytes = 0;
  private confHistory: ConfPoint[] = [];

  constructor(options: RaftOptions) {
    this.id = options.id;
    assert(this.id !== NONE, 'raft node id must not be empty');
    this.config = options.config;
    this.random = options.random;
    const { hardState, confState } = options.storage.initialState();
    this.log = new RaftLog(options.storage, this.config.maxCommittedSizePerReadyBytes);
    this.setConfState(confState);
    this.confHistory = [{ index: this.log.applied, confState: this.confState() }];
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) {
      assert(
        hardState.commit >= this.log.committed && hardState.commit <= this.log.lastIndex(),
        `stored commit ${hardState.commit} outside [${this.log.committed}, ${this.log.lastIndex()}]`,
      );
      this.log.committed = hardState.commit;
      this.term = hardState.term;
      this.vote = hardState.vote;
    }
    this.becomeFollower(this.term, NONE);
  }

  // ---------------------------------------------------------------- state snapshots

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { lead: this.lead, role: this.role };
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() };
  }

  /** The membership in effect at `index` (index at or after the latest snapshot). */
  confStateAt(index: number): ConfState {
    let found: ConfState | undefined;
    for (const point of this.confHistory) {
      if (point.index <= index) found = point.confState;
    }
    assert(found !== undefined, `no configuration known at index ${index}`);
    return found;
  }

  /** Forgets membership history below a new snapshot at `index`. */
  compactedTo(index: number): void {
    const keep = this.confHistory.filter((point) => point.index > index);
    this.confHistory = [{ index, confState: this.confStateAt(index) }, ...keep];
  }

  promotable(): boolean {
    return this.voters.has(this.id) && !this.log.hasPendingSnapshot();
  }

  // ---------------------------------------------------------------- time

  tick(): void {
    this.ticks++;
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.config.preVote ? 'preElection' : 'election');
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) this.checkQuorum();
      // A transfer that did not finish within an election timeout is abandoned, so the
      // leader accepts proposals again.
      if (this.role === 'leader' && this.leadTransferee !== NONE) {
        this.counters.increment('raft.transfers_aborted');
        this.abortLeaderTransfer();
      }
    }
    if (this.role !== 'leader') return;
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  private checkQuorum(): void {
    let active = 0;
    for (const id of this.voters) {
      if (id === this.id || this.progress.get(id)?.recentActive === true) active++;
    }
    if (active < quorum(this.voters.size)) {
      this.counters.increment('raft.check_quorum_step_downs');
      this.becomeFollower(this.term, NONE);
    }
    for (const [id, progress] of this.progress) {
      if (id !== this.id) progress.recentActive = false;
    }
  }

  // ---------------------------------------------------------------- role changes

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = randomizedElectionTicks(this.config, this.random);
    this.abortLeaderTransfer();
    this.votes.clear();
    const last = this.log.lastIndex();
    for (const [id, old] of this.progress) {
      const fresh = new Progress(last + 1, this.config.maxInflightMsgs, old.isLearner);
      fresh.lastContactTick = this.ticks;
      // Everything in our own log at election time was durable before any vote request
      // left (Ready contract), so the leader may count it at once.
      if (id === this.id) fresh.match = last;
      this.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become pre-candidate');
    // A pre-candidate keeps its term and vote: it only asks whether it could win.
    this.votes.clear();
    this.lead = NONE;
    this.role = 'preCandidate';
    this.electionElapsed = 0;
    this.randomizedElectionTimeout = randomizedElectionTicks(this.config, this.random);
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role !== 'follower', 'follower cannot become leader without an election');
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    const self = this.progress.get(this.id);
    assert(self !== undefined, 'leader must be in its own configuration');
    self.becomeReplicate();
    self.recentActive = true;
    // Rule 2 (see the file comment): no conf change until everything up to here is applied
    // and an entry of this term is committed.
    this.pendingConfIndex = this.log.lastIndex();
    const appended = this.appendEntry([{ term: 0, index: 0, type: 'normal', data: EMPTY }]);
    assert(appended, 'the empty entry of a new leader is never refused');
    this.counters.increment('raft.leaderships');
    this.bcastAppend();
  }

  private hup(kind: CampaignKind): void {
    if (this.role === 'leader' || !this.promotable()) return;
    if (this.hasUnappliedConfChanges()) {
      // Rule 3: campaigning on a configuration we know is outdated could split quorums.
      this.counters.increment('raft.campaigns_deferred_conf_change');
      return;
    }
    this.campaign(kind);
  }

  private hasUnappliedConfChanges(): boolean {
    const lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    if (lo > this.log.committed) return false;
    let found = false;
    this.log.scan(lo, this.log.committed + 1, (page) => {
      found = page.some((entry) => entry.type === 'confChange');
      return !found;
    });
    return found;
  }

  private campaign(kind: CampaignKind): void {
    let voteType: MessageType;
    let term: number;
    if (kind === 'preElection') {
      this.becomePreCandidate();
      voteType = 'MsgPreVote';
      // Pre-votes ask about the next term without moving to it.
      term = this.term + 1;
      this.counters.increment('raft.pre_elections');
    } else {
      this.becomeCandidate();
      voteType = 'MsgVote';
      term = this.term;
      this.counters.increment('raft.elections');
    }
    if (this.poll(this.id, true) === 'won') {
      // A single-voter group wins on its own vote.
      if (kind === 'preElection') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of [...this.voters].sort()) {
      if (id === this.id) continue;
      this.send(
        makeMessage({
          type: voteType,
          from: this.id,
          to: id,
          term,
          index: lastIndex,
          logTerm: lastTerm,
          transfer: kind === 'transfer',
        }),
      );
    }
  }

  private poll(id: NodeId, granted: boolean): VoteResult {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const voter of this.voters) {
      const vote = this.votes.get(voter);
      if (vote === true) yes++;
      else if (vote === false) no++;
    }
    const needed = quorum(this.voters.size);
    if (yes >= needed) return 'won';
    if (this.voters.size - no < needed) return 'lost';
    return 'pending';
  }

  /** Starts an election now (RawNode.campaign), with a pre-vote round when enabled. */
  startCampaign(): void {
    this.hup(this.config.preVote ? 'preElection' : 'election');
  }

  // ---------------------------------------------------------------- messages in

  step(m: Message): void {
    if (m.term === 0) {
      // Forwarded proposals carry no term; handled by the role below.
    } else if (m.term > this.term) {
      if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
        const inLease =
          this.config.checkQuorum &&
          this.lead !== NONE &&
          this.electionElapsed < this.config.electionTicks;
        if (inLease && !m.transfer) {
          // Leader lease: we heard from a live leader within the minimum election timeout,
          // so this candidate is disruptive (partitioned or removed); neither move to its
          // term nor answer.
          this.counters.increment('raft.votes_ignored_in_lease');
          return;
        }
      }
      if (m.type === 'MsgPreVote') {
        // Never change term because of a pre-vote.
      } else if (m.type === 'MsgPreVoteResp' && !m.reject) {
        // A granted pre-vote carries the term we asked about; we move there only if we win.
      } else {
        const fromLeader = m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap';
        this.becomeFollower(m.term, fromLeader ? m.from : NONE);
      }
    } else if (m.term < this.term) {
      if (
        (this.config.checkQuorum || this.config.preVote) &&
        (m.type === 'MsgHeartbeat' || m.type === 'MsgApp')
      ) {
        // A stale leader: with pre-vote/check-quorum our higher term may never reach it
        // through a vote, so tell it directly and let it step down.
        this.send(makeMessage({ type: 'MsgAppResp', from: this.id, to: m.from }));
      } else if (m.type === 'MsgPreVote') {
        // Reject so the pre-candidate learns our term instead of waiting forever.
        this.send(
          makeMessage({
            type: 'MsgPreVoteResp',
            from: this.id,
            to: m.from,
            term: this.term,
            reject: true,
          }),
        );
      }
      this.counters.increment('raft.messages_stale_term');
      return;
    }

    if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
    }
  }

  private handleVoteRequest(m: Message): void {
    const responseType = VOTE_RESPONSE[m.type]!;
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === 'MsgPreVote' && m.term > this.term);
    // Learners vote too: a learner promoted by a committed entry it has not seen yet may be
    // needed for a quorum (etcd-io/raft explains the case in its Step).
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // Answer with the request's term: for a pre-vote our own term may be older, and the
      // pre-candidate would drop an answer from an older term.
      this.send(makeMessage({ type: responseType, from: this.id, to: m.from, term: m.term }));
      if (m.type === 'MsgVote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(
        makeMessage({
          type: responseType,
          from: this.id,
          to: m.from,
          term: this.term,
          reject: true,
        }),
      );
    }
  }

  private stepLeader(m: Message): void {
    if (m.type === 'MsgProp') {
      const reason = this.proposeAsLeader(m.entries);
      if (reason !== undefined) this.counters.increment(`raft.proposals_dropped.${reason}`);
      return;
    }
    if (m.type === 'MsgTransferLeader') {
      this.handleTransferLeader(m.transferee);
      return;
    }
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    if (m.type === 'MsgAppResp') {
      pr.recentActive = true;
      pr.lastContactTick = this.ticks;
      this.handleAppendResponse(m, pr);
    } else if (m.type === 'MsgHeartbeatResp') {
      pr.recentActive = true;
      pr.lastContactTick = this.ticks;
      this.handleHeartbeatResponse(m, pr);
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    if (m.reject) {
      // rejectHint/logTerm: the follower's guess of where our logs can match. With a term,
      // skip every index where our term is higher than the follower's: they cannot match.
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const updated = pr.maybeUpdate(m.index);
    if (!updated && !(pr.match === m.index && pr.state === 'probe')) return;
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match + 1 >= this.log.firstIndex()) {
      // Caught up through the snapshot (or got there another way): resume from the log.
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else if (pr.canBumpCommit(this.log.committed)) {
      this.sendAppend(m.from);
    }
    // Flow control may have opened: send what the window allows, without empty messages.
    while (this.maybeSendAppend(m.from, false)) {}
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.sendTimeoutNow(m.from);
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.msgAppFlowPaused = false;
    // The network may have lost the snapshot and the node layer may never report it; after
    // two election timeouts without the follower catching up, send it again.
    if (
      pr.state === 'snapshot' &&
      this.ticks - pr.snapshotSentTick >= 2 * this.config.electionTicks
    ) {
      this.counters.increment('raft.snapshots_presumed_lost');
      pr.pendingSnapshot = 0;
      pr.becomeProbe();
    }
    // Also repairs a full inflight window whose messages were all lost: an empty MsgApp
    // gets acked or rejected and either frees the window.
    if (pr.match < this.log.lastIndex() || pr.state === 'probe') this.sendAppend(m.from);
  }

  private handleTransferLeader(transferee: NodeId): void {
    const pr = this.progress.get(transferee);
    if (pr === undefined || !this.voters.has(transferee)) {
      this.counters.increment('raft.transfers_ignored');
      return;
    }
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return;
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return;
    this.counters.increment('raft.transfers_started');
    // The transfer must finish within one election timeout; counting starts now.
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee);
  }

  private stepCandidate(m: Message): void {
    const myResponse = this.role === 'preCandidate' ? 'MsgPreVoteResp' : 'MsgVoteResp';
    switch (m.type) {
      case 'MsgProp':
        this.counters.increment('raft.proposals_dropped.no-leader');
        return;
      case 'MsgApp':
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case 'MsgHeartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'MsgSnap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      default:
        if (m.type !== myResponse) return;
    }
    const result = this.poll(m.from, !m.reject);
    if (result === 'won') {
      if (this.role === 'preCandidate') this.campaign('election');
      else this.becomeLeader();
    } else if (result === 'lost') {
      // A rejected pre-vote carries the rejecter's term; stay at ours.
      this.becomeFollower(this.term, NONE);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'MsgProp':
        if (this.lead === NONE) {
          this.counters.increment('raft.proposals_dropped.no-leader');
          return;
        }
        this.send(
          makeMessage({ type: 'MsgProp', from: this.id, to: this.lead, entries: m.entries }),
        );
        return;
      case 'MsgApp':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case 'MsgHeartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'MsgSnap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'MsgTransferLeader':
        if (this.lead === NONE) return;
        this.send(
          makeMessage({
            type: 'MsgTransferLeader',
            from: this.id,
            to: this.lead,
            transferee: m.transferee,
          }),
        );
        return;
      case 'MsgTimeoutNow':
        // Only our own leader may hand over; it has checked our log is up to date. No
        // pre-vote: we know the leader is alive and stepping aside.
        if (m.from !== this.lead) return;
        this.counters.increment('raft.transfers_received');
        this.hup('transfer');
        return;
      default:
        return;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      // Already have (and committed) more than this message anchors on.
      this.send(
        makeMessage({ type: 'MsgAppResp', from: this.id, to: m.from, index: this.log.committed }),
      );
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(makeMessage({ type: 'MsgAppResp', from: this.id, to: m.from, index: lastNew }));
      return;
    }
    // Our log does not hold (m.index, m.logTerm). Hint the largest index whose term is at
    // most m.logTerm: everything after it in our log cannot match the leader's.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.counters.increment('raft.appends_rejected');
    this.send(
      makeMessage({
        type: 'MsgAppResp',
        from: this.id,
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        logTerm: hint.term,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    this.send(makeMessage({ type: 'MsgHeartbeatResp', from: this.id, to: m.from }));
  }

  private handleSnapshot(m: Message): void {
    const snapshot = m.snapshot;
    if (snapshot === undefined) return;
    const restored = this.restore(snapshot);
    if (restored) this.counters.increment('raft.snapshots_restored');
    const index = restored ? this.log.lastIndex() : this.log.committed;
    this.send(makeMessage({ type: 'MsgAppResp', from: this.id, to: m.from, index }));
  }

  private restore(snapshot: Snapshot): boolean {
    const { index, term, confState } = snapshot.metadata;
    if (index <= this.log.committed) return false;
    if (this.role !== 'follower') {
      // Callers only restore as followers; if that ever breaks, refuse and force an election.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    if (this.log.matchTerm(index, term)) {
      // We already hold the entry the snapshot ends with, hence the whole prefix.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snapshot);
    this.setConfState(confState);
    // Earlier points stay true (and compact() of an index below the snapshot may need them).
    this.confHistory.push({ index, confState: this.confState() });
    return true;
  }

  // ---------------------------------------------------------------- proposals

  /** A proposal made on this node; undefined when accepted (or forwarded to the leader). */
  propose(entries: Entry[]): ProposalDropReason | undefined {
    for (const entry of entries) {
      if (entry.data.byteLength > this.config.maxEntryBytes) return 'entry-too-large';
    }
    if (this.role === 'leader') return this.proposeAsLeader(entries);
    if (this.role !== 'follower' || this.lead === NONE) return 'no-leader';
    this.send(makeMessage({ type: 'MsgProp', from: this.id, to: this.lead, entries }));
    return undefined;
  }

  private proposeAsLeader(entries: Entry[]): ProposalDropReason | undefined {
    if (entries.length === 0) return undefined;
    if (!this.progress.has(this.id)) return 'not-member';
    if (this.leadTransferee !== NONE) return 'transfer-in-progress';
    let pending = this.pendingConfIndex;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (entry.data.byteLength > this.config.maxEntryBytes) return 'entry-too-large';
      if (entry.type !== 'confChange') continue;
      if (this.log.term(this.log.committed) !== this.term) return 'no-commit-in-term';
      if (pending > this.log.applied) return 'conf-change-pending';
      let change: ConfChange;
      try {
        change = decodeConfChange(entry.data);
      } catch {
        return 'conf-change-invalid';
      }
      if (this.checkConfChange(change) !== undefined) return 'conf-change-invalid';
      pending = this.log.lastIndex() + i + 1;
    }
    if (!this.appendEntry(entries)) return 'uncommitted-bytes-exceeded';
    this.pendingConfIndex = pending;
    this.bcastAppend();
    return undefined;
  }

  /** Why `change` does not fit the current configuration, or undefined when it does. */
  checkConfChange(change: ConfChange): string | undefined {
    const isVoter = this.voters.has(change.nodeId);
    const isLearner = this.learners.has(change.nodeId);
    switch (change.type) {
      case 'addVoter':
      case 'addLearner':
        return isVoter || isLearner ? `${change.nodeId} is already a member` : undefined;
      case 'promoteLearner':
        return isLearner ? undefined : `${change.nodeId} is not a learner`;
      case 'removeNode':
        if (!isVoter && !isLearner) return `${change.nodeId} is not a member`;
        return isVoter && this.voters.size === 1 ? 'cannot remove the last voter' : undefined;
    }
  }

  private appendEntry(entries: readonly Entry[]): boolean {
    const last = this.log.lastIndex();
    const stamped = entries.map((entry, i) => ({
      term: this.term,
      index: last + 1 + i,
      type: entry.type,
      data: entry.data,
    }));
    const bytes = payloadBytes(stamped);
    // An empty tail always accepts one proposal, however large, so progress never wedges;
    // empty payloads (a new leader's entry) are never refused.
    if (
      this.uncommittedBytes > 0 &&
      bytes > 0 &&
      this.uncommittedBytes + bytes > this.config.maxUncommittedEntriesBytes
    ) {
      return false;
    }
    this.uncommittedBytes += bytes;
    this.log.append(stamped);
    // The leader's own ack comes when the entries are durable (onStable), not now.
    return true;
  }

  transferLeader(transferee: NodeId): void {
    if (this.role === 'leader') {
      this.handleTransferLeader(transferee);
    } else if (this.role === 'follower' && this.lead !== NONE) {
      this.send(
        makeMessage({ type: 'MsgTransferLeader', from: this.id, to: this.lead, transferee }),
      );
    }
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  // ---------------------------------------------------------------- replication out

  private maybeCommit(): boolean {
    return this.log.maybeCommit(this.quorumMatchIndex(), this.term);
  }

  /** The highest index held by a majority of voters. */
  private quorumMatchIndex(): number {
    if (this.voters.size === 0) return 0;
    const matches: number[] = [];
    for (const id of this.voters) matches.push(this.progress.get(id)?.match ?? 0);
    matches.sort((a, b) => b - a);
    return matches[quorum(matches.length) - 1]!;
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Sends a MsgApp if flow control allows; `sendIfEmpty` also sends one without entries. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) return this.maybeSendSnapshot(to, pr);
    let entries: Entry[] = [];
    // A full window in replicate still sends an empty MsgApp so that lost messages are
    // detected (ack or reject) and the window recovers.
    if (pr.state !== 'replicate' || !pr.inflights.full()) {
      entries = this.log.entries(pr.next, this.config.maxSizePerMsgBytes);
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send(
      makeMessage({
        type: 'MsgApp',
        from: this.id,
        to,
        index: prevIndex,
        logTerm: prevTerm,
        entries,
        commit: this.log.committed,
      }),
    );
    pr.sentEntries(entries.length, entries.at(-1)?.index ?? prevIndex);
    pr.sentCommit = this.log.committed;
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    // Snapshots are expensive; only send to a follower that answers.
    if (!pr.recentActive) return false;
    const snapshot = this.log.snapshot();
    assert(snapshot.metadata.index > 0, 'a compacted log must have a snapshot');
    pr.becomeSnapshot(snapshot.metadata.index, this.ticks);
    this.counters.increment('raft.snapshots_sent');
    this.send(makeMessage({ type: 'MsgSnap', from: this.id, to, snapshot }));
    return true;
  }

  private sendHeartbeat(to: NodeId, pr: Progress): void {
    // Never tell a follower a commit index beyond what it is known to hold.
    const commit = Math.min(pr.match, this.log.committed);
    this.send(makeMessage({ type: 'MsgHeartbeat', from: this.id, to, commit }));
    pr.sentCommit = Math.max(pr.sentCommit, commit);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(makeMessage({ type: 'MsgTimeoutNow', from: this.id, to }));
  }

  private bcastAppend(): void {
    for (const id of [...this.progress.keys()].sort()) {
      if (id !== this.id) this.sendAppend(id);
    }
  }

  private bcastHeartbeat(): void {
    for (const id of [...this.progress.keys()].sort()) {
      if (id !== this.id) this.sendHeartbeat(id, this.progress.get(id)!);
    }
  }

  private send(m: Message): void {
    assert(m.to !== this.id, `${m.type} addressed to self`);
    m.from = this.id;
    const explicitTerm =
      m.type === 'MsgVote' ||
      m.type === 'MsgVoteResp' ||
      m.type === 'MsgPreVote' ||
      m.type === 'MsgPreVoteResp';
    // Proposals are forwarded without a term: the leader may be in a newer one.
    if (!explicitTerm) m.term = m.type === 'MsgProp' ? 0 : this.term;
    this.msgs.push(m);
  }

  // ---------------------------------------------------------------- local reports

  reportUnreachable(id: NodeId): void {
    const pr = this.progress.get(id);
    // An unreachable follower has probably lost what we streamed to it.
    if (this.role === 'leader' && pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  reportSnapshot(id: NodeId, succeeded: boolean): void {
    const pr = this.progress.get(id);
    if (this.role !== 'leader' || pr === undefined || pr.state !== 'snapshot') return;
    if (!succeeded) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's MsgAppResp (or a heartbeat) before the next MsgApp.
    pr.msgAppFlowPaused = true;
  }

  // ---------------------------------------------------------------- after persistence

  /** Entries up to (index, term) are durable: the leader may now count its own copy. */
  onStable(index: number, term: number): void {
    this.log.stableTo(index, term);
    if (this.role !== 'leader' || this.log.term(index) !== term) return;
    const self = this.progress.get(this.id);
    if (self?.maybeUpdate(index) && this.maybeCommit()) this.bcastAppend();
  }

  onSnapshotStable(index: number): void {
    this.log.stableSnapTo(index);
    this.log.appliedTo(Math.min(index, this.log.committed));
  }

  /** `entries` were applied to the state machine; membership changes among them now apply. */
  onApplied(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    this.log.appliedTo(entries.at(-1)!.index);
    for (const entry of entries) {
      if (entry.type !== 'confChange') continue;
      // A snapshot restored while these entries were being applied already holds the
      // configuration up to its index; applying older changes on top would corrupt it.
      if (entry.index <= this.confHistory.at(-1)!.index) continue;
      this.applyConfChange(decodeConfChange(entry.data), entry.index);
    }
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - payloadBytes(entries));
  }

  private applyConfChange(change: ConfChange, index: number): void {
    if (this.checkConfChange(change) !== undefined) {
      // Every node applies the same committed sequence from the same configuration, so
      // every node ignores the same invalid change: the outcome stays deterministic.
      this.counters.increment('raft.conf_changes_ignored');
      return;
    }
    const { nodeId } = change;
    const fresh = () => {
      // Probe with our last entry: the first MsgApp then carries something to match on.
      const pr = new Progress(
        Math.max(this.log.lastIndex(), 1),
        this.config.maxInflightMsgs,
        change.type === 'addLearner',
      );
      // Counted as active so check-quorum does not fire before it had a chance to answer.
      pr.recentActive = true;
      pr.lastContactTick = this.ticks;
      return pr;
    };
    switch (change.type) {
      case 'addVoter':
        this.voters.add(nodeId);
        this.progress.set(nodeId, fresh());
        break;
      case 'addLearner':
        this.learners.add(nodeId);
        this.progress.set(nodeId, fresh());
        break;
      case 'promoteLearner':
        this.learners.delete(nodeId);
        this.voters.add(nodeId);
        this.progress.get(nodeId)!.isLearner = false;
        break;
      case 'removeNode':
        this.voters.delete(nodeId);
        this.learners.delete(nodeId);
        this.progress.delete(nodeId);
        break;
    }
    this.confHistory.push({ index, confState: this.confState() });
    this.counters.increment('raft.conf_changes_applied');
    if (this.role !== 'leader') return;
    if (nodeId === this.id && change.type === 'removeNode') {
      // The removal is committed (it is being applied). Tell everyone the commit index so the
      // remaining voters can apply it and elect a leader among themselves, then step down.
      this.bcastAppend();
      this.counters.increment('raft.leader_removed_self');
      this.becomeFollower(this.term, NONE);
      return;
    }
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else {
      // Start probing new members now rather than at the next proposal or heartbeat.
      for (const id of [...this.progress.keys()].sort()) {
        if (id !== this.id) this.maybeSendAppend(id, false);
      }
    }
    if (this.leadTransferee !== NONE && !this.voters.has(this.leadTransferee)) {
      this.abortLeaderTransfer();
    }
  }

  private setConfState(confState: ConfState): void {
    this.voters.clear();
    this.learners.clear();
    const old = this.progress;
    this.progress = new Map();
    const add = (id: NodeId, isLearner: boolean) => {
      const pr =
        old.get(id) ??
        new Progress(this.log.lastIndex() + 1, this.config.maxInflightMsgs, isLearner);
      pr.isLearner = isLearner;
      pr.recentActive = true;
      pr.lastContactTick = this.ticks;
      this.progress.set(id, pr);
    };
    for (const id of confState.voters) {
      this.voters.add(id);
      add(id, false);
    }
    for (const id of confState.learners) {
      assert(!this.voters.has(id), `${id} is both voter and learner`);
      this.learners.add(id);
      add(id, true);
    }
  }
}

const EMPTY = new Uint8Array(0);

/** Votes (or acks) needed among `voters` voters. */
export function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}
