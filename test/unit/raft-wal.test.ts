/**
 * FileRaftStorage and its WAL: MemoryStorage semantics across reopen, torn tails at every
 * byte, bit flips (tail: truncated; earlier batch: typed error), segment rollover and
 * deletion, and a seeded model-based run against MemoryStorage with crashes and reopens.
 * RAFT_WAL_SEED=<n> replays the randomized run; RAFT_WAL_OPS=<n> changes its length.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { FileRaftStorage } from '../../src/core/membership/raft/file-storage.ts';
import { RawNode } from '../../src/core/membership/raft/raw-node.ts';
import {
  bootstrapSnapshot,
  MemoryStorage,
  persistReady,
} from '../../src/core/membership/raft/storage.ts';
import type {
  ConfState,
  Entry,
  HardState,
  Snapshot,
} from '../../src/core/membership/raft/types.ts';
import { WAL_ENTRY_DATA_BYTES_MAX } from '../../src/core/membership/raft/wal.ts';
import { type Random, seededRandom } from '../../src/core/runtime/index.ts';

let root: string;
let dirCount = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'rdbnet-wal-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

function freshDir(): string {
  return join(root, `d${dirCount++}`);
}

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function entry(index: number, term: number, text = `e${index}t${term}`): Entry {
  return { index, term, type: index % 7 === 0 ? 'confChange' : 'normal', data: bytes(text) };
}

function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let index = from; index <= to; index++) out.push(entry(index, term));
  return out;
}

type Storage = MemoryStorage | FileRaftStorage;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b)) === 0;
}

/** Everything the core can read, compared between two storages. */
function assertSameStorage(actual: Storage, expected: Storage, context = ''): void {
  const where = context === '' ? '' : ` (${context})`;
  assert.equal(actual.firstIndex(), expected.firstIndex(), `firstIndex${where}`);
  assert.equal(actual.lastIndex(), expected.lastIndex(), `lastIndex${where}`);
  assert.deepEqual(actual.initialState(), expected.initialState(), `initialState${where}`);
  assert.deepEqual(actual.hardStateNow(), expected.hardStateNow(), `hardState${where}`);
  for (let index = actual.firstIndex() - 2; index <= actual.lastIndex() + 1; index++) {
    assert.equal(actual.term(index), expected.term(index), `term(${index})${where}`);
  }
  if (actual.lastIndex() >= actual.firstIndex()) {
    const got = actual.entries(actual.firstIndex(), actual.lastIndex() + 1, Infinity);
    const want = expected.entries(expected.firstIndex(), expected.lastIndex() + 1, Infinity);
    assert.equal(got.length, want.length, `entries${where}`);
    for (let i = 0; i < got.length; i++) {
      const [g, w] = [got[i]!, want[i]!];
      assert.deepEqual(
        { index: g.index, term: g.term, type: g.type },
        { index: w.index, term: w.term, type: w.type },
        `entry ${w.index}${where}`,
      );
      assert.ok(sameBytes(g.data, w.data), `entry ${w.index} data${where}`);
    }
  }
  const [gs, ws] = [actual.snapshot(), expected.snapshot()];
  assert.deepEqual(gs.metadata, ws.metadata, `snapshot metadata${where}`);
  assert.ok(sameBytes(gs.data, ws.data), `snapshot data${where}`);
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith('.wal')).sort();
}

async function lastSegment(dir: string): Promise<string> {
  return join(dir, (await segmentFiles(dir)).at(-1)!);
}

async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

/** Expects open() to fail with the corruption code. */
async function assertCorrupt(dir: string, context: string): Promise<void> {
  await assert.rejects(
    FileRaftStorage.open(dir),
    (error) => isRdbnetError(error, ErrorCode.StorageCorrupt),
    context,
  );
}

/** Applies the same writes to both storages. */
function both(storages: Storage[], write: (storage: Storage) => void): void {
  for (const storage of storages) write(storage);
}

