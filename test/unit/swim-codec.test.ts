/**
 * SWIM codec: exact round trips of every message, strict rejection of malformed input, a
 * fuzz of 60,000+ random and mutated packets that must only ever produce RdbnetError (never
 * another exception, never a hang), and the machine's own packets staying within
 * packetBytesMax while it has more to piggyback than fits.
 *
 * Replay a failure with SWIM_SEED=<seed printed in the message>.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, isRdbnetError, RdbnetError } from '../../src/core/errors.ts';
import {
  DATAGRAM_HEADER_BYTES,
  type DatagramMessage,
  decodeDatagram,
  decodePushPull,
  encodeDatagram,
  encodeMessages,
  encodePart,
  encodePushPull,
  type MemberState,
  type PushPullMessage,
  SWIM_LAN,
  Swim,
} from '../../src/core/membership/swim/index.ts';
import { type Random, seededRandom } from '../../src/core/runtime/index.ts';

const SEED = Number(process.env['SWIM_SEED'] ?? 0x5eed_c0de) >>> 0;
const LIMITS = SWIM_LAN;
const bytes = (...values: number[]) => Uint8Array.from(values);
const text = (s: string) => new TextEncoder().encode(s);

const SAMPLES: DatagramMessage[] = [
  { type: 'ping', seq: 0, targetId: 'b', sourceId: 'a' },
  { type: 'ping', seq: 0xffff_ffff, targetId: 'x'.repeat(255), sourceId: 'nœud-ü-日本' },
  { type: 'ping-req', seq: 7, targetId: 'c', targetAddress: '127.0.0.3:7946', wantNack: true },
  { type: 'ping-req', seq: 8, targetId: 'c', targetAddress: '[::1]:7946', wantNack: false },
  { type: 'ack', seq: 123_456 },
  {
    type: 'ack',
    seq: 5,
    // Values f32 holds exactly, so the round trip is exact.
    coordinate: {
      vec: [0.5, -0.25, 0.125, 0, 1, -1, 0.0625, 2],
      height: 0.0009765625,
      adjustment: -0.001953125,
      error: 1.5,
    },
  },
  { type: 'nack', seq: 1 },
  { type: 'alive', incarnation: 0, id: 'a', address: 'a:1', meta: new Uint8Array(0) },
  {
    type: 'alive',
    incarnation: 0xffff_ffff,
    id: 'n'.repeat(255),
    address: 'h'.repeat(255),
    meta: new Uint8Array(512).fill(0xab),
  },
  { type: 'suspect', incarnation: 3, id: 'b', fromId: 'a' },
  { type: 'dead', incarnation: 4, id: 'b', fromId: 'c' },
  { type: 'leave', incarnation: 9, id: 'b' },
];

function expectRejected(packet: Uint8Array, code: string = ErrorCode.MessageMalformed): void {
  assert.throws(
    () => decodeDatagram(packet, LIMITS),
    (error: unknown) => isRdbnetError(error) && error.code === code,
  );
}

describe('SWIM codec round trips', () => {
  test('every message type alone and all of them in one compound packet', () => {
    for (const message of SAMPLES) {
      assert.deepEqual(decodeDatagram(encodeMessages([message]), LIMITS), [message]);
    }
    const small = SAMPLES.filter((m) => m.type !== 'alive' || m.meta.length === 0);
    assert.deepEqual(decodeDatagram(encodeMessages(small), LIMITS), small);
  });

  test("an ack's coordinate: absent, or exactly 44 bytes of finite numbers", () => {
    const ack = encodeMessages([
      {
        type: 'ack',
        seq: 1,
        coordinate: { vec: new Array(8).fill(0.5), height: 0.001, adjustment: 0, error: 1 },
      },
    ]);
    // Part length 4 + 44; one coordinate byte missing or one too many is malformed.
    assert.equal(ack[5]! * 256 + ack[6]!, 48);
    const short = Uint8Array.from([...ack.subarray(0, ack.length - 1)]);
    short[6] = 47;
    expectRejected(short);
    const long = Uint8Array.from([...ack, 0]);
    long[6] = 49;
    expectRejected(long);
    const notANumber = Uint8Array.from(ack);
    notANumber.set([0x7f, 0xc0, 0, 0], 11); // the first vector element becomes NaN
    expectRejected(notANumber);
  });

  test('the layout is the documented one (a ping, byte by byte)', () => {
    const packet = encodeMessages([
      { type: 'ping', seq: 0x01020304, targetId: 'b', sourceId: 'a' },
    ]);
    assert.deepEqual(
      [...packet],
      [0x53, 1, 0, 1, 1, 0, 8, 1, 2, 3, 4, 1, 0x62, 1, 0x61], // header, part header, body
    );
  });

  test('push-pull round trip, every member state, truncated at streamBytesMax', () => {
    const states: MemberState[] = ['alive', 'suspect', 'dead', 'left'];
    const message: PushPullMessage = {
      type: 'push-pull',
      join: true,
      reply: false,
      fromAddress: '127.0.0.1:7946',
      members: Array.from({ length: 40 }, (_, i) => ({
        id: `node-${i}`,
        address: `127.0.1.${i}:7946`,
        meta: text(`zone=${i % 3}`),
        incarnation: i * 1000,
        state: states[i % 4]!,
      })),
    };
    const { bytes: encoded, included } = encodePushPull(message, LIMITS);
    assert.equal(included, 40);
    assert.deepEqual(decodePushPull(encoded, LIMITS), message);

    const tight = { ...LIMITS, streamBytesMax: 400 };
    const cut = encodePushPull(message, tight);
    assert.ok(cut.included > 0 && cut.included < 40, `included ${cut.included}`);
    assert.ok(cut.bytes.length <= 400);
    assert.deepEqual(
      decodePushPull(cut.bytes, tight).members,
      message.members.slice(0, cut.included),
    );
  });

  test('fast-check: arbitrary messages survive encode → decode unchanged', () => {
    const id = fc.string({ minLength: 1, maxLength: 60 });
    const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
    const message: fc.Arbitrary<DatagramMessage> = fc.oneof(
      fc.record({ type: fc.constant('ping' as const), seq: u32, targetId: id, sourceId: id }),
      fc.record({
        type: fc.constant('ping-req' as const),
        seq: u32,
        targetId: id,
        targetAddress: id,
        wantNack: fc.boolean(),
      }),
      fc.record({ type: fc.constantFrom('ack' as const, 'nack' as const), seq: u32 }),
      fc.record({
        type: fc.constant('alive' as const),
        incarnation: u32,
        id,
        address: id,
        meta: fc.uint8Array({ maxLength: 64 }),
      }),
      fc.record({
        type: fc.constantFrom('suspect' as const, 'dead' as const),
        incarnation: u32,
        id,
        fromId: id,
      }),
      fc.record({ type: fc.constant('leave' as const), incarnation: u32, id }),
    );
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 8 }), (messages) => {
        // fast-check builds null-prototype records; the decoder builds plain objects.
        const plain = messages.map((m) => ({ ...m }));
        assert.deepEqual(decodeDatagram(encodeMessages(messages), LIMITS), plain);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });
});

describe('SWIM codec rejects malformed packets', () => {
  const ping = encodeMessages([{ type: 'ping', seq: 1, targetId: 'b', sourceId: 'a' }]);

  test('header: magic, version, kind, count', () => {
    expectRejected(bytes());
    expectRejected(bytes(0x53, 1, 0));
    expectRejected(Uint8Array.from([0x54, ...ping.subarray(1)]));
    expectRejected(Uint8Array.from([0x53, 2, ...ping.subarray(2)]));
    expectRejected(Uint8Array.from([0x53, 1, 1, ...ping.subarray(3)])); // stream kind on UDP
    expectRejected(Uint8Array.from([0x53, 1, 0, 0, ...ping.subarray(4)])); // zero messages
    expectRejected(Uint8Array.from([0x53, 1, 0, 200, ...ping.subarray(4)])); // count > room
  });

  test('lengths: truncated body, trailing bytes, part length past the end', () => {
    expectRejected(ping.subarray(0, ping.length - 1));
    expectRejected(Uint8Array.from([...ping, 0]));
    const lying = ping.slice();
    lying[6] = 0xff; // part body length 0x00ff > bytes left
    expectRejected(lying);
    const short = ping.slice();
    short[6] = 4; // declares a 4-byte ping body: the target id no longer fits inside it
    expectRejected(short);
  });

  test('fields: empty id, invalid UTF-8, unknown type, reserved flags', () => {
    expectRejected(encodeDatagram([bytes(1, 0, 6, 0, 0, 0, 1, 0, 1, 0x61)])); // empty target id
    expectRejected(encodeDatagram([bytes(1, 0, 8, 0, 0, 0, 1, 1, 0xff, 1, 0x61)])); // 0xff
    expectRejected(encodeDatagram([bytes(99, 0, 4, 0, 0, 0, 1)]));
    expectRejected(encodeDatagram([bytes(0, 0, 4, 0, 0, 0, 1)]));
    const req = encodePart({
      type: 'ping-req',
      seq: 1,
      targetId: 'c',
      targetAddress: 'c:1',
      wantNack: true,
    });
    req[req.length - 1] = 0b11;
    expectRejected(encodeDatagram([req]));
  });

  test('bounds: oversize packet and oversize metadata are refused before allocating', () => {
    expectRejected(new Uint8Array(LIMITS.packetBytesMax + 1), ErrorCode.FrameTooLarge);
    const alive = encodePart({
      type: 'alive',
      incarnation: 1,
      id: 'a',
      address: 'a:1',
      meta: new Uint8Array(600),
    });
    expectRejected(encodeDatagram([alive]));
    assert.throws(
      () => decodePushPull(new Uint8Array(LIMITS.streamBytesMax + 1), LIMITS),
      (e: unknown) => isRdbnetError(e, ErrorCode.FrameTooLarge),
    );
    // A push-pull claiming 4 billion members in 20 bytes: refused by count, not by OOM.
    const huge = bytes(
      0x53,
      1,
      1,
      0,
      1,
      0x61,
      0xff,
      0xff,
      0xff,
      0xff,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
    );
    assert.throws(
      () => decodePushPull(huge, LIMITS),
      (e: unknown) => isRdbnetError(e, ErrorCode.MessageMalformed),
    );
    const many = huge.slice();
    many.set([0, 0, 0x27, 0x10], 6); // 10,000 members, within memberCountMax, in 20 bytes
    assert.throws(() => decodePushPull(many, LIMITS), RdbnetError);
    // The wrong transport's framing is refused both ways.
    assert.throws(() => decodePushPull(ping, LIMITS), RdbnetError);
  });
});

/** A mutation of a valid packet, or pure noise; `random` drives everything. */
function mutate(random: Random, valid: Uint8Array): Uint8Array {
  const out = valid.slice();
  switch (random.int(7)) {
    case 0: {
      for (let i = 0, flips = 1 + random.int(4); i < flips; i++) {
        out[random.int(out.length)]! ^= 1 << random.int(8);
      }
      return out;
    }
    case 1:
      return out.subarray(0, random.int(out.length));
    case 2: {
      const at = random.int(out.length + 1);
      const extra = Array.from({ length: 1 + random.int(8) }, () => random.int(256));
      return Uint8Array.from([...out.subarray(0, at), ...extra, ...out.subarray(at)]);
    }
    case 3: {
      // Hostile length or count fields: any byte set to 0x00 or 0xff.
      out[random.int(out.length)] = random.next() < 0.5 ? 0 : 0xff;
      return out;
    }
    case 4: {
      const at = random.int(out.length);
      return Uint8Array.from([...out.subarray(0, at), ...out.subarray(at + 1 + random.int(4))]);
    }
    case 5: {
      const a = random.int(out.length);
      const b = random.int(out.length);
      out.copyWithin(a, b, b + 1 + random.int(16));
      return out;
    }
    default:
      return Uint8Array.from({ length: random.int(64) }, () => random.int(256));
  }
}

