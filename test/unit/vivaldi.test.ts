/**
 * Vivaldi coordinates on a synthetic network: nodes at random points of a plane (a 200 ms
 * wide continent) with access-link heights, RTT = distance + both heights, ±5% jitter. Each
 * round every node measures one random peer, as SWIM's probes do. The coordinates must then
 * estimate every pair's RTT — pairs never measured included — within a small median error.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Coordinate,
  estimateRttMs,
  originCoordinate,
  VIVALDI_DIMENSIONS,
  VivaldiClient,
  validCoordinate,
} from '../../src/core/membership/vivaldi.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';

function network(nodes: number, seed: number) {
  const random = seededRandom(seed);
  const points = Array.from({ length: nodes }, () => ({
    x: random.next() * 200,
    y: random.next() * 200,
    h: 1 + random.next() * 10,
  }));
  const rtt = (a: number, b: number) => {
    const p = points[a]!;
    const q = points[b]!;
    return Math.hypot(p.x - q.x, p.y - q.y) + p.h + q.h;
  };
  return { random, rtt };
}

function converge(nodes: number, rounds: number, seed: number) {
  const { random, rtt } = network(nodes, seed);
  const clients = Array.from({ length: nodes }, () => new VivaldiClient(random));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < nodes; i++) {
      let j = random.int(nodes - 1);
      if (j >= i) j++;
      const observed = rtt(i, j) * (0.95 + random.next() * 0.1);
      clients[i]!.observe(`n${j}`, clients[j]!.coordinate(), observed);
    }
  }
  const errors: number[] = [];
  for (let i = 0; i < nodes; i++) {
    for (let j = i + 1; j < nodes; j++) {
      const estimate = estimateRttMs(clients[i]!.coordinate(), clients[j]!.coordinate());
      errors.push(Math.abs(estimate - rtt(i, j)) / rtt(i, j));
    }
  }
  errors.sort((a, b) => a - b);
  return {
    median: errors[errors.length >> 1]!,
    p90: errors[Math.floor(errors.length * 0.9)]!,
    clients,
  };
}

describe('vivaldi', () => {
  test('50 nodes: every pair estimated within 5% (median), 15% (p90) after 200 rounds', () => {
    for (const seed of [1, 2, 3]) {
      const { median, p90 } = converge(50, 200, seed);
      assert.ok(median < 0.05, `seed ${seed}: median relative error ${median.toFixed(3)}`);
      assert.ok(p90 < 0.15, `seed ${seed}: p90 relative error ${p90.toFixed(3)}`);
    }
  });

  test('before any sample the estimate is meaningless, and it gets better with samples', () => {
    const early = converge(30, 2, 7).median;
    const late = converge(30, 150, 7).median;
    assert.ok(late < early / 3, `early ${early.toFixed(3)}, late ${late.toFixed(3)}`);
  });

  test('bad samples and coordinates are ignored', () => {
    const client = new VivaldiClient(seededRandom(1));
    const before = client.coordinate();
    const peer = originCoordinate();
    client.observe('p', peer, 0);
    client.observe('p', peer, -5);
    client.observe('p', peer, Number.NaN);
    client.observe('p', peer, 60_000);
    client.observe('p', { ...peer, vec: [1, 2] }, 10);
    client.observe('p', { ...peer, height: Number.POSITIVE_INFINITY }, 10);
    assert.deepEqual(client.coordinate(), before);
    assert.equal(client.updates, 0);
    client.observe('p', peer, 10);
    assert.equal(client.updates, 1);
    assert.ok(validCoordinate(client.coordinate()));
    assert.notDeepEqual(client.coordinate().vec, new Array(VIVALDI_DIMENSIONS).fill(0));
  });

  test('peers remembered are bounded', () => {
    const client = new VivaldiClient(seededRandom(1), { peersMax: 4 });
    const peer: Coordinate = originCoordinate();
    for (let i = 0; i < 100; i++) client.observe(`p${i}`, peer, 5);
    assert.equal((client as unknown as { samples: Map<string, unknown> }).samples.size, 4);
  });
});