describe('FileRaftStorage round trip', () => {
  test('entries, hard state, snapshots, compaction and a conflicting append survive reopen', async () => {
    const dir = freshDir();
    const model = new MemoryStorage();
    let file = await FileRaftStorage.open(dir);
    assert.equal(file.recovery.tornTail, undefined);
    assertSameStorage(file, model, 'empty');

    const voters = ['n1', 'n2', 'n3'];
    both([file, model], (s) => {
      s.applySnapshot(bootstrapSnapshot(voters, ['l1'], bytes('boot')));
      s.setHardState({ term: 1, vote: '', commit: 1 });
      s.append(entries(2, 40, 1));
      s.setHardState({ term: 2, vote: 'n2', commit: 30 });
    });
    await file.sync();
    await file.close();
    file = await FileRaftStorage.open(dir);
    assertSameStorage(file, model, 'after first reopen');

    both([file, model], (s) => {
      s.createSnapshot(25, { voters, learners: [] }, bytes('state@25'));
      s.compact(20);
      // A new leader overwrote 35.. with its own term: the old suffix must not come back.
      s.append(entries(35, 37, 3));
      s.setHardState({ term: 3, vote: 'n3', commit: 36 });
    });
    await file.sync();
    await file.close();
    file = await FileRaftStorage.open(dir);
    assertSameStorage(file, model, 'after conflicting append');
    assert.equal(file.lastIndex(), 37);
    assert.equal(file.term(36), 3);

    // A follower catching up from a leader's snapshot drops its whole log.
    const leaderSnapshot: Snapshot = {
      metadata: { index: 60, term: 4, confState: { voters: ['n1', 'n2'], learners: [] } },
      data: bytes('state@60'),
    };
    both([file, model], (s) => {
      s.applySnapshot(leaderSnapshot);
      s.append(entries(61, 63, 4));
      s.setHardState({ term: 4, vote: '', commit: 62 });
    });
    await file.sync();
    await file.close();
    file = await FileRaftStorage.open(dir);
    assertSameStorage(file, model, 'after applySnapshot');
    // Only the current snapshot's data file is kept.
    const snapshots = (await readdir(dir)).filter((name) => name.endsWith('.snap'));
    assert.equal(snapshots.length, 1);
    await file.close();
  });

  test('writes not passed to sync() are lost like in a crash, synced ones are not', async () => {
    const dir = freshDir();
    const model = new MemoryStorage();
    let file = await FileRaftStorage.open(dir);
    both([file, model], (s) => {
      s.append(entries(1, 5, 1));
      s.setHardState({ term: 1, vote: 'a', commit: 3 });
    });
    await file.sync();
    file.append(entries(6, 9, 1));
    file.setHardState({ term: 2, vote: 'b', commit: 8 });
    await file.close();
    file = await FileRaftStorage.open(dir);
    assertSameStorage(file, model);
    await file.close();
  });

  test('drives a RawNode through persistReady and restarts from disk', async () => {
    const dir = freshDir();
    let storage = await FileRaftStorage.open(dir);
    storage.applySnapshot(bootstrapSnapshot(['n1']));
    storage.setHardState({ term: 1, vote: '', commit: 1 });
    await storage.sync();
    let node = new RawNode({
      id: 'n1',
      storage,
      random: seededRandom(1),
      config: { compactionThresholdEntries: 10, compactionRetainEntries: 2 },
    });
    const applied: string[] = [];
    const drain = async (raw: RawNode, sink: string[]) => {
      while (raw.hasReady()) {
        const ready = raw.ready();
        await persistReady(storage, ready);
        for (const e of ready.committedEntries) {
          if (e.type === 'normal' && e.data.byteLength > 0) {
            sink.push(new TextDecoder().decode(e.data));
          }
        }
        raw.advance();
        if (raw.compactionDue()) raw.compact(raw.basicStatus().applied, bytes(sink.join(',')));
      }
    };
    node.campaign();
    await drain(node, applied);
    assert.equal(node.basicStatus().role, 'leader');
    for (let i = 0; i < 25; i++) {
      node.propose(bytes(`p${i}`));
      await drain(node, applied);
    }
    assert.equal(applied.length, 25);
    const before = node.basicStatus();
    assert.ok(storage.stats().syncs > 25);
    await storage.close();

    storage = await FileRaftStorage.open(dir);
    node = new RawNode({ id: 'n1', storage, random: seededRandom(2) });
    const status = node.basicStatus();
    assert.equal(status.lastIndex, before.lastIndex);
    assert.equal(status.term, before.term);
    assert.equal(status.commit, before.commit);
    // The state machine restarts from the snapshot, then gets the rest of the log again.
    const restored = new TextDecoder().decode(storage.snapshot().data).split(',');
    const replayed: string[] = [];
    await drain(node, replayed);
    assert.deepEqual([...restored, ...replayed], applied);
    await storage.close();
  });

  test('bounds: oversized entries and bad options are typed errors', async () => {
    await assert.rejects(FileRaftStorage.open(freshDir(), { segmentBytesTarget: 10 }), (error) =>
      isRdbnetError(error, ErrorCode.ConfigInvalid),
    );
    const file = await FileRaftStorage.open(freshDir());
    assert.throws(
      () =>
        file.append([
          { index: 1, term: 1, type: 'normal', data: new Uint8Array(WAL_ENTRY_DATA_BYTES_MAX + 1) },
        ]),
      (error) => isRdbnetError(error, ErrorCode.Usage),
    );
    assert.equal(file.lastIndex(), 0, 'a refused append changes nothing');
    await file.close();
    assert.throws(
      () => file.append(entries(1, 1, 1)),
      (error) => isRdbnetError(error, ErrorCode.Usage),
    );
  });
});

