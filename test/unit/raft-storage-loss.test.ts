/**
 * Storage that cannot forget: FileRaftStorage refuses a WAL that is emptied, zeroed,
 * truncated or removed behind its back (RDB_STORAGE_LOST), checked against its watermark,
 * and a refused open changes no file; the legitimate recoveries (a torn tail, a fresh dir,
 * a lost watermark with an intact WAL) still open. The node's data dir refuses a lost
 * node.json instead of taking a new id. And a full or read-only disk is a typed error
 * naming the file (on a tmpfs this test mounts: root only, skipped with the reason
 * otherwise).
 *
 * Codes are compared as strings on purpose: these tests were first run against the code
 * before the watermark existed, where they had to fail for the right reason.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rm,
  rmdir,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { FileRaftStorage } from '../../src/core/membership/raft/file-storage.ts';
import { bootstrapSnapshot } from '../../src/core/membership/raft/storage.ts';
import type { Entry } from '../../src/core/membership/raft/types.ts';
import { lockDataDir, readOrCreateNodeRecord } from '../../src/core/node/data-dir.ts';

let root: string;
let dirCount = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'rdbnet-storage-loss-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

function freshDir(): string {
  return join(root, `d${dirCount++}`);
}

function entry(index: number, term: number, bytes = 100): Entry {
  return {
    index,
    term,
    type: 'normal',
    data: new TextEncoder().encode(`${index}:${term}:`.padEnd(bytes, 'x')),
  };
}

/** A founding member's storage after its first election: two synced batches. */
async function twoBatches(dir: string, options: { watermarkPath?: string; nodeId?: string } = {}) {
  const file = await FileRaftStorage.open(dir, options);
  file.applySnapshot(bootstrapSnapshot(['a', 'b', 'c'], [], new TextEncoder().encode('boot')));
  file.setHardState({ term: 1, vote: '', commit: 1 });
  await file.sync();
  // The second batch: a vote in term 2. It proves the first durable.
  file.setHardState({ term: 2, vote: 'a', commit: 1 });
  await file.sync();
  await file.close();
}

async function segmentPaths(dir: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((name) => name.endsWith('.wal'))
    .sort()
    .map((name) => join(dir, name));
}

/** Every file under `dir` (recursively) with its bytes. */
async function contents(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(path, (await readFile(path)).toString('base64'));
  }
  return out;
}

/** open() must fail with `code` and a message naming `file`, and leave every file as it was. */
async function assertRefused(
  dir: string,
  code: string,
  file: string,
  options: Parameters<typeof FileRaftStorage.open>[1] = {},
  watch: string = dir,
): Promise<Error & { code: string; hint?: string }> {
  const before = await contents(watch);
  let caught: (Error & { code: string; hint?: string }) | undefined;
  try {
    const opened = await FileRaftStorage.open(dir, options);
    await opened.close();
  } catch (error) {
    caught = error as Error & { code: string; hint?: string };
  }
  assert.ok(caught !== undefined, `open of ${dir} must be refused with ${code}`);
  assert.equal(caught.code, code, caught.message);
  assert.ok(caught.message.includes(file), `the message names ${file}: ${caught.message}`);
  assert.match(caught.hint ?? '', /\S/, 'a hint for the operator');
  assert.deepEqual(await contents(watch), before, 'a refused open changes no file');
  return caught;
}

async function zeroFile(path: string): Promise<void> {
  await writeFile(path, Buffer.alloc((await stat(path)).size));
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
}

