/**
 * Property and mutation fuzzing of everything that reads bytes from a peer before the
 * connection trusts it: FrameDecoder, decompressPayload, decodeEnvelope, acceptHello and
 * checkHelloAck. Inputs are valid frames and messages mutated by a seeded fuzzer (bit flips,
 * truncation, duplication, splicing, hostile length prefixes, random chunking) plus pure
 * random bytes, and fast-check properties with a fixed seed.
 *
 * Replay a failure with RDBNET_FUZZ_SEED=<seed printed in the message>.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { ErrorCode, RdbnetError } from '../../src/core/errors.ts';
import { compressPayload, decompressPayload } from '../../src/core/protocol/compression.ts';
import {
  acceptHello,
  Codec,
  checkHelloAck,
  decodeEnvelope,
  decodeEnvelopeAt,
  ENVELOPE_KINDS,
  type Envelope,
  encodeEnvelope,
  encodeEnvelopeTransient,
  encodeFrame,
  FRAME_BYTES_MAX,
  FrameDecoder,
  FrameKind,
  flagsCodec,
  type Hello,
  type HelloAck,
  type LocalEndpoint,
  makeFlags,
  makeHello,
  OutboundBuffer,
  PROTO_PATH,
  RoleCode,
  writeEnvelope,
} from '../../src/core/protocol/index.ts';
import { type Random, seededRandom } from '../../src/core/runtime/index.ts';
import type { Identity } from '../../src/core/security/index.ts';

const SEED = Number(process.env['RDBNET_FUZZ_SEED'] ?? 0x2f17_a9c3) >>> 0;
const SMALL_MAX = 64 * 1024;
const LIMITS = [SMALL_MAX, FRAME_BYTES_MAX] as const;
const INPUTS_MIN = 100_000;
const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

const CLUSTER = 'c1';
const LOCALS: LocalEndpoint[] = [
  { id: 'n1', clusterId: CLUSTER, role: 'node', softwareVersion: '0.1.0' },
  { id: 'n1', clusterId: CLUSTER, role: 'node', softwareVersion: '0.1.0', codecs: [Codec.None] },
  { id: 'n1', clusterId: CLUSTER, role: 'node', softwareVersion: '0.1.0', codecs: [Codec.Zstd] },
];
const DIALERS: LocalEndpoint[] = [
  { id: 'admin', clusterId: CLUSTER, role: 'client', softwareVersion: '0.1.0' },
  { id: 'admin', clusterId: '', role: 'client', softwareVersion: '0.1.0' },
  { id: 'n2', clusterId: CLUSTER, role: 'node', softwareVersion: '0.1.0', codecs: [Codec.None] },
];
const IDENTITIES: (Identity | null)[] = [
  null,
  { cluster: CLUSTER, role: 'node', id: 'n2' },
  { cluster: CLUSTER, role: 'client', id: 'admin' },
  { cluster: 'c2', role: 'node', id: 'n2' },
  { cluster: CLUSTER, role: 'node', id: 'n1' },
];

/** Tallies of what the fuzzer reached, so a fuzzer that only hits the first check fails. */
class Coverage {
  readonly counts = new Map<string, number>();
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}

function expectTyped(error: unknown, context: string): RdbnetError {
  if (!(error instanceof RdbnetError) || !KNOWN_CODES.has(error.code)) {
    assert.fail(
      `seed ${SEED}: ${context}: threw something other than a typed error: ${inspect(error)}`,
    );
  }
  return error;
}

// ---- corpus ---------------------------------------------------------------------------

/** What decoding gave, as plain data: the kind and body, or the error code. */
function attempt(decode: () => { kind: string; body: unknown }): unknown {
  try {
    const { kind, body } = decode();
    return { kind, body: JSON.parse(JSON.stringify(body)) };
  } catch (error) {
    return { code: (error as RdbnetError).code };
  }
}

function bytes(random: Random, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = random.int(256);
  return out;
}

