import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { zstdCompressSync } from 'node:zlib';
import { compressSync as lz4Compress } from 'lz4-napi';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  COMPRESS_THRESHOLD_BYTES_DEFAULT,
  codecName,
  compressPayload,
  decompressPayload,
  negotiateCodec,
  parseCodecName,
  SUPPORTED_CODECS,
} from '../../src/core/protocol/compression.ts';
import { Codec } from '../../src/core/protocol/frame.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';

const MiB = 1024 * 1024;
const LIMIT = 16 * MiB;
const SEED = 0xc0de_c0de;

function throwsCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isRdbnetError(error, code), `expected ${code}, got ${String(error)}`);
    return true;
  };
}

function randomBytes(seed: number, length: number): Buffer {
  const random = seededRandom(seed);
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = random.int(256);
  return out;
}

/** Text-like data: a small vocabulary of words in seeded order, so it compresses well. */
function compressible(seed: number, length: number): Buffer {
  const random = seededRandom(seed);
  const words = ['node', 'raft', 'term', 'leader', 'commit', 'index', 'heartbeat', 'ok', '\n'];
  const parts: string[] = [];
  let size = 0;
  while (size < length) {
    const word = words[random.int(words.length)]!;
    parts.push(word, ' ');
    size += word.length + 1;
  }
  return Buffer.from(parts.join('')).subarray(0, length);
}

describe('codec names', () => {
  test('round trip and reject unknown names', () => {
    for (const codec of [Codec.None, Codec.Lz4, Codec.Zstd]) {
      assert.equal(parseCodecName(codecName(codec)), codec);
    }
    assert.deepEqual([Codec.None, Codec.Lz4, Codec.Zstd].map(codecName), ['none', 'lz4', 'zstd']);
    for (const name of ['', 'LZ4', 'gzip', 'zstd ']) {
      assert.throws(() => parseCodecName(name), throwsCode(ErrorCode.Usage), name);
    }
  });
});

describe('negotiateCodec', () => {
  test('picks our first preference that the peer offers', () => {
    assert.deepEqual(SUPPORTED_CODECS, [Codec.Lz4, Codec.Zstd, Codec.None]);
    assert.equal(negotiateCodec([Codec.None, Codec.Zstd, Codec.Lz4]), Codec.Lz4);
    assert.equal(negotiateCodec([Codec.Zstd, Codec.None]), Codec.Zstd);
    assert.equal(negotiateCodec([Codec.Zstd]), Codec.Zstd);
    assert.equal(negotiateCodec([Codec.None]), Codec.None);
    assert.equal(negotiateCodec([]), Codec.None);
    assert.equal(negotiateCodec([Codec.Lz4, Codec.Zstd], [Codec.Zstd, Codec.Lz4]), Codec.Zstd);
    assert.equal(negotiateCodec([Codec.Lz4], [Codec.Zstd, Codec.None]), Codec.None);
    // Codec numbers from a newer peer that this build does not know are ignored.
    assert.equal(negotiateCodec([7 as Codec, 3 as Codec, Codec.Zstd]), Codec.Zstd);
  });
});

