/**
 * Operating gossip membership on real processes, driven by the real CLI: three nodes started
 * with --join and bootstrapped; the gossip key rotated cluster-wide with `keys install`, `keys
 * use` and `keys remove` while every member stays alive on every node (checked every 100 ms),
 * and a node started afterwards with only the old key is never admitted; then `health --watch`
 * as NDJSON, through the death of its node (unknown every interval) to SIGINT (exit 3).
 *
 * The steps share one cluster, so they run in order; loopback only, ports from the kernel.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MembersReply } from '../../src/core/protocol/messages.ts';
import { Keyring, saveKeyring } from '../../src/core/security/keyring.ts';
import { adminConnections } from '../helpers/admin-connections.ts';
import {
  BIN,
  describeResult,
  killAllNodes,
  type NodeProcess,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const POLL_MS = 100;

let home: { dir: string; cleanup(): Promise<void> };
const nodes = new Map<string, NodeProcess>();
const ids = ['n1', 'n2', 'n3'];

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

async function cli<T>(args: string[], expectCode = 0): Promise<T> {
  const result = await runCli([...args, '--json'], env(), 30_000);
  assert.equal(result.code, expectCode, describeResult(result));
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    assert.fail(`stdout is not one JSON document:\n${describeResult(result)}`);
  }
}

function start(id: string, seeds: string, extra: string[] = []): Promise<NodeProcess> {
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
      ...extra,
    ],
    env(),
  ).then((node) => {
    nodes.set(id, node);
    return node;
  });
}

const admin = adminConnections(() => join(home.dir, 'certs'));

async function members(address: string): Promise<MembersReply['members']> {
  return (await (await admin.client(address)).ask('membersRequest', {})).members;
}

const until = poller(POLL_MS);

const all = (): NodeProcess[] => ids.map((id) => nodes.get(id)!);

interface KeyChange {
  op: string;
  ok: boolean;
  results: { node: string; ok: boolean; error?: string; changed: boolean }[];
  error?: { code: string; message: string };
}
interface KeyListing {
  nodes: number;
  keys: { key: string; nodes: number; primaryOn: string[] }[];
  failed: unknown[];
}

before(async () => {
  home = await tempHome('rdbnet-membership-ops-');
});

after(async () => {
  admin.closeAll();
  await killAllNodes();
  await home.cleanup();
});

describe('membership operations on real processes', () => {
  test('three nodes with --join, bootstrapped, three alive everywhere', async () => {
    const n1 = await start('n1', '');
    await Promise.all(['n2', 'n3'].map((id) => start(id, n1.address)));
    await cli(['cluster', 'bootstrap', '--expect', '3', '--node', n1.address]);
    for (const node of all()) {
      await until(`three alive on ${node.info.id}`, async () =>
        (await members(node.address)).filter((m) => m.state === 'alive').length === 3
          ? true
          : undefined,
      );
    }
  });

  test('keys install, use, remove: cluster-wide, gossip keeps working; the old key is shut out', async () => {
    const n1 = nodes.get('n1')!;
    const n2 = nodes.get('n2')!;
    const before = await cli<KeyListing>(['keys', 'list', '--node', n1.address]);
    assert.equal(before.nodes, 3);
    assert.equal(before.keys.length, 1);
    const oldKey = before.keys[0]!.key;
    assert.deepEqual([...before.keys[0]!.primaryOn].sort(), ids);
    const { key: newKey } = await cli<{ key: string }>(['keys', 'generate']);

    // Every member, seen from every node, every 100 ms for the whole rotation.
    const notAlive: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const node of all()) {
          const view = await members(node.address);
          for (const id of ids) {
            const state = view.find((m) => m.id === id)?.state ?? 'absent';
            if (state !== 'alive') notAlive.push(`${id} ${state} on ${node.info.id}`);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    })();

    const began = performance.now();
    // Refusals change nothing: using a key no node holds, removing the primary.
    const stranger = await cli<{ key: string }>(['keys', 'generate']);
    const refusedUse = await cli<KeyChange>(['keys', 'use', stranger.key, '--node', n1.address], 1);
    assert.equal(refusedUse.ok, false);
    assert.deepEqual(refusedUse.results.map((r) => r.node).sort(), ids);
    assert.match(refusedUse.error!.message, /not installed/);
    const refusedRemove = await cli<KeyChange>(['keys', 'remove', oldKey, '--node', n1.address], 1);
    assert.equal(refusedRemove.ok, false);
    assert.match(refusedRemove.error!.message, /primary/);

    const badKey = await runCli(['keys', 'install', 'not-a-key', '--node', n1.address], env());
    assert.equal(badKey.code, 64, describeResult(badKey));

    const installed = await cli<KeyChange>(['keys', 'install', newKey, '--node', n1.address]);
    assert.deepEqual(installed.results.map((r) => [r.node, r.ok, r.changed]).sort(), [
      ['n1', true, true],
      ['n2', true, true],
      ['n3', true, true],
    ]);
    const again = await cli<KeyChange>(['keys', 'install', newKey, '--node', n2.address]);
    assert.ok(
      again.results.every((r) => r.ok && !r.changed),
      JSON.stringify(again),
    );
    const both = await cli<KeyListing>(['keys', 'list', '--node', n2.address]);
    assert.deepEqual(
      both.keys.map((k) => [k.key, k.nodes, k.primaryOn.length]),
      [
        [oldKey, 3, 3],
        [newKey, 3, 0],
      ],
    );

    const used = await cli<KeyChange>(['keys', 'use', newKey, '--node', n2.address]);
    assert.ok(
      used.ok && used.results.length === 3 && used.results.every((r) => r.ok),
      JSON.stringify(used),
    );
    const removed = await cli<KeyChange>(['keys', 'remove', oldKey, '--node', n1.address]);
    assert.ok(removed.ok && removed.results.length === 3, JSON.stringify(removed));
    const after = await cli<KeyListing>(['keys', 'list', '--node', nodes.get('n3')!.address]);
    assert.deepEqual(after.keys, [{ key: newKey, nodes: 3, primaryOn: after.keys[0]!.primaryOn }]);
    assert.deepEqual([...after.keys[0]!.primaryOn].sort(), ids);
    console.log(
      `keys: install/use/remove across 3 nodes in ${Math.round(performance.now() - began)} ms`,
    );

    // Saved: the (shared) keyring file holds the new key only, mode 0600.
    const file = join(home.dir, 'certs', 'gossip.keyring');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { primary: newKey, keys: [newKey] });

    // Gossip keeps running under the new key for a while longer.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    watching = false;
    await watcher;
    assert.deepEqual(notAlive, []);

    // A node holding only the old key (same CA, so its push-pulls arrive) is never admitted.
    const certs = join(home.dir, 'old-key-certs');
    await cp(join(home.dir, 'certs'), certs, { recursive: true });
    await rm(join(certs, 'gossip.keyring'));
    await cli(['certs', 'issue', '--node-id', 'x1', '--certs-dir', certs]);
    await saveKeyring(join(certs, 'gossip.keyring'), new Keyring(oldKey));
    await start(
      'x1',
      all()
        .map((node) => node.address)
        .join(','),
      ['--certs-dir', certs],
    );
    const deadline = performance.now() + 3000;
    while (performance.now() < deadline) {
      for (const node of all()) {
        const view = await members(node.address);
        assert.ok(!view.some((m) => m.id === 'x1'), `x1 admitted by ${node.info.id}`);
        assert.equal(view.filter((m) => m.state === 'alive').length, 3);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    await nodes.get('x1')!.kill();
  });

  test('health --watch --json: NDJSON, at least every 10 intervals, bounded by --count', async () => {
    const began = performance.now();
    const result = await runCli(
      [
        'health',
        '--watch',
        '--json',
        '--interval',
        '100',
        '--count',
        '12',
        '--node',
        nodes.get('n1')!.address,
      ],
      env(),
      30_000,
    );
    const elapsedMs = performance.now() - began;
    assert.equal(result.code, 0, describeResult(result));
    const lines = result.stdout.trimEnd().split('\n');
    // Nothing changes in a healthy cluster: the first report and the one 10 intervals later.
    assert.equal(lines.length, 2, result.stdout);
    for (const line of lines) {
      const report = JSON.parse(line) as {
        status: string;
        nodes: { id: string; state: string }[];
        at: string;
      };
      assert.equal(report.status, 'healthy');
      assert.deepEqual(report.nodes.map((n) => n.id).sort(), ids);
      assert.ok(!Number.isNaN(Date.parse(report.at)));
    }
    assert.ok(elapsedMs >= 1100, `${elapsedMs} ms`);

    const usage = await runCli(['health', '--interval', '500', '--json'], env());
    assert.equal(usage.code, 64, describeResult(usage));
    const tooFast = await runCli(['health', '--watch', '--interval', '50', '--json'], env());
    assert.equal(tooFast.code, 64, describeResult(tooFast));
  });

  test('health --watch: the node dies → unknown every interval; SIGINT stops it with exit 3', async () => {
    const target = nodes.get('n3')!;
    const child = spawn(
      process.execPath,
      [BIN, 'health', '--watch', '--json', '--interval', '200', '--node', target.address],
      { env: { ...process.env, CI: 'true', ...env() }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    );
    const lines: { status: string; at: string; error?: { code: string } }[] = [];
    let buffered = '';
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const part of parts) if (part !== '') lines.push(JSON.parse(part));
    });
    try {
      await until('the first report', async () => (lines.length > 0 ? true : undefined));
      assert.equal(lines[0]!.status, 'healthy');
      await target.kill();
      const unknown = await until('five unknown reports', async () => {
        const seen = lines.filter((line) => line.status === 'unknown');
        return seen.length >= 5 ? seen : undefined;
      });
      // The report in flight when the node died may see its connection close; every later
      // one finds nothing listening.
      assert.ok(
        ['RDB_NODE_UNREACHABLE', 'RDB_CONNECTION_CLOSED'].includes(unknown[0]!.error!.code),
        unknown[0]!.error!.code,
      );
      for (const line of unknown.slice(1)) assert.equal(line.error!.code, 'RDB_NODE_UNREACHABLE');
      // One per interval (200 ms), give or take the scheduler.
      const gaps = unknown
        .slice(1)
        .map((line, i) => Date.parse(line.at) - Date.parse(unknown[i]!.at));
      assert.ok(
        gaps.every((gap) => gap >= 150 && gap <= 600),
        JSON.stringify(gaps),
      );
      child.kill('SIGINT');
      assert.equal(await exited, 3);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
