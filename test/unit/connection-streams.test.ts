/**
 * Multiplexed streams on real connections (127.0.0.1, plaintext with CRCs and TLS-free for
 * speed): a large message goes in chunks within the windows while small requests sent after it
 * complete before it; a stream the receiver refuses fails that request alone and the connection
 * goes on; a request that times out mid-stream stops its stream.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import type { DecodedEnvelope, EchoMessage, LocalEndpoint } from '../../src/core/protocol/index.ts';
import {
  type Connection,
  type ConnectionOptions,
  connectionOptions,
  dial,
  type RequestHandler,
  TransportServer,
} from '../../src/core/transport/index.ts';

const HOST = '127.0.0.1';
const nodeLocal: LocalEndpoint = { id: 'n1', clusterId: 'c1', role: 'node', softwareVersion: 't' };
const clientLocal: LocalEndpoint = {
  id: 'admin',
  clusterId: 'c1',
  role: 'client',
  softwareVersion: 't',
};
const MiB = 1024 * 1024;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Echoes echoRequest data; `slow:` payloads answer after 2 s. */
const handler: RequestHandler = (request: DecodedEnvelope) => {
  const data = (request.body as EchoMessage).data;
  if (Buffer.from(data.subarray(0, 5)).toString() === 'slow:') {
    return new Promise((resolve) =>
      setTimeout(() => resolve({ echoReply: { data: Buffer.from(data) } }), 2000),
    );
  }
  return { echoReply: { data: Buffer.from(data) } };
};

async function pair(
  serverOptions: Partial<ConnectionOptions> = {},
  clientOptions: Partial<ConnectionOptions> = {},
): Promise<{ server: TransportServer; client: Connection }> {
  const server = new TransportServer({
    local: nodeLocal,
    tls: null,
    options: connectionOptions(serverOptions),
    handler,
    connectionsMax: 10,
  });
  const address = await server.listen(HOST, 0);
  cleanups.push(() => server.close(200));
  const client = await dial({
    address: { host: HOST, port: address.port },
    local: clientLocal,
    tls: null,
    options: connectionOptions(clientOptions),
  });
  cleanups.push(() => client.close());
  return { server, client };
}

/** Bytes no codec compresses (the connection negotiates one), the same for the same seed. */
function pattern(bytes: number, seed: number): Buffer {
  const data = Buffer.allocUnsafe(bytes);
  let state = seed + 1;
  for (let i = 0; i < bytes; i++) {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    data[i] = state >>> 24;
  }
  return data;
}

function echoed(reply: DecodedEnvelope): Buffer {
  assert.equal(reply.kind, 'echoReply');
  return Buffer.from((reply.body as EchoMessage).data);
}

describe('streams on a real connection', () => {
  test('a 20 MiB request (above the 16 MiB frame limit) goes in chunks; small requests sent after it finish first', async () => {
    const { client } = await pair();
    assert.ok(client.streams !== null, 'both sides announced stream settings');
    const big = pattern(20 * MiB, 1);
    const order: string[] = [];
    const bigDone = client.request({ echoRequest: { data: big } }, 60_000).then((reply) => {
      order.push('big');
      return reply;
    });
    const smalls = Array.from({ length: 50 }, (_, i) =>
      client.request({ echoRequest: { data: pattern(64, i) } }, 60_000).then((reply) => {
        order.push('small');
        assert.ok(echoed(reply).equals(pattern(64, i)), `small ${i} intact`);
      }),
    );
    await Promise.all(smalls);
    const reply = await bigDone;
    assert.ok(echoed(reply).equals(big), 'the 20 MiB message came back intact');
    assert.deepEqual(order.slice(0, 50), Array(50).fill('small'), 'no small request waited for it');
    const streams = client.streams!;
    assert.ok(streams.chunksSent >= (20 * MiB) / (16 * 1024), `${streams.chunksSent} chunks sent`);
    assert.ok(
      streams.inflightBytesPeak <= connectionOptions().connectionWindowBytes,
      `peak in flight ${streams.inflightBytesPeak}`,
    );
    assert.deepEqual([streams.sending, streams.waiting, streams.receiving], [0, 0, 0]);
  });

  test('a message over the receiver messageBytesMax fails alone; the connection goes on', async () => {
    const { client } = await pair({ messageBytesMax: MiB });
    await assert.rejects(
      client.request({ echoRequest: { data: pattern(2 * MiB, 2) } }, 30_000),
      (error) => isRdbnetError(error, ErrorCode.MessageTooLarge),
    );
    assert.equal(client.state, 'open');
    const small = await client.request({ echoRequest: { data: pattern(100, 3) } }, 30_000);
    assert.ok(echoed(small).equals(pattern(100, 3)));
    const fits = pattern(MiB - 100, 4);
    const reply = await client.request({ echoRequest: { data: fits } }, 30_000);
    assert.ok(echoed(reply).equals(fits));
  });

  test('more streams than the receiver streamsMax: the sender queues them, all complete', async () => {
    const { client } = await pair({ streamsMax: 2, streamWindowBytes: 32 * 1024 });
    const messages = Array.from({ length: 8 }, (_, i) => pattern(300_000 + i, i));
    const replies = await Promise.all(
      messages.map((data) => client.request({ echoRequest: { data } }, 60_000)),
    );
    for (const [i, reply] of replies.entries()) {
      assert.ok(echoed(reply).equals(messages[i]!), `message ${i}`);
    }
  });

  test('a request that times out while its reply streams in: the rest is refused, the connection goes on', async () => {
    const { client } = await pair(
      {},
      { streamWindowBytes: 16 * 1024, connectionWindowBytes: 32 * 1024 },
    );
    // The reply (4 MiB in 32 KiB windows) starts after 2 s; the request gives up at 2.1 s.
    const data = Buffer.concat([Buffer.from('slow:'), pattern(4 * MiB, 5)]);
    await assert.rejects(client.request({ echoRequest: { data } }, 2100), (error) =>
      isRdbnetError(error, ErrorCode.RequestTimeout),
    );
    const small = await client.request({ echoRequest: { data: pattern(10, 6) } }, 30_000);
    assert.ok(echoed(small).equals(pattern(10, 6)));
    assert.equal(client.state, 'open');
  });
});
