/**
 * bench:cli — how long a command takes as a whole process, the way a shell script pays for it:
 * `rdbnet --version` and `rdbnet health` against a local node (through bin/run.js executed
 * directly, so its /bin/sh launcher is part of the cost), next to `etcdctl version` in the same
 * run when etcdctl (Debian etcd-client) is installed. Wall time per run (median, p90) and the
 * CPU time (user + system) of the child processes, from the kernel's accounting of reaped
 * children (/proc/self/stat cutime + cstime, 10 ms ticks, so averaged over the runs).
 *
 * Goals (issue 16): --version ≤ 120 ms installed (≤ 50 ms as a single executable, not built
 * yet), health ≤ 150 ms. The figures are compared by a person, never asserted.
 *
 * Env: BENCH_CLI_RUNS (runs per command, 20; quick 3), BENCH_QUICK=1.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { percentile, QUICK, round, setting, track, writeResults } from './harness.ts';

const RUNS = setting('BENCH_CLI_RUNS', 20, 3);
/** Bound on one run of a measured command. */
const RUN_TIMEOUT_MS = 30_000;
/** Bound on the node's start-up. */
const NODE_START_TIMEOUT_MS = 60_000;
const BIN = new URL('../bin/run.js', import.meta.url).pathname;
const CLOCK_TICKS_PER_SECOND = 100;

interface Measured {
  command: string;
  runs: number;
  exitCodes: number[];
  wallMedianMs: number;
  wallP90Ms: number;
  wallMinMs: number;
  cpuMeanMs: number;
  goalMs: number | null;
}

/** CPU seconds used by this process's reaped children so far (user + system). */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Fields after the command name in parentheses; cutime and cstime are fields 16 and 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[13]) + Number(fields[14]);
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

function measure(
  label: string,
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  goalMs: number | null,
): Measured {
  // One warm-up run (fills the compile cache and the page cache), not counted.
  spawnSync(file, args, { env, stdio: 'ignore', timeout: RUN_TIMEOUT_MS });
  const walls: number[] = [];
  const exitCodes: number[] = [];
  const cpuBefore = childrenCpuMs();
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now();
    const result = spawnSync(file, args, { env, stdio: 'ignore', timeout: RUN_TIMEOUT_MS });
    walls.push(performance.now() - started);
    exitCodes.push(result.status ?? -1);
  }
  const cpuMeanMs = (childrenCpuMs() - cpuBefore) / RUNS;
  return {
    command: label,
    runs: RUNS,
    exitCodes: [...new Set(exitCodes)],
    wallMedianMs: round(percentile(walls, 50)),
    wallP90Ms: round(percentile(walls, 90)),
    wallMinMs: round(Math.min(...walls)),
    cpuMeanMs: round(cpuMeanMs),
    goalMs,
  };
}

/** A zero-config node on a loopback port; resolves with its address once it listens. */
function startNode(home: string): Promise<{ address: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(process.execPath, [BIN, 'node', 'start', '--json', '--listen', '127.0.0.1:0'], {
        env: { ...process.env, RDBNET_HOME: home, CI: 'true' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let out = '';
    let err = '';
    child.stderr!.on('data', (chunk) => {
      err = (err + chunk).slice(-4000);
    });
    const timer = setTimeout(
      () => reject(new Error(`node did not start\n${err}`)),
      NODE_START_TIMEOUT_MS,
    );
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      try {
        const info = JSON.parse(out) as { listen: string };
        clearTimeout(timer);
        resolve({ address: info.listen, child });
      } catch {
        // not complete yet
      }
    });
    child.once('exit', (code) => reject(new Error(`node exited with ${code}\n${err}`)));
  });
}

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

const home = await mkdtemp(join(tmpdir(), 'rdbnet-bench-cli-'));
try {
  const node = await startNode(home);
  const env = { ...process.env, RDBNET_HOME: home, CI: 'true', RDBNET_NODE: '' };
  const rows: Measured[] = [];
  rows.push(measure('rdbnet --version', BIN, ['--version'], env, 120));
  rows.push(measure('rdbnet health', BIN, ['health', '--node', node.address], env, 150));
  rows.push(measure('rdbnet clustr members (typo)', BIN, ['clustr', 'members'], env, null));
  rows.push(measure('node -e 0 (Node 24 alone)', process.execPath, ['-e', '0'], env, null));
  if (onPath('etcdctl')) {
    rows.push(measure('etcdctl version', 'etcdctl', ['version'], env, null));
  }
  node.child.kill('SIGTERM');

  const table = new Table({
    head: [
      'command',
      'runs',
      'exit',
      'wall median ms',
      'wall p90 ms',
      'wall min ms',
      'cpu mean ms',
      'goal ms',
    ],
  });
  for (const row of rows) {
    table.push([
      row.command,
      row.runs,
      row.exitCodes.join(','),
      row.wallMedianMs,
      row.wallP90Ms,
      row.wallMinMs,
      row.cpuMeanMs,
      row.goalMs ?? '-',
    ]);
  }
  const [load1] = readFileSync('/proc/loadavg', 'utf8').split(' ');
  console.log(table.toString());
  console.log(
    `load average (1 min) at the end: ${load1}${QUICK ? ' — quick mode: figures mean nothing' : ''}`,
  );
  const file = await writeResults('cli', {
    quick: QUICK,
    runs: RUNS,
    loadAverage1m: Number(load1),
    node: process.version,
    rows,
  });
  console.log(`results: ${file}`);
} finally {
  await rm(home, { recursive: true, force: true });
}
