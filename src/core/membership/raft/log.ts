/**
 * The Raft log as the core sees it: a stable prefix in RaftStorage and an unstable tail in
 * memory that the next Ready hands to the application to persist (etcd-io/raft log.go and
 * log_unstable.go describe the same split).
 *
 *   storage:   [snapshot | firstIndex ........ storage.lastIndex]
 *   unstable:                         [offset ........ lastIndex]  (may overlap and override)
 *
 * Index bookkeeping: applied <= applying <= committed <= lastIndex.
 */
import { assert } from '../../errors.ts';
import type { RaftStorage } from './storage.ts';
import type { Entry, Snapshot } from './types.ts';
import { entryBytes } from './types.ts';

/** Keeps a prefix of `entries` within `maxBytes`, but always at least one entry. */
export function limitBytes(entries: Entry[], maxBytes: number): Entry[] {
  let bytes = 0;
  for (let i = 0; i < entries.length; i++) {
    bytes += entryBytes(entries[i]!);
    if (i > 0 && bytes > maxBytes) return entries.slice(0, i);
  }
  return entries;
}

/** Entries (and possibly a snapshot) not yet known to be in stable storage. */
class Unstable {
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  /** Index of entries[0]. */
  offset: number;
  /** A Ready carrying `snapshot` is being persisted. */
  snapshotInProgress = false;
  /** Entries below this index were handed out in a Ready that is not yet advanced. */
  offsetInProgress: number;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot?.metadata.index;
  }

  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === index) {
        return this.snapshot.metadata.term;
      }
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || index > last) return undefined;
    return this.entries[index - this.offset]!.term;
  }

  nextEntries(): Entry[] {
    const start = this.offsetInProgress - this.offset;
    return start >= this.entries.length ? [] : this.entries.slice(start);
  }

  nextSnapshot(): Snapshot | undefined {
    return this.snapshotInProgress ? undefined : this.snapshot;
  }

  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot !== undefined) this.snapshotInProgress = true;
  }

  /** Entries up to (index, term) are durable; forgets them unless they were since replaced. */
  stableTo(index: number, term: number): void {
    if (index < this.offset) return;
    const ours = this.maybeTerm(index);
    // A different term means a newer leader overwrote the entry after it was handed out;
    // the replacement is still unstable.
    if (ours !== term) return;
    const count = index + 1 - this.offset;
    this.entries = this.entries.slice(count);
    this.offset = index + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
  }

  stableSnapTo(index: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === index) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = snapshot;
    this.snapshotInProgress = false;
  }

  truncateAndAppend(entries: readonly Entry[]): void {
    const from = entries[0]!.index;
    const end = this.offset + this.entries.length;
    assert(from <= end, `unstable append at ${from} leaves a gap after ${end - 1}`);
    if (from === end) {
      this.entries.push(...entries);
    } else if (from <= this.offset) {
      // Replaces everything unstable (and, once persisted, storage from `from` on).
      this.offset = from;
      this.offsetInProgress = from;
      this.entries = [...entries];
    } else {
      this.entries = this.entries.slice(0, from - this.offset);
      this.entries.push(...entries);
      this.offsetInProgress = Math.min(this.offsetInProgress, from);
    }
  }

  slice(lo: number, hi: number): Entry[] {
    assert(
      this.offset <= lo && lo <= hi && hi <= this.offset + this.entries.length,
      `unstable slice [${lo}, ${hi}) out of [${this.offset}, ${this.offset + this.entries.length})`,
    );
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export interface ConflictHint {
  index: number;
  term: number;
}

export class RaftLog {
  readonly storage: RaftStorage;
  private readonly unstable: Unstable;
  /** Highest index known to be committed. */
  committed: number;
  /** Highest index handed to the application for applying (in a Ready not yet advanced). */
  applying: number;
  /** Highest index the application reported applied. */
  applied: number;
  private readonly maxApplyingBytes: number;

  constructor(storage: RaftStorage, maxApplyingBytes: number) {
    this.storage = storage;
    this.maxApplyingBytes = maxApplyingBytes;
    this.unstable = new Unstable(storage.lastIndex() + 1);
    // Not firstIndex - 1: compaction may keep entries from before the snapshot.
    const snapshotIndex = storage.snapshot().metadata.index;
    this.committed = snapshotIndex;
    this.applying = snapshotIndex;
    this.applied = snapshotIndex;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Term at `index`, for index in [firstIndex - 1, lastIndex]; undefined otherwise. */
  term(index: number): number | undefined {
    const unstable = this.unstable.maybeTerm(index);
    if (unstable !== undefined) return unstable;
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return undefined;
    return this.storage.term(index);
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    assert(term !== undefined, `no term for last index ${this.lastIndex()}`);
    return term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ours = this.lastTerm();
    return lastTerm > ours || (lastTerm === ours && lastIndex >= this.lastIndex());
  }

  /** First index whose term differs from ours or that we lack; 0 when all match. */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with that term: where our log and
   * a log holding `term` at `index` can possibly match. Lets one rejection skip a whole
   * divergent term instead of one entry (etcd-io/raft findConflictByTerm).
   */
  findConflictByTerm(index: number, term: number): ConflictHint {
    for (; index > 0; index--) {
      const ours = this.term(index);
      if (ours === undefined) return { index, term: 0 };
      if (ours <= term) return { index, term: ours };
    }
    return { index: 0, term: 0 };
  }

  /**
   * Follower side of MsgApp: if our log holds (prevIndex, prevTerm), append what is new,
   * truncating a conflicting suffix, and advance commit. Returns the last index now known to
   * match the leader's, or undefined when prev does not match.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    commit: number,
    entries: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(
        conflict > this.committed,
        `entry ${conflict} conflicts with committed entry (committed ${this.committed})`,
      );
      this.append(entries.slice(conflict - (prevIndex + 1)));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const after = entries[0]!.index - 1;
    assert(after >= this.committed, `append after ${after} is below commit ${this.committed}`);
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(
      index <= this.lastIndex(),
      `commit ${index} is beyond the last index ${this.lastIndex()} (log lost or corrupt)`,
    );
    this.committed = index;
  }

  /** Commits up to `index` only if that entry is from `term` (Raft §5.4.2). */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }

  /** Entries [lo, hi) from storage and the unstable tail, within maxBytes (at least one). */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(
      this.firstIndex() <= lo && lo <= hi && hi <= this.lastIndex() + 1,
      `slice [${lo}, ${hi}) out of [${this.firstIndex()}, ${this.lastIndex() + 1})`,
    );
    if (lo === hi) return [];
    const offset = this.unstable.offset;
    let out: Entry[] = [];
    if (lo < offset) {
      const storageHi = Math.min(hi, offset);
      out = this.storage.entries(lo, storageHi, maxBytes);
      // Storage stopped early because of the size limit: do not add unstable entries.
      if (out.length < storageHi - lo) return out;
    }
    if (hi > offset) {
      out = out.concat(this.unstable.slice(Math.max(lo, offset), hi));
    }
    return limitBytes(out, maxBytes);
  }

  /** Entries from `lo` to the end within maxBytes; [] when lo is past the end. */
  entries(lo: number, maxBytes: number): Entry[] {
    if (lo > this.lastIndex()) return [];
    return this.slice(lo, this.lastIndex() + 1, maxBytes);
  }

  /** Every entry currently held, for tests and invariant checks. */
  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), Number.MAX_SAFE_INTEGER);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  nextUnstableEntries(): Entry[] {
    return this.unstable.nextEntries();
  }

  hasNextUnstableEntries(): boolean {
    return this.unstable.offsetInProgress < this.unstable.offset + this.unstable.entries.length;
  }

  nextUnstableSnapshot(): Snapshot | undefined {
    return this.unstable.nextSnapshot();
  }

  /** A snapshot is waiting to be persisted and applied; nothing may be applied before it. */
  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  acceptUnstable(): void {
    this.unstable.acceptInProgress();
  }

  hasNextCommittedEntries(): boolean {
    if (this.hasPendingSnapshot()) return false;
    return this.applying < this.committed;
  }

  nextCommittedEntries(): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    const lo = Math.max(this.applying + 1, this.firstIndex());
    return this.slice(lo, this.committed + 1, this.maxApplyingBytes);
  }

  acceptApplying(index: number): void {
    assert(index <= this.committed, `applying ${index} beyond commit ${this.committed}`);
    this.applying = Math.max(this.applying, index);
  }

  appliedTo(index: number): void {
    assert(index <= this.committed, `applied ${index} beyond commit ${this.committed}`);
    this.applied = Math.max(this.applied, index);
    this.applying = Math.max(this.applying, this.applied);
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index);
  }

  /** Calls `visit` with pages of entries in [lo, hi), each page within maxApplyingBytes. */
  scan(lo: number, hi: number, visit: (entries: Entry[]) => boolean): void {
    while (lo < hi) {
      const page = this.slice(lo, hi, this.maxApplyingBytes);
      if (!visit(page)) return;
      lo += page.length;
    }
  }
}
