/**
 * The pieces of delivery guarantees on their own: backoff with full jitter, which errors are
 * retried, the deduplication window's bounds (count, age, stored bytes; a running key is never
 * evicted; a failed handler forgets its key) and the limits' checks.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  backoffMs,
  DedupWindow,
  deliveryOf,
  isRetryable,
  parseDelivery,
} from '../../src/core/dataplane/delivery.ts';
import { dataPlaneLimits } from '../../src/core/dataplane/limits.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../../src/core/errors.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { VirtualClock } from '../../src/core/sim/index.ts';

describe('backoff', () => {
  test('full jitter: uniform in [0, min(max, base · 2^(n-1))], spread over the range', () => {
    const limits = { retryBackoffBaseMs: 20, retryBackoffMaxMs: 2000 };
    const random = seededRandom(5);
    for (const [retry, ceiling] of [
      [1, 20],
      [2, 40],
      [5, 320],
      [7, 1280],
      [8, 2000],
      [60, 2000],
    ] as const) {
      const waits = Array.from({ length: 2000 }, () => backoffMs(retry, limits, random));
      assert.ok(Math.min(...waits) >= 0);
      assert.equal(Math.max(...waits) <= ceiling, true, `retry ${retry}`);
      assert.ok(Math.max(...waits) > ceiling * 0.9, `retry ${retry} reaches near its ceiling`);
      assert.ok(Math.min(...waits) < ceiling * 0.1, `retry ${retry} also waits little`);
    }
  });

  test('only errors a retry can cure are retried', () => {
    for (const code of [
      ErrorCode.RequestTimeout,
      ErrorCode.NodeUnreachable,
      ErrorCode.QueueFull,
      ErrorCode.PoolExhausted,
    ]) {
      assert.equal(isRetryable(new RdbnetError(code, 'x')), true, code);
    }
    for (const code of [ErrorCode.TopicUnknown, ErrorCode.MessageTooLarge, ErrorCode.Forbidden]) {
      assert.equal(isRetryable(new RdbnetError(code, 'x')), false, code);
    }
    assert.equal(isRetryable(new Error('plain')), false);
  });

  test('delivery names and wire codes', () => {
    assert.equal(parseDelivery('exactly-once'), 'exactly-once');
    assert.throws(
      () => parseDelivery('twice'),
      (e: unknown) => isRdbnetError(e, ErrorCode.Usage),
    );
    assert.equal(deliveryOf(undefined), 'at-most-once');
    assert.equal(deliveryOf(1), 'at-least-once');
    assert.throws(
      () => deliveryOf(7),
      (e: unknown) => isRdbnetError(e, ErrorCode.Usage),
    );
  });
});

describe('deduplication window', () => {
  const bytes = (n: number) => new Uint8Array(n);

  test('a key runs once; copies get its reply, also while it runs', async () => {
    const clock = new VirtualClock();
    const window = new DedupWindow(dataPlaneLimits(), clock);
    let runs = 0;
    let finish!: (reply: Uint8Array) => void;
    const handler = () => {
      runs++;
      return new Promise<Uint8Array>((resolve) => {
        finish = resolve;
      });
    };
    const first = window.run('k', handler);
    const whileRunning = window.run('k', handler);
    finish(new TextEncoder().encode('r'));
    assert.deepEqual(await first, await whileRunning);
    assert.deepEqual(await window.run('k', handler), new TextEncoder().encode('r'));
    assert.equal(runs, 1);
    assert.deepEqual(window.stats(), {
      entries: 1,
      replyBytes: 1,
      suppressed: 2,
      evicted: 0,
      restored: 0,
      persistFailed: 0,
    });
  });

  test('a handler that fails forgets its key: a retry runs it again', async () => {
    const window = new DedupWindow(dataPlaneLimits(), new VirtualClock());
    await assert.rejects(window.run('k', () => Promise.reject(new Error('no'))));
    await new Promise((resolve) => setImmediate(resolve));
    let runs = 0;
    await window.run('k', async () => {
      runs++;
      return bytes(0);
    });
    assert.equal(runs, 1);
  });

  test('bounded by count, age and stored bytes; the oldest answered go first', async () => {
    const clock = new VirtualClock();
    const limits = dataPlaneLimits({
      dedupWindowMax: 3,
      dedupWindowAgeMs: 70_000,
      dedupReplyBytesMax: 100,
    });
    const window = new DedupWindow(limits, clock);
    for (const key of ['a', 'b', 'c', 'd']) await window.run(key, async () => bytes(10));
    assert.equal(window.stats().entries, 3);
    assert.equal(window.stats().evicted, 1);
    let reran = false;
    await window.run('a', async () => {
      reran = true;
      return bytes(10);
    });
    assert.equal(reran, true, 'the evicted oldest key runs again');
    await window.run('big', async () => bytes(95));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(window.stats().replyBytes <= 100, JSON.stringify(window.stats()));
    clock.setNow(clock.nowMs() + 70_001);
    await window.run('late', async () => bytes(1));
    assert.equal(window.stats().entries, 1, 'older than dedupWindowAgeMs: gone');
  });

  test('a running key is never evicted; a window full of them refuses', () => {
    const window = new DedupWindow(dataPlaneLimits({ dedupWindowMax: 2 }), new VirtualClock());
    const never = () => new Promise<Uint8Array>(() => {});
    void window.run('a', never);
    void window.run('b', never);
    assert.throws(
      () => window.run('c', never),
      (e: unknown) => isRdbnetError(e, ErrorCode.QueueFull),
    );
    assert.equal(window.stats().entries, 2);
  });

  test('limits: the window outlives the longest deadline; backoff base at most its max', () => {
    assert.throws(() => dataPlaneLimits({ dedupWindowAgeMs: 60_000 }), /dedupWindowAgeMs/);
    assert.throws(() => dataPlaneLimits({ retryBackoffBaseMs: 5000 }), /retryBackoffBaseMs/);
  });
});
