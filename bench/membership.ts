/**
 * bench:membership — gossip membership (SWIM, default lan preset), loopback only:
 *
 *   real processes  5 and 20 rdbnet nodes (`rdbnet node start`, no bootstrap: gossip only),
 *                   polled over the binary protocol (MembersRequest over mutual TLS); and the
 *                   same scenario with HashiCorp Serf agents (Debian `serf`, LAN defaults),
 *                   observed through their own logs (EventMemberJoin/Failed/Leave lines).
 *                   Per trial: kill -9 one node (→ every survivor says dead / failed), a
 *                   graceful leave of another (→ every survivor says left), and two joins
 *                   (one in quick mode; → every live node sees the joiner alive and the
 *                   joiner sees all).
 *   simulation      the SWIM machine in-process on SimNetwork (as test/sim/swim-sim.test.ts):
 *                   1,000 nodes, 5% loss: crash → dead at 99.9% / 100% of survivors; N
 *                   simulated minutes with one 2 s stall per minute, counting false deads;
 *                   bytes/s per node at 10, 100 and 1,000 nodes.
 *
 * Prints tables and writes bench/results/membership.json. Options (env), with the quick-mode
 * (BENCH_QUICK=1, see harness.ts) value second: MEMBERSHIP_BENCH_TRIALS_5 (3; 1),
 * MEMBERSHIP_BENCH_TRIALS_20 (2; 1), MEMBERSHIP_BENCH_SIZES (5,20; 5), MEMBERSHIP_BENCH_SIM_NODES
 * (1000; 100), MEMBERSHIP_BENCH_SIM_MINUTES (10; 1), MEMBERSHIP_BENCH_SKIP_SERF=1,
 * MEMBERSHIP_BENCH_SKIP_SIM=1. Quick mode also measures one join per trial instead of two and
 * halves the settling pauses between measurements.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { SWIM_LAN } from '../src/core/membership/swim/index.ts';
import type { GossipMember } from '../src/core/protocol/messages.ts';
import type { NetworkFaults } from '../src/core/sim/index.ts';
import { SwimSimCluster } from '../src/core/sim/swim-cluster.ts';
import {
  Admin,
  type BenchNode,
  exited,
  freePort,
  kill9,
  live,
  percentile,
  QUICK,
  round,
  setting,
  sleep,
  startRdbnet,
  track,
  until,
  writeResults,
} from './harness.ts';

const TRIALS: Record<number, number> = {
  5: setting('MEMBERSHIP_BENCH_TRIALS_5', 3, 1),
  20: setting('MEMBERSHIP_BENCH_TRIALS_20', 2, 1),
};
const SIM_MINUTES = setting('MEMBERSHIP_BENCH_SIM_MINUTES', 10, 1);
/** The simulated cluster of the crash and stall runs. */
const SIM_NODES = setting('MEMBERSHIP_BENCH_SIM_NODES', 1000, 100);
/** Bandwidth windows (simulated) for the smaller steady-state clusters of 10 and 100 nodes. */
const BANDWIDTH_WINDOWS_MS: [number, number][] = (
  [
    [10, QUICK ? 60_000 : 600_000],
    [100, QUICK ? 30_000 : 180_000],
  ] as [number, number][]
).filter(([size]) => size < SIM_NODES);
const simLabel = SIM_NODES.toLocaleString('en');
const SKIP_SERF = process.env['MEMBERSHIP_BENCH_SKIP_SERF'] === '1';
const SKIP_SIM = process.env['MEMBERSHIP_BENCH_SKIP_SIM'] === '1';
const SIZES = (process.env['MEMBERSHIP_BENCH_SIZES'] ?? (QUICK ? '5' : '5,20'))
  .split(',')
  .map(Number);
const pollMs = (size: number) => (size <= 5 ? 10 : 20);
/** Joins measured per trial, after the crash and the leave. */
const JOINS_PER_TRIAL = QUICK ? 1 : 2;
/** Pauses that let a cluster settle between measurements; halved in quick mode. */
const settle = (ms: number) => sleep(QUICK ? ms / 2 : ms);

