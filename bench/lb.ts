/**
 * bench:lb — the load-balancing core against what a Node user reaches for today, one run:
 *
 *   pick        ns per pick() of every strategy at N = 10, 100, 1,000 (each strategy in its own
 *               worker thread, so one strategy's JIT profile does not slow another; one
 *               worker for all in quick mode), and per
 *               pick + start + finish (the feedback a real caller gives).
 *   hashing     Maglev, ring, rendezvous and bounded-load at N = 100 over 1,000,000 keys:
 *               max/mean, stddev, and keys moved on removing or adding one node, against the
 *               least possible.
 *   overhead    ns per call of a breaker + retry wrapper around an async function that
 *               succeeds, over the bare call: rdbnet (CircuitBreaker + Retrying + RetryBudget)
 *               against cockatiel (wrap(retry, circuitBreaker)) and opossum (its breaker, which
 *               has no retry; its timeout off, as its per-call timer would dominate).
 *   slow node   the latency model of `lb simulate` (virtual time): one of 10 nodes 10× slower;
 *               the share of requests each strategy still sends it, p50 and p99.
 *   live        five node:http backends on 127.0.0.1 (one answers in 10 ms, four in 1 ms) in
 *               their own process; requests through haproxy (Debian `haproxy`: roundrobin,
 *               leastconn, `balance uri` + `hash-type consistent`) and, over the same backends,
 *               through rdbnet's balancer in the client (round-robin, least-connections,
 *               p2c-ewma, maglev, ring): share of the slow backend, latencies, and for the
 *               hashing modes keys per backend and keys moved when one backend is removed.
 *               Skipped, with the reason printed, when haproxy is not installed.
 *
 * Prints tables and writes bench/results/lb.json. BENCH_QUICK=1: the same run with small
 * numbers (figures meaningless) in a few seconds, written to bench/results/lb.quick.json.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { createConnection, createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import Table from 'cli-table3';
import {
  Balancer,
  CircuitBreaker,
  RetryBudget,
  Retrying,
  STRATEGIES,
  type StrategyName,
  simulate,
} from '../src/core/lb/index.ts';
import { seededRandom, systemClock, systemRandom } from '../src/core/runtime/index.ts';

const QUICK = process.env['BENCH_QUICK'] === '1';
const SIZES = [10, 100, 1000];
const ADAPTIVE: ReadonlySet<StrategyName> = new Set(['p2c-ewma']);
const PICK_GOAL_NS = 200;

// ---------------------------------------------------------------- pick (worker side)

interface PickJob {
  strategies: StrategyName[];
  sizes: number[];
  budgetMs: number;
}
interface PickResult {
  strategy: StrategyName;
  size: number;
  /** Thread CPU time per call; wall time per call. */
  pickNs: number;
  pickWallNs: number;
  pickFeedbackNs: number;
  pickFeedbackWallNs: number;
}

/** CPU microseconds this thread has used (user + system). */
function threadCpuUs(): number {
  const usage = process.threadCpuUsage();
  return usage.user + usage.system;
}

/**
 * ns per op of `op` run in batches for about `budgetMs`, in five samples: the median of the
 * thread's CPU time per op (on a shared machine, time the thread spent descheduled is not the
 * code's), and the median of wall time per op.
 */
function measure(op: (i: number) => void, budgetMs: number): { cpuNs: number; wallNs: number } {
  const batch = 4096;
  const warmUntil = performance.now() + Math.min(50, budgetMs / 4);
  let i = 0;
  while (performance.now() < warmUntil) for (let j = 0; j < batch; j++) op(i++);
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let s = 0; s < 5; s++) {
    const until = performance.now() + budgetMs / 5;
    let ops = 0;
    const cpuStart = threadCpuUs();
    const start = performance.now();
    while (performance.now() < until) {
      for (let j = 0; j < batch; j++) op(i++);
      ops += batch;
    }
    wall.push(((performance.now() - start) * 1e6) / ops);
    cpu.push(((threadCpuUs() - cpuStart) * 1e3) / ops);
  }
  return { cpuNs: median(cpu), wallNs: median(wall) };
}

