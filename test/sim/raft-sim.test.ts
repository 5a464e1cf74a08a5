/**
 * Deterministic simulation of Raft groups: RawNode + MemoryStorage per node, messages on
 * SimNetwork, everything driven by one EventQueue and one seed. Each run draws its own fault
 * profile (loss, duplication, delay spread that reorders, partitions, crashes with restarts
 * from the persisted part of storage, slow disks) and random proposals and membership
 * changes, and checks the Raft safety properties after every event:
 *
 * - election safety: at most one leader per term, ever;
 * - log matching: two entries with the same index and term have the same content and the
 *   same predecessor term (which, by induction, makes the whole prefixes equal);
 * - leader completeness: a new leader of term T holds every entry committed before T;
 * - state-machine safety: no two nodes apply different entries at one index (checked on
 *   every apply and on every snapshot restore through a digest chain);
 * - committed entries are never lost: never overwritten in any node's durable log, and
 *   after healing every member applies all of them (liveness check at the end of the run).
 *
 * RAFT_SIM_RUNS=<n> runs more (or fewer) seeds; RAFT_SEED=<n> replays one run. Every
 * failure message names the seed.
 */
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { RaftConfig } from '../../src/core/membership/raft/config.ts';
import { RaftProposalError } from '../../src/core/membership/raft/raft.ts';
import { RawNode } from '../../src/core/membership/raft/raw-node.ts';
import { MemoryStorage, persistReady } from '../../src/core/membership/raft/storage.ts';
import type {
  ConfChange,
  Entry,
  Message,
  Ready,
  Snapshot,
} from '../../src/core/membership/raft/types.ts';
import { entryBytes } from '../../src/core/membership/raft/types.ts';
import { type Random, seededRandom } from '../../src/core/runtime/index.ts';
import { EventQueue, SimNetwork } from '../../src/core/sim/index.ts';

const TICK_MS = 50;
const RUNS = Number(process.env['RAFT_SIM_RUNS'] ?? 2000);
const REPLAY_SEED = process.env['RAFT_SEED'];
const FAILOVER_TRIALS = 1000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ------------------------------------------------------------------ invariant bookkeeping