function summary(samples: number[]) {
  if (samples.length === 0) return undefined;
  return {
    trials: samples.length,
    medianMs: round(percentile(samples, 50)),
    minMs: round(Math.min(...samples)),
    maxMs: round(Math.max(...samples)),
    samplesMs: samples.map(round),
  };
}

interface Scenario {
  join: number[];
  joinFromSpawn: number[];
  crash: number[];
  leave: number[];
  /** Measurements that did not complete (reported, not counted in the medians). */
  failures: string[];
}

const emptyScenario = (): Scenario => ({
  join: [],
  joinFromSpawn: [],
  crash: [],
  leave: [],
  failures: [],
});

// ------------------------------------------------------------------ rdbnet

/** Every viewer reports `id` in `state`. */
async function allSee(
  admin: Admin,
  viewers: BenchNode[],
  check: (members: GossipMember[]) => boolean,
  what: string,
  size: number,
): Promise<void> {
  await until(
    what,
    async () => {
      const views = await Promise.all(viewers.map((node) => admin.members(node.address)));
      return views.every(check) ? true : undefined;
    },
    30_000,
    pollMs(size),
  );
}

async function benchRdbnet(home: string, size: number, trials: number): Promise<Scenario> {
  await mkdir(home, { recursive: true });
  const admin = new Admin(join(home, 'certs'));
  const nodes: BenchNode[] = [];
  const result = emptyScenario();
  let next = 1;
  const seeds = () =>
    nodes
      .slice(0, 3)
      .map((node) => node.address)
      .join(',');
  try {
    nodes.push(await startRdbnet(home, `n${next++}`, ''));
    // Start the rest a few at a time: 20 node processes on two cores.
    while (nodes.length < size) {
      const batch = Math.min(4, size - nodes.length);
      const ids = Array.from({ length: batch }, () => `n${next++}`);
      nodes.push(...(await Promise.all(ids.map((id) => startRdbnet(home, id, seeds())))));
    }
    const allAlive = (members: GossipMember[]) =>
      nodes.every((node) => members.find((m) => m.id === node.id)?.state === 'alive');
    await allSee(admin, nodes, allAlive, `${size} rdbnet nodes alive`, size);
    await settle(1000);
    for (let trial = 0; trial < trials; trial++) {
      // kill -9 of one (never the first three, which are the seeds).
      const victim = nodes[3 + ((trial * 7) % (nodes.length - 3))]!;
      nodes.splice(nodes.indexOf(victim), 1);
      await Promise.all(nodes.map((node) => admin.members(node.address)));
      let started = performance.now();
      victim.child.kill('SIGKILL');
      admin.drop(victim.address);
      await allSee(
        admin,
        nodes,
        (members) => members.find((m) => m.id === victim.id)?.state === 'dead',
        `${victim.id} dead everywhere`,
        size,
      );
      result.crash.push(performance.now() - started);
      await exited(victim.child);
      await settle(500);

      // Graceful leave of another.
      const leaver = nodes[3 + ((trial * 5 + 1) % (nodes.length - 3))]!;
      nodes.splice(nodes.indexOf(leaver), 1);
      await Promise.all([...nodes, leaver].map((node) => admin.members(node.address)));
      // `node start` leaves gossip first on SIGTERM (graceful stop). `cluster leave`
      // (LeaveRequest) needs a bootstrapped Raft cluster; this bench runs gossip only.
      started = performance.now();
      leaver.child.kill('SIGTERM');
      await allSee(
        admin,
        nodes,
        (members) => members.find((m) => m.id === leaver.id)?.state === 'left',
        `${leaver.id} left everywhere`,
        size,
      );
      result.leave.push(performance.now() - started);
      admin.drop(leaver.address);
      await Promise.race([exited(leaver.child), sleep(5000)]);
      await kill9(leaver.child);
      await settle(500);

      // Two joins, one after the other.
      for (let j = 0; j < JOINS_PER_TRIAL; j++) {
        const joiner = await startRdbnet(home, `n${next++}`, seeds());
        nodes.push(joiner);
        await allSee(admin, nodes, allAlive, `${joiner.id} joined`, size);
        const now = performance.now();
        result.join.push(now - joiner.readyAt);
        result.joinFromSpawn.push(now - joiner.spawnedAt);
        await settle(500);
      }
      console.error(
        `rdbnet ${size} nodes trial ${trial + 1}/${trials}: crash ${result.crash.at(-1)!.toFixed(0)} ms, ` +
          `leave ${result.leave.at(-1)!.toFixed(0)} ms, join ${result.join
            .slice(-JOINS_PER_TRIAL)
            .map((ms) => ms.toFixed(0))
            .join(', ')} ms`,
      );
    }
    return result;
  } finally {
    admin.close();
    await Promise.all(nodes.map((node) => kill9(node.child)));
  }
}

