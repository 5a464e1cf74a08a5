/**
 * The node's own cluster traffic through its peer resilience, on real processes driven by the
 * real CLI: three nodes started with --join and bootstrapped.
 *
 * - A leadership transfer asked of a follower is forwarded to the leader through the
 *   follower's breaker and budget: the leader's entry in the follower's `lb status --json`
 *   counts one more guarded call (and request), with its latency and a closed breaker; the
 *   `cluster status` hop from a follower to the leader is counted the same way.
 * - A joiner's join request is a guarded call on the joiner, to the leader or to its seed, which
 *   then forwards it to the leader as a guarded call of its own.
 * - After kill -9 of a follower, the leader's requests to it (the link upkeep to every voter)
 *   fail until its breaker opens; then they are refused at once with RDB_CIRCUIT_OPEN, without
 *   a dial: `breakerRejected` grows while `failures` stops growing (a probe every open period
 *   aside). A forward through the surviving follower still reaches the leader.
 *
 * Loopback only, ports from the kernel; every wait bounded; every node killed in teardown.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MembersReply } from '../../src/core/protocol/messages.ts';
import { adminConnections } from '../helpers/admin-connections.ts';
import {
  describeResult,
  killAllNodes,
  type NodeProcess,
  parseJson,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

/** Generous bounds for a loaded machine; nothing here asserts a timing. */
const CLUSTER_READY_MS_MAX = 60_000;
const BREAKER_OPEN_MS_MAX = 30_000;

let home: { dir: string; cleanup(): Promise<void> };
const nodes = new Map<string, NodeProcess>();
const ids = ['n1', 'n2', 'n3'];

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

async function cli<T>(args: string[], expectCode = 0): Promise<T> {
  const result = await runCli([...args, '--json'], env(), 60_000);
  assert.equal(result.code, expectCode, describeResult(result));
  return parseJson<T>(result);
}

const admin = adminConnections(() => join(home.dir, 'certs'));
const until = poller(100);

interface PeerJson {
  id: string | null;
  address: string;
  memberState: string | null;
  breaker: string;
  breakerOpened: number;
  breakerRejected: number;
  consecutiveFailures: number;
  latencyEwmaMs: number | null;
  requests: number;
  calls: number;
  failures: number;
  lastError: string | null;
}

async function lbPeer(on: string, peer: string): Promise<PeerJson> {
  const status = await cli<{ node: string; peers: PeerJson[] }>([
    'lb',
    'status',
    '--node',
    nodes.get(on)!.address,
  ]);
  assert.equal(status.node, on);
  const entry = status.peers.find((p) => p.id === peer);
  assert.ok(
    entry !== undefined,
    `${peer} missing from ${on}'s lb status: ${JSON.stringify(status)}`,
  );
  return entry;
}

async function leaderOf(on: string): Promise<string> {
  const status = await cli<{ leader: string }>([
    'cluster',
    'status',
    '--node',
    nodes.get(on)!.address,
  ]);
  return status.leader;
}

async function members(node: NodeProcess): Promise<MembersReply['members']> {
  return (await (await admin.client(node.address)).ask('membersRequest', {})).members;
}

function start(id: string, seeds: string): Promise<NodeProcess> {
  return startNode(
    ['--id', id, '--listen', '127.0.0.1:0', '--data-dir', join(home.dir, id), '--join', seeds],
    env(),
    60_000,
  ).then((node) => {
    nodes.set(id, node);
    return node;
  });
}

before(async () => {
  home = await tempHome('rdbnet-lb-forwarding-');
});

after(async () => {
  admin.closeAll();
  await killAllNodes();
  await home.cleanup();
});

