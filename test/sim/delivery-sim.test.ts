/**
 * Delivery guarantees counted over 100,000 messages each on the simulated network, in virtual
 * time: message drops, duplicated packets, reordering (a spread of one-way delays), cuts of
 * the connection between sender and receiver (partitions that lose what is in flight) and
 * kill -9 of the receiver (its process gone mid-work, a new one at the same address later).
 * Every message carries its number; the receiver's handler counts how often it ran for each.
 *
 * - at-least-once: every message is acknowledged and its handler ran at least once (none lost).
 * - exactly-once: every handler ran exactly once (none lost, none twice) while the receiver
 *   lives: its deduplication window survives the connection cuts. A kill -9 loses the window
 *   (it is in memory); what that allows is measured in its own test.
 * - the same faults with at-most-once lose messages and with at-least-once run handlers twice:
 *   the counting can see both failures (the controls).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DataPlane, type DataPlaneMember } from '../../src/core/dataplane/dataplane.ts';
import type { Delivery } from '../../src/core/dataplane/delivery.ts';
import { type DataPlaneLimits, dataPlaneLimits } from '../../src/core/dataplane/limits.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../../src/core/errors.ts';
import type { TopicMessage } from '../../src/core/protocol/messages.ts';
import type { PeerRequestHandler } from '../../src/core/rpc/peer.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { EventQueue, type NetworkFaults, SimNetwork } from '../../src/core/sim/index.ts';
import {
  SimPeerNetwork,
  type SimPeerPacket,
  simPeerPacketBytes,
} from '../../src/core/sim/peers.ts';

const SENDER = 'n1';
const RECEIVER = 'n2';
const IDS = [SENDER, RECEIVER];
const addressOf = (id: string) => `127.0.0.${IDS.indexOf(id) + 1}:7000`;
const TOPIC = 'apply';
const MESSAGES = 100_000;
/** Messages the sender keeps in flight at once (its callers). */
const CONCURRENCY = 400;

/** Lossy, duplicating and reordering: 5 % of packets lost, 5 % delivered twice, 1-30 ms. */
const FAULTS: NetworkFaults = {
  dropRate: 0.05,
  duplicateRate: 0.05,
  delayMinMs: 1,
  delayMaxMs: 30,
};

/** Short enough attempts that the faults cost little virtual time. */
const LIMITS: Partial<DataPlaneLimits> = {
  attemptTimeoutMs: 200,
  retryBackoffBaseMs: 10,
  retryBackoffMaxMs: 500,
  deliveryAttemptsMax: 20,
};

interface Disruptions {
  /** Every `everyMs`, the link between sender and receiver is cut for `forMs`. */
  cuts?: { everyMs: number; forMs: number };
  /** Every `everyMs`, the receiver is killed (kill -9) and a new one starts `downMs` later. */
  kills?: { everyMs: number; downMs: number };
}

class DeliverySim {
  readonly queue = new EventQueue();
  readonly tcp: SimNetwork<SimPeerPacket>;
  readonly peers: SimPeerNetwork;
  readonly planes = new Map<string, DataPlane>();
  readonly seed: number;
  /** How often the receiver's handler ran for each message number, over every process. */
  readonly runs = new Uint16Array(MESSAGES);
  /** The receiver's process: a kill ends it (its handlers no longer count), a start makes one. */
  private incarnation = 0;
  kills = 0;
  cuts = 0;
  /** Handler runs of each process of the receiver, for its counters. */
  readonly receiverStats: Record<string, number>[] = [];

  constructor(seed: number) {
    this.seed = seed;
    this.tcp = new SimNetwork(this.queue, seededRandom(seed), FAULTS, simPeerPacketBytes);
    this.peers = new SimPeerNetwork(this.tcp, this.queue);
    for (const id of IDS) this.start(id);
  }

  plane(id: string): DataPlane {
    return this.planes.get(id)!;
  }

  /** A new process of node `id` (a fresh DataPlane: nothing kept from an earlier one). */
  start(id: string): void {
    let plane: DataPlane | null = null;
    const handler: PeerRequestHandler = (request, from) => {
      if (request.kind === 'topicRequest') {
        return plane!
          .handle(request.body as TopicMessage, from.peer?.id ?? '')
          .then((topicReply) => ({ topicReply }));
      }
      throw new RdbnetError(ErrorCode.MethodUnknown, request.kind);
    };
    const transport = this.peers.attach(
      addressOf(id),
      { id, role: 'node', authenticated: true },
      handler,
    );
    plane = new DataPlane({
      selfId: id,
      limits: dataPlaneLimits(LIMITS),
      peers: transport,
      clock: this.queue,
      random: seededRandom(this.seed * 1000 + this.incarnation * 10 + IDS.indexOf(id)),
      members: () =>
        IDS.map(
          (member): DataPlaneMember => ({
            id: member,
            address: addressOf(member),
            state: 'alive',
            groups: [],
            score: 1,
            rttMs: null,
            isSelf: member === id,
          }),
        ),
    });
    if (id === RECEIVER) {
      const mine = ++this.incarnation;
      plane.register(TOPIC, ({ payload }) => {
        // A killed process runs nothing more: a handler started after the kill never was.
        if (mine !== this.incarnation) throw new Error('this process was killed');
        const number = Number(new TextDecoder().decode(payload));
        this.runs[number]! += 1;
        return `ok ${number}`;
      });
    }
    this.planes.set(id, plane);
  }

