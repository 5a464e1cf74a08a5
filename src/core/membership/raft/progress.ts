/**
 * What a leader knows about each follower's log, and the flow control that decides when it
 * may send the next MsgApp (etcd-io/raft tracker/progress.go and inflights.go).
 *
 * - probe: we do not know where the follower's log matches ours; send one MsgApp at a time
 *   and wait for its answer (or a heartbeat response) before sending the next.
 * - replicate: the follower is known to match up to `match`; stream entries optimistically,
 *   at most maxInflightMsgs messages unacknowledged.
 * - snapshot: the follower needs entries we compacted; a snapshot is on its way and nothing
 *   else is sent until it is acknowledged or deemed lost.
 */
import { assert } from '../../errors.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** Bounded FIFO of the last index of each MsgApp in flight, oldest first. */
export class Inflights {
  readonly capacity: number;
  private readonly buffer: number[];
  private start = 0;
  private count = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.buffer = new Array<number>(capacity).fill(0);
  }

  get size(): number {
    return this.count;
  }

  full(): boolean {
    return this.count === this.capacity;
  }

  add(lastIndex: number): void {
    assert(!this.full(), 'inflights overflow: caller must check full() first');
    this.buffer[(this.start + this.count) % this.capacity] = lastIndex;
    this.count++;
  }

  /** Frees every message whose last index is <= `index` (acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && this.buffer[this.start]! <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}

export class Progress {
  /** Highest index known to match the leader's log (durable on the follower). */
  match = 0;
  /** Next index to send. Invariant: match < next. */
  next: number;
  state: ProgressState = 'probe';
  /** Index of the snapshot sent while in the snapshot state. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Probe: a MsgApp is unanswered. Replicate: the inflight window is full. */
  msgAppFlowPaused = false;
  readonly inflights: Inflights;
  isLearner: boolean;
  /** Highest commit index sent to it, so the leader knows when a commit-only MsgApp helps. */
  sentCommit = 0;
  /** Leader's tick count when this follower was last heard from. */
  lastContactTick = 0;
  /** Leader's tick count when the pending snapshot was sent. */
  snapshotSentTick = 0;

  constructor(next: number, maxInflightMsgs: number, isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs);
    this.isLearner = isLearner;
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, probing starts after it: the follower has at least that much.
    const after =
      this.state === 'snapshot' ? Math.max(this.match, this.pendingSnapshot) : this.match;
    this.resetState('probe');
    this.next = after + 1;
    this.sentCommit = Math.min(this.sentCommit, this.next - 1);
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number, tick: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
    this.sentCommit = snapshotIndex;
    this.snapshotSentTick = tick;
  }

  /** Bookkeeping after sending a MsgApp carrying `count` entries ending at `lastIndex`. */
  sentEntries(count: number, lastIndex: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
      this.msgAppFlowPaused = this.inflights.full();
    } else {
      assert(this.state === 'probe', `sent entries in state ${this.state}`);
      if (count > 0) this.msgAppFlowPaused = true;
    }
  }

  /** The follower acknowledged up to `index`; false when that is old news. */
  maybeUpdate(index: number): boolean {
    if (index <= this.match) return false;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /**
   * The follower rejected a MsgApp whose previous index was `rejected`, hinting it matches at
   * most at `matchHint`. False when the rejection is stale (already accounted for).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      // Stale: we already know it matches beyond the rejected index.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      this.sentCommit = Math.min(this.sentCommit, this.next - 1);
      return true;
    }
    // Probe: only the answer to the latest probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.sentCommit = Math.min(this.sentCommit, this.next - 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /** Worth sending a commit-only MsgApp: it has entries it does not know are committed. */
  canBumpCommit(commit: number): boolean {
    return commit > this.sentCommit && this.sentCommit < this.next - 1;
  }

  isPaused(): boolean {
    return this.state === 'snapshot' || this.msgAppFlowPaused;
  }
}