describe("the node's forwarding through breaker, budget and balancer", () => {
  let leader = '';
  let follower = '';
  let other = '';

  test('a transfer asked of a follower is a guarded call to the leader, counted in lb status', async () => {
    const n1 = await start('n1', '');
    await Promise.all(ids.slice(1).map((id) => start(id, n1.address)));
    await cli(['cluster', 'bootstrap', '--expect', '3', '--node', n1.address]);
    for (const id of ids) {
      await until(
        `three alive members and a leader on ${id}`,
        async () =>
          (await members(nodes.get(id)!)).filter((m) => m.state === 'alive').length === 3 &&
          (await leaderOf(id)) !== ''
            ? true
            : undefined,
        CLUSTER_READY_MS_MAX,
      );
    }
    leader = await leaderOf('n1');
    const followers = ids.filter((id) => id !== leader);
    follower = followers[0]!;
    other = followers[1]!;

    const before = await lbPeer(follower, leader);
    const moved = await cli<{ leader: string }>([
      'cluster',
      'transfer-leader',
      '--to',
      follower,
      '--node',
      nodes.get(follower)!.address,
    ]);
    assert.equal(moved.leader, follower);
    const afterTransfer = await lbPeer(follower, leader);
    assert.ok(
      afterTransfer.calls >= before.calls + 1,
      `${JSON.stringify({ before, afterTransfer })}`,
    );
    assert.ok(afterTransfer.requests >= before.requests + 1);
    assert.equal(afterTransfer.breaker, 'closed');
    assert.ok(afterTransfer.latencyEwmaMs !== null && afterTransfer.latencyEwmaMs > 0);
    console.log(
      `lb forwarding: ${follower}'s entry for leader ${leader}: calls ${before.calls} → ${afterTransfer.calls}, requests ${before.requests} → ${afterTransfer.requests}`,
    );

    // The old leader is a follower now: its `cluster status` asks the new leader, guarded.
    const hopBefore = await lbPeer(leader, follower);
    const status = await cli<{ leader: string }>([
      'cluster',
      'status',
      '--node',
      nodes.get(leader)!.address,
    ]);
    assert.equal(status.leader, follower);
    const hopAfter = await lbPeer(leader, follower);
    assert.ok(hopAfter.calls >= hopBefore.calls + 1, JSON.stringify({ hopBefore, hopAfter }));
    leader = follower;
    follower = ids.find((id) => id !== leader && id !== other)!;
  });

  test('kill -9 of a follower: its breaker opens on the leader, then requests to it are refused without a dial', async () => {
    assert.ok(leader !== '', 'the first test set up the cluster');
    await nodes.get(other)!.kill();
    const began = performance.now();
    const open = await until(
      `${other}'s breaker open on ${leader}`,
      async () => {
        const entry = await lbPeer(leader, other);
        return entry.breaker === 'open' || entry.breakerOpened > 0 ? entry : undefined;
      },
      BREAKER_OPEN_MS_MAX,
    );
    console.log(
      `lb forwarding: ${other}'s breaker opened on ${leader} ${Math.round(performance.now() - began)} ms after kill -9`,
    );
    assert.ok(open.breakerOpened >= 1);
    assert.ok(open.failures >= 5, JSON.stringify(open));
    assert.equal(open.lastError, 'RDB_NODE_UNREACHABLE', JSON.stringify(open));
    // Further upkeep requests are refused at once (RDB_CIRCUIT_OPEN): counted as rejected and
    // never sent, every guarded call since but the breaker's probe each open period. (Raft's
    // batches to it are measured only, so `failures` goes on growing with them.)
    const refused = await until(
      `requests to ${other} refused by its breaker on ${leader}`,
      async () => {
        const entry = await lbPeer(leader, other);
        return entry.breakerRejected >= 2 ? entry : undefined;
      },
      BREAKER_OPEN_MS_MAX,
    );
    const probesSince = refused.breakerOpened - open.breakerOpened + 1;
    const callsSince = refused.calls - open.calls;
    const rejectedSince = refused.breakerRejected - open.breakerRejected;
    assert.ok(rejectedSince >= 1, JSON.stringify({ open, refused }));
    assert.ok(
      callsSince - rejectedSince <= probesSince,
      `guarded calls went out past the probes: ${JSON.stringify({ open, refused })}`,
    );
    const counters = await cli<{ counters: Record<string, number> }>([
      'node',
      'status',
      '--node',
      nodes.get(leader)!.address,
    ]);
    assert.ok(
      (counters.counters['lb.circuit.opened'] ?? 0) >= 1,
      JSON.stringify(counters.counters),
    );
    assert.ok((counters.counters['lb.circuit.rejected'] ?? 0) >= 2);

    // The leader's breaker on the surviving follower is closed: its forwards still arrive.
    const moved = await cli<{ leader: string }>([
      'cluster',
      'transfer-leader',
      '--to',
      follower,
      '--node',
      nodes.get(follower)!.address,
    ]);
    assert.equal(moved.leader, follower);
    assert.equal((await lbPeer(follower, leader)).breaker, 'closed');
    leader = follower;
  });

  test('a join is a guarded call from the joiner, and forwarded through a follower, one from it', async () => {
    assert.ok(leader !== '', 'the first tests set up the cluster');
    const seed = ids.find((id) => id !== leader && id !== other)!;
    const seedBefore = await lbPeer(seed, leader);
    await start('n4', nodes.get(seed)!.address);
    await until(
      'n4 a member on the leader',
      async () => {
        const status = await cli<{ members: { id: string }[] }>([
          'cluster',
          'status',
          '--node',
          nodes.get(leader)!.address,
        ]);
        return status.members.some((member) => member.id === 'n4') ? true : undefined;
      },
      CLUSTER_READY_MS_MAX,
    );
    const joiner = await cli<{ peers: PeerJson[] }>([
      'lb',
      'status',
      '--node',
      nodes.get('n4')!.address,
    ]);
    const toLeader = joiner.peers.find((peer) => peer.id === leader);
    const toSeed = joiner.peers.find((peer) => peer.id === seed);
    const seedAfter = await lbPeer(seed, leader);
    const report = JSON.stringify({ toLeader, toSeed, seedBefore, seedAfter });
    // Sent straight to the leader when the joiner knew it, else to the seed, which forwarded it.
    if ((toLeader?.calls ?? 0) >= 1) {
      assert.equal(toLeader!.breaker, 'closed', report);
      console.log(
        `lb forwarding: n4's join went to the leader ${leader} (calls ${toLeader!.calls})`,
      );
    } else {
      assert.ok((toSeed?.calls ?? 0) >= 1, report);
      assert.ok(seedAfter.calls >= seedBefore.calls + 1, report);
      console.log(
        `lb forwarding: n4's join went through ${seed}, whose entry for ${leader}: calls ${seedBefore.calls} → ${seedAfter.calls}`,
      );
    }
  });
});
