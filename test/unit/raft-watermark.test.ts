/**
 * The Raft storage's watermark file (membership/raft/watermark.ts): round trip, every field
 * under the checksum, and every kind of damage refused with RDB_STORAGE_CORRUPT naming the
 * file. What FileRaftStorage does with it: raft-storage-loss.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  decodeWatermark,
  encodeWatermark,
  type RaftWatermark,
  readWatermark,
  WATERMARK_FILE_BYTES_MAX,
  writeWatermark,
} from '../../src/core/membership/raft/watermark.ts';

describe('the watermark file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rdbnet-watermark-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const sample: RaftWatermark = {
    nodeId: 'n1',
    clusterId: '6f1c2b1e-0000-4000-8000-000000000001',
    seq: 1234,
    term: 7,
    vote: 'n2',
    commit: 40,
    lastIndex: 42,
    snapshotIndex: 30,
    snapshotTerm: 6,
  };

  test('round trip through the file; a missing file is undefined', async () => {
    const path = join(dir, 'w1.json');
    assert.equal(await readWatermark(path), undefined);
    await writeWatermark(path, sample);
    assert.deepEqual(await readWatermark(path), sample);
    await writeWatermark(path, { ...sample, seq: 2000, term: 8, vote: '' });
    assert.deepEqual(await readWatermark(path), { ...sample, seq: 2000, term: 8, vote: '' });
    const text = await readFile(path, 'utf8');
    assert.match(text, /"crc32": \d+/);
  });

  test('every field is covered by the checksum', () => {
    const text = encodeWatermark(sample);
    const fields = JSON.parse(text) as Record<string, unknown>;
    for (const key of Object.keys(sample) as (keyof RaftWatermark)[]) {
      const changed = { ...fields, [key]: typeof sample[key] === 'number' ? 99 : 'other' };
      assert.throws(
        () => decodeWatermark(JSON.stringify(changed), 'w.json'),
        (error: Error) =>
          isRdbnetError(error, ErrorCode.StorageCorrupt) && /checksum/.test(error.message),
        key,
      );
    }
  });

  test('damage of every kind is RDB_STORAGE_CORRUPT naming the file', async () => {
    const path = join(dir, 'w2.json');
    const good = encodeWatermark(sample);
    const damaged: [string, string | Buffer][] = [
      ['zeroed', Buffer.alloc(good.length)],
      ['empty', ''],
      ['cut short', good.slice(0, 40)],
      ['not an object', '[1,2,3]'],
      ['unknown format', good.replace('"format": 1', '"format": 2')],
      ['negative count', JSON.stringify({ ...JSON.parse(good), seq: -1 })],
      ['too large', Buffer.alloc(WATERMARK_FILE_BYTES_MAX + 1, 0x20)],
    ];
    for (const [what, bytes] of damaged) {
      await writeFile(path, bytes);
      await assert.rejects(
        readWatermark(path),
        (error: Error) =>
          isRdbnetError(error, ErrorCode.StorageCorrupt) && error.message.includes(path),
        what,
      );
    }
  });
});
