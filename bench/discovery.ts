/**
 * bench:discovery — what finding peers through discovery costs at cluster formation: from
 * the spawn of N fresh nodes (20; quick mode 4) to one cluster where every node is a Raft
 * member of the same cluster and sees N alive in gossip, for each contender:
 *
 *   static --join      every node given the N addresses (--join a,b,c...) — the baseline
 *   dns --retry-join   every node given `--retry-join "provider=dns name=_rdbnet._tcp.db.internal
 *                      server=127.0.0.1:PORT"` against a real dnsmasq holding N SRV records
 *   etcd --retry-join  every node given `--register` and `--retry-join` with the same
 *                      `provider=etcd endpoints=127.0.0.1:PORT prefix=/rdbnet/bench` against a
 *                      fresh real etcd (Debian etcd-server): nodes find each other only through what
 *                      the others registered, so registration is inside the timed span
 *
 * all with --bootstrap-expect 3 and the local preset, in the same run, trials alternating
 * contenders so that machine load hits both alike. Goal (issue 12): discovery adds ≤ 1 s to
 * static joins (median against median), for each discovery contender. More contenders are
 * one entry in CONTENDERS.
 *
 * Also per formation: when the last node first answered (process start-up, the same work for
 * every contender: on a loaded machine it is most of the time), the time from then to formed,
 * and the CPU seconds the N nodes used (user + system, from /proc) — what forming costs the
 * machine, less sensitive to other load than wall time.
 *
 * Settings (env; full value first, quick mode second): DISCOVERY_BENCH_NODES (20; 4),
 * DISCOVERY_BENCH_TRIALS (3; 1). DISCOVERY_BENCH_LOG_DIR=DIR keeps every node's log (at
 * info level) as DIR/<trial>-<contender>/<id>.log, to read why a formation was slow;
 * DISCOVERY_BENCH_ONLY=static,dns runs only the contenders whose names start so.
 * Prints a table; writes bench/results/discovery.json.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { dnsmasqBinary, freeTcpPorts, startDnsmasq } from '../test/helpers/dnsmasq.ts';
import { etcdMissing, startEtcd } from '../test/helpers/etcd-server.ts';
import {
  Admin,
  kill9,
  percentile,
  QUICK,
  round,
  setting,
  sleep,
  track,
  until,
  writeResults,
} from './harness.ts';

const NODES = setting('DISCOVERY_BENCH_NODES', 20, 4);
const TRIALS = setting('DISCOVERY_BENCH_TRIALS', 3, 1);
/**
 * The longest one formation may take, from the spawn, before the trial counts as failed.
 * Generous: on the shared 2-core machine at load average 40, 20 processes took up to 3
 * minutes merely to start (each needs about 1 CPU second to load before it listens).
 */
const FORMATION_TIMEOUT_MS = 300_000;
/** Between two looks at every node: the looks themselves load the nodes being timed. */
const POLL_MS = 200;
/** The operator's deadlines per request; generous, this machine may be shared and loaded. */
const ADMIN_TIMEOUT_MS = 5000;
/** Bytes of each node's stderr kept, quoted when a formation fails. */
const STDERR_KEPT_BYTES = 4000;
const SRV_NAME = '_rdbnet._tcp.db.internal';
/** Completed formations per contender below which the goal is not judged. */
const MEDIAN_TRIALS_MIN = 3;
/** Issue 12's goal: what discovery may add to static joins, median against median. */
const GOAL_ADDED_MS = 1000;
const BIN = new URL('../bin/run.js', import.meta.url).pathname;
/** Where each node's full log goes (DISCOVERY_BENCH_LOG_DIR); unset: kept only in memory. */
const LOG_DIR = process.env['DISCOVERY_BENCH_LOG_DIR'] || undefined;

interface Contender {
  name: string;
  /** Starts what the contender needs once per run (a DNS server); returns its flags maker. */
  setup(ports: number[]): Promise<{ args(addresses: string[]): string[]; stop(): Promise<void> }>;
}

