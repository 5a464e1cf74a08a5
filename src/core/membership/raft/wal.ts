/**
 * The write-ahead log under FileRaftStorage (file-storage.ts): checksummed records in
 * append-only segment files, and snapshot data in separate files written atomically. This
 * module owns the bytes on disk and the rules for what can be trusted after a crash;
 * FileRaftStorage owns the Raft semantics and the in-memory index.
 *
 * Record frame, little-endian:
 *
 *   u32 length    bytes after the crc field (type .. end of payload)
 *   u32 crc       crc32 of the length field, then of type .. end of payload
 *   u8  type      checkpoint | entry | hardState | applySnapshot | createSnapshot | compact
 *   u64 seq       +1 per record over the whole WAL, continuing across segments
 *   u32 ordinal   position within its sync batch (0 = the batch's first record)
 *   …   payload
 *
 * The crc covers the length so that a flipped length is a checksum failure, not a frame
 * boundary moved somewhere plausible. seq and ordinal let recovery tell a torn tail (damage
 * inside the last, possibly unacknowledged batch) from damage to data a completed sync
 * promised was durable (see recoverWal).
 *
 * Segment files are named `<segment seq>-<seq of first record>.wal` (16 hex digits each).
 * Every segment starts with a checkpoint record: the scalar state (snapshot metadata, hard
 * state, compaction point, last index) at that point of the stream. So a prefix of segments
 * can be deleted once compaction passed every entry index they mention, and replay starts at
 * the first remaining segment. All writes happen in writeBatch (called by sync()), at the
 * offset recovery established, never at the physical end of file, and a segment is fsynced
 * before the next one is created.
 */
