/**
 * Frame codec for protocol v1.
 *
 *   u32 length | u16 flags | u64 message id | payload | [u32 CRC-32 of payload]
 *
 * `length` counts every byte after itself (flags + id + payload + checksum), big-endian.
 * flags: bits 0-1 frame kind, bits 2-3 payload codec, bit 4 checksum present; the other
 * bits are reserved and must be zero, so a peer speaking a future layout is refused
 * rather than misread.
 *
 * The decoder checks `length` against its limit as soon as the four length bytes are
 * in, before buffering anything of the frame, so a hostile 4 GiB prefix costs nothing.
 */
import { crc32 } from 'node:zlib';
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
const RESERVED_MASK = 0xffff & ~(KIND_MASK | CODEC_MASK | CHECKSUM_FLAG);
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
  target.writeUInt32BE(length, offset);
  target.writeUInt16BE(flags, offset + 4);
  target.writeUInt32BE(Math.floor(messageId / TWO_POW_32), offset + 6);
  target.writeUInt32BE(messageId >>> 0, offset + 10);
  target.set(payload, offset + FRAME_HEADER_BYTES);
  let end = offset + FRAME_HEADER_BYTES + payload.length;
  if (checksum) end = target.writeUInt32BE(crc32(payload), end);
  return end;
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
    if (this.disposed) return;
    let offset = 0;
    if (this.lengthScratchFilled > 0 || this.partial !== null) {
      offset = this.continuePartial(chunk, onFrame);
      if (offset < 0 || this.disposed) return;
    }
    const end = chunk.length;
    while (end - offset >= FRAME_LENGTH_BYTES) {
      const length = chunk.readUInt32BE(offset);
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
  private continuePartial(chunk: Buffer, onFrame: FrameHandler): number {
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

  private emit(source: Buffer, start: number, total: number, onFrame: FrameHandler): void {
    const flags = source.readUInt16BE(start + 4);
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
    const high = source.readUInt32BE(start + 6);
    if (high > 0x1f_ffff) {
      throw new RdbnetError(ErrorCode.FrameMalformed, 'message id above 2^53 is not supported');
    }
    const messageId = high * TWO_POW_32 + source.readUInt32BE(start + 10);
    let payloadEnd = start + total;
    if (flagsChecksum(flags)) {
      payloadEnd -= CHECKSUM_BYTES;
      if (payloadEnd < start + FRAME_HEADER_BYTES) {
        throw new RdbnetError(ErrorCode.FrameMalformed, 'frame too short for its checksum');
      }
      const payload = source.subarray(start + FRAME_HEADER_BYTES, payloadEnd);
      const expected = source.readUInt32BE(payloadEnd);
      const actual = crc32(payload);
      if (actual !== expected) {
        throw new RdbnetError(
          ErrorCode.ChecksumMismatch,
          `frame ${messageId} checksum mismatch (got 0x${actual.toString(16)}, header says 0x${expected.toString(16)})`,
        );
      }
      onFrame(flags, messageId, payload);
      return;
    }
    onFrame(flags, messageId, source.subarray(start + FRAME_HEADER_BYTES, payloadEnd));
  }
}

/**
 * Collects the frames written during one event-loop turn into one contiguous buffer so
 * they leave in a single socket write. Grows by doubling; a taken buffer is handed to
 * the socket and never reused, so no frame can be overwritten while in flight.
 */
export class OutboundBuffer {
  private buffer: Buffer;
  private used = 0;
  private readonly initialBytes: number;

  constructor(initialBytes = 16 * 1024) {
    // Chosen by code, never configured: a bad size is a bug.
    assert(
      Number.isInteger(initialBytes) && initialBytes >= 1,
      `OutboundBuffer initialBytes must be a positive integer, got ${initialBytes}`,
    );
    this.initialBytes = initialBytes;
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  get bytes(): number {
    return this.used;
  }

  append(flags: number, messageId: number, payload: Uint8Array): void {
    const needed = frameBytes(payload.length, flagsChecksum(flags));
    if (this.used + needed > this.buffer.length) this.grow(this.used + needed);
    this.used = writeFrame(this.buffer, this.used, flags, messageId, payload);
  }

  /** Hands out everything appended so far and starts a fresh buffer. */
  take(): Buffer {
    const out = this.buffer.subarray(0, this.used);
    this.buffer = Buffer.allocUnsafe(Math.max(this.initialBytes, Math.min(this.used, 1 << 20)));
    this.used = 0;
    return out;
  }

  private grow(minBytes: number): void {
    let size = this.buffer.length * 2;
    while (size < minBytes) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buffer.copy(next, 0, 0, this.used);
    this.buffer = next;
  }
}
