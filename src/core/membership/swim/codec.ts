/**
 * Binary codec for SWIM packets. Big-endian, no padding, every field bounded.
 *
 * Datagram (UDP), at most `packetBytesMax` bytes:
 *
 *   u8 magic 0x53 | u8 version 1 | u8 kind 0 | u8 count (1..255) | count × part
 *   part = u8 type | u16 bodyBytes | body
 *
 *   ping      u32 seq | str targetId | str sourceId
 *   ping-req  u32 seq | str targetId | str targetAddress | u8 flags (bit 0 wantNack)
 *   ack       u32 seq [| coordinate: 8 × f32 vec | f32 height | f32 adjustment | f32 error]
 *             (the target's Vivaldi coordinate, seconds; absent in relayed acks)
 *   nack      u32 seq
 *   alive     u32 incarnation | str id | str address | u16 metaBytes | meta
 *   suspect   u32 incarnation | str id | str fromId
 *   dead      u32 incarnation | str id | str fromId
 *   leave     u32 incarnation | str id
 *   str       u8 bytes (1..255) | UTF-8
 *
 * Stream (push-pull), at most `streamBytesMax` bytes:
 *
 *   u8 magic | u8 version | u8 kind 1 | u8 flags (bit 0 join, bit 1 reply) |
 *   str fromAddress | u32 count | count × (u8 state | u32 incarnation | str id |
 *   str address | u16 metaBytes | meta)
 *
 * The decoder checks every length against the bytes left and the configured limits before
 * it allocates, requires each part to consume exactly its declared body, rejects reserved
 * bits and unknown codes, and throws only RdbnetError: a peer's bad packet is counted and
 * dropped by the caller, never a crash.
 */
import { assert, ErrorCode, RdbnetError } from '../../errors.ts';
import { type Coordinate, VIVALDI_DIMENSIONS, validCoordinate } from '../vivaldi.ts';
import {
  type DatagramMessage,
  MEMBER_STATE_CODES,
  MEMBER_STATES,
  MESSAGE_TYPE_CODES,
  type MemberState,
  type PushPullMember,
  type PushPullMessage,
} from './messages.ts';

export const PACKET_MAGIC = 0x53;
export const PACKET_VERSION = 1;
const KIND_DATAGRAM = 0;
const KIND_STREAM = 1;
export const DATAGRAM_HEADER_BYTES = 4;
export const PART_HEADER_BYTES = 3;
export const DATAGRAM_PARTS_MAX = 255;
export const STRING_BYTES_MAX = 255;
/** Smallest push-pull entry: state, incarnation, two 1-byte strings, metadata length. */
const PUSH_PULL_ENTRY_BYTES_MIN = 1 + 4 + 2 + 2 + 2;
const U32_MAX = 0xffff_ffff;
/** A Vivaldi coordinate in an ack: the vector, height, adjustment and error, f32 each. */
const COORDINATE_BYTES = (VIVALDI_DIMENSIONS + 3) * 4;

/** The limits a decoder enforces; a SwimConfig satisfies it. */
export interface CodecLimits {
  packetBytesMax: number;
  metaBytesMax: number;
  streamBytesMax: number;
  memberCountMax: number;
}

const TYPE_BY_CODE: (DatagramMessage['type'] | undefined)[] = [];
for (const [name, code] of Object.entries(MESSAGE_TYPE_CODES)) {
  TYPE_BY_CODE[code] = name as DatagramMessage['type'];
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

// --- encoding -----------------------------------------------------------------------------

/** UTF-8 length of `s`, with a fast path for ASCII (ids and addresses nearly always are). */
export function utf8Bytes(s: string): number {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) return utf8Encoder.encode(s).length;
  }
  return s.length;
}

class Writer {
  bytes: Uint8Array;
  pos = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  u8(value: number): void {
    this.bytes[this.pos++] = value;
  }

  u16(value: number): void {
    this.bytes[this.pos++] = value >>> 8;
    this.bytes[this.pos++] = value & 0xff;
  }

  f32(value: number): void {
    new DataView(this.bytes.buffer, this.bytes.byteOffset).setFloat32(this.pos, value);
    this.pos += 4;
  }

  u32(value: number): void {
    const b = this.bytes;
    b[this.pos++] = value >>> 24;
    b[this.pos++] = (value >>> 16) & 0xff;
    b[this.pos++] = (value >>> 8) & 0xff;
    b[this.pos++] = value & 0xff;
  }

