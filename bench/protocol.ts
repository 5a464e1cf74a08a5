/**
 * bench:protocol — one connection, 64-byte payloads, 100 requests in flight, measured for
 * a fixed time after a warm-up, for three contenders in the same run:
 *
 *   rdbnet-tls  a real rdbnet node, TLS 1.3 with client certificates, Echo over protocol v1
 *   grpc-js     @grpc/grpc-js unary Echo with mutual TLS (and grpc-js-h2c, its plaintext best case)
 *   raw-net     node:net u32-length-prefixed echo with per-turn write batching: the Node ceiling
 *   raw-tls     the same echo over TLS 1.3 with client certificates: the ceiling for any TLS protocol
 *
 * Servers run in their own processes. Besides calls/s and latency, each contender's CPU time
 * per call is measured on both sides (client: process.cpuUsage; server: /proc/<pid>/stat), a
 * figure that a busy machine disturbs far less than throughput.
 * Prints a table and writes bench/results/protocol.json.
 * Options (env): BENCH_SECONDS (5; quick mode 0.3), BENCH_WARMUP_SECONDS (1; quick 0.2),
 * BENCH_INFLIGHT (100), BENCH_PAYLOAD_BYTES (64), BENCH_QUICK=1 (see harness.ts),
 * BENCH_ONLY (comma-separated names, for profiling), BENCH_PROFILE (a directory, or 1 for /tmp/prof:
 * servers write --cpu-prof profiles there; run the bench itself with --cpu-prof for the client).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import Table from 'cli-table3';
import { loadClientCredentials } from '../src/core/node/credentials.ts';
import { gossipKeyringPath } from '../src/core/node/gossip.ts';
import { ensureLocalCertificates } from '../src/core/security/certs-dir.ts';
import { ensureKeyring } from '../src/core/security/keyring.ts';
import { dial } from '../src/core/transport/dial.ts';
import { connectionOptions } from '../src/core/transport/options.ts';
import { QUICK, setting, writeResults } from './harness.ts';

const SECONDS = setting('BENCH_SECONDS', 5, 0.3);
const WARMUP_SECONDS = setting('BENCH_WARMUP_SECONDS', 1, 0.2);
const INFLIGHT = Number(process.env['BENCH_INFLIGHT'] ?? 100);
const PAYLOAD_BYTES = Number(process.env['BENCH_PAYLOAD_BYTES'] ?? 64);
/** Overrides writeBatchBytesMax on both sides, to study batching. */
const WRITE_BATCH_BYTES = Number(process.env['BENCH_WRITE_BATCH_BYTES'] ?? 0);
/** Comma-separated contender names to run alone (profiling); the JSON is only written for full runs. */
const ONLY = process.env['BENCH_ONLY'];
/** BENCH_PROFILE: servers write --cpu-prof profiles to this directory ('1': /tmp/prof). */
const PROFILE_DIR =
  process.env['BENCH_PROFILE'] === undefined || process.env['BENCH_PROFILE'] === ''
    ? undefined
    : process.env['BENCH_PROFILE'] === '1'
      ? '/tmp/prof'
      : process.env['BENCH_PROFILE'];
/** Latency samples kept per contender; more completions than this are counted, not sampled. */
const SAMPLES_MAX = 8_000_000;
/** One buffer of latency samples (64 MB) for every contender in turn: a fresh one each would
 * leave the earlier ones for the collector to reclaim during a later contender's run, charging
 * that contender (the last ones, and the more they allocate, the more) for the harness. */
const samples = new Float64Array(SAMPLES_MAX);

interface Result {
  name: string;
  callsPerSec: number;
  p50Us: number;
  p99Us: number;
  calls: number;
  seconds: number;
  /** CPU time per call, user + system, all threads; undefined where /proc is not readable. */
  clientCpuUs: number;
  serverCpuUs: number | undefined;
  note: string;
}

type Run = Omit<Result, 'name' | 'callsPerSec' | 'note'>;

/** CPU time (user + system) a process has used, in µs, from /proc/<pid>/stat (Linux). */
function processCpuUs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, in clock ticks of 1/100 s (USER_HZ).
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/** For promise-returning clients: a failed call ends the run loudly. */
const rethrow = (error: unknown) => {
  throw error;
};

