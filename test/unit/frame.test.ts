import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32 } from 'node:zlib';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  CHECKSUM_BYTES,
  Codec,
  encodeFrame,
  FRAME_BYTES_MAX,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameKind,
  flagsChecksum,
  flagsCodec,
  flagsKind,
  frameBytes,
  makeFlags,
  OutboundBuffer,
  type PayloadWriter,
} from '../../src/core/protocol/frame.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { MemoryBudget } from '../../src/core/transport/memory-budget.ts';

interface Frame {
  flags: number;
  messageId: number;
  payload: Buffer;
}

const KINDS = Object.values(FrameKind);
const CODECS = Object.values(Codec);
const MESSAGE_IDS = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 2 ** 53 - 1];

/** Feeds `chunks` in order and returns copies of every frame delivered. */
function decodeAll(decoder: FrameDecoder, chunks: readonly Buffer[]): Frame[] {
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk, (flags, messageId, payload) => {
      frames.push({ flags, messageId, payload: Buffer.from(payload) });
    });
  }
  return frames;
}

function throwsCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isRdbnetError(error, code), `expected ${code}, got ${String(error)}`);
    return true;
  };
}

function bytesOf(seed: number, length: number): Buffer {
  const random = seededRandom(seed);
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = random.int(256);
  return out;
}

/** A frame written by hand, so the tests do not trust encodeFrame to check the decoder. */
function rawFrame(length: number, flags: number, idHigh: number, idLow: number, body: Buffer) {
  const out = Buffer.alloc(14 + body.length);
  out.writeUInt32BE(length, 0);
  out.writeUInt16BE(flags, 4);
  out.writeUInt32BE(idHigh, 6);
  out.writeUInt32BE(idLow, 10);
  body.copy(out, 14);
  return out;
}

describe('flags', () => {
  test('every kind, codec and checksum combination survives makeFlags', () => {
    for (const kind of KINDS) {
      for (const codec of CODECS) {
        for (const checksum of [false, true]) {
          const flags = makeFlags(kind, codec, checksum);
          assert.equal(flagsKind(flags), kind);
          assert.equal(flagsCodec(flags), codec);
          assert.equal(flagsChecksum(flags), checksum);
          assert.equal(flags & ~0b11111, 0, 'only the five defined bits may be used');
        }
      }
    }
    assert.equal(makeFlags(FrameKind.OneWay, Codec.Zstd, true), 0b1_10_11);
  });
});

describe('encodeFrame', () => {
  test('writes the documented layout', () => {
    const payload = Buffer.from('hello');
    const frame = encodeFrame(makeFlags(FrameKind.Response, Codec.Lz4, true), 2 ** 32 + 5, payload);
    assert.equal(frame.length, FRAME_HEADER_BYTES + payload.length + CHECKSUM_BYTES);
    assert.equal(frame.length, frameBytes(payload.length, true));
    assert.equal(frame.readUInt32BE(0), frame.length - 4);
    assert.equal(frame.readUInt16BE(4), 0b1_01_01);
    assert.equal(frame.readUInt32BE(6), 1);
    assert.equal(frame.readUInt32BE(10), 5);
    assert.equal(frame.subarray(14, 19).toString(), 'hello');
    assert.equal(frame.readUInt32BE(19), crc32(payload));

    const plain = encodeFrame(
      makeFlags(FrameKind.Request, Codec.None, false),
      2 ** 53 - 1,
      payload,
    );
    assert.equal(plain.length, FRAME_HEADER_BYTES + payload.length);
    assert.equal(plain.readUInt32BE(0), 10 + payload.length);
    assert.equal(plain.readUInt32BE(6), 0x1f_ffff);
    assert.equal(plain.readUInt32BE(10), 0xffff_ffff);
  });
});

