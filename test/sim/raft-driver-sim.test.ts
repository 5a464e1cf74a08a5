/**
 * The node's RaftDriver — the code that runs Raft in `rdbnet node start` — on the simulator:
 * MemoryStorage instead of the WAL, the EventQueue as its clock (ticker and proposal
 * deadlines in virtual time), and Raft batches as real Envelopes over the simulated
 * PeerTransport (SimPeerNetwork), with latency, loss, partitions and crashes. One seed
 * decides everything, so a run replays exactly: the trace of one seed is compared with a
 * second run of it.
 *
 * RAFT_DRIVER_SIM_RUNS=<n> runs more (or fewer) seeds in the sweep; RAFT_DRIVER_SEED=<n>
 * replays one. Every failure message names the seed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RaftDriver } from '../../src/core/cluster/driver.ts';
import { messageFromWire, messageToWire } from '../../src/core/cluster/raft-codec.ts';
import { ErrorCode, RdbnetError } from '../../src/core/errors.ts';
import { ClusterConfig } from '../../src/core/membership/raft/cluster-config.ts';
import { bootstrapSnapshot, MemoryStorage } from '../../src/core/membership/raft/storage.ts';
import { type Message, NONE } from '../../src/core/membership/raft/types.ts';
import type { RaftBatch } from '../../src/core/protocol/messages.ts';
import type { PeerRequestHandler } from '../../src/core/rpc/peer.ts';
import {
  createLogger,
  type Random,
  randomUuid,
  seededRandom,
} from '../../src/core/runtime/index.ts';
import { EventQueue, type NetworkFaults, SimNetwork } from '../../src/core/sim/index.ts';
import {
  SimPeerNetwork,
  type SimPeerPacket,
  type SimPeerTransport,
  simPeerPacketBytes,
} from '../../src/core/sim/peers.ts';

const TICK_MS = 50;
/** What ClusterService allows one Raft batch (PEER_REQUEST_TIMEOUT_MS). */
const BATCH_TIMEOUT_MS = 1000;
const PROPOSAL_TIMEOUT_MS = 5000;
const RUNS = Number(process.env['RAFT_DRIVER_SIM_RUNS'] ?? 500);
const REPLAY_SEED = process.env['RAFT_DRIVER_SEED'];

/** Links between nodes are TCP: no loss or duplication, but latency spread and partitions. */
const STREAM_FAULTS: NetworkFaults = {
  dropRate: 0,
  duplicateRate: 0,
  delayMinMs: 1,
  delayMaxMs: 15,
};

interface SimMember {
  id: string;
  address: string;
  storage: MemoryStorage;
  driver: RaftDriver | null;
  transport: SimPeerTransport | null;
  /** Restarts so far: a restarted node draws from a fresh seeded stream. */
  generation: number;
}

/**
 * Three (or more) founding voters, each a RaftDriver with its own MemoryStorage (its "disk":
 * a crash loses nothing persisted, as the driver persists before it sends).
 */
class DriverCluster {
  readonly seed: number;
  readonly queue = new EventQueue();
  readonly random: Random;
  readonly net: SimNetwork<SimPeerPacket>;
  readonly peers: SimPeerNetwork;
  readonly members: SimMember[] = [];
  readonly trace: string[] = [];
  readonly clusterId: string;
  /** term → the leader that won it: election safety is one leader per term, ever. */
  readonly leaderOfTerm = new Map<number, string>();
  readonly fatal: Error[] = [];

  constructor(seed: number, size: number, faults: NetworkFaults = STREAM_FAULTS) {
    this.seed = seed;
    this.random = seededRandom(seed);
    this.net = new SimNetwork(this.queue, this.random, faults, simPeerPacketBytes);
    this.peers = new SimPeerNetwork(this.net, this.queue);
    // The cluster id comes from the seed, as a simulated bootstrap's would.
    this.clusterId = randomUuid(this.random);
    const founders = Array.from({ length: size }, (_, i) => ({
      id: `n${i + 1}`,
      address: `127.0.0.1:${7001 + i}`,
    }));
    const data = ClusterConfig.founding(this.clusterId, founders).encode();
    for (const founder of founders) {
      const storage = new MemoryStorage();
      storage.applySnapshot(
        bootstrapSnapshot(
          founders.map((f) => f.id),
          [],
          data,
        ),
      );
      storage.setHardState({ term: 1, vote: NONE, commit: 1 });
      this.members.push({ ...founder, storage, driver: null, transport: null, generation: 0 });
    }
  }