function runPickJob(job: PickJob): PickResult[] {
  return job.strategies.flatMap((strategy) => runPicks(strategy, job));
}

function runPicks(strategy: StrategyName, job: PickJob): PickResult[] {
  const keys = Array.from({ length: 4096 }, (_, i) => `user:${i * 7919}`);
  const out: PickResult[] = [];
  for (const size of job.sizes) {
    const endpoints = Array.from({ length: size }, (_, i) => ({ id: `n${i + 1}`, weight: 1 }));
    const make = () => new Balancer({ strategy, endpoints, random: seededRandom(size) });
    const plain = make();
    let sink = 0;
    const pick = measure((i) => {
      sink += plain.pick(keys[i & 4095])!.length;
    }, job.budgetMs);
    const fed = make();
    const outcome = { ok: true, latencyMs: 1 };
    const feedback = measure((i) => {
      const id = fed.pick(keys[i & 4095])!;
      fed.start(id);
      fed.finish(id, outcome);
    }, job.budgetMs);
    if (sink < 0) throw new Error('unreachable');
    out.push({
      strategy,
      size,
      pickNs: pick.cpuNs,
      pickWallNs: pick.wallNs,
      pickFeedbackNs: feedback.cpuNs,
      pickFeedbackWallNs: feedback.wallNs,
    });
  }
  return out;
}

function pickInWorker(job: PickJob): Promise<PickResult[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    worker.once('message', (results: PickResult[]) => {
      resolve(results);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}

// ---------------------------------------------------------------- helpers

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;
const pct = (share: number, digits = 2) => `${(share * 100).toFixed(digits)}%`;

function table(head: string[], rows: (string | number)[][]): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const row of rows) t.push(row.map(String));
  return t.toString();
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (performance.now() > deadline)
      throw new Error(`port ${port} not open within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// ---------------------------------------------------------------- overhead

async function overhead(calls: number, rounds: number) {
  const work = async () => 1;
  const clock = systemClock;
  const budget = new RetryBudget(clock);
  const breaker = new CircuitBreaker(clock);
  const retrying = new Retrying({
    budget,
    breaker,
    clock,
    random: systemRandom,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  });
  const cockatiel = await import('cockatiel');
  const cockatielPolicy = cockatiel.wrap(
    cockatiel.retry(cockatiel.handleAll, {
      maxAttempts: 2,
      backoff: new cockatiel.ExponentialBackoff(),
    }),
    cockatiel.circuitBreaker(cockatiel.handleAll, {
      halfOpenAfter: 5000,
      breaker: new cockatiel.ConsecutiveBreaker(5),
    }),
  );
  const { default: OpossumBreaker } = await import('opossum');
  const opossum = new OpossumBreaker(work, {
    timeout: false,
    resetTimeout: 5000,
    errorThresholdPercentage: 50,
  });
  const contenders: [string, () => Promise<unknown>][] = [
    ['bare call (baseline)', work],
    ['rdbnet breaker + retry + budget', () => retrying.execute(work)],
    ['cockatiel wrap(retry, circuitBreaker)', () => cockatielPolicy.execute(work)],
    ['opossum breaker (no retry, timeout off)', () => opossum.fire()],
  ];
  const cpuSamples = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
  const wallSamples = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
  // Interleaved rounds: a burst of load on the shared machine hits every contender alike.
  // The figure is this thread's CPU time per call (awaits resolve on this thread).
  for (let r = 0; r < rounds + 1; r++) {
    for (const [name, run] of contenders) {
      const cpuStart = threadCpuUs();
      const start = performance.now();
      for (let i = 0; i < calls; i++) await run();
      if (r === 0) continue; // round 0 warms up
      wallSamples.get(name)!.push(((performance.now() - start) * 1e6) / calls);
      cpuSamples.get(name)!.push(((threadCpuUs() - cpuStart) * 1e3) / calls);
    }
  }
  const baseline = median(cpuSamples.get('bare call (baseline)')!);
  const wallBaseline = median(wallSamples.get('bare call (baseline)')!);
  return contenders.map(([name]) => {
    const perCall = median(cpuSamples.get(name)!);
    const wallPerCall = median(wallSamples.get(name)!);
    return {
      contender: name,
      nsPerCall: round(perCall),
      overheadNs: round(perCall - baseline),
      wallNsPerCall: round(wallPerCall),
      wallOverheadNs: round(wallPerCall - wallBaseline),
      samplesNs: cpuSamples.get(name)!.map((ns) => round(ns)),
    };
  });
}

// ---------------------------------------------------------------- live: haproxy vs rdbnet

interface LiveRun {
  system: 'haproxy' | 'rdbnet';
  mode: string;
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  slowShare: number;
  p50Ms: number;
  p99Ms: number;
  perBackend: Record<string, number>;
}

interface HashRun {
  system: 'haproxy' | 'rdbnet';
  mode: string;
  keys: number;
  maxOverMean: number;
  movedFraction: number;
  idealMovedFraction: number;
}

function get(agent: Agent, port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`)),
      );
    });
    req.once('error', reject);
    req.end();
  });
}