  /** kill -9 of `id`: its process, memory and connections gone; a new one after `downMs`. */
  kill(id: string, downMs: number): void {
    this.kills++;
    this.receiverStats.push(this.plane(id).stats());
    this.incarnation++;
    this.peers.detach(addressOf(id));
    this.planes.delete(id);
    this.queue.setTimer(downMs, () => this.start(id));
  }

  disrupt(plan: Disruptions, until: () => boolean): void {
    const from = addressOf(SENDER);
    const to = addressOf(RECEIVER);
    if (plan.cuts !== undefined) {
      const { everyMs, forMs } = plan.cuts;
      this.queue.every(
        everyMs,
        () => {
          this.cuts++;
          this.tcp.partition([[from], [to]]);
          this.queue.setTimer(forMs, () => this.tcp.heal());
        },
        everyMs,
        () => !until(),
      );
    }
    if (plan.kills !== undefined) {
      const { everyMs, downMs } = plan.kills;
      this.queue.every(
        everyMs,
        () => this.kill(RECEIVER, downMs),
        everyMs,
        () => !until(),
      );
    }
  }

  /**
   * Sends messages 0 … MESSAGES-1 from the sender to the receiver with `delivery`,
   * CONCURRENCY at a time, under `plan`; how each call ended (its error code, or 'ok').
   */
  async sendAll(
    delivery: Delivery,
    kind: 'send' | 'request',
    plan: Disruptions,
  ): Promise<Map<string, number>> {
    const outcomes = new Map<string, number>();
    let next = 0;
    let finished = 0;
    const done = () => finished === MESSAGES;
    this.disrupt(plan, done);
    const sender = () => this.plane(SENDER);
    const worker = async (): Promise<void> => {
      while (next < MESSAGES) {
        const number = next++;
        const payload = String(number);
        const options = { delivery, deadlineMs: 30_000 };
        let outcome = 'ok';
        try {
          if (kind === 'send') await sender().send(RECEIVER, TOPIC, payload, options);
          else {
            const { reply } = await sender().request(RECEIVER, TOPIC, payload, options);
            assert.equal(new TextDecoder().decode(reply), `ok ${number}`);
          }
        } catch (error) {
          outcome = isRdbnetError(error) ? error.code : String(error);
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        finished++;
      }
    };
    const workers = Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await this.queue.runForAsync(3_600_000, done);
    assert.ok(
      done(),
      `seed ${this.seed}: ${finished} of ${MESSAGES} settled in an hour of virtual time`,
    );
    await workers;
    return outcomes;
  }

  /** Message numbers whose handler ran `times` times (or more, with `orMore`). */
  count(test: (runs: number) => boolean): number {
    let matching = 0;
    for (const runs of this.runs) if (test(runs)) matching++;
    return matching;
  }
}

const CUTS = { everyMs: 3000, forMs: 400 };
const KILLS = { everyMs: 7000, downMs: 600 };

describe('delivery guarantees over 100,000 messages under injected faults (simulated network)', () => {
  test('at-least-once send: drops, duplicates, reordering, cuts and kill -9 — none lost', async () => {
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
      `at-least-once: ${MESSAGES} acked; ${sender['dataplane.delivery.retries']} retries; ` +
        `${sim.count((runs) => runs > 1)} delivered more than once; ${sim.kills} kills, ${sim.cuts} cuts; ` +
        `${sim.queue.nowMs()} ms virtual; network ${JSON.stringify(sim.tcp.stats)}`,
    );
  });

  test('exactly-once request: drops, duplicates, reordering and connection cuts — each handler ran once', async () => {
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

  test('exactly-once send across kill -9 of the receiver: none lost; its window (in memory) is lost with it', async () => {
    const sim = new DeliverySim(303);
    const outcomes = await sim.sendAll('exactly-once', 'send', { cuts: CUTS, kills: KILLS });
    assert.deepEqual(Object.fromEntries(outcomes), { ok: MESSAGES }, `seed ${sim.seed}`);
    assert.equal(
      sim.count((runs) => runs === 0),
      0,
      'messages lost',
    );
    // A second run of a key can only come from a message in flight when a process died:
    // at most the unacknowledged window per kill (what the docs say a restart allows).
    const twice = sim.count((runs) => runs > 1);
    const bound = sim.kills * dataPlaneLimits(LIMITS).unackedPerPeerMax;
    assert.ok(
      twice <= Math.min(bound, sim.kills * CONCURRENCY),
      `${twice} twice over ${sim.kills} kills`,
    );
    assert.equal(
      sim.count((runs) => runs > 2),
      0,
      'no key ran more than once per process',
    );
    console.log(
      `exactly-once with kill -9: ${MESSAGES} acked, none lost; ${twice} ran twice (each in flight at ` +
        `one of ${sim.kills} kills: the window died with the process)`,
    );
  });

  test('controls: the same faults lose at-most-once messages and duplicate at-least-once handlers', async () => {
    const lossy = new DeliverySim(404);
    const atMostOnce = await lossy.sendAll('at-most-once', 'send', { cuts: CUTS });
    assert.ok((atMostOnce.get('ok') ?? 0) < MESSAGES, 'at-most-once calls failed');
    assert.ok(lossy.count((runs) => runs === 0) > 0, 'at-most-once messages were lost');
    const repeated = new DeliverySim(505);
    await repeated.sendAll('at-least-once', 'request', { cuts: CUTS });
    assert.equal(
      repeated.count((runs) => runs === 0),
      0,
    );
    assert.ok(repeated.count((runs) => runs > 1) > 0, 'at-least-once ran some handlers twice');
  });
});

describe('delivery options and bounds', () => {
  test('bad delivery input is refused before anything is sent', async () => {
    const sim = new DeliverySim(606);
    const plane = sim.plane(SENDER);
    await assert.rejects(
      plane.send(RECEIVER, TOPIC, '1', { delivery: 'twice' as Delivery }),
      (error: unknown) => isRdbnetError(error, ErrorCode.Usage),
    );
    await assert.rejects(
      plane.send(RECEIVER, TOPIC, '1', { delivery: 'at-least-once', idempotencyKey: 'k' }),
      (error: unknown) => isRdbnetError(error, ErrorCode.Usage),
    );
    await assert.rejects(
      plane.send(RECEIVER, TOPIC, '1', {
        delivery: 'exactly-once',
        idempotencyKey: 'k'.repeat(129),
      }),
      (error: unknown) => isRdbnetError(error, ErrorCode.Usage),
    );
    assert.equal(sim.tcp.stats.sent, 0);
  });

  test('a caller-given idempotency key runs the handler once however often it is sent', async () => {
    const sim = new DeliverySim(707);
    sim.tcp.setFaults({ dropRate: 0, duplicateRate: 0 });
    const plane = sim.plane(SENDER);
    const sends = Array.from({ length: 5 }, () =>
      plane.request(RECEIVER, TOPIC, '42', {
        delivery: 'exactly-once',
        idempotencyKey: 'order-42',
      }),
    );
    await sim.queue.runForAsync(5000);
    const replies = await Promise.all(sends);
    assert.deepEqual(
      replies.map(({ reply }) => new TextDecoder().decode(reply)),
      Array(5).fill('ok 42'),
    );
    assert.equal(sim.runs[42], 1);
    assert.equal(sim.plane(RECEIVER).stats()['dataplane.dedup.suppressed'], 4);
  });

  test('an unreachable receiver: RDB_DELIVERY_FAILED after the bounded attempts, the window freed', async () => {
    const sim = new DeliverySim(808);
    sim.peers.detach(addressOf(RECEIVER));
    const plane = sim.plane(SENDER);
    const call = plane
      .send(RECEIVER, TOPIC, '1', { delivery: 'at-least-once', deadlineMs: 60_000 })
      .catch((error: unknown) => error);
    await sim.queue.runForAsync(61_000);
    const error = await call;
    assert.ok(isRdbnetError(error, ErrorCode.DeliveryFailed), String(error));
    assert.match((error as Error).message, /after 20 attempt\(s\)/);
    const stats = plane.stats();
    assert.equal(stats['dataplane.delivery.failed'], 1);
    assert.equal(stats['dataplane.delivery.retries'], 19);
    assert.equal(stats['dataplane.delivery.unacked'], 0);
  });

  test('a full unacknowledged window makes senders wait, then RDB_QUEUE_FULL (backpressure)', async () => {
    const sim = new DeliverySim(909);
    sim.tcp.setFaults({ dropRate: 1 });
    const plane = sim.plane(SENDER);
    const size = dataPlaneLimits(LIMITS).unackedPerPeerMax;
    const calls = Array.from({ length: size * 2 + 1 }, () =>
      plane.send(RECEIVER, TOPIC, '1', { delivery: 'at-least-once', deadlineMs: 2000 }).then(
        () => 'ok',
        (error: unknown) => (isRdbnetError(error) ? error.code : String(error)),
      ),
    );
    await sim.queue.runForAsync(10);
    const stats = plane.stats();
    assert.equal(stats['dataplane.delivery.unacked'], size);
    assert.equal(stats['dataplane.delivery.unacked_waiting'], size);
    await sim.queue.runForAsync(3000);
    const outcomes = await Promise.all(calls);
    assert.equal(
      outcomes.at(-1),
      ErrorCode.QueueFull,
      'one over window and waiters: refused at once',
    );
    assert.deepEqual(
      [...new Set(outcomes)].sort(),
      [ErrorCode.DeliveryFailed, ErrorCode.QueueFull].sort(),
    );
    const after = plane.stats();
    assert.equal(after['dataplane.delivery.unacked'], 0);
    assert.equal(after['dataplane.delivery.unacked_waiting'], 0);
  });
});
