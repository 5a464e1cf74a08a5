/**
 * The data plane's routing patterns on the simulated network, in virtual time: five
 * DataPlanes on one EventQueue talking through SimPeerNetwork (Envelopes through the real
 * codec), with handlers that take virtual time. Deterministic: what took how long is exact,
 * and a failure prints its seed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DataPlane } from '../../src/core/dataplane/dataplane.ts';
import { dataPlaneLimits } from '../../src/core/dataplane/limits.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { EventQueue, PERFECT_NETWORK, SimNetwork } from '../../src/core/sim/index.ts';
import {
  SimPeerNetwork,
  type SimPeerPacket,
  simPeerPacketBytes,
} from '../../src/core/sim/peers.ts';
import { startSimDataPlane } from '../helpers/sim-dataplane.ts';

const IDS = ['n1', 'n2', 'n3', 'n4', 'n5'];
const addressOf = (id: string) => `127.0.0.${IDS.indexOf(id) + 1}:7000`;

class SimDataPlanes {
  readonly queue = new EventQueue();
  readonly tcp: SimNetwork<SimPeerPacket>;
  readonly peers: SimPeerNetwork;
  readonly planes = new Map<string, DataPlane>();
  /** Gossip states every node's view reports (alive unless set). */
  readonly states = new Map<string, string>();

  readonly seed: number;

  constructor(seed: number, limits = {}) {
    this.seed = seed;
    const random = seededRandom(seed);
    this.tcp = new SimNetwork(this.queue, random, PERFECT_NETWORK, simPeerPacketBytes);
    this.peers = new SimPeerNetwork(this.tcp, this.queue);
    for (const id of IDS) {
      const plane = startSimDataPlane({
        id,
        ids: IDS,
        addressOf,
        peers: this.peers,
        queue: this.queue,
        limits: dataPlaneLimits(limits),
        random: seededRandom(seed + IDS.indexOf(id)),
        stateOf: (member) => this.states.get(member) ?? 'alive',
        groupsOf: (member) => (member === 'n1' || member === 'n2' ? ['hot'] : []),
      });
      this.planes.set(id, plane);
    }
  }

  plane(id: string): DataPlane {
    return this.planes.get(id)!;
  }

  /** A handler on `id` that answers after `ms` of virtual time (or at its signal). */
  slow(id: string, topic: string, ms: number): void {
    this.plane(id).register(
      topic,
      ({ signal }) =>
        new Promise<string>((resolve) => {
          const timer = this.queue.setTimer(ms, () => resolve(id));
          signal.addEventListener('abort', () => {
            this.queue.clearTimer(timer);
            resolve('aborted');
          });
        }),
    );
  }

  /** Runs virtual time until `work` settles (bounded), and how long it took. */
  async run<T>(work: Promise<T>): Promise<{ value: T; elapsedMs: number }> {
    const started = this.queue.nowMs();
    let settled = false;
    let value: T | undefined;
    let failure: unknown;
    work.then(
      (result) => {
        settled = true;
        value = result;
      },
      (error: unknown) => {
        settled = true;
        failure = error;
      },
    );
    await this.queue.runForAsync(120_000, () => settled);
    assert.ok(settled, `seed ${this.seed}: not settled within 120 s of virtual time`);
    if (failure !== undefined) throw failure;
    return { value: value as T, elapsedMs: this.queue.nowMs() - started };
  }
}

const SEEDS = [1, 2, 3];

