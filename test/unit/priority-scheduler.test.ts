/**
 * The write path's weighted round robin (src/core/transport/priority.ts): weights honoured when
 * every priority is busy, critical first, nothing starves, the queue bounded; and the names and
 * wire codes of the four priorities.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  PRIORITY_WEIGHTS_DEFAULT,
  Priority,
  parsePriority,
  priorityFromWire,
  priorityToWire,
  WeightedScheduler,
} from '../../src/core/transport/priority.ts';

const ALL = [Priority.Critical, Priority.High, Priority.Normal, Priority.Low] as const;

describe('WeightedScheduler', () => {
  test('with every priority busy, each round hands out exactly the weights (64:16:4:1)', () => {
    const scheduler = new WeightedScheduler<number>(10_000);
    for (let i = 0; i < 2000; i++) for (const priority of ALL) scheduler.push(priority, priority);
    const round = PRIORITY_WEIGHTS_DEFAULT.reduce((a, b) => a + b, 0);
    for (let r = 0; r < 10; r++) {
      const counts = [0, 0, 0, 0];
      for (let i = 0; i < round; i++) counts[scheduler.next()!]!++;
      assert.deepEqual(counts, [...PRIORITY_WEIGHTS_DEFAULT], `round ${r}`);
    }
  });

  test('critical goes first while it has turns; then the others in order', () => {
    const scheduler = new WeightedScheduler<string>(100, [2, 1, 1, 1]);
    scheduler.push(Priority.Low, 'low');
    scheduler.push(Priority.Normal, 'normal');
    scheduler.push(Priority.Critical, 'c1');
    scheduler.push(Priority.Critical, 'c2');
    scheduler.push(Priority.Critical, 'c3');
    scheduler.push(Priority.High, 'high');
    const order: string[] = [];
    for (let item = scheduler.next(); item !== undefined; item = scheduler.next()) {
      order.push(item);
    }
    assert.deepEqual(order, ['c1', 'c2', 'high', 'normal', 'low', 'c3']);
  });

  test('no starvation: a low item waits at most one round however much critical keeps coming', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 50 }),
        (weights, before) => {
          const scheduler = new WeightedScheduler<string>(100_000, weights);
          // Some rounds already under way.
          for (let i = 0; i < before; i++) scheduler.push(Priority.Critical, 'c');
          for (let i = 0; i < before; i++) scheduler.next();
          scheduler.push(Priority.Low, 'low');
          const bound = weights.reduce((a, b) => a + b, 0);
          for (let turn = 0; turn < bound; turn++) {
            // The flood: every turn brings more urgent items than can be served.
            scheduler.push(Priority.Critical, 'c');
            scheduler.push(Priority.High, 'h');
            scheduler.push(Priority.Normal, 'n');
            if (scheduler.next() === 'low') return true;
          }
          return false;
        },
      ),
      { numRuns: 300 },
    );
  });

  test('property: every item pushed comes out once, in order within its priority', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ push: fc.boolean(), priority: fc.constantFrom(...ALL) }), {
          maxLength: 400,
        }),
        (operations) => {
          const scheduler = new WeightedScheduler<{ priority: number; seq: number }>(1000);
          const lastSeq = [-1, -1, -1, -1];
          let pushed = 0;
          let taken = 0;
          const check = (item: { priority: number; seq: number } | undefined) => {
            if (item === undefined) return;
            taken++;
            assert.ok(item.seq > lastSeq[item.priority]!, 'FIFO within a priority');
            lastSeq[item.priority] = item.seq;
          };
          for (const operation of operations) {
            if (operation.push) {
              scheduler.push(operation.priority, { priority: operation.priority, seq: pushed++ });
            } else {
              check(scheduler.next());
            }
            assert.equal(scheduler.size, pushed - taken);
          }
          while (scheduler.size > 0) check(scheduler.next());
          assert.equal(taken, pushed);
          assert.equal(scheduler.next(), undefined);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('pushFront puts an item back at the head of its priority', () => {
    const scheduler = new WeightedScheduler<string>(10);
    scheduler.push(Priority.Low, 'a');
    scheduler.push(Priority.Low, 'b');
    const first = scheduler.next()!;
    scheduler.pushFront(Priority.Low, first);
    assert.deepEqual([scheduler.next(), scheduler.next(), scheduler.next()], ['a', 'b', undefined]);
    scheduler.pushFront(Priority.High, 'h');
    assert.equal(scheduler.next(), 'h');
  });

  test('bounded: one item past itemsMax is refused; remove() frees room', () => {
    const scheduler = new WeightedScheduler<number>(3);
    scheduler.push(Priority.Low, 1);
    scheduler.push(Priority.Low, 2);
    scheduler.push(Priority.High, 3);
    assert.throws(() => scheduler.push(Priority.Critical, 4), /invariant violated/);
    assert.equal(
      scheduler.remove((item) => item === 2),
      1,
    );
    scheduler.push(Priority.Critical, 4);
    assert.deepEqual([scheduler.next(), scheduler.next(), scheduler.next()], [4, 3, 1]);
  });
});

describe('priority names and wire codes', () => {
  test('names parse in any case; anything else is RDB_USAGE', () => {
    assert.equal(parsePriority('critical'), Priority.Critical);
    assert.equal(parsePriority('HIGH'), Priority.High);
    assert.equal(parsePriority('normal'), Priority.Normal);
    assert.equal(parsePriority('low'), Priority.Low);
    assert.throws(
      () => parsePriority('urgent'),
      (error) => isRdbnetError(error, ErrorCode.Usage),
    );
  });

  test('absent (0) on the wire is normal; every priority survives the round trip', () => {
    assert.equal(priorityFromWire(undefined), Priority.Normal);
    assert.equal(priorityFromWire(0), Priority.Normal);
    assert.equal(priorityFromWire(99), Priority.Normal);
    for (const priority of ALL) assert.equal(priorityFromWire(priorityToWire(priority)), priority);
  });
});
