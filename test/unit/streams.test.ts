/**
 * Chunking, reassembly and flow control of multiplexed streams (src/core/transport/streams.ts),
 * a sender and a receiver wired back to back with credit delivered late and in random order:
 * every message arrives intact, the windows are never exceeded, small windows only slow things
 * down. Then the peer that breaks the rules: past a stream's window (that stream refused), past
 * the connection's (a connection error), too large, too many streams, late chunks of a reset
 * stream (dropped), and the memory budget.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { Codec } from '../../src/core/protocol/frame.ts';
import type { StreamControl } from '../../src/core/protocol/messages.ts';
import { MemoryBudget } from '../../src/core/transport/memory-budget.ts';
import { Priority } from '../../src/core/transport/priority.ts';
import {
  type Chunk,
  OutboundStream,
  STREAM_TOTAL_PREFIX_BYTES,
  StreamError,
  StreamReceiver,
  StreamSender,
  type StreamSettings,
} from '../../src/core/transport/streams.ts';

/** The chunk's frame payload as Connection writes it: the size first on a stream's first chunk. */
function framePayload(chunk: Chunk): Buffer {
  const data = Buffer.from(chunk.stream.data.subarray(chunk.start, chunk.end));
  if (!chunk.first) return data;
  const prefix = Buffer.alloc(STREAM_TOTAL_PREFIX_BYTES);
  prefix.writeUInt32BE(chunk.stream.data.length);
  return Buffer.concat([prefix, data]);
}

function deliver(receiver: StreamReceiver, chunk: Chunk) {
  const payload = framePayload(chunk);
  return receiver.receive(
    chunk.stream.reply,
    chunk.stream.id,
    chunk.first,
    chunk.stream.codec,
    payload,
    0,
    payload.length,
  );
}

function message(bytes: number, seed: number): Uint8Array {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (seed * 31 + i * 7) & 0xff;
  return data;
}

const flowError = (error: unknown) => isRdbnetError(error, ErrorCode.FlowControl);