// ------------------------------------------------------------------ Serf

function serfVersion(): string | undefined {
  const result = spawnSync('serf', ['version'], { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) return undefined;
  return /(?:Serf v)?(\S+)/.exec(result.stdout)?.[1];
}

interface SerfAgent {
  id: string;
  bind: string;
  rpc: string;
  child: ChildProcess;
  spawnedAt: number;
  /** `${event} ${member}` → first time this agent logged it. */
  seen: Map<string, number>;
  running: boolean;
  log: string;
}

/** Starts an agent; a port taken between freePort() and the bind makes it exit: retry. */
async function startSerf(id: string, join: string | undefined): Promise<SerfAgent> {
  for (let attempt = 1; ; attempt++) {
    const agent = await spawnSerf(id, join);
    const running = await Promise.race([
      until('serf agent running', () => (agent.running ? true : undefined), 10_000, 5).catch(
        () => false,
      ),
      exited(agent.child).then(() => false),
    ]);
    if (running) return agent;
    await kill9(agent.child);
    if (attempt === 3) throw new Error(`serf agent ${id} did not start:\n${agent.log}`);
  }
}

async function spawnSerf(id: string, join: string | undefined): Promise<SerfAgent> {
  const bind = `127.0.0.1:${await freePort()}`;
  const rpc = `127.0.0.1:${await freePort()}`;
  const args = ['agent', '-node', id, '-bind', bind, '-rpc-addr', rpc];
  if (join !== undefined) args.push('-join', join);
  const spawnedAt = performance.now();
  const child = track(spawn('serf', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const agent: SerfAgent = {
    id,
    bind,
    rpc,
    child,
    spawnedAt,
    seen: new Map(),
    running: false,
    log: '',
  };
  let buffered = '';
  const onData = (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    const now = performance.now();
    for (const line of lines) {
      agent.log = `${agent.log}${line}\n`.slice(-4000);
      if (line.includes('Serf agent running')) agent.running = true;
      const match = /serf: EventMember(Join|Failed|Leave): (\S+)/.exec(line);
      if (match === null) continue;
      const key = `${match[1]} ${match[2]}`;
      if (!agent.seen.has(key)) agent.seen.set(key, now);
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return agent;
}

async function serfAllSaw(viewers: SerfAgent[], key: string, what: string): Promise<number> {
  return until(
    what,
    () => {
      const times = viewers.map((agent) => agent.seen.get(key));
      return times.every((t) => t !== undefined) ? Math.max(...(times as number[])) : undefined;
    },
    60_000,
    5,
  );
}

async function benchSerf(size: number, trials: number): Promise<Scenario> {
  const agents: SerfAgent[] = [];
  const result = emptyScenario();
  let next = 1;
  try {
    agents.push(await startSerf(`s${next++}`, undefined));
    while (agents.length < size) agents.push(await startSerf(`s${next++}`, agents[0]!.bind));
    await until(
      `${size} serf agents joined`,
      () =>
        agents.every((viewer) => agents.every((a) => viewer.seen.has(`Join ${a.id}`)))
          ? true
          : undefined,
      60_000,
      20,
    );
    await settle(2000);
    for (let trial = 0; trial < trials; trial++) {
      const victim = agents[3 + ((trial * 7) % (agents.length - 3))]!;
      agents.splice(agents.indexOf(victim), 1);
      let started = performance.now();
      victim.child.kill('SIGKILL');
      result.crash.push(
        (await serfAllSaw(agents, `Failed ${victim.id}`, `${victim.id} failed everywhere`)) -
          started,
      );
      await exited(victim.child);
      await settle(500);

      const leaver = agents[3 + ((trial * 5 + 1) % (agents.length - 3))]!;
      agents.splice(agents.indexOf(leaver), 1);
      started = performance.now();
      spawn('serf', ['leave', '-rpc-addr', leaver.rpc], { stdio: 'ignore' });
      let leaveMs: number | undefined;
      try {
        leaveMs =
          (await serfAllSaw(agents, `Leave ${leaver.id}`, `${leaver.id} left everywhere`)) -
          started;
        result.leave.push(leaveMs);
      } catch (error) {
        // Serf sometimes never reports a leave at every agent; count it, keep measuring.
        result.failures.push(`serf leave, trial ${trial + 1}: ${(error as Error).message}`);
        console.error(`serf ${size} nodes trial ${trial + 1}: ${(error as Error).message}`);
      }
      await Promise.race([exited(leaver.child), sleep(5000)]);
      await kill9(leaver.child);
      await settle(500);

      for (let j = 0; j < JOINS_PER_TRIAL; j++) {
        const joiner = await startSerf(`s${next++}`, agents[0]!.bind);
        const others = [...agents];
        agents.push(joiner);
        const seenByOthers = await serfAllSaw(others, `Join ${joiner.id}`, `${joiner.id} joined`);
        const joinerSawAll = await until(
          `${joiner.id} saw all`,
          () => {
            const times = agents.map((a) => joiner.seen.get(`Join ${a.id}`));
            return times.every((t) => t !== undefined)
              ? Math.max(...(times as number[]))
              : undefined;
          },
          60_000,
          5,
        );
        const ms = Math.max(seenByOthers, joinerSawAll) - joiner.spawnedAt;
        result.join.push(ms);
        result.joinFromSpawn.push(ms);
        await settle(500);
      }
      console.error(
        `serf ${size} nodes trial ${trial + 1}/${trials}: crash ${result.crash.at(-1)!.toFixed(0)} ms, ` +
          `leave ${leaveMs === undefined ? 'not seen everywhere' : `${leaveMs.toFixed(0)} ms`}, join ${result.join
            .slice(-JOINS_PER_TRIAL)
            .map((ms) => ms.toFixed(0))
            .join(', ')} ms`,
      );
    }
    return result;
  } finally {
    await Promise.all(agents.map((agent) => kill9(agent.child)));
  }
}

// ------------------------------------------------------------------ simulation
// The harness of test/sim/swim-sim.test.ts: each node is ticked exactly when its machine
// asks; UDP is lossy, the stream transport (TCP) is not.

const LOSSY: NetworkFaults = {
  dropRate: 0.05,
  duplicateRate: 0.01,
  delayMinMs: 0.05,
  delayMaxMs: 1,
};

const SIM_SEED = 1337;

function totalBytes(cluster: SwimSimCluster): number {
  const { udp, stream } = cluster.bytes();
  return udp + stream;
}

/** Steady-state bytes/s per node (UDP + stream) with 5% loss, over `windowMs` simulated. */
function simBandwidth(size: number, windowMs: number): number {
  const cluster = new SwimSimCluster((SIM_SEED * 7 + size) >>> 0, LOSSY);
  cluster.grow(size, 20);
  cluster.runUntilAgreement(60_000, 500);
  const b0 = totalBytes(cluster);
  cluster.run(windowMs);
  return (totalBytes(cluster) - b0) / size / (windowMs / 1000);
}

function simLarge() {
  const started = performance.now();
  const cluster = new SwimSimCluster((SIM_SEED * 7 + SIM_NODES) >>> 0, LOSSY);
  cluster.grow(SIM_NODES, 10);
  const agreedMs = cluster.runUntilAgreement(120_000, 5000);
  const crashes: { p999Ms: number; allMs: number; seenBy: number; survivors: number }[] = [];
  const crashed = new Set<string>();
  for (let k = 0; k < 3; k++) {
    const victim = cluster.live[cluster.random.int(cluster.live.length)]!;
    crashed.add(victim.id);
    const t0 = cluster.now;
    cluster.crash(victim);
    cluster.run(12_000);
    const survivors = cluster.live.length;
    const times = cluster.deaths
      .filter((d) => d.id === victim.id && d.atMs >= t0)
      .map((d) => d.atMs - t0)
      .sort((a, b) => a - b);
    crashes.push({
      p999Ms: times[Math.ceil(0.999 * survivors) - 1] ?? Number.NaN,
      allMs: times.length === survivors ? times.at(-1)! : Number.NaN,
      seenBy: times.length,
      survivors,
    });
  }
  const deathsBefore = cluster.deaths.length;
  const suspicionsBefore = cluster.suspicions;
  const b0 = totalBytes(cluster);
  for (let minute = 0; minute < SIM_MINUTES; minute++) {
    const stalled = cluster.live[cluster.random.int(cluster.live.length)]!;
    const offset = cluster.random.next() * 50_000;
    cluster.run(offset);
    cluster.stall(stalled, SWIM_LAN.stallToleranceMs);
    cluster.run(60_000 - offset);
  }
  const falseDead = cluster.deaths.slice(deathsBefore).filter((d) => !crashed.has(d.id)).length;
  return {
    agreedMs,
    crashes,
    stallRun: {
      simulatedMinutes: SIM_MINUTES,
      stalls: SIM_MINUTES,
      stallMs: SWIM_LAN.stallToleranceMs,
      suspectEvents: cluster.suspicions - suspicionsBefore,
      falseDead,
      disagreementsAtEnd: cluster.disagreements(),
    },
    bytesPerNodePerSec: (totalBytes(cluster) - b0) / SIM_NODES / ((SIM_MINUTES * 60_000) / 1000),
    realSeconds: (performance.now() - started) / 1000,
  };
}

// ------------------------------------------------------------------ main

const benchStarted = performance.now();
const home = await mkdtemp(join(tmpdir(), 'rdbnet-bench-membership-'));
const version = SKIP_SERF ? undefined : serfVersion();
const serfNote =
  version !== undefined
    ? `serf ${version}, LAN defaults (memberlist: probe 1 s, suspicion mult 4), observed through agent logs`
    : SKIP_SERF
      ? 'skipped (MEMBERSHIP_BENCH_SKIP_SERF=1)'
      : 'serf is not on PATH (Debian: apt-get install serf); serf rows skipped';
if (version === undefined) console.error(serfNote);

const real: Record<string, { rdbnet: Scenario; serf?: Scenario }> = {};
try {
  for (const size of SIZES) {
    const trials = TRIALS[size]!;
    const rdbnet = await benchRdbnet(join(home, `rdbnet-${size}`), size, trials);
    const serf = version === undefined ? undefined : await benchSerf(size, trials);
    real[size] = { rdbnet, ...(serf === undefined ? {} : { serf }) };
  }
} finally {
  for (const child of live) child.kill('SIGKILL');
  await rm(home, { recursive: true, force: true });
}

let sim: ReturnType<typeof simLarge> | undefined;
const bandwidth: Record<number, number> = {};
if (!SKIP_SIM) {
  console.error(`simulation: ${BANDWIDTH_WINDOWS_MS.map(([size]) => size).join(' and ')} nodes…`);
  for (const [size, windowMs] of BANDWIDTH_WINDOWS_MS)
    bandwidth[size] = simBandwidth(size, windowMs);
  console.error(`simulation: ${simLabel} nodes, ${SIM_MINUTES} simulated minutes…`);
  sim = simLarge();
  bandwidth[SIM_NODES] = sim.bytesPerNodePerSec;
}

// ---- tables and JSON

const TARGET = { crashMs: 3000, joinMs: 1000, leaveMs: 1000, crashVsSerf: 0.4 };
const realTable = new Table({
  head: ['real processes, loopback', 'nodes', 'trials', 'median ms', 'min ms', 'max ms', 'target'],
  style: { head: [], border: [] },
});
const results: Record<string, unknown> = {};
for (const size of SIZES) {
  const entry = real[size];
  if (entry === undefined) continue;
  const row: Record<string, unknown> = {};
  for (const [system, scenario] of [
    ['rdbnet', entry.rdbnet],
    ['serf', entry.serf],
  ] as const) {
    if (scenario === undefined) continue;
    const s = {
      crash: summary(scenario.crash),
      leave: summary(scenario.leave),
      join: summary(scenario.join),
      joinFromSpawn: summary(scenario.joinFromSpawn),
      failures: scenario.failures,
    };
    row[system] = s;
    const lines: [string, ReturnType<typeof summary>, string][] = [
      [
        'kill -9 → dead at every survivor',
        s.crash,
        system === 'rdbnet' ? '≤ 3000, ≤ 40% serf' : '',
      ],
      ['graceful leave → left everywhere', s.leave, system === 'rdbnet' ? '≤ 1000' : ''],
      [
        system === 'rdbnet'
          ? 'join (node ready → all see all)'
          : 'join (agent spawn → all see all)',
        s.join,
        system === 'rdbnet' ? '≤ 1000' : '',
      ],
    ];
    if (system === 'rdbnet')
      lines.push(['join (process spawn → all see all)', s.joinFromSpawn, '']);
    for (const [what, stats, target] of lines) {
      if (stats === undefined) continue;
      realTable.push([
        `${system}: ${what}`,
        size,
        stats.trials,
        stats.medianMs,
        stats.minMs,
        stats.maxMs,
        target,
      ]);
    }
  }
  const rc = entry.rdbnet.crash;
  const sc = entry.serf?.crash;
  if (sc !== undefined && sc.length > 0) {
    row['crashRatioRdbnetOverSerf'] =
      Math.round((percentile(rc, 50) / percentile(sc, 50)) * 1000) / 1000;
    row['leaveRatioRdbnetOverSerf'] =
      Math.round((percentile(entry.rdbnet.leave, 50) / percentile(entry.serf!.leave, 50)) * 1000) /
      1000;
  }
  results[`${size}`] = row;
}
console.log(realTable.toString());

const ratioTable = new Table({
  head: ['rdbnet / serf (medians)', 'nodes', 'crash detection', 'leave', 'target (crash)'],
  style: { head: [], border: [] },
});
for (const size of SIZES) {
  const row = results[`${size}`] as Record<string, unknown> | undefined;
  if (row?.['crashRatioRdbnetOverSerf'] === undefined) continue;
  ratioTable.push([
    'ratio',
    size,
    row['crashRatioRdbnetOverSerf'] as number,
    row['leaveRatioRdbnetOverSerf'] as number,
    '≤ 0.4',
  ]);
}
if (ratioTable.length > 0) console.log(ratioTable.toString());

if (sim !== undefined) {
  const simTable = new Table({
    head: ['simulation, 5% loss, lan preset', 'value', 'target'],
    style: { head: [], border: [] },
  });
  simTable.push([
    `${simLabel} nodes: agreement after the last join (checked every 5 s)`,
    `${(sim.agreedMs / 1000).toFixed(2)} s`,
    '',
  ]);
  sim.crashes.forEach((crash, i) => {
    simTable.push([
      `${simLabel} nodes: crash ${i + 1} → dead at 99.9% / 100% of survivors`,
      `${(crash.p999Ms / 1000).toFixed(2)} s / ${(crash.allMs / 1000).toFixed(2)} s (${crash.seenBy}/${crash.survivors})`,
      '',
    ]);
  });
  simTable.push([
    `${simLabel} nodes: ${SIM_MINUTES} simulated minutes (not an hour), one 2 s stall per minute`,
    `${sim.stallRun.falseDead} false dead, ${sim.stallRun.suspectEvents} suspect events`,
    '0 false dead',
  ]);
  for (const size of Object.keys(bandwidth).map(Number)) {
    simTable.push([
      `bytes/s per node (UDP + stream), ${size} nodes`,
      Math.round(bandwidth[size]!),
      '',
    ]);
  }
  const values = Object.values(bandwidth);
  simTable.push([
    `max / min bytes/s per node, 10–${simLabel} nodes`,
    (Math.max(...values) / Math.min(...values)).toFixed(2),
    '≤ 2',
  ]);
  console.log(simTable.toString());
}

const checks: Record<string, boolean> = {};
for (const size of SIZES) {
  const entry = real[size];
  if (entry === undefined) continue;
  const row = results[`${size}`] as Record<string, unknown>;
  checks[`crash≤3s@${size}`] = percentile(entry.rdbnet.crash, 50) <= TARGET.crashMs;
  checks[`join≤1s@${size}`] = percentile(entry.rdbnet.join, 50) <= TARGET.joinMs;
  checks[`leave≤1s@${size}`] = percentile(entry.rdbnet.leave, 50) <= TARGET.leaveMs;
  if (row['crashRatioRdbnetOverSerf'] !== undefined)
    checks[`crash≤40%serf@${size}`] =
      (row['crashRatioRdbnetOverSerf'] as number) <= TARGET.crashVsSerf;
}
if (sim !== undefined) {
  checks['sim:zeroFalseDead'] = sim.stallRun.falseDead === 0;
  const values = Object.values(bandwidth);
  checks['sim:bandwidthWithin2x'] = Math.max(...values) <= 2 * Math.min(...values);
}
console.log(
  `targets (medians): ${Object.entries(checks)
    .map(([k, v]) => `${k} ${v ? 'met' : 'MISSED'}`)
    .join(', ')}`,
);

const out = {
  checks,
  generatedAt: new Date().toISOString(),
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version },
  command: 'npm run bench:membership',
  targets: TARGET,
  notes: {
    rdbnet:
      `default lan preset (probe ${SWIM_LAN.probeIntervalMs} ms, stall tolerance ${SWIM_LAN.stallToleranceMs} ms); ` +
      'gossip only (no bootstrap); polled with MembersRequest over mTLS every 10 ms (5 nodes) / 20 ms (20 nodes); ' +
      'leave = SIGTERM to the node (graceful stop: gossip leave first), timed from the signal; join timed from the node printing its listen address',
    serf: `${serfNote}; crash/leave/join timed when the last agent logs EventMemberFailed/Leave/Join; leave timed from spawning \`serf leave\`; join timed from agent spawn`,
    trials: `kill -9 and leave: ${TRIALS[5]} at 5 nodes, ${TRIALS[20]} at 20 nodes; ${JOINS_PER_TRIAL} joins per trial`,
    simulation: `seeded (${SIM_SEED}); stall run is ${SIM_MINUTES} simulated minutes, not an hour; bandwidth windows ${BANDWIDTH_WINDOWS_MS.map(([size, ms]) => `${ms / 1000} s (${size} nodes)`).join(', ')}, the stall run (${simLabel})`,
  },
  real: results,
  simulation:
    sim === undefined
      ? undefined
      : {
          [`nodes${SIM_NODES}`]: sim,
          bytesPerNodePerSec: Object.fromEntries(
            Object.entries(bandwidth).map(([k, v]) => [k, Math.round(v)]),
          ),
          bandwidthMaxOverMin:
            Math.round(
              (Math.max(...Object.values(bandwidth)) / Math.min(...Object.values(bandwidth))) * 100,
            ) / 100,
        },
  runtimeSeconds: Math.round((performance.now() - benchStarted) / 1000),
};
const file = await writeResults('membership', { ...out, quick: QUICK });
console.log(`wrote ${file} (${out.runtimeSeconds} s)`);
