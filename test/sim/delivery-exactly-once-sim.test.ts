/**
 * exactly-once counted over 100,000 requests on the simulated network (test/helpers/
 * delivery-sim.ts): 5 % of packets dropped, 5 % duplicated, one-way delays of 1-30 ms
 * (reordering) and the link cut every 2 s. The receiver lives throughout, so its
 * deduplication window (in memory, across connections) must make every handler run exactly
 * once: none lost, none twice.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dataPlaneLimits } from '../../src/core/dataplane/limits.ts';
import { CUTS, DeliverySim, LIMITS, MESSAGES, RECEIVER, SENDER } from '../helpers/delivery-sim.ts';

describe('exactly-once over 100,000 messages under injected faults', () => {
  test('drops, duplicates, reordering and link cuts: each handler ran exactly once', async () => {
    const sim = new DeliverySim(202);
    const outcomes = await sim.sendAll('exactly-once', 'request', { cuts: CUTS });
    assert.deepEqual(Object.fromEntries(outcomes), { ok: MESSAGES }, `seed ${sim.seed}`);
    assert.equal(
      sim.count((runs) => runs === 0),
      0,
      'messages lost',
    );
    assert.equal(
      sim.count((runs) => runs > 1),
      0,
      'messages delivered more than once',
    );
    assert.ok(sim.cuts >= 3, `${sim.cuts} cuts`);
    const receiver = sim.plane(RECEIVER).stats();
    assert.ok(receiver['dataplane.dedup.suppressed']! > 0, 'copies were suppressed');
    assert.ok(receiver['dataplane.dedup.window']! <= dataPlaneLimits(LIMITS).dedupWindowMax);
    console.log(
      `exactly-once: ${MESSAGES} answered, each handler once; ` +
        `${sim.plane(SENDER).stats()['dataplane.delivery.retries']} retries; ` +
        `${receiver['dataplane.dedup.suppressed']} copies suppressed; window ${receiver['dataplane.dedup.window']}; ` +
        `${sim.cuts} cuts; ${sim.queue.nowMs()} ms virtual; network ${JSON.stringify(sim.tcp.stats)}`,
    );
  });
});