import type { FileHandle } from 'node:fs/promises';
import { open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { assert, ErrorCode, RdbnetError } from '../../errors.ts';
import { onFile } from '../../fs-errors.ts';
import type { ConfState, Entry, HardState, SnapshotMetadata } from './types.ts';

const MIB = 1024 * 1024;

/** The length and crc fields in front of every record body. */
export const WAL_FRAME_PREFIX_BYTES = 8;
/** type (u8) + seq (u64) + ordinal (u32): the checksummed body before the payload. */
const BODY_HEADER_BYTES = 13;
/** The smallest frame; bounds how many records can hide in a damaged tail. */
const FRAME_BYTES_MIN = WAL_FRAME_PREFIX_BYTES + BODY_HEADER_BYTES;
/** Largest entry payload the WAL stores; a larger entry is refused at append. */
export const WAL_ENTRY_DATA_BYTES_MAX = 16 * MIB;
/** Largest record body: one maximal entry with its fields, or a large membership. */
export const WAL_RECORD_BODY_BYTES_MAX = WAL_ENTRY_DATA_BYTES_MAX + 64 * 1024;
/** A new segment starts once the active one would grow past this (etcd uses 64 MiB too). */
export const WAL_SEGMENT_BYTES_DEFAULT = 64 * MIB;
/** Small enough for tests to roll over every few records. */
export const WAL_SEGMENT_BYTES_MIN = 1024;
export const WAL_SEGMENT_BYTES_MAX = 1024 * MIB;
/**
 * A segment holds at most the target plus one checkpoint and one record that did not fit in
 * the previous segment; a larger file was not written by this module and is not read whole.
 */
const SEGMENT_FILE_BYTES_MAX =
  WAL_SEGMENT_BYTES_MAX + 2 * (WAL_FRAME_PREFIX_BYTES + WAL_RECORD_BODY_BYTES_MAX);
/**
 * Segment files that may exist at once (256 GiB at the default size). Reaching it means
 * compaction has stopped; the sync that would create one more fails and poisons the WAL.
 */
export const WAL_SEGMENT_FILES_MAX = 4096;
/** Largest snapshot data file; the snapshot is also held in memory. */
export const WAL_SNAPSHOT_DATA_BYTES_MAX = 256 * MIB;
/** Node ids (vote, membership) are u16-length-prefixed. */
export const WAL_NODE_ID_BYTES_MAX = 0xffff;
/** Members per list in a ConfState (u16 count). */
export const WAL_MEMBERS_MAX = 0xffff;
/** Bytes handed to one write() during a sync; bounds the batch buffer for huge batches. */
const WRITE_CHUNK_BYTES_MAX = 4 * MIB;

const SEGMENT_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;
const SNAPSHOT_NAME = /^snapshot-[0-9a-f]{16}-[0-9a-f]{16}\.snap$/;
const TEMP_SUFFIX = '.tmp';

/** Snapshot metadata plus what is needed to find and verify its data file. */
export interface SnapshotRef {
  metadata: SnapshotMetadata;
  dataBytes: number;
  dataCrc: number;
}

/** The scalar state at a point of the record stream: what a checkpoint holds. */
export interface WalState {
  snapshot: SnapshotRef;
  hardState: HardState;
  /** Index and term of the last compacted entry (MemoryStorage's offset). */
  offsetIndex: number;
  offsetTerm: number;
  lastIndex: number;
}

/**
 * Replay semantics (FileRaftStorage applies them in this order):
 * - checkpoint: the state at a segment start; replayed only from the first segment, where
 *   entries (offsetIndex, lastIndex] lived in deleted segments and must end up compacted;
 * - entry: MemoryStorage.append of one entry — it replaces the entry at its index and
 *   everything after it, so a conflicting append needs no separate truncate record;
 * - hardState, applySnapshot, createSnapshot: as MemoryStorage;
 * - compact: carries the term so replay never looks up an entry it may not have.
 */
export type WalRecord =
  | { kind: 'checkpoint'; state: WalState }
  | { kind: 'entry'; entry: Entry }
  | { kind: 'hardState'; hardState: HardState }
  | { kind: 'applySnapshot'; snapshot: SnapshotRef }
  | { kind: 'createSnapshot'; snapshot: SnapshotRef }
  | { kind: 'compact'; index: number; term: number };

type RecordKind = WalRecord['kind'];

const RECORD_TYPE: Readonly<Record<RecordKind, number>> = {
  checkpoint: 1,
  entry: 2,
  hardState: 3,
  applySnapshot: 4,
  createSnapshot: 5,
  compact: 6,
};
const KIND_OF_TYPE: readonly (RecordKind | undefined)[] = [
  undefined,
  'checkpoint',
  'entry',
  'hardState',
  'applySnapshot',
  'createSnapshot',
  'compact',
];

export const EMPTY_SNAPSHOT_REF: Readonly<SnapshotRef> = Object.freeze({
  metadata: Object.freeze({
    index: 0,
    term: 0,
    confState: Object.freeze({ voters: [], learners: [] }) as unknown as ConfState,
  }),
  dataBytes: 0,
  dataCrc: 0,
});

export function emptyWalState(): WalState {
  return {
    snapshot: EMPTY_SNAPSHOT_REF,
    hardState: { term: 0, vote: '', commit: 0 },
    offsetIndex: 0,
    offsetTerm: 0,
    lastIndex: 0,
  };
}

/** What an operator can do about a damaged or lost Raft data dir. */
const DAMAGED_HINT =
  'do not start this node on it (it may have forgotten votes and entries): restore the whole data dir from a backup, ' +
  'or remove this node from the cluster and re-add it with an empty data dir';

/** Damage found on disk: the data dir cannot be trusted as it is. */
export function walCorrupt(message: string, cause?: unknown): RdbnetError {
  return new RdbnetError(ErrorCode.StorageCorrupt, `raft wal: ${message}`, {
    hint: DAMAGED_HINT,
    cause,
  });
}

/** Records the data dir once held are gone (emptied, zeroed, truncated or removed files). */
export function walLost(message: string): RdbnetError {
  return new RdbnetError(ErrorCode.StorageLost, `raft wal: ${message}`, { hint: DAMAGED_HINT });
}

// ------------------------------------------------------------------ state along the stream

/** The state after `record`; `undefined` when the record cannot follow `state` (a gap). */
export function advanceWalState(state: WalState, record: WalRecord): WalState | undefined {
  switch (record.kind) {
    case 'checkpoint':
      return record.state;
    case 'entry': {
      const index = record.entry.index;
      if (index > state.lastIndex + 1) return undefined;
      // At or below the compaction point the snapshot covers it (MemoryStorage skips it).
      if (index <= state.offsetIndex) return state;
      return { ...state, lastIndex: index };
    }
    case 'hardState':
      return { ...state, hardState: record.hardState };
    case 'applySnapshot': {
      const { index, term } = record.snapshot.metadata;
      return {
        ...state,
        snapshot: record.snapshot,
        offsetIndex: index,
        offsetTerm: term,
        lastIndex: index,
      };
    }
    case 'createSnapshot':
      return { ...state, snapshot: record.snapshot };
    case 'compact':
      if (record.index <= state.offsetIndex) return state;
      return { ...state, offsetIndex: record.index, offsetTerm: record.term };
  }
}

function sameConfState(a: ConfState, b: ConfState): boolean {
  const same = (x: readonly string[], y: readonly string[]) =>
    x.length === y.length && x.every((id, i) => id === y[i]);
  return same(a.voters, b.voters) && same(a.learners, b.learners);
}

function sameSnapshotRef(a: SnapshotRef, b: SnapshotRef): boolean {
  return (
    a.metadata.index === b.metadata.index &&
    a.metadata.term === b.metadata.term &&
    sameConfState(a.metadata.confState, b.metadata.confState) &&
    a.dataBytes === b.dataBytes &&
    a.dataCrc === b.dataCrc
  );
}

function sameWalState(a: WalState, b: WalState): boolean {
  return (
    sameSnapshotRef(a.snapshot, b.snapshot) &&
    a.hardState.term === b.hardState.term &&
    a.hardState.vote === b.hardState.vote &&
    a.hardState.commit === b.hardState.commit &&
    a.offsetIndex === b.offsetIndex &&
    a.offsetTerm === b.offsetTerm &&
    a.lastIndex === b.lastIndex
  );
}

// ------------------------------------------------------------------ codec

const TWO_POW_32 = 2 ** 32;

function writeU64(buf: Buffer, at: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, `wal: ${value} is not a u53`);
  buf.writeUInt32LE(value % TWO_POW_32, at);
  buf.writeUInt32LE(Math.floor(value / TWO_POW_32), at + 4);
}

/** Malformed payload inside a record whose checksum matched: written that way, a bug. */
class PayloadError extends Error {}

class Reader {
  private readonly buf: Buffer;
  private readonly end: number;
  private pos: number;

  constructor(buf: Buffer, start: number, end: number) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  private take(bytes: number): number {
    if (this.pos + bytes > this.end) throw new PayloadError('payload ends early');
    const at = this.pos;
    this.pos += bytes;
    return at;
  }

  u8(): number {
    return this.buf[this.take(1)]!;
  }

  u16(): number {
    return this.buf.readUInt16LE(this.take(2));
  }

  u32(): number {
    return this.buf.readUInt32LE(this.take(4));
  }

