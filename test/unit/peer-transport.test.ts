/**
 * The PeerTransport seam, both sides of it: PeerLinks (the production one, over real
 * ReconnectingLinks on 127.0.0.1) and the simulator's SimPeerTransport, which must fail the
 * way PeerLinks fails (typed codes, at the timeout) and hand handlers a PeerIdentity.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AdminSource, adminHandler } from '../../src/core/api/admin.ts';
import { PeerLinks } from '../../src/core/cluster/peers.ts';
import { ErrorCode, RdbnetError } from '../../src/core/errors.ts';
import type { EchoMessage, LocalEndpoint } from '../../src/core/protocol/index.ts';
import { type PeerIdentity, peerSender } from '../../src/core/rpc/peer.ts';
import { request } from '../../src/core/rpc/request.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { EventQueue, SimNetwork } from '../../src/core/sim/index.ts';
import {
  SIM_PEER_REQUESTS_INFLIGHT_MAX,
  SimPeerNetwork,
  type SimPeerPacket,
  simPeerPacketBytes,
} from '../../src/core/sim/peers.ts';
import { connectionOptions, TransportServer } from '../../src/core/transport/index.ts';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

function codeOf(error: unknown): string {
  return error instanceof RdbnetError ? error.code : `not typed: ${String(error)}`;
}

/** Settles `promise` while the simulation runs; returns how and when it ended. */
async function settleIn<T>(
  queue: EventQueue,
  promise: Promise<T>,
  maxMs: number,
): Promise<{ value?: T; error?: unknown; atMs: number }> {
  let outcome: { value?: T; error?: unknown; atMs: number } | undefined;
  promise.then(
    (value) => {
      outcome = { value, atMs: queue.nowMs() };
    },
    (error: unknown) => {
      outcome = { error, atMs: queue.nowMs() };
    },
  );
  await queue.runForAsync(maxMs, () => outcome !== undefined);
  assert.ok(outcome, `not settled within ${maxMs} virtual ms`);
  return outcome;
}

describe('SimPeerTransport', () => {
  function setup() {
    const queue = new EventQueue();
    const net = new SimNetwork<SimPeerPacket>(
      queue,
      seededRandom(1),
      { dropRate: 0, duplicateRate: 0, delayMinMs: 5, delayMaxMs: 5 },
      simPeerPacketBytes,
    );
    const peers = new SimPeerNetwork(net, queue);
    const seen: PeerIdentity[] = [];
    const server = peers.attach(
      '127.0.0.2:7000',
      { id: 'b', role: 'node', authenticated: true },
      (request, from) => {
        seen.push(from);
        if (request.kind !== 'echoRequest') throw new RdbnetError(ErrorCode.Forbidden, 'echo only');
        const data = (request.body as EchoMessage).data;
        if (text(data) === 'crash') throw new Error('a bug in the handler');
        if (text(data) === 'slow') {
          return new Promise((resolve) =>
            queue.setTimer(500, () => resolve({ echoReply: { data } })),
          );
        }
        return { echoReply: { data } };
      },
    );
    const client = peers.attach(
      '127.0.0.1:7000',
      { id: 'a', role: 'node', authenticated: true },
      null,
    );
    return { queue, net, peers, server, client, seen };
  }

  test('a request goes through the codec to the handler, with the sender identity, and back', async () => {
    const { queue, client, seen, net } = setup();
    const outcome = await settleIn(
      queue,
      request(peerSender(client, '127.0.0.2:7000'), 'echoRequest', { data: bytes('hi') }, 1000),
      2000,
    );
    assert.equal(text(outcome.value!.data), 'hi');
    assert.equal(outcome.atMs, 10, 'one network delay each way');
    assert.deepEqual(seen, [
      { peer: { id: 'a', role: 'node', authenticated: true }, remoteAddress: '127.0.0.1:7000' },
    ]);
    assert.ok(net.stats.bytes > 0, 'sizes are counted');
    const slow = await settleIn(
      queue,
      client.request('127.0.0.2:7000', { echoRequest: { data: bytes('slow') } }, 1000),
      2000,
    );
    assert.equal(slow.value!.kind, 'echoReply');
  });

  test("the handler's typed error comes back with its code; an untyped one as RDB_INTERNAL", async () => {
    const { queue, client } = setup();
    const forbidden = await settleIn(
      queue,
      client.request('127.0.0.2:7000', { statusRequest: {} }, 1000),
      2000,
    );
    assert.equal(codeOf(forbidden.error), ErrorCode.Forbidden);
    const crash = await settleIn(
      queue,
      client.request('127.0.0.2:7000', { echoRequest: { data: bytes('crash') } }, 1000),
      2000,
    );
    assert.equal(codeOf(crash.error), ErrorCode.Internal);
  });

  test('no one listening, or cut off: RDB_NODE_UNREACHABLE at the timeout; a lost reply: RDB_REQUEST_TIMEOUT', async () => {
    const { queue, client, net } = setup();
    const start = queue.nowMs();
    const nobody = await settleIn(
      queue,
      client.request('127.0.0.3:7000', { statusRequest: {} }, 300),
      1000,
    );
    assert.equal(codeOf(nobody.error), ErrorCode.NodeUnreachable);
    assert.equal(nobody.atMs - start, 300);
    net.partition([['127.0.0.1:7000'], ['127.0.0.2:7000']]);
    const cut = await settleIn(
      queue,
      client.request('127.0.0.2:7000', { statusRequest: {} }, 300),
      1000,
    );
    assert.equal(codeOf(cut.error), ErrorCode.NodeUnreachable);
    net.heal();
    // The request arrives; the partition starts while the handler works: the reply is lost.
    const pending = client.request(
      '127.0.0.2:7000',
      { echoRequest: { data: bytes('slow') } },
      1000,
    );
    queue.setTimer(100, () => net.partition([['127.0.0.1:7000'], ['127.0.0.2:7000']]));
    const lost = await settleIn(queue, pending, 2000);
    assert.equal(codeOf(lost.error), ErrorCode.RequestTimeout);
  });

  test('detach and close fail what waits with RDB_CONNECTION_CLOSED and refuse what follows', async () => {
    const { queue, client, peers } = setup();
    const waiting = client.request(
      '127.0.0.2:7000',
      { echoRequest: { data: bytes('slow') } },
      1000,
    );
    peers.detach('127.0.0.1:7000');
    const outcome = await settleIn(queue, waiting, 10);
    assert.equal(codeOf(outcome.error), ErrorCode.ConnectionClosed);
    const after = await settleIn(
      queue,
      client.request('127.0.0.2:7000', { statusRequest: {} }, 100),
      10,
    );
    assert.equal(codeOf(after.error), ErrorCode.ConnectionClosed);
    assert.equal(client.isCold('127.0.0.2:7000'), false);
  });

  test(`at most ${SIM_PEER_REQUESTS_INFLIGHT_MAX} requests wait; the next is refused with RDB_INFLIGHT_LIMIT`, async () => {
    const { queue, client } = setup();
    const waiting = Array.from({ length: SIM_PEER_REQUESTS_INFLIGHT_MAX }, () =>
      client.request('127.0.0.2:7000', { echoRequest: { data: bytes('slow') } }, 5000),
    );
    const refused = await settleIn(
      queue,
      client.request('127.0.0.2:7000', { statusRequest: {} }, 100),
      1,
    );
    assert.equal(codeOf(refused.error), ErrorCode.InflightLimit);
    await queue.runForAsync(1000);
    const replies = await Promise.all(waiting);
    assert.equal(replies.length, SIM_PEER_REQUESTS_INFLIGHT_MAX);
  });
});

