/**
 * exactly-once across kill -9 of the receiver, counted over 100,000 messages on the simulated
 * network (test/helpers/delivery-sim.ts), with drops, duplicates, reordering and link cuts
 * too. The receiver records every answered key in its dedup log before acknowledging it
 * (src/core/dataplane/dedup-store.ts; in the simulation a MemoryDedupStore that, like a file,
 * outlives the killed process), and each new process starts with that window. So: none lost,
 * none run twice.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CUTS, DeliverySim, KILLS, MESSAGES, RECEIVER } from '../helpers/delivery-sim.ts';

describe('exactly-once over 100,000 messages across kill -9 of the receiver', () => {
  test('none lost, none run twice: the dedup window survives the kills', async () => {
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
    assert.equal(twice, 0, `seed ${sim.seed}: ${twice} ran twice over ${sim.kills} kills`);
    const restored = sim.receiverStats
      .slice(1)
      .map((stats) => stats['dataplane.dedup.restored'] ?? 0);
    assert.ok(
      restored.some((count) => count > 0),
      `a restarted receiver loaded the window of the one before (${restored.join(', ')})`,
    );
    const log = sim.dedupStores.get(RECEIVER)!;
    console.log(
      `exactly-once with kill -9: ${MESSAGES} acked, 0 lost, ${twice} ran twice over ${sim.kills} ` +
        `kills (keys restored by the restarted processes: ${restored.join(', ')}; ${log.size} ` +
        `records in the log); ${sim.queue.nowMs()} ms virtual`,
    );
  });
});