  /** `length` is utf8Bytes(s), computed by the caller when sizing the message. */
  str(s: string, length: number): void {
    assert(length >= 1 && length <= STRING_BYTES_MAX, `string of ${length} bytes`);
    this.bytes[this.pos++] = length;
    if (length === s.length) {
      for (let i = 0; i < length; i++) this.bytes[this.pos++] = s.charCodeAt(i);
    } else {
      utf8Encoder.encodeInto(s, this.bytes.subarray(this.pos, this.pos + length));
      this.pos += length;
    }
  }

  raw(data: Uint8Array): void {
    this.bytes.set(data, this.pos);
    this.pos += data.length;
  }
}

function checkIncarnation(value: number): void {
  assert(Number.isInteger(value) && value >= 0 && value <= U32_MAX, `u32 ${value}`);
}

/** Every part is at most 3 + 65535 bytes, so a scratch buffer holds any of them. Two:
 * encodePart never clobbers a view that encodePartTransient handed out. */
const transientScratch = new Writer(new Uint8Array(PART_HEADER_BYTES + 0xffff));
const copyScratch = new Writer(new Uint8Array(PART_HEADER_BYTES + 0xffff));

/**
 * Encodes one datagram message as a part (type, length, body), ready to be placed in a
 * packet by `encodeDatagram`. Fields must already be within bounds (ids 1..255 bytes,
 * u32 numbers): the machine validates its own inputs, and re-encodes only what it decoded.
 */
export function encodePart(message: DatagramMessage): Uint8Array {
  return writePart(copyScratch, message).slice();
}

/**
 * Like encodePart, into a shared scratch buffer: the view is valid only until the next
 * encode. For the hot path, where the part is copied into a datagram at once.
 */
export function encodePartTransient(message: DatagramMessage): Uint8Array {
  return writePart(transientScratch, message);
}

function writePart(w: Writer, message: DatagramMessage): Uint8Array {
  w.pos = 0;
  switch (message.type) {
    case 'ping': {
      const t = utf8Bytes(message.targetId);
      const f = utf8Bytes(message.sourceId);
      header(w, message.type, 4 + 1 + t + 1 + f);
      w.u32(message.seq);
      w.str(message.targetId, t);
      w.str(message.sourceId, f);
      break;
    }
    case 'ping-req': {
      const t = utf8Bytes(message.targetId);
      const a = utf8Bytes(message.targetAddress);
      header(w, message.type, 4 + 1 + t + 1 + a + 1);
      w.u32(message.seq);
      w.str(message.targetId, t);
      w.str(message.targetAddress, a);
      w.u8(message.wantNack ? 1 : 0);
      break;
    }
    case 'ack':
      header(w, message.type, 4 + (message.coordinate === undefined ? 0 : COORDINATE_BYTES));
      w.u32(message.seq);
      if (message.coordinate !== undefined) {
        for (const value of message.coordinate.vec) w.f32(value);
        w.f32(message.coordinate.height);
        w.f32(message.coordinate.adjustment);
        w.f32(message.coordinate.error);
      }
      break;
    case 'nack':
      header(w, message.type, 4);
      w.u32(message.seq);
      break;
    case 'alive': {
      checkIncarnation(message.incarnation);
      assert(message.meta.length <= 0xffff, 'metadata over 64 KiB');
      const i = utf8Bytes(message.id);
      const a = utf8Bytes(message.address);
      header(w, message.type, 4 + 1 + i + 1 + a + 2 + message.meta.length);
      w.u32(message.incarnation);
      w.str(message.id, i);
      w.str(message.address, a);
      w.u16(message.meta.length);
      w.raw(message.meta);
      break;
    }
    case 'suspect':
    case 'dead': {
      checkIncarnation(message.incarnation);
      const i = utf8Bytes(message.id);
      const f = utf8Bytes(message.fromId);
      header(w, message.type, 4 + 1 + i + 1 + f);
      w.u32(message.incarnation);
      w.str(message.id, i);
      w.str(message.fromId, f);
      break;
    }
    case 'leave': {
      checkIncarnation(message.incarnation);
      const i = utf8Bytes(message.id);
      header(w, message.type, 4 + 1 + i);
      w.u32(message.incarnation);
      w.str(message.id, i);
      break;
    }
  }
  return w.bytes.subarray(0, w.pos);
}