  get now(): number {
    return this.queue.nowMs();
  }

  member(id: string): SimMember {
    const member = this.members.find((m) => m.id === id);
    assert.ok(member, `seed ${this.seed}: no member ${id}`);
    return member;
  }

  note(line: string): void {
    this.trace.push(`${this.now.toFixed(3)} ${line}`);
  }

  /** Starts (or restarts, after crash) the member's driver on its storage. */
  start(member: SimMember): void {
    assert.equal(member.driver, null, `seed ${this.seed}: ${member.id} runs already`);
    member.generation++;
    const handler: PeerRequestHandler = (request, from) => {
      if (request.kind !== 'raftBatch') {
        throw new RdbnetError(ErrorCode.MethodUnknown, `no handler for ${request.kind}`);
      }
      const sender = from.peer;
      const batch = request.body as RaftBatch;
      const driver = member.driver;
      if (sender === null || sender.role !== 'node' || driver === null) {
        throw new RdbnetError(ErrorCode.NotMember, `${member.id} takes no raft traffic now`);
      }
      if (batch.to !== member.id) {
        throw new RdbnetError(ErrorCode.NotMember, `batch for ${batch.to} reached ${member.id}`);
      }
      driver.step(
        (batch.messages ?? []).map((wire) => messageFromWire(wire, sender.id, member.id)),
      );
      return { raftBatchReply: {} };
    };
    member.transport = this.peers.attach(
      member.address,
      { id: member.id, role: 'node', authenticated: true },
      handler,
    );
    const driver = new RaftDriver({
      id: member.id,
      storage: member.storage,
      tickMs: TICK_MS,
      random: this.memberRandom(member),
      clock: this.queue,
      log: createLogger({ level: 'error', write: (line) => this.note(`log ${line.trim()}`) }),
      send: (to, messages) => this.send(member, to, messages),
      events: {
        onLeaderChange: (leader, term) => {
          this.note(`${member.id} leader=${leader || '-'} term=${term}`);
          if (leader === NONE) return;
          const known = this.leaderOfTerm.get(term);
          assert.ok(
            known === undefined || known === leader,
            `seed ${this.seed}: two leaders in term ${term}: ${known} and ${leader}`,
          );
          this.leaderOfTerm.set(term, leader);
        },
        onApplied: (change) => {
          const { record } = change;
          this.note(
            `${member.id} applied ${record.index}/${record.term} ${record.op} ${record.address}`,
          );
        },
        onFatal: (error) => {
          this.fatal.push(error);
        },
      },
    });
    member.driver = driver;
    driver.start();
  }

  /** Each member (and each restart of it) draws its election timeouts from its own stream. */
  private memberRandom(member: SimMember): Random {
    const stream = this.members.indexOf(member) + 1 + 64 * member.generation;
    return seededRandom((this.seed ^ Math.imul(stream, 0x9e37_79b9)) >>> 0);
  }

  /** The process dies: no more ticks, its requests and answers are gone; its storage stays. */
  crash(member: SimMember): void {
    const driver = member.driver;
    assert.ok(driver, `seed ${this.seed}: ${member.id} is not running`);
    member.driver = null;
    this.peers.detach(member.address);
    member.transport = null;
    // stop() stops the ticker and refuses what waits; MemoryStorage keeps what was persisted.
    driver.stop().catch((error: unknown) => this.fatal.push(error as Error));
    this.note(`${member.id} crashed`);
  }

