/**
 * Where the receiver's exactly-once deduplication window (delivery.ts DedupWindow) keeps the
 * keys it answered, so that a restart of the receiving process — kill -9 included — does not
 * run a message twice.
 *
 * FileDedupStore: one append-only file in the node's data dir (docs/data-dir.md), a record per
 * answered key, written with one write(2) before the reply leaves the process. A write the
 * kernel took survives the death of the process (kill -9): only a crash of the machine can lose
 * it, so fsync is batched (at most DEDUP_FSYNC_INTERVAL_MS after a write) and a crash of the
 * machine may lose that last interval. The file is rewritten with the live window once more
 * records than the window holds were appended since the last rewrite, so it stays bounded by
 * about twice the window (dedupWindowMax keys, dedupReplyBytesMax reply bytes).
 *
 * Record (little-endian):
 *   u32 bodyBytes   bytes after this 8-byte header
 *   u32 crc         crc32 of the body
 *   body: f64 wallMs (when answered, wall clock: it must mean the same to the next process),
 *         u16 keyBytes, key (UTF-8), reply (the rest)
 * A torn or corrupt tail (a machine crash mid-write) ends the log: it is cut off on load.
 */
import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { fileSystemError } from '../fs-errors.ts';
import type { TimerHandle, Timers } from '../runtime/index.ts';

/** One answered exactly-once key and its reply. */
export interface DedupRecord {
  key: string;
  /** Wall-clock milliseconds (Clock.wallMs) when the handler answered. */
  wallMs: number;
  reply: Uint8Array;
}

export interface DedupStore {
  /** The records of earlier processes, oldest first (called once, before any append). */
  load(): DedupRecord[];
  /** Records one answered key; it must survive this process's death once this returns. */
  append(record: DedupRecord): void;
  /** Records appended since the last rewrite (or load). */
  readonly appendedSinceRewrite: number;
  /** Replaces everything stored with `records` (the live window), atomically. */
  rewrite(records: readonly DedupRecord[]): void;
  /** Flushes to disk and lets go of the file. */
  close(): void;
}

/** A write is on disk (fsync) at most this long after it was made. */
export const DEDUP_FSYNC_INTERVAL_MS = 100;
/** Longest key a record holds (the topic, a NUL, the idempotency key). */
const KEY_BYTES_MAX = 0xffff;
const HEADER_BYTES = 8;
const FIXED_BODY_BYTES = 8 + 2;

function encodeRecord(record: DedupRecord): Buffer {
  const key = Buffer.from(record.key, 'utf8');
  if (key.length > KEY_BYTES_MAX) {
    throw new RdbnetError(ErrorCode.Internal, `a dedup key of ${key.length} bytes`);
  }
  const bodyBytes = FIXED_BODY_BYTES + key.length + record.reply.length;
  const out = Buffer.allocUnsafe(HEADER_BYTES + bodyBytes);
  out.writeUInt32LE(bodyBytes, 0);
  out.writeDoubleLE(record.wallMs, HEADER_BYTES);
  out.writeUInt16LE(key.length, HEADER_BYTES + 8);
  key.copy(out, HEADER_BYTES + FIXED_BODY_BYTES);
  out.set(record.reply, HEADER_BYTES + FIXED_BODY_BYTES + key.length);
  out.writeUInt32LE(crc32(out.subarray(HEADER_BYTES)), 4);
  return out;
}

function writeFully(fd: number, bytes: Buffer): void {
  let written = 0;
  while (written < bytes.length) {
    written += writeSync(fd, bytes, written, bytes.length - written);
  }
}

