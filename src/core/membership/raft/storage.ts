/**
 * Raft storage: the read interface the core consumes (`RaftStorage`), the write interface
 * the application drives from each Ready (`RaftStorageWriter`), and `MemoryStorage`, which
 * implements both for tests and the simulator.
 *
 * Durability contract (the one rule a file-backed WAL must keep): the snapshot, entries and
 * hard state of a Ready must be durable — `sync()` returned or resolved — before any message
 * of that Ready is sent. Acks and votes in those messages promise exactly that durability.
 *
 * Reads are synchronous because the core is a pure state machine; a WAL keeps its index (and
 * ideally a tail cache) in memory and reads older entries with positional reads.
 */
import { assert, ErrorCode, RdbnetError } from '../../errors.ts';
import type { ConfState, Entry, HardState, Snapshot } from './types.ts';
import { EMPTY_HARD_STATE, entryBytes } from './types.ts';

export interface RaftStorage {
  /** The persisted hard state and the membership as of the latest snapshot. */
  initialState(): { hardState: HardState; confState: ConfState };
  /**
   * Entries with index in [lo, hi), at least one if the range is not empty, then more while
   * their total entryBytes stays within maxBytes. The core only asks for
   * firstIndex() <= lo <= hi <= lastIndex() + 1.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /**
   * Term of the entry at `index` for index in [firstIndex() - 1, lastIndex()] (firstIndex - 1
   * is the latest snapshot's index and term); undefined outside that range.
   */
  term(index: number): number | undefined;
  /** Index of the first entry still in the log (after compaction). */
  firstIndex(): number;
  /** Index of the last entry; firstIndex() - 1 when the log is empty. */
  lastIndex(): number;
  /** The latest snapshot (index 0 and empty data before any). */
  snapshot(): Snapshot;
}

export interface RaftStorageWriter {
  /** Replaces the log and state with `snapshot` (a follower catching up from a leader). */
  applySnapshot(snapshot: Snapshot): void;
  /**
   * Appends entries; an entry at an index already present replaces it and everything after
   * it (the leader overwrote a conflicting suffix).
   */
  append(entries: readonly Entry[]): void;
  setHardState(hardState: HardState): void;
  /**
   * Makes every write above durable (fsync). A WAL may buffer the three calls above and
   * flush here; the messages of the Ready are sent only after this returns or resolves.
   */
  sync(): void | Promise<void>;
  /** Records a snapshot of the state machine at `index` (must be applied and durable). */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot;
  /** Drops entries up to and including `compactIndex` (must be <= the latest snapshot). */
  compact(compactIndex: number): void;
}

export type PersistentRaftStorage = RaftStorage & RaftStorageWriter;

/** Steps 1 and 2 of a Ready (see types.ts `Ready`): persist in the one safe order, then sync. */
export function persistReady(
  storage: RaftStorageWriter,
  ready: {
    snapshot: Snapshot | undefined;
    entries: readonly Entry[];
    hardState: HardState | undefined;
  },
): void | Promise<void> {
  // The snapshot first: entries in the same Ready continue the log after it.
  if (ready.snapshot !== undefined) storage.applySnapshot(ready.snapshot);
  if (ready.entries.length > 0) storage.append(ready.entries);
  // The hard state last: its commit index may refer to the entries just appended.
  if (ready.hardState !== undefined) storage.setHardState(ready.hardState);
  return storage.sync();
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [] };
}

export function copyConfState(confState: ConfState): ConfState {
  return {
    voters: [...confState.voters].sort(),
    learners: [...confState.learners].sort(),
  };
}

/**
 * The snapshot every founding member starts from: index 1, term 1, the initial membership.
 * Membership lives in a snapshot rather than in log entries so that a node added later
 * (with empty storage) learns the founding membership the same way as any later one: the
 * leader sends it a snapshot because index 1 is never in any log.
 */
export function bootstrapSnapshot(
  voters: readonly string[],
  learners: readonly string[] = [],
  data: Uint8Array = new Uint8Array(0),
): Snapshot {
  assert(voters.length > 0, 'a bootstrap configuration needs at least one voter');
  return {
    metadata: {
      index: 1,
      term: 1,
      confState: copyConfState({ voters: [...voters], learners: [...learners] }),
    },
    data,
  };
}

/**
 * In-memory storage. In the simulator it is the "disk": a crashed node restarts from it and
 * loses whatever it had not yet written here.
 */
