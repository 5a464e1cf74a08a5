/**
 * Operator verbs on one three-node cluster of real processes (loopback, ports from the kernel):
 *
 * `rdbnet cluster rtt`: once gossip has probed, the asked node estimates the RTT between any two
 * members from their network coordinates (a positive number; the figure itself is the machine's,
 * the simulator checks accuracy); unknown and malformed ids are refused.
 *
 * `rdbnet net top`: per-peer RTT percentiles, loss and score, as NDJSON snapshots.
 *
 * `rdbnet cluster remove --id`: three
 * voters, kill -9 of one (automatic removal never goes below three voters, so it stays a voter);
 * removing the live n2 is refused while n3 is dead (the voters left, n1 and the dead n3, would
 * have no live quorum) and nothing changes; removing n3 works from a follower (forwarded to the
 * leader); asking again says it is not a member; a malformed id is exit 64 before any request.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ClusterStatusReply } from '../../src/core/protocol/messages.ts';
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

let home: { dir: string; cleanup(): Promise<void> };
const nodes = new Map<string, NodeProcess>();
const admin = adminConnections(() => join(home.dir, 'certs'));
const until = poller(100);

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

function cli(args: string[]) {
  return runCli([...args, '--json'], env(), 30_000);
}

async function start(id: string, seeds: string): Promise<NodeProcess> {
  const node = await startNode(
    ['--id', id, '--listen', '127.0.0.1:0', '--data-dir', join(home.dir, id), '--join', seeds],
    env(),
  );
  nodes.set(id, node);
  return node;
}

async function status(node: NodeProcess): Promise<ClusterStatusReply> {
  return (await admin.client(node.address)).ask('clusterStatusRequest', { localOnly: true });
}

const voters = (reply: ClusterStatusReply) =>
  reply.members
    .filter((member) => member.voter)
    .map((member) => member.id)
    .sort();

describe('cluster operations', { timeout: 180_000 }, () => {
  before(async () => {
    home = await tempHome('rdbnet-remove-');
    const n1 = await start('n1', '');
    await Promise.all(['n2', 'n3'].map((id) => start(id, n1.address)));
    const boot = await cli(['cluster', 'bootstrap', '--expect', '3', '--node', n1.address]);
    assert.equal(boot.code, 0, describeResult(boot));
    await until('one leader on every node', async () => {
      const replies = await Promise.all([...nodes.values()].map((node) => status(node)));
      const leader = replies[0]!.leader;
      return leader !== '' && replies.every((reply) => reply.leader === leader)
        ? leader
        : undefined;
    });
  });

  after(async () => {
    admin.closeAll();
    await killAllNodes();
    await home?.cleanup();
  });

  test('cluster rtt estimates the RTT between two members', async () => {
    const n1 = nodes.get('n1')!;
    const pair = await until(
      'an estimate between n2 and n3 from n1',
      async () => {
        const result = await cli(['cluster', 'rtt', 'n2', 'n3', '--node', n1.address]);
        return result.code === 0 ? JSON.parse(result.stdout) : undefined;
      },
      60_000,
    );
    assert.equal(pair.from, 'n2');
    assert.equal(pair.to, 'n3');
    assert.equal(pair.node, 'n1');
    assert.ok(Number.isFinite(pair.rttMs) && pair.rttMs > 0, `rttMs ${pair.rttMs}`);
    const fromSelf = await cli(['cluster', 'rtt', 'n2', '--node', n1.address]);
    assert.equal(fromSelf.code, 0, describeResult(fromSelf));
    assert.equal(JSON.parse(fromSelf.stdout).from, 'n1');
    const unknown = await cli(['cluster', 'rtt', 'n9', '--node', n1.address]);
    assert.equal(unknown.code, 1, describeResult(unknown));
    assert.equal(JSON.parse(unknown.stdout).error.code, 'RDB_NOT_MEMBER');
    const malformed = await cli(['cluster', 'rtt', 'n 2', '--node', n1.address]);
    assert.equal(malformed.code, 64, describeResult(malformed));
  });

  test('net top: per-peer RTT percentiles, loss and score, one snapshot per interval', async () => {
    const n1 = nodes.get('n1')!;
    const result = await runCli(
      ['net', 'top', '--node', n1.address, '--json', '--count', '2', '--interval', '1'],
      env(),
      30_000,
    );
    assert.equal(result.code, 0, describeResult(result));
    const snapshots = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.equal(snapshots.length, 2);
    for (const snapshot of snapshots) {
      assert.equal(snapshot.node, 'n1');
      assert.deepEqual(snapshot.peers.map((p: { id: string }) => p.id).sort(), ['n2', 'n3']);
      for (const peer of snapshot.peers) {
        assert.ok(peer.rttP50Ms > 0 && peer.rttP99Ms >= peer.rttP50Ms, JSON.stringify(peer));
        assert.ok(peer.loss >= 0 && peer.loss <= 1 && peer.score >= 0 && peer.score <= 1);
      }
    }
  });

  test('a bad id is refused before anything is sent', async () => {
    const result = await cli([
      'cluster',
      'remove',
      '--id',
      'n 3',
      '--node',
      nodes.get('n1')!.address,
    ]);
    assert.equal(result.code, 64, describeResult(result));
    assert.match(result.stdout, /invalid node id/);
  });

  test('a dead voter is removed; a removal that would lose the quorum is refused', async () => {
    const n1 = nodes.get('n1')!;
    const n2 = nodes.get('n2')!;
    // n3 must not lead, so that n1 and n2 keep a leader once it dies.
    const before = await status(n1);
    if (before.leader === 'n3') {
      const moved = await cli(['cluster', 'transfer-leader', '--to', 'n1', '--node', n1.address]);
      assert.equal(moved.code, 0, describeResult(moved));
    }
    await nodes.get('n3')!.kill();
    await until('n1 and n2 agree on a leader without n3', async () => {
      const [a, b] = await Promise.all([status(n1), status(n2)]);
      return a.leader !== '' && a.leader !== 'n3' && a.leader === b.leader ? true : undefined;
    });

    const refused = await cli(['cluster', 'remove', '--id', 'n2', '--node', n1.address]);
    assert.equal(refused.code, 1, describeResult(refused));
    assert.equal(JSON.parse(refused.stdout).error.code, 'RDB_QUORUM_AT_RISK');
    assert.deepEqual(voters(await status(n1)), ['n1', 'n2', 'n3']);

    // Asked of whichever node does not lead: the removal is forwarded to the leader.
    const leader = (await status(n1)).leader;
    const follower = leader === 'n1' ? n2 : n1;
    const removed = await cli(['cluster', 'remove', '--id', 'n3', '--node', follower.address]);
    assert.equal(removed.code, 0, describeResult(removed));
    const body = JSON.parse(removed.stdout) as { removed: boolean; id: string; index: number };
    assert.equal(body.removed, true);
    assert.equal(body.id, 'n3');
    assert.ok(body.index > 0, `index ${body.index}`);
    await until('both nodes list n1 and n2 as the voters', async () => {
      const [a, b] = await Promise.all([status(n1), status(n2)]);
      return voters(a).join() === 'n1,n2' && voters(b).join() === 'n1,n2' ? true : undefined;
    });

    const again = await cli(['cluster', 'remove', '--id', 'n3', '--node', n1.address]);
    assert.equal(again.code, 1, describeResult(again));
    assert.equal(JSON.parse(again.stdout).error.code, 'RDB_NOT_MEMBER');
  });
});
