/**
 * Frame codec for protocol v1.
 *
 *   u32 length | u16 flags | u64 message id | payload | [u32 CRC-32 of payload]
 *
 * `length` counts every byte after itself (flags + id + payload + checksum), big-endian.
 * flags: bits 0-1 frame kind, bits 2-3 payload codec, bit 4 checksum present, bit 5 first chunk
 * of a stream (the payload starts with the whole message's size, u32), bit 6 a later chunk,
 * bits 7-8 the message's priority (0 critical .. 3 low). Bits 5-8 are only set towards a peer
 * that announced stream settings in its handshake (src/core/transport/streams.ts). The other
 * bits are reserved and must be zero, so a peer speaking a future layout is refused rather
 * than misread.
 *
 * The decoder checks `length` against its limit as soon as the four length bytes are
 * in, before buffering anything of the frame, so a hostile 4 GiB prefix costs nothing.
 */
import { crc32 } from 'node:zlib';
import protobuf from 'protobufjs';
import { assert, ConfigFieldError, ErrorCode, RdbnetError } from '../errors.ts';

export const FrameKind = { Request: 0, Response: 1, Error: 2, OneWay: 3 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export const Codec = { None: 0, Lz4: 1, Zstd: 2 } as const;
export type Codec = (typeof Codec)[keyof typeof Codec];

export const FRAME_LENGTH_BYTES = 4;
/** flags (2) + message id (8): the part of every frame after the length prefix. */
export const FRAME_FIXED_BYTES = 10;
export const FRAME_HEADER_BYTES = FRAME_LENGTH_BYTES + FRAME_FIXED_BYTES;
export const CHECKSUM_BYTES = 4;
/** The protocol's hard ceiling on one frame (length prefix included): 16 MiB. */
export const FRAME_BYTES_MAX = 16 * 1024 * 1024;

const KIND_MASK = 0b11;
const CODEC_SHIFT = 2;
const CODEC_MASK = 0b11 << CODEC_SHIFT;
const CHECKSUM_FLAG = 1 << 4;
/** The frame is the first chunk of a stream: its payload starts with the message's size. */
export const STREAM_FIRST_FLAG = 1 << 5;
/** The frame is a later chunk of a stream. */
export const STREAM_NEXT_FLAG = 1 << 6;
export const STREAM_FLAGS = STREAM_FIRST_FLAG | STREAM_NEXT_FLAG;
const PRIORITY_SHIFT = 7;
const PRIORITY_MASK = 0b11 << PRIORITY_SHIFT;
const RESERVED_MASK =
  0xffff & ~(KIND_MASK | CODEC_MASK | CHECKSUM_FLAG | STREAM_FLAGS | PRIORITY_MASK);
const TWO_POW_32 = 0x1_0000_0000;
const PARTIAL_INITIAL_BYTES = 64 * 1024;

export function makeFlags(kind: FrameKind, codec: Codec, checksum: boolean): number {
  return kind | (codec << CODEC_SHIFT) | (checksum ? CHECKSUM_FLAG : 0);
}
export function flagsKind(flags: number): FrameKind {
  return (flags & KIND_MASK) as FrameKind;
}
export function flagsCodec(flags: number): Codec {
  return ((flags & CODEC_MASK) >> CODEC_SHIFT) as Codec;
}
export function flagsChecksum(flags: number): boolean {
  return (flags & CHECKSUM_FLAG) !== 0;
}
/** The priority bits (0 critical .. 3 low; 0 from a peer that does not set them). */
export function flagsPriority(flags: number): number {
  return (flags & PRIORITY_MASK) >> PRIORITY_SHIFT;
}
export function withPriority(flags: number, priority: number): number {
  return (flags & ~PRIORITY_MASK) | (priority << PRIORITY_SHIFT);
}

/**
 * The big-endian u32 at buf[offset], which the caller knows to be in bounds: plain byte loads,
 * where Buffer's readUInt32BE would check the offset again, on every frame.
 */
function readU32(buf: Uint8Array, offset: number): number {
  return (
    buf[offset]! * 0x100_0000 +
    ((buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!)
  );
}

/** Bytes one frame occupies on the wire. */
export function frameBytes(payloadBytes: number, checksum: boolean): number {
  return FRAME_HEADER_BYTES + payloadBytes + (checksum ? CHECKSUM_BYTES : 0);
}

/**
 * Writes one frame into `target` at `offset`; returns the offset after it. The caller
 * makes room (see OutboundBuffer) so the hot path never allocates.
 */
export function writeFrame(
  target: Buffer,
  offset: number,
  flags: number,
  messageId: number,
  payload: Uint8Array,
): number {
  const checksum = flagsChecksum(flags);
  const length = FRAME_FIXED_BYTES + payload.length + (checksum ? CHECKSUM_BYTES : 0);
  putHeader(target, offset, length, flags, messageId);
  target.set(payload, offset + FRAME_HEADER_BYTES);
  let end = offset + FRAME_HEADER_BYTES + payload.length;
  if (checksum) end = target.writeUInt32BE(crc32(payload), end);
  return end;
}

/**
 * Writes the 14 header bytes at `offset`: length, flags, message id, big-endian. Plain byte
 * stores: the caller has made room and the values are in range, so Buffer's checked writers
 * would only repeat those checks, once per frame.
 */
function putHeader(
  target: Uint8Array,
  offset: number,
  length: number,
  flags: number,
  messageId: number,
): void {
  target[offset] = length >>> 24;
  target[offset + 1] = length >>> 16;
  target[offset + 2] = length >>> 8;
  target[offset + 3] = length;
  target[offset + 4] = flags >>> 8;
  target[offset + 5] = flags;
  const high = Math.floor(messageId / TWO_POW_32);
  target[offset + 6] = high >>> 24;
  target[offset + 7] = high >>> 16;
  target[offset + 8] = high >>> 8;
  target[offset + 9] = high;
  const low = messageId >>> 0;
  target[offset + 10] = low >>> 24;
  target[offset + 11] = low >>> 16;
  target[offset + 12] = low >>> 8;
  target[offset + 13] = low;
}

/** Encodes one frame into a fresh buffer; for tests and cold paths. */
export function encodeFrame(flags: number, messageId: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(frameBytes(payload.length, flagsChecksum(flags)));
  writeFrame(out, 0, flags, messageId, payload);
  return out;
}

/** Receives each complete, checksum-verified frame. `payload` may alias decoder memory
 * only until the callback returns; keep a copy if it must live longer. */
export type FrameHandler = (flags: number, messageId: number, payload: Buffer) => void;

/** As FrameHandler, with the payload given as `source[start, end)` rather than a view of it,
 * so that the hot path allocates nothing per frame. The same lifetime rule applies. */
export type FrameRangeHandler = (
  flags: number,
  messageId: number,
  source: Buffer,
  start: number,
  end: number,
) => void;

export interface FrameDecoderOptions {
  /** Largest frame accepted, length prefix included; at most FRAME_BYTES_MAX. */
  frameBytesMax?: number;
  /** Memory shared with other decoders (a node's budget for buffered frames). The buffer of
   * a partial frame is reserved from it before it is allocated or grown; a reservation that
   * does not fit throws RDB_MEMORY_BUDGET and allocates nothing. */
  budget?: ByteBudget;
}

/** Bytes shared by many buffers. `reserve` answers false, changing nothing, when `bytes`
 * more would not fit; what was reserved is given back with `release`. */
export interface ByteBudget {
  reserve(bytes: number): boolean;
  release(bytes: number): void;
}

/**
 * Streaming decoder: feed it socket chunks in order. Whole frames inside a chunk are
 * handed out as zero-copy views; only a frame split across chunks is copied, into a
 * buffer sized exactly from its (already limit-checked) length prefix. Any violation
 * throws a RdbnetError; after that the connection must be closed, because framing is lost.
 */
export class FrameDecoder {
  readonly frameBytesMax: number;
  /** Bytes of a partial frame (or partial length prefix) carried to the next chunk. */
  private partial: Buffer | null = null;
  private partialFilled = 0;
  /** Wire size of the partial frame; its buffer grows toward this as bytes arrive, so a peer
   * that announces 16 MiB and sends 10 bytes pins 64 KiB, not 16 MiB. */
  private partialTotal = 0;
  private readonly lengthScratch = Buffer.alloc(FRAME_LENGTH_BYTES);
  private lengthScratchFilled = 0;
  private readonly budget: ByteBudget | undefined;
  /** Size of the partial frame's buffer, as reserved from the budget. */
  private reservedBytes = 0;
  private disposed = false;

  constructor(options: FrameDecoderOptions = {}) {
    const max = options.frameBytesMax ?? FRAME_BYTES_MAX;
    if (!(Number.isInteger(max) && max >= FRAME_HEADER_BYTES && max <= FRAME_BYTES_MAX)) {
      throw new ConfigFieldError(
        'frameBytesMax',
        `must be an integer in ${FRAME_HEADER_BYTES}..${FRAME_BYTES_MAX}, got ${max}`,
      );
    }
    this.frameBytesMax = max;
    this.budget = options.budget;
  }

  /** Bytes currently held for an incomplete frame: bounded by frameBytesMax. */
  get bufferedBytes(): number {
    return this.partial === null ? this.lengthScratchFilled : this.partialFilled;
  }

  /** Size of the buffer allocated for the incomplete frame (what the budget is charged). */
  get allocatedBytes(): number {
    return this.reservedBytes;
  }

  /** Drops any incomplete frame and gives its memory back to the budget. Every later push,
   * and the rest of a push under way (a frame handler may dispose), is ignored. */
  dispose(): void {
    this.disposed = true;
    this.partial = null;
    this.partialFilled = 0;
    this.lengthScratchFilled = 0;
    this.releaseAll();
  }

  push(chunk: Buffer, onFrame: FrameHandler): void {
    this.pushRanges(chunk, (flags, messageId, source, start, end) =>
      onFrame(flags, messageId, source.subarray(start, end)),
    );
  }

  /** As push(), handing each payload out as a range of its source buffer. */
  pushRanges(chunk: Buffer, onFrame: FrameRangeHandler): void {
    if (this.disposed) return;
    let offset = 0;
    if (this.lengthScratchFilled > 0 || this.partial !== null) {
      offset = this.continuePartial(chunk, onFrame);
      if (offset < 0 || this.disposed) return;
    }
    const end = chunk.length;
    while (end - offset >= FRAME_LENGTH_BYTES) {
      const length = readU32(chunk, offset);
      this.checkLength(length);
      const total = FRAME_LENGTH_BYTES + length;
      if (end - offset < total) break;
      this.emit(chunk, offset, total, onFrame);
      if (this.disposed) return;
      offset += total;
    }
    if (offset < end) this.startPartial(chunk, offset);
  }

  /** Returns the chunk offset where whole-frame parsing resumes, or -1 if the chunk was used up. */
  private continuePartial(chunk: Buffer, onFrame: FrameRangeHandler): number {
    let offset = 0;
    if (this.partial === null) {
      const need = FRAME_LENGTH_BYTES - this.lengthScratchFilled;
      const take = Math.min(need, chunk.length);
      chunk.copy(this.lengthScratch, this.lengthScratchFilled, 0, take);
      this.lengthScratchFilled += take;
      offset = take;
      if (this.lengthScratchFilled < FRAME_LENGTH_BYTES) return -1;
      const length = this.lengthScratch.readUInt32BE(0);
      this.checkLength(length);
      const initialBytes = Math.min(FRAME_LENGTH_BYTES + length, PARTIAL_INITIAL_BYTES);
      this.reserve(initialBytes, FRAME_LENGTH_BYTES + length);
      this.lengthScratchFilled = 0;
      this.partialTotal = FRAME_LENGTH_BYTES + length;
      this.partial = Buffer.allocUnsafe(initialBytes);
      this.lengthScratch.copy(this.partial, 0);
      this.partialFilled = FRAME_LENGTH_BYTES;
    }
    const take = Math.min(this.partialTotal - this.partialFilled, chunk.length - offset);
    this.reservePartial(this.partialFilled + take);
    const partial = this.partial!;
    chunk.copy(partial, this.partialFilled, offset, offset + take);
    this.partialFilled += take;
    offset += take;
    if (this.partialFilled < this.partialTotal) return -1;
    this.partial = null;
    this.partialFilled = 0;
    this.releaseAll();
    this.emit(partial, 0, this.partialTotal, onFrame);
    return offset;
  }

  private startPartial(chunk: Buffer, offset: number): void {
    const remaining = chunk.length - offset;
    if (remaining < FRAME_LENGTH_BYTES) {
      chunk.copy(this.lengthScratch, 0, offset);
      this.lengthScratchFilled = remaining;
      return;
    }
    const length = chunk.readUInt32BE(offset);
    const total = FRAME_LENGTH_BYTES + length;
    const initialBytes = Math.min(total, Math.max(remaining, PARTIAL_INITIAL_BYTES));
    this.reserve(initialBytes, total);
    this.partialTotal = total;
    this.partial = Buffer.allocUnsafe(initialBytes);
    chunk.copy(this.partial, 0, offset);
    this.partialFilled = remaining;
  }

  /** Grows the partial buffer by doubling, never past the frame's announced size. */
  private reservePartial(bytes: number): void {
    const partial = this.partial!;
    if (bytes <= partial.length) return;
    let size = partial.length * 2;
    while (size < bytes) size *= 2;
    const grownBytes = Math.min(size, this.partialTotal);
    this.reserve(grownBytes - partial.length, this.partialTotal);
    const grown = Buffer.allocUnsafe(grownBytes);
    partial.copy(grown, 0, 0, this.partialFilled);
    this.partial = grown;
  }

  /** Takes `bytes` from the budget before they are allocated, or refuses the frame. */
  private reserve(bytes: number, frameBytes: number): void {
    if (this.budget !== undefined && !this.budget.reserve(bytes)) {
      throw new RdbnetError(
        ErrorCode.MemoryBudget,
        `buffering a frame of ${frameBytes} bytes would take the node past its memory budget`,
      );
    }
    this.reservedBytes += bytes;
  }

  private releaseAll(): void {
    if (this.reservedBytes === 0) return;
    this.budget?.release(this.reservedBytes);
    this.reservedBytes = 0;
  }

  private checkLength(length: number): void {
    if (length < FRAME_FIXED_BYTES) {
      throw new RdbnetError(
        ErrorCode.FrameMalformed,
        `frame length ${length} is shorter than the ${FRAME_FIXED_BYTES}-byte header`,
      );
    }
    if (FRAME_LENGTH_BYTES + length > this.frameBytesMax) {
      throw new RdbnetError(
        ErrorCode.FrameTooLarge,
        `frame of ${FRAME_LENGTH_BYTES + length} bytes exceeds the limit of ${this.frameBytesMax}`,
      );
    }
  }

  /** source[start, start + total) is one whole frame, its length already checked. */
  private emit(source: Buffer, start: number, total: number, onFrame: FrameRangeHandler): void {
    const flags = (source[start + 4]! << 8) | source[start + 5]!;
    if ((flags & RESERVED_MASK) !== 0) {
      throw new RdbnetError(
        ErrorCode.FrameMalformed,
        `frame flags 0x${flags.toString(16)} set reserved bits`,
      );
    }
    if (flagsCodec(flags) > Codec.Zstd) {
      throw new RdbnetError(
        ErrorCode.CodecUnsupported,
        `frame uses unknown codec ${flagsCodec(flags)}`,
      );
    }
    const high = readU32(source, start + 6);
    if (high > 0x1f_ffff) {
      throw new RdbnetError(ErrorCode.FrameMalformed, 'message id above 2^53 is not supported');
    }
    const messageId = high * TWO_POW_32 + readU32(source, start + 10);
    let payloadEnd = start + total;
    if (flagsChecksum(flags)) {
      payloadEnd -= CHECKSUM_BYTES;
      if (payloadEnd < start + FRAME_HEADER_BYTES) {
        throw new RdbnetError(ErrorCode.FrameMalformed, 'frame too short for its checksum');
      }
      const expected = source.readUInt32BE(payloadEnd);
      const actual = crc32(source.subarray(start + FRAME_HEADER_BYTES, payloadEnd));
      if (actual !== expected) {
        throw new RdbnetError(
          ErrorCode.ChecksumMismatch,
          `frame ${messageId} checksum mismatch (got 0x${actual.toString(16)}, header says 0x${expected.toString(16)})`,
        );
      }
    }
    onFrame(flags, messageId, source, start + FRAME_HEADER_BYTES, payloadEnd);
  }
}

/** What an in-place payload encoder writes through: protobufjs's writer, positioned at the
 * payload. Anything it writes after `pos` becomes the payload. */
export type PayloadWriter = protobuf.Writer;

/** protobufjs 8 writer internals the OutboundBuffer relies on: one growable buffer, grown by
 * `_reserve` before every write. (The equivalence tests in frame.test.ts and protocol-fuzz.test.ts
 * fail if an upgrade changes them.) */
interface WriterInternals {
  buf: Uint8Array;
  pos: number;
  states: number[] | null;
  view: DataView | null;
}

/** Largest slab allocated for small frames, by default. */
const SLAB_BYTES_DEFAULT = 64 * 1024;
/** What a writer holds before its first write and after release(). */
const EMPTY_SLAB = Buffer.alloc(0);
/** First slab of a connection: a mostly idle one never needs more. */
const SLAB_BYTES_MIN = 4 * 1024;
/** A new slab is sized to hold this many turns like the one just taken, so that taking a
 * turn's frames rarely allocates. */
const TURNS_PER_SLAB = 8;
/** A slab grown past this (by one large frame) is dropped at the next take rather than kept. */
const SLAB_BYTES_KEPT_MAX = 1 << 20;

/**
 * protobufjs's BufferWriter over one slab, where frames are appended one after another and
 * handed out in turns. Growing copies only the bytes not yet handed out, and keeps every
 * position where it was, because protobufjs holds positions (ldelim's length slot) across a
 * growth; the space before `start` in a grown buffer is simply left unused.
 */
class SlabWriter extends (protobuf.BufferWriter as unknown as new () => protobuf.Writer &
  WriterInternals) {
  /** First byte not yet handed out by take(). */
  start = 0;
  private readonly slabBytesMax: number;
  private readonly slabBytesMin: number;

  constructor(slabBytesMax: number) {
    super();
    this.slabBytesMax = slabBytesMax;
    this.slabBytesMin = Math.min(SLAB_BYTES_MIN, slabBytesMax);
    // The first write allocates (_reserve): a buffer that never writes holds no slab.
    this.buf = EMPTY_SLAB;
  }

  /** Drops the slab when nothing waits in it (the next write allocates a new one). */
  release(): void {
    if (this.pos !== this.start || this.buf === EMPTY_SLAB) return;
    this.buf = EMPTY_SLAB;
    this.view = null;
    this.start = 0;
    this.pos = 0;
  }

  /** Called by protobufjs before every write of up to `bytes` bytes. */
  _reserve(bytes: number): void {
    const need = this.pos + bytes;
    if (need <= this.buf.length) return;
    let size = Math.max(this.slabBytesMin, this.buf.length);
    while (size < need) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    grown.set(this.buf.subarray(this.start, this.pos), this.start);
    this.buf = grown;
    this.view = null;
  }

  /** Hands out [start, pos) and moves on. A fresh slab, sized by this turn, replaces one where
   * another such turn would not fit, or that a large frame grew. */
  takeSlice(): Buffer {
    const out = (this.buf as Buffer).subarray(this.start, this.pos);
    const taken = this.pos - this.start;
    this.start = this.pos;
    if (this.buf.length - this.pos < taken || this.buf.length > SLAB_BYTES_KEPT_MAX) {
      const size = Math.min(this.slabBytesMax, taken * TURNS_PER_SLAB);
      this.buf = Buffer.allocUnsafe(Math.max(this.slabBytesMin, size));
      this.view = null;
      this.start = 0;
      this.pos = 0;
    }
    return out;
  }
}

/**
 * Collects the frames written during one event-loop turn into one contiguous buffer so
 * they leave in a single socket write. Payloads can be encoded straight into it
 * (appendEncoded), so a message is written once, with no intermediate buffer. Bytes handed
 * out by take() go to the socket and are never written again: later frames go after them,
 * or into a fresh slab.
 */
export class OutboundBuffer {
  private readonly writer: SlabWriter;
  /** Offset of the last frame appended, for dropLast(). */
  private lastFrameStart = -1;

  /** `slabBytesMax`: the largest slab allocated for small frames (a larger frame gets its own). */
  constructor(slabBytesMax = SLAB_BYTES_DEFAULT) {
    // Chosen by code, never configured: a bad size is a bug.
    assert(
      Number.isInteger(slabBytesMax) && slabBytesMax >= 1,
      `OutboundBuffer slabBytesMax must be a positive integer, got ${slabBytesMax}`,
    );
    this.writer = new SlabWriter(slabBytesMax);
  }

  /** Bytes appended and not yet taken. */
  get bytes(): number {
    return this.writer.pos - this.writer.start;
  }

  /**
   * Lets go of the slab if nothing waits in it, for a connection gone idle: 4 KiB or more per
   * connection otherwise kept for writes that may never come (bench:idle-memory). The next
   * append allocates a fresh one. Frames already taken are the socket's and stay valid.
   */
  releaseIdle(): void {
    this.writer.release();
  }

  append(flags: number, messageId: number, payload: Uint8Array): void {
    const writer = this.writer;
    writer._reserve(frameBytes(payload.length, flagsChecksum(flags)));
    this.lastFrameStart = writer.pos;
    writer.pos = writeFrame(writer.buf as Buffer, writer.pos, flags, messageId, payload);
  }

  /**
   * Appends one chunk of a stream: payload `data[start, end)`, preceded by the message's size
   * (u32) when `total` is not negative (the stream's first chunk).
   */
  appendChunk(
    flags: number,
    messageId: number,
    total: number,
    data: Uint8Array,
    start: number,
    end: number,
  ): void {
    const writer = this.writer;
    const prefixBytes = total >= 0 ? 4 : 0;
    const payloadBytes = prefixBytes + end - start;
    const checksum = flagsChecksum(flags);
    writer._reserve(frameBytes(payloadBytes, checksum));
    const frameStart = writer.pos;
    const buffer = writer.buf as Buffer;
    const length = FRAME_FIXED_BYTES + payloadBytes + (checksum ? CHECKSUM_BYTES : 0);
    putHeader(buffer, frameStart, length, flags, messageId);
    const payloadStart = frameStart + FRAME_HEADER_BYTES;
    if (prefixBytes > 0) buffer.writeUInt32BE(total, payloadStart);
    buffer.set(data.subarray(start, end), payloadStart + prefixBytes);
    let pos = payloadStart + payloadBytes;
    if (checksum) pos = buffer.writeUInt32BE(crc32(buffer.subarray(payloadStart, pos)), pos);
    writer.pos = pos;
    this.lastFrameStart = frameStart;
  }

  /**
   * Appends one frame whose payload `encode(writer, value)` writes in place (a static function
   * and its argument, so the hot path allocates no closure). Returns the payload's length. If
   * encode throws, nothing is appended.
   */
  appendEncoded<T>(
    flags: number,
    messageId: number,
    encode: (writer: PayloadWriter, value: T) => void,
    value: T,
  ): number {
    const writer = this.writer;
    const frameStart = writer.pos;
    writer._reserve(FRAME_HEADER_BYTES);
    writer.pos += FRAME_HEADER_BYTES;
    try {
      encode(writer, value);
    } catch (error) {
      writer.pos = frameStart;
      if (writer.states !== null) writer.states.length = 0;
      throw error;
    }
    const payloadStart = frameStart + FRAME_HEADER_BYTES;
    const payloadBytes = writer.pos - payloadStart;
    const checksum = flagsChecksum(flags);
    if (checksum) writer._reserve(CHECKSUM_BYTES);
    const buffer = writer.buf as Buffer;
    const length = FRAME_FIXED_BYTES + payloadBytes + (checksum ? CHECKSUM_BYTES : 0);
    putHeader(buffer, frameStart, length, flags, messageId);
    if (checksum) {
      writer.pos = buffer.writeUInt32BE(
        crc32(buffer.subarray(payloadStart, writer.pos)),
        writer.pos,
      );
    }
    this.lastFrameStart = frameStart;
    return payloadBytes;
  }

  /** The payload of the frame appended last, as a view valid until the next append or take. */
  lastPayload(): Buffer {
    const start = this.lastFrameStart;
    if (start < 0) throw new Error('invariant violated: lastPayload() with no frame appended');
    const buffer = this.writer.buf as Buffer;
    const length = buffer.readUInt32BE(start);
    const flags = buffer.readUInt16BE(start + 4);
    const end = start + FRAME_LENGTH_BYTES + length - (flagsChecksum(flags) ? CHECKSUM_BYTES : 0);
    return buffer.subarray(start + FRAME_HEADER_BYTES, end);
  }

  /** Removes the frame appended last (to append it again in another form, compressed say). */
  dropLast(): void {
    if (this.lastFrameStart < 0) {
      throw new Error('invariant violated: dropLast() with no frame appended');
    }
    this.writer.pos = this.lastFrameStart;
    this.lastFrameStart = -1;
  }

  /** Hands out everything appended so far. */
  take(): Buffer {
    this.lastFrameStart = -1;
    return this.writer.takeSlice();
  }
}