function header(w: Writer, type: DatagramMessage['type'], bodyBytes: number): void {
  assert(bodyBytes <= 0xffff, 'datagram part over 64 KiB');
  w.u8(MESSAGE_TYPE_CODES[type]);
  w.u16(bodyBytes);
}

/** Bytes of a datagram holding parts whose encoded sizes add up to `partsBytes`. */
export function datagramBytes(partsBytes: number): number {
  return DATAGRAM_HEADER_BYTES + partsBytes;
}

/** Joins encoded parts into one datagram. The caller keeps it within packetBytesMax. */
export function encodeDatagram(parts: readonly Uint8Array[]): Uint8Array {
  assert(parts.length >= 1 && parts.length <= DATAGRAM_PARTS_MAX, `${parts.length} parts`);
  let size = DATAGRAM_HEADER_BYTES;
  for (const part of parts) size += part.length;
  const bytes = new Uint8Array(size);
  bytes[0] = PACKET_MAGIC;
  bytes[1] = PACKET_VERSION;
  bytes[2] = KIND_DATAGRAM;
  bytes[3] = parts.length;
  let pos = DATAGRAM_HEADER_BYTES;
  for (const part of parts) {
    bytes.set(part, pos);
    pos += part.length;
  }
  return bytes;
}

/** Convenience for tests and cold paths: messages straight to one datagram. */
export function encodeMessages(messages: readonly DatagramMessage[]): Uint8Array {
  return encodeDatagram(messages.map(encodePart));
}

/** Encoded size of one push-pull entry. */
export function pushPullEntryBytes(member: PushPullMember): number {
  return 1 + 4 + 1 + utf8Bytes(member.id) + 1 + utf8Bytes(member.address) + 2 + member.meta.length;
}

/**
 * Encodes a push-pull message. Entries that would take it past `limits.streamBytesMax` or
 * `limits.memberCountMax` are left out; `included` says how many made it.
 */
export function encodePushPull(
  message: PushPullMessage,
  limits: CodecLimits,
): { bytes: Uint8Array; included: number } {
  const fromBytes = utf8Bytes(message.fromAddress);
  let size = 4 + 1 + fromBytes + 4;
  const sizes: number[] = [];
  for (const member of message.members) {
    if (sizes.length >= limits.memberCountMax) break;
    const entry = pushPullEntryBytes(member);
    if (size + entry > limits.streamBytesMax) break;
    sizes.push(entry);
    size += entry;
  }
  const w = new Writer(new Uint8Array(size));
  w.u8(PACKET_MAGIC);
  w.u8(PACKET_VERSION);
  w.u8(KIND_STREAM);
  w.u8((message.join ? 1 : 0) | (message.reply ? 2 : 0));
  w.str(message.fromAddress, fromBytes);
  w.u32(sizes.length);
  for (let i = 0; i < sizes.length; i++) {
    const m = message.members[i]!;
    checkIncarnation(m.incarnation);
    w.u8(MEMBER_STATE_CODES[m.state]);
    w.u32(m.incarnation);
    w.str(m.id, utf8Bytes(m.id));
    w.str(m.address, utf8Bytes(m.address));
    w.u16(m.meta.length);
    w.raw(m.meta);
  }
  assert(w.pos === size, 'push-pull size mismatch');
  return { bytes: w.bytes, included: sizes.length };
}

// --- decoding -----------------------------------------------------------------------------

function malformed(message: string): RdbnetError {
  return new RdbnetError(ErrorCode.MessageMalformed, `SWIM packet malformed: ${message}`);
}

/** Shared by every empty metadata field; a zero-length array cannot be mutated. */
const EMPTY = new Uint8Array(0);

/**
 * Decoded ids and addresses repeat endlessly (every ping names its target), so ASCII ones
 * are interned in a small direct-mapped table: no allocation for a repeat, and the string's
 * hash, which V8 caches on the string, is already there for the member-map lookup. Returns
 * undefined for non-ASCII input.
 */
const INTERN_SLOTS = 16_384;
const internTable: (string | undefined)[] = new Array(INTERN_SLOTS).fill(undefined);