const CONTENDERS: Contender[] = [
  {
    name: 'static --join',
    setup: async () => ({
      args: (addresses) => ['--join', addresses.join(',')],
      stop: async () => {},
    }),
  },
  {
    name: 'dns --retry-join',
    setup: async (ports) => {
      const dns = await startDnsmasq({
        srv: ports.map((port, i) => ({ name: SRV_NAME, target: `n${i + 1}.db.internal`, port })),
        hosts: ports.map((_, i) => [`n${i + 1}.db.internal`, '127.0.0.1'] as [string, string]),
      });
      const spec = `provider=dns name=${SRV_NAME} server=${dns.server}`;
      return { args: () => ['--retry-join', spec], stop: () => dns.stop() };
    },
  },
  {
    name: 'etcd --retry-join',
    setup: async () => {
      // A fresh etcd per formation: registrations of killed nodes (kill -9 leaves their keys
      // until the lease runs out) must not be found by the next formation's nodes.
      const etcd = await startEtcd();
      const spec = `provider=etcd endpoints=${etcd.endpoint} prefix=/rdbnet/bench`;
      return { args: () => ['--register', spec, '--retry-join', spec], stop: () => etcd.stop() };
    },
  },
];

/** DISCOVERY_BENCH_ONLY: the first words of the contenders to run (all when unset). */
const ONLY = process.env['DISCOVERY_BENCH_ONLY']?.split(',').filter((word) => word !== '');
const RUN: Contender[] =
  ONLY === undefined
    ? CONTENDERS
    : CONTENDERS.filter((contender) => ONLY.includes(contender.name.split(' ')[0]!));
if (RUN.length === 0) {
  console.error(`bench:discovery: DISCOVERY_BENCH_ONLY names no contender (${ONLY?.join(',')})`);
  process.exit(64);
}

const nodeId = (i: number) => `n${String(i).padStart(2, '0')}`;

