/**
 * bench:hardening — one real node on loopback under the floods the pre-authentication limits,
 * the memory budget and the handshake deadline exist for, all at once:
 *
 *   silent       TCP connections that never send a byte, from many loopback source addresses
 *   slow-loris   TLS handshakes that send a record header and then one byte a second
 *   half-frames  authenticated connections (admin certificate, Hello done) that announce a
 *                frame of the largest size and send half of it
 *
 * Meanwhile an operator asks `health` over a fresh mutual-TLS connection every 50 ms
 * (in-process, the CLI's dial and request, with its default 5 s timeout): how many succeed,
 * and their latency (dial, TLS, Hello and reply). The node's
 * RSS is sampled every 250 ms before, during and after; its counters (`node status`) give
 * what it evicted, timed out and refused.
 *
 * The full run uses the node's default limits (handshake timeout 5 s, 1024 unauthenticated
 * connections, 64 per source, 256 MiB budget). Quick mode (BENCH_QUICK=1, or `--quick`) uses small numbers and a 1 s
 * handshake timeout so that it finishes in well under 15 s, for CI.
 *
 * Prints a table and writes bench/results/hardening.json (hardening.quick.json in quick mode).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls, type ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import Table from 'cli-table3';
import { NodeClient } from '../src/core/client/node-client.ts';
import { loadClientCredentials } from '../src/core/node/credentials.ts';
import {
  Codec,
  encodeFrame,
  FRAME_BYTES_MAX,
  FrameKind,
  makeFlags,
} from '../src/core/protocol/frame.ts';
import { makeHello } from '../src/core/protocol/handshake.ts';
import { encodeEnvelope } from '../src/core/protocol/messages.ts';
import type { ReplyBody, RequestBody } from '../src/core/rpc/request.ts';
import { parseHostPort } from '../src/core/transport/address.ts';
import { connectionOptions } from '../src/core/transport/options.ts';
import { QUICK as HARNESS_QUICK } from './harness.ts';

// BENCH_QUICK=1 (the convention of every bench, bench/harness.ts); --quick still works by hand.
const QUICK = HARNESS_QUICK || process.argv.includes('--quick');
const MiB = 1024 * 1024;

interface Plan {
  silentSockets: number;
  /** Loopback source addresses the silent sockets come from (127.0.1.1 …). */
  silentSources: number;
  /** Silent sockets opened at once: a quarter of the node's unauthenticated slots, so that
   * quick and full runs put the same pressure on the table. */
  silentBatch: number;
  slowLorisSockets: number;
  halfFrames: number;
  /** Wire size of each half-sent frame, and how much of it is sent. */
  halfFrameBytes: number;
  halfFrameSentBytes: number;
  /** The node's --config file; empty: every default. */
  nodeConfig: Record<string, unknown>;
  handshakeTimeoutMs: number;
  /** How long the flood is held after it is all open (longer than the handshake timeout). */
  holdMs: number;
  /** Health asked this long before the flood, and again after it (once the node settled). */
  quietMs: number;
  settleMs: number;
}

const PLAN: Plan = QUICK
  ? {
      silentSockets: 300,
      silentSources: 10,
      silentBatch: 32,
      slowLorisSockets: 20,
      halfFrames: 6,
      halfFrameBytes: 4 * MiB,
      halfFrameSentBytes: 3 * MiB,
      nodeConfig: {
        unauthenticatedConnectionsMax: 128,
        bufferedBytesMax: 12 * MiB,
        connection: { handshakeTimeoutMs: 1000, frameBytesMax: 4 * MiB },
      },
      handshakeTimeoutMs: 1000,
      holdMs: 1600,
      quietMs: 500,
      settleMs: 500,
    }
  : {
      silentSockets: 5000,
      silentSources: 100,
      silentBatch: 256,
      slowLorisSockets: 200,
      halfFrames: 40,
      halfFrameBytes: FRAME_BYTES_MAX,
      halfFrameSentBytes: FRAME_BYTES_MAX / 2,
      nodeConfig: {},
      handshakeTimeoutMs: 5000,
      holdMs: 8000,
      quietMs: 2000,
      settleMs: 2000,
    };

