/**
 * Vivaldi coordinates from SWIM's own probes, on the simulated network with geography: 20
 * nodes at random points of a plane, each link's one-way delay half the distance plus the two
 * nodes' access delays (RTTs of 2–60 ms), and up to 0.5 ms of jitter. After a minute of
 * probing, any node's estimate of the RTT between any two members — from its own coordinate
 * and the coordinates it last heard in their acks — is close to the true RTT, for pairs no
 * node ever measured together included. `VIVALDI_SEED=<n>` replays a run.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { estimateRttMs } from '../../src/core/membership/vivaldi.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { SwimSimCluster } from '../../src/core/sim/swim-cluster.ts';

const SEED = Number(process.env['VIVALDI_SEED'] ?? 0x71_7a1d1) >>> 0;

describe('vivaldi in the SWIM simulation', () => {
  test('20 nodes: a node estimates the RTT between any two members', (t) => {
    const nodes = 20;
    const random = seededRandom(SEED);
    const place = Array.from({ length: nodes }, () => ({
      x: random.next() * 40,
      y: random.next() * 40,
      access: 0.5 + random.next() * 3,
    }));
    const index = (id: string) => Number(id.slice('node-'.length));
    const rttMs = (a: number, b: number) =>
      Math.hypot(place[a]!.x - place[b]!.x, place[a]!.y - place[b]!.y) +
      place[a]!.access +
      place[b]!.access;
    const cluster = new SwimSimCluster(SEED, {
      dropRate: 0,
      duplicateRate: 0,
      delayMinMs: 0,
      delayMaxMs: 0.5,
    });
    cluster.setLinkDelay((from, to) => rttMs(index(from), index(to)) / 2);
    cluster.grow(nodes, 50);
    cluster.run(60_000);
    assert.equal(cluster.disagreements(), 0, `VIVALDI_SEED=${SEED}: membership disagrees`);

    const errors: number[] = [];
    for (const viewer of cluster.nodes) {
      const view = new Map(viewer.swim.members().map((m) => [m.id, m.coordinate]));
      for (let a = 0; a < nodes; a++) {
        for (let b = a + 1; b < nodes; b++) {
          const ca = view.get(`node-${a}`);
          const cb = view.get(`node-${b}`);
          assert.ok(
            ca && cb,
            `VIVALDI_SEED=${SEED}: ${viewer.id} has no coordinate of ${a} or ${b}`,
          );
          const truth = rttMs(a, b);
          errors.push(Math.abs(estimateRttMs(ca, cb) - truth) / truth);
        }
      }
    }
    errors.sort((x, y) => x - y);
    const median = errors[errors.length >> 1]!;
    const p90 = errors[Math.floor(errors.length * 0.9)]!;
    t.diagnostic(
      `relative error over every viewer and pair: median ${median.toFixed(3)}, p90 ${p90.toFixed(3)}`,
    );
    assert.ok(median < 0.08, `VIVALDI_SEED=${SEED}: median relative error ${median.toFixed(3)}`);
    assert.ok(p90 < 0.2, `VIVALDI_SEED=${SEED}: p90 relative error ${p90.toFixed(3)}`);
  });
});