function startNode(home: string, dataRoot: string, id: string, port: number, extra: string[]) {
  return track(
    spawn(
      process.execPath,
      [
        BIN,
        'node',
        'start',
        '--id',
        id,
        '--listen',
        `127.0.0.1:${port}`,
        '--data-dir',
        join(dataRoot, id),
        '--bootstrap-expect',
        '3',
        '--preset',
        'local',
        '--log-level',
        LOG_DIR === undefined ? 'warn' : 'info',
        ...extra,
      ],
      {
        env: { ...process.env, RDBNET_HOME: home, CI: 'true' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    ),
  );
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const CLOCK_TICKS_PER_S = 100;

/**
 * CPU seconds (user + system) process `pid` has used so far; 0 once it is gone. What the
 * nodes burn to form a cluster matters on a shared machine as much as how long it takes.
 */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at state: utime and stime
    // are fields 14 and 15, i.e. 11 and 12 after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** One formation: spawn N nodes, wait for one cluster where everyone sees N alive. */
async function formation(
  home: string,
  dataRoot: string,
  ports: number[],
  args: string[],
  logDir: string | undefined,
): Promise<{ ms: number; upMs: number; cpuS: number }> {
  const admin = new Admin(join(home, 'certs'), ADMIN_TIMEOUT_MS);
  const addresses = ports.map((port) => `127.0.0.1:${port}`);
  if (logDir !== undefined) await mkdir(logDir, { recursive: true });
  const started = performance.now();
  const children = ports.map((port, i) => startNode(home, dataRoot, nodeId(i + 1), port, args));
  if (logDir !== undefined) {
    children.forEach((child, i) => {
      child.stderr!.pipe(createWriteStream(join(logDir, `${nodeId(i + 1)}.log`)));
    });
  }
  // A node that exits on its own ends the trial at once, quoting what it said.
  const stderr = children.map(() => '');
  const early: string[] = [];
  children.forEach((child, i) => {
    child.stderr!.on('data', (chunk) => {
      stderr[i] = (stderr[i] + String(chunk)).slice(-STDERR_KEPT_BYTES);
    });
    child.once('exit', (code, signal) => {
      if (signal !== 'SIGKILL')
        early.push(`${addresses[i]} exited (${code ?? signal}): ${stderr[i]}`);
    });
  });
  // What the last look found at the first node short of the goal: quoted if time runs out.
  let shortfall = '';
  // When each node first answered: process start-up, the same for every contender, apart
  // from the formation itself.
  const upAt: (number | undefined)[] = addresses.map(() => undefined);
  try {
    await until(
      `${ports.length} nodes in one cluster, each seeing ${ports.length} alive`,
      async () => {
        if (early.length > 0) throw new Error(early[0]);
        // Nodes not up yet are asked every look (refused at once until they listen), so that
        // each one's start-up time is known even while an earlier node is not a member yet.
        await Promise.all(
          addresses.map(async (address, i) => {
            if (upAt[i] !== undefined) return;
            await admin.status(address, ADMIN_TIMEOUT_MS).then(
              () => {
                upAt[i] = performance.now();
              },
              () => {},
            );
          }),
        );
        const clusters = new Set<string>();
        for (const [i, address] of addresses.entries()) {
          shortfall = `${nodeId(i + 1)} (${address}) did not answer; its stderr: ${stderr[i]}`;
          const status = await admin.status(address, ADMIN_TIMEOUT_MS);
          shortfall = `${nodeId(i + 1)} (${address}) is ${status.state} in cluster '${status.clusterId}'`;
          if (status.state !== 'member' || status.clusterId === '') return undefined;
          clusters.add(status.clusterId);
          const members = await admin.members(address, ADMIN_TIMEOUT_MS);
          const alive = members.filter((member) => member.state === 'alive').length;
          shortfall = `${nodeId(i + 1)} (${address}) sees ${alive} alive`;
          if (alive < ports.length) return undefined;
        }
        shortfall = `${clusters.size} clusters: ${[...clusters].join(', ')}`;
        return clusters.size === 1 ? true : undefined;
      },
      FORMATION_TIMEOUT_MS,
      POLL_MS,
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; last look: ${shortfall}`);
    });
    const ms = performance.now() - started;
    const upMs = Math.max(...upAt.map((at) => (at ?? started) - started));
    const cpuS = children.reduce((sum, child) => sum + cpuSeconds(child.pid), 0);
    return { ms, upMs, cpuS };
  } finally {
    admin.close();
    await Promise.all(children.map((child) => kill9(child)));
  }
}

// A stopped bench takes its nodes with it (harness.ts kills them on exit).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(1));

if (dnsmasqBinary() === null) {
  console.error(
    'bench:discovery: dnsmasq is not installed (apt-get install dnsmasq; .ci/run installs it)',
  );
  process.exit(1);
}
const etcdAbsent = etcdMissing();
if (etcdAbsent !== undefined) {
  console.error(`bench:discovery: ${etcdAbsent}`);
  process.exit(1);
}
const root = await mkdtemp(join(tmpdir(), 'rdbnet-bench-discovery-'));
try {
  const ports = await freeTcpPorts(NODES);
  // Everything a start would create, made before anything is timed, one at a time (nodes
  // started together would queue on the certificates directory's lock): the CA and admin
  // client, each node's certificate, and the gossip keyring (by one node started alone).
  const cli = (args: string[]) =>
    execFileSync(process.execPath, [BIN, ...args], {
      env: { ...process.env, RDBNET_HOME: root, CI: 'true' },
      stdio: 'ignore',
    });
  cli(['certs', 'init']);
  for (let i = 1; i <= NODES; i++) cli(['certs', 'issue', '--node-id', nodeId(i)]);
  const first = startNode(root, join(root, 'warmup'), nodeId(1), ports[0]!, []);
  const admin = new Admin(join(root, 'certs'), ADMIN_TIMEOUT_MS);
  try {
    await until(
      'the warm-up node answers',
      () => admin.status(`127.0.0.1:${ports[0]}`),
      60_000,
      POLL_MS,
    );
  } finally {
    admin.close();
    await kill9(first);
  }
  const samples = new Map<string, number[]>(RUN.map((c) => [c.name, []]));
  const cpu = new Map<string, number[]>(RUN.map((c) => [c.name, []]));
  /** Per formation: from the last node answering to formed (start-up left out). */
  const afterUp = new Map<string, number[]>(RUN.map((c) => [c.name, []]));
  const loads: number[] = [];
  const failures: string[] = [];
  let run = 0;
  for (let trial = 0; trial < TRIALS; trial++) {
    // Alternate which contender goes first.
    const order = trial % 2 === 0 ? RUN : [...RUN].reverse();
    for (const contender of order) {
      const dataRoot = join(root, `run-${run++}`);
      const setup = await contender.setup(ports);
      try {
        const logDir =
          LOG_DIR === undefined
            ? undefined
            : join(LOG_DIR, `${trial + 1}-${contender.name.split(' ')[0]}`);
        const { ms, upMs, cpuS } = await formation(
          root,
          dataRoot,
          ports,
          setup.args(ports.map((port) => `127.0.0.1:${port}`)),
          logDir,
        );
        samples.get(contender.name)!.push(ms);
        afterUp.get(contender.name)!.push(ms - upMs);
        cpu.get(contender.name)!.push(cpuS);
        console.error(
          `${contender.name}, ${NODES} nodes, trial ${trial + 1}/${TRIALS}: ${ms.toFixed(0)} ms ` +
            `(all up after ${upMs.toFixed(0)} ms), ${cpuS.toFixed(1)} CPU s, ` +
            `load average ${loadavg()[0]!.toFixed(1)}`,
        );
      } catch (error) {
        failures.push(`${contender.name} trial ${trial + 1}: ${(error as Error).message}`);
        console.error(`${contender.name} trial ${trial + 1} failed: ${(error as Error).message}`);
      } finally {
        loads.push(round(loadavg()[0]!));
        await setup.stop();
      }
      await sleep(500);
    }
  }
  const rows = RUN.map((contender) => {
    const list = samples.get(contender.name)!;
    const cpuList = cpu.get(contender.name)!;
    const afterUpList = afterUp.get(contender.name)!;
    return {
      contender: contender.name,
      nodes: NODES,
      trials: list.length,
      medianMs: list.length === 0 ? null : round(percentile(list, 50)),
      minMs: list.length === 0 ? null : round(Math.min(...list)),
      maxMs: list.length === 0 ? null : round(Math.max(...list)),
      samplesMs: list.map(round),
      medianAfterUpMs: afterUpList.length === 0 ? null : round(percentile(afterUpList, 50)),
      samplesAfterUpMs: afterUpList.map(round),
      medianCpuS: cpuList.length === 0 ? null : round(percentile(cpuList, 50)),
      samplesCpuS: cpuList.map(round),
    };
  });
  const staticRow = rows.find((row) => row.contender === CONTENDERS[0]!.name);
  const baseline = staticRow?.medianMs ?? null;
  const table = new Table({
    head: [
      'contender',
      'nodes',
      'trials',
      'median ms',
      'min ms',
      'max ms',
      'vs static',
      'median ms after all up',
      'median CPU s',
    ],
  });
  for (const row of rows) {
    const delta =
      row.medianMs === null || baseline === null
        ? ''
        : `${row.medianMs - baseline >= 0 ? '+' : ''}${round(row.medianMs - baseline)} ms`;
    table.push([
      row.contender,
      row.nodes,
      row.trials,
      row.medianMs ?? '-',
      row.minMs ?? '-',
      row.maxMs ?? '-',
      delta,
      row.medianAfterUpMs ?? '-',
      row.medianCpuS ?? '-',
    ]);
  }
  console.log(table.toString());
  // Per discovery contender: what it adds to the static median, judged on medians of at
  // least MEDIAN_TRIALS_MIN completed formations each (fewer decide nothing).
  const added = rows
    .filter((row) => row !== staticRow)
    .map((row) => {
      const addedMs =
        row.medianMs === null || baseline === null ? null : round(row.medianMs - baseline);
      const judged =
        addedMs !== null &&
        row.trials >= MEDIAN_TRIALS_MIN &&
        (staticRow?.trials ?? 0) >= MEDIAN_TRIALS_MIN;
      return {
        contender: row.contender,
        addedMs,
        goalMet: judged ? addedMs <= GOAL_ADDED_MS : null,
      };
    });
  const file = await writeResults('discovery', {
    quick: QUICK,
    nodes: NODES,
    trials: TRIALS,
    measured:
      'spawn of N fresh nodes → every node a member of one cluster and seeing N alive in gossip',
    goal: `each --retry-join contender adds ≤ ${GOAL_ADDED_MS} ms to static --join (medians)`,
    added,
    // The machine may be shared: its 1-minute load average after each formation.
    loadAverages: loads,
    contenders: rows,
    failures,
  });
  console.log(`results: ${file}`);
  if (failures.length > 0 && rows.some((row) => row.trials === 0)) process.exitCode = 1;
} finally {
  await rm(root, { recursive: true, force: true });
}