const HEALTH_EVERY_MS = 50;
/** The CLI's default --timeout (connect, TLS, handshake and reply). */
const HEALTH_TIMEOUT_MS = 5000;
const RSS_EVERY_MS = 250;
const BIN = new URL('../bin/run.js', import.meta.url).pathname;
const RESULTS = new URL(`results/hardening${QUICK ? '.quick' : ''}.json`, import.meta.url).pathname;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const live = new Set<ChildProcess>();
const sockets = new Set<Socket>();
/** Sockets the bench closed itself at the end: their close is not the node's doing. */
const letGo = new WeakSet<Socket>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function percentile(samples: number[], p: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function round(value: number | null): number | null {
  return value === null ? null : Math.round(value * 10) / 10;
}

// ------------------------------------------------------------------ the node

interface NodeInfo {
  pid: number;
  listen: string;
  certsDir: string;
}

function startNode(home: string, configPath: string): Promise<NodeInfo> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [BIN, 'node', 'start', '--json', '--listen', '127.0.0.1:0', '--config', configPath],
      { env: { ...process.env, RDBNET_HOME: home, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    live.add(child);
    child.once('exit', () => live.delete(child));
    let out = '';
    let err = '';
    child.stderr!.on('data', (chunk) => {
      err += chunk;
    });
    exitedNode = new Promise((done) => child.once('exit', () => done()));
    const timer = setTimeout(() => reject(new Error(`node did not start\n${err}`)), 30_000);
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      try {
        const info = JSON.parse(out) as NodeInfo;
        clearTimeout(timer);
        node = child;
        stderrOf = () => err;
        resolve(info);
      } catch {
        // not complete yet
      }
    });
    child.once('exit', (code) => reject(new Error(`node exited with ${code}\n${err}`)));
  });
}

let node: ChildProcess | null = null;
let stderrOf: () => string = () => '';
let exitedNode: Promise<void> = Promise.resolve();

function rssMiB(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match === null ? null : Number(match[1]) / 1024;
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ the operator

interface Admin {
  credentials: Awaited<ReturnType<typeof loadClientCredentials>>;
  address: string;
}

/** One operator request over a fresh mutual-TLS connection, as the CLI makes it. */
async function ask<K extends 'healthRequest' | 'statusRequest'>(
  admin: Admin,
  kind: K,
): Promise<ReplyBody<K>> {
  const init = {
    address: parseHostPort(admin.address),
    local: {
      id: 'admin',
      clusterId: admin.credentials.identity.cluster,
      role: 'client' as const,
      softwareVersion: 'bench',
    },
    tls: admin.credentials.tls,
    options: connectionOptions({
      handshakeTimeoutMs: HEALTH_TIMEOUT_MS,
      requestTimeoutMs: HEALTH_TIMEOUT_MS,
    }),
  };
  // Both requests have an empty body.
  return NodeClient.with(init, (client) => client.ask(kind, {} as RequestBody<K>));
}

interface Probe {
  ok: number;
  failed: number;
  latenciesMs: number[];
  errors: Record<string, number>;
  /** The first few failure messages, for the record. */
  messages: string[];
}

/** Asks for health every HEALTH_EVERY_MS until `stop()`; resolves with what it saw. */
function healthProbe(admin: Admin): { stop(): Promise<Probe> } {
  const probe: Probe = { ok: 0, failed: 0, latenciesMs: [], errors: {}, messages: [] };
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      try {
        await ask(admin, 'healthRequest');
        probe.ok++;
        probe.latenciesMs.push(performance.now() - started);
      } catch (error) {
        probe.failed++;
        const code = (error as { code?: string }).code ?? String(error);
        probe.errors[code] = (probe.errors[code] ?? 0) + 1;
        if (probe.messages.length < 5) probe.messages.push((error as Error).message);
      }
      await sleep(Math.max(0, HEALTH_EVERY_MS - (performance.now() - started)));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return probe;
    },
  };
}

// ------------------------------------------------------------------ the floods

interface Flooder {
  opened: number;
  failedToOpen: number;
  closedByNode: number;
  /** ms from open to the node's close, for each socket the node closed. */
  closedAfterMs: number[];
}

function flooder(): Flooder {
  return { opened: 0, failedToOpen: 0, closedByNode: 0, closedAfterMs: [] };
}

/** Opens `count` sockets with `open`, `batch` at a time, so the accept queue keeps up. */
async function openInBatches(
  count: number,
  batch: number,
  open: (index: number) => Promise<void>,
): Promise<void> {
  for (let start = 0; start < count; start += batch) {
    const end = Math.min(count, start + batch);
    await Promise.allSettled(Array.from({ length: end - start }, (_, i) => open(start + i)));
  }
}

