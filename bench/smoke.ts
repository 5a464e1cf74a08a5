/**
 * bench:smoke — every `bench:*` script of package.json in quick mode (env BENCH_QUICK=1: the
 * real benchmark, peers included when installed, with small numbers), one after another, so
 * that a benchmark that stops working fails CI instead of rotting unseen.
 *
 * A bench fails when it exits non-zero, outlives its time limit, or prints neither a table
 * nor a JSON document on stdout. Every bench runs even after one fails; the run then exits 1
 * with one line per failure naming the script, followed by the tail of its stderr.
 *
 * Scripts of the form `npm run build && <command>` share one build, done first; <command>
 * then runs under sh with node_modules/.bin first on PATH, as npm runs scripts. Each bench
 * runs in its own process group, killed afterwards, so nothing it started outlives it.
 *
 * Usage: node bench/smoke.ts, from the package root (npm run bench:smoke does that).
 * Options (env): BENCH_SMOKE_TIMEOUT_MS (limit per bench, 180000), BENCH_SMOKE_ONLY
 * (comma-separated script names).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';

const BUILD_PREFIX = 'npm run build && ';
const TIMEOUT_MS = Number(process.env['BENCH_SMOKE_TIMEOUT_MS'] ?? 180_000);
const ONLY = process.env['BENCH_SMOKE_ONLY']?.split(',').filter((name) => name !== '');
/** Bytes of a bench's stdout kept to look for its table (the table comes last). */
const STDOUT_KEPT_BYTES = 256 * 1024;
/** Lines of stderr quoted when a bench fails. */
const STDERR_TAIL_LINES = 15;
const STDERR_KEPT_BYTES = 16 * 1024;

interface Outcome {
  name: string;
  ok: boolean;
  seconds: number;
  why: string;
  stderrTail: string;
}

/** A cli-table3 box (any line opening with a box-drawing corner or edge), or a JSON document. */
function printsTableOrJson(output: string): boolean {
  // A table may come in colour (cli-table3 borders): judge the text, not the escapes.
  const stdout = stripVTControlCharacters(output);
  if (/^[┌├└│]/mu.test(stdout)) return true;
  const candidates = [stdout, ...stdout.split('\n')];
  return candidates.some((text) => {
    const trimmed = text.trim();
    if (!(trimmed.startsWith('{') || trimmed.startsWith('['))) return false;
    try {
      return typeof JSON.parse(trimmed) === 'object';
    } catch {
      return false;
    }
  });
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

let running: ChildProcess | undefined;

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // The group is already gone.
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (running !== undefined) killGroup(running);
    process.exit(1);
  });
}

/** Runs `command` under sh in its own process group; resolves when it and its output end. */
function run(
  command: string,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<{ code: number | null; timedOut: boolean; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    running = child;
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      stdout = (stdout + chunk.toString()).slice(-STDOUT_KEPT_BYTES);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      stderr = (stderr + chunk.toString()).slice(-STDERR_KEPT_BYTES);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      // Whatever the bench left behind (servers, nodes, peers) goes with it.
      killGroup(child);
      running = undefined;
      resolve({ code, timedOut, stdout, stderr });
    });
  });
}

const root = process.cwd();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  scripts?: Record<string, string>;
};
const scripts = Object.entries(pkg.scripts ?? {}).filter(
  ([name]) =>
    name.startsWith('bench:') &&
    name !== 'bench:smoke' &&
    (ONLY === undefined || ONLY.includes(name)),
);
if (scripts.length === 0) {
  console.error('bench:smoke: no bench:* scripts in package.json');
  process.exit(1);
}
const env: NodeJS.ProcessEnv = {
  ...process.env,
  BENCH_QUICK: '1',
  PATH: [join(root, 'node_modules', '.bin'), process.env['PATH'] ?? ''].join(delimiter),
};

const started = performance.now();
const outcomes: Outcome[] = [];
if (scripts.some(([, command]) => command.startsWith(BUILD_PREFIX))) {
  console.error('bench:smoke: npm run build (once for every bench)');
  const build = await run('npm run build', env, TIMEOUT_MS);
  if (build.code !== 0) {
    console.error(`bench:smoke: npm run build failed\n${tail(build.stderr, STDERR_TAIL_LINES)}`);
    process.exit(1);
  }
}
for (const [name, script] of scripts) {
  const command = script.startsWith(BUILD_PREFIX) ? script.slice(BUILD_PREFIX.length) : script;
  console.error(`bench:smoke: ${name} (BENCH_QUICK=1 ${command})`);
  const benchStarted = performance.now();
  const result = await run(command, env, TIMEOUT_MS);
  const seconds = (performance.now() - benchStarted) / 1000;
  const why = result.timedOut
    ? `did not finish within ${TIMEOUT_MS} ms`
    : result.code !== 0
      ? `exited with ${result.code}`
      : printsTableOrJson(result.stdout)
        ? ''
        : 'printed no table and no JSON on stdout';
  outcomes.push({
    name,
    ok: why === '',
    seconds,
    why,
    stderrTail: tail(result.stderr, STDERR_TAIL_LINES),
  });
  console.error(`bench:smoke: ${name} ${why === '' ? 'ok' : 'FAILED'} in ${seconds.toFixed(1)} s`);
}

const totalSeconds = (performance.now() - started) / 1000;
const failed = outcomes.filter((outcome) => !outcome.ok);
console.error(
  `bench:smoke: ${outcomes.length - failed.length}/${outcomes.length} ok in ${totalSeconds.toFixed(1)} s ` +
    `(${outcomes.map((o) => `${o.name} ${o.seconds.toFixed(1)} s`).join(', ')})`,
);
for (const outcome of failed) {
  console.error(`Error: ${outcome.name} ${outcome.why}; its stderr ends with:`);
  console.error(outcome.stderrTail === '' ? '(nothing on stderr)' : outcome.stderrTail);
}
process.exit(failed.length === 0 ? 0 : 1);
