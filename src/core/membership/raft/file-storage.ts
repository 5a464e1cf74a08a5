/**
 * FileRaftStorage: durable Raft storage in a data dir, with MemoryStorage's semantics.
 *
 * Writes update the in-memory index at once (reads are synchronous, the core needs that)
 * and queue WAL records; sync() writes the queued records as one batch and fdatasyncs it.
 * So nothing reaches the disk between syncs, and a crash loses exactly the writes since the
 * last completed sync — the state a MemoryStorage would have if it were updated only at sync
 * points. Snapshot data is held in memory and in its own file; entries are held in memory
 * until compaction (this serves the membership group, whose log is small and compacted
 * often; a data group would want a tail cache and positional reads instead).
 *
 * A watermark file (watermark.ts) trails the WAL by one batch, so that a WAL emptied,
 * zeroed, truncated or removed behind the node's back is refused at open instead of being
 * taken for a fresh start.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { assert, ErrorCode, RdbnetError } from '../../errors.ts';
import { fileSystemError, onFile } from '../../fs-errors.ts';
import type { PersistentRaftStorage } from './storage.ts';
import { copyConfState, entriesWithin } from './storage.ts';
import type { ConfState, Entry, HardState, Snapshot } from './types.ts';
import { EMPTY_HARD_STATE } from './types.ts';
import {
  EMPTY_SNAPSHOT_REF,
  fsyncDir,
  type RecoveredWal,
  readSnapshotData,
  recoverWal,
  removeStaleFiles,
  type SnapshotFileWrite,
  type SnapshotRef,
  snapshotFileName,
  snapshotFilesIn,
  truncateTornTail,
  WAL_ENTRY_DATA_BYTES_MAX,
  WAL_SEGMENT_BYTES_DEFAULT,
  WAL_SEGMENT_BYTES_MAX,
  WAL_SEGMENT_BYTES_MIN,
  WAL_SNAPSHOT_DATA_BYTES_MAX,
  type WalPoint,
  type WalRecord,
  type WalRecovery,
  WalWriter,
  walCorrupt,
  walFrameBytes,
  walLost,
} from './wal.ts';
import {
  type RaftWatermark,
  readWatermark,
  removeWatermarkTemp,
  WATERMARK_FILE_NAME,
  writeWatermark,
} from './watermark.ts';

export interface FileRaftStorageOptions {
  /**
   * A new segment file starts once the active one would grow past this many bytes
   * (WAL_SEGMENT_BYTES_MIN..WAL_SEGMENT_BYTES_MAX, default 64 MiB). Compaction deletes whole
   * segments, so this is also the granularity at which disk space comes back.
   */
  segmentBytesTarget?: number;
  /**
   * Where the watermark file lives (default `<dir>/watermark.json`). A node keeps it beside
   * the storage dir rather than in it, so that losing the whole dir is refused too.
   */
  watermarkPath?: string;
  /**
   * The node this storage belongs to: recorded in the watermark, and an open by another
   * node id is refused (RDB_CONFIG_INVALID).
   */
  nodeId?: string;
  /**
   * Asked whenever the watermark is written: the cluster id to record in it, for the
   * operator reading an error ('' keeps the one recorded before).
   */
  clusterId?: () => string;
}

export interface FileRaftStorageStats {
  syncs: number;
  recordsWritten: number;
  bytesWritten: number;
  segments: number;
  segmentsCreated: number;
  segmentsDeleted: number;
  snapshotFilesWritten: number;
  /** 1 when open() truncated a torn tail (details in `recovery.tornTail`). */
  tornTailsTruncated: number;
  /** Writes queued since the last sync(). */
  pendingRecords: number;
  /** Times the watermark file was written (at most one write in flight; see raiseWatermark). */
  watermarkWrites: number;
  /** WAL records the watermark vouches for (0 before the first write). */
  watermarkSeq: number;
}

/** The in-memory index: MemoryStorage's state and rules, plus replay of WAL records. */
class LogState {
  hardState: HardState = { ...EMPTY_HARD_STATE };
  snapshotRef: SnapshotRef = EMPTY_SNAPSHOT_REF;
  snap: Snapshot = {
    metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
    data: new Uint8Array(0),
  };
  offsetIndex = 0;
  offsetTerm = 0;
  /**
   * Entries at offsetIndex + 1, … Holes only during replay: entries that lived in deleted
   * segments, which compaction records later in the WAL must cover.
   */
  log: (Entry | undefined)[] = [];

  lastIndex(): number {
    return this.offsetIndex + this.log.length;
  }

