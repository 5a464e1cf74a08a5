/**
 * Whole nodes on the simulator: each simulated node is an RdbnetNode — the same object
 * `rdbnet node start` runs, built by the same RdbnetNode.start — on a simulated
 * NodeEnvironment (src/core/sim/node-process.ts): one EventQueue (virtual time), a seeded
 * Random per process, SimPeerNetwork (node-to-node Envelopes and the node's listener),
 * SimDatagrams (SWIM) and MemoryStorage (Raft; a restart is a new process on the same
 * storage, a crash is kill -9: the process's timers and sockets are gone). Operator requests
 * (cluster status, bootstrap, join, leave, transfer-leader, node status, health, members) come
 * from a simulated client (role client, admin) through the node's own admin handler.
 *
 * Each seed picks one scenario and its faults; the invariants are checked after every event,
 * and what every node answers over the admin API is checked against the Raft state whenever
 * the cluster has converged.
 *
 *   CLUSTER_SIM_SEEDS=<n>  seeds in the sweep (default 500)
 *   CLUSTER_SIM_FIRST_SEED=<n>  the sweep's first seed (default 1)
 *   CLUSTER_SIM_SEED=<n>   replays one seed (a failure prints the command)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RaftDriver } from '../../src/core/cluster/driver.ts';
import { memoryLeftMarker } from '../../src/core/cluster/left-marker.ts';
import type { ClusterService } from '../../src/core/cluster/service.ts';
import { type NodeConfig, resolveNodeConfig } from '../../src/core/config/node-config.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { MemoryStorage } from '../../src/core/membership/raft/storage.ts';
import { decodeConfChange } from '../../src/core/membership/raft/types.ts';
import { RdbnetNode } from '../../src/core/node/node.ts';
import type { PeerTransport } from '../../src/core/rpc/peer.ts';
import { peerSender } from '../../src/core/rpc/peer.ts';
import { type ReplyBody, type RequestKind, request } from '../../src/core/rpc/request.ts';
import { createLogger, type Random, seededRandom } from '../../src/core/runtime/index.ts';
import { Keyring } from '../../src/core/security/keyring.ts';
import { SimDatagrams } from '../../src/core/sim/datagrams.ts';
import { EventQueue, type NetworkFaults, SimNetwork } from '../../src/core/sim/index.ts';
import { type SimDataDir, SimNodeProcess } from '../../src/core/sim/node-process.ts';
import {
  SimPeerNetwork,
  type SimPeerPacket,
  simPeerPacketBytes,
} from '../../src/core/sim/peers.ts';

const SEEDS = Number(process.env['CLUSTER_SIM_SEEDS'] ?? 500);
const REPLAY_SEED = process.env['CLUSTER_SIM_SEED'];
/** The sweep runs seeds FIRST_SEED .. FIRST_SEED + SEEDS - 1 (another range finds other bugs). */
const FIRST_SEED = Number(process.env['CLUSTER_SIM_FIRST_SEED'] ?? 1);
/** Seeds per test of the sweep. */
const SEEDS_PER_TEST = 50;
const CLUSTER_NAME = 'sim-cluster';
const PORT = 7946;
/** Every wait in a scenario is bounded by this much virtual time. */
const CONVERGE_MAX_MS = 60_000;

const UDP_FAULTS: NetworkFaults = {
  dropRate: 0.02,
  duplicateRate: 0.01,
  delayMinMs: 1,
  delayMaxMs: 15,
};
const TCP_FAULTS: NetworkFaults = { dropRate: 0, duplicateRate: 0, delayMinMs: 1, delayMaxMs: 15 };

type ScenarioName =
  | 'bootstrap-expect-any-order'
  | 'join-during-partition'
  | 'leader-kill-restart'
  | 'leader-leaves'
  | 'learner-promotion-under-loss'
  | 'full-cluster-restart';

const SCENARIOS: readonly ScenarioName[] = [
  'bootstrap-expect-any-order',
  'join-during-partition',
  'leader-kill-restart',
  'leader-leaves',
  'learner-promotion-under-loss',
  'full-cluster-restart',
];

function replayCommand(seed: number): string {
  return `CLUSTER_SIM_SEED=${seed} node_modules/.bin/node --test test/sim/cluster-sim.test.ts`;
}

/** One simulated node: what survives a crash (its data dir: Raft storage, left marker) and
 * what does not (the process and the RdbnetNode it runs). */
