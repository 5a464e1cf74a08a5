/**
 * The request → reply table (REPLY_OF) and the typed request built on it: the table places
 * every Envelope kind of proto/rdbnet.proto, a mismatched pair does not compile, and a reply
 * of another kind is RDB_MESSAGE_MALFORMED, from a fake sender and from a real server.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { NodeClient } from '../../src/core/client/node-client.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import type { LocalEndpoint } from '../../src/core/protocol/handshake.ts';
import {
  type DecodedEnvelope,
  ENVELOPE_KINDS,
  type Envelope,
  type HealthReply,
  type StatusReply,
} from '../../src/core/protocol/messages.ts';
import {
  type KindsWithoutPlace,
  REPLY_OF,
  type ReplyBody,
  type RequestSender,
  request,
  UNPAIRED_KINDS,
} from '../../src/core/rpc/request.ts';
import { connectionOptions } from '../../src/core/transport/options.ts';
import { TransportServer } from '../../src/core/transport/server.ts';

// ---- compile-time checks: `npm run lint` type-checks this file, so these fail the build

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Every Envelope kind is a request, its reply, or a handshake/error kind. */
const everyKindPlaced: Equal<KindsWithoutPlace, never> = true;
/** The reply body follows from the request kind alone. */
const statusReplyBody: Equal<ReplyBody<'statusRequest'>, StatusReply> = true;
const clusterJoinReplyBody: Equal<
  ReplyBody<'clusterJoinRequest'>,
  ReplyBody<'clusterBootstrapRequest'>
> = true;

/** Never run: only type-checked. Each marked line must be a type error. */
async function mismatchesDoNotCompile(sender: RequestSender): Promise<void> {
  // @ts-expect-error a reply kind is not a request
  await request(sender, 'statusReply', {});
  // @ts-expect-error the body of another request
  await request(sender, 'statusRequest', { localOnly: true });
  // @ts-expect-error a request with a missing field
  await request(sender, 'leaveRequest', {});
  // @ts-expect-error the reply of statusRequest is not a HealthReply
  const health: HealthReply = await request(sender, 'statusRequest', {});
  void health;
}
void [everyKindPlaced, statusReplyBody, clusterJoinReplyBody, mismatchesDoNotCompile];

// ---- runtime ------------------------------------------------------------------------------

/** A sender that records what it was asked and answers with `reply`. */
function fakeSender(reply: DecodedEnvelope) {
  const sent: { envelope: Envelope; timeoutMs: number | undefined }[] = [];
  const sender: RequestSender = {
    request(envelope, timeoutMs) {
      sent.push({ envelope, timeoutMs });
      return Promise.resolve(reply);
    },
  };
  return { sender, sent };
}

describe('REPLY_OF', () => {
  test('places every kind of the Envelope in proto/rdbnet.proto exactly once', () => {
    const requests = Object.keys(REPLY_OF);
    const replies = Object.values(REPLY_OF) as string[];
    const placed = [...requests, ...replies, ...UNPAIRED_KINDS];
    assert.deepEqual([...placed].sort(), [...ENVELOPE_KINDS].sort());
    assert.equal(new Set(placed).size, placed.length, 'a kind placed twice');
  });

  test('pairs each request with the reply of the same name', () => {
    for (const [kind, reply] of Object.entries(REPLY_OF)) {
      const expected = kind.endsWith('Request')
        ? `${kind.slice(0, -'Request'.length)}Reply`
        : `${kind}Reply`;
      assert.equal(reply, expected, kind);
    }
  });
});

describe('request', () => {
  test('sends the kind with its body and resolves with the reply body', async () => {
    const body = { left: true, id: 'n2' };
    const { sender, sent } = fakeSender({ kind: 'leaveReply', body });
    const reply = await request(sender, 'leaveRequest', { force: true }, 1234);
    assert.deepEqual(reply, body);
    assert.deepEqual(sent, [{ envelope: { leaveRequest: { force: true } }, timeoutMs: 1234 }]);
  });

  test('a reply of another kind is RDB_MESSAGE_MALFORMED naming both kinds', async () => {
    const { sender } = fakeSender({ kind: 'healthReply', body: {} });
    await assert.rejects(request(sender, 'statusRequest', {}), (error: unknown) => {
      assert.ok(isRdbnetError(error, ErrorCode.MessageMalformed), String(error));
      assert.match(
        error.message,
        /expected statusReply in reply to statusRequest, got healthReply/,
      );
      return true;
    });
  });
});

describe('NodeClient against a real server on loopback', () => {
  const servers: TransportServer[] = [];
  after(async () => {
    await Promise.all(servers.map((server) => server.close(100)));
  });

  const local: LocalEndpoint = { id: 'n1', clusterId: 'c1', role: 'node', softwareVersion: 't' };
  const client: LocalEndpoint = { ...local, id: 'admin', role: 'client' };

  /** A plaintext node that answers statusRequest with a health reply, echo correctly. */
  async function confusedNode(): Promise<number> {
    const server = new TransportServer({
      local,
      tls: null,
      options: connectionOptions(),
      connectionsMax: 4,
      handler: (incoming): Envelope => {
        if (incoming.kind === 'echoRequest') {
          return { echoReply: incoming.body as { data: Uint8Array } };
        }
        return { healthReply: { status: 'healthy', nodes: [], quorum: true } };
      },
    });
    servers.push(server);
    return (await server.listen('127.0.0.1', 0)).port;
  }

  test('a wrong reply kind is RDB_MESSAGE_MALFORMED; the client keeps working', async () => {
    const port = await confusedNode();
    await NodeClient.with(
      {
        address: { host: '127.0.0.1', port },
        local: client,
        tls: null,
        options: connectionOptions({ handshakeTimeoutMs: 5000, requestTimeoutMs: 5000 }),
      },
      async (node) => {
        assert.equal(node.target, `127.0.0.1:${port}`);
        assert.equal(node.peer?.id, 'n1');
        await assert.rejects(node.ask('statusRequest', {}), (error: unknown) =>
          isRdbnetError(error, ErrorCode.MessageMalformed),
        );
        const echoed = await node.ask('echoRequest', { data: Buffer.from('still here') });
        assert.equal(Buffer.from(echoed.data).toString(), 'still here');
        assert.ok(node.isOpen);
      },
    );
  });
});