/** `requests` GETs with `concurrency` in flight; `route(key)` says where each goes. */
async function drive(
  requests: number,
  concurrency: number,
  keyCount: number,
  send: (key: string) => Promise<string>,
): Promise<{ seconds: number; latencies: number[]; backends: string[]; keys: string[] }> {
  const latencies: number[] = [];
  const backends: string[] = [];
  const keys: string[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        const key = `user:${next++ % keyCount}`;
        const began = performance.now();
        const backend = await send(key);
        latencies.push(performance.now() - began);
        backends.push(backend);
        keys.push(key);
      }
    }),
  );
  return { seconds: (performance.now() - start) / 1000, latencies, backends, keys };
}

function summarize(
  system: LiveRun['system'],
  mode: string,
  run: Awaited<ReturnType<typeof drive>>,
  names: string[],
): LiveRun {
  const perBackend: Record<string, number> = Object.fromEntries(names.map((name) => [name, 0]));
  for (const backend of run.backends) perBackend[backend] = (perBackend[backend] ?? 0) + 1;
  return {
    system,
    mode,
    requests: run.backends.length,
    seconds: round(run.seconds, 2),
    requestsPerSecond: Math.round(run.backends.length / run.seconds),
    slowShare: round((perBackend['b1'] ?? 0) / run.backends.length, 4),
    p50Ms: round(percentile(run.latencies, 50), 2),
    p99Ms: round(percentile(run.latencies, 99), 2),
    perBackend,
  };
}

function haproxyConfig(port: number, balance: string, servers: [string, number][]): string {
  return [
    'global',
    '  maxconn 4096',
    '  nbthread 1',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  option http-keep-alive',
    'frontend fe',
    `  bind 127.0.0.1:${port}`,
    '  default_backend be',
    'backend be',
    ...balance.split('\n').map((line) => `  ${line}`),
    ...servers.map(([name, serverPort]) => `  server ${name} 127.0.0.1:${serverPort}`),
    '',
  ].join('\n');
}

async function withHaproxy<T>(
  dir: string,
  balance: string,
  servers: [string, number][],
  work: (port: number) => Promise<T>,
): Promise<T> {
  const port = await freePort();
  const file = join(dir, `haproxy-${port}.cfg`);
  await writeFile(file, haproxyConfig(port, balance, servers));
  const child = track(
    spawn('haproxy', ['-db', '-q', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] }),
  );
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  try {
    await waitForPort(port, 10_000).catch((error: Error) => {
      throw new Error(`${error.message}; haproxy said: ${stderr.trim()}`);
    });
    return await work(port);
  } finally {
    child.kill('SIGKILL');
    await new Promise((resolve) =>
      child.exitCode !== null || child.signalCode !== null
        ? resolve(null)
        : child.once('exit', resolve),
    );
  }
}