function envelopes(random: Random): Envelope[] {
  const text = Buffer.from('raft term leader commit index heartbeat '.repeat(60));
  return [
    { hello: makeHello(DIALERS[0]!) },
    { hello: makeHello(DIALERS[1]!) },
    { hello: makeHello({ ...DIALERS[2]!, codecs: [Codec.Zstd, Codec.Lz4] }) },
    { hello: { ...makeHello(DIALERS[0]!), protocolVersion: 3, minProtocolVersion: 2 } },
    {
      helloAck: {
        protocolVersion: 1,
        peerId: 'n1',
        clusterId: CLUSTER,
        codec: Codec.Lz4,
        softwareVersion: '0.1.0',
      },
    },
    { error: { code: ErrorCode.ClusterMismatch, message: 'wrong cluster' } },
    { statusRequest: {} },
    {
      statusReply: {
        id: 'n1',
        address: '127.0.0.1:7000',
        version: '0.1.0',
        protocolVersion: 1,
        uptimeMs: 123_456,
        state: 'leader',
        clusterId: CLUSTER,
        startedAtMs: 1_700_000_000_000,
        pid: 4242,
        tls: true,
        connections: 3,
        counters: { framesIn: 10, framesOut: 12, RDB_FRAME_TOO_LARGE: 1 },
      },
    },
    { healthRequest: {} },
    {
      healthReply: {
        status: 'ok',
        quorum: true,
        nodes: [
          {
            id: 'n2',
            address: '127.0.0.1:7001',
            state: 'follower',
            phi: 0.5,
            lastHeartbeatMs: 12,
            live: true,
            ready: true,
            problems: ['slow disk'],
            certDaysLeft: 30,
            hasCertificate: true,
            score: 0.9,
          },
        ],
      },
    },
    { echoRequest: { data: bytes(random, 40) } },
    { echoRequest: { data: text } },
    { echoReply: { data: text.subarray(0, 1500) } },
    { echoReply: { data: new Uint8Array(0) } },
  ];
}

interface Stream {
  bytes: Buffer;
  /** Where each frame starts, for length-prefix mutations. */
  starts: number[];
  frames: { flags: number; messageId: number; payload: Buffer }[];
}

/** Each payload as a connection would send it under each codec and threshold, computed once. */
type Packed = { codec: Codec; payload: Uint8Array }[][][];

function packAll(payloads: readonly Uint8Array[]): Packed {
  return payloads.map((payload) =>
    [Codec.None, Codec.Lz4, Codec.Zstd].map((codec) =>
      [0, 1024].map((threshold) => compressPayload(codec, payload, threshold)),
    ),
  );
}

function randomFrame(random: Random, packed: Packed) {
  const variants = packed[random.int(packed.length)]!;
  const { codec, payload } = variants[random.int(3)]![random.int(2)]!;
  const kind = random.int(4) as FrameKind;
  const flags = makeFlags(kind, codec, random.next() < 0.6);
  const ids = [0, 1, random.int(1000), 2 ** 32 + random.int(10), Number.MAX_SAFE_INTEGER];
  return { flags, messageId: ids[random.int(ids.length)]!, payload: Buffer.from(payload) };
}

function randomStream(random: Random, packed: Packed): Stream {
  const count = 1 + random.int(4);
  const frames = Array.from({ length: count }, () => randomFrame(random, packed));
  const parts: Buffer[] = [];
  const starts: number[] = [];
  let offset = 0;
  for (const frame of frames) {
    const encoded = encodeFrame(frame.flags, frame.messageId, frame.payload);
    starts.push(offset);
    parts.push(encoded);
    offset += encoded.length;
  }
  return { bytes: Buffer.concat(parts), starts, frames };
}

// ---- mutation -------------------------------------------------------------------------

function interestingLength(random: Random, frameBytesMax: number): number {
  const picks = [
    random.int(10),
    10 + random.int(8),
    frameBytesMax - 4,
    frameBytesMax - 3,
    frameBytesMax,
    SMALL_MAX - 3,
    FRAME_BYTES_MAX - 3,
    0x7fff_ffff,
    0xffff_ffff,
    random.int(0x1_0000_0000),
    10 + random.int(300),
  ];
  return picks[random.int(picks.length)]! >>> 0;
}

function mutateOnce(random: Random, input: Buffer, starts: number[], other: Buffer): Buffer {
  const length = input.length;
  const at = (extra = 0) => random.int(length + extra);
  switch (random.int(12)) {
    case 0: {
      const out = Buffer.from(input);
      const flips = 1 + random.int(8);
      for (let i = 0; i < flips && length > 0; i++) out[at()]! ^= 1 << random.int(8);
      return out;
    }
    case 1: {
      const out = Buffer.from(input);
      if (length > 0) out[at()] = random.int(256);
      return out;
    }
    case 2:
      return input.subarray(0, at(1));
    case 3:
      return input.subarray(at(1));
    case 4: {
      const a = at(1);
      const b = a + random.int(length - a + 1);
      const pos = at(1);
      return Buffer.concat([input.subarray(0, pos), input.subarray(a, b), input.subarray(pos)]);
    }
    case 5:
      return Buffer.concat([
        input.subarray(0, at(1)),
        other.subarray(random.int(other.length + 1)),
      ]);
    case 6: {
      const pos = at(1);
      return Buffer.concat([
        input.subarray(0, pos),
        bytes(random, 1 + random.int(32)),
        input.subarray(pos),
      ]);
    }
    case 7: {
      const a = at(1);
      return Buffer.concat([input.subarray(0, a), input.subarray(a + random.int(length - a + 1))]);
    }
    case 8: {
      const out = Buffer.from(input);
      const start = starts[random.int(starts.length)] ?? 0;
      if (start + 4 <= length) {
        out.writeUInt32BE(interestingLength(random, LIMITS[random.int(2)]!), start);
      }
      return out;
    }
    case 9: {
      const out = Buffer.from(input);
      const start = starts[random.int(starts.length)] ?? 0;
      if (start + 6 > length) return out;
      const current = out.readUInt16BE(start + 4);
      const choice = random.int(3);
      const flags =
        choice === 0
          ? random.int(0x10000)
          : choice === 1
            ? current | (1 << random.int(16))
            : current | 0b1100; // codec 3, which does not exist
      out.writeUInt16BE(flags & 0xffff, start + 4);
      return out;
    }
    case 10: {
      const out = Buffer.from(input);
      const start = starts[random.int(starts.length)] ?? 0;
      const highs = [0x1f_ffff, 0x20_0000, 0xffff_ffff, random.int(0x1_0000_0000)];
      if (start + 10 <= length) out.writeUInt32BE(highs[random.int(highs.length)]!, start + 6);
      return out;
    }
    default:
      return Buffer.concat([input, other]);
  }
}

