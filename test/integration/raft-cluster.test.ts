/**
 * The cluster configuration (Raft) on real processes, driven by the real CLI: three nodes
 * started with --join and bootstrapped once, a second bootstrap refused, kill -9 of the
 * leader and failover (measured by polling the survivors over the binary protocol every
 * 10 ms), `cluster leave` refused while it would lose quorum, a fourth node joining as a
 * learner and promoted while the killed node is down, leadership transferred to it, the
 * killed node restarted on a new port rejoining under that leader it never knew and
 * catching up, the fourth node (leader) leaving, and every node's applied configuration
 * history compared: no committed change may be missing anywhere. Then --bootstrap-expect.
 *
 * The steps share one cluster, so they run in order; loopback only, ports from the kernel.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ClusterStatusReply, ConfigRecord } from '../../src/core/protocol/messages.ts';
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

/**
 * How long the survivors get to elect a new leader. A safety bound, not a performance goal:
 * failover time is measured by `npm run bench:raft` (against etcd); on a loaded machine a
 * split vote can take a few election timeouts, which must not fail this test.
 */
const FAILOVER_WAIT_MS = 10_000;
const POLL_MS = 10;

let home: { dir: string; cleanup(): Promise<void> };
const nodes = new Map<string, NodeProcess>();
/** Every configuration history seen during the run, to check none loses a record later. */
const historiesSeen: ConfigRecord[][] = [];

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

async function cli<T>(args: string[], expectCode = 0): Promise<T> {
  const result = await runCli([...args, '--json'], env(), 30_000);
  assert.equal(result.code, expectCode, describeResult(result));
  return parseJson<T>(result);
}

function start(id: string, seeds: string): Promise<NodeProcess> {
  return startNode(
    ['--id', id, '--listen', '127.0.0.1:0', '--data-dir', dataDir(id), '--join', seeds],
    env(),
  ).then((node) => {
    nodes.set(id, node);
    return node;
  });
}

function dataDir(id: string): string {
  return join(home.dir, id);
}

// ---- a client on the binary protocol, as `rdbnet` uses it, for polling every 10 ms

const admin = adminConnections(() => join(home.dir, 'certs'));

const client = admin.client;

async function status(node: NodeProcess, localOnly = true): Promise<ClusterStatusReply> {
  const reply = await (await client(node.address)).ask('clusterStatusRequest', { localOnly });
  if (reply.history.length > 0) historiesSeen.push(plain(reply.history));
  return reply;
}

/** Decoded protobuf messages as plain objects, so they compare with deepStrictEqual. */
function plain(history: ConfigRecord[]): ConfigRecord[] {
  return history.map(({ index, term, op, nodeId, address }) => ({
    index,
    term,
    op,
    nodeId,
    address,
  }));
}

const until = poller(POLL_MS);

function running(): NodeProcess[] {
  return [...nodes.values()].filter(
    (node) => node.child.exitCode === null && node.child.signalCode === null,
  );
}

/** Waits until every running node applied the same index and reports the same leader and term. */
async function settled(expectVoters: number): Promise<ClusterStatusReply[]> {
  return until('the cluster to settle', async () => {
    const replies = await Promise.all(running().map((node) => status(node)));
    const [first] = replies;
    if (first === undefined || first.leader === '') return undefined;
    const agree = replies.every(
      (reply) =>
        reply.leader === first.leader &&
        reply.term === first.term &&
        reply.commitIndex === first.commitIndex &&
        reply.appliedIndex === first.commitIndex &&
        reply.members.filter((member) => member.voter).length === expectVoters,
    );
    return agree ? replies : undefined;
  });
}

interface StatusJson {
  clusterId: string;
  leader: string | null;
  term: number;
  commitIndex: number;
  members: { id: string; role: string; voter: boolean; matchIndex: number; lag: number }[];
  history: ConfigRecord[];
}

before(async () => {
  home = await tempHome('rdbnet-raft-');
});

after(async () => {
  admin.closeAll();
  await killAllNodes();
  await home.cleanup();
});

