/**
 * `rdbnet dev`: a local cluster of real node processes in one command. Each node is
 * `rdbnet node start` in its own process (the same binary, the same Node), on consecutive
 * loopback ports, sharing one RDBNET_HOME so the first node's CA signs them all; every node
 * has --bootstrap-expect N, so they form one cluster by themselves. Their logs are copied to
 * stderr with the node's id in front. Stopping (Ctrl-C, SIGTERM, or one node exiting) stops
 * them all: SIGTERM, then SIGKILL after STOP_GRACE_MS.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ErrorCode, RdbnetError } from '../core/errors.ts';

/** Most nodes `rdbnet dev` starts: a laptop's cluster, not a load test. */
export const DEV_NODES_MAX = 9;
/** How long a node may take to print its start document. */
const START_TIMEOUT_MS = 30_000;
/** A node stops within 5 s (node start's deadline); then it is killed. */
const STOP_GRACE_MS = 6000;
/** A start document longer than this is not one. */
const START_DOCUMENT_BYTES_MAX = 64 * 1024;

const RUN_JS = fileURLToPath(new URL('../../bin/run.js', import.meta.url));

export interface DevNode {
  id: string;
  address: string;
  dataDir: string;
  pid: number;
}

export interface DevClusterPlan {
  nodes: number;
  basePort: number;
  /** RDBNET_HOME of every node: certificates in <dir>/certs, data in <dir>/<id>. */
  dir: string;
  logLevel: string;
}

/** Refuses a plan whose ports are taken, before anything is created or started. */
export async function checkPortsFree(plan: DevClusterPlan): Promise<void> {
  for (let i = 0; i < plan.nodes; i++) {
    const port = plan.basePort + i;
    if (!(await portFree(port))) {
      throw new RdbnetError(ErrorCode.Usage, `port ${port} on 127.0.0.1 is in use`, {
        hint: `pass --base-port to use ${plan.nodes} free ports from another number`,
      });
    }
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () =>
      server.close(() => resolve(true)),
    );
  });
}

export class DevCluster {
  readonly nodes: DevNode[] = [];
  private readonly children = new Map<string, ChildProcess>();
  private stopping: Promise<void> | null = null;
  /** Resolves with the id and exit code of the first node that exits on its own. */
  readonly firstExit: Promise<{ id: string; code: number | null }>;
  private onExit!: (exit: { id: string; code: number | null }) => void;
  private readonly plan: DevClusterPlan;
  private readonly logLine: (line: string) => void;

  constructor(plan: DevClusterPlan, logLine: (line: string) => void) {
    this.plan = plan;
    this.logLine = logLine;
    this.firstExit = new Promise((resolve) => {
      this.onExit = resolve;
    });
  }

  /** Starts n1, then the others joining it; resolves once every node listens. */
  async start(): Promise<DevNode[]> {
    const ids = Array.from({ length: this.plan.nodes }, (_, i) => `n${i + 1}`);
    try {
      const first = await this.startOne(ids[0]!, 0, '');
      this.nodes.push(first);
      const rest = await Promise.all(
        ids.slice(1).map((id, i) => this.startOne(id, i + 1, first.address)),
      );
      this.nodes.push(...rest);
      return this.nodes;
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  private startOne(id: string, index: number, join: string): Promise<DevNode> {
    const { plan } = this;
    const args = [
      RUN_JS,
      'node',
      'start',
      '--json',
      '--id',
      id,
      '--listen',
      `127.0.0.1:${plan.basePort + index}`,
      '--data-dir',
      `${plan.dir}/${id}`,
      '--bootstrap-expect',
      String(plan.nodes),
      '--log-level',
      plan.logLevel,
      ...(join === '' ? [] : ['--join', join]),
    ];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, RDBNET_HOME: plan.dir, RDBNET_CERTS_DIR: '', RDBNET_NODE: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.children.set(id, child);
    prefixLines(child.stderr!, (line) => this.logLine(`[${id}] ${line}`));
    return new Promise<DevNode>((resolve, reject) => {
      let document = '';
      let ready = false;
      const timer = setTimeout(
        () =>
          reject(
            new RdbnetError(
              ErrorCode.DevNodeFailed,
              `${id} did not start within ${START_TIMEOUT_MS / 1000} s (its log is above)`,
            ),
          ),
        START_TIMEOUT_MS,
      );
      child.stdout!.on('data', (chunk: Buffer) => {
        if (ready) return;
        document += chunk.toString('utf8');
        if (document.length > START_DOCUMENT_BYTES_MAX) document = '';
        try {
          const info = JSON.parse(document) as { listen: string; dataDir: string; pid: number };
          ready = true;
          clearTimeout(timer);
          resolve({ id, address: info.listen, dataDir: info.dataDir, pid: info.pid });
        } catch {
          // not the whole document yet
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        this.children.delete(id);
        if (!ready) {
          reject(
            new RdbnetError(
              ErrorCode.DevNodeFailed,
              `${id} exited with code ${code} before it listened`,
            ),
          );
        } else if (this.stopping === null) {
          this.onExit({ id, code });
        }
      });
    });
  }

  /** SIGTERM to every node, SIGKILL to those still running after STOP_GRACE_MS. */
  stop(): Promise<void> {
    this.stopping ??= Promise.all(
      [...this.children.values()].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    ).then(() => {});
    return this.stopping;
  }
}

/** Calls `onLine` for each complete line of `stream` (a partial line is bounded). */
function prefixLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  const LINE_BYTES_MAX = 16 * 1024;
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    partial += chunk;
    let newline = partial.indexOf('\n');
    while (newline >= 0) {
      onLine(partial.slice(0, newline));
      partial = partial.slice(newline + 1);
      newline = partial.indexOf('\n');
    }
    if (partial.length > LINE_BYTES_MAX) {
      onLine(partial);
      partial = '';
    }
  });
  stream.on('end', () => {
    if (partial !== '') onLine(partial);
  });
}