function internAscii(b: Uint8Array, start: number, stop: number): string | undefined {
  let hash = 0x811c9dc5;
  for (let i = start; i < stop; i++) {
    const c = b[i]!;
    if (c >= 0x80) return undefined;
    hash = Math.imul(hash ^ c, 0x01000193);
  }
  const slot = (hash >>> 0) & (INTERN_SLOTS - 1);
  const cached = internTable[slot];
  if (cached !== undefined && cached.length === stop - start) {
    let same = true;
    for (let i = start; i < stop; i++) {
      if (cached.charCodeAt(i - start) !== b[i]) {
        same = false;
        break;
      }
    }
    if (same) return cached;
  }
  // One call, so V8 makes a flat string (a += loop would leave a rope to flatten later).
  const s = String.fromCharCode.apply(null, b.subarray(start, stop) as unknown as number[]);
  internTable[slot] = s;
  return s;
}

class Reader {
  bytes: Uint8Array;
  pos: number;
  end: number;

  constructor(bytes: Uint8Array, pos: number, end: number) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
  }

  need(n: number, what: string): void {
    if (this.end - this.pos < n) throw malformed(`truncated ${what}`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++]!;
  }

  u16(what: string): number {
    this.need(2, what);
    const b = this.bytes;
    const value = (b[this.pos]! << 8) | b[this.pos + 1]!;
    this.pos += 2;
    return value;
  }

  f32(what: string): number {
    this.need(4, what);
    const value = new DataView(this.bytes.buffer, this.bytes.byteOffset).getFloat32(this.pos);
    this.pos += 4;
    return value;
  }

  u32(what: string): number {
    this.need(4, what);
    const b = this.bytes;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  str(what: string): string {
    const length = this.u8(what);
    if (length === 0) throw malformed(`empty ${what}`);
    this.need(length, what);
    const start = this.pos;
    this.pos += length;
    const interned = internAscii(this.bytes, start, this.pos);
    if (interned !== undefined) return interned;
    try {
      return utf8Decoder.decode(this.bytes.subarray(start, this.pos));
    } catch {
      throw malformed(`${what} is not UTF-8`);
    }
  }

  /** A copy, so a retained value does not pin the whole packet buffer. */
  blob(length: number, what: string): Uint8Array {
    if (length === 0) return EMPTY;
    this.need(length, what);
    const value = this.bytes.slice(this.pos, this.pos + length);
    this.pos += length;
    return value;
  }
}

const datagramReader = new Reader(EMPTY, 0, 0);

function readHeader(bytes: Uint8Array, kind: number): void {
  if (bytes.length < 4) throw malformed('shorter than its header');
  if (bytes[0] !== PACKET_MAGIC) throw malformed('bad magic byte');
  if (bytes[1] !== PACKET_VERSION) throw malformed(`unsupported version ${bytes[1]}`);
  if (bytes[2] !== kind) {
    throw malformed(kind === KIND_DATAGRAM ? 'stream packet on UDP' : 'datagram on stream');
  }
}

/** Decodes a UDP packet into its messages, primary first. Throws RdbnetError only. */
export function decodeDatagram(bytes: Uint8Array, limits: CodecLimits): DatagramMessage[] {
  if (bytes.length > limits.packetBytesMax) {
    throw new RdbnetError(
      ErrorCode.FrameTooLarge,
      `SWIM packet of ${bytes.length} bytes exceeds ${limits.packetBytesMax}`,
    );
  }
  readHeader(bytes, KIND_DATAGRAM);
  const count = bytes[3]!;
  if (count === 0) throw malformed('no messages');
  // Each part takes at least its 3-byte header plus a 4-byte body: bound the array first.
  if (count * (PART_HEADER_BYTES + 4) > bytes.length - DATAGRAM_HEADER_BYTES) {
    throw malformed(`${count} messages cannot fit ${bytes.length} bytes`);
  }
  const messages: DatagramMessage[] = [];
  // Decoding never re-enters, so one reader serves every datagram (no garbage per packet).
  const r = datagramReader;
  r.bytes = bytes;
  r.pos = DATAGRAM_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    r.end = bytes.length;
    const code = r.u8('message type');
    const bodyBytes = r.u16('message length');
    r.need(bodyBytes, 'message body');
    r.end = r.pos + bodyBytes;
    messages.push(readPart(r, code, limits));
    if (r.pos !== r.end) throw malformed(`${r.end - r.pos} trailing bytes in message ${i}`);
  }
  if (r.pos !== bytes.length) throw malformed(`${bytes.length - r.pos} bytes after messages`);
  return messages;
}

