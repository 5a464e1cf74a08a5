/**
 * Two data planes on the simulated network for the delivery-guarantee tests: a sender n1 and
 * a receiver n2 whose handler counts how often it ran for each message number, over every
 * process of the receiver (kill -9 ends one, a new one starts later at the same address).
 * Faults: packet drops, duplicates, reordering (a spread of one-way delays), cuts of the link
 * (partitions that lose what is in flight) and kills of the receiver. Deterministic per seed.
 */
import assert from 'node:assert/strict';
import type { DataPlane } from '../../src/core/dataplane/dataplane.ts';
import { MemoryDedupStore } from '../../src/core/dataplane/dedup-store.ts';
import type { Delivery } from '../../src/core/dataplane/delivery.ts';
import { type DataPlaneLimits, dataPlaneLimits } from '../../src/core/dataplane/limits.ts';
import { isRdbnetError } from '../../src/core/errors.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { EventQueue, type NetworkFaults, SimNetwork } from '../../src/core/sim/index.ts';
import {
  SimPeerNetwork,
  type SimPeerPacket,
  simPeerPacketBytes,
} from '../../src/core/sim/peers.ts';
import { startSimDataPlane } from './sim-dataplane.ts';

export const SENDER = 'n1';
export const RECEIVER = 'n2';
const IDS = [SENDER, RECEIVER];
export const addressOf = (id: string) => `127.0.0.${IDS.indexOf(id) + 1}:7000`;
export const TOPIC = 'apply';
/** Messages of one counted run (the issue asks for at least 100,000). */
export const MESSAGES = 100_000;
/** Messages the sender keeps in flight at once (its callers). */
export const CONCURRENCY = 400;

/** Lossy, duplicating and reordering: 5 % of packets lost, 5 % delivered twice, 1-30 ms. */
export const FAULTS: NetworkFaults = {
  dropRate: 0.05,
  duplicateRate: 0.05,
  delayMinMs: 1,
  delayMaxMs: 30,
};

/** Short enough attempts that the faults cost little virtual time. */
export const LIMITS: Partial<DataPlaneLimits> = {
  attemptTimeoutMs: 200,
  retryBackoffBaseMs: 10,
  retryBackoffMaxMs: 500,
  deliveryAttemptsMax: 20,
};

export interface Disruptions {
  /** Every `everyMs`, the link between sender and receiver is cut for `forMs`. */
  cuts?: { everyMs: number; forMs: number };
  /** Every `everyMs`, the receiver is killed (kill -9) and a new one starts `downMs` later. */
  kills?: { everyMs: number; downMs: number };
}

export class DeliverySim {
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
  /** Each node's exactly-once log: like a file in its data dir, it outlives a kill -9. */
  readonly dedupStores = new Map<string, MemoryDedupStore>(
    IDS.map((id) => [id, new MemoryDedupStore()]),
  );

  constructor(seed: number) {
    this.seed = seed;
    this.tcp = new SimNetwork(this.queue, seededRandom(seed), FAULTS, simPeerPacketBytes);
    this.peers = new SimPeerNetwork(this.tcp, this.queue);
    for (const id of IDS) this.start(id);
  }

  plane(id: string): DataPlane {
    return this.planes.get(id)!;
  }

  /** A new process of node `id`: a fresh DataPlane, with nothing from an earlier one but
   * what its data dir holds (the exactly-once log). */
  start(id: string): void {
    const plane = startSimDataPlane({
      id,
      ids: IDS,
      addressOf,
      peers: this.peers,
      queue: this.queue,
      limits: dataPlaneLimits(LIMITS),
      random: seededRandom(this.seed * 1000 + this.incarnation * 10 + IDS.indexOf(id)),
      dedupStore: this.dedupStores.get(id)!,
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
    messages = MESSAGES,
  ): Promise<Map<string, number>> {
    const outcomes = new Map<string, number>();
    let next = 0;
    let finished = 0;
    const done = () => finished === messages;
    this.disrupt(plan, done);
    const sender = () => this.plane(SENDER);
    const worker = async (): Promise<void> => {
      while (next < messages) {
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
      `seed ${this.seed}: ${finished} of ${messages} settled in an hour of virtual time`,
    );
    await workers;
    return outcomes;
  }

  /** How many message numbers' run counts pass `test`. */
  count(test: (runs: number, number: number) => boolean): number {
    let matching = 0;
    this.runs.forEach((runs, number) => {
      if (test(runs, number)) matching++;
    });
    return matching;
  }
}

/** Link cuts and receiver kills often enough that 100,000 messages meet several of each. */
export const CUTS = { everyMs: 2000, forMs: 300 };
export const KILLS = { everyMs: 3000, downMs: 600 };