async function live(settings: { requests: number; concurrency: number; keys: number }) {
  const version = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  const haproxyVersion =
    version.status === 0 ? (version.stdout.split('\n')[0] ?? '').replace(/ - https.*/, '') : null;
  const delays = [10, 1, 1, 1, 1];
  const backendsProcess = track(
    spawn(
      process.execPath,
      [new URL('lb-backends.ts', import.meta.url).pathname, ...delays.map(String)],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    ),
  );
  const ports = await new Promise<number[]>((resolve, reject) => {
    let out = '';
    backendsProcess.stdout!.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve((JSON.parse(out) as { ports: number[] }).ports);
    });
    backendsProcess.once('exit', (code) => reject(new Error(`backends exited with ${code}`)));
  });
  const names = ports.map((_, i) => `b${i + 1}`);
  const portOf = new Map(names.map((name, i) => [name, ports[i]!]));
  const dir = await mkdtemp(join(tmpdir(), 'rdbnet-bench-lb-'));
  const agent = new Agent({ keepAlive: true, maxSockets: settings.concurrency * 2 });
  const runs: LiveRun[] = [];
  const hashRuns: HashRun[] = [];
  try {
    // ---- distribution under load: request shares and latencies
    const rdbnetModes: StrategyName[] = [
      'round-robin',
      'least-connections',
      'p2c-ewma',
      'maglev',
      'ring',
    ];
    for (const mode of rdbnetModes) {
      const balancer = new Balancer({
        strategy: mode,
        endpoints: names.map((id) => ({ id, weight: 1 })),
      });
      const run = await drive(
        settings.requests,
        settings.concurrency,
        settings.keys,
        async (key) => {
          const id = balancer.pick(key)!;
          balancer.start(id);
          const began = performance.now();
          let ok = true;
          try {
            return await get(agent, portOf.get(id)!, `/k/${key}`);
          } catch (error) {
            ok = false;
            throw error;
          } finally {
            balancer.finish(id, { ok, latencyMs: performance.now() - began });
          }
        },
      );
      runs.push(summarize('rdbnet', mode, run, names));
    }
    const haproxyModes: [string, string][] = [
      ['roundrobin', 'balance roundrobin'],
      ['leastconn', 'balance leastconn'],
      ['uri consistent', 'balance uri\nhash-type consistent'],
    ];
    const servers = names.map((name) => [name, portOf.get(name)!] as [string, number]);
    if (haproxyVersion !== null) {
      for (const [mode, balance] of haproxyModes) {
        const run = await withHaproxy(dir, balance, servers, (port) =>
          drive(settings.requests, settings.concurrency, settings.keys, (key) =>
            get(agent, port, `/k/${key}`),
          ),
        );
        runs.push(summarize('haproxy', mode, run, names));
      }
    }

    // ---- hashing: where each key goes with five backends, then with b5 removed
    const keyList = Array.from({ length: settings.keys }, (_, i) => `user:${i}`);
    const spreadOf = (mapping: Map<string, string>, count: number) => {
      const per = new Map<string, number>();
      for (const backend of mapping.values()) per.set(backend, (per.get(backend) ?? 0) + 1);
      return Math.max(...per.values()) / (mapping.size / count);
    };
    const moved = (before: Map<string, string>, after: Map<string, string>) =>
      [...before].filter(([key, backend]) => after.get(key) !== backend).length / before.size;
    // The least any strategy must move: the keys the removed backend held.
    const held = (before: Map<string, string>) =>
      [...before.values()].filter((backend) => backend === 'b5').length / before.size;
    const routeAll = async (send: (key: string) => Promise<string>) => {
      const mapping = new Map<string, string>();
      let next = 0;
      await Promise.all(
        Array.from({ length: settings.concurrency }, async () => {
          while (next < keyList.length) {
            const key = keyList[next++]!;
            mapping.set(key, await send(key));
          }
        }),
      );
      return mapping;
    };
    for (const mode of ['maglev', 'ring', 'rendezvous'] as const) {
      const route = (ids: string[]) => {
        const balancer = new Balancer({
          strategy: mode,
          endpoints: ids.map((id) => ({ id, weight: 1 })),
        });
        return routeAll((key) => get(agent, portOf.get(balancer.pick(key)!)!, `/k/${key}`));
      };
      const before = await route(names);
      const after = await route(names.slice(0, 4));
      hashRuns.push({
        system: 'rdbnet',
        mode,
        keys: keyList.length,
        maxOverMean: round(spreadOf(before, names.length), 3),
        movedFraction: round(moved(before, after), 4),
        idealMovedFraction: round(held(before), 4),
      });
    }
    if (haproxyVersion !== null) {
      const balance = 'balance uri\nhash-type consistent';
      const before = await withHaproxy(dir, balance, servers, (port) =>
        routeAll((key) => get(agent, port, `/k/${key}`)),
      );
      const after = await withHaproxy(dir, balance, servers.slice(0, 4), (port) =>
        routeAll((key) => get(agent, port, `/k/${key}`)),
      );
      hashRuns.push({
        system: 'haproxy',
        mode: 'uri consistent',
        keys: keyList.length,
        maxOverMean: round(spreadOf(before, names.length), 3),
        movedFraction: round(moved(before, after), 4),
        idealMovedFraction: round(held(before), 4),
      });
    }
  } finally {
    agent.destroy();
    backendsProcess.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
  return {
    haproxy: haproxyVersion,
    skipped:
      haproxyVersion === null ? 'haproxy is not installed (Debian: apt-get install haproxy)' : null,
    backendDelaysMs: delays,
    ...settings,
    runs,
    hashing: hashRuns,
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const began = performance.now();
  const settings = {
    pickBudgetMs: QUICK ? 10 : 400,
    keys: QUICK ? 50_000 : 1_000_000,
    overheadCalls: QUICK ? 5000 : 200_000,
    overheadRounds: QUICK ? 2 : 7,
    slowRequests: QUICK ? 5000 : 100_000,
    live: QUICK
      ? { requests: 200, concurrency: 8, keys: 100 }
      : { requests: 20_000, concurrency: 32, keys: 2000 },
  };
  console.log(
    `bench:lb${QUICK ? ' (quick: figures meaningless)' : ''} — node ${process.version}, ${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );

  const sectionSeconds: Record<string, number> = {};
  let sectionStart = performance.now();
  const section = (name: string) => {
    const now = performance.now();
    sectionSeconds[name] = round((now - sectionStart) / 1000, 2);
    sectionStart = now;
  };

  // pick
  const pick: PickResult[] = [];
  // Quick mode shares one worker (its figures mean nothing anyway).
  const groups = QUICK ? [[...STRATEGIES]] : STRATEGIES.map((strategy) => [strategy]);
  for (const strategies of groups) {
    pick.push(
      ...(await pickInWorker({ strategies, sizes: SIZES, budgetMs: settings.pickBudgetMs })),
    );
  }
  console.log(
    '\npick() — ns per call, thread CPU time (median of 5 samples; own worker per strategy; wall times in the JSON)',
  );
  console.log(
    table(
      ['strategy', ...SIZES.map((n) => `N=${n}`), ...SIZES.map((n) => `+feedback N=${n}`)],
      STRATEGIES.map((strategy) => {
        const rows = pick.filter((r) => r.strategy === strategy);
        return [
          strategy,
          ...rows.map((r) => round(r.pickNs)),
          ...rows.map((r) => round(r.pickFeedbackNs)),
        ];
      }),
    ),
  );
  const slowPicks = pick.filter(
    (r) => r.size === 100 && !ADAPTIVE.has(r.strategy) && r.pickNs > PICK_GOAL_NS,
  );
  console.log(
    slowPicks.length === 0
      ? `goal pick() ≤ ${PICK_GOAL_NS} ns at N=100 for every non-adaptive strategy: met`
      : `goal pick() ≤ ${PICK_GOAL_NS} ns at N=100: NOT met by ${slowPicks.map((r) => `${r.strategy} (${round(r.pickNs)} ns)`).join(', ')}`,
  );

  section('pick');

  // hashing distribution and remap
  const hashing = [];
  for (const strategy of ['maglev', 'ring', 'rendezvous', 'bounded-load'] as const) {
    const base = { strategy, nodes: 100, keys: settings.keys, slow: null, requests: 1, seed: 1 };
    const removed = simulate({ ...base, remove: ['n100'], add: 0 });
    const added = simulate({ ...base, remove: [], add: 1 });
    hashing.push({
      strategy,
      nodes: 100,
      keys: settings.keys,
      maxOverMean: removed.maxOverMean,
      relativeStddev: removed.relativeStddev,
      movedOnRemove: removed.movedFraction!,
      idealOnRemove: removed.idealMovedFraction!,
      movedOnAdd: added.movedFraction!,
      idealOnAdd: added.idealMovedFraction!,
    });
  }
  console.log(`\nhashing at N=100 over ${settings.keys.toLocaleString('en')} keys`);
  console.log(
    table(
      ['strategy', 'max/mean', 'stddev/mean', 'moved, remove 1', 'least', 'moved, add 1', 'least'],
      hashing.map((h) => [
        h.strategy,
        h.maxOverMean.toFixed(4),
        pct(h.relativeStddev),
        pct(h.movedOnRemove),
        pct(h.idealOnRemove),
        pct(h.movedOnAdd),
        pct(h.idealOnAdd),
      ]),
    ),
  );
  const maglev = hashing.find((h) => h.strategy === 'maglev')!;
  const bounded = hashing.find((h) => h.strategy === 'bounded-load')!;
  console.log(
    `goals: Maglev max/mean ≤ 1.05: ${maglev.maxOverMean <= 1.05 ? 'met' : 'NOT met'} (${maglev.maxOverMean}); ` +
      `Maglev moved ≤ 1/N + 0.5 pp (1.50%): ${maglev.movedOnRemove <= 0.015 ? 'met' : 'NOT met'} (${pct(maglev.movedOnRemove)}); ` +
      `bounded-load max/mean ≤ 1.25: ${bounded.maxOverMean <= 1.25 ? 'met' : 'NOT met'} (${bounded.maxOverMean})`,
  );

  section('hashing');

  // breaker + retry overhead
  const overheadRows = await overhead(settings.overheadCalls, settings.overheadRounds);
  console.log(
    `\nbreaker + retry around a succeeding async call — ns per call, thread CPU time (median of ${settings.overheadRounds} rounds of ${settings.overheadCalls.toLocaleString('en')}, interleaved)`,
  );
  console.log(
    table(
      ['contender', 'ns/call', 'overhead ns', 'wall ns/call', 'wall overhead ns'],
      overheadRows.map((r) => [
        r.contender,
        r.nsPerCall,
        r.overheadNs,
        r.wallNsPerCall,
        r.wallOverheadNs,
      ]),
    ),
  );
  const ours = overheadRows[1]!;
  const theirs = overheadRows[2]!;
  console.log(
    `goal overhead below cockatiel's: ${ours.overheadNs < theirs.overheadNs ? 'met' : 'NOT met'} ` +
      `(rdbnet ${ours.overheadNs} ns, cockatiel ${theirs.overheadNs} ns, ratio ${round(theirs.overheadNs / ours.overheadNs, 2)}×)`,
  );

  section('overhead');

  // slow node
  const slowStrategies: StrategyName[] = [
    'round-robin',
    'random',
    'least-connections',
    'p2c',
    'p2c-ewma',
    'maglev',
  ];
  const slowNode = slowStrategies.map((strategy) => {
    const result = simulate({
      strategy,
      nodes: 10,
      keys: 10_000,
      remove: [],
      add: 0,
      slow: { id: 'n1', factor: 10 },
      requests: settings.slowRequests,
      seed: 1,
    });
    return {
      strategy,
      slowShare: result.slowShare!,
      p50Ms: result.latencyP50Ms!,
      p99Ms: result.latencyP99Ms!,
    };
  });
  console.log(
    `\nslow node: 1 of 10 nodes 10× slower, ${settings.slowRequests.toLocaleString('en')} requests on virtual time (lb simulate's model)`,
  );
  console.log(
    table(
      ['strategy', 'share to the slow node', 'p50 ms', 'p99 ms'],
      slowNode.map((s) => [s.strategy, pct(s.slowShare), s.p50Ms, s.p99Ms]),
    ),
  );
  const adaptive = slowNode.find((s) => s.strategy === 'p2c-ewma')!;
  console.log(
    `goal p2c-ewma ≤ 5% to a 10× slower node: ${adaptive.slowShare <= 0.05 ? 'met' : 'NOT met'} (${pct(adaptive.slowShare)}; round robin ${pct(slowNode[0]!.slowShare)})`,
  );

  section('slowNode');

  // live
  const liveResult = await live(settings.live);
  section('live');
  console.log(
    `\nlive: ${settings.live.requests.toLocaleString('en')} HTTP requests, ${settings.live.concurrency} in flight, ${settings.live.keys} keys; backends b1 (10 ms) and b2-b5 (1 ms)`,
  );
  if (liveResult.skipped !== null) console.log(`haproxy rows skipped: ${liveResult.skipped}`);
  console.log(
    table(
      ['system', 'mode', 'req/s', 'share to slow b1', 'p50 ms', 'p99 ms', 'per backend b1..b5'],
      liveResult.runs.map((r) => [
        r.system === 'haproxy'
          ? `haproxy ${liveResult.haproxy?.match(/[\d.]+/)?.[0] ?? ''}`
          : 'rdbnet (client)',
        r.mode,
        r.requestsPerSecond,
        pct(r.slowShare, 1),
        r.p50Ms,
        r.p99Ms,
        Object.values(r.perBackend).join(' / '),
      ]),
    ),
  );
  console.log(
    `hashing over the same backends: ${settings.live.keys} keys, then b5 removed (least possible: the keys b5 held)`,
  );
  console.log(
    table(
      ['system', 'mode', 'keys max/mean', 'moved', 'held by b5'],
      liveResult.hashing.map((h) => [
        h.system,
        h.mode,
        h.maxOverMean,
        pct(h.movedFraction),
        pct(h.idealMovedFraction),
      ]),
    ),
  );

  const results = {
    bench: 'lb',
    quick: QUICK,
    startedAt,
    node: process.version,
    cores: cpus().length,
    loadAverage: loadavg().map((l) => round(l, 2)),
    durationS: round((performance.now() - began) / 1000, 1),
    sectionSeconds,
    settings,
    pick: pick.map((r) => ({
      ...r,
      pickNs: round(r.pickNs),
      pickWallNs: round(r.pickWallNs),
      pickFeedbackNs: round(r.pickFeedbackNs),
      pickFeedbackWallNs: round(r.pickFeedbackWallNs),
    })),
    hashing,
    overhead: overheadRows,
    slowNode,
    live: liveResult,
  };
  const dir = new URL('results/', import.meta.url);
  await mkdir(dir, { recursive: true });
  const name = `lb${QUICK ? '.quick' : ''}.json`;
  await writeFile(new URL(name, dir), `${JSON.stringify(results, null, 2)}\n`);
  console.log(
    `\nwrote bench/results/${name} in ${results.durationS} s (${Object.entries(sectionSeconds)
      .map(([name, seconds]) => `${name} ${seconds} s`)
      .join(', ')})`,
  );
}

// Last, once every declaration above is initialised: a worker measures picks, the main
// thread runs the bench.
if (!isMainThread) {
  parentPort!.postMessage(runPickJob(workerData as PickJob));
} else {
  await main();
}
