/**
 * bench:raft — the cluster configuration group on real processes, loopback only:
 *
 *   failover     kill -9 of the leader of a 3-node cluster, until a survivor reports a new
 *                leader; survivors are polled every 10 ms over their own protocol (rdbnet:
 *                ClusterStatusRequest over mutual TLS; etcd: its HTTP maintenance/status
 *                API). The killed member is restarted and the cluster settles before the next
 *                trial. rdbnet and etcd 3.4 (Debian etcd-server) at their default timings.
 *   membership   proposal-to-apply time, measured on the rdbnet leader, of the changes a
 *                node joining (addLearner, then promoteLearner once caught up) and leaving
 *                (removeNode) makes; CLI and process start-up are not included.
 *
 * Prints a table and writes bench/results/raft.json. Options (env), with the quick-mode
 * (BENCH_QUICK=1, see harness.ts) value second: RAFT_BENCH_TRIALS (15 failovers per system; 1),
 * RAFT_BENCH_MEMBERSHIP_TRIALS (20 join+leave rounds; 1), RAFT_BENCH_SKIP_ETCD=1.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { DEFAULT_RAFT_CONFIG, DEFAULT_TICK_MS } from '../src/core/membership/raft/config.ts';
import type { ConfChangeTiming } from '../src/core/protocol/messages.ts';
import { request } from '../src/core/rpc/request.ts';
import {
  Admin,
  type BenchNode,
  exited,
  freePort,
  kill9,
  live,
  percentile,
  QUICK,
  round,
  setting,
  sleep,
  startRdbnet,
  track,
  until,
  writeResults,
} from './harness.ts';

const TRIALS = setting('RAFT_BENCH_TRIALS', 15, 1);
const MEMBERSHIP_TRIALS = setting('RAFT_BENCH_MEMBERSHIP_TRIALS', 20, 1);
const SKIP_ETCD = process.env['RAFT_BENCH_SKIP_ETCD'] === '1';
/** How often survivors are asked for their leader. */
const POLL_MS = 10;

function summary(samples: number[]) {
  return {
    trials: samples.length,
    medianMs: round(percentile(samples, 50)),
    p99Ms: round(percentile(samples, 99)),
    minMs: round(Math.min(...samples)),
    maxMs: round(Math.max(...samples)),
    samplesMs: samples.map(round),
  };
}

// ------------------------------------------------------------------ rdbnet

/** Every node agrees on leader, term and commit index, and has applied it. */
async function rdbnetSettled(admin: Admin, nodes: BenchNode[], voters: number): Promise<string> {
  return until('rdbnet cluster to settle', async () => {
    const replies = await Promise.all(nodes.map((node) => admin.status(node.address)));
    const first = replies[0]!;
    const agree =
      first.leader !== '' &&
      replies.every(
        (reply) =>
          reply.leader === first.leader &&
          reply.term === first.term &&
          reply.commitIndex === first.commitIndex &&
          reply.appliedIndex === reply.commitIndex &&
          reply.members.filter((member) => member.voter).length === voters,
      );
    return agree ? first.leader : undefined;
  });
}

async function benchRdbnet(home: string) {
  const admin = new Admin(join(home, 'certs'));
  const nodes: BenchNode[] = [];
  try {
    nodes.push(await startRdbnet(home, 'n1', ''));
    nodes.push(
      ...(await Promise.all(['n2', 'n3'].map((id) => startRdbnet(home, id, nodes[0]!.address)))),
    );
    await request(
      await admin.connection(nodes[0]!.address),
      'clusterBootstrapRequest',
      { expect: 3, waitMs: 20_000 },
      30_000,
    );
    const failover: number[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const leaderId = await rdbnetSettled(admin, nodes, 3);
      // A settled leader, heartbeating for a while, as in steady state.
      await sleep(300);
      const victim = nodes.find((node) => node.id === leaderId)!;
      const survivors = nodes.filter((node) => node !== victim);
      await Promise.all(survivors.map((node) => admin.connection(node.address)));
      const started = performance.now();
      victim.child.kill('SIGKILL');
      await until(
        'a new rdbnet leader',
        async () => {
          const replies = await Promise.all(
            survivors.map((node) => admin.status(node.address).catch(() => undefined)),
          );
          return replies.find(
            (reply) => reply?.leader !== '' && reply?.leader !== leaderId && reply !== undefined,
          );
        },
        20_000,
        POLL_MS,
      );
      const ms = performance.now() - started;
      failover.push(ms);
      console.error(`rdbnet failover ${trial + 1}/${TRIALS}: ${ms.toFixed(0)} ms`);
      await exited(victim.child);
      const restarted = await startRdbnet(
        home,
        victim.id,
        survivors.map((node) => node.address).join(','),
      );
      nodes.splice(nodes.indexOf(victim), 1, restarted);
    }

    // Membership changes: a node joins (learner, then promoted), then leaves.
    for (let trial = 0; trial < MEMBERSHIP_TRIALS; trial++) {
      await rdbnetSettled(admin, nodes, 3);
      const id = `m${trial + 1}`;
      const member = await startRdbnet(home, id, nodes.map((node) => node.address).join(','));
      await rdbnetSettled(admin, [...nodes, member], 4);
      await request(
        await admin.connection(member.address),
        'leaveRequest',
        { force: false },
        15_000,
      );
      await exited(member.child);
    }
    await rdbnetSettled(admin, nodes, 3);
    const timings = new Map<string, ConfChangeTiming>();
    for (const node of nodes) {
      for (const timing of (await admin.status(node.address)).confChangeTimings) {
        if (timing.nodeId.startsWith('m')) timings.set(`${timing.index}`, timing);
      }
    }
    const byOp = (op: string) =>
      [...timings.values()].filter((timing) => timing.op === op).map((timing) => timing.commitMs);
    return {
      failover,
      membership: {
        addLearner: byOp('addLearner'),
        promoteLearner: byOp('promoteLearner'),
        removeNode: byOp('removeNode'),
      },
    };
  } finally {
    admin.close();
    await Promise.all(nodes.map((node) => kill9(node.child)));
  }
}

