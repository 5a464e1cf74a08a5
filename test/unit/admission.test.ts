/**
 * The pure pieces behind the pre-authentication limits and the connection log: the table of
 * unauthenticated connections (who makes room for a newcomer), source keys, and LogLimiter.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LogLimiter } from '../../src/core/runtime/log-limiter.ts';
import { sourceKey, UnauthenticatedTable } from '../../src/core/transport/admission.ts';

describe('UnauthenticatedTable', () => {
  test('a source at its cap makes room with its own oldest connection', () => {
    const table = new UnauthenticatedTable<string>({ totalMax: 10, perSourceMax: 3 });
    assert.equal(table.admit('a1', 'A', 1), undefined);
    assert.equal(table.admit('a2', 'A', 2), undefined);
    assert.equal(table.admit('b1', 'B', 3), undefined);
    assert.equal(table.admit('a3', 'A', 4), undefined);
    assert.equal(table.admit('a4', 'A', 5), 'a1');
    assert.equal(table.admit('a5', 'A', 6), 'a2');
    assert.equal(table.countFrom('A'), 3);
    assert.equal(table.countFrom('B'), 1);
    assert.equal(table.has('a1'), false);
    assert.equal(table.size, 4);
  });

  test('a full table makes room with its oldest connection, whatever its source', () => {
    const table = new UnauthenticatedTable<string>({ totalMax: 5, perSourceMax: 5 });
    table.admit('a1', 'A', 1);
    table.admit('b1', 'B', 2);
    table.admit('b2', 'B', 3);
    table.admit('b3', 'B', 4);
    table.admit('c1', 'C', 5);
    // A holds the fewest, but a1 is the oldest.
    assert.equal(table.admit('d1', 'D', 6), 'a1');
    assert.equal(table.admit('b4', 'B', 7), 'b1');
    assert.equal(table.admit('e1', 'E', 8), 'b2');
    assert.equal(table.size, 5);
    assert.equal(table.countFrom('A'), 0);
    assert.deepEqual(table.admittedBy(100), ['b3', 'c1', 'd1', 'b4', 'e1']);
  });

  test('the per-source cap applies first: the own source makes room, even in a full table', () => {
    const table = new UnauthenticatedTable<string>({ totalMax: 4, perSourceMax: 2 });
    table.admit('a1', 'A', 1);
    table.admit('b1', 'B', 2);
    table.admit('b2', 'B', 3);
    table.admit('c1', 'C', 4);
    assert.equal(table.admit('b3', 'B', 5), 'b1');
    assert.equal(table.countFrom('A'), 1);
  });

  test('a newcomer always gets in, even from the source that fills the table', () => {
    const table = new UnauthenticatedTable<number>({ totalMax: 4, perSourceMax: 4 });
    for (let i = 0; i < 4; i++) assert.equal(table.admit(i, 'S', i), undefined);
    for (let i = 4; i < 100; i++) {
      assert.equal(table.admit(i, 'S', i), i - 4);
      assert.equal(table.has(i), true);
      assert.equal(table.size, 4);
    }
  });

  test('removed connections free their slot; absent ones are ignored', () => {
    const table = new UnauthenticatedTable<string>({ totalMax: 2, perSourceMax: 2 });
    table.admit('a1', 'A', 1);
    table.admit('a2', 'A', 2);
    table.remove('a1');
    table.remove('a1');
    table.remove('never');
    assert.equal(table.admit('a3', 'A', 3), undefined);
    assert.equal(table.countFrom('A'), 2);
    table.remove('a2');
    table.remove('a3');
    assert.equal(table.size, 0);
    assert.equal(table.countFrom('A'), 0);
  });

  test('admittedBy lists connections up to a time, oldest first, and leaves them in', () => {
    const table = new UnauthenticatedTable<string>({ totalMax: 10, perSourceMax: 10 });
    table.admit('x', 'A', 10);
    table.admit('y', 'B', 20);
    table.admit('z', 'A', 30);
    assert.deepEqual(table.admittedBy(5), []);
    assert.deepEqual(table.admittedBy(20), ['x', 'y']);
    assert.deepEqual(table.admittedBy(30), ['x', 'y', 'z']);
    assert.equal(table.size, 3);
  });

  test('limits are validated and a connection cannot be admitted twice', () => {
    assert.throws(() => new UnauthenticatedTable({ totalMax: 0, perSourceMax: 1 }), {
      code: 'RDB_CONFIG_INVALID',
      field: 'totalMax',
    });
    assert.throws(() => new UnauthenticatedTable({ totalMax: 1, perSourceMax: 1.5 }), {
      code: 'RDB_CONFIG_INVALID',
      field: 'perSourceMax',
    });
    const table = new UnauthenticatedTable<string>({ totalMax: 2, perSourceMax: 2 });
    table.admit('a', 'A', 0);
    assert.throws(() => table.admit('a', 'A', 1), /admitted twice/);
  });
});

describe('sourceKey', () => {
  test('IPv4, IPv4-mapped IPv6 and IPv6 /64 prefixes', () => {
    assert.equal(sourceKey('127.0.0.2'), '127.0.0.2');
    assert.equal(sourceKey('::ffff:127.0.0.2'), '127.0.0.2');
    assert.equal(sourceKey('::FFFF:127.1.2.3'), '127.1.2.3');
    assert.equal(sourceKey('::1'), '0:0:0:0::/64');
    assert.equal(sourceKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8:1:2::7'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:0DB8:0001:0002:ffff::1'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('fe80::1%lo'), 'fe80:0:0:0::/64');
    assert.equal(sourceKey('2001:db8::'), '2001:db8:0:0::/64');
    assert.equal(sourceKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
  });

  test('one host picking a fresh address in its /64 per connection is one source', () => {
    const keys = new Set<string>();
    for (let i = 1; i < 50; i++) keys.add(sourceKey(`2001:db8:aa:bb::${i.toString(16)}`));
    assert.deepEqual([...keys], ['2001:db8:aa:bb::/64']);
  });

  test('no address is one unknown source', () => {
    assert.equal(sourceKey(undefined), '?');
    assert.equal(sourceKey(''), '?');
  });
});

describe('LogLimiter', () => {
  function limiter(burst: number) {
    let nowMs = 0;
    const log = new LogLimiter({
      intervalMs: 1000,
      burst,
      clock: { nowMs: () => nowMs, wallMs: () => nowMs },
    });
    return {
      log,
      advance(ms: number) {
        nowMs += ms;
      },
    };
  }

  test('the first burst of a window is logged, the rest counted by kind', () => {
    const { log } = limiter(3);
    const admitted = ['a', 'a', 'b', 'a', 'b', 'b', 'c'].map((kind) => log.admit(kind));
    assert.deepEqual(admitted, [true, true, true, false, false, false, false]);
    assert.deepEqual(log.takeSummary(), { suppressed: { a: 1, b: 2, c: 1 }, total: 4 });
    assert.equal(log.takeSummary(), null);
  });

  test('a new window logs a new burst; the summary keeps counting across windows', () => {
    const { log, advance } = limiter(1);
    assert.equal(log.admit('x'), true);
    assert.equal(log.admit('x'), false);
    advance(999);
    assert.equal(log.admit('x'), false);
    advance(1);
    assert.equal(log.admit('x'), true);
    assert.equal(log.admit('x'), false);
    assert.deepEqual(log.takeSummary(), { suppressed: { x: 3 }, total: 3 });
  });

  test('a burst of 0 logs nothing in full; bad options are refused', () => {
    const { log } = limiter(0);
    assert.equal(log.admit('x'), false);
    assert.deepEqual(log.takeSummary(), { suppressed: { x: 1 }, total: 1 });
    const clock = { nowMs: () => 0, wallMs: () => 0 };
    // Set by code, never configured: a bad value is a bug, an assertion.
    assert.throws(() => new LogLimiter({ intervalMs: 0, burst: 1, clock }), /^Error: invariant/);
    assert.throws(() => new LogLimiter({ intervalMs: 10, burst: -1, clock }), /^Error: invariant/);
  });
});