function readPart(r: Reader, code: number, limits: CodecLimits): DatagramMessage {
  const type = TYPE_BY_CODE[code];
  switch (type) {
    case 'ping':
      return {
        type,
        seq: r.u32('seq'),
        targetId: r.str('target id'),
        sourceId: r.str('source id'),
      };
    case 'ping-req': {
      const seq = r.u32('seq');
      const targetId = r.str('target id');
      const targetAddress = r.str('target address');
      const flags = r.u8('flags');
      if ((flags & ~1) !== 0) throw malformed('reserved ping-req flags set');
      return { type, seq, targetId, targetAddress, wantNack: flags === 1 };
    }
    case 'ack': {
      const seq = r.u32('seq');
      const left = r.end - r.pos;
      if (left === 0) return { type, seq };
      if (left !== COORDINATE_BYTES) throw malformed(`an ack's coordinate of ${left} bytes`);
      const vec = Array.from({ length: VIVALDI_DIMENSIONS }, () => r.f32('coordinate'));
      const coordinate: Coordinate = {
        vec,
        height: r.f32('height'),
        adjustment: r.f32('adjustment'),
        error: r.f32('error'),
      };
      if (!validCoordinate(coordinate)) throw malformed('an ack with an invalid coordinate');
      return { type, seq, coordinate };
    }
    case 'nack':
      return { type, seq: r.u32('seq') };
    case 'alive': {
      const incarnation = r.u32('incarnation');
      const id = r.str('id');
      const address = r.str('address');
      const metaBytes = r.u16('metadata length');
      if (metaBytes > limits.metaBytesMax) {
        throw malformed(`metadata of ${metaBytes} bytes exceeds ${limits.metaBytesMax}`);
      }
      return { type, incarnation, id, address, meta: r.blob(metaBytes, 'metadata') };
    }
    case 'suspect':
    case 'dead':
      return { type, incarnation: r.u32('incarnation'), id: r.str('id'), fromId: r.str('from') };
    case 'leave':
      return { type, incarnation: r.u32('incarnation'), id: r.str('id') };
    default:
      throw malformed(`unknown message type ${code}`);
  }
}

/** Decodes a push-pull stream message. Throws RdbnetError only. */
export function decodePushPull(bytes: Uint8Array, limits: CodecLimits): PushPullMessage {
  if (bytes.length > limits.streamBytesMax) {
    throw new RdbnetError(
      ErrorCode.FrameTooLarge,
      `SWIM push-pull of ${bytes.length} bytes exceeds ${limits.streamBytesMax}`,
    );
  }
  readHeader(bytes, KIND_STREAM);
  const flags = bytes[3]!;
  if ((flags & ~3) !== 0) throw malformed('reserved push-pull flags set');
  const r = new Reader(bytes, 4, bytes.length);
  const fromAddress = r.str('from address');
  const count = r.u32('member count');
  if (count > limits.memberCountMax) {
    throw malformed(`${count} members exceed ${limits.memberCountMax}`);
  }
  if (count * PUSH_PULL_ENTRY_BYTES_MIN > r.end - r.pos) {
    throw malformed(`${count} members cannot fit ${bytes.length} bytes`);
  }
  const members: PushPullMember[] = [];
  for (let i = 0; i < count; i++) {
    const stateCode = r.u8('member state');
    const state: MemberState | undefined = MEMBER_STATES[stateCode];
    if (state === undefined) throw malformed(`unknown member state ${stateCode}`);
    const incarnation = r.u32('incarnation');
    const id = r.str('id');
    const address = r.str('address');
    const metaBytes = r.u16('metadata length');
    if (metaBytes > limits.metaBytesMax) {
      throw malformed(`metadata of ${metaBytes} bytes exceeds ${limits.metaBytesMax}`);
    }
    members.push({ id, address, meta: r.blob(metaBytes, 'metadata'), incarnation, state });
  }
  if (r.pos !== bytes.length) throw malformed(`${bytes.length - r.pos} trailing bytes`);
  return {
    type: 'push-pull',
    join: (flags & 1) !== 0,
    reply: (flags & 2) !== 0,
    fromAddress,
    members,
  };
}