describe('cluster configuration with Raft, on real processes', () => {
  let clusterId = '';
  let killedId = '';

  test('three nodes with --join, bootstrapped once with `cluster bootstrap --expect 3`', async () => {
    // n1 knows no seeds and waits to be found; its certificates make the shared CA first.
    const n1 = await start('n1', '');
    await Promise.all([start('n2', n1.address), start('n3', n1.address)]);

    const boot = await cli<{
      clusterId: string;
      leader: string;
      members: { id: string; voter: boolean }[];
    }>(['cluster', 'bootstrap', '--expect', '3', '--node', n1.address]);
    assert.match(boot.clusterId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(boot.members.map((member) => member.id).sort(), ['n1', 'n2', 'n3']);
    assert.ok(boot.members.every((member) => member.voter));
    assert.ok(['n1', 'n2', 'n3'].includes(boot.leader), boot.leader);
    clusterId = boot.clusterId;

    await settled(3);
    const views = await Promise.all(
      [...nodes.values()].map((node) =>
        cli<StatusJson>(['cluster', 'status', '--node', node.address]),
      ),
    );
    for (const view of views) {
      assert.equal(view.clusterId, clusterId);
      assert.equal(view.leader, views[0]!.leader);
      assert.equal(view.term, views[0]!.term);
      assert.equal(view.members.length, 3);
      assert.equal(view.members.filter((member) => member.voter).length, 3);
      assert.equal(view.members.filter((member) => member.role === 'leader').length, 1);
      for (const member of view.members) {
        assert.equal(typeof member.matchIndex, 'number');
        assert.equal(typeof member.lag, 'number');
      }
    }
  });

  test('a second bootstrap is refused, on any node', async () => {
    for (const id of ['n2', 'n1']) {
      const result = await runCli(
        ['cluster', 'bootstrap', '--expect', '3', '--json', '--node', nodes.get(id)!.address],
        env(),
      );
      assert.equal(result.code, 1, describeResult(result));
      const { error } = parseJson<{ error: { code: string; message: string } }>(result);
      assert.equal(error.code, 'RDB_CLUSTER_EXISTS');
      assert.match(error.message, /already belongs to cluster/);
    }
  });

  test('kill -9 of the leader: a survivor reports a new leader', async () => {
    const [view] = await settled(3);
    killedId = view!.leader;
    const leader = nodes.get(killedId)!;
    const survivors = running().filter((node) => node !== leader);
    await Promise.all(survivors.map((node) => client(node.address)));
    const started = performance.now();
    leader.child.kill('SIGKILL');
    const elected = await until(
      'a new leader',
      async () => {
        const replies = await Promise.all(
          survivors.map((node) => status(node).catch(() => undefined)),
        );
        return replies.find(
          (reply) => reply !== undefined && reply.leader !== '' && reply.leader !== killedId,
        );
      },
      FAILOVER_WAIT_MS,
    );
    const failoverMs = performance.now() - started;
    console.log(
      `# failover: ${elected.leader} leads term ${elected.term} ${failoverMs.toFixed(0)} ms after kill -9 of ${killedId}`,
    );
    assert.notEqual(elected.leader, killedId);
    await leader.kill();
  });

  test('leaving while that would lose quorum is refused; the voter stays', async () => {
    const survivor = running().find((node) => node.info.id !== killedId)!;
    const refused = await runCli(['cluster', 'leave', '--json', '--node', survivor.address], env());
    assert.equal(refused.code, 1, describeResult(refused));
    assert.equal(parseJson<{ error: { code: string } }>(refused).error.code, 'RDB_QUORUM_AT_RISK');
    assert.equal(survivor.child.exitCode, null);
  });

  test('a fourth node joins (while the killed node is down) as a learner and is promoted', async () => {
    const seeds = running()
      .map((node) => node.address)
      .join('\n');
    // --join - reads the seeds from stdin.
    const n4 = await startNode(
      ['--id', 'n4', '--listen', '127.0.0.1:0', '--data-dir', dataDir('n4'), '--join', '-'],
      env(),
      20_000,
      `${seeds}\n`,
    );
    nodes.set('n4', n4);
    const replies = await settled(4);
    const history = replies[0]!.history;
    const learner = history.findIndex((r) => r.op === 'addLearner' && r.nodeId === 'n4');
    const promoted = history.findIndex((r) => r.op === 'promoteLearner' && r.nodeId === 'n4');
    assert.ok(learner >= 0 && promoted > learner, JSON.stringify(history));
    const view = await cli<StatusJson>(['cluster', 'status', '--node', n4.address]);
    assert.equal(view.members.find((member) => member.id === 'n4')?.voter, true);
    assert.equal(view.members.find((member) => member.id === 'n4')?.role === 'learner', false);
  });

  test('cluster transfer-leader --to moves leadership (asked through a follower)', async () => {
    const [view] = await settled(4);
    const via = running().find((node) => node.info.id !== view!.leader && node.info.id !== 'n4')!;
    const moved = await cli<{ leader: string; term: number }>([
      'cluster',
      'transfer-leader',
      '--to',
      'n4',
      '--node',
      via.address,
    ]);
    assert.equal(moved.leader, 'n4');
    const replies = await settled(4);
    assert.ok(replies.every((reply) => reply.leader === 'n4'));
  });

  test('the killed node restarts on a new port, rejoins as a follower and catches up', async () => {
    // Its configuration predates n4, which now leads: it learns n4 is a member from the others.
    const seeds = running()
      .map((node) => node.address)
      .join(',');
    const restarted = await start(killedId, seeds);
    const replies = await settled(4);
    const mine = replies.find((reply) => reply.id === killedId)!;
    assert.equal(mine.role, 'follower');
    assert.equal(mine.clusterId, clusterId);
    assert.equal(mine.leader, 'n4');
    assert.match(restarted.stderr(), /member vouched for by another member.*"node":"n4"/);
    // Its new address is committed in the configuration every member holds.
    for (const reply of replies) {
      const entry = reply.members.find((member) => member.id === killedId);
      assert.equal(entry?.address, restarted.address);
    }
    const view = await cli<StatusJson>(['cluster', 'status', '--node', restarted.address]);
    assert.equal(view.commitIndex, replies[0]!.commitIndex);
  });

  test('cluster leave on the fourth node (the leader) leaves three voters; it exits 0', async () => {
    const n4 = nodes.get('n4')!;
    const exited = new Promise<number | null>((resolve) => n4.child.once('exit', resolve));
    const left = await cli<{ left: boolean; id: string }>([
      'cluster',
      'leave',
      '--node',
      n4.address,
    ]);
    assert.deepEqual(left, { left: true, id: 'n4' });
    assert.equal(await exited, 0, n4.stderr());
    const replies = await settled(3);
    assert.deepEqual(
      replies[0]!.members.map((member) => member.id),
      ['n1', 'n2', 'n3'],
    );
    assert.notEqual(replies[0]!.leader, 'n4');
  });

  test('no committed configuration change is lost: every history is a prefix of the final one', async () => {
    const replies = await settled(3);
    const final = plain(replies[0]!.history);
    for (const reply of replies) {
      assert.deepEqual(plain(reply.history), final, `history of ${reply.id}`);
    }
    for (const seen of historiesSeen) {
      assert.deepEqual(seen, final.slice(0, seen.length), 'an earlier history is not a prefix');
    }
    const ops = final.map((record) => `${record.op} ${record.nodeId}`);
    assert.deepEqual(ops.slice(0, 3), ['bootstrap n1', 'bootstrap n2', 'bootstrap n3']);
    const order = ['setAddress n4', 'addLearner n4', 'promoteLearner n4', `setAddress ${killedId}`];
    assert.deepEqual(
      ops.filter((op) => order.includes(op) || op === 'removeNode n4'),
      [...order, 'removeNode n4'],
    );
    console.log(`# configuration history (${final.length} records): ${ops.join(' | ')}`);
  });
});

describe('node start --bootstrap-expect', () => {
  test('three nodes bootstrap by themselves once they know each other; the lowest id founds', async () => {
    const b1 = await startNode(
      [
        '--id',
        'b1',
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        dataDir('b1'),
        '--join',
        '',
        '--bootstrap-expect',
        '3',
      ],
      env(),
    );
    const others = await Promise.all(
      ['b2', 'b3'].map((id) =>
        startNode(
          [
            '--id',
            id,
            '--listen',
            '127.0.0.1:0',
            '--data-dir',
            dataDir(id),
            '--join',
            b1.address,
            '--bootstrap-expect',
            '3',
          ],
          env(),
        ),
      ),
    );
    const replies = await until('an automatic bootstrap', async () => {
      const all = await Promise.all([b1, ...others].map((node) => status(node)));
      const first = all[0]!;
      const agree =
        first.leader !== '' &&
        all.every(
          (reply) =>
            reply.clusterId === first.clusterId &&
            reply.leader === first.leader &&
            reply.members.filter((member) => member.voter).length === 3,
        );
      return agree ? all : undefined;
    });
    assert.deepEqual(
      plain(replies[0]!.history).map((record) => `${record.op} ${record.nodeId}`),
      ['bootstrap b1', 'bootstrap b2', 'bootstrap b3'],
    );
    assert.match(b1.stderr(), /bootstrap-expect reached/);
    for (const node of others) assert.doesNotMatch(node.stderr(), /bootstrap-expect reached/);
  });
});