  u64(): number {
    const at = this.take(8);
    const high = this.buf.readUInt32LE(at + 4);
    if (high > 0x1fffff) throw new PayloadError('u64 beyond 2^53');
    return high * TWO_POW_32 + this.buf.readUInt32LE(at);
  }

  str(): string {
    const bytes = this.u16();
    const at = this.take(bytes);
    return this.buf.toString('utf8', at, at + bytes);
  }

  rest(): Uint8Array {
    const at = this.take(this.end - this.pos);
    // A copy: a view would keep the whole segment buffer alive for as long as the entry.
    return new Uint8Array(this.buf.subarray(at, this.end));
  }

  done(): void {
    if (this.pos !== this.end) throw new PayloadError('trailing bytes in payload');
  }
}

/** Writes into a frame buffer sized beforehand by payloadBytes. */
class Writer {
  private readonly buf: Buffer;
  pos: number;

  constructor(buf: Buffer, start: number) {
    this.buf = buf;
    this.pos = start;
  }

  u8(value: number): void {
    this.pos = this.buf.writeUInt8(value, this.pos);
  }

  u16(value: number): void {
    this.pos = this.buf.writeUInt16LE(value, this.pos);
  }

  u32(value: number): void {
    this.pos = this.buf.writeUInt32LE(value >>> 0, this.pos);
  }

  u64(value: number): void {
    writeU64(this.buf, this.pos, value);
    this.pos += 8;
  }

  str(value: string): void {
    const bytes = this.buf.write(value, this.pos + 2, 'utf8');
    this.buf.writeUInt16LE(bytes, this.pos);
    this.pos += 2 + bytes;
  }

  bytes(value: Uint8Array): void {
    this.buf.set(value, this.pos);
    this.pos += value.byteLength;
  }
}

function strBytes(value: string): number {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > WAL_NODE_ID_BYTES_MAX) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `raft wal: node id of ${bytes} bytes exceeds ${WAL_NODE_ID_BYTES_MAX}`,
    );
  }
  return 2 + bytes;
}

function confStateBytes(confState: ConfState): number {
  let total = 4;
  for (const list of [confState.voters, confState.learners]) {
    if (list.length > WAL_MEMBERS_MAX) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `raft wal: ${list.length} members exceed ${WAL_MEMBERS_MAX}`,
      );
    }
    for (const id of list) total += strBytes(id);
  }
  return total;
}

const SNAPSHOT_REF_FIXED_BYTES = 8 + 8 + 8 + 4;
const HARD_STATE_FIXED_BYTES = 8 + 8;
const ENTRY_FIXED_BYTES = 8 + 8 + 1;

function payloadBytes(record: WalRecord): number {
  switch (record.kind) {
    case 'checkpoint': {
      const { snapshot, hardState } = record.state;
      return (
        SNAPSHOT_REF_FIXED_BYTES +
        confStateBytes(snapshot.metadata.confState) +
        HARD_STATE_FIXED_BYTES +
        strBytes(hardState.vote) +
        3 * 8
      );
    }
    case 'entry':
      return ENTRY_FIXED_BYTES + record.entry.data.byteLength;
    case 'hardState':
      return HARD_STATE_FIXED_BYTES + strBytes(record.hardState.vote);
    case 'applySnapshot':
    case 'createSnapshot':
      return SNAPSHOT_REF_FIXED_BYTES + confStateBytes(record.snapshot.metadata.confState);
    case 'compact':
      return 16;
  }
}

/** Bytes the record takes on disk; throws RDB_USAGE when it exceeds the record bound. */
export function walFrameBytes(record: WalRecord): number {
  const body = BODY_HEADER_BYTES + payloadBytes(record);
  if (body > WAL_RECORD_BODY_BYTES_MAX) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `raft wal: a ${record.kind} record of ${body} bytes exceeds ${WAL_RECORD_BODY_BYTES_MAX}`,
    );
  }
  return WAL_FRAME_PREFIX_BYTES + body;
}

function writeSnapshotRef(w: Writer, ref: SnapshotRef): void {
  w.u64(ref.metadata.index);
  w.u64(ref.metadata.term);
  w.u64(ref.dataBytes);
  w.u32(ref.dataCrc);
  for (const list of [ref.metadata.confState.voters, ref.metadata.confState.learners]) {
    w.u16(list.length);
    for (const id of list) w.str(id);
  }
}

function readSnapshotRef(r: Reader): SnapshotRef {
  const index = r.u64();
  const term = r.u64();
  const dataBytes = r.u64();
  const dataCrc = r.u32();
  const lists: string[][] = [];
  for (let l = 0; l < 2; l++) {
    const count = r.u16();
    const list: string[] = [];
    for (let i = 0; i < count; i++) list.push(r.str());
    lists.push(list);
  }
  return {
    metadata: { index, term, confState: { voters: lists[0]!, learners: lists[1]! } },
    dataBytes,
    dataCrc,
  };
}

function writeHardState(w: Writer, hardState: HardState): void {
  w.u64(hardState.term);
  w.u64(hardState.commit);
  w.str(hardState.vote);
}

function readHardState(r: Reader): HardState {
  const term = r.u64();
  const commit = r.u64();
  return { term, vote: r.str(), commit };
}

function frameCrc(buf: Buffer, at: number, bodyBytes: number): number {
  const body = buf.subarray(at + WAL_FRAME_PREFIX_BYTES, at + WAL_FRAME_PREFIX_BYTES + bodyBytes);
  return crc32(body, crc32(buf.subarray(at, at + 4)));
}