describe('FileRaftStorage recovery', () => {
  /** Ten synced batches of one entry each; returns the model and each batch's end offset. */
  async function tenBatches(dir: string, entryBytes = 100) {
    const model = new MemoryStorage();
    const file = await FileRaftStorage.open(dir);
    const ends: number[] = [];
    for (let index = 1; index <= 10; index++) {
      const e = entry(index, 1, `${index}:`.padEnd(entryBytes, 'x'));
      file.append([e]);
      await file.sync();
      ends.push(await fileSize(await lastSegment(dir)));
      if (index < 10) model.append([e]);
    }
    await file.close();
    return { model, ends, path: await lastSegment(dir) };
  }

  test('a torn tail at every byte offset of the last record recovers the prefix exactly', async () => {
    const dir = freshDir();
    const { model, ends, path } = await tenBatches(dir);
    const full = await readFile(path);
    const [start, end] = [ends[8]!, ends[9]!];
    for (let length = start; length < end; length++) {
      await writeFile(path, full.subarray(0, length));
      const file = await FileRaftStorage.open(dir);
      assertSameStorage(file, model, `cut at ${length}`);
      const torn = file.recovery.tornTail;
      if (length === start) {
        assert.equal(torn, undefined, 'a cut on a record boundary is a clean end');
      } else {
        assert.equal(torn?.offset, start, `cut at ${length}`);
        assert.equal(torn?.bytesDropped, length - start, `cut at ${length}`);
        assert.equal(file.stats().tornTailsTruncated, 1);
      }
      assert.equal(await fileSize(path), start, 'the torn bytes are gone from the file');
      // New records land where the torn one was and are read back (not swallowed by it).
      file.append([entry(10, 2, 'after-repair')]);
      await file.sync();
      await file.close();
      const reopened = await FileRaftStorage.open(dir);
      assert.equal(reopened.lastIndex(), 10);
      assert.equal(reopened.term(10), 2);
      assert.equal(reopened.recovery.tornTail, undefined);
      await reopened.close();
    }
  });

  test('a torn multi-record batch keeps exactly the records that were complete', async () => {
    const dir = freshDir();
    const file = await FileRaftStorage.open(dir);
    file.append(entries(1, 3, 1));
    await file.sync();
    const path = await lastSegment(dir);
    const start = await fileSize(path);
    file.append(entries(4, 8, 1));
    file.setHardState({ term: 1, vote: 'x', commit: 8 });
    await file.sync();
    await file.close();
    const full = await readFile(path);
    let previousLast = 3;
    for (let length = start; length < full.length; length++) {
      await writeFile(path, full.subarray(0, length));
      const reopened = await FileRaftStorage.open(dir);
      const last = reopened.lastIndex();
      assert.ok(last >= previousLast && last <= 8, `cut at ${length}: last ${last}`);
      previousLast = last;
      for (const e of reopened.entries(1, last + 1, Infinity)) {
        assert.ok(sameBytes(e.data, entry(e.index, 1).data), `cut at ${length}: entry ${e.index}`);
      }
      // The hard state is the batch's last record: present only with every entry before it.
      assert.equal(reopened.hardStateNow().commit, 0);
      await reopened.close();
    }
    assert.equal(previousLast, 8);
  });

  test('a bit flip anywhere in the last record truncates that record', async () => {
    const dir = freshDir();
    const { model, ends, path } = await tenBatches(dir);
    const full = await readFile(path);
    const [start, end] = [ends[8]!, ends[9]!];
    for (let at = start; at < end; at++) {
      const damaged = Buffer.from(full);
      damaged[at]! ^= 1 << (at % 8);
      await writeFile(path, damaged);
      const file = await FileRaftStorage.open(dir);
      assertSameStorage(file, model, `flip at ${at}`);
      assert.equal(file.recovery.tornTail?.offset, start, `flip at ${at}`);
      await file.close();
    }
  });

  test('a bit flip anywhere in an earlier batch is a typed error, not a silent truncation', async () => {
    const dir = freshDir();
    const { ends, path } = await tenBatches(dir);
    const full = await readFile(path);
    // Batch 5 (a middle one) and batch 9 (just before the last): both were acknowledged.
    for (const batch of [4, 8]) {
      for (let at = ends[batch - 1]!; at < ends[batch]!; at++) {
        const damaged = Buffer.from(full);
        damaged[at]! ^= 1 << (at % 8);
        await writeFile(path, damaged);
        await assertCorrupt(dir, `flip at ${at} in batch ${batch + 1}`);
      }
    }
    await writeFile(path, full);
    const file = await FileRaftStorage.open(dir);
    assert.equal(file.lastIndex(), 10, 'the undamaged file still opens');
    await file.close();
  });

  test('damage inside the last batch followed by records of that batch is a torn batch', async () => {
    // After a power loss the pages of one write can reach the disk in any order; the batch
    // was never acknowledged, so dropping it whole is right.
    const dir = freshDir();
    const file = await FileRaftStorage.open(dir);
    file.append(entries(1, 2, 1));
    await file.sync();
    const path = await lastSegment(dir);
    const start = await fileSize(path);
    file.append(entries(3, 6, 1));
    await file.sync();
    await file.close();
    const damaged = await readFile(path);
    damaged[start + 30]! ^= 0xff;
    await writeFile(path, damaged);
    const reopened = await FileRaftStorage.open(dir);
    assert.equal(reopened.lastIndex(), 2);
    assert.equal(reopened.recovery.tornTail?.framesDropped, 3);
    await reopened.close();
  });

  test('damage in a sealed segment, a missing segment or a missing snapshot file is a typed error', async () => {
    const dir = freshDir();
    const file = await FileRaftStorage.open(dir, { segmentBytesTarget: 1024 });
    file.applySnapshot(bootstrapSnapshot(['a'], [], bytes('boot')));
    for (let index = 2; index <= 40; index++) {
      file.append([entry(index, 1, 'y'.repeat(100))]);
      await file.sync();
    }
    await file.close();
    const names = await segmentFiles(dir);
    assert.ok(names.length >= 4, `${names.length} segments`);
    const sealed = join(dir, names[1]!);
    const original = await readFile(sealed);
    // The last record of a sealed segment: nothing after it in that file, still corruption.
    const damaged = Buffer.from(original);
    damaged[damaged.length - 3]! ^= 0x10;
    await writeFile(sealed, damaged);
    await assertCorrupt(dir, 'flip in a sealed segment');
    await writeFile(sealed, original.subarray(0, original.length - 5));
    await assertCorrupt(dir, 'sealed segment cut short');
    await rm(sealed);
    await assertCorrupt(dir, 'segment missing');
    await writeFile(sealed, original);
    const snapshot = (await readdir(dir)).find((name) => name.endsWith('.snap'))!;
    const data = await readFile(join(dir, snapshot));
    await rm(join(dir, snapshot));
    await assertCorrupt(dir, 'snapshot file missing');
    await writeFile(join(dir, snapshot), Buffer.from('bool'));
    await assertCorrupt(dir, 'snapshot file damaged');
    await writeFile(join(dir, snapshot), data);
    const reopened = await FileRaftStorage.open(dir);
    assert.equal(reopened.lastIndex(), 40);
    await reopened.close();
  });

  test('leftover temp and orphan snapshot files are removed at open, other files kept', async () => {
    const dir = freshDir();
    const file = await FileRaftStorage.open(dir);
    file.append(entries(1, 1, 1));
    await file.sync();
    await file.close();
    await writeFile(join(dir, 'snapshot-0000000000000009-0000000000000001.snap.tmp'), 'x');
    await writeFile(join(dir, 'snapshot-0000000000000009-0000000000000001.snap'), 'x');
    await writeFile(join(dir, 'node.json.tmp'), 'not ours');
    const reopened = await FileRaftStorage.open(dir);
    assert.equal(reopened.recovery.removedFiles.length, 2);
    assert.deepEqual(
      (await readdir(dir)).filter((name) => !name.endsWith('.wal')),
      ['node.json.tmp'],
    );
    await reopened.close();
  });

  test('snapshot files without any segment are refused, not taken for a fresh dir', async () => {
    const dir = freshDir();
    const file = await FileRaftStorage.open(dir);
    file.applySnapshot(bootstrapSnapshot(['a']));
    await file.sync();
    await file.close();
    for (const name of await segmentFiles(dir)) await rm(join(dir, name));
    await assertCorrupt(dir, 'segments removed');
  });
});

