/**
 * GraphQL over a real cluster: n1 runs in this process (the library's startNode), n2 and n3
 * are real `rdbnet node start` processes joining it. Queries and mutations go through
 * executeGraphql as a principal (a read client is refused a change with RDB_FORBIDDEN, as
 * over the CLI); too costly or too long a query is refused unrun; and a real graphql-ws client,
 * connected to attachGraphqlWs on a node:http server on loopback, is told the current leader,
 * then sees n3 die (kill -9) in its peerEvents subscription and the health turn degraded,
 * within a bounded time.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import type { Principal } from '../../src/core/api/authorization.ts';
import { executeGraphql } from '../../src/core/graphql/execute.ts';
import {
  attachGraphqlWs,
  GRAPHQL_WS_PATH,
  type GraphqlWsHandle,
} from '../../src/core/graphql/ws.ts';
import { type Node, startNode as startLibraryNode } from '../../src/index.ts';
import {
  killAllNodes,
  type NodeProcess,
  poller,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

/** Safety bounds, many times what a quiet machine needs (the local preset sees a death in ~1 s). */
const FORMED_MS_MAX = 60_000;
const DEATH_SEEN_MS_MAX = 30_000;

const ADMIN: Principal = { role: 'admin', name: 'client/ops', source: 'certificate' };
const READER: Principal = { role: 'read', name: 'client/viewer', source: 'certificate' };
const TOKEN = 'Bearer test-admin-token';

const until = poller(100);
const silent = { debug() {}, info() {}, warn() {}, error() {} };
let home: { dir: string; cleanup(): Promise<void> };
let n1: Node;
const children = new Map<string, NodeProcess>();
let server: Server | undefined;
let ws: GraphqlWsHandle | undefined;
let client: Client | undefined;

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

async function gql(query: string, principal = READER, variables?: Record<string, unknown>) {
  return executeGraphql({
    source: n1.graphqlSource,
    principal,
    query,
    ...(variables === undefined ? {} : { variables }),
  });
}

before(async () => {
  home = await tempHome('rdbnet-graphql-');
  n1 = await startLibraryNode(
    {
      id: 'n1',
      listen: '127.0.0.1:0',
      dataDir: join(home.dir, 'n1'),
      insecure: true,
      preset: 'local',
    },
    { env: { ...process.env, ...env() }, logger: silent },
  );
  for (const id of ['n2', 'n3']) {
    children.set(
      id,
      await startNode(
        [
          '--id',
          id,
          '--listen',
          '127.0.0.1:0',
          '--data-dir',
          join(home.dir, id),
          '--insecure',
          '--preset',
          'local',
          '--join',
          n1.address,
        ],
        env(),
      ),
    );
  }
  await n1.waitForMembers(3, FORMED_MS_MAX);
});

after(async () => {
  await client?.dispose();
  await ws?.close();
  if (server !== undefined) {
    server.closeAllConnections();
    await new Promise((resolve) => server!.close(resolve));
  }
  await killAllNodes();
  await n1?.stop();
  await home.cleanup();
});

