/**
 * `--node a,b,c` on read-only commands (health, node status, cluster members, cluster status):
 * one real node and one address where nothing listens, merged into one answer naming the node
 * of each part; every address checked before any node is asked.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { argvForNode, fanOutNodes } from '../../src/cli/fan-out.ts';
import {
  describeResult,
  killAllNodes,
  parseJson,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const homes: { cleanup(): Promise<void> }[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await killAllNodes();
  await Promise.all(servers.splice(0).map((server) => new Promise((done) => server.close(done))));
  await Promise.all(homes.splice(0).map((home) => home.cleanup()));
});

function envFor(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home, RDBNET_NODE: '', RDBNET_OUTPUT: '', DEBUG: '', ...extra };
}

/** A loopback port nothing listens on: bound, then released. */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return `127.0.0.1:${port}`;
}

interface Merged {
  nodes: (
    | { node: string; result: Record<string, unknown> }
    | {
        node: string;
        error: { code: string; message: string };
      }
  )[];
}

describe('--node a,b', () => {
  test('the node list: from --node or RDBNET_NODE, checked, deduplicated', () => {
    assert.equal(fanOutNodes(['--node', '127.0.0.1:1'], {}), null);
    assert.deepEqual(fanOutNodes(['--node=127.0.0.1:1,127.0.0.1:2,127.0.0.1:1'], {}), [
      '127.0.0.1:1',
      '127.0.0.1:2',
    ]);
    assert.deepEqual(fanOutNodes([], { RDBNET_NODE: '127.0.0.1:1,[::1]:2' }), [
      '127.0.0.1:1',
      '[::1]:2',
    ]);
    assert.throws(() => fanOutNodes(['--node', '127.0.0.1:1,…'], {}), /'…'/);
    assert.deepEqual(argvForNode(['health', '--node', 'a,b', '--json'], 'a'), [
      'health',
      '--node',
      'a',
      '--json',
    ]);
    assert.deepEqual(argvForNode(['health'], 'b'), ['--node', 'b', 'health']);
  });

  test('health, node status and cluster members merge a live node and a dead address', async () => {
    const home = await tempHome('rdbnet-fanout-');
    homes.push(home);
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home.dir), 60_000);
    const dead = await closedPort();
    const both = `${node.address},${dead}`;

    const health = await runCli(['health', '--node', both, '--json'], envFor(home.dir));
    // The worst answer decides: an unreachable node is "unknown" (3) for health.
    assert.equal(health.code, 3, describeResult(health));
    const merged = parseJson<Merged>(health);
    assert.deepEqual(
      merged.nodes.map((answer) => answer.node),
      [node.address, dead],
    );
    const [live, gone] = merged.nodes;
    assert.ok(live && 'result' in live && live.result['status'] === 'healthy', health.stdout);
    assert.ok(gone && 'error' in gone && gone.error.code === 'RDB_NODE_UNREACHABLE');

    const status = await runCli(
      ['node', 'status', '-o', 'ndjson'],
      envFor(home.dir, { RDBNET_NODE: both }),
    );
    assert.equal(status.code, 69, describeResult(status));
    const lines = status.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.equal(lines.length, 2);
    assert.equal(lines[0].result.id, node.info.id);

    const members = await runCli(
      ['cluster', 'members', '--node', `${node.address},${node.address}`],
      envFor(home.dir),
    );
    assert.equal(members.code, 0, describeResult(members));
    assert.equal(members.stdout.match(/^# node /gm)?.length, 1, 'a repeated address is asked once');
    assert.match(members.stdout, new RegExp(`^${node.info.id}\\t${node.address}\\talive`, 'm'));
  });
});
