/**
 * Raft membership follows gossip membership, on real processes (loopback, ports from the
 * kernel), one three-node cluster n1..n3 for every step, in order:
 *
 * (a) a fourth node under another gossip key asks to join: refused with the reason
 *     (RDB_JOIN_NOT_IN_GOSSIP, logged by the joiner at each retry), and it never appears
 *     among the voters or learners of any node;
 * (c) a second process claiming n2's id (fresh data dir, another port) while n2 runs: it
 *     exits 1 with RDB_ID_IN_USE naming n2's address, and the real n2 stays alive in every
 *     node's gossip and a voter at its own address in every node's `cluster status`;
 * (c2) the same advertising n2's own address (so it looks like n2 restarting): it has no Raft
 *     state while n2 is a voter, so it exits 1 with RDB_MEMBER_STATE_LOST;
 * (d) the real n2 restarted on its data dir, on the same address, is back at once; restarted
 *     on another port, its new address is taken once the old one has been gone for the
 *     reclaim window;
 * (b) a clean stop (SIGTERM) of n3 — gossip calls it left, Raft still lists it as a voter —
 *     makes `health` degraded (exit 1); a second stop makes it critical (exit 2).
 * Then, on three other nodes, (e) `cluster bootstrap --expect 3` with one of them under
 * another gossip key does not found a cluster with it: it times out naming that node.
 */
import assert from 'node:assert/strict';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ClusterStatusReply, MembersReply } from '../../src/core/protocol/messages.ts';
import { Keyring, saveKeyring } from '../../src/core/security/keyring.ts';
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

const POLL_MS = 100;

let home: { dir: string; cleanup(): Promise<void> };
const nodes = new Map<string, NodeProcess>();
const admin = adminConnections(() => join(home.dir, 'certs'));
const until = poller(POLL_MS);

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

async function cli<T>(args: string[], expectCode = 0): Promise<T> {
  const result = await runCli([...args, '--json'], env(), 30_000);
  assert.equal(result.code, expectCode, describeResult(result));
  return parseJson<T>(result);
}

function start(
  id: string,
  seeds: string,
  extra: string[] = [],
  listen = '127.0.0.1:0',
): Promise<NodeProcess> {
  return startNode(
    ['--id', id, '--listen', listen, '--data-dir', join(home.dir, id), '--join', seeds, ...extra],
    env(),
  ).then((node) => {
    nodes.set(id, node);
    return node;
  });
}

async function status(node: NodeProcess): Promise<ClusterStatusReply> {
  return (await admin.client(node.address)).ask('clusterStatusRequest', { localOnly: true });
}

async function members(node: NodeProcess): Promise<MembersReply['members']> {
  return (await (await admin.client(node.address)).ask('membersRequest', {})).members;
}

const ids = ['n1', 'n2', 'n3'];
const cluster = (): NodeProcess[] => ids.map((id) => nodes.get(id)!);

/** A certificates dir with the cluster's CA and a node certificate for `id`, but another
 * gossip keyring. */
async function outsiderCerts(id: string): Promise<string> {
  const certs = join(home.dir, `outsider-certs-${id}`);
  await cp(join(home.dir, 'certs'), certs, { recursive: true });
  await rm(join(certs, 'gossip.keyring'));
  await cli(['certs', 'issue', '--node-id', id, '--certs-dir', certs]);
  await saveKeyring(join(certs, 'gossip.keyring'), Keyring.generate());
  return certs;
}

/** Resolves when every node of the cluster has `id` alive at `address` in gossip and as a
 * voter at `address` in its applied configuration; throws saying where not. */
async function memberEverywhere(id: string, address: string): Promise<true> {
  for (const node of cluster()) {
    const gossip = (await members(node)).find((member) => member.id === id);
    if (gossip?.state !== 'alive' || gossip.address !== address) {
      throw new Error(`${node.info.id}'s gossip has ${id} as ${JSON.stringify(gossip)}`);
    }
    const raft = (await status(node)).members.find((member) => member.id === id);
    if (raft?.voter !== true || raft.address !== address) {
      throw new Error(`${node.info.id}'s configuration has ${id} as ${JSON.stringify(raft)}`);
    }
  }
  return true;
}

before(async () => {
  home = await tempHome('rdbnet-membership-guard-');
  const n1 = await start('n1', '');
  await Promise.all(ids.slice(1).map((id) => start(id, n1.address)));
  await cli(['cluster', 'bootstrap', '--expect', '3', '--node', n1.address]);
  await until(
    'one leader, three voters, every node alive in every gossip view',
    async () => {
      for (const node of cluster()) {
        const reply = await status(node);
        if (reply.leader === '' || reply.members.filter((m) => m.voter).length !== 3) {
          return undefined;
        }
        const view = await members(node);
        if (view.filter((member) => member.state === 'alive').length !== 3) return undefined;
      }
      return true;
    },
    20_000,
  );
});