describe('round trips', () => {
  const data = compressible(SEED, 64 * 1024);

  for (const codec of [Codec.Lz4, Codec.Zstd]) {
    test(`${codecName(codec)}: compressible 64 KiB shrinks and round trips`, () => {
      const packed = compressPayload(codec, data, COMPRESS_THRESHOLD_BYTES_DEFAULT);
      assert.equal(packed.codec, codec);
      assert.ok(
        packed.payload.length < data.length / 2,
        `${codecName(codec)} packed 64 KiB into ${packed.payload.length} bytes`,
      );
      const unpacked = decompressPayload(codec, Buffer.from(packed.payload), LIMIT);
      assert.ok(unpacked.equals(data), `seed ${SEED}`);
    });

    test(`${codecName(codec)}: incompressible data is sent as codec none, unchanged`, () => {
      const noise = randomBytes(SEED, 64 * 1024);
      const packed = compressPayload(codec, noise, COMPRESS_THRESHOLD_BYTES_DEFAULT);
      assert.equal(packed.codec, Codec.None, `seed ${SEED}`);
      assert.equal(packed.payload, noise);
      assert.equal(decompressPayload(Codec.None, noise, LIMIT), noise);
    });

    test(`${codecName(codec)}: below the threshold is sent as codec none`, () => {
      const small = compressible(SEED, COMPRESS_THRESHOLD_BYTES_DEFAULT - 1);
      const packed = compressPayload(codec, small, COMPRESS_THRESHOLD_BYTES_DEFAULT);
      assert.equal(packed.codec, Codec.None);
      assert.equal(packed.payload, small);
      // At the threshold it is compressed.
      const atThreshold = compressible(SEED, COMPRESS_THRESHOLD_BYTES_DEFAULT);
      assert.equal(
        compressPayload(codec, atThreshold, COMPRESS_THRESHOLD_BYTES_DEFAULT).codec,
        codec,
      );
    });

    test(`${codecName(codec)}: a view into a larger buffer compresses only the view`, () => {
      const backing = Buffer.concat([Buffer.alloc(100, 0xee), data, Buffer.alloc(100, 0xdd)]);
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 100, data.length);
      const packed = compressPayload(codec, view, 1024);
      assert.equal(packed.codec, codec);
      assert.ok(decompressPayload(codec, Buffer.from(packed.payload), LIMIT).equals(data));
    });

    test(`${codecName(codec)}: empty and tiny payloads with threshold 0`, () => {
      for (const payload of [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(40, 1)]) {
        const packed = compressPayload(codec, payload, 0);
        const out = decompressPayload(packed.codec, Buffer.from(packed.payload), LIMIT);
        assert.ok(out.equals(payload), `${payload.length} bytes`);
      }
    });
  }

  test('codec none never compresses', () => {
    const packed = compressPayload(Codec.None, data, 0);
    assert.equal(packed.codec, Codec.None);
    assert.equal(packed.payload, data);
  });

  test('decoding exactly at the limit is allowed', () => {
    const exact = Buffer.alloc(4096, 0x61);
    const lz4 = compressPayload(Codec.Lz4, exact, 0);
    assert.equal(decompressPayload(Codec.Lz4, Buffer.from(lz4.payload), 4096).length, 4096);
    const zstd = compressPayload(Codec.Zstd, exact, 0);
    assert.equal(decompressPayload(Codec.Zstd, Buffer.from(zstd.payload), 4096).length, 4096);
  });
});

describe('decompression limits', () => {
  test('lz4: a size prefix over the limit is refused before decoding', () => {
    // A genuine block of limit + 1 bytes: it would decode fine, so only the prefix check stops it.
    const limit = 4096;
    const block = lz4Compress(Buffer.alloc(limit + 1, 0x41));
    assert.equal(block.readUInt32LE(0), limit + 1);
    assert.throws(
      () => decompressPayload(Codec.Lz4, block, limit),
      throwsCode(ErrorCode.FrameTooLarge),
    );
  });

  test('lz4: a 4 GiB size prefix is refused without allocating it', () => {
    const hostile = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.alloc(64, 0x11)]);
    const before = process.memoryUsage();
    const started = performance.now();
    for (let i = 0; i < 100; i++) {
      assert.throws(
        () => decompressPayload(Codec.Lz4, hostile, LIMIT),
        throwsCode(ErrorCode.FrameTooLarge),
      );
    }
    const after = process.memoryUsage();
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 500, `100 refusals took ${elapsed} ms`);
    assert.ok(
      after.arrayBuffers - before.arrayBuffers < 64 * MiB,
      `arrayBuffers grew by ${after.arrayBuffers - before.arrayBuffers} bytes`,
    );
  });

  test('zstd: a bomb of 20 MiB of zeros is refused at a 16 MiB limit', () => {
    const bomb = zstdCompressSync(Buffer.alloc(20 * MiB));
    assert.ok(bomb.length < 64 * 1024, `bomb is ${bomb.length} bytes`);
    assert.throws(
      () => decompressPayload(Codec.Zstd, bomb, LIMIT),
      throwsCode(ErrorCode.FrameTooLarge),
    );
    // The same data just under the limit decodes.
    const fits = zstdCompressSync(Buffer.alloc(LIMIT));
    assert.equal(decompressPayload(Codec.Zstd, fits, LIMIT).length, LIMIT);
  });

  test('zstd: a small limit is enforced too', () => {
    const packed = zstdCompressSync(Buffer.alloc(4097, 0x42));
    assert.throws(
      () => decompressPayload(Codec.Zstd, packed, 4096),
      throwsCode(ErrorCode.FrameTooLarge),
    );
  });
});