/** One record as it lies on disk. */
export function encodeWalFrame(record: WalRecord, seq: number, ordinal: number): Buffer {
  const frameBytes = walFrameBytes(record);
  const bodyBytes = frameBytes - WAL_FRAME_PREFIX_BYTES;
  const frame = Buffer.allocUnsafe(frameBytes);
  frame.writeUInt32LE(bodyBytes, 0);
  const w = new Writer(frame, WAL_FRAME_PREFIX_BYTES);
  w.u8(RECORD_TYPE[record.kind]);
  w.u64(seq);
  w.u32(ordinal);
  switch (record.kind) {
    case 'checkpoint': {
      const state = record.state;
      writeSnapshotRef(w, state.snapshot);
      writeHardState(w, state.hardState);
      w.u64(state.offsetIndex);
      w.u64(state.offsetTerm);
      w.u64(state.lastIndex);
      break;
    }
    case 'entry':
      w.u64(record.entry.index);
      w.u64(record.entry.term);
      w.u8(record.entry.type === 'confChange' ? 1 : 0);
      w.bytes(record.entry.data);
      break;
    case 'hardState':
      writeHardState(w, record.hardState);
      break;
    case 'applySnapshot':
    case 'createSnapshot':
      writeSnapshotRef(w, record.snapshot);
      break;
    case 'compact':
      w.u64(record.index);
      w.u64(record.term);
      break;
  }
  assert(w.pos === frameBytes, `wal frame size ${w.pos} != ${frameBytes}`);
  frame.writeUInt32LE(frameCrc(frame, 0, bodyBytes), 4);
  return frame;
}

function decodePayload(kind: RecordKind, r: Reader): WalRecord {
  switch (kind) {
    case 'checkpoint': {
      const snapshot = readSnapshotRef(r);
      const hardState = readHardState(r);
      const offsetIndex = r.u64();
      const offsetTerm = r.u64();
      const lastIndex = r.u64();
      r.done();
      return {
        kind,
        state: { snapshot, hardState, offsetIndex, offsetTerm, lastIndex },
      };
    }
    case 'entry': {
      const index = r.u64();
      const term = r.u64();
      const type = r.u8();
      if (type > 1) throw new PayloadError(`entry type ${type}`);
      return {
        kind,
        entry: { index, term, type: type === 1 ? 'confChange' : 'normal', data: r.rest() },
      };
    }
    case 'hardState': {
      const hardState = readHardState(r);
      r.done();
      return { kind, hardState };
    }
    case 'applySnapshot':
    case 'createSnapshot': {
      const snapshot = readSnapshotRef(r);
      r.done();
      return { kind, snapshot };
    }
    case 'compact': {
      const index = r.u64();
      const term = r.u64();
      r.done();
      return { kind, index, term };
    }
  }
}

/** Why a frame could not be read; each can be the mark of a write cut short. */
export type TornReason = 'short-header' | 'bad-length' | 'short-record' | 'checksum';

interface FrameHeader {
  bodyBytes: number;
  type: number;
  seq: number;
  ordinal: number;
  end: number;
}

/** The header at `pos` if it is complete and its length is in bounds (no crc check yet). */
function peekHeader(buf: Buffer, pos: number): FrameHeader | TornReason {
  if (buf.length - pos < FRAME_BYTES_MIN) return 'short-header';
  const bodyBytes = buf.readUInt32LE(pos);
  if (bodyBytes < BODY_HEADER_BYTES || bodyBytes > WAL_RECORD_BODY_BYTES_MAX) return 'bad-length';
  const end = pos + WAL_FRAME_PREFIX_BYTES + bodyBytes;
  if (end > buf.length) return 'short-record';
  const high = buf.readUInt32LE(pos + 13);
  return {
    bodyBytes,
    type: buf[pos + 8]!,
    // A seq beyond 2^53 only comes from garbage; it fails every later plausibility check.
    seq: high > 0x1fffff ? Number.MAX_SAFE_INTEGER : high * TWO_POW_32 + buf.readUInt32LE(pos + 9),
    ordinal: buf.readUInt32LE(pos + 17),
    end,
  };
}

function crcMatches(buf: Buffer, pos: number, bodyBytes: number): boolean {
  return buf.readUInt32LE(pos + 4) === frameCrc(buf, pos, bodyBytes);
}

/**
 * Valid frames after damage at `from` in the last segment, found by trying every offset
 * (a damaged length field hides where the next frame starts). Candidates must have a known
 * type and a seq that could follow `lastGoodSeq` within the remaining bytes before their crc
 * is computed, so garbage costs a few comparisons per byte, not a checksum.
 */
function framesAfterDamage(
  buf: Buffer,
  from: number,
  lastGoodSeq: number,
): { seq: number; ordinal: number }[] {
  const found: { seq: number; ordinal: number }[] = [];
  const seqMax = lastGoodSeq + 1 + Math.ceil((buf.length - from) / FRAME_BYTES_MIN);
  let pos = from;
  while (pos + FRAME_BYTES_MIN <= buf.length) {
    const header = peekHeader(buf, pos);
    if (
      typeof header !== 'string' &&
      KIND_OF_TYPE[header.type] !== undefined &&
      header.seq > lastGoodSeq &&
      header.seq <= seqMax &&
      header.ordinal <= header.seq &&
      crcMatches(buf, pos, header.bodyBytes)
    ) {
      found.push({ seq: header.seq, ordinal: header.ordinal });
      pos = header.end;
    } else {
      pos++;
    }
  }
  return found;
}

// ------------------------------------------------------------------ files

function hex16(value: number): string {
  return value.toString(16).padStart(16, '0');
}