interface SimNode {
  readonly id: string;
  readonly index: number;
  readonly address: string;
  readonly storage: MemoryStorage;
  readonly dataDir: SimDataDir;
  /** The running node; null once it stops or is killed (even while a stop is under way). */
  rdbnet: RdbnetNode | null;
  /** Its cluster service (the process's), for the invariants; null when not running. */
  cluster: ClusterService | null;
  /** The process, until it has fully stopped or was killed. */
  process: SimNodeProcess | null;
  incarnation: number;
  /** Left its cluster at its own request (the node stopped). */
  left: boolean;
}

/** `rdbnet node start --insecure --id <id> --listen <address> --cluster sim-cluster` with
 * --join and --bootstrap-expect as given, lan preset, and 30 s for a bootstrap. */
function simNodeConfig(
  node: SimNode,
  seeds: readonly string[] | undefined,
  bootstrapExpect: number | undefined,
): NodeConfig {
  const config = resolveNodeConfig(
    {
      id: node.id,
      cluster: CLUSTER_NAME,
      insecure: true,
      listen: node.address,
      dataDir: `/sim/${node.id}`,
      bootstrapWaitMs: 30_000,
      logLevel: 'warn',
    },
    {},
    {},
  );
  return { ...config, join: seeds === undefined ? undefined : [...seeds], bootstrapExpect };
}

class SimCluster {
  readonly seed: number;
  readonly queue = new EventQueue();
  readonly random: Random;
  readonly udp: SimNetwork<Uint8Array>;
  readonly tcp: SimNetwork<SimPeerPacket>;
  readonly datagrams: SimDatagrams;
  readonly peers: SimPeerNetwork;
  readonly nodes: SimNode[] = [];
  readonly trace: string[] = [];
  readonly keyring = new Keyring(new Uint8Array(32).fill(7));
  readonly operator: PeerTransport;

  // ---- what the invariants remember across the run
  private clusterIdEver = '';
  private readonly leaderOfTerm = new Map<number, string>();
  /** Every committed log index seen on any node → the term of its entry. */
  private readonly committedTerm = new Map<number, number>();
  private committedMax = 0;
  /** Per node (and incarnation of its storage, which a restart keeps): checked up to. */
  private readonly checkedUpTo = new Map<string, number>();

  constructor(seed: number) {
    this.seed = seed;
    this.random = seededRandom(seed);
    this.udp = new SimNetwork(this.queue, this.random, UDP_FAULTS, (bytes) => bytes.length);
    this.tcp = new SimNetwork(this.queue, this.random, TCP_FAULTS, simPeerPacketBytes);
    this.datagrams = new SimDatagrams(this.udp);
    this.peers = new SimPeerNetwork(this.tcp, this.queue);
    // An operator's client certificate (role admin): what `rdbnet cluster …` connects with.
    this.operator = this.peers.attach(
      '127.0.0.250:50000',
      { id: 'operator', role: 'client', authenticated: true, clientRole: 'admin' },
      null,
    );
  }

  get now(): number {
    return this.queue.nowMs();
  }

  note(line: string): void {
    this.trace.push(`${this.now.toFixed(0)} ${line}`);
  }

  newNode(): SimNode {
    const index = this.nodes.length + 1;
    const storage = new MemoryStorage();
    const node: SimNode = {
      id: `n${index}`,
      index,
      address: `127.0.0.${index}:${PORT}`,
      storage,
      dataDir: { storage, leftMarker: memoryLeftMarker(), locked: false },
      rdbnet: null,
      cluster: null,
      process: null,
      incarnation: 0,
      left: false,
    };
    this.nodes.push(node);
    return node;
  }

  running(): SimNode[] {
    return this.nodes.filter((node) => node.rdbnet !== null);
  }

