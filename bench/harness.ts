/**
 * What every bench:* script shares: quick mode, result files, child processes, statistics,
 * rdbnet nodes and the operator's connections to them.
 *
 * Quick mode (env BENCH_QUICK=1) runs the real benchmark, peers included where installed, with
 * small numbers, so that `npm run bench:smoke` can prove in CI that each bench still works.
 * Its figures mean nothing; they go to bench/results/<name>.quick.json so a full run's file
 * is never overwritten by them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { nodeDialInit } from '../src/cli/node-client.ts';
import type { ClusterStatusReply, GossipMember } from '../src/core/protocol/messages.ts';
import { request } from '../src/core/rpc/request.ts';
import type { Connection } from '../src/core/transport/connection.ts';
import { dial } from '../src/core/transport/dial.ts';

export const QUICK = process.env['BENCH_QUICK'] === '1';

/** A numeric setting: the env variable when set, else the full or the quick-mode default. */
export function setting(envName: string, full: number, quick: number): number {
  const raw = process.env[envName];
  if (raw === undefined || raw === '') return QUICK ? quick : full;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${envName} must be a non-negative number, got '${raw}'`);
  }
  return value;
}

/** Writes bench/results/<name>.json (<name>.quick.json in quick mode); returns its path. */
export async function writeResults(name: string, data: unknown): Promise<string> {
  const dir = new URL('results/', import.meta.url);
  await mkdir(dir, { recursive: true });
  const file = new URL(`${name}${QUICK ? '.quick' : ''}.json`, dir);
  await writeFile(file, `${JSON.stringify(data, null, 2)}\n`);
  return `bench/results/${name}${QUICK ? '.quick' : ''}.json`;
}

// ---- child processes: every one registered, all SIGKILLed when the bench exits

export const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function kill9(child: ChildProcess): Promise<void> {
  child.kill('SIGKILL');
  await exited(child);
}

/** A loopback port free a moment ago (for peers that cannot be told to pick their own). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` every `everyMs` until it returns a value; errors count as "not yet". */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
  everyMs = 10,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const value = await Promise.resolve()
      .then(probe)
      .catch((error: unknown) => {
        lastError = error;
        return undefined;
      });
    if (value !== undefined) return value;
    if (performance.now() > deadline) {
      const cause = lastError === undefined ? '' : ` (last error: ${String(lastError)})`;
      throw new Error(`${what}: not within ${timeoutMs} ms${cause}`);
    }
    await sleep(everyMs);
  }
}

// ---- statistics

/** Nearest-rank percentile: with fewer than 100 samples, p99 is the largest. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

// ---- rdbnet nodes and the operator's connections to them

const BIN = new URL('../bin/run.js', import.meta.url).pathname;

export interface BenchNode {
  id: string;
  dataDir: string;
  /** host:port the node listens on, as it printed it. */
  address: string;
  child: ChildProcess;
  spawnedAt: number;
  /** When the node printed its listen address (performance.now()). */
  readyAt: number;
}

/**
 * `rdbnet node start --json` under `home` (RDBNET_HOME: default certs dir, created by the
 * first node and shared), on a loopback port of its choosing, joining `seeds` ('' for none);
 * `extraArgs` go after those flags (e.g. `--config FILE`).
 */
export function startRdbnet(
  home: string,
  id: string,
  seeds: string,
  startTimeoutMs = 60_000,
  extraArgs: readonly string[] = [],
): Promise<BenchNode> {
  return new Promise((resolve, reject) => {
    const spawnedAt = performance.now();
    const dataDir = join(home, id);
    const child = track(
      spawn(
        process.execPath,
        [
          BIN,
          'node',
          'start',
          '--json',
          '--id',
          id,
          '--listen',
          '127.0.0.1:0',
          '--data-dir',
          dataDir,
          '--join',
          seeds,
          ...extraArgs,
        ],
        {
          env: { ...process.env, RDBNET_HOME: home, CI: 'true' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    let out = '';
    let err = '';
    child.stderr!.on('data', (chunk) => {
      err = (err + chunk).slice(-4000);
    });
    const timer = setTimeout(
      () => reject(new Error(`${id} did not start\n${err}`)),
      startTimeoutMs,
    );
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      try {
        const info = JSON.parse(out) as { listen: string };
        clearTimeout(timer);
        resolve({
          id,
          dataDir,
          address: info.listen,
          child,
          spawnedAt,
          readyAt: performance.now(),
        });
      } catch {
        // not complete yet
      }
    });
    child.once('exit', (code) => reject(new Error(`${id} exited with ${code}\n${err}`)));
  });
}

/**
 * Connections to nodes as the operator (`admin` client certificate in certsDir), dialed as
 * the CLI dials (nodeDialInit) and kept open per address, so a bench can poll every few
 * milliseconds without paying a TLS handshake per poll.
 */
export class Admin {
  private readonly connections = new Map<string, Connection>();
  private readonly certsDir: string;
  private readonly timeoutMs: number;

  constructor(certsDir: string, timeoutMs = 1000) {
    this.certsDir = certsDir;
    this.timeoutMs = timeoutMs;
  }

  async connection(address: string): Promise<Connection> {
    const open = this.connections.get(address);
    if (open !== undefined && open.state === 'open') return open;
    const connection = await dial(
      await nodeDialInit({
        node: address,
        'certs-dir': this.certsDir,
        client: 'admin',
        insecure: false,
        timeout: this.timeoutMs,
      }),
    );
    this.connections.set(address, connection);
    return connection;
  }

  /** The node's own Raft view (ClusterStatusRequest, local only). */
  async status(address: string, timeoutMs = 500): Promise<ClusterStatusReply> {
    return request(
      await this.connection(address),
      'clusterStatusRequest',
      { localOnly: true },
      timeoutMs,
    );
  }

  /** The node's gossip view (MembersRequest). */
  async members(address: string, timeoutMs = 1000): Promise<GossipMember[]> {
    const reply = await request(await this.connection(address), 'membersRequest', {}, timeoutMs);
    return reply.members;
  }

  /** Forgets the connection to a node that is gone. */
  drop(address: string): void {
    this.connections.get(address)?.close();
    this.connections.delete(address);
  }

  close(): void {
    for (const connection of this.connections.values()) connection.close();
    this.connections.clear();
  }
}