export function segmentFileName(segmentSeq: number, firstSeq: number): string {
  return `${hex16(segmentSeq)}-${hex16(firstSeq)}.wal`;
}

/** The data file of a snapshot; undefined for the empty initial snapshot, which has none. */
export function snapshotFileName(ref: SnapshotRef): string | undefined {
  const { index, term } = ref.metadata;
  if (index === 0 && term === 0 && ref.dataBytes === 0) return undefined;
  return `snapshot-${hex16(index)}-${hex16(term)}.snap`;
}

/** Makes creations, renames and deletions in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeFully(
  handle: FileHandle,
  path: string,
  data: Uint8Array,
  position: number,
): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await onFile(path, 'write', () =>
      handle.write(data, done, data.byteLength - done, position + done),
    );
    assert(bytesWritten > 0, 'write() made no progress');
    done += bytesWritten;
  }
}

/** Reads and verifies a snapshot's data file. */
export async function readSnapshotData(dir: string, ref: SnapshotRef): Promise<Uint8Array> {
  const name = snapshotFileName(ref);
  if (name === undefined) return new Uint8Array(0);
  const path = join(dir, name);
  let bytes: number;
  try {
    bytes = (await stat(path)).size;
  } catch (cause) {
    throw walCorrupt(`snapshot data file ${name} is missing`, cause);
  }
  if (bytes !== ref.dataBytes) {
    throw walCorrupt(`snapshot data file ${name} has ${bytes} bytes, expected ${ref.dataBytes}`);
  }
  const data = await onFile(path, 'read', () => readFile(path));
  if (crc32(data) !== ref.dataCrc) throw walCorrupt(`snapshot data file ${name}: bad checksum`);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

// ------------------------------------------------------------------ recovery

export interface SegmentInfo {
  name: string;
  segmentSeq: number;
  /**
   * The highest entry index this segment's replay can mention (its checkpoint's last index
   * included). Once compaction passes it, replay no longer needs the segment.
   */
  indexMax: number;
}

export interface TornTail {
  segment: string;
  /** Where the first damaged frame started; the file was truncated to this length. */
  offset: number;
  bytesDropped: number;
  reason: TornReason;
  /** Intact frames of the same unfinished batch found after the damage, dropped with it. */
  framesDropped: number;
}

export interface WalRecovery {
  segments: number;
  records: number;
  /** The damaged tail that was truncated away, if any (see recoverWal). */
  tornTail: TornTail | undefined;
  /** Temp files and unreferenced snapshot files removed (leftovers of a crash). */
  removedFiles: string[];
  /**
   * The WAL held records but there was no watermark file (a data dir written before
   * watermarks existed, the file removed, or a crash right after the first batch): one is
   * written from the WAL. Set by FileRaftStorage.open.
   */
  watermarkMissing: boolean;
}

/** A point of the record stream: every record up to `seq`, and the state after them. */
export interface WalPoint {
  seq: number;
  state: WalState;
}

export interface RecoveredWal {
  recovery: WalRecovery;
  segments: SegmentInfo[];
  lastSegmentBytes: number;
  nextSeq: number;
  /** State after the last valid record. */
  state: WalState;
  /**
   * The end of the batch before the last one read: what a later batch proves durable (see
   * watermark.ts). Undefined when no batch start was read (an empty WAL, or one whose first
   * remaining segment starts inside the only batch it holds).
   */
  confirmed: WalPoint | undefined;
}

function parseSegmentName(name: string): { segmentSeq: number; firstSeq: number } | undefined {
  const match = SEGMENT_NAME.exec(name);
  if (match === null) return undefined;
  const segmentSeq = Number.parseInt(match[1]!, 16);
  const firstSeq = Number.parseInt(match[2]!, 16);
  if (!Number.isSafeInteger(segmentSeq) || !Number.isSafeInteger(firstSeq)) return undefined;
  return { segmentSeq, firstSeq };
}

/**
 * Reads every segment in order, verifies every record and hands each one that matters for
 * replay to `onRecord`. It only reads: a torn tail it finds is reported in `tornTail`, and
 * truncateTornTail repairs it once the caller has checked everything else (a refused open
 * must leave the files as they were). The rules:
 *
 * - Damage (a short header, a length out of bounds, a record running past the end of the
 *   file, a checksum mismatch) in any segment but the last is corruption: a segment is
 *   fsynced before the next one is created, so everything in it was durable.
 * - Damage in the last segment is a torn write when nothing after it proves otherwise: the
 *   file is to be truncated at the damaged frame, the loss reported in `tornTail`. What
 *   proves otherwise is an intact frame after the damage that belongs to a later batch than
 *   the damaged one (its batch starts after the damaged seq): batches are written only after
 *   the previous sync completed, so the damaged record had been acknowledged — a hard error.
 *   Intact frames of the damaged record's own batch can follow it after a power loss (pages
 *   of one write reach the disk in any order); that batch was never acknowledged, so they
 *   are dropped with it.
 * - A segment whose every byte is zero is not a torn write but a zeroed file: every segment
 *   starts with a checkpoint whose length field is not zero, and a crash cuts the end of a
 *   write short rather than turning a whole file into zeros (RDB_STORAGE_LOST).
 * - A frame whose checksum matches but which is out of place (seq or ordinal not following,
 *   no checkpoint at a segment start, an undecodable payload, an entry leaving a gap) was
 *   written that way; no crash produces it, so it is corruption wherever it is.
 *
 * A record acknowledged by the final sync before a crash and damaged afterwards (bit rot in
 * the last batch) is indistinguishable from a torn write and is truncated too: telling them
 * apart would cost a second fsync per batch. (The watermark, watermark.ts, claims only
 * records a later batch proved durable, for the same reason.)
 */
export async function recoverWal(
  dir: string,
  onRecord: (record: WalRecord) => void,
): Promise<RecoveredWal> {
  const segments: (SegmentInfo & { firstSeq: number })[] = [];
  const names = await onFile(dir, 'read', () => readdir(dir));
  for (const name of names) {
    const parsed = parseSegmentName(name);
    if (parsed !== undefined) segments.push({ name, ...parsed, indexMax: 0 });
  }
  segments.sort((a, b) => a.segmentSeq - b.segmentSeq);
  // A snapshot file is written only just before a record that refers to it; without any
  // segment the WAL was removed, and starting empty would forget votes and commits.
  if (segments.length === 0 && names.some((name) => SNAPSHOT_NAME.test(name))) {
    throw walCorrupt('snapshot files but no WAL segments');
  }
  if (segments.length > WAL_SEGMENT_FILES_MAX) {
    throw walCorrupt(`${segments.length} segment files exceed ${WAL_SEGMENT_FILES_MAX}`);
  }
  for (let i = 1; i < segments.length; i++) {
    if (segments[i]!.segmentSeq !== segments[i - 1]!.segmentSeq + 1) {
      throw walCorrupt(`segment ${segments[i - 1]!.segmentSeq + 1} is missing`);
    }
  }

  const recovery: WalRecovery = {
    segments: segments.length,
    records: 0,
    tornTail: undefined,
    removedFiles: [],
    watermarkMissing: false,
  };
  let state = emptyWalState();
  let lastSeq = 0;
  let lastOrdinal: number | undefined;
  let lastSegmentBytes = 0;
  let confirmed: WalPoint | undefined;

  for (let s = 0; s < segments.length; s++) {
    const segment = segments[s]!;
    const isLast = s === segments.length - 1;
    const path = join(dir, segment.name);
    const size = (await onFile(path, 'read', () => stat(path))).size;
    if (size > SEGMENT_FILE_BYTES_MAX) {
      throw walCorrupt(`segment ${segment.name} has ${size} bytes, more than any segment written`);
    }
    if (s === 0) {
      lastSeq = segment.firstSeq - 1;
    } else if (segment.firstSeq !== lastSeq + 1) {
      throw walCorrupt(
        `segment ${segment.name} starts at record ${segment.firstSeq}, not ${lastSeq + 1}`,
      );
    }
    const buf = await onFile(path, 'read', () => readFile(path));
    let pos = 0;
    while (pos < buf.length) {
      const header = peekHeader(buf, pos);
      if (typeof header === 'string' || !crcMatches(buf, pos, header.bodyBytes)) {
        const reason: TornReason = typeof header === 'string' ? header : 'checksum';
        const where = `segment ${segment.name} offset ${pos}`;
        if (pos === 0 && buf.every((byte) => byte === 0)) {
          throw walLost(
            `${path} is ${buf.length} zero bytes: the segment was zeroed after it was written (a crash cuts a write short, it does not zero a whole segment)`,
          );
        }
        if (!isLast) throw walCorrupt(`${where}: ${reason} in a sealed segment`);
        const after = framesAfterDamage(buf, pos + 1, lastSeq);
        const later = after.find((frame) => frame.seq - frame.ordinal > lastSeq + 1);
        if (later !== undefined) {
          throw walCorrupt(
            `${where}: ${reason}, followed by intact record ${later.seq} of a later batch (the damaged record had been synced)`,
          );
        }
        if (pos === 0 && segment.segmentSeq !== 1 && s === 0) {
          throw walCorrupt(`${where}: the checkpoint of the first remaining segment is damaged`);
        }
        recovery.tornTail = {
          segment: segment.name,
          offset: pos,
          bytesDropped: buf.length - pos,
          reason,
          framesDropped: after.length,
        };
        break;
      }
      const where = `segment ${segment.name} record ${header.seq}`;
      const kind = KIND_OF_TYPE[header.type];
      if (kind === undefined) throw walCorrupt(`${where}: unknown record type ${header.type}`);
      if (header.seq !== lastSeq + 1) {
        throw walCorrupt(`${where}: expected record ${lastSeq + 1}`);
      }
      if (header.ordinal !== 0 && lastOrdinal !== undefined && header.ordinal !== lastOrdinal + 1) {
        throw walCorrupt(`${where}: batch position ${header.ordinal} after ${lastOrdinal}`);
      }
      if ((pos === 0) !== (kind === 'checkpoint')) {
        throw walCorrupt(`${where}: checkpoints start segments, and only they do`);
      }
      let record: WalRecord;
      try {
        record = decodePayload(
          kind,
          new Reader(buf, pos + WAL_FRAME_PREFIX_BYTES + BODY_HEADER_BYTES, header.end),
        );
      } catch (error) {
        if (error instanceof PayloadError) throw walCorrupt(`${where}: ${error.message}`, error);
        throw error;
      }
      if (header.ordinal === 0) {
        // A batch starts here, so everything before it was synced before this was written.
        // A checkpoint opening a batch holds the state before it (the first remaining
        // segment's checkpoint replaces the empty state this loop started from).
        const before = record.kind === 'checkpoint' ? record.state : state;
        confirmed = { seq: header.seq - 1, state: before };
      }
      if (record.kind === 'checkpoint') {
        if (s === 0) {
          state = record.state;
          onRecord(record);
        } else if (!sameWalState(state, record.state)) {
          throw walCorrupt(`${where}: checkpoint disagrees with the records before it`);
        }
        segment.indexMax = record.state.lastIndex;
      } else {
        const next = advanceWalState(state, record);
        if (next === undefined) {
          throw walCorrupt(`${where}: entry leaves a gap after ${state.lastIndex}`);
        }
        state = next;
        onRecord(record);
        if (record.kind === 'entry') {
          segment.indexMax = Math.max(segment.indexMax, record.entry.index);
        }
      }
      recovery.records++;
      lastSeq = header.seq;
      lastOrdinal = header.ordinal;
      pos = header.end;
    }
    if (isLast) lastSegmentBytes = pos;
  }
  return {
    recovery,
    segments: segments.map(({ name, segmentSeq, indexMax }) => ({ name, segmentSeq, indexMax })),
    lastSegmentBytes,
    nextSeq: lastSeq + 1,
    state,
    confirmed: confirmed !== undefined && confirmed.seq > 0 ? confirmed : undefined,
  };
}

/** Cuts the torn tail recoverWal reported off its segment, durably. */
export async function truncateTornTail(dir: string, tornTail: TornTail): Promise<void> {
  const path = join(dir, tornTail.segment);
  const handle = await onFile(path, 'write', () => open(path, 'r+'));
  try {
    await onFile(path, 'truncate', () => handle.truncate(tornTail.offset));
    await onFile(path, 'sync', () => handle.datasync());
  } finally {
    await handle.close();
  }
}

/** Removes temp files and snapshot files other than `keep` (leftovers of a crash). */
/** The snapshot files in `dir` (not their temporary files), by name. */
export async function snapshotFilesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => SNAPSHOT_NAME.test(name)).sort();
}