/** Drives `issue` with INFLIGHT concurrent loops; each loop issues its next call when one completes. */
function drive(serverPid: number | undefined, issue: (done: () => void) => void): Promise<Run> {
  return new Promise((resolve) => {
    let sampled = 0;
    let calls = 0;
    let measuring = false;
    let stopping = false;
    let active = INFLIGHT;
    let startedAt = 0;
    let endedAt = 0;
    let clientCpu = process.cpuUsage();
    let serverCpuAtStart: number | undefined;
    let serverCpuUs: number | undefined;
    const loop = () => {
      if (stopping) {
        if (--active === 0) finish();
        return;
      }
      const sentAt = performance.now();
      issue(() => {
        if (measuring) {
          calls++;
          if (sampled < SAMPLES_MAX) samples[sampled++] = performance.now() - sentAt;
        }
        loop();
      });
    };
    const finish = () => {
      const sorted = samples.subarray(0, sampled).sort();
      const at = (q: number) =>
        (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 1000;
      resolve({
        calls,
        seconds: (endedAt - startedAt) / 1000,
        p50Us: at(0.5),
        p99Us: at(0.99),
        clientCpuUs: (clientCpu.user + clientCpu.system) / calls,
        serverCpuUs: serverCpuUs === undefined ? undefined : serverCpuUs / calls,
      });
    };
    setTimeout(() => {
      measuring = true;
      startedAt = performance.now();
      clientCpu = process.cpuUsage();
      serverCpuAtStart = processCpuUs(serverPid);
      setTimeout(() => {
        measuring = false;
        endedAt = performance.now();
        clientCpu = process.cpuUsage(clientCpu);
        const serverCpuAtEnd = processCpuUs(serverPid);
        if (serverCpuAtStart !== undefined && serverCpuAtEnd !== undefined) {
          serverCpuUs = serverCpuAtEnd - serverCpuAtStart;
        }
        stopping = true;
      }, SECONDS * 1000);
    }, WARMUP_SECONDS * 1000);
    for (let i = 0; i < INFLIGHT; i++) loop();
  });
}

function startServer(args: string[]): Promise<{ port: number; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        ...(PROFILE_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`]),
        new URL('servers.ts', import.meta.url).pathname,
        ...args,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server ${args[0]} did not start`)), 20_000);
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      const port = Number.parseInt(out, 10);
      if (out.includes('\n') && port > 0) {
        clearTimeout(timer);
        resolve({ port, child });
      }
    });
    child.on('exit', (code) => reject(new Error(`server ${args[0]} exited with ${code}`)));
  });
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

async function benchRdbnet(certsDir: string, home: string): Promise<Result> {
  const { port, child } = await startServer(['rdbnet', certsDir, home]);
  try {
    const credentials = await loadClientCredentials(certsDir, 'admin');
    const connection = await dial({
      address: { host: '127.0.0.1', port },
      local: {
        id: 'admin',
        clusterId: credentials.identity.cluster,
        role: 'client',
        softwareVersion: 'bench',
      },
      tls: credentials.tls,
      options: connectionOptions({
        inflightRequestsMax: Math.max(1024, INFLIGHT),
        ...(WRITE_BATCH_BYTES ? { writeBatchBytesMax: WRITE_BATCH_BYTES } : {}),
      }),
    });
    const data = Buffer.alloc(PAYLOAD_BYTES, 7);
    const envelope = { echoRequest: { data } };
    const run = await drive(child.pid, (done) => {
      connection.request(envelope).then(done, rethrow);
    });
    connection.close();
    return {
      name: 'rdbnet-tls',
      ...run,
      callsPerSec: run.calls / run.seconds,
      note: 'TLS 1.3 mutual, protocol v1 Echo (no CRC: TLS authenticates)',
    };
  } finally {
    await stopServer(child);
  }
}