describe('round trips', () => {
  test('every kind, codec, checksum and message id', () => {
    let cases = 0;
    for (const kind of KINDS) {
      for (const codec of CODECS) {
        for (const checksum of [false, true]) {
          for (const messageId of MESSAGE_IDS) {
            for (const size of [0, 1, 300]) {
              const flags = makeFlags(kind, codec, checksum);
              const payload = bytesOf(cases + 1, size);
              const frames = decodeAll(new FrameDecoder(), [
                encodeFrame(flags, messageId, payload),
              ]);
              const label = `kind ${kind} codec ${codec} checksum ${checksum} id ${messageId}`;
              assert.equal(frames.length, 1, label);
              assert.equal(frames[0]!.flags, flags, label);
              assert.equal(frames[0]!.messageId, messageId, label);
              assert.deepEqual(frames[0]!.payload, payload, label);
              cases++;
            }
          }
        }
      }
    }
    assert.equal(cases, 4 * 3 * 2 * MESSAGE_IDS.length * 3);
  });

  test('a payload of the largest allowed size passes, one byte more does not', () => {
    const frameBytesMax = 4096;
    const flags = makeFlags(FrameKind.Request, Codec.None, true);
    const fits = Buffer.alloc(frameBytesMax - FRAME_HEADER_BYTES - CHECKSUM_BYTES, 0xab);
    const frames = decodeAll(new FrameDecoder({ frameBytesMax }), [encodeFrame(flags, 9, fits)]);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.payload.length, fits.length);

    const over = Buffer.alloc(fits.length + 1);
    assert.throws(
      () => decodeAll(new FrameDecoder({ frameBytesMax }), [encodeFrame(flags, 9, over)]),
      throwsCode(ErrorCode.FrameTooLarge),
    );
  });
});