function mutate(random: Random, input: Buffer, starts: number[], other: Buffer): Buffer {
  let out = input;
  const rounds = 1 + random.int(3);
  for (let i = 0; i < rounds; i++) out = mutateOnce(random, out, starts, other);
  return out;
}

function randomChunks(random: Random, stream: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  const style = random.int(4);
  for (let offset = 0; offset < stream.length; ) {
    const size =
      style === 0
        ? 1
        : style === 1
          ? 1 + random.int(8)
          : style === 2
            ? random.int(64)
            : stream.length;
    chunks.push(stream.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

// ---- reference decoder ----------------------------------------------------------------

interface Reference {
  frames: { flags: number; messageId: number; length: number; payload: Buffer }[];
  error: string | null;
  rest: number;
}

/** A whole-buffer decoder written from the frame layout in frame.ts, for differential checks. */
function referenceDecode(stream: Buffer, frameBytesMax: number): Reference {
  const frames: Reference['frames'] = [];
  let offset = 0;
  const fail = (error: string): Reference => ({ frames, error, rest: 0 });
  while (stream.length - offset >= 4) {
    const length = stream.readUInt32BE(offset);
    if (length < 10) return fail(ErrorCode.FrameMalformed);
    if (4 + length > frameBytesMax) return fail(ErrorCode.FrameTooLarge);
    if (stream.length - offset < 4 + length) break;
    const flags = stream.readUInt16BE(offset + 4);
    // Bits 5-8 (stream chunk, priority) pass the decoder; the connection judges them.
    if ((flags & 0xfe00) !== 0) return fail(ErrorCode.FrameMalformed);
    if (((flags >> 2) & 0b11) === 3) return fail(ErrorCode.CodecUnsupported);
    const high = stream.readUInt32BE(offset + 6);
    if (high >= 2 ** 21) return fail(ErrorCode.FrameMalformed);
    const messageId = high * 2 ** 32 + stream.readUInt32BE(offset + 10);
    let end = offset + 4 + length;
    if ((flags & 0b1_0000) !== 0) {
      if (length < 14) return fail(ErrorCode.FrameMalformed);
      end -= 4;
      if (crc32(stream.subarray(offset + 14, end)) !== stream.readUInt32BE(end)) {
        return fail(ErrorCode.ChecksumMismatch);
      }
    }
    frames.push({ flags, messageId, length, payload: stream.subarray(offset + 14, end) });
    offset += 4 + length;
  }
  return { frames, error: null, rest: stream.length - offset };
}

// ---- the pipeline a connection runs on each frame --------------------------------------

function handleMessage(
  random: Random,
  body: DecodedBody,
  coverage: Coverage,
  context: string,
): void {
  if (body.kind === 'hello') {
    const local = LOCALS[random.int(LOCALS.length)]!;
    const certified = IDENTITIES[random.int(IDENTITIES.length)]!;
    checkAccept(body.body as Hello, local, certified, coverage, context);
  } else if (body.kind === 'helloAck') {
    const local = DIALERS[random.int(DIALERS.length)]!;
    const certified = IDENTITIES[random.int(IDENTITIES.length)]!;
    try {
      const peer = checkHelloAck(body.body as HelloAck, local, certified);
      assert.equal(peer.role, 'node', `seed ${SEED}: ${context}`);
      coverage.add('ack accepted');
    } catch (error) {
      coverage.add(`ack ${expectTyped(error, `${context}: checkHelloAck`).code}`);
    }
  }
}

type DecodedBody = ReturnType<typeof decodeEnvelope>;

function checkAccept(
  hello: Hello,
  local: LocalEndpoint,
  certified: Identity | null,
  coverage: Coverage,
  context: string,
): void {
  coverage.add('acceptHello');
  let result: ReturnType<typeof acceptHello>;
  try {
    result = acceptHello(hello, local, certified);
  } catch (error) {
    coverage.add(`hello ${expectTyped(error, `${context}: acceptHello`).code}`);
    return;
  }
  coverage.add('hello accepted');
  const { ack, peer } = result;
  const where = `seed ${SEED}: ${context}: accepted ${inspect(hello)}`;
  assert.equal(ack.protocolVersion, 1, where);
  assert.ok(hello.protocolVersion >= 1 && hello.minProtocolVersion <= 1, where);
  assert.equal(ack.clusterId, local.clusterId, where);
  assert.equal(peer.clusterId, local.clusterId, where);
  assert.ok(hello.peerId !== '' && peer.id === hello.peerId, where);
  assert.ok(
    (hello.role === RoleCode.Node && peer.role === 'node') ||
      (hello.role === RoleCode.Client && peer.role === 'client'),
    where,
  );
  assert.ok(
    hello.clusterId === local.clusterId || (peer.role === 'client' && hello.clusterId === ''),
    where,
  );
  const ours = local.codecs ?? [Codec.Lz4, Codec.Zstd, Codec.None];
  assert.ok(
    ack.codec === Codec.None || (ours.includes(ack.codec) && hello.codecs.includes(ack.codec)),
    where,
  );
  assert.equal(peer.authenticated, certified !== null, where);
  if (certified !== null) {
    assert.equal(certified.cluster, local.clusterId, where);
    assert.equal(certified.role, peer.role, where);
    assert.equal(certified.id, peer.id, where);
  }
}

function handlePayload(
  random: Random,
  flags: number,
  payload: Buffer,
  frameBytesMax: number,
  coverage: Coverage,
  context: string,
): void {
  let decoded: DecodedBody;
  try {
    const raw = decompressPayload(flagsCodec(flags), payload, frameBytesMax);
    assert.ok(raw.length <= frameBytesMax, `seed ${SEED}: ${context}: decoded ${raw.length} bytes`);
    decoded = decodeEnvelope(raw);
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    coverage.add(`payload ${expectTyped(error, `${context}: payload`).code}`);
    return;
  }
  assert.ok(ENVELOPE_KINDS.has(decoded.kind), `seed ${SEED}: ${context}: kind ${decoded.kind}`);
  coverage.add('envelope decoded');
  handleMessage(random, decoded, coverage, context);
}

/**
 * Feeds one stream in random chunks to a decoder and checks it against the reference:
 * same frames, same error code, never more than frameBytesMax held.
 */
function feed(
  random: Random,
  stream: Buffer,
  frameBytesMax: number,
  coverage: Coverage,
  context: string,
): Reference {
  const reference = referenceDecode(stream, frameBytesMax);
  const decoder = new FrameDecoder({ frameBytesMax });
  let delivered = 0;
  let thrown: RdbnetError | null = null;
  const where = () => `seed ${SEED}: ${context} (max ${frameBytesMax})`;
  for (const chunk of randomChunks(random, stream)) {
    try {
      decoder.push(chunk, (flags, messageId, payload) => {
        const expected = reference.frames[delivered];
        assert.ok(expected !== undefined, `${where()}: frame ${delivered} should not exist`);
        assert.equal(flags, expected.flags, where());
        assert.equal(messageId, expected.messageId, where());
        // The payload is exactly what the length prefix leaves after header and checksum.
        const overhead = 10 + (flags & 0b1_0000 ? 4 : 0);
        assert.equal(payload.length, expected.length - overhead, `${where()}: payload length`);
        assert.ok(payload.equals(expected.payload), `${where()}: payload of frame ${delivered}`);
        delivered++;
        coverage.add('frame delivered');
        handlePayload(random, flags, payload, frameBytesMax, coverage, context);
      });
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error;
      thrown = expectTyped(error, `${context}: FrameDecoder.push`);
    }
    assert.ok(
      decoder.bufferedBytes <= frameBytesMax,
      `${where()}: bufferedBytes ${decoder.bufferedBytes} over ${frameBytesMax}`,
    );
    if (thrown !== null) break;
  }
  assert.equal(delivered, reference.frames.length, `${where()}: frames delivered`);
  assert.equal(thrown?.code ?? null, reference.error, `${where()}: error`);
  if (thrown === null) {
    assert.equal(decoder.bufferedBytes, reference.rest, `${where()}: bytes held at the end`);
  }
  coverage.add(thrown === null ? 'stream ok' : `stream ${thrown.code}`);
  return reference;
}

// ---- tests ----------------------------------------------------------------------------

describe(`protocol fuzzing (seed ${SEED})`, () => {
  let inputs = 0;
  const coverage = new Coverage();

  test('mutated and random frame streams, through the whole inbound pipeline', () => {
    const random = seededRandom(SEED);
    const payloads = envelopes(random).map(encodeEnvelope);
    const packed = packAll(payloads);
    const rounds = 30_000;
    for (let round = 0; round < rounds; round++) {
      const base = randomStream(random, packed);
      const other = randomStream(random, packed).bytes;
      const style = random.int(10);
      let stream: Buffer;
      if (style === 0) {
        stream = base.bytes; // unmutated: every frame must come out intact
      } else if (style === 1) {
        stream = bytes(random, random.int(200)); // pure noise
      } else if (style === 2) {
        // Damage the message inside an otherwise valid frame (checksum recomputed), or the
        // compressed bytes of a compressed one: reaches decompressPayload and decodeEnvelope.
        const variant = packed[random.int(packed.length)]![random.int(3)]![0]!;
        const damaged = mutate(random, Buffer.from(variant.payload), [], other);
        const flags = makeFlags(FrameKind.Request, variant.codec, random.next() < 0.5);
        stream = encodeFrame(flags, random.int(100), damaged);
      } else {
        stream = mutate(random, base.bytes, base.starts, other);
      }
      for (const frameBytesMax of LIMITS) {
        const context = `round ${round} style ${style} stream ${stream.toString('hex').slice(0, 200)}`;
        const reference = feed(random, stream, frameBytesMax, coverage, context);
        inputs++;
        if (style === 0) {
          assert.equal(reference.error, null, context);
          assert.equal(reference.frames.length, base.frames.length, context);
          base.frames.forEach((frame, i) => {
            assert.ok(reference.frames[i]!.payload.equals(frame.payload), `${context} frame ${i}`);
            assert.equal(reference.frames[i]!.messageId, frame.messageId, `${context} frame ${i}`);
          });
        }
      }
    }
    for (const code of [
      ErrorCode.FrameTooLarge,
      ErrorCode.FrameMalformed,
      ErrorCode.ChecksumMismatch,
      ErrorCode.CodecUnsupported,
    ]) {
      assert.ok(coverage.get(`stream ${code}`) > 50, `seed ${SEED}: decoder never hit ${code}`);
    }
    assert.ok(coverage.get('stream ok') > 1000);
    assert.ok(coverage.get('frame delivered') > 10_000);
    assert.ok(coverage.get(`payload ${ErrorCode.MessageMalformed}`) > 50);
    assert.ok(coverage.get(`payload ${ErrorCode.DecompressFailed}`) > 50);
    assert.ok(coverage.get('hello accepted') > 100);
  });

  test('mutated envelopes straight into decodeEnvelope, acceptHello and checkHelloAck', () => {
    const random = seededRandom(SEED ^ 0x9e37_79b9);
    const payloads = envelopes(random).map((e) => Buffer.from(encodeEnvelope(e)));
    const rounds = 25_000;
    for (let round = 0; round < rounds; round++) {
      const base = payloads[random.int(payloads.length)]!;
      const other = payloads[random.int(payloads.length)]!;
      const input =
        random.int(8) === 0 ? bytes(random, random.int(64)) : mutate(random, base, [0], other);
      const context = `envelope round ${round} input ${input.toString('hex').slice(0, 200)}`;
      inputs++;
      let decoded: DecodedBody;
      try {
        decoded = decodeEnvelope(input);
      } catch (error) {
        coverage.add(`envelope ${expectTyped(error, context).code}`);
        continue;
      }
      assert.ok(ENVELOPE_KINDS.has(decoded.kind), `seed ${SEED}: ${context}: kind ${decoded.kind}`);
      coverage.add(`envelope ${decoded.kind}`);
      handleMessage(random, decoded, coverage, context);
    }
    assert.ok(coverage.get(`envelope ${ErrorCode.MessageMalformed}`) > 100);
    assert.ok(coverage.get('envelope hello') > 100);
    assert.ok(coverage.get('envelope helloAck') > 10);
  });

  test('fast-check: arbitrary Hello messages, directly and over the wire', () => {
    const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
    const name = fc.oneof(
      { arbitrary: fc.constantFrom('', 'n1', 'n2', 'admin', CLUSTER, 'c2'), weight: 4 },
      { arbitrary: fc.string({ maxLength: 12 }), weight: 1 },
    );
    // Weighted towards plausible values so that many hellos get past the first checks.
    const helloArb = fc.record({
      protocolVersion: fc.oneof(
        { arbitrary: fc.integer({ min: 1, max: 3 }), weight: 4 },
        { arbitrary: u32, weight: 1 },
      ),
      minProtocolVersion: fc.oneof(
        { arbitrary: fc.integer({ min: 0, max: 1 }), weight: 4 },
        { arbitrary: u32, weight: 1 },
      ),
      peerId: name,
      clusterId: fc.oneof({ arbitrary: fc.constant(CLUSTER), weight: 3 }, name),
      role: fc.oneof(
        { arbitrary: fc.constantFrom(RoleCode.Node, RoleCode.Client), weight: 4 },
        { arbitrary: fc.integer({ min: 0, max: 2 ** 31 - 1 }), weight: 1 },
      ) as fc.Arbitrary<RoleCode>,
      codecs: fc.array(fc.integer({ min: 0, max: 5 }) as fc.Arbitrary<Codec>, { maxLength: 5 }),
      softwareVersion: fc.string({ maxLength: 8 }),
    });
    let runs = 0;
    fc.assert(
      fc.property(
        helloArb,
        fc.nat(LOCALS.length - 1),
        fc.nat(IDENTITIES.length - 1),
        (hello: Hello, localIndex: number, identityIndex: number) => {
          runs++;
          const local = LOCALS[localIndex]!;
          const certified = IDENTITIES[identityIndex]!;
          checkAccept(hello, local, certified, coverage, 'fast-check hello');
          const wire = decodeEnvelope(encodeEnvelope({ hello }));
          assert.equal(wire.kind, 'hello');
          checkAccept(wire.body as Hello, local, certified, coverage, 'fast-check hello, wire');
        },
      ),
      { seed: SEED | 0, numRuns: 15_000 },
    );
    inputs += runs * 2;
    assert.ok(coverage.get('hello accepted') > 1000);
    for (const code of [
      ErrorCode.VersionIncompatible,
      ErrorCode.HandshakeRejected,
      ErrorCode.ClusterMismatch,
      ErrorCode.IdentityInvalid,
    ]) {
      assert.ok(coverage.get(`hello ${code}`) > 50, `seed ${SEED}: acceptHello never said ${code}`);
    }
  });

  test('fast-check: valid frames split anywhere come out whole', () => {
    const frameArb = fc.record({
      kind: fc.integer({ min: 0, max: 3 }),
      codec: fc.integer({ min: 0, max: 2 }),
      checksum: fc.boolean(),
      messageId: fc.oneof(
        fc.constantFrom(0, 1, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER),
        fc.maxSafeNat(),
      ),
      payload: fc.uint8Array({ maxLength: 300 }),
    });
    let runs = 0;
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 0, max: 64 }), { maxLength: 40 }),
        (frames, cuts) => {
          runs++;
          const stream = Buffer.concat(
            frames.map((f) =>
              encodeFrame(
                makeFlags(f.kind as FrameKind, f.codec as Codec, f.checksum),
                f.messageId,
                f.payload,
              ),
            ),
          );
          const decoder = new FrameDecoder({ frameBytesMax: SMALL_MAX });
          const out: { flags: number; messageId: number; payload: Buffer }[] = [];
          const onFrame = (flags: number, messageId: number, payload: Buffer) =>
            out.push({ flags, messageId, payload: Buffer.from(payload) });
          let offset = 0;
          for (const cut of cuts) {
            decoder.push(stream.subarray(offset, offset + cut), onFrame);
            offset += cut;
          }
          decoder.push(stream.subarray(offset), onFrame);
          assert.equal(out.length, frames.length);
          frames.forEach((f, i) => {
            assert.equal(
              out[i]!.flags,
              makeFlags(f.kind as FrameKind, f.codec as Codec, f.checksum),
            );
            assert.equal(out[i]!.messageId, f.messageId);
            assert.equal(out[i]!.payload.length, f.payload.length);
            assert.ok(out[i]!.payload.equals(f.payload));
          });
          assert.equal(decoder.bufferedBytes, 0);
        },
      ),
      { seed: SEED | 0, numRuns: 3000 },
    );
    inputs += runs;
  });

  test('the reused-buffer encoder writes the same bytes as the plain one', () => {
    const random = seededRandom(SEED ^ 0x7a11);
    const corpus = envelopes(random);
    // A message over the 1 MiB scratch limit, then small ones again.
    corpus.push({ echoRequest: { data: bytes(random, 1_200_000) } }, ...envelopes(random));
    for (let round = 0; round < 3; round++) {
      corpus.forEach((envelope, i) => {
        const transient = Buffer.from(encodeEnvelopeTransient(envelope));
        const plain = Buffer.from(encodeEnvelope(envelope));
        assert.ok(transient.equals(plain), `seed ${SEED}: envelope ${i}, round ${round}`);
        assert.deepEqual(decodeEnvelope(transient).kind, Object.keys(envelope)[0]);
      });
    }
    fc.assert(
      fc.property(
        fc.string({ maxLength: 40 }),
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.integer({ min: 0, max: 2 }) as fc.Arbitrary<Codec>, { maxLength: 4 }),
        (peerId, data, codecs) => {
          for (const envelope of [
            { hello: { ...makeHello(LOCALS[0]!), peerId, codecs } },
            { echoReply: { data } },
          ] as Envelope[]) {
            const transient = Buffer.from(encodeEnvelopeTransient(envelope));
            assert.ok(transient.equals(Buffer.from(encodeEnvelope(envelope))));
          }
        },
      ),
      { seed: SEED | 0, numRuns: 2000 },
    );
  });

  test('frames encoded in place and payloads decoded in place match the plain codec', () => {
    const random = seededRandom(SEED ^ 0x1b9a);
    const corpus = [...envelopes(random), { echoRequest: { data: bytes(random, 300_000) } }];
    for (let round = 0; round < 3; round++) {
      const out = new OutboundBuffer(512);
      const expected: Buffer[] = [];
      corpus.forEach((envelope, i) => {
        const flags = makeFlags(FrameKind.Request, Codec.None, i % 2 === 0);
        out.appendEncoded(flags, i + 1, writeEnvelope, envelope);
        expected.push(encodeFrame(flags, i + 1, encodeEnvelope(envelope)));
      });
      const wire = out.take();
      assert.ok(wire.equals(Buffer.concat(expected)), `seed ${SEED}: round ${round}`);
      // Decoding each payload where it lies in the chunk gives what decoding a copy gives.
      let frames = 0;
      new FrameDecoder().pushRanges(wire, (_flags, _id, source, start, end) => {
        const inPlace = decodeEnvelopeAt(source, start, end);
        const copied = decodeEnvelope(Buffer.from(source.subarray(start, end)));
        assert.equal(inPlace.kind, copied.kind, `seed ${SEED}: frame ${frames}`);
        assert.deepEqual(
          JSON.parse(JSON.stringify(inPlace.body)),
          JSON.parse(JSON.stringify(copied.body)),
          `seed ${SEED}: frame ${frames}`,
        );
        frames++;
      });
      assert.equal(frames, corpus.length);
    }
    // Any range of random bytes: the same typed error, or the same message, either way.
    for (let i = 0; i < 3000; i++) {
      const source = bytes(random, 1 + random.int(200));
      const start = random.int(source.length);
      const end = start + random.int(source.length - start + 1);
      const viaRange = attempt(() => decodeEnvelopeAt(source, start, end));
      const viaCopy = attempt(() => decodeEnvelope(Buffer.from(source.subarray(start, end))));
      assert.deepEqual(viaRange, viaCopy, `seed ${SEED}: input ${i}`);
      inputs++;
    }
  });

  test('one-bytes-field messages, coded by hand, are byte for byte and object for object what protobufjs makes', () => {
    // The reference: protobufjs's own Envelope type, loaded apart from the one messages.ts uses.
    const reference = protobuf.loadSync(PROTO_PATH).lookupType('rdbnet.v1.Envelope');
    const kinds = reference.oneofs['body']!.fieldsArray.filter((field) => {
      const type = field.resolve().resolvedType as protobuf.Type;
      return type.fieldsArray.length === 1 && type.fieldsArray[0]!.type === 'bytes';
    });
    // The hand path covers these (the echo and gossip-stream messages among them); the test must see them.
    assert.deepEqual(
      kinds.map((field) => field.name),
      [
        'echoRequest',
        'echoReply',
        'proveIdentityRequest',
        'gossipStreamRequest',
        'gossipStreamReply',
      ],
    );
    const random = seededRandom(SEED ^ 0x0b17);
    const lengths = [1, 2, 127, 128, 129, 16_383, 16_384, 70_000, 2_097_152];
    const varint = (value: number): number[] => {
      const out: number[] = [];
      while (value > 0x7f) {
        out.push((value & 0x7f) | 0x80);
        value >>>= 7;
      }
      out.push(value);
      return out;
    };
    const field = (tag: number, content: Uint8Array): Buffer =>
      Buffer.concat([Buffer.from(varint(tag)), Buffer.from(varint(content.length)), content]);
    let compared = 0;
    for (const member of kinds) {
      const name = (member.resolve().resolvedType as protobuf.Type).fieldsArray[0]!.name;
      const tag = (member.id << 3) | 2;
      const decodedWithUnknowns = reference.decode(
        field(tag, Buffer.concat([field(0x0a, Buffer.from([1, 2])), Buffer.from([0x10, 0x05])])),
      ) as unknown as Record<string, Record<string, unknown>>;
      const prototypeOnly = Object.create({ [name]: Buffer.from([9, 9]) }) as object;
      // Encoding: what writeEnvelope (in place, into a frame) and encodeEnvelope (protobufjs) write.
      const bodies: unknown[] = [
        ...lengths.map((length) => ({ [name]: bytes(random, length) })),
        { [name]: new Uint8Array(bytes(random, 40)) },
        { [name]: Buffer.alloc(0) },
        { [name]: Buffer.from([1, 2, 3]).toString('base64') },
        {},
        decodedWithUnknowns[member.name],
        prototypeOnly,
      ];
      for (const body of bodies) {
        const envelope = { [member.name]: body } as unknown as Envelope;
        const expected = Buffer.from(reference.encode(envelope as never).finish());
        const out = new OutboundBuffer(64);
        out.appendEncoded(
          makeFlags(FrameKind.Request, Codec.None, false),
          1,
          writeEnvelope,
          envelope,
        );
        const wire = out.take();
        assert.ok(
          wire.subarray(14).equals(expected),
          `seed ${SEED}: ${member.name} body ${inspect(body, { maxArrayLength: 4 })}`,
        );
        compared++;
      }
      // Decoding: the hand path's shapes, and every way of leaving them, against protobufjs.
      const data = bytes(random, 300);
      const payloads: Buffer[] = [
        ...lengths.map((length) => field(tag, field(0x0a, bytes(random, length)))),
        field(tag, Buffer.alloc(0)),
        field(tag, field(0x0a, Buffer.alloc(0))),
        field(tag, Buffer.concat([field(0x0a, data), field(0x0a, data.subarray(0, 7))])),
        field(tag, Buffer.concat([field(0x0a, data), Buffer.from([0x10, 0x01])])),
        field(tag, Buffer.concat([Buffer.from([0x10, 0x01]), field(0x0a, data)])),
        // A length in a non-minimal varint, and one over four bytes long.
        field(tag, Buffer.concat([Buffer.from([0x0a, 0x85, 0x00]), data.subarray(0, 5)])),
        field(
          tag,
          Buffer.concat([Buffer.from([0x0a, 0x83, 0x80, 0x80, 0x80, 0x00]), data.subarray(0, 3)]),
        ),
        field(tag, Buffer.from([0x0a, 0x05, 1, 2])),
        field(tag, Buffer.from([0x0a])),
        field(tag, Buffer.from([0x0a, 0x80])),
        field(tag, Buffer.from([0x0b, 0x01, 0x02])),
      ];
      for (let i = 0; i < 400; i++) {
        const good = field(tag, field(0x0a, bytes(random, 1 + random.int(300))));
        const bad = Buffer.from(good);
        bad[random.int(bad.length)] = random.int(256);
        payloads.push(bad, good.subarray(0, random.int(good.length)));
      }
      for (const payload of payloads) {
        // In place, in the middle of a larger buffer, as frames are decoded off the socket.
        const source = Buffer.concat([Buffer.from([0xee, 0xee]), payload, Buffer.from([0xee])]);
        let ours: { kind: string; body: unknown } | { code: string };
        try {
          ours = decodeEnvelopeAt(source, 2, 2 + payload.length);
        } catch (error) {
          ours = { code: (error as RdbnetError).code };
        }
        let theirs: { kind: string; body: unknown } | { code: string };
        try {
          const message = reference.decode(payload) as unknown as Record<string, unknown>;
          const kind = message['body'] as string | undefined;
          theirs =
            kind === undefined
              ? { code: ErrorCode.MessageMalformed }
              : { kind, body: message[kind] };
        } catch {
          theirs = { code: ErrorCode.MessageMalformed };
        }
        const where = `seed ${SEED}: ${member.name} payload ${payload.subarray(0, 24).toString('hex')}`;
        compared++;
        if ('code' in theirs || 'code' in ours) {
          assert.deepEqual(ours, theirs, where);
          continue;
        }
        assert.equal(ours.kind, theirs.kind, where);
        const [mine, its] = [ours.body, theirs.body] as Record<string, unknown>[];
        // Same class (so the same defaults and toJSON), same own fields, same bytes, as Buffers.
        assert.equal(
          Object.getPrototypeOf(mine)!.constructor.name,
          Object.getPrototypeOf(its)!.constructor.name,
          where,
        );
        assert.deepEqual(Object.keys(mine!), Object.keys(its!), where);
        if (Object.hasOwn(its!, name)) {
          assert.ok(Buffer.isBuffer(mine![name]), where);
          assert.ok((mine![name] as Buffer).equals(its![name] as Buffer), where);
        }
        if (payload.length < 4096) {
          assert.deepEqual(
            JSON.parse(JSON.stringify(mine)),
            JSON.parse(JSON.stringify(its)),
            where,
          );
        }
      }
    }
    inputs += compared;
    assert.ok(compared > 4000, `seed ${SEED}: only ${compared} comparisons`);
  });

  test(`at least ${INPUTS_MIN} inputs were fed`, (t) => {
    assert.ok(inputs >= INPUTS_MIN, `seed ${SEED}: only ${inputs} inputs`);
    t.diagnostic(`seed ${SEED}: ${inputs} inputs`);
  });
});