/** The records of `data` and the length of its intact prefix (what follows is torn). */
export function decodeRecords(data: Uint8Array): { records: DedupRecord[]; intactBytes: number } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const records: DedupRecord[] = [];
  let at = 0;
  while (at + HEADER_BYTES <= buf.length) {
    const bodyBytes = buf.readUInt32LE(at);
    const end = at + HEADER_BYTES + bodyBytes;
    if (bodyBytes < FIXED_BODY_BYTES || end > buf.length) break;
    const body = buf.subarray(at + HEADER_BYTES, end);
    if (crc32(body) !== buf.readUInt32LE(at + 4)) break;
    const keyBytes = body.readUInt16LE(8);
    if (FIXED_BODY_BYTES + keyBytes > body.length) break;
    records.push({
      wallMs: body.readDoubleLE(0),
      key: body.toString('utf8', FIXED_BODY_BYTES, FIXED_BODY_BYTES + keyBytes),
      // A copy: the file's buffer is not kept alive by one small reply.
      reply: new Uint8Array(body.subarray(FIXED_BODY_BYTES + keyBytes)),
    });
    at = end;
  }
  return { records, intactBytes: at };
}

/** The append-only file described at the top. */
export class FileDedupStore implements DedupStore {
  appendedSinceRewrite = 0;
  /** fsyncs that failed (the data stays written; only a machine crash could lose it). */
  fsyncFailed = 0;
  private fd: number | null = null;
  private fsyncTimer: TimerHandle | null = null;
  private readonly path: string;
  private readonly timers: Timers;

  constructor(path: string, timers: Timers) {
    this.path = path;
    this.timers = timers;
  }

  load(): DedupRecord[] {
    let data: Buffer;
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      data = readFileSync(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw fileSystemError(error, this.path, 'read');
      }
      data = Buffer.alloc(0);
    }
    const { records, intactBytes } = decodeRecords(data);
    try {
      this.fd = openSync(this.path, 'a', 0o600);
      // A torn tail (a crash mid-write) is cut off so the next record starts clean.
      if (intactBytes < data.length) ftruncateSync(this.fd, intactBytes);
    } catch (error) {
      throw fileSystemError(error, this.path, 'create');
    }
    return records;
  }

  append(record: DedupRecord): void {
    const fd = this.open();
    try {
      writeFully(fd, encodeRecord(record));
    } catch (error) {
      throw fileSystemError(error, this.path, 'write');
    }
    this.appendedSinceRewrite++;
    this.fsyncTimer ??= this.timers.setTimer(DEDUP_FSYNC_INTERVAL_MS, () => this.flush(), {
      unref: true,
    });
  }

  rewrite(records: readonly DedupRecord[]): void {
    const temporary = `${this.path}.rewrite`;
    try {
      const fd = openSync(temporary, 'w', 0o600);
      try {
        for (const record of records) writeFully(fd, encodeRecord(record));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temporary, this.path);
      this.syncDirectory();
      if (this.fd !== null) closeSync(this.fd);
      this.fd = openSync(this.path, 'a', 0o600);
    } catch (error) {
      throw fileSystemError(error, this.path, 'write');
    }
    this.appendedSinceRewrite = 0;
  }

  close(): void {
    this.flush();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private flush(): void {
    if (this.fsyncTimer !== null) this.timers.clearTimer(this.fsyncTimer);
    this.fsyncTimer = null;
    if (this.fd === null) return;
    try {
      fsyncSync(this.fd);
    } catch {
      // A failed fsync is only a risk for a machine crash; the next write reports the disk.
      this.fsyncFailed++;
    }
  }

  private open(): number {
    if (this.fd === null)
      throw new RdbnetError(ErrorCode.Internal, `dedup log ${this.path}: not loaded`);
    return this.fd;
  }

  private syncDirectory(): void {
    const fd = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * The store of the simulated node (test/sim): what was appended outlives the DataPlane that
 * appended it, as a written file outlives a killed process. Keep one per simulated node and
 * hand it to each new process of that node.
 */
export class MemoryDedupStore implements DedupStore {
  appendedSinceRewrite = 0;
  private records: DedupRecord[] = [];

  load(): DedupRecord[] {
    return [...this.records];
  }

  append(record: DedupRecord): void {
    this.records.push(record);
    this.appendedSinceRewrite++;
  }

  rewrite(records: readonly DedupRecord[]): void {
    this.records = [...records];
    this.appendedSinceRewrite = 0;
  }

  close(): void {}

  /** Records held (what a file would hold). */
  get size(): number {
    return this.records.length;
  }
}