describe('a WAL lost behind the storage is refused, not taken for a fresh start', () => {
  test('the only segment zeroed: RDB_STORAGE_LOST naming it', async () => {
    const dir = freshDir();
    await twoBatches(dir);
    const [segment] = await segmentPaths(dir);
    await zeroFile(segment!);
    const error = await assertRefused(dir, 'RDB_STORAGE_LOST', segment!);
    assert.match(error.hint!, /backup|empty data dir/);
  });

  test('the only segment truncated to 0 bytes: RDB_STORAGE_LOST naming it', async () => {
    const dir = freshDir();
    await twoBatches(dir);
    const [segment] = await segmentPaths(dir);
    await truncate(segment!, 0);
    await assertRefused(dir, 'RDB_STORAGE_LOST', segment!);
  });

  test('every WAL file removed (segments and snapshot files): RDB_STORAGE_LOST', async () => {
    const dir = freshDir();
    await twoBatches(dir);
    for (const name of await readdir(dir)) {
      if (name.endsWith('.wal') || name.endsWith('.snap')) await rm(join(dir, name));
    }
    await assertRefused(dir, 'RDB_STORAGE_LOST', dir);
  });

  test('the segment truncated and the watermark removed, a snapshot file still there: refused naming it', async () => {
    const parent = freshDir();
    await mkdir(parent);
    const dir = join(parent, 'raft');
    const watermarkPath = join(parent, 'raft.watermark.json');
    await twoBatches(dir, { watermarkPath });
    const [segment] = await segmentPaths(dir);
    await truncate(segment!, 0);
    await rm(watermarkPath);
    const [snapshot] = (await readdir(dir)).filter((name) => name.endsWith('.snap'));
    assert.ok(snapshot !== undefined, 'the founding snapshot is a file');
    await assertRefused(dir, 'RDB_STORAGE_LOST', snapshot, { watermarkPath }, parent);
  });

  test('the whole storage dir removed, watermark kept beside it: refused, dir not recreated', async () => {
    const parent = freshDir();
    await mkdir(parent);
    const dir = join(parent, 'raft');
    const watermarkPath = join(parent, 'raft.watermark.json');
    await twoBatches(dir, { watermarkPath });
    await rm(dir, { recursive: true });
    await assertRefused(dir, 'RDB_STORAGE_LOST', dir, { watermarkPath }, parent);
    await assert.rejects(stat(dir), { code: 'ENOENT' });
  });

  test('the last of several segments removed, or truncated to 0 bytes: refused', async () => {
    const dir = freshDir();
    const options = { segmentBytesTarget: 1024 };
    const file = await FileRaftStorage.open(dir, options);
    file.applySnapshot(bootstrapSnapshot(['a']));
    await file.sync();
    for (let index = 2; index <= 30; index++) {
      file.append([entry(index, 1)]);
      file.setHardState({ term: 1, vote: 'a', commit: index });
      await file.sync();
    }
    await file.close();
    // The watermark trails by one batch; with about 7 batches a segment, the batch before
    // the last is in the last segment unless a rollover came just before the last batch.
    const segments = await segmentPaths(dir);
    assert.ok(segments.length >= 3, `${segments.length} segments`);
    const last = segments.at(-1)!;
    const lastFirstSeq = Number.parseInt(last.slice(-20, -4), 16);
    // (Read only when there is one: the refusals below are what this test is about.)
    const watermark = await readJson(join(dir, 'watermark.json')).catch(() => undefined);
    if (watermark !== undefined) {
      assert.ok(
        (watermark['seq'] as number) >= lastFirstSeq,
        `watermark ${String(watermark['seq'])} vouches for a record in ${last}`,
      );
    }
    const original = await readFile(last);
    await rm(last);
    await assertRefused(dir, 'RDB_STORAGE_LOST', segments.at(-2)!, options);
    await writeFile(last, Buffer.alloc(0));
    await assertRefused(dir, 'RDB_STORAGE_LOST', last, options);
    await writeFile(last, original);
    const reopened = await FileRaftStorage.open(dir, options);
    assert.equal(reopened.lastIndex(), 30, 'the undamaged WAL still opens');
    await reopened.close();
  });

  test('a segment of zero bytes is refused even without a watermark (a data dir from before it)', async () => {
    const dir = freshDir();
    await twoBatches(dir);
    await rm(join(dir, 'watermark.json'), { force: true });
    const [segment] = await segmentPaths(dir);
    await zeroFile(segment!);
    await assertRefused(dir, 'RDB_STORAGE_LOST', segment!);
  });
});