  term(index: number): number | undefined {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.log[index - this.offsetIndex - 1]!.term;
  }

  setSnapshot(ref: SnapshotRef, data: Uint8Array): void {
    this.snapshotRef = ref;
    this.snap = { metadata: ref.metadata, data };
  }

  /** Caller checked `first <= lastIndex() + 1`; returns the entries actually stored. */
  append(entries: readonly Entry[]): readonly Entry[] {
    const first = entries[0]!.index;
    // Entries at or below the compaction point are already covered by the snapshot.
    const skip = Math.max(0, this.offsetIndex + 1 - first);
    if (skip >= entries.length) return [];
    this.log.length = first + skip - this.offsetIndex - 1;
    for (let i = skip; i < entries.length; i++) this.log.push(entries[i]!);
    return skip === 0 ? entries : entries.slice(skip);
  }

  applySnapshot(ref: SnapshotRef, data: Uint8Array): void {
    this.setSnapshot(ref, data);
    this.offsetIndex = ref.metadata.index;
    this.offsetTerm = ref.metadata.term;
    this.log = [];
  }

  compact(index: number, term: number): void {
    this.log = this.log.slice(index - this.offsetIndex);
    this.offsetIndex = index;
    this.offsetTerm = term;
  }

  /** Applies one record read back from the WAL (recoverWal checked its place in the stream). */
  replay(record: WalRecord): void {
    switch (record.kind) {
      case 'checkpoint': {
        const state = record.state;
        this.hardState = { ...state.hardState };
        this.setSnapshot(state.snapshot, this.snap.data);
        this.offsetIndex = state.offsetIndex;
        this.offsetTerm = state.offsetTerm;
        this.log = new Array<Entry | undefined>(state.lastIndex - state.offsetIndex);
        return;
      }
      case 'entry':
        this.append([record.entry]);
        return;
      case 'hardState':
        this.hardState = { ...record.hardState };
        return;
      case 'applySnapshot':
        this.applySnapshot(record.snapshot, this.snap.data);
        return;
      case 'createSnapshot':
        this.setSnapshot(record.snapshot, this.snap.data);
        return;
      case 'compact':
        if (record.index > this.offsetIndex) this.compact(record.index, record.term);
        return;
    }
  }
}

/** Indexes, terms and commits are stored as u64 but must be exact in a JS number. */
function checkCounter(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RdbnetError(ErrorCode.Usage, `raft storage: ${what} ${value} is not an index`);
  }
}

function checkSnapshotData(data: Uint8Array): void {
  if (data.byteLength > WAL_SNAPSHOT_DATA_BYTES_MAX) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `raft storage: snapshot data of ${data.byteLength} bytes exceeds ${WAL_SNAPSHOT_DATA_BYTES_MAX}`,
    );
  }
}

/** What the watermark says about `point`, for `options`' node, keeping what `previous` knew. */
function watermarkAt(
  point: WalPoint,
  options: FileRaftStorageOptions,
  previous: RaftWatermark | undefined,
): RaftWatermark {
  const { state } = point;
  return {
    nodeId: options.nodeId ?? previous?.nodeId ?? '',
    clusterId: options.clusterId?.() || previous?.clusterId || '',
    seq: point.seq,
    term: state.hardState.term,
    vote: state.hardState.vote,
    commit: state.hardState.commit,
    lastIndex: state.lastIndex,
    snapshotIndex: state.snapshot.metadata.index,
    snapshotTerm: state.snapshot.metadata.term,
  };
}

function describeWatermark(watermark: RaftWatermark): string {
  const owner = [
    watermark.nodeId === '' ? '' : `node ${watermark.nodeId}`,
    watermark.clusterId === '' ? '' : `cluster ${watermark.clusterId}`,
  ].filter((part) => part !== '');
  return (
    `records up to ${watermark.seq} (term ${watermark.term}, vote '${watermark.vote}', ` +
    `commit ${watermark.commit}, last index ${watermark.lastIndex}, snapshot ${watermark.snapshotIndex}` +
    `${owner.length > 0 ? `; ${owner.join(', ')}` : ''})`
  );
}

/** Where the WAL ends, naming its files, for an RDB_STORAGE_LOST message. */
function describeWalEnd(dir: string, recovered: RecoveredWal): string {
  const { segments } = recovered;
  if (segments.length === 0) return `${dir} holds no WAL segment`;
  const last = join(dir, segments.at(-1)!.name);
  const files = segments.length === 1 ? last : `${segments.length} segments, the last ${last},`;
  const end = recovered.nextSeq - 1;
  return end === 0 ? `${files} holds no record` : `the WAL (${files}) ends at record ${end}`;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw fileSystemError(error, path, 'read');
  }
}

