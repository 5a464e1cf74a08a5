/**
 * The processes bench:dataplane starts besides rdbnet nodes and nats-server, each in its own
 * process so that the bench process measures only the requesting side:
 *
 *   nats-responder URL CERTS_DIR ID
 *       A NATS responder with mutual TLS (client certificate `admin` of the bench CA): answers
 *       `echo.ID` (one-to-one) and `echo.all` (scatter-gather: every responder answers) with
 *       the payload it got. Prints `ready` once both subscriptions are registered at the server.
 *   connections ADDRESS CERTS_DIR COUNT CONCURRENCY
 *       Opens COUNT rdbnet connections (TLS 1.3, client certificate `admin`, the full Hello) to
 *       the node at ADDRESS, at most CONCURRENCY handshakes at once, prints one JSON line
 *       `{"opened": N, "ms": T}`, then holds them idle until its stdin closes or it is killed.
 *   tls-connections ADDRESS CERTS_DIR COUNT CONCURRENCY
 *       The same with bare TLS 1.3 connections (client certificate `admin`, no rdbnet Hello),
 *       to bench/servers.ts rawtls: what any Node TLS server pays per idle connection.
 *
 * Both exit 1 with one line on stderr when something fails.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection } from '../src/core/transport/connection.ts';

// Each mode imports only what it uses (below): on a loaded machine, a responder that also
// loaded rdbnet's CLI modules would start seconds later.

/** Handshake deadline of each bench connection (a loaded machine is slow, never this slow). */
const DIAL_TIMEOUT_MS = 30_000;
/** File descriptors kept free beyond the connections themselves (stdio, libuv, …). */
const FD_HEADROOM = 64;

async function natsResponder(url: string, certsDir: string, id: string): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const nc = await connect({
    servers: url,
    tls: {
      caFile: join(certsDir, 'ca.crt'),
      certFile: join(certsDir, 'client.admin.crt'),
      keyFile: join(certsDir, 'client.admin.key'),
    },
    name: `responder-${id}`,
  });
  for (const subject of [`echo.${id}`, 'echo.all']) {
    nc.subscribe(subject, {
      callback: (_error, msg) => {
        msg.respond(msg.data);
      },
    });
  }
  // Round trip to the server: the subscriptions are registered before `ready`.
  await nc.flush();
  process.stdout.write('ready\n');
  await nc.closed();
}

/** The soft limit on open files of this process, from /proc (Linux); undefined elsewhere. */
function openFilesLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((text) => text.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/u)[1];
    return soft === undefined || soft === 'unlimited' ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

/** Something held open that can be closed. */
interface Closable {
  close(): void;
}

/** An opener of one connection to the node (rdbnet) or to the bare TLS server (tls). */
type Opener = () => Promise<Closable>;

async function rdbnetOpener(address: string, certsDir: string): Promise<Opener> {
  const { nodeDialInit } = await import('../src/cli/node-client.ts');
  const { dial } = await import('../src/core/transport/dial.ts');
  const init = await nodeDialInit({
    node: address,
    'certs-dir': certsDir,
    client: 'admin',
    insecure: false,
    timeout: DIAL_TIMEOUT_MS,
  });
  return async (): Promise<Connection> => dial(init);
}

/** TLS 1.3 with the `admin` client certificate, nothing on top: the node:tls floor. */
async function tlsOpener(address: string, certsDir: string): Promise<Opener> {
  const { connect: connectTls } = await import('node:tls');
  const [host, port] = [
    address.slice(0, address.lastIndexOf(':')),
    address.slice(address.lastIndexOf(':') + 1),
  ];
  const ca = readFileSync(join(certsDir, 'ca.crt'));
  const cert = readFileSync(join(certsDir, 'client.admin.crt'));
  const key = readFileSync(join(certsDir, 'client.admin.key'));
  return () =>
    new Promise((resolve, reject) => {
      const socket = connectTls({
        host,
        port: Number(port),
        ca,
        cert,
        key,
        minVersion: 'TLSv1.3',
        checkServerIdentity: () => undefined,
      });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no TLS handshake with ${address} within ${DIAL_TIMEOUT_MS} ms`));
      }, DIAL_TIMEOUT_MS);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        resolve({ close: () => socket.destroy() });
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
}

async function holdConnections(open: Opener, count: number, concurrency: number): Promise<void> {
  const limit = openFilesLimit();
  if (limit !== undefined && limit < count + FD_HEADROOM) {
    throw new Error(
      `open files limit ${limit} is below ${count + FD_HEADROOM}: raise it (ulimit -n) or open fewer connections`,
    );
  }
  const held: Closable[] = [];
  const startedAt = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      held.push(await open());
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  process.stdout.write(
    `${JSON.stringify({ opened: held.length, ms: Math.round(performance.now() - startedAt) })}\n`,
  );
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('close', resolve));
  for (const connection of held) connection.close();
}

const [mode, ...args] = process.argv.slice(2);
try {
  if (mode === 'nats-responder' && args.length === 3) {
    await natsResponder(args[0]!, args[1]!, args[2]!);
  } else if ((mode === 'connections' || mode === 'tls-connections') && args.length === 4) {
    const opener = mode === 'connections' ? rdbnetOpener : tlsOpener;
    await holdConnections(await opener(args[0]!, args[1]!), Number(args[2]), Number(args[3]));
  } else {
    throw new Error(`usage: dataplane-children.ts nats-responder|connections … (got ${mode})`);
  }
  process.exit(0);
} catch (error) {
  console.error(`dataplane-children ${mode}: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
}
