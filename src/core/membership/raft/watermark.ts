/**
 * The watermark of a FileRaftStorage: a small checksummed file, apart from the WAL, saying
 * how far the WAL had durably got. The WAL alone cannot tell "never written" from "emptied":
 * a segment truncated to 0 bytes, zeroed, or removed looks like a fresh start, and a node
 * that starts fresh after it had voted can help elect two leaders in one term. The
 * watermark turns those into a refusal at open (RDB_STORAGE_LOST, see file-storage.ts).
 *
 * What it claims: WAL records 1..seq were durable *and a later batch was durable too*. That
 * is exactly what recovery never drops (recoverWal treats damage in the last batch as a
 * torn write, anything before it as corruption), so a legitimate torn-tail recovery never
 * contradicts the watermark, and a WAL that ends before `seq` lost acknowledged records.
 * Record seqs only grow (a torn tail's seqs are reused only by records replacing it), so one
 * number covers votes, terms, entries and snapshots alike; the other fields describe the
 * state at `seq` for the operator reading the error.
 *
 * Format: one JSON object, fields in the order below, plus `crc32` of
 * JSON.stringify(the other fields in that order). Written to `<path>.tmp`, fdatasynced,
 * renamed over `<path>`, and the directory fsynced, so a crash leaves the old or the new
 * file, never a torn one: a file that does not parse or check out was damaged afterwards.
 */
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { fileSystemError, onFile } from '../../fs-errors.ts';
import { fsyncDir } from './wal.ts';

export const WATERMARK_FORMAT = 1;
/** File name of the watermark when FileRaftStorage is not told where to keep it. */
export const WATERMARK_FILE_NAME = 'watermark.json';
/** A watermark is a few hundred bytes; a larger file was not written by this module. */
export const WATERMARK_FILE_BYTES_MAX = 256 * 1024;
const TEMP_SUFFIX = '.tmp';

export interface RaftWatermark {
  /** The node the storage belongs to; '' when its user did not say. */
  nodeId: string;
  /** The cluster the node belonged to when this was written; '' when not known yet. */
  clusterId: string;
  /** WAL records 1..seq were durable, and a later batch proved it. */
  seq: number;
  // The state after record `seq`:
  term: number;
  vote: string;
  commit: number;
  lastIndex: number;
  snapshotIndex: number;
  snapshotTerm: number;
}

const NUMBER_FIELDS = [
  'seq',
  'term',
  'commit',
  'lastIndex',
  'snapshotIndex',
  'snapshotTerm',
] as const;
const STRING_FIELDS = ['nodeId', 'clusterId', 'vote'] as const;

/** The checksummed part, fields in their fixed order. */
function body(watermark: RaftWatermark): Record<string, unknown> {
  return {
    format: WATERMARK_FORMAT,
    nodeId: watermark.nodeId,
    clusterId: watermark.clusterId,
    seq: watermark.seq,
    term: watermark.term,
    vote: watermark.vote,
    commit: watermark.commit,
    lastIndex: watermark.lastIndex,
    snapshotIndex: watermark.snapshotIndex,
    snapshotTerm: watermark.snapshotTerm,
  };
}

function checksum(fields: Record<string, unknown>): number {
  return crc32(Buffer.from(JSON.stringify(fields), 'utf8'));
}

export function encodeWatermark(watermark: RaftWatermark): string {
  const fields = body(watermark);
  return `${JSON.stringify({ ...fields, crc32: checksum(fields) }, null, 2)}\n`;
}

/** A watermark file that exists but cannot be trusted. */
export function watermarkCorrupt(path: string, why: string): RdbnetError {
  return new RdbnetError(ErrorCode.StorageCorrupt, `raft watermark ${path}: ${why}`, {
    hint:
      `the file was damaged after it was written; if the node's Raft log is intact, remove ${path} ` +
      '(it is written again from the log at the next start), otherwise restore the data dir from a ' +
      'backup, or remove this node from the cluster and re-add it with an empty data dir',
  });
}

export function decodeWatermark(text: string, path: string): RaftWatermark {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw watermarkCorrupt(path, text.trim() === '' ? 'empty' : 'not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw watermarkCorrupt(path, 'not a JSON object');
  }
  const record = parsed as Record<string, unknown>;
  if (record['format'] !== WATERMARK_FORMAT) {
    throw watermarkCorrupt(
      path,
      `format ${String(record['format'])}, expected ${WATERMARK_FORMAT}`,
    );
  }
  const watermark = {} as RaftWatermark;
  for (const field of NUMBER_FIELDS) {
    const value = record[field];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw watermarkCorrupt(path, `${field} is not a count`);
    }
    watermark[field] = value;
  }
  for (const field of STRING_FIELDS) {
    const value = record[field];
    if (typeof value !== 'string') throw watermarkCorrupt(path, `${field} is not a string`);
    watermark[field] = value;
  }
  if (record['crc32'] !== checksum(body(watermark))) throw watermarkCorrupt(path, 'bad checksum');
  return watermark;
}

/** The watermark at `path`; undefined when there is none. Throws RDB_STORAGE_CORRUPT when damaged. */
export async function readWatermark(path: string): Promise<RaftWatermark | undefined> {
  let bytes: number;
  try {
    bytes = (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fileSystemError(error, path, 'read');
  }
  if (bytes > WATERMARK_FILE_BYTES_MAX) {
    throw watermarkCorrupt(path, `${bytes} bytes, more than any watermark written`);
  }
  const text = await onFile(path, 'read', () => readFile(path, 'utf8'));
  return decodeWatermark(text, path);
}

/** Replaces the watermark at `path` atomically and durably (see the module comment). */
export async function writeWatermark(path: string, watermark: RaftWatermark): Promise<void> {
  const temp = `${path}${TEMP_SUFFIX}`;
  const data = encodeWatermark(watermark);
  const handle = await onFile(temp, 'create', () => open(temp, 'w', 0o600));
  try {
    await onFile(temp, 'write', () => handle.writeFile(data));
    await onFile(temp, 'sync', () => handle.datasync());
  } finally {
    await handle.close();
  }
  await onFile(path, 'rename', () => rename(temp, path));
  const dir = dirname(path);
  await onFile(dir, 'sync', () => fsyncDir(dir));
}

/** Removes a temp file a crash left during writeWatermark. */
export async function removeWatermarkTemp(path: string): Promise<void> {
  const temp = `${path}${TEMP_SUFFIX}`;
  await onFile(temp, 'remove', () => rm(temp, { force: true }));
}