function track(socket: Socket, stats: Flooder, onConnect: (socket: Socket) => void) {
  sockets.add(socket);
  let openedAtMs = 0;
  socket.on('error', () => {});
  return new Promise<void>((resolve) => {
    socket.once('connect', () => {
      openedAtMs = performance.now();
      stats.opened++;
      onConnect(socket);
      resolve();
    });
    socket.once('close', () => {
      sockets.delete(socket);
      if (openedAtMs === 0) {
        stats.failedToOpen++;
        resolve();
        return;
      }
      if (letGo.has(socket)) return;
      stats.closedByNode++;
      stats.closedAfterMs.push(performance.now() - openedAtMs);
    });
  });
}

function silentFlood(host: string, port: number, stats: Flooder): Promise<void> {
  return openInBatches(PLAN.silentSockets, PLAN.silentBatch, (i) => {
    const localAddress = `127.0.1.${1 + (i % PLAN.silentSources)}`;
    return track(connectTcp({ host, port, localAddress }), stats, () => {});
  });
}

/** A TLS record header (handshake, 512 bytes to follow), then one byte a second. */
function slowLorisFlood(host: string, port: number, stats: Flooder): Promise<void> {
  return openInBatches(PLAN.slowLorisSockets, 100, (i) => {
    const localAddress = `127.0.2.${1 + (i % 4)}`;
    return track(connectTcp({ host, port, localAddress }), stats, (socket) => {
      socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
      const drip = setInterval(() => {
        if (socket.destroyed) clearInterval(drip);
        else socket.write(Buffer.from([0x01]));
      }, 1000);
      socket.once('close', () => clearInterval(drip));
    });
  });
}

interface HalfFrames {
  handshaken: number;
  /** Closed by the node with an RDB_MEMORY_BUDGET error frame. */
  refusedByBudget: number;
  /** Closed by the node otherwise (before the bench let go of them). */
  otherwiseClosed: number;
  /** Still open when the bench let go of them. */
  stillOpen: number;
}

/** Authenticated connections that each half-send one frame of halfFrameBytes. */
async function halfFrameFlood(
  host: string,
  port: number,
  certsDir: string,
  clusterId: string,
): Promise<{ result: HalfFrames; sockets: Socket[] }> {
  const ca = await readFile(join(certsDir, 'ca.crt'));
  const cert = await readFile(join(certsDir, 'client.admin.crt'));
  const key = await readFile(join(certsDir, 'client.admin.key'));
  const hello = encodeFrame(
    makeFlags(FrameKind.Request, Codec.None, false),
    0,
    encodeEnvelope({
      hello: makeHello({
        id: 'admin',
        clusterId,
        role: 'client',
        softwareVersion: 'bench',
        codecs: [Codec.None],
      }),
    }),
  );
  const header = Buffer.alloc(14);
  header.writeUInt32BE(PLAN.halfFrameBytes - 4, 0);
  header.writeUInt16BE(makeFlags(FrameKind.Request, Codec.None, false), 4);
  header.writeUInt32BE(7, 10);
  // One payload buffer, written to every socket (not copied per socket).
  const body = Buffer.alloc(PLAN.halfFrameSentBytes - header.length);
  const result: HalfFrames = {
    handshaken: 0,
    refusedByBudget: 0,
    otherwiseClosed: 0,
    stillOpen: 0,
  };
  const opened: Socket[] = [];
  await Promise.allSettled(
    Array.from(
      { length: PLAN.halfFrames },
      () =>
        new Promise<void>((resolve) => {
          // Their own address: the budget is measured here, not the per-source share.
          // (node:tls hands localAddress on to net.connect; its type declarations omit it.)
          const options: TlsConnectionOptions & { localAddress: string } = {
            host,
            port,
            localAddress: '127.0.3.1',
            ca,
            cert,
            key,
            checkServerIdentity: () => undefined,
          };
          const socket = connectTls(options);
          sockets.add(socket);
          opened.push(socket);
          let received = Buffer.alloc(0);
          let handshaken = false;
          socket.on('error', () => {});
          socket.once('secureConnect', () => socket.write(hello));
          socket.on('data', (chunk: Buffer) => {
            received = Buffer.concat([received, chunk]);
            if (!handshaken && received.length > 0) {
              handshaken = true;
              result.handshaken++;
              socket.write(header);
              socket.write(body);
              resolve();
            }
          });
          socket.once('close', () => {
            sockets.delete(socket);
            if (received.includes('RDB_MEMORY_BUDGET')) result.refusedByBudget++;
            else if (!letGo.has(socket)) result.otherwiseClosed++;
            resolve();
          });
        }),
    ),
  );
  return { result, sockets: opened };
}