describe('FileRaftStorage segments', () => {
  test('rolls over at the target size and deletes segments once compaction passes them', async () => {
    const dir = freshDir();
    const model = new MemoryStorage();
    let file = await FileRaftStorage.open(dir, { segmentBytesTarget: 2048 });
    both([file, model], (s) => s.applySnapshot(bootstrapSnapshot(['a', 'b'], [], bytes('boot'))));
    for (let index = 2; index <= 200; index++) {
      both([file, model], (s) => {
        s.append([entry(index, 1, `${index}`.padEnd(90, '.'))]);
        s.setHardState({ term: 1, vote: 'a', commit: index });
      });
      await file.sync();
    }
    const grown = await segmentFiles(dir);
    assert.ok(grown.length >= 10, `${grown.length} segments`);
    for (const name of grown) assert.ok((await fileSize(join(dir, name))) <= 2048, name);

    both([file, model], (s) => {
      s.createSnapshot(190, { voters: ['a', 'b'], learners: [] }, bytes('state@190'));
      s.compact(185);
    });
    await file.sync();
    const shrunk = await segmentFiles(dir);
    assert.ok(shrunk.length <= 3, `after compaction: ${shrunk.join(', ')}`);
    assert.equal(file.stats().segmentsDeleted, grown.length - shrunk.length);
    assert.deepEqual(
      (await readdir(dir)).filter((name) => name.endsWith('.snap')),
      ['snapshot-00000000000000be-0000000000000001.snap'],
    );
    await file.close();
    // Replay now starts at a checkpoint whose earlier entries are gone: still the same log.
    file = await FileRaftStorage.open(dir, { segmentBytesTarget: 2048 });
    assertSameStorage(file, model, 'after deletion and reopen');
    await file.close();
  });
});

