/**
 * bench:smoke against a package.json of stand-in benches (shell one-liners): it must run each
 * in quick mode, share one build, and fail naming every bench that crashes, hangs or prints
 * nothing a person could read, with the tail of its stderr.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SMOKE = fileURLToPath(new URL('../../bench/smoke.ts', import.meta.url));
const TABLE = "printf '┌───┐\\n│ 1 │\\n└───┘\\n'";
/** Exits 9 unless run in quick mode, so a bench run at full size is caught. */
const QUICK_ONLY = '[ "$BENCH_QUICK" = 1 ] || exit 9';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function smoke(
  scripts: Record<string, string>,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'rdbnet-bench-smoke-'));
  dirs.push(dir);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'stand-in', scripts }));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SMOKE], {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`bench/smoke.ts did not finish within 60 s\n${stderr}`));
    }, 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, dir });
    });
  });
}

/** Gone, or a zombie waiting for a parent that is not ours to reap. */
function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
  return / Z /.test(stat);
}

describe('bench:smoke', () => {
  test('runs every bench:* script in quick mode after one shared build, and passes', async () => {
    const result = await smoke({
      build: 'echo built >> build.log',
      'bench:table': `npm run build && ${QUICK_ONLY} && echo progress >&2 && ${TABLE}`,
      'bench:json': `npm run build && ${QUICK_ONLY} && echo '{"callsPerSec": 1}'`,
      'bench:smoke': 'exit 42',
      'test:unit': 'exit 43',
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(readFileSync(join(result.dir, 'build.log'), 'utf8'), 'built\n');
    assert.match(result.stderr, /bench:table ok/);
    assert.match(result.stderr, /bench:json ok/);
    assert.match(result.stderr, /2\/2 ok/);
    assert.match(result.stdout, /│ 1 │/, 'the table is passed through');
  });

  test('fails naming each bench that crashed, hung or printed nothing, with its stderr tail', async () => {
    const result = await smoke(
      {
        'bench:crash': "echo 'RDB_CONFIG_INVALID gossip keyring not found' >&2; exit 3",
        'bench:silent': 'echo measuring >&2; echo done',
        'bench:hang': 'sleep 120 & echo $! > hang.pid; wait',
        'bench:fine': `${QUICK_ONLY} && ${TABLE}`,
      },
      { BENCH_SMOKE_TIMEOUT_MS: '3000' },
    );
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /Error: bench:crash exited with 3; its stderr ends with:\nRDB_CONFIG_INVALID gossip keyring not found/,
    );
    assert.match(
      result.stderr,
      /Error: bench:silent printed no table and no JSON on stdout; its stderr ends with:\nmeasuring/,
    );
    assert.match(result.stderr, /Error: bench:hang did not finish within 3000 ms/);
    assert.match(result.stderr, /bench:fine ok/);
    assert.match(result.stderr, /1\/4 ok/);
    // What the hung bench started was killed with it.
    const pid = Number(readFileSync(join(result.dir, 'hang.pid'), 'utf8'));
    assert.ok(pid > 0);
    assert.ok(processGone(pid), `process ${pid} started by bench:hang is still running`);
  });

  test('a package without benches is an error, not a silent pass', async () => {
    const result = await smoke({ build: 'true' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no bench:\* scripts/);
  });
});
