/**
 * Automatic removal of dead voters on real processes (loopback, ports from the kernel), every
 * node started with a --config file setting `deadVoterRemoveAfterMs` to DEAD_AFTER_MS:
 *
 * - five voters, kill -9 of a follower: the leader removes it once gossip has reported it
 *   dead for DEAD_AFTER_MS; `cluster status` on the leader lists four voters, the removal is
 *   in the history and `cluster.dead_voters_removed` counts it (the time is printed);
 * - three voters, two killed one after the other: nothing is removed (3 is the minimum, and
 *   one alive voter of two is no majority); the survivor still lists three voters after
 *   the timeout has passed twice.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ClusterStatusReply, MembersReply } from '../../src/core/protocol/messages.ts';
import { adminConnections } from '../helpers/admin-connections.ts';
import {
  describeResult,
  killAllNodes,
  type NodeProcess,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const DEAD_AFTER_MS = 3000;
/** The bound from kill -9 to the removal being visible on the leader. */
const REMOVAL_MS_MAX = 10_000;
const POLL_MS = 50;

let home: { dir: string; cleanup(): Promise<void> };
let configFile = '';
const nodes = new Map<string, NodeProcess>();
const admin = adminConnections(() => join(home.dir, 'certs'));

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

async function cli<T>(args: string[]): Promise<T> {
  const result = await runCli([...args, '--json'], env(), 30_000);
  assert.equal(result.code, 0, describeResult(result));
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    assert.fail(`stdout is not one JSON document:\n${describeResult(result)}`);
  }
}

function start(id: string, seeds: string): Promise<NodeProcess> {
  return startNode(
    [
      '--id',
      id,
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      join(home.dir, id),
      '--join',
      seeds,
      '--config',
      configFile,
    ],
    env(),
  ).then((node) => {
    nodes.set(id, node);
    return node;
  });
}

const client = admin.client;

async function status(node: NodeProcess): Promise<ClusterStatusReply> {
  return (await client(node.address)).ask('clusterStatusRequest', { localOnly: true });
}

async function members(node: NodeProcess): Promise<MembersReply['members']> {
  return (await (await client(node.address)).ask('membersRequest', {})).members;
}

async function counters(node: NodeProcess): Promise<Record<string, number>> {
  return (await (await client(node.address)).ask('statusRequest', {})).counters;
}

function voterIds(reply: { members: { id: string; voter: boolean }[] }): string[] {
  return reply.members
    .filter((member) => member.voter)
    .map((member) => member.id)
    .sort();
}

const until = poller(POLL_MS);

/** Starts `ids` (the first one founds the CA), bootstraps them, waits for one leader that
 * every node agrees on and for every node alive in every node's gossip; returns the leader. */
async function cluster(ids: string[]): Promise<NodeProcess> {
  const first = await start(ids[0]!, '');
  await Promise.all(ids.slice(1).map((id) => start(id, first.address)));
  const boot = await cli<{ members: { id: string; voter: boolean }[] }>([
    'cluster',
    'bootstrap',
    '--expect',
    String(ids.length),
    '--node',
    first.address,
  ]);
  assert.deepEqual(voterIds(boot), [...ids].sort());
  const group = ids.map((id) => nodes.get(id)!);
  const leader = await until('one leader, every node alive in gossip', async () => {
    const replies = await Promise.all(group.map((node) => status(node)));
    const lead = replies[0]!.leader;
    if (lead === '' || !replies.every((reply) => reply.leader === lead)) return undefined;
    for (const node of group) {
      const view = await members(node);
      if (view.filter((member) => member.state === 'alive').length !== ids.length) {
        return undefined;
      }
    }
    return lead;
  });
  return nodes.get(leader)!;
}

before(async () => {
  home = await tempHome('rdbnet-dead-voter-');
  configFile = join(home.dir, 'node.json');
  await writeFile(configFile, `${JSON.stringify({ deadVoterRemoveAfterMs: DEAD_AFTER_MS })}\n`);
});

after(async () => {
  admin.closeAll();
  await killAllNodes();
  await home.cleanup();
});

