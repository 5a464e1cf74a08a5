/**
 * Connection pools per peer on three real `rdbnet node start` processes (mutual TLS,
 * loopback): after the join, `rdbnet pool stats` shows warm connections to each peer; a burst
 * of concurrent `request`s through n1 opens more than one connection to their target, never
 * more than pool.connectionsMax; kill -9 of a peer empties its pool, and the dials that try
 * to replace its connections stop after pool.replaceAttemptsMax.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { askTopic } from '../../src/cli/dataplane.ts';
import { NodeClient, operatorDialInit } from '../../src/core/client/node-client.ts';
import { TopicKindCode } from '../../src/core/protocol/messages.ts';
import { parseHostPort } from '../../src/core/transport/address.ts';
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

const until = poller(200);
const home = await tempHome('rdbnet-pool-');
const env = { RDBNET_HOME: home.dir };
const nodes = new Map<string, NodeProcess>();
const IDS = ['n1', 'n2', 'n3'];

/** Small pools, so a burst reaches connectionsMax: a connection is busy at 2 in flight. */
const POOL = {
  connectionsMin: 1,
  connectionsMax: 3,
  connectionInflightMax: 2,
  replaceAttemptsMax: 3,
  replaceBackoffBaseMs: 100,
  replaceBackoffMaxMs: 400,
  maintenanceIntervalMs: 200,
};

interface PoolPeer {
  peer: string | null;
  address: string;
  open: number;
  idle: number;
  inUse: number;
  opening: number;
  waiting: number;
  evicted: { idle: number; lifetime: number; lru: number; unhealthy: number };
  created: number;
  failed: number;
  requests: number;
  warm: boolean;
  lastError: string | null;
}

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, env, 30_000);
}

/** `rdbnet pool stats --node <id> --json`. */
async function poolStats(id: string): Promise<{ node: string; peers: PoolPeer[] }> {
  const result = await cli(['pool', 'stats', '--node', nodes.get(id)!.address, '--json']);
  assert.equal(result.code, 0, describeResult(result));
  return parseJson(result);
}

/** The same admin request the command makes, from this process: for polling, which would
 * otherwise start a CLI process every few hundred milliseconds on a loaded machine. */
async function askPoolStats(id: string): Promise<{ peers: PoolPeer[] }> {
  const init = await operatorDialInit({
    address: parseHostPort(nodes.get(id)!.address),
    certsDir: join(home.dir, 'certs'),
    clientName: 'admin',
    insecure: false,
    timeoutMs: 10_000,
  });
  const reply = await NodeClient.with(init, (client) => client.ask('poolStatsRequest', {}));
  return { peers: (reply.peers ?? []) as unknown as PoolPeer[] };
}

function peerRow(stats: { peers: PoolPeer[] }, peer: string): PoolPeer | undefined {
  return stats.peers.find((row) => row.peer === peer);
}

before(async () => {
  const configFile = join(home.dir, 'pool-config.json');
  await writeFile(configFile, JSON.stringify({ pool: POOL }));
  const start = (id: string, join_?: string) =>
    startNode(
      [
        ...['--id', id, '--listen', '127.0.0.1:0', '--data-dir', join(home.dir, id)],
        ...['--config', configFile],
        ...(join_ === undefined ? [] : ['--join', join_]),
      ],
      env,
      60_000,
    );
  const n1 = await start('n1');
  nodes.set('n1', n1);
  for (const id of ['n2', 'n3']) nodes.set(id, await start(id, n1.address));
  for (const id of IDS) {
    await until(
      `three alive members on ${id}`,
      async () => {
        const result = await cli([
          'cluster',
          'members',
          '--node',
          nodes.get(id)!.address,
          '--json',
        ]);
        if (result.code !== 0) return undefined;
        const { members } = parseJson<{ members: { state: string }[] }>(result);
        return members.filter((m) => m.state === 'alive').length === 3 ? true : undefined;
      },
      60_000,
    );
  }
});

after(async () => {
  await killAllNodes();
  await home.cleanup();
});

