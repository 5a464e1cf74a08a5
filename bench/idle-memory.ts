/**
 * bench:idle-memory — where the memory of 1,000 idle mutual-TLS connections goes on the
 * accepting side (issue 13: ≤ 10 MB per 1,000 idle connections), for an rdbnet node and for a
 * bare node:tls server (the floor any Node TLS server pays). Prints one table and writes
 * bench/results/idle-memory.json.
 *
 * Method: the server runs in a process of its own (this file with `server rdbnet|rawtls`,
 * node --expose-gc); the connections are opened from another process
 * (bench/dataplane-children.ts `connections` / `tls-connections`: TLS 1.3, client certificate
 * `admin`; rdbnet ones finish the Hello). Before and after the connections are opened, the
 * server runs a full GC twice, waits RSS_SETTLE_MS and reports process.memoryUsage() and
 * VmRSS (/proc). The deltas, scaled to 1,000 connections, split RSS into the V8 heap (live
 * objects), external memory (Buffers and ArrayBuffers: node's and ours), and the rest —
 * native memory outside V8, mostly OpenSSL's per-connection state (SSL objects, their
 * read/write buffers) and libuv's handles, plus the V8 heap's slack.
 *
 * The rdbnet server is a whole node (RdbnetNode.start) with the bench:dataplane memory node's
 * settings: pre-auth admission limits raised so no handshake in progress is cut, idle timeout
 * off so the connections stay while measured.
 *
 * Options (env): BENCH_CONNECTIONS (1000; quick 100), BENCH_QUICK=1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Table from 'cli-table3';
import { gossipKeyringPath } from '../src/core/node/gossip.ts';
import { ensureLocalCertificates } from '../src/core/security/certs-dir.ts';
import { ensureKeyring } from '../src/core/security/keyring.ts';
import { exited, kill9, QUICK, setting, sleep, track, writeResults } from './harness.ts';

const CONNECTIONS = setting('BENCH_CONNECTIONS', 1000, 100);
/** Handshakes the connection-holding process runs at once. */
const CONNECT_CONCURRENCY = 16;
/** Time the server is left alone (after its GCs) before it is measured. */
const RSS_SETTLE_MS = QUICK ? 300 : 2000;
const SERVER_START_TIMEOUT_MS = 60_000;
const MiB = 1024 * 1024;

interface Usage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

// ---- the server side (a child of the bench)