// ------------------------------------------------------------------ etcd 3.4

interface EtcdMember {
  name: string;
  clientUrl: string;
  args: string[];
  child: ChildProcess;
}

function etcdVersion(): string | undefined {
  const result = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) return undefined;
  return /etcd Version: (\S+)/.exec(result.stdout)?.[1];
}

function spawnEtcd(args: string[]): ChildProcess {
  return track(spawn('etcd', args, { stdio: ['ignore', 'ignore', 'ignore'] }));
}

interface EtcdStatus {
  header: { member_id: string };
  leader: string;
  raftTerm: string;
  raftIndex: string;
  raftAppliedIndex: string;
}

async function etcdStatus(member: EtcdMember): Promise<EtcdStatus> {
  const response = await fetch(`${member.clientUrl}/v3/maintenance/status`, {
    method: 'POST',
    body: '{}',
    signal: AbortSignal.timeout(500),
  });
  if (!response.ok) throw new Error(`etcd status ${response.status}`);
  return (await response.json()) as EtcdStatus;
}

async function etcdSettled(
  members: EtcdMember[],
): Promise<{ leader: string; memberIds: Map<EtcdMember, string> }> {
  return until(
    'etcd cluster to settle',
    async () => {
      const replies = await Promise.all(members.map((member) => etcdStatus(member)));
      const first = replies[0]!;
      const agree =
        first.leader !== '0' &&
        first.leader !== undefined &&
        replies.every(
          (reply) =>
            reply.leader === first.leader &&
            reply.raftTerm === first.raftTerm &&
            reply.raftAppliedIndex === first.raftAppliedIndex,
        );
      if (!agree) return undefined;
      return {
        leader: first.leader,
        memberIds: new Map(members.map((member, i) => [member, replies[i]!.header.member_id])),
      };
    },
    30_000,
  );
}

async function benchEtcd(home: string) {
  const names = ['e1', 'e2', 'e3'];
  const ports = await Promise.all(
    names.map(async () => ({ client: await freePort(), peer: await freePort() })),
  );
  const initialCluster = names
    .map((name, i) => `${name}=http://127.0.0.1:${ports[i]!.peer}`)
    .join(',');
  const members: EtcdMember[] = names.map((name, i) => {
    const clientUrl = `http://127.0.0.1:${ports[i]!.client}`;
    const peerUrl = `http://127.0.0.1:${ports[i]!.peer}`;
    const args = [
      '--name',
      name,
      '--data-dir',
      join(home, name),
      '--listen-client-urls',
      clientUrl,
      '--advertise-client-urls',
      clientUrl,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-state',
      'new',
      '--initial-cluster-token',
      'rdbnet-bench',
      '--logger',
      'zap',
      '--log-outputs',
      'stderr',
    ];
    return { name, clientUrl, args, child: spawnEtcd(args) };
  });
  try {
    const failover: number[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const { leader, memberIds } = await etcdSettled(members);
      await sleep(300);
      const victim = members.find((member) => memberIds.get(member) === leader)!;
      const survivors = members.filter((member) => member !== victim);
      // Warm the HTTP connections, as the rdbnet side has its connections open.
      await Promise.all(survivors.map((member) => etcdStatus(member)));
      const started = performance.now();
      victim.child.kill('SIGKILL');
      await until(
        'a new etcd leader',
        async () => {
          const replies = await Promise.all(
            survivors.map((member) => etcdStatus(member).catch(() => undefined)),
          );
          return replies.find(
            (reply) => reply !== undefined && reply.leader !== '0' && reply.leader !== leader,
          );
        },
        20_000,
        POLL_MS,
      );
      const ms = performance.now() - started;
      failover.push(ms);
      console.error(`etcd failover ${trial + 1}/${TRIALS}: ${ms.toFixed(0)} ms`);
      await exited(victim.child);
      victim.child = spawnEtcd(victim.args);
    }
    return failover;
  } finally {
    await Promise.all(members.map((member) => kill9(member.child)));
  }
}