describe('dead voters are removed automatically only while quorum stays safe', () => {
  test('five voters, kill -9 of one: the leader lists four voters within 10 s', async () => {
    const ids = ['a1', 'a2', 'a3', 'a4', 'a5'];
    const leader = await cluster(ids);
    const victim = nodes.get(ids.find((id) => id !== leader.info.id)!)!;
    const victimId = victim.info.id;
    assert.equal((await counters(leader))['cluster.dead_voters_removed'] ?? 0, 0);

    const killedAt = performance.now();
    victim.child.kill('SIGKILL');
    const after = await until(
      `${victimId} removed`,
      async () => {
        const reply = await status(leader);
        return voterIds(reply).includes(victimId) ? undefined : reply;
      },
      REMOVAL_MS_MAX,
    );
    const removalMs = performance.now() - killedAt;
    console.log(
      `# dead voter: ${victimId} removed by ${leader.info.id} ${removalMs.toFixed(0)} ms after kill -9 (deadVoterRemoveAfterMs ${DEAD_AFTER_MS})`,
    );
    await victim.kill();
    // Not before gossip reported it dead for DEAD_AFTER_MS.
    assert.ok(removalMs > DEAD_AFTER_MS, `removed after only ${removalMs.toFixed(0)} ms`);
    assert.equal(after.leader, leader.info.id);

    const view = await cli<{
      leader: string;
      members: { id: string; voter: boolean; role: string }[];
      history: { op: string; nodeId: string }[];
      confChangeTimings: { op: string; nodeId: string }[];
    }>(['cluster', 'status', '--node', leader.address]);
    const survivors = ids.filter((id) => id !== victimId);
    assert.equal(view.leader, leader.info.id);
    assert.equal(view.members.filter((member) => member.voter).length, 4);
    assert.deepEqual(voterIds(view), survivors);
    assert.ok(!view.members.some((member) => member.id === victimId), JSON.stringify(view));
    assert.deepEqual(
      view.history.filter((record) => record.nodeId === victimId).map((record) => record.op),
      ['bootstrap', 'removeNode'],
      JSON.stringify(view.history),
    );
    assert.ok(
      view.confChangeTimings.some(
        (timing) => timing.op === 'removeNode' && timing.nodeId === victimId,
      ),
      JSON.stringify(view.confChangeTimings),
    );
    assert.equal((await counters(leader))['cluster.dead_voters_removed'], 1);
    assert.match(leader.stderr(), /removing a dead voter/);

    // Every survivor applied the same configuration; no second removal follows.
    await until('the survivors agree on four voters', async () => {
      const replies = await Promise.all(survivors.map((id) => status(nodes.get(id)!)));
      return replies.every((reply) => voterIds(reply).join() === survivors.join())
        ? true
        : undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(voterIds(await status(leader)), survivors);
    assert.equal((await counters(leader))['cluster.dead_voters_removed'], 1);

    // The removed node comes back on its old data dir: it still holds the old configuration
    // (itself a voter), but every member refuses its Raft traffic (not a member, and no
    // member vouches for it), so it cannot disturb the leader or the term.
    const before = await status(leader);
    const back = await start(victimId, leader.address);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const later = await status(leader);
    assert.equal(later.leader, leader.info.id);
    assert.equal(later.term, before.term, 'the returning node did not disturb the term');
    assert.deepEqual(voterIds(later), survivors);
    assert.ok(!later.members.some((member) => member.id === victimId));
    const refused = await Promise.all(
      survivors.map(
        async (id) => (await counters(nodes.get(id)!))['raft.batches_refused.not_member'] ?? 0,
      ),
    );
    const refusedTotal = refused.reduce((a, b) => a + b, 0);
    assert.ok(refusedTotal > 0, 'the members refused its Raft traffic');
    console.log(
      `# dead voter: ${victimId} back on its data dir; members refused ${refusedTotal} Raft batch(es) from it; its own view: ${JSON.stringify(voterIds(await status(back)))}`,
    );
    await back.kill();

    for (const id of ids) await nodes.get(id)!.kill();
    admin.closeAll();
  });

  test('three voters, two die: nothing is removed, the survivor still lists three', async () => {
    const ids = ['b1', 'b2', 'b3'];
    const leader = await cluster(ids);
    const [first, second] = ids.filter((id) => id !== leader.info.id).map((id) => nodes.get(id)!);

    // One follower dies: the leader keeps leading, but 3 voters is the minimum.
    first!.child.kill('SIGKILL');
    await until(
      `${first!.info.id} dead in the leader's gossip`,
      async () => {
        const view = await members(leader);
        return view.find((member) => member.id === first!.info.id)?.state === 'dead'
          ? true
          : undefined;
      },
      5000,
    );
    await new Promise((resolve) => setTimeout(resolve, 2 * DEAD_AFTER_MS + 1000));
    const one = await status(leader);
    assert.equal(one.leader, leader.info.id, 'the leader still leads with two of three');
    assert.deepEqual(voterIds(one), [...ids].sort());
    assert.match(leader.stderr(), /dead voter kept: quorum not safe/);
    assert.match(leader.stderr(), /the minimum is 3/);

    // The second dies too: no quorum, no removal.
    second!.child.kill('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 2 * DEAD_AFTER_MS + 1000));
    const view = await cli<{ members: { id: string; voter: boolean }[] }>([
      'cluster',
      'status',
      '--node',
      leader.address,
    ]);
    assert.deepEqual(voterIds(view), [...ids].sort());
    const gossip = await members(leader);
    for (const dead of [first!, second!]) {
      assert.equal(gossip.find((member) => member.id === dead.info.id)?.state, 'dead');
    }
    assert.equal((await counters(leader))['cluster.dead_voters_removed'] ?? 0, 0);
    assert.doesNotMatch(leader.stderr(), /removing a dead voter/);
  });
});