  /** Starts `node` as `rdbnet node start --join seeds [--bootstrap-expect N]` would. */
  async start(
    node: SimNode,
    seeds: readonly string[] | undefined,
    bootstrapExpect?: number,
  ): Promise<void> {
    assert.equal(node.process, null, `${node.id} is already running`);
    node.incarnation += 1;
    const { id, address } = node;
    this.udp.setDown(address, false);
    this.tcp.setDown(address, false);
    const log = createLogger({
      level: 'warn',
      format: 'json',
      // Virtual wall time: a replay writes the same lines.
      now: () => this.queue.wallMs(),
      write: (line) => this.note(`${id} log ${line.trim()}`),
    });
    const process = new SimNodeProcess({
      id,
      address,
      pid: node.index * 1000 + node.incarnation,
      queue: this.queue,
      random: seededRandom(
        (this.seed ^
          Math.imul(node.index, 0x9e37_79b9) ^
          Math.imul(node.incarnation, 0x85eb_ca6b)) >>>
          0,
      ),
      peers: this.peers,
      datagrams: this.datagrams,
      dataDir: node.dataDir,
      keyring: this.keyring,
    });
    node.process = process;
    let rdbnet: RdbnetNode;
    try {
      rdbnet = await RdbnetNode.start(simNodeConfig(node, seeds, bootstrapExpect), log, {
        environment: process.environment,
      });
    } catch (error) {
      // Refused (a node that left): the process exits before it listens.
      await process.kill();
      node.process = null;
      throw error;
    }
    node.rdbnet = rdbnet;
    node.cluster = process.cluster;
    const incarnation = node.incarnation;
    rdbnet.left.then(() => {
      if (node.incarnation !== incarnation || node.rdbnet !== rdbnet) return;
      // The node stops once it has left, as `rdbnet node start` does.
      this.note(`${id} left; stopping`);
      node.left = true;
      void this.stop(node, 'graceful');
    });
    rdbnet.failed.then((error) => {
      if (node.incarnation !== incarnation || node.rdbnet !== rdbnet) return;
      this.note(`${id} failed: ${error.message}`);
      void this.stop(node, 'graceful');
    });
    this.note(`${id} started (incarnation ${incarnation}) seeds=${(seeds ?? []).join(',')}`);
  }

  /** kill -9 (`crash`: none of its code runs again) or the node stopping by itself (its own
   * RdbnetNode.stop, which needs the simulation running: gossip's leave is bounded in time). */
  async stop(node: SimNode, how: 'crash' | 'graceful'): Promise<void> {
    const { rdbnet, process } = node;
    if (rdbnet === null || process === null) return;
    node.rdbnet = null;
    node.cluster = null;
    if (how === 'crash') {
      this.udp.setDown(node.address, true);
      this.tcp.setDown(node.address, true);
    } else {
      await rdbnet.stop();
      assert.equal(rdbnet.state, 'stopped', `seed ${this.seed}: ${node.id} stopped`);
    }
    await process.kill();
    if (node.process === process) node.process = null;
    this.note(`${node.id} ${how === 'crash' ? 'killed' : 'stopped'}`);
  }

  /** An operator request, through the node's adminHandler (as `rdbnet cluster …`). */
  ask<K extends RequestKind>(
    node: SimNode,
    kind: K,
    body: Parameters<typeof request<K>>[2],
    timeoutMs = 20_000,
  ): Promise<ReplyBody<K>> {
    return request(peerSender(this.operator, node.address), kind, body, timeoutMs);
  }

  /** Runs `ask` to its end in virtual time (bounded), checking invariants all along. */
  async settle<T>(what: string, promise: Promise<T>, maxMs = CONVERGE_MAX_MS): Promise<T> {
    let outcome: { value: T } | { error: unknown } | undefined;
    promise.then(
      (value) => {
        outcome = { value };
      },
      (error: unknown) => {
        outcome = { error };
      },
    );
    await this.runUntil(what, () => outcome !== undefined, maxMs);
    if (outcome !== undefined && 'error' in outcome) throw outcome.error;
    return (outcome as { value: T }).value;
  }

  /** Runs the simulation for `ms`, checking the invariants after every event. */
  async runFor(ms: number): Promise<void> {
    await this.queue.runForAsync(ms, () => {
      this.checkInvariants();
      return false;
    });
  }

  /** Runs until `done` (bounded by `maxMs` of virtual time), invariants after every event. */
  async runUntil(what: string, done: () => boolean, maxMs = CONVERGE_MAX_MS): Promise<void> {
    const reached = await this.queue.runForAsync(maxMs, () => {
      this.checkInvariants();
      return done();
    });
    if (!reached) this.failWith(`${what}: not within ${maxMs} virtual ms`);
  }

  failWith(message: string): never {
    assert.fail(
      `seed ${this.seed}: ${message}\n${this.describe()}\n${this.trace.slice(-40).join('\n')}`,
    );
  }