describe('connection pools per peer, on three nodes', () => {
  test('after the join, every node has warm connections to each peer', async () => {
    for (const id of IDS) {
      const others = IDS.filter((other) => other !== id);
      await until(
        `warm pools on ${id}`,
        async () => {
          const stats = await askPoolStats(id);
          const warm = others.every((other) => {
            const row = peerRow(stats, other);
            return row?.warm === true && row.open >= POOL.connectionsMin;
          });
          return warm ? true : undefined;
        },
        30_000,
      );
      // Then through the command, as an operator sees it.
      const stats = await poolStats(id);
      assert.equal(stats.node, id);
      for (const other of others) {
        const row = peerRow(stats, other)!;
        assert.equal(row.address, nodes.get(other)!.address);
        assert.ok(row.open <= POOL.connectionsMax, JSON.stringify(row));
        assert.equal(row.idle + row.inUse, row.open);
        assert.equal(row.failed, 0, JSON.stringify(row));
        assert.deepEqual(row.evicted, { idle: 0, lifetime: 0, lru: 0, unhealthy: 0 });
      }
    }
    // The human table names each peer.
    const human = await cli(['pool', 'stats', '--node', nodes.get('n1')!.address]);
    assert.equal(human.code, 0, describeResult(human));
    assert.match(human.stdout, /n2/);
    assert.match(human.stdout, /n3/);
  });

  test('a burst of concurrent requests opens more than one connection, up to connectionsMax', async () => {
    const before = peerRow(await askPoolStats('n1'), 'n2')!;
    const init = await operatorDialInit({
      address: parseHostPort(nodes.get('n1')!.address),
      certsDir: join(home.dir, 'certs'),
      clientName: 'admin',
      insecure: false,
      timeoutMs: 20_000,
    });
    const payload = new Uint8Array(256 * 1024).fill(7);
    const burst = 48;
    await NodeClient.with(init, async (client) => {
      const replies = await Promise.all(
        Array.from({ length: burst }, () =>
          askTopic(client, {
            topic: 'echo',
            payload,
            deadlineMs: 15_000,
            kind: TopicKindCode.Request,
            to: 'n2',
          }),
        ),
      );
      for (const reply of replies) assert.equal(reply.payload.length, payload.length);
    });
    const row = peerRow(await poolStats('n1'), 'n2')!;
    assert.ok(row.requests - before.requests >= burst, JSON.stringify(row));
    assert.ok(
      row.created - before.created >= 1,
      `a second connection opened: ${JSON.stringify(row)}`,
    );
    assert.ok(row.open + row.opening <= POOL.connectionsMax, JSON.stringify(row));
    assert.ok(row.open >= 2, JSON.stringify(row));
    assert.equal(row.waiting, 0);
    assert.equal(row.failed, 0);
  });

  test('kill -9 of a peer empties its pool; replacement dials are bounded', async () => {
    const n3 = nodes.get('n3')!;
    await n3.kill();
    const emptied = await until(
      'n3 pools empty on n1 and n2',
      async () => {
        const rows = await Promise.all(
          ['n1', 'n2'].map(async (id) => peerRow(await askPoolStats(id), 'n3')),
        );
        return rows.every((row) => row !== undefined && row.open === 0 && row.opening === 0)
          ? rows
          : undefined;
      },
      30_000,
    );
    for (const row of emptied) {
      assert.ok(row!.evicted.unhealthy >= 1, JSON.stringify(row));
      assert.ok(row!.failed <= POOL.replaceAttemptsMax, JSON.stringify(row));
    }
    // Well past every backoff: the count of failed dials stays within the bound.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    for (const id of ['n1', 'n2']) {
      const row = peerRow(await poolStats(id), 'n3')!;
      assert.equal(row.open, 0);
      assert.ok(row.failed <= POOL.replaceAttemptsMax, JSON.stringify(row));
      assert.equal(row.lastError, 'RDB_NODE_UNREACHABLE', JSON.stringify(row));
    }
    // The other peers' pools are untouched.
    const n2 = peerRow(await poolStats('n1'), 'n2')!;
    assert.ok(n2.open >= POOL.connectionsMin, JSON.stringify(n2));
  });
});