describe('streams: chunking, reassembly, flow control', () => {
  test('property: random sizes, windows and credit timing — every message intact, windows kept', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            bytes: fc.integer({ min: 1, max: 60_000 }),
            priority: fc.constantFrom(
              Priority.Critical,
              Priority.High,
              Priority.Normal,
              Priority.Low,
            ),
            reply: fc.boolean(),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        fc.record({
          chunkBytes: fc.integer({ min: 256, max: 40_000 }),
          streamWindowBytes: fc.integer({ min: 256, max: 100_000 }),
          connectionWindowBytes: fc.integer({ min: 256, max: 150_000 }),
          streamsMax: fc.integer({ min: 1, max: 5 }),
        }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        (messages, settings, seed) => {
          const local: StreamSettings = {
            streamWindowBytes: settings.streamWindowBytes,
            connectionWindowBytes: settings.connectionWindowBytes,
            streamsMax: settings.streamsMax,
          };
          const sender = new StreamSender(local, settings.chunkBytes, 100);
          const receiver = new StreamReceiver({ local, messageBytesMax: 1 << 20 });
          const sent = new Map<string, Uint8Array>();
          messages.forEach((m, index) => {
            const data = message(m.bytes, index);
            sent.set(`${m.reply}/${index + 1}`, data);
            sender.open(new OutboundStream(m.reply, index + 1, m.priority, Codec.None, data));
          });
          // Credit travels back with a delay: a queue released at seeded random moments.
          const inTransit: StreamControl[] = [];
          let random = seed;
          const coin = () => {
            random = (random * 1_103_515_245 + 12_345) % 2 ** 31;
            return random % 3 === 0;
          };
          let inflight = 0;
          let granted = 0;
          const received = new Map<string, Buffer>();
          for (let step = 0; step < 100_000 && received.size < messages.length; step++) {
            const chunk = sender.nextChunk();
            if (chunk !== null) {
              const bytes = chunk.end - chunk.start;
              assert.ok(bytes >= 1 && bytes <= settings.chunkBytes, 'a chunk within chunkBytes');
              inflight += bytes;
              assert.ok(inflight <= settings.connectionWindowBytes, 'connection window kept');
              const whole = deliver(receiver, chunk);
              if (whole !== null) {
                received.set(
                  `${chunk.stream.reply}/${chunk.stream.id}`,
                  Buffer.from(whole.payload),
                );
              }
              const control = receiver.takeControl();
              if (control !== null) inTransit.push(control);
            }
            // Some credit arrives now; when nothing can be sent, all of it does.
            while (inTransit.length > 0 && (chunk === null || coin())) {
              const control = inTransit.shift()!;
              granted += control.connectionBytes;
              inflight -= control.connectionBytes;
              sender.grant(control);
            }
            if (chunk === null && inTransit.length === 0 && !sender.hasReady) break;
          }
          assert.equal(received.size, messages.length, 'every message completed');
          for (const [key, data] of sent) {
            assert.ok(Buffer.from(data).equals(received.get(key)!), `message ${key} intact`);
          }
          assert.deepEqual(sender.streams, { active: 0, waiting: 0 });
          assert.equal(sender.bytes, 0, 'every queued byte accounted for');
          assert.equal(receiver.open, 0);
          assert.ok(receiver.inflightBytesPeak <= settings.connectionWindowBytes);
          void granted;
        },
      ),
      { numRuns: 100 },
    );
  });

  test('a small window only slows a stream down: it waits for credit, other streams go on', () => {
    const peer = { streamWindowBytes: 1000, connectionWindowBytes: 100_000, streamsMax: 10 };
    const sender = new StreamSender(peer, 600, 10);
    sender.open(new OutboundStream(false, 1, Priority.Low, Codec.None, message(5000, 1)));
    sender.open(new OutboundStream(false, 3, Priority.Low, Codec.None, message(500, 3)));
    const chunks: [number, number][] = [];
    for (let chunk = sender.nextChunk(); chunk !== null; chunk = sender.nextChunk()) {
      chunks.push([chunk.stream.id, chunk.end - chunk.start]);
    }
    // Stream 1 used its 1000 bytes of credit (600 + 400), then stream 3 went while it waits.
    assert.deepEqual(chunks, [
      [1, 600],
      [1, 400],
      [3, 500],
    ]);
    assert.equal(sender.hasReady, false);
    sender.grant({ connectionBytes: 0, credits: [{ id: 1, reply: false, bytes: 600 }] });
    const next = sender.nextChunk()!;
    assert.deepEqual([next.stream.id, next.start, next.end], [1, 1000, 1600]);
  });

  test('priorities: a critical stream opened behind a low one is sent first', () => {
    const peer = { streamWindowBytes: 1 << 20, connectionWindowBytes: 1 << 20, streamsMax: 10 };
    const sender = new StreamSender(peer, 100, 10);
    sender.open(new OutboundStream(false, 1, Priority.Low, Codec.None, message(10_000, 1)));
    assert.equal(sender.nextChunk()!.stream.id, 1);
    sender.open(new OutboundStream(true, 7, Priority.Critical, Codec.None, message(300, 7)));
    const order = [1, 2, 3].map(() => sender.nextChunk()!.stream.id);
    assert.deepEqual(order, [7, 7, 7]);
    assert.equal(sender.nextChunk()!.stream.id, 1);
  });

  test('the peer streamsMax: further streams wait their turn, bounded by waitingMax', () => {
    const peer = { streamWindowBytes: 1 << 20, connectionWindowBytes: 1 << 20, streamsMax: 2 };
    const sender = new StreamSender(peer, 1 << 20, 1);
    sender.open(new OutboundStream(false, 1, Priority.Normal, Codec.None, message(10, 1)));
    sender.open(new OutboundStream(false, 3, Priority.Normal, Codec.None, message(10, 3)));
    sender.open(new OutboundStream(false, 5, Priority.Normal, Codec.None, message(10, 5)));
    assert.deepEqual(sender.streams, { active: 2, waiting: 1 });
    assert.throws(
      () => sender.open(new OutboundStream(false, 7, Priority.Normal, Codec.None, message(10, 7))),
      (error) => isRdbnetError(error, ErrorCode.WriteQueueFull),
    );
    const ids = [1, 2, 3].map(() => sender.nextChunk()!.stream.id);
    assert.deepEqual(ids, [1, 3, 5]);
    assert.equal(sender.nextChunk(), null);
  });

  test('bytes waiting to be sent are bounded (bytesMax): one more message is RDB_WRITE_QUEUE_FULL', () => {
    const peer = { streamWindowBytes: 1 << 20, connectionWindowBytes: 1 << 20, streamsMax: 10 };
    const sender = new StreamSender(peer, 1000, 10, 5000);
    // Alone, a message larger than the bound is taken (it could never be sent otherwise).
    sender.open(new OutboundStream(false, 1, Priority.Normal, Codec.None, message(6000, 1)));
    assert.throws(
      () => sender.open(new OutboundStream(false, 3, Priority.Normal, Codec.None, message(1, 3))),
      (error) => isRdbnetError(error, ErrorCode.WriteQueueFull),
    );
    for (let i = 0; i < 2; i++) sender.nextChunk();
    assert.equal(sender.bytes, 4000);
    sender.open(new OutboundStream(false, 3, Priority.Normal, Codec.None, message(1000, 3)));
    assert.equal(sender.bytes, 5000);
    sender.cancel(false, 1);
    assert.equal(sender.bytes, 1000);
  });

  test('cancel drops a stream being sent and one waiting', () => {
    const peer = { streamWindowBytes: 1 << 20, connectionWindowBytes: 1 << 20, streamsMax: 1 };
    const sender = new StreamSender(peer, 10, 10);
    sender.open(new OutboundStream(false, 1, Priority.Normal, Codec.None, message(100, 1)));
    sender.open(new OutboundStream(false, 3, Priority.Normal, Codec.None, message(100, 3)));
    sender.nextChunk();
    assert.equal(sender.cancel(false, 1), true);
    assert.equal(sender.nextChunk()!.stream.id, 3);
    assert.equal(sender.cancel(false, 3), true);
    assert.equal(sender.cancel(false, 3), false);
    assert.equal(sender.nextChunk(), null);
  });
});

