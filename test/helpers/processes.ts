import assert from 'node:assert/strict';
/**
 * Real processes for integration tests: `rdbnet node start` and one-shot CLI commands,
 * run with the same Node that runs the tests. Every spawned node is registered and
 * killed in teardown, whatever the test did.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(REPO_ROOT, 'bin', 'run.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `rdbnet <args>` to completion (bounded by timeoutMs) with stdin closed. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, CI: 'true', ...env },
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
      reject(
        new Error(`rdbnet ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr}`),
      );
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like runCli, with `input` written to the command's stdin (for list flags given as `-`). */
export function runCliWithInput(
  args: string[],
  input: string,
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, CI: 'true', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`rdbnet ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr}`),
      );
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface NodeProcess {
  child: ChildProcess;
  /** What `node start --json` printed once listening. */
  info: {
    id: string;
    clusterId: string;
    address: string;
    listen: string;
    dataDir: string;
    certsDir: string | null;
    pid: number;
  };
  address: string;
  stderr(): string;
  /** SIGTERM and wait for exit; resolves with the exit code and how long the stop took. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; elapsedMs: number }>;
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();

/**
 * Starts `rdbnet node start --json <args>` and waits until it prints its JSON document.
 * `input`, when given, is written to the node's stdin (for `--join -`).
 */
export function startNode(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
  input?: string,
): Promise<NodeProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'node', 'start', '--json', ...args], {
      env: { ...process.env, CI: 'true', ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    live.add(child);
    if (input !== undefined) {
      child.stdin?.on('error', () => {});
      child.stdin?.end(input);
    }
    let stdout = '';
    let stderr = '';
    let settled = false;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
      child.on('exit', (code, signal) => {
        live.delete(child);
        done({ code, signal });
      }),
    );
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new Error(`node did not start within ${timeoutMs} ms\n${stderr}`)),
      timeoutMs,
    );
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
      if (settled) return;
      try {
        const info = JSON.parse(stdout) as NodeProcess['info'];
        settled = true;
        clearTimeout(timer);
        resolve({
          child,
          info,
          address: info.listen,
          stderr: () => stderr,
          async stop() {
            const started = performance.now();
            child.kill('SIGTERM');
            const result = await exited;
            return { ...result, elapsedMs: performance.now() - started };
          },
          async kill() {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
            await exited;
          },
        });
      } catch {
        // document not complete yet
      }
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      fail(new Error(`node exited with code ${code} before it was ready\n${stderr}`));
    });
  });
}

/** Kills every node a test started; call from after()/afterEach(). */
export async function killAllNodes(): Promise<void> {
  await Promise.all(
    [...live].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

export async function tempHome(
  prefix = 'rdbnet-test-',
): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** One CLI run, for assertion messages. */
export function describeResult(result: CliResult): string {
  return `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
}

/** stdout as the one JSON document a `--json` command prints, or a failed assertion. */
export function parseJson<T>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    assert.fail(`stdout is not one JSON document:\n${describeResult(result)}`);
  }
}

/**
 * `until(what, probe, timeoutMs)`: polls `probe` every `pollMs` until it returns a value,
 * failing the test with `what` (and the last error) after `timeoutMs`.
 */
export function poller(pollMs: number) {
  return async function until<T>(
    what: string,
    probe: () => Promise<T | undefined>,
    timeoutMs = 10_000,
  ): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
      try {
        const value = await probe();
        if (value !== undefined) return value;
      } catch (error) {
        lastError = error;
      }
      if (performance.now() > deadline) {
        assert.fail(
          `${what}: not within ${timeoutMs} ms${lastError ? ` (${String(lastError)})` : ''}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  };
}