// ------------------------------------------------------------------ model-based

const MODEL_OPS = Number(process.env['RAFT_WAL_OPS'] ?? 4000);

type Op =
  | { kind: 'append'; entries: Entry[] }
  | { kind: 'hardState'; hardState: HardState }
  | { kind: 'applySnapshot'; snapshot: Snapshot }
  | { kind: 'createSnapshot'; index: number; confState: ConfState; data: Uint8Array }
  | { kind: 'compact'; index: number };

function applyOp(storage: Storage, op: Op): void {
  switch (op.kind) {
    case 'append':
      storage.append(op.entries);
      return;
    case 'hardState':
      storage.setHardState(op.hardState);
      return;
    case 'applySnapshot':
      storage.applySnapshot(op.snapshot);
      return;
    case 'createSnapshot':
      storage.createSnapshot(op.index, op.confState, op.data);
      return;
    case 'compact':
      storage.compact(op.index);
  }
}

function randomBytes(random: Random, maxBytes: number): Uint8Array {
  const data = new Uint8Array(random.int(maxBytes + 1));
  for (let i = 0; i < data.length; i++) data[i] = random.int(256);
  return data;
}

function randomConfState(random: Random): ConfState {
  const ids = ['a', 'b', 'c', 'd', 'e'].filter(() => random.next() < 0.6);
  return { voters: ids.length > 0 ? ids : ['a'], learners: random.next() < 0.3 ? ['z'] : [] };
}

