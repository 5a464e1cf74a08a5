/**
 * SequentialIdMap against a plain Map: the same answers for every operation, including ids
 * that outlive a turn of the ring (kept in its spill map) and ids past 2^32.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { SequentialIdMap } from '../../src/core/transport/sequential-id-map.ts';

function sameContents(map: SequentialIdMap<string>, model: Map<number, string>, seed: number) {
  assert.equal(map.size, model.size, `seed ${seed}: size`);
  const entries = [...map.entries()].sort((a, b) => a[0] - b[0]);
  const expected = [...model.entries()].sort((a, b) => a[0] - b[0]);
  assert.deepEqual(entries, expected, `seed ${seed}: entries`);
  assert.deepEqual([...map.values()].sort(), [...model.values()].sort(), `seed ${seed}: values`);
}

describe('SequentialIdMap', () => {
  for (const { firstId, name } of [
    { firstId: 1, name: 'ids from 1' },
    { firstId: 2 ** 32 - 40, name: 'ids across 2^32' },
    { firstId: 2 ** 53 - 5000, name: 'ids up to 2^53' },
  ]) {
    test(`behaves as a Map under a random mix of requests, replies and timeouts (${name})`, () => {
      const seed = 0x1d5e_9000 + (firstId % 1000);
      const random = seededRandom(seed);
      const map = new SequentialIdMap<string>(16);
      const model = new Map<number, string>();
      let next = firstId;
      const live: number[] = [];
      for (let step = 0; step < 20_000; step++) {
        const roll = random.next();
        if (roll < 0.5 || live.length === 0) {
          const id = next++;
          map.set(id, `v${id}`);
          model.set(id, `v${id}`);
          live.push(id);
        } else if (roll < 0.9) {
          // Replies mostly arrive oldest first, sometimes out of order; some ids linger for
          // many turns of the 16-slot ring.
          const index = random.next() < 0.7 ? 0 : random.int(live.length);
          const id = live.splice(index, 1)[0]!;
          assert.equal(map.get(id), model.get(id), `seed ${seed}: get ${id}`);
          assert.equal(map.delete(id), model.delete(id), `seed ${seed}: delete ${id}`);
        } else if (roll < 0.95) {
          const id = firstId + random.int(next - firstId + 10);
          assert.equal(map.get(id), model.get(id), `seed ${seed}: get ${id}`);
          assert.equal(map.delete(id), model.delete(id), `seed ${seed}: delete ${id}`);
          const at = live.indexOf(id);
          if (at >= 0) live.splice(at, 1);
        } else {
          const id = live[random.int(live.length)]!;
          map.set(id, `again${id}`);
          model.set(id, `again${id}`);
        }
        assert.equal(map.size, model.size, `seed ${seed}: size at step ${step}`);
      }
      sameContents(map, model, seed);
      // A sweep deletes while it iterates, as Connection's deadline sweep does.
      for (const [id, value] of map) {
        if (value.endsWith('0') || value.endsWith('5')) {
          assert.ok(map.delete(id));
          model.delete(id);
        }
      }
      sameContents(map, model, seed);
      map.clear();
      model.clear();
      sameContents(map, model, seed);
      assert.equal(map.get(next - 1), undefined);
    });
  }

  test('an id whose slot is held by an older one still gets its own entry', () => {
    const map = new SequentialIdMap<string>(16);
    map.set(1, 'old');
    map.set(17, 'new'); // same slot as 1
    assert.equal(map.size, 2);
    assert.equal(map.get(1), 'old');
    assert.equal(map.get(17), 'new');
    assert.ok(map.delete(1));
    assert.equal(map.get(17), 'new');
    map.set(33, 'newer'); // the slot is free again
    assert.deepEqual(
      [...map.entries()].sort((a, b) => a[0] - b[0]),
      [
        [17, 'new'],
        [33, 'newer'],
      ],
    );
    assert.equal(map.delete(1), false);
  });
});
