/**
 * exactly-once across kill -9 of the receiver, counted over 100,000 messages on the simulated
 * network (test/helpers/delivery-sim.ts), with drops, duplicates, reordering and link cuts
 * too. The deduplication window is in memory: it dies with the process. So: none lost, and a
 * key runs a second time only when its message was in flight at a kill (at most the sender's
 * unacknowledged messages then) — what the docs say a restart of the receiver allows.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dataPlaneLimits } from '../../src/core/dataplane/limits.ts';
import {
  CONCURRENCY,
  CUTS,
  DeliverySim,
  KILLS,
  LIMITS,
  MESSAGES,
} from '../helpers/delivery-sim.ts';

describe('exactly-once over 100,000 messages across kill -9 of the receiver', () => {
  test('none lost; a second run only for a message in flight at a kill', async () => {
    const sim = new DeliverySim(303);
    const outcomes = await sim.sendAll('exactly-once', 'send', { cuts: CUTS, kills: KILLS });
    assert.deepEqual(Object.fromEntries(outcomes), { ok: MESSAGES }, `seed ${sim.seed}`);
    assert.equal(
      sim.count((runs) => runs === 0),
      0,
      'messages lost',
    );
    assert.ok(sim.kills >= 3, `${sim.kills} kills`);
    const twice = sim.count((runs) => runs > 1);
    const inFlightAtKills =
      sim.kills * Math.min(CONCURRENCY, dataPlaneLimits(LIMITS).unackedPerPeerMax);
    assert.ok(twice <= inFlightAtKills, `${twice} ran twice over ${sim.kills} kills`);
    assert.equal(
      sim.count((runs) => runs > sim.kills + 1),
      0,
      'a key ran at most once per process of the receiver',
    );
    console.log(
      `exactly-once with kill -9: ${MESSAGES} acked, 0 lost; ${twice} ran twice (in flight at one of ` +
        `${sim.kills} kills: the window died with the process); ${sim.queue.nowMs()} ms virtual`,
    );
  });
});
