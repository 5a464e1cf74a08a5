/**
 * The balancer's strategies, unit and property tests: every answer is a member, N distinct in
 * preference order, hashing strategies agree whatever order the set came in, removal moves
 * only what it must, weights are honoured, bounded-load stays under c, ejected endpoints are
 * never chosen, least-connections and p2c follow load, p2c-ewma follows latency and errors.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  Balancer,
  buildMaglevTable,
  buildRing,
  type Endpoint,
  KEY_STRATEGIES,
  parseEndpointSpec,
  ringIndex,
  STRATEGIES,
  type StrategyName,
  validateEndpoints,
} from '../../src/core/lb/index.ts';
import { SimdRendezvous, simdAvailable } from '../../src/core/lb/rendezvous-simd.ts';
import { type Clock, seededRandom } from '../../src/core/runtime/index.ts';

/** Rendezvous's score, written out again: the SIMD module must compute exactly this. */
function score(key: number, seed: number): number {
  let h = Math.imul(key ^ seed, 0x9e3779b1);
  h ^= h >>> 15;
  return Math.imul(h, 0x85ebca6b);
}

function nodes(count: number, weight = 1): Endpoint[] {
  return Array.from({ length: count }, (_, i) => ({ id: `n${i + 1}`, weight }));
}

function balancer(strategy: StrategyName, endpoints: Endpoint[], seed = 1, clock?: Clock) {
  return new Balancer({
    strategy,
    endpoints,
    random: seededRandom(seed),
    ...(clock === undefined ? {} : { clock }),
  });
}

function manualClock(start = 0): Clock & { advance(ms: number): void } {
  let now = start;
  return { nowMs: () => now, wallMs: () => now, advance: (ms) => (now += ms) };
}

/** Keys per node over `keys` keys, by first pick. */
function counts(b: Balancer, keys: number, hold = false): Map<string, number> {
  const out = new Map<string, number>();
  for (let k = 0; k < keys; k++) {
    const id = b.pick(`key-${k}`)!;
    out.set(id, (out.get(id) ?? 0) + 1);
    if (hold) b.start(id);
  }
  return out;
}

const HASHING = [...KEY_STRATEGIES];
const endpointSets = fc
  .uniqueArray(fc.stringMatching(/^[a-z0-9.:-]{1,12}$/), { minLength: 1, maxLength: 24 })
  .map((ids) => ids.map((id) => ({ id, weight: 1 })));

