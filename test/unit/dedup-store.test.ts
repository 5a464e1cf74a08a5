/**
 * The exactly-once dedup log (src/core/dataplane/dedup-store.ts) on a real file: what one
 * "process" (a DedupWindow over a FileDedupStore) answered, the next one over the same file
 * answers from the log without running the handler; a torn tail is cut off; a rewrite keeps
 * only the live window; the window's age bound holds across the restart (by the wall clock).
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DataPlane } from '../../src/core/dataplane/dataplane.ts';
import {
  decodeRecords,
  FileDedupStore,
  MemoryDedupStore,
} from '../../src/core/dataplane/dedup-store.ts';
import { DedupWindow } from '../../src/core/dataplane/delivery.ts';
import { dataPlaneLimits } from '../../src/core/dataplane/limits.ts';
import { systemTimers } from '../../src/core/runtime/index.ts';
import { VirtualClock } from '../../src/core/sim/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'rdbnet-dedup-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (value: string) => new TextEncoder().encode(value);

/** A window over the log at `path`, and how often its handler ran per key. */
function startProcess(path: string, clock = new VirtualClock(), limits = dataPlaneLimits()) {
  const runs = new Map<string, number>();
  const store = new FileDedupStore(path, systemTimers);
  const window = new DedupWindow(limits, clock, store);
  const call = (key: string) =>
    window.run(key, async () => {
      runs.set(key, (runs.get(key) ?? 0) + 1);
      return bytes(`reply ${key}`);
    });
  return { runs, store, window, call };
}

describe('FileDedupStore', () => {
  test('a key answered before a restart is answered from the log, its handler not run', async () => {
    const path = join(dir, 'restart', 'dedup.log');
    const first = startProcess(path);
    for (let i = 0; i < 50; i++) assert.equal(text(await first.call(`k${i}`)), `reply k${i}`);
    // No close(): a kill -9 leaves what write(2) took, unsynced or not.
    const second = startProcess(path);
    assert.equal(second.window.stats().restored, 50);
    for (let i = 0; i < 50; i++) assert.equal(text(await second.call(`k${i}`)), `reply k${i}`);
    assert.equal(second.runs.size, 0, 'no key ran again');
    assert.equal(text(await second.call('new')), 'reply new');
    assert.equal(second.runs.get('new'), 1);
    first.store.close();
    second.store.close();
  });

  test('a torn tail (a crash mid-write) is cut off; the records before it load', async () => {
    const path = join(dir, 'torn', 'dedup.log');
    const first = startProcess(path);
    await first.call('a');
    await first.call('b');
    first.store.close();
    const intact = statSync(path).size;
    appendFileSync(path, Buffer.from([40, 0, 0, 0, 1, 2, 3]));
    const second = startProcess(path);
    assert.equal(second.window.stats().restored, 2);
    assert.equal(statSync(path).size, intact, 'the torn bytes are gone');
    await second.call('c');
    second.store.close();
    assert.deepEqual(
      decodeRecords(readFileSync(path)).records.map((record) => record.key),
      ['a', 'b', 'c'],
    );
  });

  test('entries older than dedupWindowAgeMs (by the wall clock) are not restored', async () => {
    const path = join(dir, 'age', 'dedup.log');
    const limits = dataPlaneLimits();
    const first = startProcess(path, new VirtualClock(1_000_000), limits);
    await first.call('old');
    first.store.close();
    const later = new VirtualClock(1_000_000 + limits.dedupWindowAgeMs + 1);
    const second = startProcess(path, later, limits);
    assert.equal(second.window.stats().restored, 0);
    await second.call('old');
    assert.equal(second.runs.get('old'), 1, 'a key past its age runs again, as without a restart');
    second.store.close();
  });

  test('after a window’s worth of appends the log is rewritten to the live window', async () => {
    const path = join(dir, 'rewrite', 'dedup.log');
    const limits = dataPlaneLimits({ dedupWindowMax: 10 });
    const first = startProcess(path, new VirtualClock(), limits);
    for (let i = 0; i < 25; i++) await first.call(`k${i}`);
    first.store.close();
    const keys = decodeRecords(readFileSync(path)).records.map((record) => record.key);
    assert.ok(keys.length <= 2 * 10, `${keys.length} records for a window of 10`);
    assert.deepEqual(
      keys.slice(-10),
      Array.from({ length: 10 }, (_, i) => `k${i + 15}`),
    );
    const second = startProcess(path, new VirtualClock(), limits);
    assert.equal(second.window.stats().restored, 10);
    await second.call('k24');
    await second.call('k5');
    assert.deepEqual([...second.runs.keys()], ['k5'], 'the newest 10 are remembered, k5 is not');
    second.store.close();
  });
});

describe('the dedup record and the handler', () => {
  test('a handler’s answer is recorded before the next handler runs (no batch for a kill to fall into)', async () => {
    const store = new MemoryDedupStore();
    const plane = new DataPlane({
      selfId: 'n1',
      limits: dataPlaneLimits(),
      clock: new VirtualClock(),
      dedupStore: store,
      peers: {
        request: () => Promise.reject(new Error('no remote peer in this test')),
      } as unknown as ConstructorParameters<typeof DataPlane>[0]['peers'],
      members: () => [
        {
          id: 'n1',
          address: '127.0.0.1:1',
          state: 'alive',
          groups: [],
          score: 1,
          rttMs: null,
          isSelf: true,
        },
      ],
    });
    const recordedWhenRun: number[] = [];
    plane.register('apply', () => {
      recordedWhenRun.push(store.size);
      return 'ok';
    });
    // Both queued in one synchronous stretch, as the frames of one socket read are.
    const sends = [0, 1, 2].map((n) =>
      plane.send('n1', 'apply', String(n), { delivery: 'exactly-once', idempotencyKey: `k${n}` }),
    );
    await Promise.all(sends);
    assert.deepEqual(recordedWhenRun, [0, 1, 2], 'each handler saw the ones before it recorded');
    assert.equal(store.size, 3);
  });
});