  describe(): string {
    return this.nodes
      .map((node) => {
        const driver = node.cluster === null ? null : driverOf(node.cluster);
        if (node.cluster === null) return `${node.id}: down${node.left ? ' (left)' : ''}`;
        if (driver === null) return `${node.id}: ${node.cluster.state}`;
        const status = driver.status();
        return `${node.id}: ${node.cluster.state} ${status.role} term ${status.term} leader ${driver.leader} commit ${status.commit} voters ${[...driver.config.voters].sort().join(',')} learners ${[...driver.config.learners].sort().join(',')}`;
      })
      .join('\n');
  }

  // ---------------------------------------------------------------- invariants

  checkInvariants(): void {
    for (const node of this.nodes) {
      const cluster = node.cluster;
      if (cluster === null) continue;
      // One cluster id ever.
      const clusterId = cluster.clusterId;
      if (clusterId !== '') {
        if (this.clusterIdEver === '') this.clusterIdEver = clusterId;
        else if (clusterId !== this.clusterIdEver) {
          this.failWith(`${node.id} is in cluster ${clusterId}, not ${this.clusterIdEver}`);
        }
      }
      const driver = driverOf(cluster);
      if (driver === null) continue;
      // At most one leader per term.
      if (driver.isLeader) {
        const term = driver.term;
        const leader = this.leaderOfTerm.get(term);
        if (leader === undefined) this.leaderOfTerm.set(term, node.id);
        else if (leader !== node.id)
          this.failWith(`two leaders in term ${term}: ${leader} and ${node.id}`);
      }
      // No committed configuration entry lost: a committed index always holds the entry of
      // the same term, on every node, for the whole run (restarts included).
      const storage = node.storage;
      const commit = storage.hardStateNow().commit;
      const from = Math.max(this.checkedUpTo.get(node.id) ?? 0, storage.firstIndex() - 1);
      for (let index = from + 1; index <= commit; index++) {
        const term = storage.term(index);
        if (term === undefined) continue;
        const known = this.committedTerm.get(index);
        if (known === undefined) {
          this.committedTerm.set(index, term);
          this.noteEntry(storage, index);
        } else if (known !== term) {
          this.failWith(`${node.id} holds term ${term} at committed index ${index}, was ${known}`);
        }
      }
      this.checkedUpTo.set(node.id, Math.max(from, commit));
      this.committedMax = Math.max(this.committedMax, commit);
      // A node that left never counts toward quorum: once a member has applied its removal,
      // it is neither a voter nor a learner there again.
      for (const [gone, removedAt] of this.removedAt) {
        const config = driver.config;
        if (
          config.appliedIndex >= removedAt &&
          (config.voters.has(gone) || config.learners.has(gone))
        ) {
          this.failWith(`${node.id} applied ${gone}'s removal (index ${removedAt}) yet counts it`);
        }
      }
    }
    for (const node of this.nodes) {
      if (node.left && node.cluster !== null && node.cluster.state !== 'left') {
        this.failWith(`${node.id} left but runs as ${node.cluster.state}`);
      }
    }
  }

  /** Notes a committed removal (to check no member counts the node again). */
  private noteEntry(storage: MemoryStorage, index: number): void {
    const [entry] = storage.entries(index, index + 1, Number.MAX_SAFE_INTEGER);
    if (entry === undefined || entry.type !== 'confChange') return;
    const change = decodeConfChange(entry.data);
    if (change.type === 'removeNode' && !this.removedAt.has(change.nodeId)) {
      this.removedAt.set(change.nodeId, index);
    }
  }

  /** Committed removals: node id → the index of its removal entry. */
  readonly removedAt = new Map<string, number>();

  /** Every node that left had its removal committed. */
  checkLeftRemoved(): void {
    for (const node of this.nodes) {
      if (node.left && !this.removedAt.has(node.id))
        this.failWith(`${node.id} left without a committed removal`);
    }
  }

  /** The leader's log holds every index ever committed (leader completeness, at the end). */
  checkNothingLost(): void {
    const leader = this.running().find((node) => driverOf(node.cluster!)?.isLeader === true);
    if (leader === undefined) this.failWith('no leader to check the log of');
    const storage = leader.storage;
    if (storage.lastIndex() < this.committedMax) {
      this.failWith(
        `leader ${leader.id} ends at index ${storage.lastIndex()}, ${this.committedMax} was committed`,
      );
    }
    for (const [index, term] of this.committedTerm) {
      const held = storage.term(index);
      if (held !== undefined && held !== term) {
        this.failWith(`leader ${leader.id} holds term ${held} at committed ${index}, was ${term}`);
      }
    }
  }

  // ---------------------------------------------------------------- convergence