describe('GraphQL on a real cluster', () => {
  test('queries answer from the node, as a read client', async () => {
    const result = await gql(`{
      node { id state }
      peers { nodeId address state health }
      nodes { nodeId }
      topology { localNode clusterSize members { id state raftRole } }
      networkStats { messagesSent messagesReceived activeConnections avgLatencyMs }
      health { status quorum nodes { id state ready } }
      membership { members { nodeId } events { eventType nodeId timestamp } }
      loadBalancer { peers { id breakerState } }
      connections { open accepted refused { code count } }
    }`);
    assert.equal(result.errors, undefined, JSON.stringify(result.errors));
    const data = result.data as {
      node: { id: string };
      peers: { nodeId: string; state: string }[];
      topology: { localNode: string; clusterSize: number; members: { raftRole: string }[] };
      membership: { events: { eventType: string; nodeId: string }[] };
      health: { nodes: unknown[] };
    };
    assert.equal(data.node.id, 'n1');
    assert.deepEqual(data.peers.map((peer) => peer.nodeId).sort(), ['n1', 'n2', 'n3']);
    assert.equal(data.topology.localNode, 'n1');
    assert.equal(data.topology.clusterSize, 3);
    assert.ok(data.membership.events.some((e) => e.eventType === 'join' && e.nodeId === 'n2'));
    assert.ok(data.health.nodes.length >= 3);
  });

  test('the cluster view, once n2 and n3 are voters', async () => {
    await until(
      'three voters in n1 cluster status',
      async () => {
        const result = await gql('{ cluster { leader term members { id voter } } }');
        const members = (result.data?.['cluster'] as { members: { voter: boolean }[] } | undefined)
          ?.members;
        return members !== undefined && members.filter((m) => m.voter).length === 3
          ? true
          : undefined;
      },
      FORMED_MS_MAX,
    );
  });

  test('a mutation as a read client is RDB_FORBIDDEN; as admin it moves the leader', async () => {
    const mutation = 'mutation ($to: String!) { transferLeadership(to: $to) { leader term } }';
    const refused = await gql(mutation, READER, { to: 'n2' });
    assert.equal(refused.errors?.[0]?.extensions?.['code'], 'RDB_FORBIDDEN');
    assert.match(refused.errors![0]!.message, /needs role admin/);

    const moved = await gql(mutation, ADMIN, { to: 'n2' });
    assert.equal(moved.errors, undefined, JSON.stringify(moved.errors));
    const transfer = moved.data?.['transferLeadership'] as { leader: string } | undefined;
    assert.equal(transfer?.leader, 'n2');

    const badSeeds = await gql('mutation { joinCluster(seedNodes: []) { success } }', ADMIN);
    assert.equal(badSeeds.errors?.[0]?.extensions?.['code'], 'RDB_USAGE');
  });

  test('too costly, too long or malformed queries are refused unrun, with the reason', async () => {
    const aliases = Array.from({ length: 600 }, (_, i) => `p${i}: peers { nodeId }`).join(' ');
    const costly = await gql(`{ ${aliases} }`);
    assert.equal(costly.data, undefined);
    assert.equal(costly.errors?.[0]?.extensions?.['code'], 'RDB_QUERY_TOO_COMPLEX');
    assert.match(costly.errors![0]!.message, /query cost \d+ is over the limit of 5000/);

    const deep = await executeGraphql({
      source: n1.graphqlSource,
      principal: READER,
      query: '{ membership { members { nodeId } } }',
      limits: { queryCharsMax: 1000, depthMax: 2, costMax: 1000, listCostFactor: 10 },
    });
    assert.match(deep.errors?.[0]?.message ?? '', /query depth 3 is over the limit of 2/);

    const long = await gql(`{ node { id } } ${'#'.repeat(20_000)}`);
    assert.equal(long.errors?.[0]?.extensions?.['code'], 'RDB_QUERY_TOO_COMPLEX');

    const malformed = await gql('{ node { id ');
    assert.equal(malformed.errors?.[0]?.extensions?.['code'], 'RDB_USAGE');
    const unknown = await gql('{ nothing }');
    assert.match(unknown.errors?.[0]?.message ?? '', /Cannot query field "nothing"/);
  });

  test('a graphql-ws subscription sees n3 die (kill -9) and health turn degraded', async () => {
    server = createServer((_request, response) => {
      response.writeHead(404).end();
    });
    ws = attachGraphqlWs(server, GRAPHQL_WS_PATH, {
      source: n1.graphqlSource,
      authenticate: (request) => (request.headers.authorization === TOKEN ? READER : null),
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}${GRAPHQL_WS_PATH}`;

    // Without the token the upgrade is refused before any WebSocket exists.
    const refusedStatus = await new Promise<number>((resolve) => {
      const socket = new WebSocket(url, 'graphql-transport-ws');
      socket.on('unexpected-response', (_request, response) => {
        resolve(response.statusCode ?? 0);
        socket.terminate();
      });
      socket.on('open', () => {
        resolve(101);
        socket.close();
      });
      socket.on('error', () => {});
    });
    assert.equal(refusedStatus, 401);

    class AuthorizedWebSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols, { headers: { authorization: TOKEN } });
      }
    }
    client = createClient({
      url,
      webSocketImpl: AuthorizedWebSocket,
      lazy: false,
      retryAttempts: 0,
    });
    const events: { eventType: string; nodeId: string; timestamp: string }[] = [];
    const healths: string[] = [];
    const errors: unknown[] = [];
    const subscribe = <T>(query: string, onData: (data: T) => void) =>
      client!.subscribe<T>(
        { query },
        {
          next: (result) => {
            if (result.errors !== undefined) errors.push(result.errors);
            if (result.data !== undefined && result.data !== null) onData(result.data as T);
          },
          error: (error) => errors.push(error),
          complete: () => {},
        },
      );
    subscribe<{ peerEvents: (typeof events)[number] }>(
      'subscription { peerEvents { eventType nodeId timestamp } }',
      (data) => events.push(data.peerEvents),
    );
    subscribe<{ healthChanges: { status: string } }>(
      'subscription { healthChanges { status nodes { id state } } }',
      (data) => healths.push(data.healthChanges.status),
    );
    const leaders: { leader: string; term: number }[] = [];
    subscribe<{ leaderChanges: { leader: string; term: number } }>(
      'subscription { leaderChanges { leader term timestamp } }',
      (data) => leaders.push(data.leaderChanges),
    );
    // The leader and health streams send the current state first: the subscriptions are live.
    await until('the current leader on the subscription', async () =>
      leaders.length > 0 ? true : undefined,
    );
    assert.equal(leaders[0]!.leader, 'n2', 'the leader the mutation test moved to n2');
    await until('the first health on the subscription', async () =>
      healths.length > 0 ? true : undefined,
    );
    assert.deepEqual(errors, []);

    const killedAt = performance.now();
    await children.get('n3')!.kill();
    const dead = await until(
      'a peerEvents event saying n3 is dead',
      async () => events.find((e) => e.nodeId === 'n3' && e.eventType === 'dead'),
      DEATH_SEEN_MS_MAX,
    );
    const seenMs = performance.now() - killedAt;
    console.log(`n3 dead on the subscription ${Math.round(seenMs)} ms after kill -9`);
    assert.ok(!Number.isNaN(Date.parse(dead.timestamp)));
    await until(
      'healthChanges reporting degraded',
      async () => (healths.includes('degraded') ? true : undefined),
      DEATH_SEEN_MS_MAX,
    );
    assert.deepEqual(errors, []);
  });
});