export async function removeStaleFiles(dir: string, keep: string | undefined): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    // Only names this module creates: the node layer may keep other files in the dir.
    const stale = name.endsWith(TEMP_SUFFIX)
      ? SNAPSHOT_NAME.test(name.slice(0, -TEMP_SUFFIX.length))
      : SNAPSHOT_NAME.test(name) && name !== keep;
    if (!stale) continue;
    const path = join(dir, name);
    await onFile(path, 'remove', () => unlink(path));
    removed.push(name);
  }
  if (removed.length > 0) await onFile(dir, 'sync', () => fsyncDir(dir));
  return removed;
}

// ------------------------------------------------------------------ writing

export interface SnapshotFileWrite {
  ref: SnapshotRef;
  data: Uint8Array;
}

export interface WalWriterStats {
  batches: number;
  records: number;
  bytes: number;
  segmentsCreated: number;
  segmentsDeleted: number;
  snapshotFilesWritten: number;
}

/**
 * Appends batches to the active segment. Not reentrant: the caller (FileRaftStorage.sync)
 * runs one writeBatch at a time, which is also what makes "a later batch exists" mean "the
 * earlier one was synced" during recovery.
 */
export class WalWriter {
  private readonly dir: string;
  private readonly segmentBytesTarget: number;
  private readonly segments: SegmentInfo[];
  private handle: FileHandle;
  private activeBytes: number;
  private nextSeq: number;
  /** State after every record written so far: the next checkpoint. */
  private state: WalState;
  /** The end of the batch before the last one written: proven durable by the last one. */
  private confirmedPoint: WalPoint | undefined;
  private readonly snapshotFiles: Set<string>;
  /** After a failed write or fsync nothing is known about what reached the disk. */
  private failure: unknown;
  readonly stats: WalWriterStats = {
    batches: 0,
    records: 0,
    bytes: 0,
    segmentsCreated: 0,
    segmentsDeleted: 0,
    snapshotFilesWritten: 0,
  };