describe('streams: a peer that breaks the rules', () => {
  const local = { streamWindowBytes: 1000, connectionWindowBytes: 3000, streamsMax: 2 };
  const first = (total: number, bytes: number) => {
    const payload = Buffer.alloc(STREAM_TOTAL_PREFIX_BYTES + bytes);
    payload.writeUInt32BE(total);
    return payload;
  };

  test('past a stream window: that stream is refused (StreamError), its late chunks dropped', () => {
    const receiver = new StreamReceiver({ local, messageBytesMax: 1 << 20 });
    // 400 of its 1000 bytes used: below half, no credit granted back yet, 600 left.
    const a = first(5000, 400);
    assert.equal(receiver.receive(false, 1, true, Codec.None, a, 0, a.length), null);
    const b = Buffer.alloc(601);
    assert.throws(
      () => receiver.receive(false, 1, false, Codec.None, b, 0, b.length),
      (error) => error instanceof StreamError && flowError(error) && error.streamId === 1,
    );
    assert.equal(receiver.open, 0);
    // A chunk already in flight when the peer learned of the reset: dropped, not an error.
    const late = Buffer.alloc(100);
    assert.equal(receiver.receive(false, 1, false, Codec.None, late, 0, late.length), null);
    // Another stream goes on.
    const c = first(10, 10);
    assert.ok(receiver.receive(false, 3, true, Codec.None, c, 0, c.length) !== null);
  });

  test('past the connection window: a connection error', () => {
    const receiver = new StreamReceiver({ local, messageBytesMax: 1 << 20 });
    for (const id of [1, 3]) {
      const chunk = first(5000, 1000);
      receiver.receive(false, id, true, Codec.None, chunk, 0, chunk.length);
    }
    const chunk = first(5000, 1001);
    assert.throws(
      () => receiver.receive(true, 5, true, Codec.None, chunk, 0, chunk.length),
      (error) => flowError(error) && !(error instanceof StreamError),
    );
  });

  test('credit is granted back once half a window is consumed', () => {
    const receiver = new StreamReceiver({ local, messageBytesMax: 1 << 20 });
    const a = first(5000, 499);
    receiver.receive(false, 1, true, Codec.None, a, 0, a.length);
    assert.equal(receiver.takeControl(), null);
    const b = Buffer.alloc(1);
    receiver.receive(false, 1, false, Codec.None, b, 0, b.length);
    assert.deepEqual(receiver.takeControl(), {
      connectionBytes: 0,
      credits: [{ id: 1, reply: false, bytes: 500 }],
      resets: [],
    });
    const c = Buffer.alloc(500);
    receiver.receive(false, 1, false, Codec.None, c, 0, c.length);
    const d = Buffer.alloc(500);
    receiver.receive(false, 1, false, Codec.None, d, 0, d.length);
    const control = receiver.takeControl()!;
    assert.equal(control.connectionBytes, 1500);
  });

  test('too large, too many, empty, longer than announced, started twice', () => {
    const receiver = new StreamReceiver({ local, messageBytesMax: 4096 });
    const big = first(4097, 10);
    assert.throws(
      () => receiver.receive(false, 1, true, Codec.None, big, 0, big.length),
      (error) => error instanceof StreamError && isRdbnetError(error, ErrorCode.MessageTooLarge),
    );
    for (const id of [3, 5]) {
      const chunk = first(100, 10);
      receiver.receive(false, id, true, Codec.None, chunk, 0, chunk.length);
    }
    const third = first(100, 10);
    assert.throws(
      () => receiver.receive(false, 7, true, Codec.None, third, 0, third.length),
      (error) => error instanceof StreamError && isRdbnetError(error, ErrorCode.StreamLimit),
    );
    const again = first(100, 10);
    assert.throws(
      () => receiver.receive(false, 3, true, Codec.None, again, 0, again.length),
      (error) => isRdbnetError(error, ErrorCode.FrameMalformed),
    );
    const over = Buffer.alloc(91);
    assert.throws(
      () => receiver.receive(false, 5, false, Codec.None, over, 0, over.length),
      (error) => error instanceof StreamError && isRdbnetError(error, ErrorCode.FrameMalformed),
    );
    const unknown = Buffer.alloc(10);
    assert.throws(
      () => receiver.receive(true, 99, false, Codec.None, unknown, 0, unknown.length),
      (error) => isRdbnetError(error, ErrorCode.FrameMalformed),
    );
  });

  test('reassembly is reserved from the memory budget and given back', () => {
    const budget = new MemoryBudget(150_000);
    const wide = { streamWindowBytes: 1 << 20, connectionWindowBytes: 1 << 20, streamsMax: 10 };
    const receiver = new StreamReceiver({ local: wide, messageBytesMax: 1 << 20, budget });
    const a = first(150_000, 1000);
    receiver.receive(false, 1, true, Codec.None, a, 0, a.length);
    assert.ok(budget.bufferedBytes > 0 && budget.bufferedBytes <= 150_000);
    // Its buffer would grow to 128 KiB next to the first one's 64 KiB: past the budget.
    const b = first(150_000, 100_000);
    assert.throws(
      () => receiver.receive(false, 3, true, Codec.None, b, 0, b.length),
      (error) => error instanceof StreamError && isRdbnetError(error, ErrorCode.MemoryBudget),
    );
    receiver.clear();
    assert.equal(budget.bufferedBytes, 0);
  });
});
