/**
 * The cluster service in one process, without sockets: its data dir in a temp dir, no seeds
 * (it founds a cluster alone) or an empty seed list (it waits for a cluster), requests handed
 * to `handle` as the admin API hands them. Checks that the tunables of ClusterServiceInit
 * reach the rooms that use them: the leader's wait for a joiner in gossip (joinGossipWaitMs)
 * and a bootstrap's wait for its nodes (bootstrapWaitMs).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ClusterService, type ClusterServiceInit } from '../../src/core/cluster/index.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import type { ClusterStatusReply, Envelope } from '../../src/core/protocol/messages.ts';
import { Counters, createLogger } from '../../src/core/runtime/index.ts';
import type { Connection } from '../../src/core/transport/connection.ts';
import { DEFAULT_CONNECTION_OPTIONS } from '../../src/core/transport/options.ts';

/** Bounds every wait of this file: far above what a loaded machine needs. */
const WAIT_BOUND_MS = 60_000;
const ADDRESS = '127.0.0.1:7999';

const dirs: string[] = [];
const services: ClusterService[] = [];
after(async () => {
  for (const service of services) await service.stop();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function openService(
  id: string,
  extra: Partial<ClusterServiceInit>,
): Promise<ClusterService> {
  const dataDir = await mkdtemp(join(tmpdir(), 'rdbnet-cluster-service-'));
  dirs.push(dataDir);
  const service = await ClusterService.open({
    id,
    dataDir,
    clusterName: 'unit',
    seeds: undefined,
    bootstrapExpect: undefined,
    local: { id, clusterId: 'unit', role: 'node', softwareVersion: 'test' },
    tls: () => null,
    connection: { ...DEFAULT_CONNECTION_OPTIONS },
    log: createLogger({ level: 'error', write: () => {} }),
    counters: new Counters(),
    // Gossip runs and lists nobody: no joiner is ever alive in it.
    gossip: () => [],
    ...extra,
  });
  services.push(service);
  await service.start(ADDRESS);
  return service;
}

/** A node-to-node connection from `id`, as the transport hands it to handlers. */
function fromNode(id: string): Connection {
  return { peer: { id, role: 'node', authenticated: true } } as unknown as Connection;
}

async function status(service: ClusterService): Promise<ClusterStatusReply> {
  const reply = await service.handle(
    { kind: 'clusterStatusRequest', body: { localOnly: true } },
    fromNode('observer'),
  );
  assert.ok('clusterStatusReply' in reply, 'a status reply');
  return reply.clusterStatusReply;
}

async function refusal(reply: Envelope | Promise<Envelope>): Promise<Error> {
  try {
    await reply;
  } catch (error) {
    return error as Error;
  }
  assert.fail('the request was answered, not refused');
}

describe('cluster tunables reach the rooms that use them', () => {
  test('joinGossipWaitMs: a joiner gossip never lists is refused after that wait', async () => {
    const service = await openService('n1', { tunables: { joinGossipWaitMs: 300 } });
    const deadline = Date.now() + WAIT_BOUND_MS;
    while ((await status(service)).role !== 'leader') {
      assert.ok(Date.now() < deadline, 'the single node did not lead itself');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const error = await refusal(
      service.handle(
        {
          kind: 'joinRequest',
          body: { id: 'n2', address: '127.0.0.1:7998', clusterId: '', forwarded: false },
        },
        fromNode('n2'),
      ),
    );
    assert.ok(isRdbnetError(error, ErrorCode.JoinNotInGossip), String(error));
    assert.match(error.message, /n2 is not alive in gossip on n1 after 0\.3 s/);
    // Refused, so nothing changed: n2 is no member.
    assert.deepEqual(
      (await status(service)).members.map((member) => member.id),
      ['n1'],
    );
  });

  test('bootstrapWaitMs: a bootstrap request that names no wait waits that long', async () => {
    // An empty seed list: the node waits for a cluster and knows no other node.
    const service = await openService('b1', { seeds: [], tunables: { bootstrapWaitMs: 400 } });
    assert.equal(service.state, 'pending');
    const error = await refusal(
      service.handle(
        { kind: 'clusterBootstrapRequest', body: { expect: 2, waitMs: 0 } },
        fromNode('b1'),
      ),
    );
    assert.ok(isRdbnetError(error, ErrorCode.RequestTimeout), String(error));
    assert.match(error.message, /only 1 of 2 nodes found within 400 ms/);
    assert.equal(service.state, 'pending');
  });
});
