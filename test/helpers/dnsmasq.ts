/**
 * A real dnsmasq (Debian `dnsmasq`, installed by .ci/run) serving SRV and address records on
 * 127.0.0.1 at a free high port, in the foreground (-k), with no upstream, no hosts file and
 * no config file: it answers only for what a test gives it, and NXDOMAIN for other names
 * under its local domain. A high port needs no root. Killed in teardown.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

export interface SrvRecordSpec {
  /** e.g. _rdbnet._tcp.db.internal */
  name: string;
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

export interface Dnsmasq {
  /** 127.0.0.1:PORT, for server= */
  server: string;
  stop(): Promise<void>;
}

/** The dnsmasq binary, or null when it is not installed. */
export function dnsmasqBinary(): string | null {
  for (const path of ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq']) {
    try {
      execFileSync(path, ['--version'], { stdio: 'ignore' });
      return path;
    } catch {
      // next
    }
  }
  return null;
}

/** A UDP port free on 127.0.0.1 right now. */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** `count` distinct TCP ports free on 127.0.0.1 right now (for nodes an SRV record names). */
export async function freeTcpPorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

const running = new Set<ChildProcess>();

/** Starts dnsmasq with these records; resolves once it answers. */
/** Options of startDnsmasq. */
export interface DnsmasqOptions {
  srv?: SrvRecordSpec[];
  /** [name, address] pairs (A or AAAA by the address's kind). */
  hosts?: [string, string][];
  /** Domain answered locally (NXDOMAIN for unknown names in it). */
  localDomain?: string;
  /** TTL of the address records, seconds. */
  ttlSeconds?: number;
}

/** Ports tried before giving up: dnsmasq also listens on TCP at its port, which another test's
 * process may hold although the UDP port was free; it then exits at once, and a new port is
 * drawn. */
const DNSMASQ_PORT_TRIES = 5;

export async function startDnsmasq(options: DnsmasqOptions): Promise<Dnsmasq> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDnsmasqOnce(options);
    } catch (error) {
      if (!(error instanceof DnsmasqExited) || attempt >= DNSMASQ_PORT_TRIES) throw error;
    }
  }
}

class DnsmasqExited extends Error {}

async function startDnsmasqOnce(options: DnsmasqOptions): Promise<Dnsmasq> {
  const binary = dnsmasqBinary();
  if (binary === null) throw new Error('dnsmasq is not installed');
  const port = await freeUdpPort();
  const args = [
    '-k',
    '--no-resolv',
    '--no-hosts',
    '--conf-file=/dev/null',
    '--pid-file=',
    '--log-facility=/dev/null',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    `--local=/${options.localDomain ?? 'db.internal'}/`,
    `--local-ttl=${options.ttlSeconds ?? 0}`,
  ];
  for (const record of options.srv ?? []) {
    args.push(
      `--srv-host=${record.name},${record.target},${record.port},${record.priority ?? 0},${record.weight ?? 0}`,
    );
  }
  for (const [name, address] of options.hosts ?? []) args.push(`--host-record=${name},${address}`);
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running.delete(child);
      resolve();
    }),
  );
  // Ready once it answers a query (any answer, NXDOMAIN included).
  const { promises } = await import('node:dns');
  const resolver = new promises.Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  const deadline = performance.now() + 5000;
  for (;;) {
    if (child.exitCode !== null) throw new DnsmasqExited(`dnsmasq exited: ${stderr}`);
    try {
      await resolver.resolve4(`ready.${options.localDomain ?? 'db.internal'}`);
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') break;
    }
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`dnsmasq did not answer within 5 s: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    server: `127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Kills every dnsmasq a test started; call from after(). */
export async function stopAllDnsmasq(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}