async function serve(kind: string, certsDir: string, home: string): Promise<void> {
  let port: number;
  if (kind === 'rdbnet') {
    const { resolveNodeConfig } = await import('../src/core/config/node-config.ts');
    const { RdbnetNode } = await import('../src/core/node/node.ts');
    const { createLogger } = await import('../src/core/runtime/log.ts');
    const node = await RdbnetNode.start(
      resolveNodeConfig({
        id: 'mem',
        listen: '127.0.0.1:0',
        certsDir,
        dataDir: join(home, 'mem'),
        join: [],
        unauthenticatedConnectionsMax: 4096,
        unauthenticatedConnectionsPerSourceMax: 4096,
        idleTimeoutMs: 0,
      }),
      createLogger({ level: 'error' }),
    );
    port = Number(node.boundAddress.split(':').pop());
  } else {
    const { createServer } = await import('node:tls');
    const server = createServer({
      cert: readFileSync(join(certsDir, 'node.mem.crt')),
      key: readFileSync(join(certsDir, 'node.mem.key')),
      ca: readFileSync(join(certsDir, 'ca.crt')),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    server.on('secureConnection', (socket) => socket.on('error', () => socket.destroy()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  }
  console.log(JSON.stringify({ port }));
  // One line in: measure. The GCs leave only what is reachable; the settle lets freed pages go.
  for await (const _line of createInterface({ input: process.stdin })) {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    await sleep(50);
    gc?.();
    await sleep(RSS_SETTLE_MS);
    const usage = process.memoryUsage();
    console.log(
      JSON.stringify({
        rss: vmRss(process.pid),
        heapUsed: usage.heapUsed,
        heapTotal: usage.heapTotal,
        external: usage.external,
        arrayBuffers: usage.arrayBuffers,
      } satisfies Usage),
    );
  }
  process.exit(0);
}

function vmRss(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((text) => text.startsWith('VmRSS:'));
  return Number.parseInt(line!.slice('VmRSS:'.length), 10) * 1024;
}

// ---- the bench

/** Lines a child prints, one at a time. */
function lines(child: ChildProcess): () => Promise<string> {
  const reader = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return async () => {
    const next = await Promise.race([
      reader.next(),
      exited(child).then(() => ({ done: true, value: '' })),
      sleep(SERVER_START_TIMEOUT_MS * 5).then(() => ({ done: true, value: '' })),
    ]);
    if (next.done === true) throw new Error('a bench child ended (or hung) before answering');
    return next.value as string;
  };
}

interface Measured {
  server: string;
  before: Usage;
  after: Usage;
  openMs: number;
  /** Deltas scaled to 1,000 connections, in MiB. */
  per1000: { rss: number; heapUsed: number; external: number; native: number };
  load1: number;
}

async function measure(kind: 'rdbnet' | 'rawtls', certsDir: string, home: string) {
  const server = track(
    spawn(process.execPath, ['--expose-gc', import.meta.filename, 'server', kind, certsDir, home], {
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const next = lines(server);
  const { port } = JSON.parse(await next()) as { port: number };
  server.stdin!.write('measure\n');
  const before = JSON.parse(await next()) as Usage;
  const holder = track(
    spawn(
      process.execPath,
      [
        new URL('dataplane-children.ts', import.meta.url).pathname,
        kind === 'rdbnet' ? 'connections' : 'tls-connections',
        `127.0.0.1:${port}`,
        certsDir,
        String(CONNECTIONS),
        String(CONNECT_CONCURRENCY),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    ),
  );
  const opened = JSON.parse(await lines(holder)()) as { opened: number; ms: number };
  if (opened.opened !== CONNECTIONS) {
    throw new Error(`${opened.opened} of ${CONNECTIONS} connections opened`);
  }
  server.stdin!.write('measure\n');
  const after = JSON.parse(await next()) as Usage;
  const load1 = Math.round(loadavg()[0]! * 10) / 10;
  holder.stdin!.end();
  await exited(holder);
  await kill9(server);
  const scale = (bytes: number) => ((bytes / CONNECTIONS) * 1000) / MiB;
  const delta = (field: keyof Usage) => after[field] - before[field];
  const rss = scale(delta('rss'));
  const heapUsed = scale(delta('heapUsed'));
  const external = scale(delta('external'));
  return {
    server: kind,
    before,
    after,
    openMs: opened.ms,
    per1000: {
      rss,
      heapUsed,
      external,
      // RSS that live V8 objects and external memory do not account for: native memory
      // (OpenSSL, libuv) and the V8 heap's own slack.
      native: scale(delta('rss') - delta('heapUsed') - delta('external')),
    },
    load1,
  } satisfies Measured;
}

if (process.argv[2] === 'server') {
  await serve(process.argv[3]!, process.argv[4]!, process.argv[5]!);
} else {
  const home = await mkdtemp(join(tmpdir(), 'rdbnet-bench-idle-memory-'));
  try {
    const certsDir = join(home, 'certs');
    await ensureLocalCertificates({
      dir: certsDir,
      cluster: 'bench',
      nodeId: 'mem',
      hosts: ['127.0.0.1', 'localhost'],
    });
    await ensureKeyring(gossipKeyringPath(certsDir));
    const rdbnet = await measure('rdbnet', certsDir, home);
    const bare = await measure('rawtls', certsDir, home);
    const table = new Table({
      head: [
        `MiB per 1,000 idle connections (${CONNECTIONS} open)`,
        'RSS',
        'V8 heap used',
        'external (Buffers)',
        'rest (OpenSSL, libuv, V8 slack)',
        'load (1 min)',
      ],
      style: { head: [], border: [] },
    });
    for (const row of [rdbnet, bare]) {
      table.push([
        row.server === 'rdbnet' ? 'rdbnet node' : 'bare node:tls server (the floor)',
        row.per1000.rss.toFixed(2),
        row.per1000.heapUsed.toFixed(2),
        row.per1000.external.toFixed(2),
        row.per1000.native.toFixed(2),
        String(row.load1),
      ]);
    }
    table.push([
      'rdbnet above the floor',
      (rdbnet.per1000.rss - bare.per1000.rss).toFixed(2),
      (rdbnet.per1000.heapUsed - bare.per1000.heapUsed).toFixed(2),
      (rdbnet.per1000.external - bare.per1000.external).toFixed(2),
      (rdbnet.per1000.native - bare.per1000.native).toFixed(2),
      '',
    ]);
    console.log(table.toString());
    const file = await writeResults('idle-memory', {
      benchmark: 'idle-memory',
      measuredAt: new Date().toISOString(),
      node: process.version,
      quick: QUICK,
      connections: CONNECTIONS,
      rdbnet,
      floor: bare,
    });
    console.log(`wrote ${file}`);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
  process.exit(0);
}