async function benchGrpc(certsDir: string, plain: boolean): Promise<Result> {
  const { port, child } = await startServer(['grpc', certsDir, plain ? 'plain' : 'tls']);
  try {
    const grpc = await import('@grpc/grpc-js');
    const loader = await import('@grpc/proto-loader');
    const definition = loader.loadSync(new URL('proto/echo.proto', import.meta.url).pathname);
    const proto = grpc.loadPackageDefinition(definition) as unknown as {
      bench: {
        Echo: new (
          address: string,
          credentials: unknown,
          options?: object,
        ) => {
          Echo(request: unknown, callback: (error: Error | null) => void): void;
          close(): void;
        };
      };
    };
    const credentials = plain
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(
          await readFile(join(certsDir, 'ca.crt')),
          await readFile(join(certsDir, 'client.admin.key')),
          await readFile(join(certsDir, 'client.admin.crt')),
          { checkServerIdentity: () => undefined },
        );
    const client = new proto.bench.Echo(`127.0.0.1:${port}`, credentials, {
      'grpc.ssl_target_name_override': 'localhost',
    });
    const request = { data: Buffer.alloc(PAYLOAD_BYTES, 7) };
    const run = await drive(child.pid, (done) =>
      client.Echo(request, (error) => {
        if (error) throw error;
        done();
      }),
    );
    client.close();
    return {
      name: plain ? 'grpc-js-h2c' : 'grpc-js',
      ...run,
      callsPerSec: run.calls / run.seconds,
      note: plain ? 'plaintext HTTP/2, its best case' : 'TLS 1.3 mutual, unary',
    };
  } finally {
    await stopServer(child);
  }
}

async function benchRaw(certsDir: string, tls: boolean): Promise<Result> {
  const { port, child } = await startServer(tls ? ['rawtls', certsDir] : ['raw']);
  try {
    const socket = tls
      ? connectTls({
          host: '127.0.0.1',
          port,
          ca: await readFile(join(certsDir, 'ca.crt')),
          cert: await readFile(join(certsDir, 'client.admin.crt')),
          key: await readFile(join(certsDir, 'client.admin.key')),
          minVersion: 'TLSv1.3',
          checkServerIdentity: () => undefined,
        })
      : connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    await new Promise((resolve) => socket.once(tls ? 'secureConnect' : 'connect', resolve));
    // FIFO of completion callbacks: the echo server answers in order.
    const waiting: (() => void)[] = [];
    let head = 0;
    let out: Buffer[] = [];
    let scheduled = false;
    const frame = Buffer.alloc(4 + PAYLOAD_BYTES, 7);
    frame.writeUInt32BE(PAYLOAD_BYTES, 0);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      const data = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let offset = 0;
      while (data.length - offset >= 4) {
        const total = 4 + data.readUInt32BE(offset);
        if (data.length - offset < total) break;
        offset += total;
        const done = waiting[head++]!;
        if (head > 4096) {
          waiting.splice(0, head);
          head = 0;
        }
        done();
      }
      pending = data.subarray(offset);
    });
    const run = await drive(child.pid, (done) => {
      waiting.push(done);
      out.push(frame);
      if (!scheduled) {
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
          out = [];
        });
      }
    });
    socket.destroy();
    return {
      name: tls ? 'raw-tls' : 'raw-net',
      ...run,
      callsPerSec: run.calls / run.seconds,
      note: tls
        ? 'raw-net over TLS 1.3 mutual: the TLS ceiling'
        : 'plain TCP, no checksum, no envelope',
    };
  } finally {
    await stopServer(child);
  }
}