describe('SWIM codec fuzz', () => {
  test('60,000 mutated and random packets: only RdbnetError, and a machine survives them', () => {
    const random = seededRandom(SEED);
    const datagrams = SAMPLES.map((m) => encodeMessages([m]));
    datagrams.push(encodeMessages(SAMPLES.slice(0, 6)));
    const stream = encodePushPull(
      {
        type: 'push-pull',
        join: false,
        reply: true,
        fromAddress: 'a:1',
        members: [
          { id: 'a', address: 'a:1', meta: text('m'), incarnation: 1, state: 'alive' },
          { id: 'b', address: 'b:1', meta: new Uint8Array(0), incarnation: 2, state: 'dead' },
        ],
      },
      LIMITS,
    ).bytes;
    let clock = 0;
    const machine = new Swim({
      self: { id: 'b', address: 'b:1' },
      clock: { nowMs: () => clock, wallMs: () => clock },
      random: seededRandom(SEED + 1),
    });
    let rejected = 0;
    let accepted = 0;
    const inputs = 60_000;
    for (let i = 0; i < inputs; i++) {
      const viaStream = i % 4 === 3;
      const base = viaStream ? stream : datagrams[random.int(datagrams.length)]!;
      const packet = mutate(random, base);
      try {
        if (viaStream) decodePushPull(packet, LIMITS);
        else decodeDatagram(packet, LIMITS);
        accepted++;
      } catch (error) {
        assert.ok(
          error instanceof RdbnetError,
          `seed=${SEED} input ${i}: non-RdbnetError ${String(error)} for ${Buffer.from(packet).toString('hex')}`,
        );
        rejected++;
      }
      if (i % 3 === 0) {
        // The machine must treat the same garbage as a counted, ignored packet.
        clock += 1;
        machine.receive('x:1', packet, viaStream ? 'stream' : 'udp');
        machine.tick();
        machine.takeOutbox();
        machine.takeEvents();
      }
    }
    assert.equal(accepted + rejected, inputs);
    assert.ok(rejected > inputs / 3, `seed=${SEED}: only ${rejected} rejected — fuzz too tame?`);
    assert.ok(accepted > 1000, `seed=${SEED}: only ${accepted} accepted — fuzz too wild?`);
    assert.ok(machine.stats.packetsRejected > 5000, `seed=${SEED}`);
  });
});

