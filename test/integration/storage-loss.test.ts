/**
 * Storage that cannot forget, on real processes: a node whose Raft log was zeroed or
 * truncated to 0 bytes while it was stopped must refuse to start (exit 1, one error line
 * naming the file, a hint) instead of founding a new cluster or rejoining its old one with
 * a forgotten vote; the refused start changes nothing on disk; the other members of a
 * three-node cluster keep their leader, term and quorum.
 *
 * Loopback only, ports from the kernel; every node is killed in teardown.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import {
  type CliResult,
  describeResult,
  killAllNodes,
  type NodeProcess,
  parseJson,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

/** A refused start ends in seconds; a start that is not refused runs until this kills it. */
const REFUSED_START_TIMEOUT_MS = 40_000;

const until = poller(100);
const homes: { dir: string; cleanup(): Promise<void> }[] = [];

afterEach(async () => {
  await killAllNodes();
});

after(async () => {
  await killAllNodes();
  for (const home of homes) await home.cleanup();
});

async function newHome(): Promise<string> {
  const home = await tempHome('rdbnet-storage-loss-');
  homes.push(home);
  return home.dir;
}

function envFor(home: string): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

interface StatusJson {
  clusterId: string;
  leader: string | null;
  term: number;
  commitIndex: number;
}

async function clusterStatus(home: string, address: string): Promise<StatusJson> {
  const result = await runCli(['cluster', 'status', '--json', '--node', address], envFor(home));
  assert.equal(result.code, 0, describeResult(result));
  return parseJson<StatusJson>(result);
}

/** The WAL segment files of a node's data dir (one for a log this short). */
async function segments(dataDir: string): Promise<string[]> {
  const raftDir = join(dataDir, 'raft');
  return (await readdir(raftDir))
    .filter((name) => name.endsWith('.wal'))
    .sort()
    .map((name) => join(raftDir, name));
}

async function zeroFile(path: string): Promise<void> {
  await writeFile(path, Buffer.alloc((await stat(path)).size));
}

/** Every file under the data dir with its bytes, to see that a refused start wrote nothing. */
async function snapshotDir(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(path, (await readFile(path)).toString('base64'));
  }
  return out;
}

/** `node start` that must be refused: it has to exit on its own, well within the bound. */
async function refusedStart(args: string[], home: string): Promise<CliResult> {
  return runCli(['node', 'start', ...args], envFor(home), REFUSED_START_TIMEOUT_MS);
}

function assertRefused(result: CliResult, file: string): void {
  assert.equal(result.code, 1, describeResult(result));
  const lines = result.stderr.split('\n').filter((line) => line.startsWith('Error: '));
  assert.equal(lines.length, 1, describeResult(result));
  assert.ok(lines[0]!.includes(file), `the error names ${file}\n${describeResult(result)}`);
  assert.match(result.stderr, /^Hint: .*(backup|empty data dir)/m, describeResult(result));
  assert.doesNotMatch(result.stderr, /bootstrapped a single-node cluster/);
}

function assertRefusedJson(result: CliResult, file: string): void {
  assert.equal(result.code, 1, describeResult(result));
  const { error } = parseJson<{ error: { code: string; message: string } }>(result);
  assert.equal(error.code, 'RDB_STORAGE_LOST', describeResult(result));
  assert.ok(error.message.includes(file), describeResult(result));
}