  /** One leader all running members follow, the same configuration applied everywhere,
   * `voters` exactly the voters, no learners, and gossip alive among them. */
  converged(voters: readonly string[]): boolean {
    const members = this.running();
    if (members.length !== voters.length) return false;
    let leader = '';
    let applied = -1;
    for (const node of members) {
      const driver = driverOf(node.cluster!);
      if (driver === null || node.cluster!.state !== 'member') return false;
      if (driver.leader === '' || (leader !== '' && driver.leader !== leader)) return false;
      leader = driver.leader;
      const config = driver.config;
      if (config.learners.size !== 0 || config.voters.size !== voters.length) return false;
      for (const id of voters) if (!config.voters.has(id)) return false;
      if (applied !== -1 && config.appliedIndex !== applied) return false;
      applied = config.appliedIndex;
      if (driver.status().commit !== config.appliedIndex) return false;
      const gossip = node.rdbnet!.membership?.members().members ?? [];
      for (const other of members) {
        const seen = gossip.find((member) => member.id === other.id);
        if (seen?.state !== 'alive') return false;
      }
    }
    return members.some((node) => node.id === leader);
  }

  async converge(what: string, voters: readonly string[]): Promise<void> {
    await this.runUntil(`${what}: converge to voters ${voters.join(',')}`, () =>
      this.converged(voters),
    );
    this.checkNothingLost();
    // Every member answers `cluster status` (through adminHandler) with the same leader.
    const leaders = new Set<string>();
    for (const node of this.running()) {
      const status = await this.settle(
        `${node.id} status`,
        this.ask(node, 'clusterStatusRequest', { localOnly: false }),
      );
      assert.equal(status.clusterId, this.clusterIdEver, `seed ${this.seed}: status cluster id`);
      leaders.add(status.leader);
    }
    assert.equal(leaders.size, 1, `seed ${this.seed}: status names one leader (${[...leaders]})`);
    await this.checkNodeAnswers(voters);
    this.note(`converged: ${what}`);
  }

  /**
   * What every running node answers about itself over the admin API (`node status`,
   * `health`, `members`), once converged, against the Raft state: it runs, in this cluster,
   * at its address; its health sees every voter alive and a quorum; its gossip lists every
   * voter alive.
   */
  async checkNodeAnswers(voters: readonly string[]): Promise<void> {
    for (const node of this.running()) {
      const status = await this.settle(
        `${node.id} node status`,
        this.ask(node, 'statusRequest', {}),
      );
      const seen = `seed ${this.seed}: ${node.id}`;
      assert.deepEqual(
        [status.id, status.state, status.address, status.clusterId, status.tls],
        [node.id, 'running', node.address, CLUSTER_NAME, false],
        `${seen} node status`,
      );
      const health = await this.settle(`${node.id} health`, this.ask(node, 'healthRequest', {}));
      const problems = health.nodes.flatMap((entry) => entry.problems);
      assert.ok(health.quorum, `${seen} health reports no quorum: ${problems.join('; ')}`);
      for (const id of voters) {
        const entry = health.nodes.find((candidate) => candidate.id === id);
        assert.ok(
          entry?.state === 'alive' && entry.ready,
          `${seen} health: voter ${id} is ${entry?.state ?? 'absent'} (${problems.join('; ')})`,
        );
      }
      const members = await this.settle(`${node.id} members`, this.ask(node, 'membersRequest', {}));
      for (const id of voters) {
        const member = members.members.find((candidate) => candidate.id === id);
        assert.equal(member?.state, 'alive', `${seen} members: voter ${id}`);
      }
    }
  }

  leader(): SimNode {
    const leader = this.running().find((node) => driverOf(node.cluster!)?.isLeader === true);
    if (leader === undefined) this.failWith('no leader');
    return leader;
  }

  async closeAll(): Promise<void> {
    for (const node of this.nodes) await this.stop(node, 'crash');
  }

  pick<T>(list: readonly T[]): T {
    return list[this.random.int(list.length)]!;
  }