describe('the recoveries that must keep working', () => {
  test('a torn tail in the last batch is truncated, watermark or not', async () => {
    const dir = freshDir();
    const file = await FileRaftStorage.open(dir);
    for (let index = 1; index <= 5; index++) {
      file.append([entry(index, 1)]);
      await file.sync();
    }
    const [segment] = await segmentPaths(dir);
    const beforeLast = (await stat(segment!)).size;
    file.append([entry(6, 1)]);
    file.setHardState({ term: 2, vote: 'x', commit: 6 });
    await file.sync();
    await file.close();
    const full = await readFile(segment!);
    await writeFile(segment!, full.subarray(0, beforeLast + 7));
    const reopened = await FileRaftStorage.open(dir);
    assert.equal(reopened.lastIndex(), 5);
    assert.equal(reopened.recovery.tornTail?.offset, beforeLast);
    assert.equal(reopened.hardStateNow().term, 0);
    await reopened.close();
  });

  test('a fresh dir opens and writes no watermark until a second batch proves the first', async () => {
    const dir = freshDir();
    const file = await FileRaftStorage.open(dir);
    assert.equal(file.lastIndex(), 0);
    file.applySnapshot(bootstrapSnapshot(['a']));
    file.setHardState({ term: 1, vote: '', commit: 1 });
    await file.sync();
    await file.close();
    await assert.rejects(stat(join(dir, 'watermark.json')), { code: 'ENOENT' });
    const again = await FileRaftStorage.open(dir);
    again.setHardState({ term: 2, vote: 'a', commit: 1 });
    await again.sync();
    await again.close();
    const watermark = await readJson(join(dir, 'watermark.json'));
    // Records 1..3 of the first batch: checkpoint, applySnapshot, hardState.
    assert.equal(watermark['seq'], 3);
    assert.equal(watermark['term'], 1);
    assert.equal(watermark['snapshotIndex'], 1);
  });

  test('a lost watermark with an intact WAL is written again at open', async () => {
    const dir = freshDir();
    await twoBatches(dir, { nodeId: 'n1' });
    const path = join(dir, 'watermark.json');
    const written = await readJson(path);
    await rm(path);
    const file = await FileRaftStorage.open(dir, { nodeId: 'n1' });
    assert.equal(file.recovery.watermarkMissing, true);
    assert.equal(file.hardStateNow().term, 2);
    await file.close();
    assert.deepEqual(await readJson(path), written);
  });

  test('a damaged watermark is RDB_STORAGE_CORRUPT naming it, whatever the damage', async () => {
    const dir = freshDir();
    await twoBatches(dir);
    const path = join(dir, 'watermark.json');
    const original = await readFile(path, 'utf8');
    const damaged = [
      Buffer.alloc(original.length).toString(),
      '',
      original.slice(0, original.length / 2),
      original.replace(/"seq": \d+/, '"seq": 1'),
    ];
    for (const text of damaged) {
      await writeFile(path, text);
      await assertRefused(dir, 'RDB_STORAGE_CORRUPT', path);
    }
    await writeFile(path, original);
    const reopened = await FileRaftStorage.open(dir);
    await reopened.close();
  });

  test("another node's storage is refused (RDB_CONFIG_INVALID), its own opens", async () => {
    const dir = freshDir();
    await twoBatches(dir, { nodeId: 'n1' });
    const error = await assertRefused(dir, 'RDB_CONFIG_INVALID', "'n1'", { nodeId: 'n2' });
    assert.match(error.hint!, /--id n1/);
    const own = await FileRaftStorage.open(dir, { nodeId: 'n1' });
    await own.close();
  });

  test('the watermark trails the WAL by one batch and closing waits for it', async () => {
    const dir = freshDir();
    const file = await FileRaftStorage.open(dir);
    file.append([entry(1, 1)]);
    await file.sync(); // records 1-2 (checkpoint, entry)
    file.append([entry(2, 1)]);
    await file.sync(); // record 3
    file.setHardState({ term: 1, vote: 'a', commit: 2 });
    await file.sync(); // record 4
    await file.close();
    assert.equal((await readJson(join(dir, 'watermark.json')))['seq'], 3);
    assert.equal(file.stats().watermarkSeq, 3);
  });

  test('a failed watermark write poisons the storage like a failed WAL write', async () => {
    const dir = freshDir();
    // A watermark that cannot be written: its directory does not exist.
    const watermarkPath = join(freshDir(), 'no-such-dir', 'watermark.json');
    const file = await FileRaftStorage.open(dir, { watermarkPath });
    let failure: unknown;
    for (let index = 1; index <= 50 && failure === undefined; index++) {
      file.append([entry(index, 1)]);
      try {
        await file.sync();
      } catch (error) {
        failure = error;
      }
    }
    assert.equal((failure as NodeJS.ErrnoException | undefined)?.code, 'ENOENT');
    await assert.rejects(async () => {
      file.append([entry(file.lastIndex() + 1, 1)]);
      await file.sync();
    });
    await file.close();
  });
});

describe('node.json lost while the Raft state is there', () => {
  async function dataDirWithState(nodeId: string): Promise<string> {
    const dataDir = freshDir();
    await mkdir(dataDir);
    await twoBatches(join(dataDir, 'raft'), {
      nodeId,
      watermarkPath: join(dataDir, 'raft.watermark.json'),
    });
    return dataDir;
  }

  test('is refused without --id (no new id), and with another id; --id of the node restores it', async () => {
    const dataDir = await dataDirWithState('n1');
    await assert.rejects(readOrCreateNodeRecord(dataDir, undefined), (error: Error) => {
      assert.equal((error as Error & { code: string }).code, 'RDB_STORAGE_LOST', error.message);
      assert.match((error as Error & { hint: string }).hint, /--id n1/);
      return true;
    });
    await assert.rejects(readOrCreateNodeRecord(dataDir, 'n2'), { code: 'RDB_CONFIG_INVALID' });
    await assert.rejects(stat(join(dataDir, 'node.json')), { code: 'ENOENT' });
    const record = await readOrCreateNodeRecord(dataDir, 'n1');
    assert.equal(record.id, 'n1');
    assert.equal((await readOrCreateNodeRecord(dataDir, undefined)).id, 'n1');
  });

  test('a data dir from before watermarks (WAL files only) is refused without --id too', async () => {
    const dataDir = await dataDirWithState('n1');
    await rm(join(dataDir, 'raft.watermark.json'), { force: true });
    await assert.rejects(readOrCreateNodeRecord(dataDir, undefined), { code: 'RDB_STORAGE_LOST' });
    assert.equal((await readOrCreateNodeRecord(dataDir, 'n1')).id, 'n1');
  });

  test('a zeroed or emptied node.json is RDB_STORAGE_CORRUPT, not a parse error', async () => {
    const dataDir = freshDir();
    const record = await readOrCreateNodeRecord(dataDir, 'n1');
    assert.equal(record.id, 'n1');
    const path = join(dataDir, 'node.json');
    for (const text of [Buffer.alloc(60).toString(), '', '{}']) {
      await writeFile(path, text);
      await assert.rejects(readOrCreateNodeRecord(dataDir, undefined), {
        code: 'RDB_STORAGE_CORRUPT',
      });
    }
  });
});