describe('corrupt input', () => {
  test('lz4: shorter than the size prefix', () => {
    for (const length of [0, 1, 3]) {
      assert.throws(
        () => decompressPayload(Codec.Lz4, Buffer.alloc(length), LIMIT),
        throwsCode(ErrorCode.DecompressFailed),
        `${length} bytes`,
      );
    }
  });

  test('lz4: garbage after a plausible prefix', () => {
    const garbage = Buffer.concat([Buffer.from([0x00, 0x10, 0, 0]), randomBytes(SEED, 200)]);
    garbage[4] = 0xff; // a literal run that reaches past the input
    assert.throws(
      () => decompressPayload(Codec.Lz4, garbage, LIMIT),
      throwsCode(ErrorCode.DecompressFailed),
    );
  });

  test('lz4: a prefix that understates the decoded size', () => {
    const block = lz4Compress(compressible(SEED, 10_000));
    block.writeUInt32LE(100, 0);
    assert.throws(
      () => decompressPayload(Codec.Lz4, block, LIMIT),
      throwsCode(ErrorCode.DecompressFailed),
    );
  });

  test('lz4: a truncated block', () => {
    const block = lz4Compress(compressible(SEED, 10_000));
    assert.throws(
      () => decompressPayload(Codec.Lz4, block.subarray(0, block.length - 7), LIMIT),
      throwsCode(ErrorCode.DecompressFailed),
    );
  });

  test('zstd: garbage, truncated and bit-flipped frames', () => {
    const packed = zstdCompressSync(compressible(SEED, 10_000));
    const flipped = Buffer.from(packed);
    flipped[0]! ^= 0xff; // magic number
    for (const [name, payload] of [
      ['garbage', randomBytes(SEED, 100)],
      ['truncated', packed.subarray(0, packed.length - 5)],
      ['bad magic', flipped],
      ['empty', Buffer.alloc(0)],
    ] as const) {
      assert.throws(
        () => decompressPayload(Codec.Zstd, payload, LIMIT),
        throwsCode(ErrorCode.DecompressFailed),
        name,
      );
    }
  });

  test('seeded random bytes never escape as anything but the two typed errors', () => {
    const random = seededRandom(SEED);
    const allowed = new Set<string>([ErrorCode.DecompressFailed, ErrorCode.FrameTooLarge]);
    for (let i = 0; i < 2000; i++) {
      const codec = i % 2 === 0 ? Codec.Lz4 : Codec.Zstd;
      const payload = randomBytes(SEED + i, random.int(300));
      try {
        const out = decompressPayload(codec, payload, 64 * 1024);
        assert.ok(out.length <= 64 * 1024, `seed ${SEED} case ${i}`);
      } catch (error) {
        assert.ok(
          isRdbnetError(error) && allowed.has(error.code),
          `seed ${SEED} case ${i}: ${String(error)}`,
        );
      }
    }
  });
});