describe('data plane patterns in virtual time', () => {
  for (const seed of SEEDS) {
    test(`quorum: W of N, the stragglers cancelled (seed ${seed})`, async () => {
      const sim = new SimDataPlanes(seed);
      for (const id of IDS) sim.slow(id, 'write', id === 'n4' || id === 'n5' ? 5000 : 10);
      const { value, elapsedMs } = await sim.run(
        sim.plane('n1').quorum({ all: true }, 'write', 'x', { acks: 3, deadlineMs: 10_000 }),
      );
      assert.deepEqual(value.acked.sort(), ['n1', 'n2', 'n3'], `seed ${seed}`);
      assert.deepEqual(value.cancelled.sort(), ['n4', 'n5']);
      assert.ok(elapsedMs < 100, `seed ${seed}: took ${elapsedMs} ms of virtual time`);
    });
  }

  test('scatter-gather: partial at the deadline, QuorumError below the minimum', async () => {
    const sim = new SimDataPlanes(7);
    for (const id of IDS) sim.slow(id, 'read', id === 'n5' ? 5000 : 20);
    const { value, elapsedMs } = await sim.run(
      sim
        .plane('n2')
        .scatterGather({ all: true }, 'read', '', { deadlineMs: 200, minResponses: 3 }),
    );
    assert.equal(value.responses.length, 4);
    assert.deepEqual(
      value.missing.map((miss) => [miss.id, miss.code]),
      [['n5', 'RDB_DEADLINE_PASSED']],
    );
    assert.ok(elapsedMs >= 200 && elapsedMs < 260, `took ${elapsedMs}`);
    await assert.rejects(
      sim.run(sim.plane('n2').scatterGather({ all: true }, 'read', '', { deadlineMs: 10 })),
      (error: unknown) => isRdbnetError(error, ErrorCode.QuorumNotReached),
    );
  });

  test('a dead member among explicit targets is a miss; the caller can stop waiting', async () => {
    const sim = new SimDataPlanes(19);
    sim.states.set('n3', 'dead');
    const { value } = await sim.run(
      sim.plane('n1').quorum({ ids: ['n2', 'n3', 'n4'] }, 'echo', 'w', { acks: 2 }),
    );
    assert.deepEqual(value.acked.sort(), ['n2', 'n4']);
    assert.deepEqual(
      value.missing.map((miss) => [miss.id, miss.code]),
      [['n3', 'RDB_TARGET_DEAD']],
    );
    await assert.rejects(sim.run(sim.plane('n1').request('n3', 'echo', 'x')), (error: unknown) =>
      isRdbnetError(error, ErrorCode.TargetDead),
    );
    await assert.rejects(
      sim.run(sim.plane('n1').request({ ids: ['n9'] }, 'echo', 'x')),
      (error: unknown) => isRdbnetError(error, ErrorCode.TargetUnknown),
    );
    for (const id of IDS) sim.slow(id, 'slow', 10_000);
    const caller = new AbortController();
    sim.queue.setTimer(50, () => caller.abort());
    const { value: stopped, elapsedMs } = await sim.run(
      sim.plane('n1').fanOut({ all: true }, 'slow', '', {
        concurrency: 2,
        deadlineMs: 30_000,
        signal: caller.signal,
      }),
    );
    assert.equal(stopped.responses.length, 0);
    assert.equal(stopped.partial, true);
    assert.ok(elapsedMs <= 51, `took ${elapsedMs}`);
    assert.equal(sim.plane('n1').stats()['dataplane.running'], 0, 'the local handler was told');
  });

  test('fanOut keeps at most `concurrency` requests in flight', async () => {
    const sim = new SimDataPlanes(11);
    for (const id of IDS) sim.slow(id, 'work', 100);
    const { value, elapsedMs } = await sim.run(
      sim.plane('n1').fanOut({ all: true }, 'work', '', { concurrency: 2, deadlineMs: 10_000 }),
    );
    assert.equal(value.responses.length, 5);
    // Three rounds of 100 ms (2 + 2 + 1), plus a few ms of network per round.
    assert.ok(elapsedMs >= 300 && elapsedMs < 330, `took ${elapsedMs}`);
  });

  test('multicast to a group; a crashed target is RDB_TARGET_DEAD; a lost reply is RDB_DEADLINE_PASSED', async () => {
    const sim = new SimDataPlanes(13);
    const multicast = await sim.run(sim.plane('n5').multicast('hot', 'echo', 'x'));
    assert.deepEqual(multicast.value, { acked: ['n1', 'n2'], missing: [] });
    sim.peers.detach(addressOf('n3'));
    await assert.rejects(
      sim.run(sim.plane('n1').request('n3', 'echo', 'x', { deadlineMs: 500 })),
      (error: unknown) => isRdbnetError(error, ErrorCode.TargetDead),
    );
    const broadcast = await sim.run(sim.plane('n1').broadcast('echo', 'x', { deadlineMs: 500 }));
    assert.deepEqual(broadcast.value.acked, ['n1', 'n2', 'n4', 'n5']);
    assert.deepEqual(
      broadcast.value.missing.map((miss) => [miss.id, miss.code]),
      [['n3', 'RDB_TARGET_DEAD']],
    );
    sim.tcp.setFaults({ dropRate: 1 });
    await assert.rejects(
      sim.run(sim.plane('n1').request('n2', 'echo', 'x', { deadlineMs: 300 })),
      (error: unknown) => isRdbnetError(error, ErrorCode.DeadlinePassed),
    );
  });

  test('a flood at a blocked receiver: the queue holds its bound, the rest is refused', async () => {
    const sim = new SimDataPlanes(17, { queueDepthMax: 100, handlersConcurrentMax: 4 });
    sim.slow('n2', 'block', 60_000);
    const sends = Array.from({ length: 2000 }, () =>
      sim
        .plane('n1')
        .send('n2', 'block', 'x', { deadlineMs: 30_000 })
        .then(
          () => 'ok',
          (error: unknown) => (isRdbnetError(error) ? error.code : 'untyped'),
        ),
    );
    const { value } = await sim.run(Promise.all(sends));
    const counts = Object.groupBy(value, (outcome) => outcome);
    assert.equal(counts['ok']?.length, 104);
    assert.equal(counts[ErrorCode.QueueFull]?.length, 1896);
    const stats = sim.plane('n2').stats();
    assert.equal(stats['dataplane.queued'], 100);
    assert.equal(stats['dataplane.running'], 4);
    // At the deadline the running handlers are told (their signal) and the queued messages
    // expire, counted, without running late.
    await sim.queue.runForAsync(31_000);
    const after = sim.plane('n2').stats();
    assert.equal(after['dataplane.queued'], 0);
    assert.equal(after['dataplane.running'], 0);
    assert.equal(after['dataplane.expired'], 104);
    assert.equal(after['dataplane.delivered'], 0);
  });
});