describe('lb: every strategy', () => {
  test('property: a pick is a member; pickN gives N distinct members, the first being the pick', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...STRATEGIES),
        endpointSets,
        fc.string({ maxLength: 16 }),
        fc.integer({ min: 1, max: 24 }),
        (strategy, endpoints, key, wanted) => {
          const count = Math.min(wanted, endpoints.length);
          const ids = new Set(endpoints.map((e) => e.id));
          const picked = balancer(strategy, endpoints).pick(key);
          assert.ok(picked !== null && ids.has(picked));
          const many = balancer(strategy, endpoints).pickN(count, key);
          assert.equal(many.length, count);
          assert.equal(new Set(many).size, count);
          for (const id of many) assert.ok(ids.has(id));
          // A fresh balancer's pickN starts with what a fresh balancer's pick gives.
          assert.equal(many[0], picked);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('pickN refuses a count above the endpoints or below 1 (RDB_USAGE)', () => {
    for (const strategy of STRATEGIES) {
      const b = balancer(strategy, nodes(3));
      for (const count of [0, 4, 1.5]) {
        assert.throws(
          () => b.pickN(count, 'k'),
          (error) => isRdbnetError(error, ErrorCode.Usage),
        );
      }
    }
  });

  test('ejected endpoints are never picked; with every one ejected the answer is null', () => {
    for (const strategy of STRATEGIES) {
      const b = balancer(strategy, nodes(10));
      b.eject('n3');
      b.eject('n7');
      for (let k = 0; k < 2000; k++) {
        const id = b.pick(`key-${k}`);
        assert.ok(id !== 'n3' && id !== 'n7', `${strategy} picked ejected ${id}`);
        const two = b.pickN(8, `key-${k}`);
        assert.ok(!two.includes('n3') && !two.includes('n7'), strategy);
        assert.equal(two.length, 8, strategy);
      }
      for (const { id } of nodes(10)) b.eject(id);
      assert.equal(b.pick('k'), null, strategy);
      assert.deepEqual(b.pickN(3, 'k'), [], strategy);
      b.restore('n5');
      assert.equal(b.pick('k'), 'n5', strategy);
    }
  });
});

describe('lb: endpoint lists', () => {
  test('a=3 parses to a weight; bad weights, empty lists and duplicates are RDB_USAGE', () => {
    assert.deepEqual(parseEndpointSpec('a'), { id: 'a', weight: 1 });
    assert.deepEqual(parseEndpointSpec('b=3'), { id: 'b', weight: 3 });
    assert.deepEqual(parseEndpointSpec('127.0.0.1:7000=0.5'), {
      id: '127.0.0.1:7000',
      weight: 0.5,
    });
    for (const bad of ['a=0', 'a=-1', 'a=x', 'a=', 'a=Infinity', 'a=1e9']) {
      assert.throws(
        () => parseEndpointSpec(bad),
        (error) => isRdbnetError(error, ErrorCode.Usage) && /weight/.test(error.message),
        bad,
      );
    }
    assert.throws(
      () => validateEndpoints([]),
      (error) => isRdbnetError(error, ErrorCode.Usage) && /empty/.test(error.message),
    );
    assert.throws(
      () =>
        validateEndpoints([
          { id: 'a', weight: 1 },
          { id: 'a', weight: 2 },
        ]),
      (error) => isRdbnetError(error, ErrorCode.Usage) && /twice/.test(error.message),
    );
    assert.throws(
      () => validateEndpoints([{ id: 'a b', weight: 1 }]),
      (error) => isRdbnetError(error, ErrorCode.Usage),
    );
    assert.deepEqual(
      validateEndpoints([
        { id: 'c', weight: 1 },
        { id: 'a', weight: 1 },
        { id: 'b', weight: 1 },
      ]).map((e) => e.id),
      ['a', 'b', 'c'],
    );
  });
});

describe('lb: hashing strategies', () => {
  test('property: the same key and the same set give the same nodes, whatever the order', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...HASHING),
        endpointSets.chain((set) =>
          fc.tuple(fc.constant(set), fc.shuffledSubarray(set, { minLength: set.length })),
        ),
        fc.array(fc.string({ maxLength: 20 }), { minLength: 1, maxLength: 20 }),
        (strategy, [set, shuffled], keys) => {
          const a = balancer(strategy, set, 1);
          const b = balancer(strategy, shuffled, 99);
          const count = Math.min(3, set.length);
          for (const key of keys) assert.deepEqual(a.pickN(count, key), b.pickN(count, key));
        },
      ),
      { numRuns: 200 },
    );
  });

  test('property: removing a node moves only its keys (ring, rendezvous) or ≤ 1% more (maglev)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('ring', 'rendezvous', 'maglev'),
        fc.integer({ min: 2, max: 40 }),
        fc.nat(),
        (strategy, size, which) => {
          const set = nodes(size);
          const gone = set[which % size]!.id;
          const before = balancer(strategy, set);
          const after = balancer(
            strategy,
            set.filter((e) => e.id !== gone),
          );
          const keys = 3000;
          let extra = 0;
          for (let k = 0; k < keys; k++) {
            const was = before.pick(`key-${k}`)!;
            const now = after.pick(`key-${k}`)!;
            assert.notEqual(now, gone);
            if (was !== gone && was !== now) extra++;
          }
          if (strategy === 'maglev') assert.ok(extra / keys <= 0.01, `${extra} extra moves`);
          else assert.equal(extra, 0);
        },
      ),
      { numRuns: 40 },
    );
  });

  test('property: the ring lookup finds the first point at or after the hash, going round', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 1, max: 200 }),
        fc.array(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { minLength: 1, maxLength: 50 }),
        (size, vnodes, hashes) => {
          const ids = nodes(size)
            .map((e) => e.id)
            .sort();
          const ring = buildRing(ids, new Float64Array(size).fill(1), vnodes, 1 << 20);
          const unsigned = Array.from(ring.points, (p) => (p ^ 0x80000000) >>> 0);
          for (let i = 1; i < unsigned.length; i++) assert.ok(unsigned[i - 1]! <= unsigned[i]!);
          for (const hash of [...hashes, 0, 2 ** 32 - 1, unsigned[0]!, unsigned.at(-1)!]) {
            const first = unsigned.findIndex((p) => p >= hash);
            assert.equal(ringIndex(ring, hash), first === -1 ? 0 : first, `hash ${hash}`);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('maglev: the table gives every node ⌊M/N⌋ or ⌈M/N⌉ slots; keys max/mean ≤ 1.05 at N = 100', () => {
    const ids = nodes(100)
      .map((e) => e.id)
      .sort();
    const table = buildMaglevTable(ids, new Float64Array(100).fill(1), 65_537);
    const slots = new Int32Array(100);
    for (const owner of table) slots[owner]!++;
    assert.ok(Math.min(...slots) >= Math.floor(65_537 / 100));
    assert.ok(Math.max(...slots) <= Math.ceil(65_537 / 100));
    const per = counts(balancer('maglev', nodes(100)), 500_000);
    const max = Math.max(...per.values());
    assert.ok(max / 5000 <= 1.05, `max/mean ${max / 5000}`);
  });

  test('maglev: removing one of 100 moves at most 1/N + 0.5 points of the 65,537 slots, whichever one leaves', () => {
    // The goal, measured on the table itself (every key of a slot moves with it). The
    // paper's fill by turns moves about 1.56 % here; the fill by position about 1.3 %.
    const ids = nodes(100)
      .map((e) => e.id)
      .sort();
    const ones = (n: number) => new Float64Array(n).fill(1);
    const before = buildMaglevTable(ids, ones(100), 65_537);
    const moved: number[] = [];
    for (const gone of ['n1', 'n37', 'n50', 'n77', 'n100']) {
      const rest = ids.filter((id) => id !== gone);
      const after = buildMaglevTable(rest, ones(99), 65_537);
      let changed = 0;
      for (let slot = 0; slot < 65_537; slot++) {
        if (ids[before[slot]!] !== rest[after[slot]!]) changed++;
      }
      moved.push(changed / 65_537);
    }
    for (const share of moved) assert.ok(share <= 0.01 + 0.005, `moved ${moved.join(', ')}`);
  });

  test('maglev: every endpoint owns its weighted share of the table, floor or ceiling', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 40 }),
        fc.constantFrom(251, 1009, 65_537),
        (weights, size) => {
          const ids = weights.map((_, i) => `e${String(i).padStart(3, '0')}`);
          const table = buildMaglevTable(ids, Float64Array.from(weights), size);
          const owned = new Int32Array(ids.length);
          for (const owner of table) {
            assert.ok(owner >= 0 && owner < ids.length);
            owned[owner]!++;
          }
          const total = weights.reduce((a, b) => a + b, 0);
          for (const [i, weight] of weights.entries()) {
            const exact = (size * weight) / total;
            assert.ok(owned[i]! >= Math.floor(exact) && owned[i]! <= Math.ceil(exact), `${i}`);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  test('property: rendezvous in WebAssembly SIMD picks what the scalar loop picks', () => {
    assert.ok(simdAvailable(), 'Node 24 has WebAssembly SIMD');
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.string({ maxLength: 12 }), { minLength: 50, maxLength: 50 }),
        (size, keys) => {
          const b = balancer('rendezvous', nodes(size));
          // pick() takes the SIMD path (nothing ejected); pickN() scores through the scalar
          // loop that skips blocked endpoints, with none blocked.
          for (const key of keys) assert.equal(b.pick(key), b.pickN(1, key)[0]);
        },
      ),
      { numRuns: 100 },
    );
    // Equal seeds tie: the lowest index wins in both, also across lanes and padding.
    const seeds = Int32Array.from([7, 3, 7, 7, 3, 7]);
    const tied = new SimdRendezvous(seeds);
    for (let key = -50; key < 50; key++) {
      const scalar = [...seeds].reduce(
        (best, seed, i) => (score(key, seed) > score(key, seeds[best]!) ? i : best),
        0,
      );
      assert.equal(tied.argmax(key), scalar);
    }
  });

  test('property: rendezvous with equal weights shares keys evenly, and a change moves only what it must', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 30 }), fc.nat(), (size, which) => {
        const set = nodes(size);
        const keys = 20_000;
        const mean = keys / size;
        // Six standard deviations of the binomial: fails only on a real bias.
        const slack = 6 * Math.sqrt(mean * (1 - 1 / size));
        const b = balancer('rendezvous', set);
        const per = counts(b, keys);
        assert.equal(per.size, size);
        for (const [id, held] of per) {
          assert.ok(Math.abs(held - mean) <= slack, `${id} holds ${held}, mean ${mean}`);
        }
        // A newcomer takes keys from everyone and moves nothing else.
        const grown = balancer('rendezvous', [...set, { id: 'new', weight: 1 }]);
        // A leaver's keys go to the others about evenly, and nothing else moves.
        const gone = set[which % size]!.id;
        const shrunk = balancer(
          'rendezvous',
          set.filter((e) => e.id !== gone),
        );
        const inherited = new Map<string, number>();
        let orphans = 0;
        for (let k = 0; k < keys; k++) {
          const was = b.pick(`key-${k}`)!;
          const withNew = grown.pick(`key-${k}`)!;
          assert.ok(withNew === was || withNew === 'new', `key-${k}: ${was} → ${withNew}`);
          const without = shrunk.pick(`key-${k}`)!;
          if (was !== gone) {
            assert.equal(without, was);
            continue;
          }
          orphans++;
          inherited.set(without, (inherited.get(without) ?? 0) + 1);
        }
        if (size > 2) {
          const share = orphans / (size - 1);
          const spread = 6 * Math.sqrt(share) + 2;
          for (const [id, got] of inherited) {
            assert.ok(Math.abs(got - share) <= spread, `${id} inherited ${got} of ${orphans}`);
          }
        }
      }),
      { numRuns: 25 },
    );
  });

  test('maglev refuses a table no larger than the endpoints', () => {
    assert.throws(
      () =>
        new Balancer({ strategy: 'maglev', endpoints: nodes(5), config: { maglevTableSize: 5 } }),
      (error) => isRdbnetError(error, ErrorCode.Usage),
    );
    assert.throws(
      () =>
        new Balancer({
          strategy: 'maglev',
          endpoints: nodes(5),
          config: { maglevTableSize: 65_536 },
        }),
      (error) => isRdbnetError(error, ErrorCode.ConfigInvalid) && /prime/.test(error.message),
    );
  });

  test('weights: ring, maglev and rendezvous give a=3 about three times b and c', () => {
    const set = [
      { id: 'a', weight: 3 },
      { id: 'b', weight: 1 },
      { id: 'c', weight: 1 },
    ];
    for (const strategy of ['ring', 'maglev', 'rendezvous', 'bounded-load'] as const) {
      const per = counts(balancer(strategy, set), 100_000);
      const share = per.get('a')! / 100_000;
      assert.ok(Math.abs(share - 0.6) < 0.04, `${strategy}: a has ${share}`);
    }
  });

  test('property: bounded-load never gives a node more than ceil(c × keys × its share)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 1, max: 3000 }),
        fc.double({ min: 1, max: 2, noNaN: true }),
        (size, keys, c) => {
          const b = new Balancer({
            strategy: 'bounded-load',
            endpoints: nodes(size),
            config: { boundedLoadFactor: c },
          });
          const per = counts(b, keys, true);
          const cap = Math.ceil((c * keys) / size);
          for (const [id, held] of per) assert.ok(held <= cap, `${id} holds ${held} > ${cap}`);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('bounded-load: max/mean ≤ 1.25 at N = 100 with 200,000 held keys; without load it answers like the ring', () => {
    const per = counts(balancer('bounded-load', nodes(100)), 200_000, true);
    assert.ok(Math.max(...per.values()) / 2000 <= 1.25);
    const ring = balancer('ring', nodes(100));
    const bounded = balancer('bounded-load', nodes(100));
    for (let k = 0; k < 1000; k++) assert.equal(bounded.pick(`key-${k}`), ring.pick(`key-${k}`));
  });

  test('ejection keeps every other key on its node (maglev, ring, rendezvous)', () => {
    for (const strategy of ['maglev', 'ring', 'rendezvous'] as const) {
      const b = balancer(strategy, nodes(20));
      const before = Array.from({ length: 5000 }, (_, k) => b.pick(`key-${k}`)!);
      b.eject('n4');
      for (let k = 0; k < 5000; k++) {
        if (before[k] !== 'n4') assert.equal(b.pick(`key-${k}`), before[k], strategy);
      }
    }
  });
});