  shuffled<T>(list: readonly T[]): T[] {
    const out = [...list];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.random.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

/** The service's Raft driver, read for the invariants only (null while not a member). */
function driverOf(cluster: ClusterService): RaftDriver | null {
  return cluster.raftDriver;
}

// -------------------------------------------------------------------------- scenarios

const FOUNDERS = 3;

/** Three nodes with --bootstrap-expect 3, each knowing the others, started in a random
 * order at random moments; or (`viaOperator`) started with --join only, and an operator's
 * `cluster bootstrap --expect 3` sent to a random one of them. */
async function foundThree(sim: SimCluster, viaOperator: boolean, cutOffMs = 0): Promise<SimNode[]> {
  const nodes = Array.from({ length: FOUNDERS }, () => sim.newNode());
  // `cutOffMs`: one node starts cut off from the others for that long.
  if (cutOffMs > 0) {
    const cut = sim.pick(nodes);
    const groups = [[cut.address], nodes.filter((n) => n !== cut).map((n) => n.address)];
    sim.udp.partition(groups);
    sim.tcp.partition(groups);
    sim.note(`${cut.id} cut off for ${cutOffMs} ms`);
    sim.queue.setTimer(cutOffMs, () => {
      sim.udp.heal();
      sim.tcp.heal();
      sim.note('healed');
    });
  }
  for (const node of sim.shuffled(nodes)) {
    const seeds = nodes.filter((other) => other !== node).map((other) => other.address);
    await sim.start(node, seeds, viaOperator ? undefined : FOUNDERS);
    await sim.runFor(sim.random.int(3000));
  }
  if (viaOperator) {
    const target = sim.pick(nodes);
    const reply = await sim.settle(
      'cluster bootstrap',
      sim.ask(target, 'clusterBootstrapRequest', { expect: FOUNDERS, waitMs: 30_000 }),
    );
    assert.equal(reply.members.length, FOUNDERS, `seed ${sim.seed}: bootstrap reply members`);
  }
  await sim.converge('founded', ids(nodes));
  return nodes;
}

/** Nodes in bootstrap-expect formation: many more than the founders expected. */
const FORMATION_NODES = 20;

/** FORMATION_NODES nodes, each given every other address and --bootstrap-expect 3, started
 * within a second, over links slow enough (up to 1.5 s) that each sees a different part of
 * the others first; one cluster must form (the invariants fail on a second cluster id). */
async function formTwenty(sim: SimCluster): Promise<void> {
  sim.tcp.setFaults({ delayMinMs: 1, delayMaxMs: 1500 });
  sim.udp.setFaults({ delayMinMs: 1, delayMaxMs: 1500 });
  const nodes = Array.from({ length: FORMATION_NODES }, () => sim.newNode());
  for (const node of sim.shuffled(nodes)) {
    const seeds = nodes.filter((other) => other !== node).map((other) => other.address);
    await sim.start(node, seeds, FOUNDERS);
    await sim.runFor(sim.random.int(50));
  }
  await sim.runUntil(
    `${FORMATION_NODES} nodes members of one cluster`,
    () => nodes.every((node) => node.cluster?.state === 'member'),
    CONVERGE_MAX_MS * 2,
  );
}

/** Nodes in the formation whose links stall at start. */
const STALLED_NODES = 8;
/** How long no node-to-node connection gets through at start: longer than gossip's join
 * attempts last (8, backing off from 250 ms to 5 s: about 20 s). */
const STALL_MS = 30_000;

/**
 * STALLED_NODES nodes, each given every other address and --bootstrap-expect 3, started
 * together while no node-to-node stream gets through (TLS handshakes timing out on an
 * overloaded machine) for STALL_MS; UDP works. Once streams get through, one cluster must
 * form with every node a member.
 */
async function formAfterStall(sim: SimCluster): Promise<void> {
  const nodes = Array.from({ length: STALLED_NODES }, () => sim.newNode());
  sim.tcp.partition(nodes.map((node) => [node.address]));
  sim.note(`streams stalled for ${STALL_MS} ms`);
  sim.queue.setTimer(STALL_MS, () => {
    sim.tcp.heal();
    sim.note('streams get through');
  });
  for (const node of sim.shuffled(nodes)) {
    const seeds = nodes.filter((other) => other !== node).map((other) => other.address);
    await sim.start(node, seeds, FOUNDERS);
  }
  await sim.runUntil(
    `${STALLED_NODES} nodes members of one cluster after a ${STALL_MS} ms stall`,
    () => nodes.every((node) => node.cluster?.state === 'member'),
    STALL_MS + CONVERGE_MAX_MS,
  );
}

function ids(nodes: readonly SimNode[]): string[] {
  return nodes.map((node) => node.id);
}

const scenarios: Record<ScenarioName, (sim: SimCluster) => Promise<void>> = {
  async 'bootstrap-expect-any-order'(sim) {
    const viaOperator = sim.random.int(2) === 1;
    // Half the seeds start one node cut off for up to 10 s (bootstrap waits for it).
    const cutOffMs = sim.random.int(2) === 1 ? 1 + sim.random.int(10_000) : 0;
    const nodes = await foundThree(sim, viaOperator, cutOffMs);
    await sim.runFor(2000);
    assert.ok(sim.converged(ids(nodes)), `seed ${sim.seed}: stays converged`);
  },

  async 'join-during-partition'(sim) {
    const nodes = await foundThree(sim, false);
    const joiner = sim.newNode();
    const seed = sim.pick(nodes);
    // The joiner and its seed on one side, the other two on the other.
    const minority = [seed.address, joiner.address];
    const majority = nodes.filter((node) => node !== seed).map((node) => node.address);
    sim.udp.partition([minority, majority]);
    sim.tcp.partition([minority, majority]);
    sim.note(`partition ${minority.join(',')} | ${majority.join(',')}`);
    await sim.start(joiner, [seed.address]);
    await sim.runFor(2000 + sim.random.int(8000));
    sim.udp.heal();
    sim.tcp.heal();
    sim.note('healed');
    await sim.converge('joined after the partition', [...ids(nodes), joiner.id]);
  },

  async 'leader-kill-restart'(sim) {
    const nodes = await foundThree(sim, false);
    const leader = sim.leader();
    // Half the seeds kill the leader while a fourth node is joining (a membership change in
    // flight, maybe proposed, maybe committed, maybe neither).
    const joiner = sim.random.int(2) === 1 ? sim.newNode() : undefined;
    if (joiner !== undefined) {
      await sim.start(joiner, [sim.pick(nodes).address]);
      await sim.runFor(sim.random.int(3000));
    }
    await sim.stop(leader, 'crash');
    const survivors = sim.running();
    await sim.runUntil('a new leader among the survivors', () =>
      survivors.some((node) => driverOf(node.cluster!)?.isLeader === true),
    );
    await sim.runFor(sim.random.int(5000));
    // Restart: a new process on the same storage, seeded from its configuration.
    await sim.start(leader, []);
    const all = joiner === undefined ? nodes : [...nodes, joiner];
    await sim.converge('restarted the killed leader', ids(all));
    // Leadership back to it, as an operator would ask (through any member).
    const via = sim.pick(all);
    const reply = await sim.settle(
      'transfer-leader',
      sim.ask(via, 'transferLeaderRequest', { to: leader.id, forwarded: false }),
    );
    assert.equal(reply.leader, leader.id, `seed ${sim.seed}: transfer-leader`);
    await sim.converge('leadership transferred', ids(all));
  },

  async 'leader-leaves'(sim) {
    const nodes = await foundThree(sim, false);
    const leader = sim.leader();
    const reply = await sim.settle(
      'cluster leave',
      sim.ask(leader, 'leaveRequest', { force: false }),
    );
    assert.deepEqual({ ...reply }, { left: true, id: leader.id }, `seed ${sim.seed}: leave reply`);
    await sim.runUntil('the leaver stopped', () => leader.process === null);
    const stay = nodes.filter((node) => node !== leader);
    await sim.converge('after the leader left', ids(stay));
    sim.checkLeftRemoved();
    // Its storage (data dir) is refused from now on.
    await assert.rejects(
      sim.start(leader, []),
      (error: unknown) => isRdbnetError(error, ErrorCode.ConfigInvalid),
      `seed ${sim.seed}: a node that left cannot start on its storage again`,
    );
    await sim.runFor(3000);
    assert.ok(sim.converged(ids(stay)), `seed ${sim.seed}: stays converged without the leaver`);
  },

  async 'learner-promotion-under-loss'(sim) {
    const nodes = await foundThree(sim, false);
    const lossRate = 0.1 + sim.random.int(20) / 100;
    sim.tcp.setFaults({ dropRate: lossRate });
    sim.note(`tcp loss ${lossRate}`);
    const joiner = sim.newNode();
    // A node waiting with no seeds, told where to join by the operator (`cluster join`).
    await sim.start(joiner, []);
    // The operator runs `cluster join` again while it fails (its request, or the reply, may
    // be lost); a node that is a member already answers RDB_CLUSTER_EXISTS.
    const seedAddress = sim.pick(nodes).address;
    const operatorJoin = async (): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          await sim.ask(
            joiner,
            'clusterJoinRequest',
            { seeds: [seedAddress], waitMs: 10_000 },
            12_000,
          );
          return;
        } catch (error) {
          if (isRdbnetError(error, ErrorCode.ClusterExists)) return;
          sim.note(`cluster join attempt ${attempt}: ${(error as Error).message}`);
          if (attempt >= 10) throw error;
        }
      }
    };
    const joined = operatorJoin();
    await sim.runFor(5000 + sim.random.int(10_000));
    sim.tcp.setFaults({ dropRate: 0 });
    sim.note('loss healed');
    await sim.settle('cluster join answered', joined, 130_000);
    await sim.converge('learner promoted', [...ids(nodes), joiner.id]);
  },

  async 'full-cluster-restart'(sim) {
    const nodes = await foundThree(sim, false);
    for (const node of nodes) await sim.stop(node, 'crash');
    await sim.runFor(1000 + sim.random.int(3000));
    for (const node of sim.shuffled(nodes)) {
      await sim.start(node, []);
      await sim.runFor(sim.random.int(4000));
    }
    await sim.converge('restarted the whole cluster', ids(nodes));
  },
};