function fnv1a(text: string, seed = 0x811c9dc5): number {
  let hash = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

function entryKey(entry: Entry): string {
  return `${entry.term}|${entry.type}|${decoder.decode(entry.data)}`;
}

/** What the toy state machine is: the index it reached and a digest of everything applied. */
interface MachineState {
  index: number;
  digest: number;
}

const BOOTSTRAP_DIGEST = fnv1a('bootstrap');

function encodeMachine(state: MachineState): Uint8Array {
  return encoder.encode(JSON.stringify(state));
}

function decodeMachine(snapshot: Snapshot): MachineState {
  if (snapshot.data.byteLength === 0) {
    return { index: snapshot.metadata.index, digest: BOOTSTRAP_DIGEST };
  }
  return JSON.parse(decoder.decode(snapshot.data)) as MachineState;
}

interface CommittedEntry {
  term: number;
  key: string;
  /** Lowest term at which some node applied it: it was committed at or before that term. */
  observedTerm: number;
}

interface SimNode {
  id: string;
  storage: MemoryStorage;
  raw: RawNode | undefined;
  /** Bumped on crash so that a disk write scheduled before the crash is discarded. */
  incarnation: number;
  /** A Ready is being persisted (slow disk). */
  busy: boolean;
  machine: MachineState;
  lastRole: string;
  lastTerm: number;
  durableCommit: number;
  /** Removed from the configuration by the test; kept running (as a real one would be). */
  removed: boolean;
}

interface Profile {
  voters: number;
  dropRate: number;
  duplicateRate: number;
  delayMaxMs: number;
  diskDelayMaxMs: number;
  crashes: boolean;
  partitions: boolean;
  membership: boolean;
  durationMs: number;
  proposalEveryMs: number;
  config: Partial<RaftConfig>;
}

function drawProfile(random: Random): Profile {
  const pick = <T>(values: readonly T[]): T => values[random.int(values.length)]!;
  return {
    voters: pick([3, 3, 5]),
    dropRate: pick([0, 0.01, 0.05, 0.15]),
    duplicateRate: pick([0, 0.02, 0.1]),
    delayMaxMs: pick([0.3, 5, 40]),
    diskDelayMaxMs: pick([0, 0, 1, 10]),
    crashes: random.next() < 0.7,
    partitions: random.next() < 0.6,
    membership: random.next() < 0.5,
    durationMs: pick([4_000, 8_000]),
    proposalEveryMs: pick([10, 40]),
    config: {
      // Short election timeouts pack more elections (and odd interleavings) into a run.
      electionTicks: pick([3, 5, 10]),
      maxInflightMsgs: pick([2, 16, 256]),
      maxSizePerMsgBytes: pick([64, 4096]),
      maxEntryBytes: 64,
      compactionThresholdEntries: pick([8, 30, 1_000]),
      compactionRetainEntries: pick([0, 5]),
      maxCommittedSizePerReadyBytes: pick([100, 1_000_000]),
    },
  };
}

export interface RunSummary {
  seed: number;
  events: number;
  leaders: number;
  applied: number;
  snapshotsSent: number;
  confChanges: number;
  crashes: number;
}

class Simulation {
  readonly seed: number;
  readonly random: Random;
  readonly profile: Profile;
  readonly queue = new EventQueue();
  readonly net: SimNetwork<Message>;
  readonly nodes = new Map<string, SimNode>();
  private readonly leaderOfTerm = new Map<number, string>();
  private readonly entries = new Map<string, { key: string; prevTerm: number }>();
  private readonly committed = new Map<number, CommittedEntry>();
  private readonly digestAt = new Map<number, number>();
  private proposals = 0;
  private nextNodeNumber = 0;
  private faultsOn = true;
  readonly stats = { leaders: 0, applied: 0, confChanges: 0, crashes: 0 };

  constructor(seed: number, profile?: Profile) {
    this.seed = seed;
    this.random = seededRandom(seed);
    this.profile = profile ?? drawProfile(this.random);
    this.net = new SimNetwork<Message>(
      this.queue,
      this.random,
      {
        dropRate: this.profile.dropRate,
        duplicateRate: this.profile.duplicateRate,
        delayMinMs: 0.1,
        delayMaxMs: this.profile.delayMaxMs,
      },
      (m) => m.entries.reduce((sum, entry) => sum + entryBytes(entry), 64),
    );
    this.digestAt.set(1, BOOTSTRAP_DIGEST);
    const voters = Array.from({ length: this.profile.voters }, (_, i) => String(i + 1));
    for (const id of voters) this.addNode(id, MemoryStorage.bootstrap(voters));
  }

  fail(message: string): never {
    throw new Error(
      `seed=${this.seed} t=${this.queue.clock.nowMs().toFixed(1)}ms: ${message} (replay: RAFT_SEED=${this.seed})`,
    );
  }

  check(condition: unknown, message: () => string): asserts condition {
    if (!condition) this.fail(message());
  }

  addNode(id: string, storage: MemoryStorage): SimNode {
    const node: SimNode = {
      id,
      storage,
      raw: undefined,
      incarnation: 0,
      busy: false,
      machine: { index: 0, digest: 0 },
      lastRole: 'follower',
      lastTerm: 0,
      durableCommit: storage.hardStateNow().commit,
      removed: false,
    };
    this.nodes.set(id, node);
    this.net.register(id, (_from, message) => this.input(node, (raw) => raw.step(message)));
    this.boot(node);
    // Every node ticks on its own phase, as separate machines would.
    this.queue.every(
      TICK_MS,
      () => this.input(node, (raw) => raw.tick()),
      this.random.next() * TICK_MS,
    );
    return node;
  }

  private boot(node: SimNode): void {
    node.raw = new RawNode({
      id: node.id,
      storage: node.storage,
      config: this.profile.config,
      random: seededRandom(this.random.int(2 ** 31)),
    });
    node.busy = false;
    node.machine = decodeMachine(node.storage.snapshot());
    const status = node.raw.basicStatus();
    node.lastRole = status.role;
    node.lastTerm = status.term;
    this.pump(node);
  }

  crash(node: SimNode): void {
    if (node.raw === undefined) return;
    this.stats.crashes++;
    node.raw = undefined;
    node.incarnation++;
    this.net.setDown(node.id, true);
  }

  restart(node: SimNode): void {
    if (node.raw !== undefined) return;
    this.net.setDown(node.id, false);
    this.boot(node);
  }

  /** One input to one node, then the invariants, then its Ready. */
  input(node: SimNode, action: (raw: RawNode) => void): void {
    const raw = node.raw;
    if (raw === undefined) return;
    action(raw);
    this.afterInput(node);
    this.pump(node);
  }

  private afterInput(node: SimNode): void {
    const raw = node.raw!;
    const status = raw.basicStatus();
    if (status.role === 'leader') {
      const holder = this.leaderOfTerm.get(status.term);
      this.check(
        holder === undefined || holder === node.id,
        () => `election safety: ${holder} and ${node.id} both lead term ${status.term}`,
      );
      if (holder === undefined) {
        this.leaderOfTerm.set(status.term, node.id);
        this.stats.leaders++;
        this.checkLeaderCompleteness(node, status.term, status.firstIndex);
      }
    }
    node.lastRole = status.role;
    node.lastTerm = status.term;
  }

  private checkLeaderCompleteness(node: SimNode, term: number, firstIndex: number): void {
    const raw = node.raw!;
    for (const [index, entry] of this.committed) {
      if (entry.observedTerm >= term || index < firstIndex) continue;
      const ours = raw.termAt(index);
      this.check(
        ours === entry.term,
        () =>
          `leader completeness: ${node.id} leads term ${term} with term ${ours} at ${index}, committed term ${entry.term}`,
      );
    }
  }

  /** Starts handling the node's next Ready, on a possibly slow disk. */
  private pump(node: SimNode): void {
    const raw = node.raw;
    if (raw === undefined || node.busy || !raw.hasReady()) return;
    const ready = raw.ready();
    this.checkNewEntries(node, ready.entries);
    node.busy = true;
    const incarnation = node.incarnation;
    const finish = () => {
      // Crashed while writing: this Ready never reached the disk and its messages never left.
      if (node.incarnation !== incarnation || node.raw !== raw) return;
      this.finishReady(node, raw, ready);
    };
    const delay = this.profile.diskDelayMaxMs * this.random.next();
    if (this.profile.diskDelayMaxMs === 0) finish();
    else this.queue.schedule(delay, finish);
  }

  private finishReady(node: SimNode, raw: RawNode, ready: Ready): void {
    this.checkNoCommittedOverwrite(node, ready.entries);
    persistReady(node.storage, ready);
    const durable = node.storage.hardStateNow().commit;
    this.check(durable >= node.durableCommit, () => `${node.id} durable commit went back`);
    node.durableCommit = durable;
    // Only now may the messages leave: they promise that the state above is durable.
    for (const message of ready.messages) this.net.send(node.id, message.to, message);
    if (ready.snapshot !== undefined) this.restoreMachine(node, ready.snapshot);
    for (const entry of ready.committedEntries) this.apply(node, entry, raw);
    raw.advance();
    node.busy = false;
    if (raw.compactionDue()) {
      const index = raw.basicStatus().applied;
      this.check(index === node.machine.index, () => `${node.id} applied index out of sync`);
      raw.compact(index, encodeMachine(node.machine));
    }
    this.afterInput(node);
    this.pump(node);
  }

  /** Log matching, checked on every entry as it is handed out for persisting. */
  private checkNewEntries(node: SimNode, entries: readonly Entry[]): void {
    let prevTerm = entries.length > 0 ? node.raw!.termAt(entries[0]!.index - 1) : 0;
    for (const entry of entries) {
      this.check(
        prevTerm !== undefined,
        () => `${node.id} entry ${entry.index} has no predecessor`,
      );
      const id = `${entry.index}/${entry.term}`;
      const key = entryKey(entry);
      const known = this.entries.get(id);
      if (known === undefined) {
        this.entries.set(id, { key, prevTerm });
      } else {
        this.check(
          known.key === key && known.prevTerm === prevTerm,
          () =>
            `log matching: ${node.id} holds ${id} as ${key} after term ${prevTerm}, elsewhere ${known.key} after term ${known.prevTerm}`,
        );
      }
      prevTerm = entry.term;
    }
  }

  /** A committed entry in a node's durable log may never be replaced or truncated. */
  private checkNoCommittedOverwrite(node: SimNode, entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    for (let index = first; index <= node.storage.lastIndex(); index++) {
      const committed = this.committed.get(index);
      if (committed === undefined || node.storage.term(index) !== committed.term) continue;
      const replacement = entries[index - first];
      this.check(
        replacement !== undefined && replacement.term === committed.term,
        () => `committed entry ${index} (term ${committed.term}) lost from ${node.id}'s log`,
      );
    }
  }

  private restoreMachine(node: SimNode, snapshot: Snapshot): void {
    const state = decodeMachine(snapshot);
    this.check(
      state.index === snapshot.metadata.index,
      () => `${node.id} snapshot data for ${state.index} labelled ${snapshot.metadata.index}`,
    );
    const expected = this.digestAt.get(state.index);
    this.check(
      expected === state.digest,
      () => `state-machine safety: snapshot at ${state.index} restored on ${node.id} diverges`,
    );
    node.machine = state;
  }

  private apply(node: SimNode, entry: Entry, raw: RawNode): void {
    this.check(
      entry.index === node.machine.index + 1,
      () => `${node.id} applied ${entry.index} after ${node.machine.index}`,
    );
    const key = entryKey(entry);
    const term = raw.basicStatus().term;
    const known = this.committed.get(entry.index);
    if (known === undefined) {
      this.committed.set(entry.index, { term: entry.term, key, observedTerm: term });
    } else {
      this.check(
        known.key === key,
        () =>
          `state-machine safety: ${node.id} applied ${key} at ${entry.index}, another node ${known.key}`,
      );
      known.observedTerm = Math.min(known.observedTerm, term);
    }
    const digest = fnv1a(key, node.machine.digest);
    const expected = this.digestAt.get(entry.index);
    if (expected === undefined) this.digestAt.set(entry.index, digest);
    else this.check(expected === digest, () => `state-machine safety: digest at ${entry.index}`);
    node.machine = { index: entry.index, digest };
    this.stats.applied++;
  }

  // ---------------------------------------------------------------- workload and faults

  live(): SimNode[] {
    return [...this.nodes.values()].filter((node) => node.raw !== undefined);
  }

  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    let bestTerm = -1;
    for (const node of this.live()) {
      const status = node.raw!.basicStatus();
      if (status.role === 'leader' && status.term > bestTerm) {
        best = node;
        bestTerm = status.term;
      }
    }
    return best;
  }

  propose(node: SimNode): void {
    const data = encoder.encode(`p${this.proposals++}`);
    this.input(node, (raw) => {
      try {
        raw.propose(data);
      } catch (error) {
        if (!(error instanceof RaftProposalError)) throw error;
      }
    });
  }

  private proposeConfChange(): void {
    const leader = this.leader();
    if (leader === undefined) return;
    const { voters, learners } = leader.raw!.status().config;
    const options: ConfChange[] = [];
    if (voters.length + learners.length < 7) {
      const id = `n${++this.nextNodeNumber}`;
      options.push({ type: 'addLearner', nodeId: id }, { type: 'addVoter', nodeId: id });
    }
    for (const id of learners) options.push({ type: 'promoteLearner', nodeId: id });
    for (const id of learners) options.push({ type: 'removeNode', nodeId: id });
    if (voters.length > 3)
      for (const id of voters) options.push({ type: 'removeNode', nodeId: id });
    const change = options[this.random.int(options.length)]!;
    if (change.type === 'addLearner' || change.type === 'addVoter') {
      if (!this.nodes.has(change.nodeId)) this.addNode(change.nodeId, new MemoryStorage());
    }
    let accepted = true;
    this.input(leader, (raw) => {
      try {
        raw.proposeConfChange(change);
      } catch (error) {
        if (!(error instanceof RaftProposalError)) throw error;
        accepted = false;
      }
    });
    if (accepted) this.stats.confChanges++;
    if (accepted && change.type === 'removeNode') this.nodes.get(change.nodeId)!.removed = true;
  }

  private scheduleWorkload(): void {
    const { profile } = this;
    this.queue.every(
      profile.proposalEveryMs,
      () => {
        const live = this.live();
        if (live.length > 0) this.propose(live[this.random.int(live.length)]!);
      },
      profile.proposalEveryMs,
      () => this.faultsOn,
    );
    if (profile.crashes) {
      this.queue.every(
        250,
        () => {
          if (this.random.next() > 0.3) return;
          // Half the crashes hit the leader: that is where elections race with replication.
          const live = this.live();
          const node =
            this.random.next() < 0.5 ? this.leader() : live[this.random.int(live.length)];
          if (node === undefined) return;
          this.crash(node);
          this.queue.schedule(30 + this.random.next() * 1_500, () => this.restart(node));
        },
        250,
        () => this.faultsOn,
      );
    }
    if (profile.partitions) {
      this.queue.every(
        500,
        () => {
          if (this.random.next() > 0.35) return;
          const a: string[] = [];
          const b: string[] = [];
          const leader = this.leader();
          if (leader !== undefined && this.random.next() < 0.3) {
            // Isolate the leader, with or without one follower.
            for (const id of this.nodes.keys()) (id === leader.id ? a : b).push(id);
          } else {
            for (const id of this.nodes.keys()) (this.random.next() < 0.5 ? a : b).push(id);
          }
          this.net.partition([a, b]);
          this.queue.schedule(100 + this.random.next() * 2_000, () => this.net.heal());
        },
        500,
        () => this.faultsOn,
      );
    }
    if (profile.membership) {
      this.queue.every(
        500,
        () => this.proposeConfChange(),
        900,
        () => this.faultsOn,
      );
    }
  }

  /** The fault phase, then a calm phase in which every member must catch up. */
  run(): RunSummary {
    this.scheduleWorkload();
    this.queue.runFor(this.profile.durationMs, 2_000_000);
    this.faultsOn = false;
    this.net.heal();
    this.net.setFaults({ dropRate: 0, duplicateRate: 0 });
    for (const node of this.nodes.values()) this.restart(node);
    this.checkConvergence();
    return {
      seed: this.seed,
      events: this.queue.eventsRun,
      leaders: this.stats.leaders,
      applied: this.stats.applied,
      snapshotsSent: [...this.nodes.values()].reduce(
        (sum, node) => sum + (node.raw!.status().counters['raft.snapshots_sent'] ?? 0),
        0,
      ),
      confChanges: this.stats.confChanges,
      crashes: this.stats.crashes,
    };
  }

  private checkConvergence(): void {
    // Liveness after healing: a leader emerges and commits a fresh entry, and every member
    // applies everything committed so far (so nothing committed was lost on the way).
    let marker: number | undefined;
    for (let attempt = 0; attempt < 40; attempt++) {
      this.queue.runFor(250, 2_000_000);
      const leader = this.leader();
      if (leader === undefined) continue;
      if (marker === undefined) {
        const before = this.proposals;
        this.propose(leader);
        marker = before;
        continue;
      }
      const commit = leader.raw!.basicStatus().commit;
      const members = leader.raw!.status().config;
      const ids = [...members.voters, ...members.learners];
      const markerKey = `|normal|p${marker}`;
      const markerCommitted = [...this.committed.values()].some((entry) =>
        entry.key.endsWith(markerKey),
      );
      if (!markerCommitted) {
        marker = undefined;
        continue;
      }
      const caughtUp = ids.every((id) => (this.nodes.get(id)?.machine.index ?? -1) >= commit);
      if (caughtUp) {
        const top = Math.max(...this.committed.keys());
        this.check(commit >= top, () => `leader commit ${commit} below applied index ${top}`);
        for (const id of ids) {
          const node = this.nodes.get(id)!;
          this.check(
            this.digestAt.get(node.machine.index) === node.machine.digest,
            () => `${id} converged to a different state`,
          );
        }
        return;
      }
    }
    const states = [...this.nodes.values()]
      .map((node) => {
        const s = node.raw!.basicStatus();
        return `${node.id}:${s.role}/t${s.term}/c${s.commit}/a${node.machine.index}${node.removed ? '/removed' : ''}`;
      })
      .join(' ');
    this.fail(`no convergence within 10 s after healing: ${states}`);
  }
}

