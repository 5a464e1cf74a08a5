import { ConfigFieldError } from '../errors.ts';
import { COMPRESS_THRESHOLD_BYTES_DEFAULT } from '../protocol/compression.ts';
import { FRAME_BYTES_MAX, FRAME_HEADER_BYTES } from '../protocol/frame.ts';
import { WINDOW_BYTES_MAX } from './streams.ts';

/** Per-connection limits and behaviour. Every bound has a defined overflow behaviour. */
export interface ConnectionOptions {
  /** Largest frame accepted from the peer, length prefix included. A larger length prefix
   * closes the connection with RDB_FRAME_TOO_LARGE before any of it is buffered. */
  frameBytesMax: number;
  /** Payloads at least this large are compressed with the negotiated codec. */
  compressThresholdBytes: number;
  /** Append a CRC-32 of the payload to every frame we send on a plaintext connection. On TLS
   * it is left off: TLS 1.3's AEAD already authenticates every byte, so a CRC would only
   * repeat that work. Frames received are verified whenever their sender set the flag. */
  checksum: boolean;
  /** Frames written in one event-loop turn leave in one write, up to this many bytes; a
   * larger batch is sent in pieces of this size as it fills, so the peer can overlap. Default
   * 64 KiB: every write costs a TLS record, a system call and a wake-up of the peer, so a turn's
   * small frames leave together (with 4 KiB pieces, bench:protocol's echo took 40% more CPU
   * per call and made a third of the calls/s on a busy machine). */
  writeBatchBytesMax: number;
  /** Requests this side may have outstanding on one connection; one more is rejected at
   * once with RDB_INFLIGHT_LIMIT (the caller should slow down, not queue unboundedly). */
  inflightRequestsMax: number;
  /** Requests from the peer being handled at once; beyond it the peer gets an error reply. */
  inboundInflightMax: number;
  /** Default deadline of a request, from the call until its response arrives. The call's time
   * is the clock as the first request of its event-loop turn read it (one reading serves a
   * turn's requests); the deadline is checked every 50 ms. */
  requestTimeoutMs: number;
  /** Bytes allowed to wait for a congested socket. Past it new requests are rejected with
   * RDB_WRITE_QUEUE_FULL, and a peer that will not read its responses is disconnected. */
  writeBufferBytesMax: number;
  /** Time for the dialing side to connect, finish TLS and get the HelloAck. */
  handshakeTimeoutMs: number;
  /** A request or response whose encoded message is larger than this is sent as a stream of
   * chunks of this size (when the peer takes streams), so that small messages interleave
   * between its chunks. At most frameBytesMax less the frame header. Default 16 KiB (one TLS
   * record). */
  streamChunkBytes: number;
  /** Credit each stream the peer sends us starts with, and is granted back as we consume it
   * (once half is used). Default 64 KiB (HTTP/2's initial window). */
  streamWindowBytes: number;
  /** Credit of all the peer's streams together on this connection: it bounds the chunked bytes
   * in flight towards us, so a small message never waits behind more than this in the
   * sockets' buffers. The trade: a transfer moves at most this much per round trip (64 KiB at
   * 0.1 ms is 640 MB/s; raise it for long round trips). Default 64 KiB. */
  connectionWindowBytes: number;
  /** Chunked messages the peer may send us at once; one more stream is refused with
   * RDB_STREAM_LIMIT. We send at most the peer's number at once, the rest wait their turn.
   * Default 100. */
  streamsMax: number;
  /** Largest message reassembled from a stream; a larger one is refused (RDB_MESSAGE_TOO_LARGE)
   * for that stream alone. Messages that are not chunked are bounded by frameBytesMax.
   * Default 64 MiB. */
  messageBytesMax: number;
}

export const DEFAULT_CONNECTION_OPTIONS: Readonly<ConnectionOptions> = Object.freeze({
  frameBytesMax: FRAME_BYTES_MAX,
  compressThresholdBytes: COMPRESS_THRESHOLD_BYTES_DEFAULT,
  checksum: true,
  writeBatchBytesMax: 64 * 1024,
  inflightRequestsMax: 1024,
  inboundInflightMax: 1024,
  requestTimeoutMs: 5000,
  writeBufferBytesMax: 64 * 1024 * 1024,
  handshakeTimeoutMs: 5000,
  streamChunkBytes: 16 * 1024,
  streamWindowBytes: 64 * 1024,
  connectionWindowBytes: 64 * 1024,
  streamsMax: 100,
  messageBytesMax: 64 * 1024 * 1024,
});

/** The defaults with `overrides`; a value out of range is a ConfigFieldError naming it. */
export function connectionOptions(overrides: Partial<ConnectionOptions> = {}): ConnectionOptions {
  const options = { ...DEFAULT_CONNECTION_OPTIONS, ...overrides };
  for (const [name, value] of Object.entries(options)) {
    if (typeof value === 'number' && !(Number.isFinite(value) && value > 0)) {
      throw new ConfigFieldError(name, `must be a positive number, got ${value}`);
    }
  }
  if (options.frameBytesMax > FRAME_BYTES_MAX) {
    throw new ConfigFieldError(
      'frameBytesMax',
      `cannot exceed the protocol limit of ${FRAME_BYTES_MAX}, got ${options.frameBytesMax}`,
    );
  }
  for (const name of [
    'streamChunkBytes',
    'streamWindowBytes',
    'connectionWindowBytes',
    'streamsMax',
    'messageBytesMax',
  ] as const) {
    if (!Number.isInteger(options[name]) || options[name] > WINDOW_BYTES_MAX) {
      throw new ConfigFieldError(
        name,
        `must be an integer of at most ${WINDOW_BYTES_MAX}, got ${options[name]}`,
      );
    }
  }
  if (options.streamChunkBytes + FRAME_HEADER_BYTES + 8 > options.frameBytesMax) {
    throw new ConfigFieldError(
      'streamChunkBytes',
      `must leave room for a frame's header within frameBytesMax (${options.frameBytesMax}), got ${options.streamChunkBytes}`,
    );
  }
  return options;
}