export class FileRaftStorage implements PersistentRaftStorage {
  readonly dir: string;
  /** What open() found: segments and records read, and the torn tail it truncated. */
  readonly recovery: WalRecovery;
  /** Where the watermark file is (FileRaftStorageOptions.watermarkPath). */
  readonly watermarkPath: string;
  private readonly options: FileRaftStorageOptions;
  private readonly state: LogState;
  private readonly writer: WalWriter;
  private pending: WalRecord[] = [];
  private pendingFiles: SnapshotFileWrite[] = [];
  /** The chain of batches being written; a rejected one poisons every later sync. */
  private syncing: Promise<void> = Promise.resolve();
  private syncs = 0;
  private closed = false;
  /** The watermark on disk (undefined before the first one is written). */
  private watermark: RaftWatermark | undefined;
  /**
   * The one watermark write in flight. Raises requested meanwhile are not queued: the write
   * loop picks up the newest confirmed point when it finishes (bound 1, overflow coalesces).
   */
  private raising: Promise<void> | null = null;
  /** A failed watermark write: like a failed WAL write, it poisons every later sync. */
  private watermarkFailure: unknown;
  private watermarkWrites = 0;

  private constructor(
    dir: string,
    recovery: WalRecovery,
    state: LogState,
    writer: WalWriter,
    watermarkPath: string,
    watermark: RaftWatermark | undefined,
    options: FileRaftStorageOptions,
  ) {
    this.dir = dir;
    this.recovery = recovery;
    this.state = state;
    this.writer = writer;
    this.watermarkPath = watermarkPath;
    this.watermark = watermark;
    this.options = options;
  }