export function runSeed(seed: number): RunSummary {
  return new Simulation(seed).run();
}

// ------------------------------------------------------------------ failover measurement

/** Virtual ms from killing a settled leader to another node winning an election. */
function measureFailover(seed: number): number {
  const random = seededRandom(seed);
  const profile: Profile = {
    voters: 3,
    dropRate: 0,
    duplicateRate: 0,
    delayMaxMs: 0.25,
    diskDelayMaxMs: 0,
    crashes: false,
    partitions: false,
    membership: false,
    durationMs: 0,
    proposalEveryMs: 0,
    config: {},
  };
  const sim = new Simulation(random.int(2 ** 31), profile);
  sim.net.setFaults({ delayMinMs: 0.15, delayMaxMs: 0.25 });
  let leader: SimNode | undefined;
  for (let i = 0; i < 100 && leader === undefined; i++) {
    sim.queue.runFor(100);
    leader = sim.leader();
  }
  assert.ok(leader !== undefined, `seed=${seed}: no initial leader`);
  // Let it settle, then kill it at an arbitrary point within a tick.
  sim.queue.runFor(1_000 + random.next() * TICK_MS);
  const oldTerm = leader.raw!.basicStatus().term;
  sim.crash(leader);
  const killedAt = sim.queue.clock.nowMs();
  for (let i = 0; i < 10_000; i++) {
    sim.queue.runFor(1);
    const next = sim.leader();
    if (next !== undefined && next.raw!.basicStatus().term > oldTerm) {
      return sim.queue.clock.nowMs() - killedAt;
    }
  }
  assert.fail(`seed=${seed}: no new leader 10 s after killing the old one`);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

// ------------------------------------------------------------------ test entry points

interface WorkerRequest {
  seeds: number[];
}

interface WorkerReply {
  summaries: RunSummary[];
  failure?: string;
}

if (!isMainThread) {
  const { seeds } = workerData as WorkerRequest;
  const summaries: RunSummary[] = [];
  let failure: string | undefined;
  for (const seed of seeds) {
    try {
      summaries.push(runSeed(seed));
    } catch (error) {
      failure = error instanceof Error ? (error.stack ?? error.message) : String(error);
      if (!failure.includes(`seed=${seed}`)) failure = `seed=${seed}: ${failure}`;
      break;
    }
  }
  parentPort!.postMessage({ summaries, failure } satisfies WorkerReply);
} else if (REPLAY_SEED !== undefined) {
  test(`raft simulation replay of seed ${REPLAY_SEED}`, () => {
    const summary = runSeed(Number(REPLAY_SEED));
    console.log(JSON.stringify(summary));
  });
} else {
  test(`raft simulation: ${RUNS} seeded runs keep every safety invariant`, async () => {
    const started = performance.now();
    const workers = Math.max(1, Math.min(availableParallelism(), 4));
    const seeds = Array.from({ length: RUNS }, (_, i) => i + 1);
    const shares = Array.from({ length: workers }, (_, w) =>
      seeds.filter((_, i) => i % workers === w),
    );
    const replies = await Promise.all(
      shares.map(
        (share) =>
          new Promise<WorkerReply>((resolve, reject) => {
            const worker = new Worker(new URL(import.meta.url), {
              workerData: { seeds: share } satisfies WorkerRequest,
            });
            worker.once('message', resolve);
            worker.once('error', reject);
          }),
      ),
    );
    const failures = replies.flatMap((reply) =>
      reply.failure === undefined ? [] : [reply.failure],
    );
    assert.deepEqual(failures, [], failures.join('\n\n'));
    const summaries = replies.flatMap((reply) => reply.summaries);
    assert.equal(summaries.length, RUNS);
    const total = (key: keyof RunSummary) => summaries.reduce((sum, s) => sum + s[key], 0);
    // The workload must actually exercise what the invariants guard.
    assert.ok(total('leaders') > RUNS, 'too few elections');
    assert.ok(total('applied') > RUNS * 50, 'too few applied entries');
    assert.ok(total('snapshotsSent') > RUNS / 20, 'snapshots were never needed');
    assert.ok(total('confChanges') > RUNS / 4, 'too few membership changes');
    assert.ok(total('crashes') > RUNS / 4, 'too few crashes');
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `raft sim: ${RUNS} runs in ${seconds.toFixed(1)} s on ${workers} workers; ` +
        `${total('events')} events, ${total('leaders')} leaderships, ${total('applied')} applies, ` +
        `${total('snapshotsSent')} snapshots sent, ${total('confChanges')} conf changes, ` +
        `${total('crashes')} crashes`,
    );
  });

  test(`failover: ${FAILOVER_TRIALS} leader kills in a 3-node group (50 ms ticks, ~0.2 ms network)`, () => {
    const samples = Array.from({ length: FAILOVER_TRIALS }, (_, i) => measureFailover(10_000 + i));
    samples.sort((a, b) => a - b);
    const median = percentile(samples, 50);
    const p99 = percentile(samples, 99);
    console.log(
      `raft failover (simulated): median ${median.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms, ` +
        `min ${samples[0]!.toFixed(0)} ms, max ${samples.at(-1)!.toFixed(0)} ms`,
    );
    // Followers wait a randomized [500, 1000) ms after the last heartbeat; a pre-vote and a
    // vote round trip add well under a millisecond on this network.
    assert.ok(
      samples[0]! >= 400,
      `failover faster than the minimum election timeout: ${samples[0]}`,
    );
    assert.ok(median >= 450 && median <= 1_000, `median ${median}`);
    assert.ok(p99 <= 2_000, `p99 ${p99}`);
  });
}
