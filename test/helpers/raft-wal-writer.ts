/**
 * Child process of test/integration/raft-wal-crash.test.ts: writes to a FileRaftStorage in
 * a loop, like a Raft node persisting Readys, until the test kills it with SIGKILL.
 *
 * Usage: node raft-wal-writer.ts <dir> <seed>
 *
 * stdout, one line per event (stdout on a pipe is synchronous on Linux, so a line printed
 * is a line the parent will read even if the process dies right after):
 *   T <from>                              about to append from <from>: entries at and after
 *                                         it may be overwritten from now on
 *   S <from> <last> <term> <commit>       synced: entries from..last have <term>, and the hard
 *                                         state with <commit> is durable
 *
 * Entry and snapshot contents are functions of (index, term) and index (walPayload,
 * walSnapshotData), so the parent can check every byte it reads back.
 */
import { FileRaftStorage } from '../../src/core/membership/raft/file-storage.ts';
import type { Entry } from '../../src/core/membership/raft/types.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';

/** Small segments so the crash test also crosses rollovers and deletions. */
export const CRASH_SEGMENT_BYTES = 16 * 1024;
const BATCH_ENTRIES_MAX = 8;
const SNAPSHOT_EVERY_ENTRIES = 150;
const RETAIN_ENTRIES = 20;

function mix(a: number, b: number): number {
  let hash = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  hash ^= hash >>> 13;
  return Math.imul(hash, 0x27d4eb2f) >>> 0;
}

export function walPayload(index: number, term: number): Uint8Array {
  const length = mix(index, term) % 700;
  const prefix = `${index}:${term}:`;
  const data = new Uint8Array(prefix.length + length);
  data.set(new TextEncoder().encode(prefix));
  for (let i = 0; i < length; i++) data[prefix.length + i] = mix(index + i, term) & 0xff;
  return data;
}

export function walSnapshotData(index: number): Uint8Array {
  return new TextEncoder().encode(`snapshot@${index}`);
}

async function main(dir: string, seed: number): Promise<void> {
  const random = seededRandom(seed);
  const storage = await FileRaftStorage.open(dir, { segmentBytesTarget: CRASH_SEGMENT_BYTES });
  // Each run is a new term, as if this node had just won an election.
  let term = storage.hardStateNow().term + 1;
  let commit = storage.hardStateNow().commit;
  const out = (line: string) => process.stdout.write(`${line}\n`);
  for (;;) {
    const last = storage.lastIndex();
    let from = last + 1;
    // Now and then a new leader overwrites an uncommitted suffix with its own entries.
    if (random.next() < 0.1 && last > commit + 1) {
      from = commit + 1 + random.int(last - commit);
      term++;
    }
    const count = 1 + random.int(BATCH_ENTRIES_MAX);
    const batch: Entry[] = [];
    for (let index = from; index < from + count; index++) {
      batch.push({ index, term, type: 'normal', data: walPayload(index, term) });
    }
    out(`T ${from}`);
    storage.append(batch);
    const newLast = from + count - 1;
    commit = Math.max(commit, newLast - random.int(4));
    storage.setHardState({ term, vote: 'writer', commit });
    await storage.sync();
    out(`S ${from} ${newLast} ${term} ${commit}`);
    const snapshotIndex = storage.snapshot().metadata.index;
    if (commit - snapshotIndex >= SNAPSHOT_EVERY_ENTRIES) {
      // Made durable by the next batch's sync, as RawNode.compact's writes would be.
      storage.createSnapshot(commit, { voters: ['writer'], learners: [] }, walSnapshotData(commit));
      storage.compact(commit - RETAIN_ENTRIES);
    }
  }
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  const [dir, seed] = process.argv.slice(2);
  if (dir === undefined || seed === undefined) {
    process.stderr.write('usage: raft-wal-writer.ts <dir> <seed>\n');
    process.exit(2);
  }
  main(dir, Number(seed)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
