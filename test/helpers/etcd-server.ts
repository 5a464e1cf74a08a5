/**
 * A real etcd (Debian's etcd-server, binary `etcd`) for the etcd discovery tests: one member on
 * loopback ports from the kernel, a temporary data dir, killed and removed in teardown. `etcdctl`
 * (Debian's etcd-client) reads what the provider wrote, as an operator would.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** etcd is up well within this on an idle machine; the bound is for a loaded one. */
const ETCD_READY_MS_MAX = 30_000;

function onPath(binary: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${binary}`]).status === 0;
}

/** Why the etcd tests cannot run here, or undefined when etcd and etcdctl are installed. */
export function etcdMissing(): string | undefined {
  if (!onPath('etcd')) return 'etcd is not installed (Debian etcd-server; .ci/run installs it)';
  if (!onPath('etcdctl'))
    return 'etcdctl is not installed (Debian etcd-client; .ci/run installs it)';
  return undefined;
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface EtcdTlsFiles {
  /** PEM files: etcd's server certificate and key, and the CA client certificates must chain to. */
  certFile: string;
  keyFile: string;
  caFile: string;
}

export interface EtcdServer {
  /** `127.0.0.1:PORT` of the client listener. */
  endpoint: string;
  /** Runs etcdctl against this server; resolves with its stdout. */
  etcdctl(args: string[]): Promise<string>;
  /** Kills etcd with SIGKILL and waits until it is gone; keeps its data dir and ports. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data dir; resolves when it is healthy. */
  restart(): Promise<void>;
  /** Kills etcd (SIGKILL) and removes its data dir; idempotent. */
  stop(): Promise<void>;
}

/**
 * One etcd member on loopback. With `tls`, clients must speak HTTPS and present a certificate
 * signed by the CA (`--client-cert-auth`); etcdctl is then given the same files.
 */
export async function startEtcd(options: { tls?: EtcdTlsFiles } = {}): Promise<EtcdServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'rdbnet-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const scheme = options.tls === undefined ? 'http' : 'https';
  const client = `${scheme}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const tlsArgs =
    options.tls === undefined
      ? []
      : [
          `--cert-file=${options.tls.certFile}`,
          `--key-file=${options.tls.keyFile}`,
          `--trusted-ca-file=${options.tls.caFile}`,
          '--client-cert-auth',
        ];
  const etcdctlTls =
    options.tls === undefined
      ? []
      : [
          `--cacert=${options.tls.caFile}`,
          `--cert=${options.tls.certFile}`,
          `--key=${options.tls.keyFile}`,
        ];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';
  const spawnEtcd = () => {
    const started = spawn(
      'etcd',
      [
        '--name=rdbnet-test',
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=rdbnet-test=${peer}`,
        '--log-level=error',
        ...tlsArgs,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    started.stderr?.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    exited = new Promise<void>((resolve) => started.once('exit', () => resolve()));
    child = started;
  };
  const kill = async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
    await exited;
  };
  let removed = false;
  const stop = async () => {
    await kill();
    if (!removed) {
      removed = true;
      await rm(dataDir, { recursive: true, force: true });
    }
  };
  const endpoint = `127.0.0.1:${clientPort}`;
  const etcdctl = (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      execFile(
        'etcdctl',
        [`--endpoints=${client}`, '--command-timeout=5s', ...etcdctlTls, ...args],
        { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 20_000 },
        (error, stdout, errout) =>
          error
            ? reject(new Error(`etcdctl ${args.join(' ')}: ${errout || error.message}`))
            : resolve(stdout),
      );
    });
  const healthy = async () => {
    const deadline = performance.now() + ETCD_READY_MS_MAX;
    for (;;) {
      try {
        await etcdctl(['endpoint', 'health']);
        return;
      } catch (error) {
        if (child?.exitCode !== null || performance.now() > deadline) {
          await stop();
          throw new Error(`etcd did not become healthy: ${String(error)}\n${stderr}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  };
  spawnEtcd();
  await healthy();
  return {
    endpoint,
    etcdctl,
    kill,
    async restart() {
      await kill();
      spawnEtcd();
      await healthy();
    },
    stop,
  };
}