async function runSeed(seed: number): Promise<SimCluster> {
  const sim = new SimCluster(seed);
  const name = SCENARIOS[seed % SCENARIOS.length]!;
  sim.note(`scenario ${name}`);
  try {
    await scenarios[name](sim);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `${name} failed (seed ${seed}); replay with:\n  ${replayCommand(seed)}\n${message}`,
      {
        cause: error,
      },
    );
  } finally {
    await sim.closeAll();
  }
  return sim;
}

describe('whole RdbnetNodes on the simulator', () => {
  if (REPLAY_SEED !== undefined) {
    test(`replay seed ${REPLAY_SEED}`, async () => {
      const sim = await runSeed(Number(REPLAY_SEED));
      console.log(sim.trace.join('\n'));
    });
    return;
  }

  // Found by the sweep: `cluster leave` on the leader handed leadership over, then the new
  // leader refused the removal with RDB_QUORUM_AT_RISK because no Raft batch of the third
  // voter had reached it yet (followers do not talk to each other), though all three ran.
  test('seed 27: a leader leaves right after handing leadership over (regression)', async () => {
    await runSeed(27);
  });

  test('a seed replays to the same trace', async () => {
    // Seed 2 logs warnings (a dead voter removed): their lines must replay too.
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const first = await runSeed(seed);
      const second = await runSeed(seed);
      assert.deepEqual(second.trace, first.trace, `seed ${seed}: replay differs`);
    }
  });

  // Found by bench:discovery (20 nodes, --bootstrap-expect 3, on a loaded machine): a node
  // saw itself lowest among the few peers it knew, bootstrapped, then took lower ids it had
  // learnt of since as voters; others did the same with other trios, and several clusters were
  // founded, after which pending nodes refused to pick one. Slow links give partial views.
  test('twenty nodes with --bootstrap-expect 3 and slow links found one cluster (regression)', async () => {
    for (const seed of [1, 2, 3]) {
      const sim = new SimCluster(seed);
      try {
        await formTwenty(sim);
      } finally {
        await sim.closeAll();
      }
    }
  });

  // Found by bench:discovery (10 and 20 nodes on a loaded machine): TLS handshakes timed out
  // for the first 20 s, every node's gossip join gave up after its 8 attempts, and gossip
  // stayed in islands of one or two nodes although the peer exchange later found everyone;
  // with nobody alive in gossip no bootstrap could start and no join be admitted.
  test('nodes whose links stall at start still form one cluster (regression)', async () => {
    for (const seed of [1, 2]) {
      const sim = new SimCluster(seed);
      try {
        await formAfterStall(sim);
      } finally {
        await sim.closeAll();
      }
    }
  });

  // The sweep in tests of SEEDS_PER_TEST seeds: each stays far below the suite's per-test
  // timeout (npm test's 300 s) on a loaded machine, and a failure names its range.
  const last = FIRST_SEED + SEEDS - 1;
  for (let from = FIRST_SEED; from <= last; from += SEEDS_PER_TEST) {
    const to = Math.min(from + SEEDS_PER_TEST - 1, last);
    test(`seeds ${from}..${to}: every scenario, invariants after every event`, async () => {
      const startedMs = performance.now();
      for (let seed = from; seed <= to; seed++) await runSeed(seed);
      const elapsedS = (performance.now() - startedMs) / 1000;
      console.log(`cluster-sim: seeds ${from}..${to} in ${elapsedS.toFixed(1)} s`);
    });
  }
});