  /**
   * Opens (creating if needed) the storage in `dir`, replaying and verifying the WAL. Throws
   * RDB_STORAGE_CORRUPT when the data on disk is damaged beyond a torn tail, RDB_STORAGE_LOST
   * when the WAL ends before what its watermark vouches for (or a segment is all zeros),
   * RDB_STORAGE_FULL / _DENIED / _IO naming the file when the file system fails, and
   * RDB_CONFIG_INVALID for bad options or another node's storage. Everything is checked
   * before anything is written: a refused open leaves the files as they were. One process
   * per dir: nothing here locks it.
   */
  static async open(dir: string, options: FileRaftStorageOptions = {}): Promise<FileRaftStorage> {
    const segmentBytesTarget = options.segmentBytesTarget ?? WAL_SEGMENT_BYTES_DEFAULT;
    if (
      !Number.isInteger(segmentBytesTarget) ||
      segmentBytesTarget < WAL_SEGMENT_BYTES_MIN ||
      segmentBytesTarget > WAL_SEGMENT_BYTES_MAX
    ) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `raft storage: segmentBytesTarget ${segmentBytesTarget} is outside ${WAL_SEGMENT_BYTES_MIN}..${WAL_SEGMENT_BYTES_MAX}`,
      );
    }
    const watermarkPath = options.watermarkPath ?? join(dir, WATERMARK_FILE_NAME);
    const watermark = await readWatermark(watermarkPath);
    const nodeId = options.nodeId;
    if (
      watermark !== undefined &&
      nodeId !== undefined &&
      watermark.nodeId !== '' &&
      watermark.nodeId !== nodeId
    ) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `raft storage ${dir} belongs to node '${watermark.nodeId}' (says ${watermarkPath}), not '${nodeId}'`,
        {
          hint: `start it with --id ${watermark.nodeId}, or use another --data-dir for a new node`,
        },
      );
    }

    const state = new LogState();
    let recovered: RecoveredWal;
    if (await isDirectory(dir)) {
      recovered = await recoverWal(dir, (record) => state.replay(record));
    } else {
      if (watermark !== undefined && watermark.seq > 0) {
        throw walLost(
          `${dir} is missing, but ${watermarkPath} says the WAL held ${describeWatermark(watermark)}`,
        );
      }
      const created = await onFile(dir, 'create', () => mkdir(dir, { recursive: true }));
      if (created !== undefined) {
        await onFile(dirname(created), 'sync', () => fsyncDir(dirname(created)));
      }
      recovered = await recoverWal(dir, (record) => state.replay(record));
    }
    for (let i = 0; i < state.log.length; i++) {
      if (state.log[i] === undefined) {
        throw walCorrupt(
          `entry ${state.offsetIndex + i + 1} is in no segment (a deleted segment was still needed)`,
        );
      }
    }
    if (watermark !== undefined && recovered.nextSeq - 1 < watermark.seq) {
      throw walLost(
        `${describeWalEnd(dir, recovered)}, but ${watermarkPath} says it held ${describeWatermark(watermark)}: ` +
          'the WAL was emptied, truncated or removed',
      );
    }
    if (recovered.nextSeq === 1) {
      // An empty WAL beside a snapshot file: the snapshot is only ever written for a WAL that
      // then records it, so the WAL (and with it the term, the vote and the log) was lost —
      // even when its watermark went with it.
      const [orphan] = await snapshotFilesIn(dir);
      if (orphan !== undefined) {
        throw walLost(
          `the WAL in ${dir} holds no record, but ${join(dir, orphan)} says this node held a snapshot: ` +
            'the WAL was emptied, truncated or removed (if this node crashed during its very first start, remove the data dir)',
        );
      }
    }
    state.setSnapshot(state.snapshotRef, await readSnapshotData(dir, state.snapshotRef));

    // Everything checked: from here on the dir is repaired and written to.
    if (recovered.recovery.tornTail !== undefined) {
      await truncateTornTail(dir, recovered.recovery.tornTail);
    }
    recovered.recovery.removedFiles = await removeStaleFiles(
      dir,
      snapshotFileName(state.snapshotRef),
    );
    recovered.recovery.watermarkMissing = watermark === undefined && recovered.nextSeq > 1;
    await removeWatermarkTemp(watermarkPath);
    const writer = await WalWriter.open(dir, recovered, segmentBytesTarget);
    const storage = new FileRaftStorage(
      dir,
      recovered.recovery,
      state,
      writer,
      watermarkPath,
      watermark,
      options,
    );
    // A data dir without a watermark (or with one a crash left behind) gets one now, from
    // what the WAL proves; open() waits for it, so a failed write fails the open.
    storage.raiseWatermark();
    await storage.raising;
    if (storage.watermarkFailure !== undefined) {
      await writer.close();
      throw storage.watermarkFailure;
    }
    return storage;
  }

  // ---------------------------------------------------------------- RaftStorage (reads)

  initialState(): { hardState: HardState; confState: ConfState } {
    return {
      hardState: { ...this.state.hardState },
      confState: copyConfState(this.state.snap.metadata.confState),
    };
  }

  hardStateNow(): HardState {
    return { ...this.state.hardState };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return entriesWithin(this.state.log, this.state.offsetIndex, lo, hi, maxBytes);
  }

  term(index: number): number | undefined {
    return this.state.term(index);
  }

  firstIndex(): number {
    return this.state.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.state.lastIndex();
  }

  snapshot(): Snapshot {
    return this.state.snap;
  }

  // ---------------------------------------------------------------- RaftStorageWriter

  applySnapshot(snapshot: Snapshot): void {
    this.checkOpen();
    const current = this.state.snap.metadata.index;
    const { index } = snapshot.metadata;
    if (index <= current && current > 0) {
      throw new RdbnetError(
        ErrorCode.Internal,
        `raft storage: snapshot ${index} is older than the stored one (${current})`,
      );
    }
    checkCounter(index, 'snapshot index');
    checkCounter(snapshot.metadata.term, 'snapshot term');
    checkSnapshotData(snapshot.data);
    const ref: SnapshotRef = {
      metadata: { ...snapshot.metadata },
      dataBytes: snapshot.data.byteLength,
      dataCrc: crc32(snapshot.data),
    };
    const record: WalRecord = { kind: 'applySnapshot', snapshot: ref };
    walFrameBytes(record);
    this.state.applySnapshot(ref, snapshot.data);
    this.pending.push(record);
    this.pendingFiles.push({ ref, data: snapshot.data });
  }

  append(entries: readonly Entry[]): void {
    this.checkOpen();
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    assert(
      first <= this.lastIndex() + 1,
      `storage append at ${first} leaves a gap after ${this.lastIndex()}`,
    );
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      assert(entry.index === first + i, `storage append: entry ${entry.index} out of sequence`);
      checkCounter(entry.index, 'entry index');
      checkCounter(entry.term, 'entry term');
      if (entry.data.byteLength > WAL_ENTRY_DATA_BYTES_MAX) {
        throw new RdbnetError(
          ErrorCode.Usage,
          `raft storage: entry ${entry.index} of ${entry.data.byteLength} bytes exceeds ${WAL_ENTRY_DATA_BYTES_MAX}`,
        );
      }
    }
    for (const entry of this.state.append(entries)) this.pending.push({ kind: 'entry', entry });
  }

  setHardState(hardState: HardState): void {
    this.checkOpen();
    checkCounter(hardState.term, 'term');
    checkCounter(hardState.commit, 'commit');
    const record: WalRecord = { kind: 'hardState', hardState: { ...hardState } };
    walFrameBytes(record);
    this.state.hardState = { ...hardState };
    this.pending.push(record);
  }

  /**
   * Writes everything since the last sync as one batch and fdatasyncs it; resolves when it
   * is durable. Batches are written one at a time in call order. After a failed write or
   * fsync every later sync rejects too: what reached the disk is unknown until a reopen
   * recovers it. A failed watermark write poisons the same way.
   */
  sync(): Promise<void> {
    this.checkOpen();
    if (this.pending.length > 0 || this.pendingFiles.length > 0) {
      const records = this.pending;
      const files = this.pendingFiles;
      this.pending = [];
      this.pendingFiles = [];
      this.syncs++;
      this.syncing = this.syncing.then(async () => {
        if (this.watermarkFailure !== undefined) throw this.watermarkFailure;
        await this.writer.writeBatch(records, files);
        // Off the batch's path: the watermark only vouches for what is durable already, so
        // the Ready's messages need not wait for it.
        this.raiseWatermark();
      });
    }
    return this.syncing;
  }

  /**
   * Moves the watermark up to the WAL's confirmed point (WalWriter.confirmed) when that is
   * past it. One write at a time; a request during a write is served by the loop, with the
   * newest point, when the write finishes.
   */
  private raiseWatermark(): void {
    if (this.raising !== null || this.watermarkFailure !== undefined) return;
    const loop = async () => {
      for (;;) {
        const point = this.writer.confirmed();
        if (point === undefined || point.seq <= (this.watermark?.seq ?? 0)) return;
        const next = watermarkAt(point, this.options, this.watermark);
        await writeWatermark(this.watermarkPath, next);
        this.watermark = next;
        this.watermarkWrites++;
      }
    };
    this.raising = loop()
      .catch((error: unknown) => {
        this.watermarkFailure = error;
      })
      .finally(() => {
        this.raising = null;
      });
  }

  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    this.checkOpen();
    const state = this.state;
    if (index <= state.snap.metadata.index) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `raft storage: snapshot at ${index} is not newer than ${state.snap.metadata.index}`,
      );
    }
    const term = state.term(index);
    if (term === undefined || index > state.hardState.commit) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `raft storage: cannot snapshot at ${index} (log ${state.offsetIndex}..${this.lastIndex()}, commit ${state.hardState.commit})`,
      );
    }
    checkSnapshotData(data);
    const ref: SnapshotRef = {
      metadata: { index, term, confState: copyConfState(confState) },
      dataBytes: data.byteLength,
      dataCrc: crc32(data),
    };
    const record: WalRecord = { kind: 'createSnapshot', snapshot: ref };
    walFrameBytes(record);
    state.setSnapshot(ref, data);
    this.pending.push(record);
    this.pendingFiles.push({ ref, data });
    return state.snap;
  }

  compact(compactIndex: number): void {
    this.checkOpen();
    const state = this.state;
    if (compactIndex <= state.offsetIndex) return;
    if (compactIndex > state.snap.metadata.index) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `raft storage: cannot compact to ${compactIndex} beyond snapshot ${state.snap.metadata.index}`,
      );
    }
    const term = state.term(compactIndex);
    if (term === undefined) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `raft storage: cannot compact to ${compactIndex}: not in the log (last ${this.lastIndex()})`,
      );
    }
    state.compact(compactIndex, term);
    this.pending.push({ kind: 'compact', index: compactIndex, term });
  }

  // ---------------------------------------------------------------- lifecycle

  stats(): FileRaftStorageStats {
    const writer = this.writer.stats;
    return {
      syncs: this.syncs,
      recordsWritten: writer.records,
      bytesWritten: writer.bytes,
      segments: this.writer.segmentCount(),
      segmentsCreated: writer.segmentsCreated,
      segmentsDeleted: writer.segmentsDeleted,
      snapshotFilesWritten: writer.snapshotFilesWritten,
      tornTailsTruncated: this.recovery.tornTail === undefined ? 0 : 1,
      pendingRecords: this.pending.length,
      watermarkWrites: this.watermarkWrites,
      watermarkSeq: this.watermark?.seq ?? 0,
    };
  }

  /**
   * Waits for the batch being written, then closes the segment file. Writes not yet passed
   * to sync() are dropped, exactly as a crash would drop them: call sync() first to keep them.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.syncing.catch(() => {});
    await this.raising;
    await this.writer.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new RdbnetError(ErrorCode.Usage, 'raft storage: closed');
  }
}