after(async () => {
  admin.closeAll();
  await killAllNodes();
  await home.cleanup();
});

describe('Raft membership requires gossip membership', () => {
  test('(a) a node under another gossip key is refused with the reason, never a member', async () => {
    // Same CA (its TLS and its join request are accepted), another gossip keyring.
    const certs = await outsiderCerts('x4');

    const seeds = cluster()
      .map((node) => node.address)
      .join(',');
    const outsider = await start('x4', seeds, ['--certs-dir', certs]);
    const notMember = async () => {
      for (const node of cluster()) {
        const listed = (await status(node)).members.find((member) => member.id === 'x4');
        assert.equal(listed, undefined, `x4 in ${node.info.id}'s configuration`);
      }
    };
    await until(
      'the joiner logs the refusal',
      async () => {
        await notMember();
        return /RDB_JOIN_NOT_IN_GOSSIP/.test(outsider.stderr()) ? true : undefined;
      },
      25_000,
    );
    const refusal = outsider
      .stderr()
      .split('\n')
      .find((line) => line.includes('RDB_JOIN_NOT_IN_GOSSIP'))!;
    assert.match(refusal, /x4 is not alive in gossip on n\d after 5 s/, refusal);
    assert.match(refusal, /gossip key/, refusal);
    console.log(`# outsider refused: ${refusal}`);
    // It keeps trying (and stays out) while it runs.
    assert.equal(outsider.child.exitCode, null);
    for (const node of cluster()) {
      const view = await cli<{ members: { id: string; voter: boolean; role: string }[] }>([
        'cluster',
        'status',
        '--node',
        node.address,
      ]);
      assert.deepEqual(view.members.map((member) => member.id).sort(), ids, JSON.stringify(view));
    }
    const health = await runCli(['health', '--json', '--node', nodes.get('n1')!.address], env());
    assert.equal(health.code, 0, describeResult(health));
    await outsider.kill();
  });

  test('(c) a second process claiming n2 exits 1 with RDB_ID_IN_USE; the real n2 stays', async () => {
    const real = nodes.get('n2')!;
    const seeds = [nodes.get('n1')!.address, nodes.get('n3')!.address].join(',');
    const started = performance.now();
    const impostor = await runCli(
      [
        'node',
        'start',
        '--id',
        'n2',
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        join(home.dir, 'n2-impostor'),
        '--join',
        seeds,
      ],
      env(),
      30_000,
    );
    console.log(
      `# impostor n2 exited ${impostor.code} after ${Math.round(performance.now() - started)} ms`,
    );
    assert.equal(impostor.code, 1, describeResult(impostor));
    assert.match(
      impostor.stderr,
      new RegExp(`Error: node id n2 is already alive in cluster .* at ${real.address}`),
    );
    assert.match(impostor.stderr, /pick another --id, or stop that node/);
    console.log(
      `# impostor: ${impostor.stderr
        .split('\n')
        .filter((line) => /^(Error|Hint):/.test(line))
        .join(' | ')}`,
    );
    // Whatever the impostor said on its way out, the real n2 stays alive and a voter at its
    // own address everywhere.
    const deadline = performance.now() + 4000;
    while (performance.now() < deadline) {
      await memberEverywhere('n2', real.address);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(real.child.exitCode, null);
  });

  test("(c2) a second process claiming n2 and advertising n2's own address exits 1 with RDB_MEMBER_STATE_LOST", async () => {
    const real = nodes.get('n2')!;
    const seeds = [nodes.get('n1')!.address, nodes.get('n3')!.address].join(',');
    const impostor = await runCli(
      [
        'node',
        'start',
        '--id',
        'n2',
        '--listen',
        '127.0.0.1:0',
        '--advertise',
        real.address,
        '--data-dir',
        join(home.dir, 'n2-impostor-advertising'),
        '--join',
        seeds,
      ],
      env(),
      30_000,
    );
    assert.equal(impostor.code, 1, describeResult(impostor));
    assert.match(impostor.stderr, /Error: node n2 is a voter of cluster .* with no Raft state/);
    assert.match(impostor.stderr, /Hint: .*empty --data-dir/);
    const deadline = performance.now() + 3000;
    while (performance.now() < deadline) {
      await memberEverywhere('n2', real.address);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(real.child.exitCode, null);
  });

  test('(d) n2 restarted on its data dir rejoins: same address at once, a new one after the window', async () => {
    const old = nodes.get('n2')!;
    const stopped = await old.stop();
    assert.equal(stopped.code, 0, old.stderr());
    const seeds = [nodes.get('n1')!.address, nodes.get('n3')!.address].join(',');
    const same = await start('n2', seeds, [], old.address);
    assert.equal(same.address, old.address);
    await until('n2 back on its address', () => memberEverywhere('n2', same.address), 15_000);
    await until('the leader hears from n2', async () => {
      const reply = await status(nodes.get('n1')!);
      const lead = cluster().find((node) => node.info.id === reply.leader);
      if (lead === undefined) return undefined;
      const entry = (await status(lead)).members.find((member) => member.id === 'n2');
      return entry !== undefined && entry.lastContactMs >= 0 && entry.lastContactMs < 2000
        ? true
        : undefined;
    });

    const stoppedAgain = await same.stop();
    assert.equal(stoppedAgain.code, 0, same.stderr());
    const moved = await start('n2', seeds);
    assert.notEqual(moved.address, same.address);
    const began = performance.now();
    await until(
      'n2 at its new address everywhere',
      () => memberEverywhere('n2', moved.address),
      30_000,
    );
    console.log(
      `# n2 moved to ${moved.address}: member there everywhere after ${Math.round(performance.now() - began)} ms`,
    );
  });

  test('(b) a clean stop of a voter makes health degraded (exit 1); a second one critical (exit 2)', async () => {
    const watcher = nodes.get('n1')!;
    const healthy = await runCli(['health', '--json', '--node', watcher.address], env());
    assert.equal(healthy.code, 0, describeResult(healthy));

    const n3 = nodes.get('n3')!;
    const stopped = await n3.stop();
    assert.equal(stopped.code, 0, n3.stderr());
    const degraded = await until(
      'health exit 1 with n3 left',
      async () => {
        const result = await runCli(['health', '--json', '--node', watcher.address], env());
        return result.code === 1 ? result : undefined;
      },
      15_000,
    );
    const report = parseJson<{
      status: string;
      quorum: boolean;
      nodes: { id: string; state: string; problems: string[] }[];
    }>(degraded);
    assert.equal(report.status, 'degraded');
    assert.equal(report.quorum, true);
    const entry = report.nodes.find((node) => node.id === 'n3');
    assert.equal(entry?.state, 'left', JSON.stringify(report));
    assert.ok(
      entry.problems.some((problem) => /voter/.test(problem)),
      JSON.stringify(entry),
    );
    // Raft still counts it a voter: that is why health may not call the cluster healthy.
    const view = await cli<{ members: { id: string; voter: boolean }[] }>([
      'cluster',
      'status',
      '--node',
      watcher.address,
    ]);
    assert.equal(view.members.find((member) => member.id === 'n3')?.voter, true);

    const n2 = nodes.get('n2')!;
    n2.child.kill('SIGINT');
    await new Promise((resolve) => n2.child.once('exit', resolve));
    const critical = await until(
      'health exit 2',
      async () => {
        const result = await runCli(['health', '--json', '--node', watcher.address], env());
        return result.code === 2 ? result : undefined;
      },
      15_000,
    );
    const last = parseJson<{ status: string; quorum: boolean }>(critical);
    assert.equal(last.status, 'critical');
    assert.equal(last.quorum, false);
  });
});

describe('founding voters are gossip members', () => {
  test('(e) bootstrap --expect 3 with a node under another gossip key times out naming it', async () => {
    const b1 = await start('b1', '');
    const b2 = await start('b2', b1.address);
    const b3 = await start('b3', b1.address, ['--certs-dir', await outsiderCerts('b3')]);
    const result = await runCli(
      ['cluster', 'bootstrap', '--expect', '3', '--wait', '4000', '--json', '--node', b1.address],
      env(),
      30_000,
    );
    assert.equal(result.code, 1, describeResult(result));
    const { error } = parseJson<{ error: { code: string; message: string } }>(result);
    assert.equal(error.code, 'RDB_REQUEST_TIMEOUT');
    assert.match(
      error.message,
      /only 2 of 3 nodes found .*\(b1, b2\); not alive in gossip here: b3/,
    );
    console.log(`# bootstrap refused: ${error.message}`);
    for (const node of [b1, b2, b3]) {
      const reply = await status(node);
      assert.equal(reply.members.length, 0, `${node.info.id} is in a cluster`);
    }
  });
});