describe('PeerLinks as the PeerTransport (real links on 127.0.0.1)', () => {
  test('requests reach the node entry point; cold until dialed; closed and malformed addresses are typed refusals', async () => {
    const local: LocalEndpoint = { id: 'n1', clusterId: 'c1', role: 'node', softwareVersion: 't' };
    const seen: (PeerIdentity['peer'] | null)[] = [];
    const source: AdminSource = {
      status: () => {
        throw new RdbnetError(ErrorCode.MethodUnknown, 'not in this test');
      },
      health: () => {
        throw new RdbnetError(ErrorCode.MethodUnknown, 'not in this test');
      },
      healthDiagnosed: () => Promise.reject(new RdbnetError(ErrorCode.MethodUnknown, 'no')),
      certificates: null,
      cluster: {
        handle: (_request, from) => {
          seen.push(from.peer);
          return { clusterStatusReply: notAStatus() };
        },
      },
      membership: null,
    };
    const server = new TransportServer({
      local,
      tls: null,
      options: connectionOptions(),
      handler: adminHandler(source),
      connectionsMax: 8,
    });
    const bound = await server.listen('127.0.0.1', 0);
    const address = `127.0.0.1:${bound.port}`;
    const links = new PeerLinks({
      local: { id: 'n2', clusterId: 'c1', role: 'node', softwareVersion: 't' },
      tls: () => null,
      options: connectionOptions(),
    });
    try {
      assert.equal(links.isCold(address), true);
      assert.equal(links.isOpen(address), false);
      const reply = await request(
        peerSender(links, address),
        'echoRequest',
        { data: bytes('over tcp') },
        5000,
      );
      assert.equal(text(reply.data), 'over tcp');
      assert.equal(links.isCold(address), false);
      assert.equal(links.isOpen(address), true);
      // A cluster request reaches the cluster service with the peer's identity (--insecure:
      // claimed, not proven).
      const status = await links.request(
        address,
        { clusterStatusRequest: { localOnly: true } },
        5000,
      );
      assert.equal(status.kind, 'clusterStatusReply');
      assert.deepEqual(
        seen.map(
          (peer) => peer && { id: peer.id, role: peer.role, authenticated: peer.authenticated },
        ),
        [{ id: 'n2', role: 'node', authenticated: false }],
      );
      await assert.rejects(links.request('no-port', { statusRequest: {} }, 100), (error) => {
        assert.equal(codeOf(error), ErrorCode.Usage);
        return true;
      });
      links.retain(new Set());
      assert.equal(links.isCold(address), true, 'retain closed the link');
      assert.equal(links.isOpen(address), false);
      links.close();
      await assert.rejects(links.request(address, { statusRequest: {} }, 100), (error) => {
        assert.equal(codeOf(error), ErrorCode.ConnectionClosed);
        return true;
      });
    } finally {
      links.close();
      await server.close(0);
    }
  });
});

function notAStatus() {
  return {
    clusterName: 'c1',
    id: 'n1',
    state: 'pending',
    clusterId: '',
    leader: '',
    leaderAddress: '',
    term: 0,
    commitIndex: 0,
    appliedIndex: 0,
    lastIndex: 0,
    role: '',
    members: [],
    progressFrom: '',
    history: [],
    settings: {},
    knownPeers: [],
    confChangeTimings: [],
  };
}