// ------------------------------------------------------------------ full and read-only disks

const run = promisify(execFile);
const TMPFS_BYTES = 256 * 1024;

describe('a full or read-only filesystem, for real (tmpfs)', () => {
  let mountPoint = '';
  let mounted = false;
  let skipReason: string | undefined;

  before(async () => {
    mountPoint = await mkdtemp(join(tmpdir(), 'rdbnet-tmpfs-'));
    if (process.getuid?.() !== 0) {
      skipReason = 'mounting a tmpfs needs root';
      return;
    }
    try {
      await run('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'tmpfs', mountPoint]);
      mounted = true;
    } catch (error) {
      skipReason = `mount -t tmpfs failed: ${(error as Error).message.split('\n')[0]}`;
    }
  });

  after(async () => {
    if (mounted) {
      await run('umount', [mountPoint]).catch(() => run('umount', ['-l', mountPoint]));
    }
    await rmdir(mountPoint).catch(() => {});
  });

  async function fill(path: string): Promise<void> {
    const handle = await open(path, 'w');
    try {
      for (const chunkBytes of [64 * 1024, 4096, 1]) {
        const chunk = Buffer.alloc(chunkBytes, 1);
        for (;;) {
          try {
            if ((await handle.write(chunk)).bytesWritten < chunkBytes) break;
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
            break;
          }
        }
      }
    } finally {
      await handle.close();
    }
  }

  test('a sync on a full disk: RDB_STORAGE_FULL naming the segment; later syncs too', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const dir = join(mountPoint, 'full');
    const file = await FileRaftStorage.open(dir);
    file.append([entry(1, 1)]);
    await file.sync();
    const filler = join(mountPoint, 'filler');
    await fill(filler);
    try {
      file.append([entry(2, 1, 64 * 1024)]);
      const [segment] = await segmentPaths(dir);
      await assert.rejects(file.sync(), (error: Error & { code: string; hint: string }) => {
        assert.equal(error.code, 'RDB_STORAGE_FULL', error.message);
        assert.ok(error.message.includes(segment!), error.message);
        assert.match(error.hint, new RegExp(`free space on the filesystem holding ${dir}`));
        return true;
      });
      file.append([entry(3, 1)]);
      await assert.rejects(file.sync(), { code: 'RDB_STORAGE_FULL' });
    } finally {
      await file.close();
      await rm(filler);
    }
    const reopened = await FileRaftStorage.open(dir);
    assert.equal(reopened.lastIndex(), 1, 'what was synced before the disk filled is there');
    await reopened.close();
  });

  test('the data-dir lock on a full disk: RDB_STORAGE_FULL naming LOCK, none left behind', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const dataDir = join(mountPoint, 'lock');
    await mkdir(dataDir);
    const filler = join(mountPoint, 'filler');
    await fill(filler);
    try {
      await assert.rejects(lockDataDir(dataDir), (error: Error & { code: string }) => {
        assert.equal(error.code, 'RDB_STORAGE_FULL', error.message);
        assert.ok(error.message.includes(join(dataDir, 'LOCK')), error.message);
        return true;
      });
      assert.deepEqual(await readdir(dataDir), []);
    } finally {
      await rm(filler);
    }
  });

  test('opening on a read-only filesystem: RDB_STORAGE_DENIED naming the file', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const dir = join(mountPoint, 'ro');
    const file = await FileRaftStorage.open(dir);
    file.append([entry(1, 1)]);
    await file.sync();
    await file.close();
    await run('mount', ['-o', 'remount,ro', mountPoint]);
    try {
      await assert.rejects(FileRaftStorage.open(dir), (error: Error & { code: string }) => {
        assert.equal(error.code, 'RDB_STORAGE_DENIED', error.message);
        assert.ok(error.message.includes(dir), error.message);
        assert.match(error.message, /read-only/);
        return true;
      });
    } finally {
      await run('mount', ['-o', 'remount,rw', mountPoint]);
    }
  });
});