  private constructor(
    dir: string,
    segmentBytesTarget: number,
    segments: SegmentInfo[],
    handle: FileHandle,
    activeBytes: number,
    nextSeq: number,
    state: WalState,
    confirmed: WalPoint | undefined,
  ) {
    this.dir = dir;
    this.segmentBytesTarget = segmentBytesTarget;
    this.segments = segments;
    this.handle = handle;
    this.activeBytes = activeBytes;
    this.nextSeq = nextSeq;
    this.state = state;
    this.confirmedPoint = confirmed;
    const current = snapshotFileName(state.snapshot);
    this.snapshotFiles = new Set(current === undefined ? [] : [current]);
  }

  /** Continues the WAL recoverWal read (or starts segment 1 in an empty dir). */
  static async open(
    dir: string,
    recovered: RecoveredWal,
    segmentBytesTarget: number,
  ): Promise<WalWriter> {
    const segments = recovered.segments.map((segment) => ({ ...segment }));
    let activeBytes = recovered.lastSegmentBytes;
    let handle: FileHandle;
    if (segments.length === 0) {
      const name = segmentFileName(1, recovered.nextSeq);
      const path = join(dir, name);
      handle = await onFile(path, 'create', () => open(path, 'wx'));
      await onFile(dir, 'sync', () => fsyncDir(dir));
      segments.push({ name, segmentSeq: 1, indexMax: 0 });
      activeBytes = 0;
    } else {
      const path = join(dir, segments.at(-1)!.name);
      handle = await onFile(path, 'write', () => open(path, 'r+'));
    }
    return new WalWriter(
      dir,
      segmentBytesTarget,
      segments,
      handle,
      activeBytes,
      recovered.nextSeq,
      recovered.state,
      recovered.confirmed,
    );
  }

  segmentCount(): number {
    return this.segments.length;
  }

