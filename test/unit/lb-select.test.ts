/**
 * `lb select` over gossip members and `lb simulate`, in-process: which members are
 * candidates, that hashing ignores each node's own health scores (so every member agrees),
 * the errors (no candidates, count, key), and the simulation's determinism and validation.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  type MemberCandidate,
  parseRemoval,
  parseSlow,
  selectFromMembers,
  simulate,
} from '../../src/core/lb/index.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';

function member(
  id: string,
  state = 'alive',
  score = 1,
  rttMs: number | null = 0.2,
): MemberCandidate {
  return { id, address: `127.0.0.1:${7000 + Number(id.slice(1))}`, state, score, rttMs };
}

describe('lb select over gossip members', () => {
  test('dead, left and suspect members are never candidates, and are listed as excluded', () => {
    const members = [
      member('n1'),
      member('n2', 'dead', 0),
      member('n3', 'suspect', 0.4),
      member('n4', 'left', 0),
      member('n5'),
    ];
    for (let k = 0; k < 200; k++) {
      const result = selectFromMembers(members, { strategy: 'maglev', key: `user:${k}`, count: 2 });
      assert.deepEqual([...result.nodes].sort(), ['n1', 'n5']);
      assert.equal(result.candidates, 2);
    }
    const result = selectFromMembers(members, { strategy: 'maglev', key: 'user:42', count: 1 });
    assert.deepEqual(result.excluded, [
      { id: 'n2', reason: 'dead' },
      { id: 'n3', reason: 'suspect (draining)' },
      { id: 'n4', reason: 'left' },
    ]);
    assert.equal(result.addresses[0], `127.0.0.1:${7000 + Number(result.nodes[0]!.slice(1))}`);
  });

  test('property: hashing gives the same nodes whatever scores and RTTs each node measured', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('ring', 'maglev', 'rendezvous', 'bounded-load' as const),
        fc.array(
          fc.tuple(
            fc.double({ min: 0.01, max: 1, noNaN: true }),
            fc.double({ min: 0, max: 50, noNaN: true }),
          ),
          {
            minLength: 5,
            maxLength: 5,
          },
        ),
        fc.array(
          fc.tuple(
            fc.double({ min: 0.01, max: 1, noNaN: true }),
            fc.double({ min: 0, max: 50, noNaN: true }),
          ),
          {
            minLength: 5,
            maxLength: 5,
          },
        ),
        fc.string(),
        (strategy, viewA, viewB, key) => {
          const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
          const a = ids.map((id, i) => member(id, 'alive', viewA[i]![0], viewA[i]![1]));
          // Another node: its own measurements, and its members listed in another order.
          const b = ids.map((id, i) => member(id, 'alive', viewB[i]![0], viewB[i]![1])).reverse();
          const request = { strategy, key, count: 3 } as const;
          assert.deepEqual(
            selectFromMembers(a, request).nodes,
            selectFromMembers(b, request).nodes,
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  test('non-hashing strategies weigh members by score: a member of score 0 is left out', () => {
    const members = [
      member('n1', 'alive', 1),
      member('n2', 'alive', 0),
      member('n3', 'alive', 0.5),
    ];
    const seen = new Map<string, number>();
    const random = seededRandom(4);
    for (let i = 0; i < 6000; i++) {
      const [id] = selectFromMembers(members, {
        strategy: 'random',
        key: null,
        count: 1,
        random,
      }).nodes;
      seen.set(id!, (seen.get(id!) ?? 0) + 1);
    }
    assert.equal(seen.get('n2'), undefined);
    const share = seen.get('n1')! / 6000;
    assert.ok(Math.abs(share - 2 / 3) < 0.03, `${share}`);
  });

  test('errors: no alive member (RDB_LB_NO_CANDIDATES, naming why), count too high, no key', () => {
    assert.throws(
      () =>
        selectFromMembers([member('n1', 'dead'), member('n2', 'left')], {
          strategy: 'maglev',
          key: 'k',
          count: 1,
        }),
      (error) =>
        isRdbnetError(error, ErrorCode.LbNoCandidates) &&
        /no live member to choose from \(n1 dead, n2 left\)/.test(error.message),
    );
    assert.throws(
      () =>
        selectFromMembers([member('n1'), member('n2')], { strategy: 'maglev', key: 'k', count: 3 }),
      (error) =>
        isRdbnetError(error, ErrorCode.Usage) && /--count 3 is more than the 2/.test(error.message),
    );
    assert.throws(
      () => selectFromMembers([member('n1')], { strategy: 'rendezvous', key: null, count: 1 }),
      (error) => isRdbnetError(error, ErrorCode.Usage) && /give --key/.test(error.message),
    );
  });
});

describe('lb simulate', () => {
  const base = {
    strategy: 'maglev' as const,
    nodes: 20,
    keys: 20_000,
    remove: [],
    add: 0,
    slow: null,
    requests: 1,
    seed: 7,
  };

  test('deterministic: the same input gives the same figures; removal and addition are measured', () => {
    const change = {
      ...base,
      remove: ['n3'],
      add: 2,
      slow: { id: 'n1', factor: 10 },
      requests: 5000,
    };
    assert.deepEqual(simulate(change), simulate(change));
    const result = simulate(change);
    assert.deepEqual(result.removed, ['n3']);
    assert.deepEqual(result.added, ['n21', 'n22']);
    // max(1/20, 2/21)
    assert.equal(result.idealMovedFraction, Math.round((2 / 21) * 1e6) / 1e6);
    assert.ok(result.movedFraction! >= result.idealMovedFraction! * 0.9);
    assert.equal(result.after?.nodes, 21);
    assert.ok(result.slowShare !== null && result.latencyP99Ms !== null);
    const none = simulate(base);
    assert.equal(none.movedFraction, null);
    assert.equal(none.slowShare, null);
  });

  test('--remove takes a count (the last nodes) or ids; --slow ID=FACTOR; bad values are RDB_USAGE', () => {
    assert.deepEqual(parseRemoval('2', 10), ['n10', 'n9']);
    assert.deepEqual(parseRemoval('n3,n7', 10), ['n3', 'n7']);
    assert.deepEqual(parseSlow('n1=10'), { id: 'n1', factor: 10 });
    const usage = (error: unknown) => isRdbnetError(error, ErrorCode.Usage);
    assert.throws(() => parseRemoval('10', 10), usage);
    assert.throws(() => parseSlow('n1'), usage);
    assert.throws(() => simulate({ ...base, remove: ['n99'] }), usage);
    assert.throws(() => simulate({ ...base, remove: ['n1', 'n1'] }), usage);
    assert.throws(() => simulate({ ...base, slow: { id: 'n1', factor: 0 } }), usage);
    assert.throws(() => simulate({ ...base, keys: 0 }), usage);
  });
});
