/**
 * bench:http — GET /api/v1/network/health on a real node's HTTP face (`node start --http`,
 * HTTPS, the admin client certificate, every request authenticated, rate-checked and answered
 * by the node's admin handler) against the ceiling: a bare fastify handler over the same TLS
 * settings returning the same bytes (bench/http-bare.ts), in a process of its own like the
 * node. Both measured in the same run, in alternating rounds, by 100 concurrent clients
 * (undici, one keep-alive connection each, all opened before measuring) from this process.
 * Rounds alternate which target goes first.
 *
 * Reported per target: requests/s and p50/p99 latency (median of the rounds), the server
 * process's CPU per request (/proc; Linux), and the node's share of the ceiling: by requests/s
 * (the goal, >= 60%) and by CPU per request (steadier on a machine others load).
 *
 * The node's per-client rate limit is lifted for the run (RDBNET_HTTP_RATE_PER_SECOND): every
 * request comes from 127.0.0.1, and the limiter would otherwise be what is measured.
 *
 * Env: BENCH_HTTP_CLIENTS (100), BENCH_HTTP_SECONDS per round (5; quick 1), BENCH_HTTP_ROUNDS
 * (5; quick 1), BENCH_HTTP_WARMUP_SECONDS (1; quick 0.3). BENCH_QUICK=1: small numbers.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { Agent, request } from 'undici';
import { percentile, QUICK, setting, track, writeResults } from './harness.ts';

const CLIENTS = setting('BENCH_HTTP_CLIENTS', 100, 100);
const ROUND_SECONDS = setting('BENCH_HTTP_SECONDS', 5, 1);
const ROUNDS = setting('BENCH_HTTP_ROUNDS', 5, 1);
const WARMUP_SECONDS = setting('BENCH_HTTP_WARMUP_SECONDS', 1, 0.3);
const GOAL_SHARE = 0.6;
const START_TIMEOUT_MS = 60_000;
/** Requests one round may make in all (a bound, far above what 2 cores reach). */
const ROUND_REQUESTS_MAX = 5_000_000;
const PATH = '/api/v1/network/health';
const BIN = new URL('../bin/run.js', import.meta.url).pathname;
const BARE = new URL('./http-bare.ts', import.meta.url).pathname;