describe('lb: the other strategies', () => {
  test('round-robin takes each in turn, in id order', () => {
    const b = balancer('round-robin', [
      { id: 'c', weight: 5 },
      { id: 'a', weight: 1 },
      { id: 'b', weight: 1 },
    ]);
    assert.deepEqual(
      Array.from({ length: 6 }, () => b.pick()),
      ['a', 'b', 'c', 'a', 'b', 'c'],
    );
  });

  test('smooth weighted round robin: a=5,b=1,c=1 gives a a b a c a a, and exact shares per cycle', () => {
    const b = balancer('weighted-round-robin', [
      { id: 'a', weight: 5 },
      { id: 'b', weight: 1 },
      { id: 'c', weight: 1 },
    ]);
    assert.deepEqual(
      Array.from({ length: 7 }, () => b.pick()),
      ['a', 'a', 'b', 'a', 'c', 'a', 'a'],
    );
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        (weights, fractional) => {
          // fractional: weights / 2 take the O(N) path instead of the precomputed schedule.
          const set = weights.map((w, i) => ({
            id: `n${i}`,
            weight: fractional ? w / 2 + 0.25 : w,
          }));
          const cycle = set.reduce(
            (sum, e) => sum + (fractional ? (e.weight - 0.25) * 2 : e.weight),
            0,
          );
          const b = balancer('weighted-round-robin', set);
          const seen = new Map<string, number>();
          for (let i = 0; i < cycle * 4; i++) {
            const id = b.pick()!;
            seen.set(id, (seen.get(id) ?? 0) + 1);
          }
          for (const e of set) {
            const expected = (4 * cycle * e.weight) / set.reduce((s, x) => s + x.weight, 0);
            assert.ok(Math.abs((seen.get(e.id) ?? 0) - expected) <= 1.5, `${e.id}`);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  test('random: uniform, and weighted in proportion', () => {
    const uniform = counts(balancer('random', nodes(4)), 40_000);
    for (const n of uniform.values()) assert.ok(Math.abs(n - 10_000) < 600, `${n}`);
    const weighted = counts(
      balancer('random', [
        { id: 'a', weight: 3 },
        { id: 'b', weight: 1 },
      ]),
      40_000,
    );
    assert.ok(Math.abs(weighted.get('a')! / 40_000 - 0.75) < 0.02);
  });

  test('property: least-connections always picks an endpoint with the fewest in flight', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.boolean(),
        fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 200 }),
        (size, weighted, ops) => {
          const set = nodes(size).map((e, i) => ({ ...e, weight: weighted ? 1 + (i % 3) : 1 }));
          const b = balancer('least-connections', set);
          const inflight = new Map(set.map((e) => [e.id, 0]));
          for (const [startOne, n] of ops) {
            if (startOne) {
              const id = b.pick()!;
              const best = Math.min(...set.map((e) => (inflight.get(e.id)! + 1) / e.weight));
              const weight = set.find((e) => e.id === id)!.weight;
              assert.ok(Math.abs((inflight.get(id)! + 1) / weight - best) < 1e-9);
              b.start(id);
              inflight.set(id, inflight.get(id)! + 1);
            } else {
              const busy = [...inflight].filter(([, v]) => v > 0);
              if (busy.length === 0) continue;
              const [id] = busy[n % busy.length]!;
              b.finish(id, { ok: true, latencyMs: 1 });
              inflight.set(id, inflight.get(id)! - 1);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('p2c: a node with many requests in flight loses every draw', () => {
    const b = balancer('p2c', nodes(4));
    for (let i = 0; i < 50; i++) b.start('n2');
    let picked = 0;
    for (let i = 0; i < 4000; i++) if (b.pick() === 'n2') picked++;
    assert.equal(picked, 0);
  });

  test('p2c-ewma: sends little to a slow node, avoids one that fails fast, and one reporting 95% CPU', () => {
    const clock = manualClock();
    const b = balancer('p2c-ewma', nodes(5), 7, clock);
    const share = (target: string, outcome: (id: string) => { ok: boolean; latencyMs: number }) => {
      let hits = 0;
      for (let i = 0; i < 5000; i++) {
        clock.advance(1);
        const id = b.pick()!;
        if (id === target) hits++;
        b.start(id);
        b.finish(id, outcome(id));
      }
      return hits / 5000;
    };
    const slow = share('n1', (id) => ({ ok: true, latencyMs: id === 'n1' ? 100 : 10 }));
    assert.ok(slow < 0.05, `slow node got ${slow}`);
    const failing = share('n2', (id) => ({ ok: id !== 'n2', latencyMs: id === 'n2' ? 1 : 10 }));
    assert.ok(failing < 0.05, `fast-failing node got ${failing}`);
    b.reportUtilization('n3', 0.95);
    const loaded = share('n3', () => ({ ok: true, latencyMs: 10 }));
    assert.ok(loaded < 0.05, `loaded node got ${loaded}`);
    const stats = b.stats().find((s) => s.id === 'n1')!;
    assert.ok(stats.latencyEwmaMs > 10, JSON.stringify(stats));
  });

  test('p2c-ewma: a node slow long ago is tried again as its latency decays', () => {
    const clock = manualClock();
    const b = balancer('p2c-ewma', nodes(2), 3, clock);
    b.start('n1');
    b.finish('n1', { ok: true, latencyMs: 1000 });
    b.start('n2');
    b.finish('n2', { ok: true, latencyMs: 10 });
    assert.equal(b.pick(), 'n2');
    clock.advance(60_000); // six decay times: 1000 ms decays to about 2.5 ms, 10 ms to 0.02 ms
    b.start('n2');
    b.finish('n2', { ok: true, latencyMs: 10 });
    assert.equal(b.pick(), 'n1');
  });
});