  private send(from: SimMember, to: string, messages: Message[]): void {
    const transport = from.transport;
    const target = this.members.find((m) => m.id === to);
    if (transport === null || target === undefined) return;
    const snapshots = messages.some((message) => message.type === 'MsgSnap');
    transport
      .request(
        target.address,
        { raftBatch: { messages: messages.map(messageToWire), to } },
        BATCH_TIMEOUT_MS,
      )
      .then(
        () => {
          if (snapshots) from.driver?.reportSnapshot(to, true);
        },
        () => {
          from.driver?.reportUnreachable(to);
          if (snapshots) from.driver?.reportSnapshot(to, false);
        },
      );
  }

  running(): RaftDriver[] {
    return this.members.flatMap((m) => (m.driver === null ? [] : [m.driver]));
  }

  /** The one leader every running member agrees on, or undefined. */
  agreedLeader(): string | undefined {
    const drivers = this.running();
    const leader = drivers[0]?.leader;
    if (leader === undefined || leader === NONE) return undefined;
    const term = drivers[0]!.term;
    const agree = drivers.every((d) => d.leader === leader && d.term === term);
    return agree && drivers.some((d) => d.id === leader && d.isLeader) ? leader : undefined;
  }

  async runUntil(what: string, done: () => boolean, maxMs: number): Promise<void> {
    const reached = await this.queue.runForAsync(maxMs, done);
    assert.ok(reached, `seed ${this.seed}: ${what} not within ${maxMs} virtual ms\n${this.tail()}`);
  }

  async propose(key: string, value: string): Promise<number> {
    const leader = this.agreedLeader();
    assert.ok(leader, `seed ${this.seed}: no leader to propose to`);
    const proposal = this.member(leader).driver!.proposeCommand(
      { op: 'setSetting', key, value },
      PROPOSAL_TIMEOUT_MS,
    );
    let result: { index: number } | undefined;
    let failure: unknown;
    proposal.then(
      (r) => {
        result = r;
      },
      (error: unknown) => {
        failure = error;
      },
    );
    await this.runUntil(
      `proposal ${key}`,
      () => result !== undefined || failure !== undefined,
      PROPOSAL_TIMEOUT_MS + 1000,
    );
    assert.equal(failure, undefined, `seed ${this.seed}: proposal ${key} failed: ${failure}`);
    this.note(`proposal ${key}=${value} committed at ${result!.index}`);
    return result!.index;
  }

  /** Every running member applied up to `index` and holds the same configuration. */
  converged(index: number): boolean {
    const drivers = this.running();
    if (drivers.some((d) => d.config.appliedIndex < index)) return false;
    const encoded = drivers.map((d) => Buffer.from(d.config.encode()).toString('hex'));
    return encoded.every((e) => e === encoded[0]);
  }

  summary(): string[] {
    const stats = this.net.stats;
    return [
      ...this.trace,
      `events ${this.queue.eventsRun} sent ${stats.sent} delivered ${stats.delivered} dropped ${stats.dropped} bytes ${stats.bytes}`,
    ];
  }

  tail(): string {
    return this.trace.slice(-30).join('\n');
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.running().map((driver) => driver.stop()));
    for (const member of this.members) member.driver = null;
  }
}