/** Prints the table and the ratios of a full run, and writes its results file. */
async function report(results: Result[]): Promise<void> {
  const by = (name: string) => results.find((r) => r.name === name)!;
  const rdbnet = by('rdbnet-tls');
  const ratios = {
    rdbnetVsGrpcJs: rdbnet.callsPerSec / by('grpc-js').callsPerSec,
    rdbnetVsGrpcJsH2c: rdbnet.callsPerSec / by('grpc-js-h2c').callsPerSec,
    rdbnetVsRawNet: rdbnet.callsPerSec / by('raw-net').callsPerSec,
    rdbnetVsRawTls: rdbnet.callsPerSec / by('raw-tls').callsPerSec,
    rawTlsVsRawNet: by('raw-tls').callsPerSec / by('raw-net').callsPerSec,
  };
  const table = new Table({
    head: [
      'contender',
      'calls/s',
      'p50 µs',
      'p99 µs',
      'calls',
      'client CPU µs/call',
      'server CPU µs/call',
      'notes',
    ],
    style: { head: [], border: [] },
  });
  for (const r of results) {
    table.push([
      r.name,
      Math.round(r.callsPerSec).toLocaleString('en'),
      r.p50Us.toFixed(0),
      r.p99Us.toFixed(0),
      r.calls,
      r.clientCpuUs.toFixed(2),
      r.serverCpuUs === undefined ? '-' : r.serverCpuUs.toFixed(2),
      r.note,
    ]);
  }
  console.log(table.toString());
  console.log(
    `rdbnet-tls = ${ratios.rdbnetVsGrpcJs.toFixed(1)}x grpc-js (${ratios.rdbnetVsGrpcJsH2c.toFixed(1)}x grpc-js-h2c), ` +
      `${(ratios.rdbnetVsRawNet * 100).toFixed(0)}% of raw-net, ${(ratios.rdbnetVsRawTls * 100).toFixed(0)}% of raw-tls ` +
      `(raw-tls = ${(ratios.rawTlsVsRawNet * 100).toFixed(0)}% of raw-net); p99 ${(rdbnet.p99Us / 1000).toFixed(2)} ms`,
  );
  const file = await writeResults('protocol', {
    benchmark: 'protocol',
    measuredAt: new Date().toISOString(),
    node: process.version,
    quick: QUICK,
    settings: {
      seconds: SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      inflight: INFLIGHT,
      payloadBytes: PAYLOAD_BYTES,
      connections: 1,
    },
    results: results.map((r) => ({
      name: r.name,
      callsPerSec: Math.round(r.callsPerSec),
      p50Us: Math.round(r.p50Us),
      p99Us: Math.round(r.p99Us),
      calls: r.calls,
      seconds: r.seconds,
      clientCpuUsPerCall: Math.round(r.clientCpuUs * 1000) / 1000,
      serverCpuUsPerCall:
        r.serverCpuUs === undefined ? null : Math.round(r.serverCpuUs * 1000) / 1000,
      note: r.note,
    })),
    ratios,
  });
  console.log(`wrote ${file}`);
}

const home = await mkdtemp(join(tmpdir(), 'rdbnet-bench-'));
try {
  const certsDir = join(home, 'certs');
  await ensureLocalCertificates({
    dir: certsDir,
    cluster: 'bench',
    nodeId: 'bench',
    hosts: ['127.0.0.1', 'localhost'],
  });
  // A node with an explicit certs dir needs its gossip keyring there, as `rdbnet keys
  // generate` and the first node's default home would provide.
  await ensureKeyring(gossipKeyringPath(certsDir));
  const results: Result[] = [];
  const contenders: [string, () => Promise<Result>][] = [
    ['raw-net', () => benchRaw(certsDir, false)],
    ['raw-tls', () => benchRaw(certsDir, true)],
    ['rdbnet-tls', () => benchRdbnet(certsDir, home)],
    ['grpc-js', () => benchGrpc(certsDir, false)],
    ['grpc-js-h2c', () => benchGrpc(certsDir, true)],
  ];
  for (const [name, run] of contenders) {
    if (ONLY !== undefined && !ONLY.split(',').includes(name)) continue;
    const result = await run();
    results.push(result);
    console.error(
      `${result.name}: ${Math.round(result.callsPerSec)} calls/s, p50 ${result.p50Us.toFixed(0)} µs, ` +
        `p99 ${result.p99Us.toFixed(0)} µs, CPU µs/call client ${result.clientCpuUs.toFixed(2)} ` +
        `server ${result.serverCpuUs?.toFixed(2) ?? '-'}`,
    );
  }
  // A partial run (BENCH_ONLY, for profiling) has no ratios to report or results to keep.
  if (ONLY === undefined) await report(results);
} finally {
  await rm(home, { recursive: true, force: true });
}
