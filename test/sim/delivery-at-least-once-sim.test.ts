/**
 * at-least-once counted over 100,000 messages on the simulated network (test/helpers/
 * delivery-sim.ts): 5 % of packets dropped, 5 % duplicated, one-way delays of 1-30 ms
 * (reordering), the link cut every 2 s and the receiver killed (kill -9) every 3 s. Every
 * message must be acknowledged and its handler must have run at least once: none lost.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CUTS, DeliverySim, KILLS, MESSAGES, SENDER } from '../helpers/delivery-sim.ts';

describe('at-least-once over 100,000 messages under injected faults', () => {
  test('drops, duplicates, reordering, link cuts and kill -9 of the receiver: none lost', async () => {
    const sim = new DeliverySim(101);
    const outcomes = await sim.sendAll('at-least-once', 'send', { cuts: CUTS, kills: KILLS });
    assert.deepEqual(Object.fromEntries(outcomes), { ok: MESSAGES }, `seed ${sim.seed}`);
    assert.equal(
      sim.count((runs) => runs === 0),
      0,
      'messages lost',
    );
    assert.ok(sim.kills >= 3 && sim.cuts >= 3, `${sim.kills} kills, ${sim.cuts} cuts`);
    const sender = sim.plane(SENDER).stats();
    assert.ok(sender['dataplane.delivery.retries']! > 0);
    assert.equal(sender['dataplane.delivery.acked'], MESSAGES);
    assert.equal(sender['dataplane.delivery.unacked'], 0);
    console.log(
      `at-least-once: ${MESSAGES} acked, 0 lost; ${sender['dataplane.delivery.retries']} retries; ` +
        `${sim.count((runs) => runs > 1)} ran more than once; ${sim.kills} kills, ${sim.cuts} cuts; ` +
        `${sim.queue.nowMs()} ms virtual; network ${JSON.stringify(sim.tcp.stats)}`,
    );
  });
});