  /**
   * Every record up to the end of the batch before the last completed one, and the state
   * there: what a torn-tail recovery can no longer drop (see watermark.ts).
   */
  confirmed(): WalPoint | undefined {
    return this.confirmedPoint;
  }

  private activePath(): string {
    return join(this.dir, this.segments.at(-1)!.name);
  }

  /**
   * Writes snapshot data files (temp, fsync, rename, fsync dir), then the records, then
   * fdatasyncs; then drops segments and snapshot files that compaction made unnecessary.
   * Durable when the promise resolves.
   */
  async writeBatch(
    records: readonly WalRecord[],
    snapshotFiles: readonly SnapshotFileWrite[],
  ): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    const before: WalPoint = { seq: this.nextSeq - 1, state: this.state };
    try {
      for (const file of snapshotFiles) await this.writeSnapshotFile(file);
      if (snapshotFiles.length > 0) await onFile(this.dir, 'sync', () => fsyncDir(this.dir));
      let chunks: Buffer[] = [];
      let chunkBytes = 0;
      let ordinal = 0;
      const push = (frame: Buffer) => {
        chunks.push(frame);
        chunkBytes += frame.length;
        this.nextSeq++;
        ordinal++;
      };
      for (const record of records) {
        const frameBytes = walFrameBytes(record);
        const used = this.activeBytes + chunkBytes;
        if (used > 0 && used + frameBytes > this.segmentBytesTarget) {
          await this.flush(chunks, chunkBytes);
          chunks = [];
          chunkBytes = 0;
          await this.rollOver();
        } else if (chunkBytes >= WRITE_CHUNK_BYTES_MAX) {
          await this.flush(chunks, chunkBytes);
          chunks = [];
          chunkBytes = 0;
        }
        const active = this.segments.at(-1)!;
        if (this.activeBytes + chunkBytes === 0) {
          push(encodeWalFrame({ kind: 'checkpoint', state: this.state }, this.nextSeq, ordinal));
          active.indexMax = Math.max(active.indexMax, this.state.lastIndex);
        }
        push(encodeWalFrame(record, this.nextSeq, ordinal));
        const next = advanceWalState(this.state, record);
        assert(next !== undefined, `wal: ${record.kind} record leaves a gap`);
        this.state = next;
        if (record.kind === 'entry') {
          active.indexMax = Math.max(active.indexMax, record.entry.index);
        }
      }
      await this.flush(chunks, chunkBytes);
      await onFile(this.activePath(), 'sync', () => this.handle.datasync());
      this.stats.batches++;
      this.stats.records += ordinal;
      if (before.seq > 0) this.confirmedPoint = before;
      await this.dropObsolete();
    } catch (error) {
      this.failure = error;
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private async flush(chunks: Buffer[], bytes: number): Promise<void> {
    if (bytes === 0) return;
    const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes);
    await writeFully(this.handle, this.activePath(), data, this.activeBytes);
    this.activeBytes += bytes;
    this.stats.bytes += bytes;
  }

  private async rollOver(): Promise<void> {
    if (this.segments.length >= WAL_SEGMENT_FILES_MAX) {
      throw new RdbnetError(
        ErrorCode.Internal,
        `raft wal: ${WAL_SEGMENT_FILES_MAX} segments and none compacted away; is compaction running?`,
      );
    }
    // Sealed before the next segment exists: recovery relies on that ordering.
    await onFile(this.activePath(), 'sync', () => this.handle.datasync());
    await this.handle.close();
    const segmentSeq = this.segments.at(-1)!.segmentSeq + 1;
    const name = segmentFileName(segmentSeq, this.nextSeq);
    const path = join(this.dir, name);
    this.handle = await onFile(path, 'create', () => open(path, 'wx'));
    await onFile(this.dir, 'sync', () => fsyncDir(this.dir));
    this.segments.push({ name, segmentSeq, indexMax: 0 });
    this.activeBytes = 0;
    this.stats.segmentsCreated++;
  }

  private async writeSnapshotFile(file: SnapshotFileWrite): Promise<void> {
    const name = snapshotFileName(file.ref);
    if (name === undefined) return;
    const temp = join(this.dir, `${name}${TEMP_SUFFIX}`);
    const handle = await onFile(temp, 'create', () => open(temp, 'w'));
    try {
      await writeFully(handle, temp, file.data, 0);
      await onFile(temp, 'sync', () => handle.datasync());
    } finally {
      await handle.close();
    }
    const path = join(this.dir, name);
    await onFile(path, 'rename', () => rename(temp, path));
    this.snapshotFiles.add(name);
    this.stats.snapshotFilesWritten++;
  }

  /** Runs after the batch is durable, so the compaction it relies on is durable too. */
  private async dropObsolete(): Promise<void> {
    while (this.segments.length > 1 && this.segments[0]!.indexMax <= this.state.offsetIndex) {
      const path = join(this.dir, this.segments[0]!.name);
      await onFile(path, 'remove', () => unlink(path));
      // One at a time, durably: an older segment reappearing after a crash without the one
      // after it would leave a hole that recovery must refuse.
      await onFile(this.dir, 'sync', () => fsyncDir(this.dir));
      this.segments.shift();
      this.stats.segmentsDeleted++;
    }
    const keep = snapshotFileName(this.state.snapshot);
    for (const name of [...this.snapshotFiles]) {
      if (name === keep) continue;
      // Not synced: an old snapshot file that survives a crash is removed at the next open.
      const path = join(this.dir, name);
      await onFile(path, 'remove', () => unlink(path));
      this.snapshotFiles.delete(name);
    }
  }
}