describe('a zero-config single node whose Raft log was lost refuses to start', () => {
  /** Starts a zero-config node, waits until it leads its cluster, stops it gracefully. */
  async function runOnce(home: string): Promise<{ clusterId: string; dataDir: string }> {
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    const status = await until('the single node to lead', async () => {
      const view = await clusterStatus(home, node.address);
      return view.leader === node.info.id && view.commitIndex > 1 ? view : undefined;
    });
    const stopped = await node.stop();
    assert.equal(stopped.code, 0, node.stderr());
    return { clusterId: status.clusterId, dataDir: node.info.dataDir };
  }

  for (const damage of ['zeroed', 'truncated to 0 bytes'] as const) {
    test(`log ${damage}: exit 1 naming the file, nothing changed on disk`, async (t) => {
      const home = await newHome();
      const { dataDir } = await runOnce(home);
      const files = await segments(dataDir);
      assert.equal(files.length, 1, `one segment: ${files.join(', ')}`);
      const log = files[0]!;
      if (damage === 'zeroed') await zeroFile(log);
      else await truncate(log, 0);
      const before = await snapshotDir(dataDir);

      const human = await refusedStart(['--listen', '127.0.0.1:0'], home);
      assertRefused(human, log);
      t.diagnostic(human.stderr.trim());
      const json = await refusedStart(['--listen', '127.0.0.1:0', '--json'], home);
      assertRefusedJson(json, log);

      // Validate, then act: the refused starts left every file as it was (no new cluster,
      // no torn-tail repair of the zeroed file, no snapshot file removed).
      assert.deepEqual(await snapshotDir(dataDir), before);
    });
  }
});

describe('a member of a three-node cluster whose Raft log was zeroed', () => {
  test('is refused at restart; the other two keep their leader, term and quorum', async (t) => {
    const home = await newHome();
    const env = envFor(home);
    const dataDir = (id: string) => join(home, id);
    const args = (id: string, seeds: string) => [
      '--id',
      id,
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir(id),
      '--join',
      seeds,
    ];
    // n1 makes the shared CA first; the others join through it.
    const n1 = await startNode(args('n1', ''), env);
    const rest = await Promise.all(['n2', 'n3'].map((id) => startNode(args(id, n1.address), env)));
    const nodes = new Map<string, NodeProcess>([
      ['n1', n1],
      ['n2', rest[0]!],
      ['n3', rest[1]!],
    ]);
    const boot = await runCli(
      ['cluster', 'bootstrap', '--expect', '3', '--json', '--node', n1.address],
      env,
      30_000,
    );
    assert.equal(boot.code, 0, describeResult(boot));

    const settled = async () =>
      until(
        'the cluster to agree on a leader',
        async () => {
          const live = [...nodes.values()].filter((node) => node.child.exitCode === null);
          const views = await Promise.all(live.map((node) => clusterStatus(home, node.address)));
          const [first] = views;
          if (first === undefined || first.leader === null) return undefined;
          const agree = views.every(
            (view) =>
              view.leader === first.leader &&
              view.term === first.term &&
              view.commitIndex === first.commitIndex,
          );
          return agree ? first : undefined;
        },
        30_000,
      );
    const view = await settled();
    // A follower: its loss must not need an election to show (a leader's would).
    const victimId = ['n1', 'n2', 'n3'].find((id) => id !== view.leader)!;
    const victim = nodes.get(victimId)!;
    const stopped = await victim.stop();
    assert.equal(stopped.code, 0, victim.stderr());
    nodes.delete(victimId);

    const files = await segments(dataDir(victimId));
    assert.equal(files.length, 1, `one segment: ${files.join(', ')}`);
    await zeroFile(files[0]!);
    const before = await snapshotDir(dataDir(victimId));

    const survivorsAddress = [...nodes.values()].map((node) => node.address).join(',');
    const refused = await refusedStart(args(victimId, survivorsAddress), home);
    assertRefused(refused, files[0]!);
    t.diagnostic(refused.stderr.trim());
    const refusedJson = await refusedStart([...args(victimId, survivorsAddress), '--json'], home);
    assertRefusedJson(refusedJson, files[0]!);
    assert.deepEqual(await snapshotDir(dataDir(victimId)), before);

    // The survivors: same leader and term as before (the refused node never campaigned or
    // answered), and a quorum: `health` is not critical on either (degraded or healthy
    // depends on whether a voter that left gossip counts as trouble, which is not this
    // test's concern).
    const after = await settled();
    assert.equal(after.leader, view.leader);
    assert.equal(after.term, view.term);
    for (const node of nodes.values()) {
      const health = await runCli(['health', '--json', '--node', node.address], env);
      const report = parseJson<{ status: string; quorum: boolean }>(health);
      assert.ok(health.code === 0 || health.code === 1, describeResult(health));
      assert.notEqual(report.status, 'critical', describeResult(health));
      assert.equal(report.quorum, true, describeResult(health));
    }
  });
});