// ------------------------------------------------------------------ main

const home = await mkdtemp(join(tmpdir(), 'rdbnet-bench-raft-'));
try {
  const rdbnet = await benchRdbnet(join(home, 'rdbnet'));
  const version = SKIP_ETCD ? undefined : etcdVersion();
  let etcd: ReturnType<typeof summary> | undefined;
  let etcdNote: string;
  if (version === undefined) {
    etcdNote = SKIP_ETCD
      ? 'skipped (RAFT_BENCH_SKIP_ETCD=1)'
      : 'etcd is not installed (Debian: apt-get install etcd-server); measured rdbnet only';
    console.error(etcdNote);
  } else {
    etcdNote = `etcd ${version}, defaults: --heartbeat-interval 100 ms, --election-timeout 1000 ms, pre-vote off`;
    etcd = summary(await benchEtcd(join(home, 'etcd')));
  }
  const rdbnetFailover = summary(rdbnet.failover);
  const electionMs = DEFAULT_RAFT_CONFIG.electionTicks * DEFAULT_TICK_MS;
  const rdbnetNote = `tick ${DEFAULT_TICK_MS} ms, election ${electionMs}..${2 * electionMs} ms, heartbeat ${DEFAULT_RAFT_CONFIG.heartbeatTicks * DEFAULT_TICK_MS} ms, pre-vote + check-quorum`;

  const failoverTable = new Table({
    head: [
      'failover (kill -9 → new leader seen)',
      'trials',
      'median ms',
      'p99 ms',
      'min ms',
      'max ms',
      'timings',
    ],
    style: { head: [], border: [] },
  });
  failoverTable.push([
    'rdbnet',
    rdbnetFailover.trials,
    rdbnetFailover.medianMs,
    rdbnetFailover.p99Ms,
    rdbnetFailover.minMs,
    rdbnetFailover.maxMs,
    rdbnetNote,
  ]);
  if (etcd !== undefined) {
    failoverTable.push([
      `etcd ${version}`,
      etcd.trials,
      etcd.medianMs,
      etcd.p99Ms,
      etcd.minMs,
      etcd.maxMs,
      etcdNote,
    ]);
  }
  console.log(failoverTable.toString());
  if (etcd === undefined) console.log(etcdNote);

  const membership = Object.fromEntries(
    Object.entries(rdbnet.membership).map(([op, samples]) => [
      op,
      samples.length === 0
        ? { samples: 0 }
        : {
            samples: samples.length,
            p50Ms: round(percentile(samples, 50)),
            p99Ms: round(percentile(samples, 99)),
            maxMs: round(Math.max(...samples)),
          },
    ]),
  );
  const membershipTable = new Table({
    head: ['membership change (propose → applied on leader)', 'n', 'p50 ms', 'p99 ms', 'max ms'],
    style: { head: [], border: [] },
  });
  for (const [op, stats] of Object.entries(membership)) {
    const s = stats as { samples: number; p50Ms?: number; p99Ms?: number; maxMs?: number };
    membershipTable.push([op, s.samples, s.p50Ms ?? '-', s.p99Ms ?? '-', s.maxMs ?? '-']);
  }
  console.log(membershipTable.toString());
  console.log(
    'p99 is the nearest-rank percentile: with fewer than 100 samples it is the largest one.',
  );

  const file = await writeResults('raft', {
    benchmark: 'raft',
    measuredAt: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    quick: QUICK,
    settings: {
      trials: TRIALS,
      membershipTrials: MEMBERSHIP_TRIALS,
      pollMs: POLL_MS,
      clusterSize: 3,
    },
    failover: {
      rdbnet: { ...rdbnetFailover, timings: rdbnetNote },
      etcd: etcd === undefined ? { skipped: etcdNote } : { ...etcd, version, timings: etcdNote },
    },
    membership,
    membershipSamplesMs: rdbnet.membership,
  });
  console.log(`wrote ${file}`);
} finally {
  for (const child of live) child.kill('SIGKILL');
  await rm(home, { recursive: true, force: true });
}