describe('SWIM packets stay within the MTU budget', () => {
  test('with 40 members of 512-byte metadata to announce, no packet exceeds packetBytesMax', () => {
    let clock = 0;
    const make = (i: number) =>
      new Swim({
        self: { id: `member-${i}`, address: `10.1.0.${i}:7946`, meta: new Uint8Array(512).fill(i) },
        clock: { nowMs: () => clock, wallMs: () => clock },
        random: seededRandom(SEED + i),
      });
    const nodes = Array.from({ length: 40 }, (_, i) => make(i));
    const byAddress = new Map(nodes.map((n) => [n.address, n]));
    for (const n of nodes.slice(1)) n.join([nodes[0]!.address]);
    let udpPackets = 0;
    let largest = 0;
    let piggybacked = 0;
    // A crude in-order network: enough to fill every queue with big alive broadcasts.
    for (let step = 0; step < 3000; step++) {
      clock += 1;
      for (const n of nodes) {
        n.tick();
        for (const packet of n.takeOutbox()) {
          if (packet.via === 'udp') {
            udpPackets++;
            largest = Math.max(largest, packet.bytes.length);
            assert.ok(
              packet.bytes.length <= LIMITS.packetBytesMax,
              `seed=${SEED}: ${packet.bytes.length}-byte packet from ${n.id}`,
            );
            const messages = decodeDatagram(packet.bytes, LIMITS);
            if (messages.length > 1) piggybacked++;
          }
          byAddress.get(packet.to)?.receive(n.address, packet.bytes, packet.via);
        }
        n.takeEvents();
      }
    }
    assert.ok(udpPackets > 1000, `seed=${SEED}: ${udpPackets} packets`);
    assert.ok(piggybacked > 100, `seed=${SEED}: ${piggybacked} compound packets`);
    // Two 530-byte alive messages fit, a third would not: the packer filled packets up.
    assert.ok(largest > LIMITS.packetBytesMax - 600, `seed=${SEED}: largest ${largest}`);
    assert.ok(largest >= DATAGRAM_HEADER_BYTES);
    for (const n of nodes)
      assert.equal(n.liveCount, 40, `seed=${SEED}: ${n.id} sees ${n.liveCount}`);
  });
});