/** Spawns a process and resolves with the first JSON document it prints on stdout. */
function spawnJson<T>(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ info: T; pid: number; stop(): void }> {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(process.execPath, args, {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let out = '';
    let err = '';
    child.stderr!.on('data', (chunk) => {
      err = (err + chunk).slice(-4000);
    });
    const timer = setTimeout(
      () => reject(new Error(`${args[0]} did not start\n${err}`)),
      START_TIMEOUT_MS,
    );
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      try {
        const info = JSON.parse(out) as T;
        clearTimeout(timer);
        resolve({ info, pid: child.pid!, stop: () => child.kill('SIGTERM') });
      } catch {
        // not complete yet
      }
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}\n${err}`)));
  });
}

/**
 * CPU milliseconds (user + system) process `pid` has used, from /proc (Linux): what a request
 * costs the server, which a busy machine's scheduling does not change as much as req/s.
 */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * (1000 / CLOCK_TICKS_PER_SECOND);
}
/** USER_HZ: 100 on Linux. */
const CLOCK_TICKS_PER_SECOND = 100;

interface RoundResult {
  /** Server CPU ms per request in the round. */
  cpuMsPerRequest: number;
  requests: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
}

/** CLIENTS loops, each one request at a time on its own connection, for `seconds`. */
async function load(
  url: string,
  agent: Agent,
  seconds: number,
  serverPid: number,
): Promise<RoundResult> {
  const cpuBefore = cpuMs(serverPid);
  const latenciesMs: number[] = [];
  let requests = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const client = async () => {
    while (performance.now() < deadline && requests < ROUND_REQUESTS_MAX) {
      const sent = performance.now();
      try {
        const response = await request(url, { dispatcher: agent });
        await response.body.arrayBuffer();
        if (response.statusCode !== 200) errors++;
      } catch {
        errors++;
      }
      latenciesMs.push(performance.now() - sent);
      requests++;
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  return {
    cpuMsPerRequest: (cpuMs(serverPid) - cpuBefore) / Math.max(1, requests),
    requests,
    errors,
    seconds: (performance.now() - started) / 1000,
    latenciesMs,
  };
}

const median = (values: number[]) => percentile(values, 50);
const round1 = (value: number) => Math.round(value * 10) / 10;
const round2 = (value: number) => Math.round(value * 100) / 100;
const round3 = (value: number) => Math.round(value * 1000) / 1000;

async function main(): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), 'rdbnet-bench-http-'));
  const stops: (() => void)[] = [];
  try {
    const node = await spawnJson<{ id: string; http: string; certsDir: string }>(
      [
        BIN,
        'node',
        'start',
        '--json',
        '--id',
        'h1',
        '--listen',
        '127.0.0.1:0',
        '--http',
        '127.0.0.1:0',
        '--data-dir',
        join(home, 'h1'),
      ],
      {
        RDBNET_HOME: home,
        CI: 'true',
        RDBNET_LOG_LEVEL: 'warn',
        RDBNET_HTTP_RATE_PER_SECOND: '1000000',
        RDBNET_HTTP_RATE_BURST: '1000000',
      },
    );
    stops.push(node.stop);
    const certs = node.info.certsDir;
    const agent = new Agent({
      connections: CLIENTS,
      pipelining: 1,
      connect: {
        ca: await readFile(join(certs, 'ca.crt'), 'utf8'),
        cert: await readFile(join(certs, 'client.admin.crt'), 'utf8'),
        key: await readFile(join(certs, 'client.admin.key'), 'utf8'),
      },
    });
    const nodeUrl = `https://${node.info.http}${PATH}`;
    // The node's own answer, once it is a member, is what the ceiling serves.
    let bytes = Buffer.alloc(0);
    for (let tries = 0; tries < 100; tries++) {
      const response = await request(nodeUrl, { dispatcher: agent });
      bytes = Buffer.from(await response.body.arrayBuffer());
      if (response.statusCode === 200 && JSON.parse(bytes.toString()).status === 'healthy') break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const bodyFile = join(home, 'health.json');
    await writeFile(bodyFile, bytes);
    const bare = await spawnJson<{ port: number }>([BARE], {
      BARE_CERTS_DIR: certs,
      BARE_NODE_ID: node.info.id,
      BARE_BODY_FILE: bodyFile,
    });
    stops.push(bare.stop);
    const bareUrl = `https://127.0.0.1:${bare.info.port}${PATH}`;

    const targets = [
      {
        name: 'ceiling: bare fastify handler, same bytes',
        url: bareUrl,
        pid: bare.pid,
        rounds: [] as RoundResult[],
      },
      {
        name: 'node --http (auth + admin handler)',
        url: nodeUrl,
        pid: node.pid,
        rounds: [] as RoundResult[],
      },
    ];
    // Warm-up: every client's connection opened (100 TLS handshakes with client certificates
    // are not what is measured), then load for a while.
    for (const target of targets) {
      for (let pass = 0; pass < 3; pass++) {
        await Promise.all(
          Array.from({ length: CLIENTS }, async () => {
            const response = await request(target.url, { dispatcher: agent });
            await response.body.arrayBuffer();
          }),
        );
      }
      await load(target.url, agent, WARMUP_SECONDS, target.pid);
    }
    // Alternating which goes first, so neither always meets the machine in the same state.
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        target.rounds.push(await load(target.url, agent, ROUND_SECONDS, target.pid));
      }
    }
    await agent.close();

    const summary = targets.map((target) => ({
      target: target.name,
      requestsPerSecond: round1(median(target.rounds.map((r) => r.requests / r.seconds))),
      p50Ms: round2(median(target.rounds.map((r) => percentile(r.latenciesMs, 50)))),
      p99Ms: round2(median(target.rounds.map((r) => percentile(r.latenciesMs, 99)))),
      cpuMsPerRequest: round3(median(target.rounds.map((r) => r.cpuMsPerRequest))),
      errors: target.rounds.reduce((sum, r) => sum + r.errors, 0),
      rounds: target.rounds.map((r) => round1(r.requests / r.seconds)),
    }));
    const [ceiling, served] = summary as [(typeof summary)[0], (typeof summary)[0]];
    const share = served.requestsPerSecond / ceiling.requestsPerSecond;
    const cpuShare = ceiling.cpuMsPerRequest / served.cpuMsPerRequest;
    const table = new Table({
      head: [
        'target',
        'req/s (median)',
        'p50 ms',
        'p99 ms',
        'server CPU ms/req',
        'errors',
        'req/s per round',
      ],
      style: { head: [], border: [] },
    });
    for (const row of summary) {
      table.push(
        [
          row.target,
          row.requestsPerSecond,
          row.p50Ms,
          row.p99Ms,
          row.cpuMsPerRequest,
          row.errors,
          row.rounds.join(', '),
        ].map(String),
      );
    }
    console.log(table.toString());
    console.log(
      `GET ${PATH}, ${CLIENTS} concurrent clients, ${ROUNDS} round(s) of ${ROUND_SECONDS} s: ` +
        `node at ${(share * 100).toFixed(1)}% of the ceiling (goal >= ${GOAL_SHARE * 100}%: ${share >= GOAL_SHARE ? 'met' : 'NOT met'})` +
        `; by server CPU per request ${(cpuShare * 100).toFixed(1)}%` +
        `${QUICK ? ' — quick mode, figures mean nothing' : ''}`,
    );
    const file = await writeResults('http', {
      path: PATH,
      clients: CLIENTS,
      roundSeconds: ROUND_SECONDS,
      rounds: ROUNDS,
      bodyBytes: bytes.length,
      targets: summary,
      shareOfCeiling: round2(share),
      cpuShareOfCeiling: round2(cpuShare),
      goal: GOAL_SHARE,
      met: share >= GOAL_SHARE,
    });
    console.log(`results: ${file}`);
    if (summary.some((row) => row.errors > 0)) {
      throw new Error(
        `requests failed: ${summary.map((row) => `${row.target} ${row.errors}`).join(', ')}`,
      );
    }
  } finally {
    for (const stop of stops) stop();
    await rm(home, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