export class MemoryStorage implements PersistentRaftStorage {
  private hardState: HardState = { ...EMPTY_HARD_STATE };
  private snap: Snapshot = {
    metadata: { index: 0, term: 0, confState: emptyConfState() },
    data: new Uint8Array(0),
  };
  /** Index and term of the last compacted entry (the log's "dummy" entry). */
  private offsetIndex = 0;
  private offsetTerm = 0;
  /** Entries at offsetIndex + 1, offsetIndex + 2, … */
  private log: Entry[] = [];
  /** Writes since construction; tests use it to see that a Ready was persisted. */
  writes = 0;

  /** Storage for a founding member: the bootstrap snapshot, committed. */
  static bootstrap(voters: readonly string[], learners: readonly string[] = []): MemoryStorage {
    const storage = new MemoryStorage();
    storage.applySnapshot(bootstrapSnapshot(voters, learners));
    storage.setHardState({ term: 1, vote: '', commit: 1 });
    return storage;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return {
      hardState: { ...this.hardState },
      confState: copyConfState(this.snap.metadata.confState),
    };
  }

  hardStateNow(): HardState {
    return { ...this.hardState };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return entriesWithin(this.log, this.offsetIndex, lo, hi, maxBytes);
  }

  term(index: number): number | undefined {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.log[index - this.offsetIndex - 1]!.term;
  }

  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.offsetIndex + this.log.length;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  applySnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (index <= this.snap.metadata.index && this.snap.metadata.index > 0) {
      throw new RdbnetError(
        ErrorCode.Internal,
        `raft storage: snapshot ${index} is older than the stored one (${this.snap.metadata.index})`,
      );
    }
    this.writes++;
    this.snap = { metadata: { ...snapshot.metadata }, data: snapshot.data };
    this.offsetIndex = index;
    this.offsetTerm = term;
    this.log = [];
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    this.writes++;
    const first = entries[0]!.index;
    assert(
      first <= this.lastIndex() + 1,
      `storage append at ${first} leaves a gap after ${this.lastIndex()}`,
    );
    // Entries at or below the compaction point are already covered by the snapshot.
    const skip = Math.max(0, this.offsetIndex + 1 - first);
    if (skip >= entries.length) return;
    const from = first + skip;
    this.log.length = from - this.offsetIndex - 1;
    for (let i = skip; i < entries.length; i++) this.log.push(entries[i]!);
  }

  setHardState(hardState: HardState): void {
    this.writes++;
    this.hardState = { ...hardState };
  }

  sync(): void {}

  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `raft storage: snapshot at ${index} is not newer than ${this.snap.metadata.index}`,
      );
    }
    const term = this.term(index);
    if (term === undefined || index > this.hardState.commit) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `raft storage: cannot snapshot at ${index} (log ${this.offsetIndex}..${this.lastIndex()}, commit ${this.hardState.commit})`,
      );
    }
    this.writes++;
    this.snap = { metadata: { index, term, confState: copyConfState(confState) }, data };
    return this.snap;
  }

  compact(compactIndex: number): void {
    if (compactIndex <= this.offsetIndex) return;
    if (compactIndex > this.snap.metadata.index) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `raft storage: cannot compact to ${compactIndex} beyond snapshot ${this.snap.metadata.index}`,
      );
    }
    this.writes++;
    const term = this.term(compactIndex)!;
    this.log = this.log.slice(compactIndex - this.offsetIndex);
    this.offsetIndex = compactIndex;
    this.offsetTerm = term;
  }
}

/**
 * Entries [lo, hi) of a log whose first entry is at offsetIndex + 1, at least one and then no
 * more than maxBytes in all (the storage contract of RaftStorage.entries, shared by every
 * storage). A compacted lo is an error; a range past the log is a bug.
 */
export function entriesWithin(
  log: readonly (Entry | undefined)[],
  offsetIndex: number,
  lo: number,
  hi: number,
  maxBytes: number,
): Entry[] {
  if (lo <= offsetIndex) {
    throw new RdbnetError(ErrorCode.Internal, `raft storage: entry ${lo} is compacted`);
  }
  const lastIndex = offsetIndex + log.length;
  assert(
    hi <= lastIndex + 1 && lo <= hi,
    `storage entries [${lo}, ${hi}) out of range (last ${lastIndex})`,
  );
  const out: Entry[] = [];
  let bytes = 0;
  for (let index = lo; index < hi; index++) {
    const entry = log[index - offsetIndex - 1]!;
    bytes += entryBytes(entry);
    if (out.length > 0 && bytes > maxBytes) break;
    out.push(entry);
  }
  return out;
}