/** A write that is valid for the model's current state (the core never sends others). */
function drawOp(random: Random, model: MemoryStorage): Op | undefined {
  const first = model.firstIndex();
  const last = model.lastIndex();
  const hard = model.hardStateNow();
  const snapIndex = model.snapshot().metadata.index;
  const roll = random.next();
  if (roll < 0.45) {
    // Mostly extend the log; sometimes overwrite a suffix, or resend entries from below the
    // compaction point (as a leader does). Entries up to the snapshot are committed, so a
    // resend carries them unchanged; only the part after it may conflict.
    const from =
      random.next() < 0.75 ? last + 1 : Math.max(1, first - 2 + random.int(last - first + 4));
    const term = Math.max(1, hard.term, model.term(Math.min(from - 1, last)) ?? 1) + random.int(2);
    const big = random.next() < 0.05;
    const out: Entry[] = [];
    for (let index = from; index <= Math.min(snapIndex, last); index++) {
      out.push(
        index < first
          ? { index, term: 1, type: 'normal', data: new Uint8Array(0) }
          : model.entries(index, index + 1, Infinity)[0]!,
      );
    }
    const fresh = (out.length === 0 ? 1 : 0) + random.int(4);
    for (let i = 0; i < fresh; i++) {
      out.push({
        index: from + out.length,
        term,
        type: random.next() < 0.1 ? 'confChange' : 'normal',
        data: randomBytes(random, big ? 3000 : 120),
      });
    }
    return { kind: 'append', entries: out };
  }
  if (roll < 0.7) {
    const commit = Math.min(last, hard.commit + random.int(6));
    return {
      kind: 'hardState',
      hardState: {
        term: hard.term + (random.next() < 0.2 ? 1 : 0),
        vote: ['', 'a', 'b', 'node-with-a-longer-id'][random.int(4)]!,
        commit: Math.max(commit, Math.min(hard.commit, last)),
      },
    };
  }
  if (roll < 0.82) {
    const high = Math.min(hard.commit, last);
    if (high <= snapIndex) return undefined;
    const index = snapIndex + 1 + random.int(high - snapIndex);
    return {
      kind: 'createSnapshot',
      index,
      confState: randomConfState(random),
      data: randomBytes(random, 200),
    };
  }
  if (roll < 0.95) {
    return { kind: 'compact', index: Math.max(0, first - 2 + random.int(snapIndex - first + 3)) };
  }
  const index = Math.max(snapIndex, last - 3) + 1 + random.int(6);
  return {
    kind: 'applySnapshot',
    snapshot: {
      metadata: { index, term: hard.term + random.int(2), confState: randomConfState(random) },
      data: randomBytes(random, 200),
    },
  };
}

test('FileRaftStorage matches MemoryStorage over random writes, syncs, crashes and reopens', async (t) => {
  const seed = Number(process.env['RAFT_WAL_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  t.diagnostic(`seed=${seed} (replay: RAFT_WAL_SEED=${seed})`);
  const random = seededRandom(seed);
  const dir = freshDir();
  const options = { segmentBytesTarget: 4096 };
  let file = await FileRaftStorage.open(dir, options);
  let model = new MemoryStorage();
  const synced: Op[] = [];
  let unsynced: Op[] = [];
  const counts = { ops: 0, syncs: 0, crashes: 0, reopens: 0, segmentsDeleted: 0, maxSegments: 0 };
  const rebuild = () => {
    const storage = new MemoryStorage();
    for (const op of synced) applyOp(storage, op);
    return storage;
  };
  try {
    for (let step = 0; step < MODEL_OPS; step++) {
      const roll = random.next();
      if (roll < 0.12) {
        await file.sync();
        synced.push(...unsynced);
        unsynced = [];
        counts.syncs++;
        counts.maxSegments = Math.max(counts.maxSegments, file.stats().segments);
      } else if (roll < 0.14) {
        // Crash: whatever was not synced is gone; the model falls back to the synced writes.
        counts.segmentsDeleted += file.stats().segmentsDeleted;
        await file.close();
        file = await FileRaftStorage.open(dir, options);
        unsynced = [];
        model = rebuild();
        counts.crashes++;
        assertSameStorage(file, model, `seed=${seed} step ${step}: after crash`);
      } else if (roll < 0.15) {
        await file.sync();
        synced.push(...unsynced);
        unsynced = [];
        counts.segmentsDeleted += file.stats().segmentsDeleted;
        await file.close();
        file = await FileRaftStorage.open(dir, options);
        counts.reopens++;
        assertSameStorage(file, model, `seed=${seed} step ${step}: after reopen`);
      } else {
        const op = drawOp(random, model);
        if (op === undefined) continue;
        applyOp(model, op);
        applyOp(file, op);
        unsynced.push(op);
        counts.ops++;
        assertSameStorage(file, model, `seed=${seed} step ${step}: ${op.kind}`);
      }
    }
    await file.sync();
    synced.push(...unsynced);
    await file.close();
    file = await FileRaftStorage.open(dir, options);
    assertSameStorage(file, rebuild(), `seed=${seed}: final reopen`);
    t.diagnostic(JSON.stringify(counts));
    assert.ok(counts.crashes > 0 && counts.reopens > 0);
  } finally {
    await file.close();
  }
});