describe('streaming', () => {
  const flagsList = [
    makeFlags(FrameKind.Request, Codec.None, true),
    makeFlags(FrameKind.Response, Codec.Lz4, false),
    makeFlags(FrameKind.Error, Codec.Zstd, true),
    makeFlags(FrameKind.OneWay, Codec.None, false),
    makeFlags(FrameKind.Request, Codec.None, false),
  ];
  const expected: Frame[] = flagsList.map((flags, i) => ({
    flags,
    messageId: MESSAGE_IDS[i]!,
    payload: bytesOf(100 + i, [0, 1, 17, 2, 40][i]!),
  }));
  const stream = Buffer.concat(expected.map((f) => encodeFrame(f.flags, f.messageId, f.payload)));

  test('many frames in one chunk', () => {
    const decoder = new FrameDecoder();
    assert.deepEqual(decodeAll(decoder, [stream]), expected);
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('a stream split at every byte boundary yields the same frames', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new FrameDecoder();
      const frames = decodeAll(decoder, [stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(frames, expected, `split at ${cut}`);
      assert.equal(decoder.bufferedBytes, 0, `split at ${cut}`);
    }
  });

  test('a stream split at every pair of boundaries yields the same frames', () => {
    for (let a = 0; a <= stream.length; a++) {
      for (let b = a; b <= stream.length; b += 3) {
        const chunks = [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)];
        assert.deepEqual(decodeAll(new FrameDecoder(), chunks), expected, `cuts ${a}, ${b}`);
      }
    }
  });

  test('1-byte chunks yield the same frames and bufferedBytes tracks the partial frame', () => {
    const decoder = new FrameDecoder();
    const frames: Frame[] = [];
    let frameStart = 0;
    for (let i = 0; i < stream.length; i++) {
      decoder.push(stream.subarray(i, i + 1), (flags, messageId, payload) => {
        frames.push({ flags, messageId, payload: Buffer.from(payload) });
        frameStart = i + 1;
      });
      assert.equal(decoder.bufferedBytes, i + 1 - frameStart, `after byte ${i}`);
    }
    assert.deepEqual(frames, expected);
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('random chunkings (seeded) yield the same frames', () => {
    const seed = 0x5eed_f00d;
    const random = seededRandom(seed);
    for (let round = 0; round < 500; round++) {
      const chunks: Buffer[] = [];
      for (let offset = 0; offset < stream.length; ) {
        const size = random.int(20);
        chunks.push(stream.subarray(offset, offset + size));
        offset += size;
      }
      assert.deepEqual(
        decodeAll(new FrameDecoder(), chunks),
        expected,
        `seed ${seed} round ${round}`,
      );
    }
  });

  test('empty chunks change nothing', () => {
    const decoder = new FrameDecoder();
    const chunks = [Buffer.alloc(0), stream.subarray(0, 2), Buffer.alloc(0), stream.subarray(2)];
    assert.deepEqual(decodeAll(decoder, chunks), expected);
  });

  test('a payload view is only valid during the callback, but its contents are right', () => {
    const decoder = new FrameDecoder();
    const seen: string[] = [];
    decoder.push(stream, (_flags, _id, payload) => seen.push(payload.toString('hex')));
    assert.deepEqual(
      seen,
      expected.map((f) => f.payload.toString('hex')),
    );
  });
});

describe('limits and malformed frames', () => {
  test('a length prefix above frameBytesMax fails after only the 4 length bytes', () => {
    for (const frameBytesMax of [64 * 1024, FRAME_BYTES_MAX]) {
      for (const length of [frameBytesMax - 3, frameBytesMax, 0x7fff_ffff, 0xffff_ffff]) {
        const prefix = Buffer.alloc(4);
        prefix.writeUInt32BE(length);
        // All four bytes in one chunk.
        const whole = new FrameDecoder({ frameBytesMax });
        assert.throws(
          () => whole.push(prefix, () => assert.fail('no frame expected')),
          throwsCode(ErrorCode.FrameTooLarge),
        );
        assert.ok(whole.bufferedBytes <= 4, `bufferedBytes ${whole.bufferedBytes}`);
        // One byte at a time: the first three are only held, the fourth throws.
        const bytewise = new FrameDecoder({ frameBytesMax });
        for (let i = 0; i < 3; i++) {
          bytewise.push(prefix.subarray(i, i + 1), () => assert.fail('no frame expected'));
          assert.equal(bytewise.bufferedBytes, i + 1);
        }
        assert.throws(
          () => bytewise.push(prefix.subarray(3), () => assert.fail('no frame expected')),
          throwsCode(ErrorCode.FrameTooLarge),
        );
        assert.ok(bytewise.bufferedBytes <= 4, `bufferedBytes ${bytewise.bufferedBytes}`);
      }
    }
  });

  test('a too-large prefix after a complete frame still fails in the same chunk', () => {
    const good = encodeFrame(makeFlags(FrameKind.Request, Codec.None, false), 3, Buffer.from('a'));
    const bad = Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0]);
    const decoder = new FrameDecoder({ frameBytesMax: 1024 });
    const ids: number[] = [];
    assert.throws(
      () => decoder.push(Buffer.concat([good, bad]), (_f, id) => ids.push(id)),
      throwsCode(ErrorCode.FrameTooLarge),
    );
    assert.deepEqual(ids, [3]);
    assert.ok(decoder.bufferedBytes <= 4);
  });

  test('a length prefix of exactly frameBytesMax - 4 is accepted and buffered', () => {
    const frameBytesMax = 64 * 1024;
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(frameBytesMax - 4);
    const decoder = new FrameDecoder({ frameBytesMax });
    decoder.push(prefix, () => assert.fail('no frame expected'));
    decoder.push(Buffer.alloc(100), () => assert.fail('no frame expected'));
    assert.equal(decoder.bufferedBytes, 104);
  });

  test('length below 10 is malformed', () => {
    for (let length = 0; length < 10; length++) {
      const prefix = Buffer.alloc(4 + 10);
      prefix.writeUInt32BE(length);
      assert.throws(
        () => new FrameDecoder().push(prefix, () => assert.fail('no frame expected')),
        throwsCode(ErrorCode.FrameMalformed),
        `length ${length}`,
      );
      const bytewise = new FrameDecoder();
      assert.throws(
        () => {
          for (let i = 0; i < 4; i++) bytewise.push(prefix.subarray(i, i + 1), () => {});
        },
        throwsCode(ErrorCode.FrameMalformed),
        `length ${length}, byte by byte`,
      );
    }
  });

  test('every reserved flag bit is malformed', () => {
    // Bits 5-6 mark stream chunks, 7-8 the priority (Connection checks them against the
    // handshake); 9-15 are reserved.
    for (let bit = 9; bit < 16; bit++) {
      const frame = rawFrame(10, 1 << bit, 0, 1, Buffer.alloc(0));
      assert.throws(
        () => new FrameDecoder().push(frame, () => assert.fail('no frame expected')),
        throwsCode(ErrorCode.FrameMalformed),
        `bit ${bit}`,
      );
    }
  });

  test('codec 3 is unsupported', () => {
    const frame = rawFrame(10, 0b11 << 2, 0, 1, Buffer.alloc(0));
    assert.throws(
      () => new FrameDecoder().push(frame, () => assert.fail('no frame expected')),
      throwsCode(ErrorCode.CodecUnsupported),
    );
  });

  test('a flipped payload or checksum byte is a checksum mismatch', () => {
    const payload = bytesOf(7, 64);
    const frame = encodeFrame(makeFlags(FrameKind.Request, Codec.None, true), 5, payload);
    for (let i = FRAME_HEADER_BYTES; i < frame.length; i++) {
      const broken = Buffer.from(frame);
      broken[i]! ^= 0x01;
      assert.throws(
        () => new FrameDecoder().push(broken, () => assert.fail('no frame expected')),
        throwsCode(ErrorCode.ChecksumMismatch),
        `byte ${i}`,
      );
    }
    // Without the checksum flag the same damage goes unnoticed, as documented.
    const unchecked = encodeFrame(makeFlags(FrameKind.Request, Codec.None, false), 5, payload);
    unchecked[20]! ^= 0x01;
    const frames = decodeAll(new FrameDecoder(), [unchecked]);
    assert.equal(frames.length, 1);
    assert.notDeepEqual(frames[0]!.payload, payload);
  });

  test('a checksum frame too short to hold its checksum is malformed', () => {
    for (let length = 10; length < 14; length++) {
      const frame = rawFrame(
        length,
        makeFlags(FrameKind.Request, Codec.None, true),
        0,
        1,
        Buffer.alloc(length - 10),
      );
      assert.throws(
        () => new FrameDecoder().push(frame, () => assert.fail('no frame expected')),
        throwsCode(ErrorCode.FrameMalformed),
        `length ${length}`,
      );
    }
    // An empty payload with its checksum is fine.
    const empty = rawFrame(
      14,
      makeFlags(FrameKind.Request, Codec.None, true),
      0,
      1,
      Buffer.from([0, 0, 0, 0]),
    );
    empty.writeUInt32BE(crc32(Buffer.alloc(0)), 14);
    assert.equal(decodeAll(new FrameDecoder(), [empty]).length, 1);
  });

  test('a message id above 2^53 is malformed', () => {
    for (const high of [0x20_0000, 0x20_0001, 0xffff_ffff]) {
      const frame = rawFrame(10, 0, high, 0, Buffer.alloc(0));
      assert.throws(
        () => new FrameDecoder().push(frame, () => assert.fail('no frame expected')),
        throwsCode(ErrorCode.FrameMalformed),
        `high word 0x${high.toString(16)}`,
      );
    }
    const highest = rawFrame(10, 0, 0x1f_ffff, 0xffff_ffff, Buffer.alloc(0));
    const frames = decodeAll(new FrameDecoder(), [highest]);
    assert.equal(frames[0]!.messageId, Number.MAX_SAFE_INTEGER);
  });

  test('frameBytesMax is validated', () => {
    for (const frameBytesMax of [0, 13, FRAME_BYTES_MAX + 1, 100.5, Number.NaN]) {
      assert.throws(
        () => new FrameDecoder({ frameBytesMax }),
        { code: ErrorCode.ConfigInvalid, field: 'frameBytesMax' },
        `${frameBytesMax}`,
      );
    }
    assert.equal(new FrameDecoder({ frameBytesMax: 14 }).frameBytesMax, 14);
    assert.equal(new FrameDecoder().frameBytesMax, FRAME_BYTES_MAX);
  });
});

describe('decoding under a shared memory budget', () => {
  const KiB = 1024;

  /** The header and `sent` payload bytes of a frame announcing `total` bytes on the wire. */
  function halfFrame(total: number, sent: number): Buffer {
    const out = Buffer.alloc(FRAME_HEADER_BYTES + sent);
    out.writeUInt32BE(total - 4, 0);
    return out;
  }

  test('a partial frame is charged its buffer size and released when it completes', () => {
    const budget = new MemoryBudget(1024 * KiB);
    const decoder = new FrameDecoder({ budget });
    const frame = encodeFrame(
      makeFlags(FrameKind.Request, Codec.None, false),
      1,
      bytesOf(1, 300 * KiB),
    );
    decoder.push(frame.subarray(0, 100), () => assert.fail('no frame yet'));
    assert.equal(budget.bufferedBytes, 64 * KiB);
    decoder.push(frame.subarray(100, 200 * KiB), () => assert.fail('no frame yet'));
    // Grown by doubling toward the announced size, and charged before each growth.
    assert.equal(budget.bufferedBytes, 256 * KiB);
    assert.equal(decoder.allocatedBytes, 256 * KiB);
    const frames: Buffer[] = [];
    decoder.push(frame.subarray(200 * KiB), (_f, _id, payload) =>
      frames.push(Buffer.from(payload)),
    );
    assert.equal(frames.length, 1);
    assert.equal(budget.bufferedBytes, 0);
    assert.equal(budget.stats().bufferedBytesPeak, frame.length);
  });

  test('whole frames inside one chunk cost nothing', () => {
    const budget = new MemoryBudget(1);
    const decoder = new FrameDecoder({ budget });
    const frame = encodeFrame(makeFlags(FrameKind.Request, Codec.None, true), 1, bytesOf(2, 4000));
    const frames = decodeAll(decoder, [Buffer.concat([frame, frame, frame])]);
    assert.equal(frames.length, 3);
    assert.equal(budget.stats().bufferedBytesPeak, 0);
  });

  test('a growth that does not fit throws RDB_MEMORY_BUDGET and allocates nothing', () => {
    const budget = new MemoryBudget(200 * KiB);
    const first = new FrameDecoder({ budget });
    // A partial that starts with 100 KiB in hand gets a buffer of that size at once.
    first.push(halfFrame(128 * KiB, 100 * KiB), () => assert.fail('no frame'));
    const firstBytes = FRAME_HEADER_BYTES + 100 * KiB;
    assert.equal(budget.bufferedBytes, firstBytes);
    const second = new FrameDecoder({ budget });
    second.push(halfFrame(512 * KiB, 10), () => assert.fail('no frame'));
    assert.equal(budget.bufferedBytes, firstBytes + 64 * KiB);
    // Growing to 128 KiB would need 64 KiB more than the budget has left.
    assert.throws(
      () => second.push(Buffer.alloc(100 * KiB), () => assert.fail('no frame')),
      throwsCode(ErrorCode.MemoryBudget),
    );
    assert.equal(budget.bufferedBytes, firstBytes + 64 * KiB);
    assert.equal(second.allocatedBytes, 64 * KiB);
    assert.equal(budget.stats().refusals, 1);
    second.dispose();
    assert.equal(budget.bufferedBytes, firstBytes);
    // A disposed decoder ignores what comes later, and charges nothing more.
    second.push(halfFrame(64 * KiB, 10), () => assert.fail('no frame'));
    assert.equal(budget.bufferedBytes, firstBytes);
    first.dispose();
    first.dispose();
    assert.equal(budget.bufferedBytes, 0);
    assert.equal(budget.stats().bufferedBytesPeak, firstBytes + 64 * KiB);
  });

  test('a first partial that does not fit is refused before its buffer exists', () => {
    const budget = new MemoryBudget(32 * KiB);
    const decoder = new FrameDecoder({ budget });
    assert.throws(
      () => decoder.push(halfFrame(100 * KiB, 10), () => assert.fail('no frame')),
      throwsCode(ErrorCode.MemoryBudget),
    );
    assert.equal(budget.bufferedBytes, 0);
    assert.equal(decoder.allocatedBytes, 0);
    // Also when the length prefix itself arrived split.
    const split = new FrameDecoder({ budget });
    split.push(halfFrame(100 * KiB, 0).subarray(0, 2), () => assert.fail('no frame'));
    assert.throws(
      () => split.push(halfFrame(100 * KiB, 10).subarray(2), () => assert.fail('no frame')),
      throwsCode(ErrorCode.MemoryBudget),
    );
    assert.equal(budget.bufferedBytes, 0);
  });

  test('random chunkings over many decoders never take the budget past its maximum (seeded)', () => {
    const random = seededRandom(0x6b_5e7);
    const budget = new MemoryBudget(3 * 1024 * KiB);
    const decoders = Array.from({ length: 8 }, () => ({
      decoder: new FrameDecoder({ budget }),
      stream: Buffer.concat(
        Array.from({ length: 4 }, (_, i) =>
          encodeFrame(
            makeFlags(FrameKind.Request, Codec.None, true),
            i,
            bytesOf(i, random.int(900 * KiB)),
          ),
        ),
      ),
      offset: 0,
      refused: false,
      frames: 0,
    }));
    while (decoders.some((d) => !d.refused && d.offset < d.stream.length)) {
      const d = decoders[random.int(decoders.length)]!;
      if (d.refused || d.offset >= d.stream.length) continue;
      const take = 1 + random.int(64 * KiB);
      try {
        d.decoder.push(d.stream.subarray(d.offset, d.offset + take), () => {
          d.frames++;
        });
      } catch (error) {
        assert.ok(isRdbnetError(error, ErrorCode.MemoryBudget), String(error));
        d.refused = true;
        d.decoder.dispose();
      }
      d.offset += take;
      assert.ok(budget.bufferedBytes <= budget.bufferedBytesMax);
    }
    assert.equal(budget.bufferedBytes, 0, 'everything completed or was disposed');
    assert.ok(budget.stats().bufferedBytesPeak <= 3 * 1024 * KiB);
    assert.ok(decoders.some((d) => d.frames > 0));
  });

  test('MemoryBudget refuses past its maximum and checks its own bookkeeping', () => {
    const budget = new MemoryBudget(10);
    assert.equal(budget.reserve(6), true);
    assert.equal(budget.reserve(5), false);
    assert.equal(budget.reserve(4), true);
    assert.deepEqual(budget.stats(), {
      bufferedBytes: 10,
      bufferedBytesPeak: 10,
      bufferedBytesMax: 10,
      refusals: 1,
    });
    budget.release(10);
    assert.throws(() => budget.release(1), /invariant/);
    assert.throws(() => budget.reserve(-1), /invariant/);
    assert.throws(() => new MemoryBudget(0), {
      code: ErrorCode.ConfigInvalid,
      field: 'bufferedBytesMax',
    });
  });
});

describe('OutboundBuffer', () => {
  test('many appends grow the buffer and take() returns exactly the encoded frames', () => {
    const seed = 0x0b0f_fe12;
    const random = seededRandom(seed);
    const out = new OutboundBuffer(64);
    const expected: Buffer[] = [];
    for (let i = 0; i < 2000; i++) {
      const flags = makeFlags(
        KINDS[random.int(KINDS.length)]!,
        CODECS[random.int(CODECS.length)]!,
        random.next() < 0.5,
      );
      const messageId = MESSAGE_IDS[random.int(MESSAGE_IDS.length)]! + (i % 3 === 0 ? 0 : i);
      const size = random.next() < 0.01 ? 5000 + random.int(5000) : random.int(200);
      const payload = bytesOf(seed + i, size);
      out.append(flags, Math.min(messageId, Number.MAX_SAFE_INTEGER), payload);
      expected.push(encodeFrame(flags, Math.min(messageId, Number.MAX_SAFE_INTEGER), payload));
    }
    const whole = Buffer.concat(expected);
    assert.equal(out.bytes, whole.length, `seed ${seed}`);
    const taken = out.take();
    assert.equal(taken.length, whole.length, `seed ${seed}`);
    assert.ok(taken.equals(whole), `seed ${seed}: taken bytes differ from encodeFrame output`);
    assert.equal(out.bytes, 0);
    assert.equal(out.take().length, 0);
  });

  test('a taken buffer is not overwritten by later appends', () => {
    const out = new OutboundBuffer(16);
    const flags = makeFlags(FrameKind.Request, Codec.None, true);
    out.append(flags, 1, Buffer.from('first'));
    const first = out.take();
    const copy = Buffer.from(first);
    for (let i = 0; i < 50; i++) out.append(flags, 2 + i, Buffer.alloc(100, i));
    assert.ok(first.equals(copy));
    const second = out.take();
    const frames = decodeAll(new FrameDecoder(), [first, second]);
    assert.equal(frames.length, 51);
    assert.equal(frames[0]!.payload.toString(), 'first');
    assert.deepEqual(
      frames.map((f) => f.messageId),
      Array.from({ length: 51 }, (_, i) => i + 1),
    );
  });

  test('an initial size below 1 byte is refused instead of looping forever', () => {
    // Sized by code, never configured: a bad size is a bug, an assertion.
    assert.throws(() => new OutboundBuffer(0), /^Error: invariant/);
    assert.throws(() => new OutboundBuffer(-5), /^Error: invariant/);
    const one = new OutboundBuffer(1);
    one.append(makeFlags(FrameKind.Request, Codec.None, false), 1, Buffer.from('grows'));
    assert.equal(one.take().length, FRAME_HEADER_BYTES + 5);
  });

  test('one frame much larger than the initial size', () => {
    const out = new OutboundBuffer(16);
    const payload = bytesOf(3, 100_000);
    const flags = makeFlags(FrameKind.Response, Codec.None, true);
    out.append(flags, 77, payload);
    assert.ok(out.take().equals(encodeFrame(flags, 77, payload)));
  });
});

describe('OutboundBuffer: payloads encoded in place', () => {
  /** Writes `payload` through the writer, as a protobuf encoder would, in small pieces. */
  const writeBytes = (writer: PayloadWriter, payload: Buffer) => {
    for (let i = 0; i < payload.length; i += 7) writer.raw(payload.subarray(i, i + 7));
  };

  // Small frames only: turns use up slabs and fresh ones start. With large frames: a frame
  // grows the slab in the middle of its payload.
  for (const { name, seed, largeShare } of [
    { name: 'small frames, slabs used up', seed: 0x51ab_0001, largeShare: 0 },
    { name: 'large frames grow the slab mid-payload', seed: 0x51ab_0002, largeShare: 0.02 },
  ]) {
    test(`appendEncoded writes exactly what encodeFrame writes (${name})`, () => {
      const random = seededRandom(seed);
      const out = new OutboundBuffer(256);
      const taken: Buffer[] = [];
      const copies: Buffer[] = [];
      const expected: Buffer[] = [];
      for (let i = 0; i < 3000; i++) {
        const flags = makeFlags(KINDS[random.int(KINDS.length)]!, Codec.None, random.next() < 0.5);
        const messageId = MESSAGE_IDS[random.int(MESSAGE_IDS.length)]!;
        const size = random.next() < largeShare ? 1000 + random.int(5000) : random.int(60);
        const payload = bytesOf(seed + i, size);
        if (random.next() < 0.2) out.append(flags, messageId, payload);
        else assert.equal(out.appendEncoded(flags, messageId, writeBytes, payload), size);
        expected.push(encodeFrame(flags, messageId, payload));
        if (random.next() < 0.3) {
          const turn = out.take();
          taken.push(turn);
          copies.push(Buffer.from(turn));
        }
      }
      const last = out.take();
      taken.push(last);
      copies.push(Buffer.from(last));
      assert.equal(out.bytes, 0);
      // Nothing handed out was written over by later frames.
      for (const [i, turn] of taken.entries()) {
        assert.ok(turn.equals(copies[i]!), `seed ${seed}: turn ${i} changed`);
      }
      assert.ok(Buffer.concat(taken).equals(Buffer.concat(expected)), `seed ${seed}`);
      assert.equal(decodeAll(new FrameDecoder(), taken).length, expected.length);
    });
  }

  test('lastPayload is the payload just encoded; dropLast removes that frame only', () => {
    const out = new OutboundBuffer(64);
    const flags = makeFlags(FrameKind.Request, Codec.None, true);
    out.appendEncoded(flags, 1, writeBytes, Buffer.from('kept'));
    out.appendEncoded(flags, 2, writeBytes, Buffer.from('replaced by a packed form'));
    assert.equal(out.lastPayload().toString(), 'replaced by a packed form');
    out.dropLast();
    out.append(makeFlags(FrameKind.Request, Codec.Lz4, true), 2, Buffer.from('packed'));
    const frames = decodeAll(new FrameDecoder(), [out.take()]);
    assert.deepEqual(
      frames.map((f) => [f.messageId, flagsCodec(f.flags), f.payload.toString()]),
      [
        [1, Codec.None, 'kept'],
        [2, Codec.Lz4, 'packed'],
      ],
    );
    assert.throws(() => out.dropLast(), /invariant/);
    assert.throws(() => out.lastPayload(), /invariant/);
  });

  test('an encoder that throws leaves nothing appended', () => {
    const out = new OutboundBuffer(32);
    const flags = makeFlags(FrameKind.Request, Codec.None, false);
    out.appendEncoded(flags, 1, writeBytes, Buffer.from('before'));
    const before = out.bytes;
    assert.throws(
      () =>
        out.appendEncoded(
          flags,
          2,
          (writer: PayloadWriter) => {
            writer.uint32(10).fork();
            writer.raw(Buffer.alloc(100, 1));
            throw new Error('cannot encode');
          },
          undefined,
        ),
      /cannot encode/,
    );
    assert.equal(out.bytes, before);
    out.appendEncoded(flags, 3, writeBytes, Buffer.from('after'));
    const frames = decodeAll(new FrameDecoder(), [out.take()]);
    assert.deepEqual(
      frames.map((f) => [f.messageId, f.payload.toString()]),
      [
        [1, 'before'],
        [3, 'after'],
      ],
    );
  });
});

describe('FrameDecoder.pushRanges', () => {
  test('hands out the same frames as push, as ranges of their source', () => {
    const seed = 0x0a11_0c8e;
    const random = seededRandom(seed);
    const wire = Buffer.concat(
      Array.from({ length: 300 }, (_, i) =>
        encodeFrame(
          makeFlags(KINDS[random.int(KINDS.length)]!, Codec.None, random.next() < 0.5),
          MESSAGE_IDS[random.int(MESSAGE_IDS.length)]!,
          bytesOf(seed + i, random.int(300)),
        ),
      ),
    );
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < wire.length; ) {
      const size = 1 + random.int(700);
      chunks.push(wire.subarray(offset, offset + size));
      offset += size;
    }
    const viaPush = decodeAll(new FrameDecoder(), chunks);
    const viaRanges: Frame[] = [];
    const decoder = new FrameDecoder();
    for (const chunk of chunks) {
      decoder.pushRanges(chunk, (flags, messageId, source, start, end) => {
        viaRanges.push({ flags, messageId, payload: Buffer.from(source.subarray(start, end)) });
      });
    }
    assert.equal(viaRanges.length, 300, `seed ${seed}`);
    assert.deepEqual(viaRanges, viaPush, `seed ${seed}`);
  });
});
