/**
 * The injected timers: the simulator's (EventQueue as a TimedClock) fire in virtual time, in
 * order, can be cleared, and replay exactly from a seed; the system's (systemClock) are
 * node's timers behind the same interface. Also the ids drawn from an injected Random.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Clock,
  type Random,
  randomUuid,
  seededRandom,
  setRepeating,
  sleep,
  systemClock,
  systemTimers,
  type TimerHandle,
  timersOf,
} from '../../src/core/runtime/index.ts';
import { EventQueue } from '../../src/core/sim/index.ts';

describe('simulated timers (EventQueue)', () => {
  test('fire in time order, ties in the order set, each at its own virtual time', () => {
    const queue = new EventQueue();
    const fired: string[] = [];
    const at = (name: string) => () => fired.push(`${name}@${queue.nowMs()}`);
    queue.setTimer(30, at('c'));
    queue.setTimer(10, at('a'));
    queue.setTimer(20, at('b1'));
    queue.setTimer(20, at('b2'));
    queue.setTimer(-5, at('now')); // a negative delay fires at once, like setTimeout's
    queue.setTimer(Number.NaN, at('nan'));
    queue.runFor(25);
    assert.deepEqual(fired, ['now@0', 'nan@0', 'a@10', 'b1@20', 'b2@20']);
    assert.equal(queue.nowMs(), 25);
    assert.equal(queue.size, 1);
    queue.runFor(100);
    assert.deepEqual(fired.at(-1), 'c@30');
    assert.equal(queue.nowMs(), 125);
    assert.equal(queue.wallMs() - queue.nowMs(), new EventQueue().wallMs());
  });

  test('a timer set by a timer counts from the time it was set', () => {
    const queue = new EventQueue();
    const fired: number[] = [];
    queue.setTimer(10, () => {
      fired.push(queue.nowMs());
      queue.setTimer(0, () => fired.push(queue.nowMs()));
      queue.setTimer(15, () => fired.push(queue.nowMs()));
    });
    queue.runFor(1000);
    assert.deepEqual(fired, [10, 10, 25]);
  });

  test('a cleared timer never fires; clearing a fired or cleared one changes nothing', () => {
    const queue = new EventQueue();
    const fired: string[] = [];
    const a = queue.setTimer(10, () => fired.push('a'));
    const b = queue.setTimer(20, () => fired.push('b'));
    let c: TimerHandle | undefined;
    // Cleared from inside another callback due at the same instant: still not run.
    queue.setTimer(30, () => {
      fired.push('clears c');
      if (c !== undefined) queue.clearTimer(c);
    });
    c = queue.setTimer(30, () => fired.push('c'));
    queue.clearTimer(b);
    assert.equal(queue.size, 3);
    queue.clearTimer(b);
    assert.equal(queue.size, 3, 'clearing twice is a no-op');
    queue.runFor(15);
    queue.clearTimer(a); // already fired
    assert.equal(queue.size, 2);
    queue.runFor(100);
    assert.deepEqual(fired, ['a', 'clears c']);
    assert.equal(queue.size, 0);
    assert.equal(queue.eventsRun, 2, 'cleared timers are not run events');
  });

  test('setRepeating runs every period until stopped, even when a run throws', () => {
    const queue = new EventQueue();
    const runs: number[] = [];
    const repeating = setRepeating(queue, 50, () => {
      runs.push(queue.nowMs());
      if (runs.length === 2) throw new Error('one bad run');
    });
    // The throw ends that runFor at the bad run's time (100), like an uncaught exception.
    assert.throws(() => queue.runFor(120), /one bad run/);
    assert.equal(queue.nowMs(), 100);
    queue.runFor(150);
    assert.deepEqual(runs, [50, 100, 150, 200, 250]);
    repeating.stop();
    repeating.stop();
    queue.runFor(500);
    assert.equal(runs.length, 5);
    assert.equal(queue.size, 0, 'stopping clears the armed timer');
  });

  test('sleep and promise chains run at the virtual time they were woken at (runUntilAsync)', async () => {
    const queue = new EventQueue();
    const trace: string[] = [];
    const worker = async (name: string, delays: number[]) => {
      for (const delay of delays) {
        await sleep(queue, delay);
        // Several awaits between wake-up and the next sleep, as real code has.
        await Promise.resolve();
        await null;
        trace.push(`${name}@${queue.nowMs()}`);
      }
    };
    const a = worker('a', [10, 10, 10]);
    const b = worker('b', [15, 15]);
    const stoppedEarly = await queue.runUntilAsync(1000, () => trace.length === 4);
    assert.equal(stoppedEarly, true);
    assert.equal(queue.nowMs(), 30, 'stops at the event after which the condition held');
    // Both due at 30: b's timer was set first (at 15, a's at 20), so b wakes first.
    assert.deepEqual(trace, ['a@10', 'b@15', 'a@20', 'b@30']);
    assert.equal(await queue.runForAsync(100), false);
    await Promise.all([a, b]);
    assert.deepEqual(trace, ['a@10', 'b@15', 'a@20', 'b@30', 'a@30']);
    assert.equal(queue.nowMs(), 130);
  });

  test('the same seed gives the same trace; another seed another one', () => {
    const run = (seed: number): string[] => {
      const queue = new EventQueue();
      const random = seededRandom(seed);
      const trace: string[] = [];
      const handles: TimerHandle[] = [];
      const spawn = (depth: number, name: string): void => {
        const handle = queue.setTimer(random.int(100), () => {
          trace.push(`${name}@${queue.nowMs()}`);
          if (depth < 4) {
            for (let i = 0; i < 3; i++) spawn(depth + 1, `${name}.${i}`);
          }
          // Clear a random armed timer now and then.
          if (handles.length > 0 && random.next() < 0.3) {
            queue.clearTimer(handles[random.int(handles.length)]!);
          }
        });
        handles.push(handle);
      };
      spawn(0, 'r');
      queue.runFor(10_000);
      return trace;
    };
    const first = run(42);
    assert.ok(first.length > 10, `a non-trivial trace (${first.length} timers fired)`);
    assert.deepEqual(run(42), first);
    assert.notDeepEqual(run(43), first);
  });
});

describe('system timers', () => {
  test('systemClock fires, clears and unrefs node timers', async () => {
    const fired: string[] = [];
    await new Promise<void>((resolve) => {
      systemClock.setTimer(1, () => {
        fired.push('first');
        resolve();
      });
    });
    const cleared = systemClock.setTimer(5, () => fired.push('cleared'));
    systemClock.clearTimer(cleared);
    const unrefd = systemClock.setTimer(1, () => fired.push('unref'), { unref: true });
    assert.equal((unrefd as unknown as NodeJS.Timeout).hasRef(), false);
    await sleep(systemClock, 50);
    assert.deepEqual(fired, ['first', 'unref']);
    const repeating = setRepeating(systemTimers, 1, () => fired.push('tick'));
    await sleep(systemTimers, 50);
    repeating.stop();
    const ticks = fired.filter((name) => name === 'tick').length;
    assert.ok(ticks >= 1, 'the repeating timer ran');
    await sleep(systemTimers, 30);
    assert.equal(fired.filter((name) => name === 'tick').length, ticks, 'and stopped');
  });

  test('timersOf: a clock with timers supplies its own, a read-only clock the system ones', () => {
    const queue = new EventQueue();
    assert.equal(timersOf(queue), queue);
    assert.equal(timersOf(systemClock), systemClock);
    const readOnly: Clock = { nowMs: () => 0, wallMs: () => 0 };
    assert.equal(timersOf(readOnly), systemTimers);
  });
});

describe('ids from the injected Random', () => {
  const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  test('randomUuid is a version-4 UUID, the same for the same seed', () => {
    const ids = (random: Random) => Array.from({ length: 200 }, () => randomUuid(random));
    const first = ids(seededRandom(7));
    for (const id of first) assert.match(id, UUID_V4);
    assert.equal(new Set(first).size, first.length, 'no repeats');
    assert.deepEqual(ids(seededRandom(7)), first);
    assert.notEqual(ids(seededRandom(8))[0], first[0]);
  });

  test('every byte value occurs (the random part is not biased to a range)', () => {
    const random = seededRandom(1);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const hex = randomUuid(random).replaceAll('-', '');
      for (let j = 0; j < hex.length; j += 2) seen.add(hex.slice(j, j + 2));
    }
    assert.equal(seen.size, 256);
  });
});
