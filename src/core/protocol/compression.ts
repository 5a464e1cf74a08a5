/**
 * Payload compression. A frame says in its flags which codec packed it, so each side
 * may choose per frame: small payloads go raw (compressing 64 bytes costs more than it
 * saves), and a payload that does not shrink is sent raw too.
 *
 * Decompression is bounded before any work is done: LZ4 blocks carry their decoded size
 * in front (lz4-napi prepends it, little-endian u32), and zstd is given maxOutputLength.
 */

import { constants as zlibConstants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { compressSync as lz4Compress, uncompressSync as lz4Decompress } from 'lz4-napi';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { Codec } from './frame.ts';

/** Codecs this build can decode, most preferred first (LZ4: cheapest CPU per byte saved). */
export const SUPPORTED_CODECS: readonly Codec[] = [Codec.Lz4, Codec.Zstd, Codec.None];

/** Payloads smaller than this go uncompressed whatever the negotiated codec. */
export const COMPRESS_THRESHOLD_BYTES_DEFAULT = 1024;

export function codecName(codec: Codec): string {
  switch (codec) {
    case Codec.None:
      return 'none';
    case Codec.Lz4:
      return 'lz4';
    case Codec.Zstd:
      return 'zstd';
  }
}

export function parseCodecName(name: string): Codec {
  switch (name) {
    case 'none':
      return Codec.None;
    case 'lz4':
      return Codec.Lz4;
    case 'zstd':
      return Codec.Zstd;
    default:
      throw new RdbnetError(
        ErrorCode.Usage,
        `unknown codec '${name}' (expected none, lz4 or zstd)`,
      );
  }
}

/** Picks the first codec in our preference order that the peer also offers. */
export function negotiateCodec(
  offered: readonly Codec[],
  ours: readonly Codec[] = SUPPORTED_CODECS,
): Codec {
  for (const codec of ours) if (offered.includes(codec)) return codec;
  return Codec.None;
}

/**
 * Compresses when it pays. Returns the codec actually used with the bytes to send.
 */
export function compressPayload(
  codec: Codec,
  payload: Uint8Array,
  thresholdBytes: number,
): { codec: Codec; payload: Uint8Array } {
  if (codec === Codec.None || payload.length < thresholdBytes)
    return { codec: Codec.None, payload };
  const input = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  const packed =
    codec === Codec.Lz4
      ? lz4Compress(input)
      : zstdCompressSync(input, { params: { [zlibConstants.ZSTD_c_compressionLevel]: 3 } });
  if (packed.length >= payload.length) return { codec: Codec.None, payload };
  return { codec, payload: packed };
}

export function decompressPayload(codec: Codec, payload: Buffer, decodedBytesMax: number): Buffer {
  if (codec === Codec.None) return payload;
  if (codec === Codec.Lz4) {
    if (payload.length < 4) {
      throw new RdbnetError(ErrorCode.DecompressFailed, 'lz4 payload shorter than its size prefix');
    }
    const decodedBytes = payload.readUInt32LE(0);
    if (decodedBytes > decodedBytesMax) {
      throw new RdbnetError(
        ErrorCode.FrameTooLarge,
        `lz4 payload would decode to ${decodedBytes} bytes, over the limit of ${decodedBytesMax}`,
      );
    }
    try {
      return lz4Decompress(payload);
    } catch (cause) {
      throw new RdbnetError(ErrorCode.DecompressFailed, 'lz4 payload is corrupt', { cause });
    }
  }
  try {
    return zstdDecompressSync(payload, { maxOutputLength: decodedBytesMax });
  } catch (cause) {
    const tooBig = (cause as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    throw new RdbnetError(
      tooBig ? ErrorCode.FrameTooLarge : ErrorCode.DecompressFailed,
      tooBig
        ? `zstd payload decodes to more than the limit of ${decodedBytesMax} bytes`
        : 'zstd payload is corrupt',
      { cause },
    );
  }
}
