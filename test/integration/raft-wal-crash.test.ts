/**
 * kill -9 at random moments: a child (test/helpers/raft-wal-writer.ts) appends entries and
 * hard states to a FileRaftStorage in a loop and prints each index once sync() resolved;
 * the test kills it with SIGKILL, reopens the storage, and checks that every index reported
 * as synced is there with its term and bytes, the log is a valid one (contiguous, terms
 * never decreasing, every byte as written) and the hard state never went back. Then the
 * child is started again on the same dir. RAFT_WAL_CRASH_SEED=<n> replays the kill timing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FileRaftStorage } from '../../src/core/membership/raft/file-storage.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { CRASH_SEGMENT_BYTES, walPayload, walSnapshotData } from '../helpers/raft-wal-writer.ts';

const WRITER = fileURLToPath(new URL('../helpers/raft-wal-writer.ts', import.meta.url));
const KILLS = 24;
/**
 * Stop starting new rounds after this, even if fewer than KILLS happened: on a loaded
 * machine each round is slower, and the test must stay bounded in time. Kills are what the
 * test is about, so the floor below is on kills, well under KILLS.
 */
const BUDGET_MS = 45_000;
const KILLS_MIN = 10;
const FIRST_SYNC_TIMEOUT_MS = 10_000;
const KILL_DELAY_MS_MAX = 250;

interface Synced {
  /** index -> term, for every index reported synced and not overwritten since. */
  terms: Map<number, number>;
  commit: number;
  term: number;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b)) === 0;
}

/** Runs the writer until it has synced once, kills it after a random delay. */
function runAndKill(
  dir: string,
  seed: number,
  delayMs: number,
  synced: Synced,
): Promise<{ lines: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, dir, String(seed)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    let stderr = '';
    let lines = 0;
    let killTimer: NodeJS.Timeout | undefined;
    const startTimer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer did not sync within ${FIRST_SYNC_TIMEOUT_MS} ms\n${stderr}`));
    }, FIRST_SYNC_TIMEOUT_MS);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const [kind, ...fields] = buffered.slice(0, newline).split(' ');
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
        lines++;
        const numbers = fields.map(Number);
        if (kind === 'T') {
          // From here on the entries at and after `from` may be replaced.
          for (const index of [...synced.terms.keys()]) {
            if (index >= numbers[0]!) synced.terms.delete(index);
          }
        } else if (kind === 'S') {
          const [from, last, term, commit] = numbers as [number, number, number, number];
          for (let index = from; index <= last; index++) synced.terms.set(index, term);
          synced.term = term;
          synced.commit = commit;
          if (killTimer === undefined) {
            clearTimeout(startTimer);
            killTimer = setTimeout(() => child.kill('SIGKILL'), delayMs);
          }
        }
      }
    });
    child.on('error', reject);
    // 'close', not 'exit': it comes after the last stdout data has been read.
    child.on('close', (code, signal) => {
      clearTimeout(startTimer);
      clearTimeout(killTimer);
      if (signal !== 'SIGKILL') {
        reject(new Error(`writer exited on its own (code ${code})\n${stderr}`));
        return;
      }
      resolve({ lines });
    });
  });
}

async function verify(dir: string, synced: Synced, round: number) {
  const storage = await FileRaftStorage.open(dir, { segmentBytesTarget: CRASH_SEGMENT_BYTES });
  try {
    const where = `round ${round}`;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    const snapshot = storage.snapshot();
    for (const [index, term] of synced.terms) {
      if (index < first) {
        assert.ok(
          index <= snapshot.metadata.index,
          `${where}: synced ${index} lost, not compacted`,
        );
        continue;
      }
      assert.ok(index <= last, `${where}: synced index ${index} missing (last ${last})`);
      assert.equal(storage.term(index), term, `${where}: term of synced index ${index}`);
    }
    let previousTerm = storage.term(first - 1)!;
    for (const entry of storage.entries(first, last + 1, Infinity)) {
      assert.ok(entry.term >= previousTerm, `${where}: term goes back at ${entry.index}`);
      assert.ok(
        sameBytes(entry.data, walPayload(entry.index, entry.term)),
        `${where}: bytes of entry ${entry.index}`,
      );
      previousTerm = entry.term;
    }
    const hard = storage.hardStateNow();
    assert.ok(hard.commit >= synced.commit, `${where}: commit ${hard.commit} < ${synced.commit}`);
    assert.ok(hard.term >= synced.term, `${where}: term ${hard.term} < ${synced.term}`);
    assert.ok(hard.commit <= last, `${where}: commit ${hard.commit} beyond the log (${last})`);
    if (snapshot.metadata.index > 0) {
      assert.ok(sameBytes(snapshot.data, walSnapshotData(snapshot.metadata.index)), where);
    }
    return {
      last,
      torn: storage.recovery.tornTail !== undefined,
      segments: storage.stats().segments,
      snapshotIndex: snapshot.metadata.index,
    };
  } finally {
    await storage.close();
  }
}

test('FileRaftStorage keeps every synced write across kill -9 at random moments', {
  timeout: 120_000,
}, async (t) => {
  const seed = Number(process.env['RAFT_WAL_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  t.diagnostic(`seed=${seed} (replay kill timing: RAFT_WAL_CRASH_SEED=${seed})`);
  const random = seededRandom(seed);
  const dir = await mkdtemp(join(tmpdir(), 'rdbnet-wal-crash-'));
  const synced: Synced = { terms: new Map(), commit: 0, term: 0 };
  const started = performance.now();
  let kills = 0;
  let torn = 0;
  let result = { last: 0, torn: false, segments: 0, snapshotIndex: 0 };
  try {
    while (kills < KILLS && performance.now() - started < BUDGET_MS) {
      const delayMs = random.int(KILL_DELAY_MS_MAX);
      await runAndKill(dir, random.int(2 ** 31), delayMs, synced);
      kills++;
      result = await verify(dir, synced, kills);
      if (result.torn) torn++;
    }
    t.diagnostic(
      `${kills} kills in ${Math.round(performance.now() - started)} ms; last index ${result.last}, snapshot ${result.snapshotIndex}, ${result.segments} segments, ${torn} torn tails repaired`,
    );
    assert.ok(kills >= KILLS_MIN, `only ${kills} kills within the time budget`);
    assert.ok(result.snapshotIndex > 0, 'the run reached compaction');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