// ------------------------------------------------------------------ the run

async function main(): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), 'rdbnet-bench-hardening-'));
  try {
    const configPath = join(home, 'node.json');
    await writeFile(configPath, JSON.stringify(PLAN.nodeConfig));
    const info = await startNode(home, configPath);
    const { host, port } = parseHostPort(info.listen);
    const credentials = await loadClientCredentials(info.certsDir, 'admin');
    const admin: Admin = { credentials, address: info.listen };

    const rss: { atMs: number; mib: number }[] = [];
    const startedAt = performance.now();
    const sampler = setInterval(() => {
      const mib = rssMiB(info.pid);
      if (mib !== null) rss.push({ atMs: performance.now() - startedAt, mib });
    }, RSS_EVERY_MS);

    // Before: health calls on a quiet node.
    const baselineProbe = healthProbe(admin);
    await sleep(PLAN.quietMs);
    const baseline = await baselineProbe.stop();
    const rssBefore = rssMiB(info.pid);
    const floodStartMs = performance.now() - startedAt;

    // During: all floods at once, the operator asking throughout.
    const probe = healthProbe(admin);
    const silent = flooder();
    const loris = flooder();
    const [, , half] = await Promise.all([
      silentFlood(host, port, silent),
      slowLorisFlood(host, port, loris),
      halfFrameFlood(host, port, info.certsDir, credentials.identity.cluster),
    ]);
    const openedAtMs = performance.now() - startedAt;
    await sleep(PLAN.holdMs);
    const during = await probe.stop();
    const floodEndMs = performance.now() - startedAt;
    const statusDuring = await ask(admin, 'statusRequest');
    const stillOpenSilent = silent.opened - silent.closedByNode;
    const stillOpenLoris = loris.opened - loris.closedByNode;
    half.result.stillOpen = half.sockets.filter((s) => !s.destroyed).length;

    // After: the bench lets go of everything; the node settles.
    for (const socket of sockets) {
      letGo.add(socket);
      socket.destroy();
    }
    await sleep(PLAN.settleMs);
    const afterProbe = healthProbe(admin);
    await sleep(PLAN.quietMs);
    const after = await afterProbe.stop();
    const statusAfter = await ask(admin, 'statusRequest');
    const rssAfter = rssMiB(info.pid);
    clearInterval(sampler);

    const duringSamples = rss.filter((s) => s.atMs >= floodStartMs && s.atMs <= floodEndMs);
    const rssDuringMax = Math.max(...duringSamples.map((s) => s.mib));
    const counters = statusAfter.counters;
    const sumOf = (prefix: string) =>
      Object.entries(counters)
        .filter(([name]) => name.startsWith(prefix))
        .reduce((total, [, value]) => total + value, 0);
    const rejected = Object.fromEntries(
      Object.entries(counters).filter(([name]) => name.startsWith('connections.rejected.')),
    );
    // A stop logs the last summary of suppressed lines.
    node?.kill('SIGTERM');
    await Promise.race([exitedNode, sleep(6000)]);
    const logLines = stderrOf().split('\n');
    const logged = logLines.filter((line) => line.includes('connection rejected')).length;

    const summary = (probeResult: Probe) => ({
      ok: probeResult.ok,
      failed: probeResult.failed,
      errors: probeResult.errors,
      messages: probeResult.messages,
      p50Ms: round(percentile(probeResult.latenciesMs, 50)),
      p99Ms: round(percentile(probeResult.latenciesMs, 99)),
      maxMs: round(probeResult.latenciesMs.length ? Math.max(...probeResult.latenciesMs) : null),
    });
    const result = {
      mode: QUICK ? 'quick' : 'full',
      plan: PLAN,
      machine: { cpus: cpus().length, loadavg: loadavg().map((l) => Math.round(l * 100) / 100) },
      rssMiB: {
        before: round(rssBefore),
        duringMax: round(rssDuringMax),
        after: round(rssAfter),
      },
      health: { before: summary(baseline), during: summary(during), after: summary(after) },
      silent: {
        opened: silent.opened,
        failedToOpen: silent.failedToOpen,
        closedByNode: silent.closedByNode,
        stillOpenAtEnd: stillOpenSilent,
        closedAfterMsP50: round(percentile(silent.closedAfterMs, 50)),
        closedAfterMsMax: round(
          silent.closedAfterMs.length ? Math.max(...silent.closedAfterMs) : null,
        ),
      },
      slowLoris: {
        opened: loris.opened,
        closedByNode: loris.closedByNode,
        stillOpenAtEnd: stillOpenLoris,
        closedAfterMsP50: round(percentile(loris.closedAfterMs, 50)),
        closedAfterMsMax: round(
          loris.closedAfterMs.length ? Math.max(...loris.closedAfterMs) : null,
        ),
      },
      halfFrames: half.result,
      node: {
        preauthEvicted: counters['connections.preauth.evicted'] ?? 0,
        preauthTimedOut: counters['connections.preauth.timed_out'] ?? 0,
        rejectedTotal: sumOf('connections.rejected.'),
        rejected,
        failedMemoryBudget: counters['connections.failed.RDB_MEMORY_BUDGET'] ?? 0,
        bufferedBytesDuring: statusDuring.counters['memory.buffered_bytes'] ?? 0,
        bufferedBytesPeak: counters['memory.buffered_bytes_peak'] ?? 0,
        bufferedBytesMax: counters['memory.buffered_bytes_max'] ?? 0,
        bufferedBytesAfter: counters['memory.buffered_bytes'] ?? 0,
        preauthOpenAfter: counters['connections.preauth.open'] ?? 0,
        rejectionLogLines: logged,
        summaryLogLines: logLines.filter((l) => l.includes('connection log lines suppressed'))
          .length,
      },
      timingsMs: {
        floodOpenedAfter: Math.round(openedAtMs - floodStartMs),
        held: PLAN.holdMs,
      },
    };

    const table = new Table({ head: ['', 'value'] });
    const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
    const latency = (s: ReturnType<typeof summary>) =>
      `${s.ok} ok / ${s.failed} failed, p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms`;
    table.push(
      ['mode', `${result.mode} (${cpus().length} cpus, load ${result.machine.loadavg.join(' ')})`],
      [
        'flood',
        `${PLAN.silentSockets} silent from ${PLAN.silentSources} sources, ${PLAN.slowLorisSockets} slow-loris TLS, ${PLAN.halfFrames} × ${mib(PLAN.halfFrameSentBytes)} of ${mib(PLAN.halfFrameBytes)} frames`,
      ],
      [
        'node RSS before / during (max) / after',
        `${result.rssMiB.before} / ${result.rssMiB.duringMax} / ${result.rssMiB.after} MiB`,
      ],
      ['health before', latency(result.health.before)],
      ['health during flood', latency(result.health.during)],
      ['health after', latency(result.health.after)],
      [
        'silent sockets closed by the node',
        `${silent.closedByNode} of ${silent.opened} (still open: ${stillOpenSilent}; closed after p50 ${result.silent.closedAfterMsP50} ms, max ${result.silent.closedAfterMsMax} ms)`,
      ],
      [
        'slow-loris closed by the node',
        `${loris.closedByNode} of ${loris.opened} (still open: ${stillOpenLoris}; max ${result.slowLoris.closedAfterMsMax} ms)`,
      ],
      [
        'half-frame connections',
        `${half.result.handshaken} handshaken, ${half.result.refusedByBudget} refused RDB_MEMORY_BUDGET, ${half.result.otherwiseClosed} closed otherwise, ${half.result.stillOpen} held`,
      ],
      [
        'node: evicted / timed out / rejected',
        `${result.node.preauthEvicted} / ${result.node.preauthTimedOut} / ${result.node.rejectedTotal}`,
      ],
      [
        'node: buffered bytes during / peak / budget',
        `${mib(result.node.bufferedBytesDuring)} / ${mib(result.node.bufferedBytesPeak)} / ${mib(result.node.bufferedBytesMax)}`,
      ],
      [
        'node: unauthenticated / buffered after',
        `${result.node.preauthOpenAfter} / ${mib(result.node.bufferedBytesAfter)}`,
      ],
      [
        'log lines: rejections / summaries',
        `${result.node.rejectionLogLines} / ${result.node.summaryLogLines}`,
      ],
    );
    console.log(table.toString());
    await mkdir(new URL('results/', import.meta.url).pathname, { recursive: true });
    await writeFile(RESULTS, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`wrote ${RESULTS}`);
  } finally {
    for (const socket of sockets) socket.destroy();
    for (const child of live) child.kill('SIGKILL');
    await rm(home, { recursive: true, force: true });
  }
}

await main();