/** Elects, replicates three commands, crashes the leader, fails over, restarts it, catches up. */
async function scenario(seed: number, faults?: NetworkFaults): Promise<string[]> {
  const cluster = new DriverCluster(seed, 3, faults);
  for (const member of cluster.members) cluster.start(member);
  await cluster.runUntil('first leader', () => cluster.agreedLeader() !== undefined, 10_000);
  const first = cluster.agreedLeader()!;
  let index = 0;
  for (let i = 0; i < 3; i++) index = await cluster.propose(`k${i}`, `v${i}-${seed}`);
  await cluster.runUntil('all apply', () => cluster.converged(index), 5_000);

  const firstTerm = cluster.member(first).driver!.term;
  cluster.crash(cluster.member(first));
  await cluster.runUntil(
    'failover',
    () => {
      const leader = cluster.agreedLeader();
      return leader !== undefined && leader !== first;
    },
    15_000,
  );
  const second = cluster.agreedLeader()!;
  assert.ok(cluster.member(second).driver!.term > firstTerm, `seed ${seed}: a new term`);
  index = await cluster.propose('after-failover', `${seed}`);

  cluster.start(cluster.member(first));
  await cluster.runUntil('restarted node catches up', () => cluster.converged(index), 15_000);
  const settings = cluster.member(first).driver!.config.settings;
  assert.equal(
    settings.get('after-failover'),
    `${seed}`,
    `seed ${seed}: the restarted node has it`,
  );
  assert.equal(settings.get('k2'), `v2-${seed}`);
  assert.deepEqual(cluster.fatal, [], `seed ${seed}: no storage failure`);
  await cluster.stopAll();
  return cluster.summary();
}

describe('RaftDriver on the simulator (MemoryStorage, simulated clock and PeerTransport)', () => {
  test('three drivers elect one leader, replicate, fail over and catch up; a seed replays exactly', async () => {
    const first = await scenario(1);
    const leaders = first.filter((line) => / leader=n\d term=/.test(line));
    assert.ok(leaders.length >= 6, 'leader changes are in the trace');
    assert.ok(
      first.some((line) => line.includes('applied') && line.includes('setSetting k0=v0-1')),
    );
    assert.deepEqual(await scenario(1), first, 'the same seed gives the same trace');
  });

  test('under loss, duplication and reordering the trace still replays from the seed', async () => {
    const lossy: NetworkFaults = {
      dropRate: 0.05,
      duplicateRate: 0.02,
      delayMinMs: 1,
      delayMaxMs: 40,
    };
    const first = await scenario(7, lossy);
    assert.deepEqual(await scenario(7, lossy), first);
    const other = await scenario(8, lossy);
    assert.notDeepEqual(other, first, 'another seed, another run');
  });

  test(`${REPLAY_SEED === undefined ? RUNS : 1} seeds: one leader per term, failover and catch-up every time`, async () => {
    const seeds =
      REPLAY_SEED === undefined
        ? Array.from({ length: RUNS }, (_, i) => 1000 + i)
        : [Number(REPLAY_SEED)];
    const faults: NetworkFaults = {
      dropRate: 0.02,
      duplicateRate: 0.01,
      delayMinMs: 1,
      delayMaxMs: 30,
    };
    for (const seed of seeds) {
      try {
        await scenario(seed, faults);
      } catch (error) {
        throw new Error(
          `seed ${seed} failed (replay: RAFT_DRIVER_SEED=${seed}): ${(error as Error).message}`,
        );
      }
    }
  });

  test('a proposal without quorum times out in virtual time with RDB_REQUEST_TIMEOUT', async () => {
    const cluster = new DriverCluster(3, 3);
    for (const member of cluster.members) cluster.start(member);
    await cluster.runUntil('a leader', () => cluster.agreedLeader() !== undefined, 10_000);
    const leader = cluster.member(cluster.agreedLeader()!);
    const others = cluster.members.filter((m) => m !== leader);
    cluster.net.partition([[leader.address], others.map((m) => m.address)]);
    const startedAt = cluster.now;
    let failure: unknown;
    leader
      .driver!.proposeCommand({ op: 'setSetting', key: 'lost', value: '1' }, 2000)
      .catch((error: unknown) => {
        failure = error;
      });
    await cluster.runUntil('the proposal fails', () => failure !== undefined, 3000);
    assert.ok(failure instanceof RdbnetError, String(failure));
    // Either the deadline (no quorum to commit) or the leader stepping down (check-quorum).
    assert.ok(
      failure.code === ErrorCode.RequestTimeout || failure.code === ErrorCode.NoLeader,
      `code ${failure.code}`,
    );
    if (failure.code === ErrorCode.RequestTimeout) assert.equal(cluster.now - startedAt, 2000);
    await cluster.stopAll();
  });
});
