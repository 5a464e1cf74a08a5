/**
 * Multiplexed streams inside one connection: how a large message is cut into chunks, how
 * chunks of many messages share the connection, and flow control — the bookkeeping only
 * (pure: no sockets, no clock), driven by Connection.
 *
 * A request or a response whose encoded envelope is larger than the chunk size is sent as a
 * stream: frames of at most `chunkBytes` on the message's id, the first one (flag STREAM_FIRST)
 * starting with the whole message's size (u32), the others flagged STREAM_NEXT. Small messages
 * are never chunked and go between chunks, so one large message cannot block them.
 *
 * Flow control is credit-based like HTTP/2: each side announces in its Hello (or HelloAck) the
 * credit a new stream starts with (`streamWindowBytes`), the credit of the whole connection
 * (`connectionWindowBytes`) and how many streams it takes in at once (`streamsMax`). Every chunk
 * costs its data bytes on both. The receiver grants credit back as it consumes chunks (a
 * StreamControl frame, once half a window is used); a sender with no credit holds the stream
 * (other streams and small messages go on) until credit comes, or until the message's deadline
 * cancels it. Sending past a window is the peer breaking the protocol: past a stream's, that
 * stream is reset (RDB_FLOW_CONTROL), past the connection's, the connection is closed.
 *
 * Reassembly: a message larger than `messageBytesMax`, or a stream past `streamsMax`, is
 * refused for that stream alone (RDB_MESSAGE_TOO_LARGE, RDB_STREAM_LIMIT). A stream's buffer
 * grows with what arrived (never past its announced size), reserved from the node's byte budget
 * when there is one.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { ByteBudget, Codec } from '../protocol/frame.ts';
import type { StreamControl, StreamCredit, StreamReset } from '../protocol/messages.ts';
import { type Priority, WeightedScheduler } from './priority.ts';

/** What a receiver accepts of chunked messages (announced in the handshake). */
export interface StreamSettings {
  /** Credit a new stream starts with, in data bytes. */
  streamWindowBytes: number;
  /** Credit of the whole connection (every stream's chunks together). */
  connectionWindowBytes: number;
  /** Streams (chunked messages being received) at once. */
  streamsMax: number;
}

/** Bytes of the size prefix the first chunk of a stream carries. */
export const STREAM_TOTAL_PREFIX_BYTES = 4;
/** Largest credit a window may reach (as HTTP/2): more is a peer's bug, refused. */
export const WINDOW_BYTES_MAX = 0x7fff_ffff;
/** Streams this side reset and still drops late chunks of (chunks already in flight when the
 * peer learns of the reset); the oldest is forgotten past it. */
export const RESET_STREAMS_REMEMBERED_MAX = 1024;
/** First buffer of a stream being reassembled; it doubles as chunks arrive. */
const REASSEMBLY_INITIAL_BYTES = 64 * 1024;

/** A stream-level failure: only the stream (id, reply) is refused; the connection goes on. */
export class StreamError extends RdbnetError {
  readonly streamId: number;
  readonly reply: boolean;
  constructor(streamId: number, reply: boolean, code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'StreamError';
    this.streamId = streamId;
    this.reply = reply;
  }
}

// ---- sending

/** One message being sent in chunks. */
export class OutboundStream {
  /** True: a response (to the peer's request `id`); false: our request `id`. */
  readonly reply: boolean;
  readonly id: number;
  readonly priority: Priority;
  /** Codec of `data` as a whole (the receiver decompresses after reassembly). */
  readonly codec: Codec;
  readonly data: Uint8Array;
  /** Bytes of `data` sent so far. */
  offset = 0;
  /** Credit the peer has granted this stream and we have not used. */
  credit = 0;
  /** waiting: for a stream slot; ready: in the scheduler; blocked: no stream credit. */
  state: 'waiting' | 'ready' | 'blocked' | 'done' = 'waiting';

  constructor(reply: boolean, id: number, priority: Priority, codec: Codec, data: Uint8Array) {
    this.reply = reply;
    this.id = id;
    this.priority = priority;
    this.codec = codec;
    this.data = data;
  }
}

/** One chunk to write: data[start, end) of `stream`. */
export interface Chunk {
  stream: OutboundStream;
  start: number;
  end: number;
  /** The stream's first chunk: its frame carries the total size first. */
  first: boolean;
  /** The stream's last chunk. */
  last: boolean;
}

const streamKey = (reply: boolean, id: number): number => (reply ? -id - 1 : id);

/**
 * The sending half: streams this side sends, credit the peer granted, and the weighted
 * round robin (priority.ts) that picks whose chunk goes next. At most the peer's streamsMax
 * streams are active; the rest wait, in order, at most `waitingMax` of them.
 */
export class StreamSender {
  readonly peer: Readonly<StreamSettings>;
  readonly chunkBytes: number;
  private connectionCredit: number;
  private readonly scheduler: WeightedScheduler<OutboundStream>;
  private readonly active = new Map<number, OutboundStream>();
  private readonly waiting: OutboundStream[] = [];
  private readonly waitingMax: number;
  /** Bytes of every stream not yet sent, active or waiting; at most `bytesMax`. */
  private queuedBytes = 0;
  private readonly bytesMax: number;
  /** Data bytes sent in chunks, over the connection's life. */
  chunkBytesSent = 0;
  chunksSent = 0;

  constructor(
    peer: StreamSettings,
    chunkBytes: number,
    waitingMax: number,
    bytesMax: number = Number.MAX_SAFE_INTEGER,
    weights?: readonly number[],
  ) {
    this.peer = { ...peer };
    this.bytesMax = bytesMax;
    this.chunkBytes = chunkBytes;
    this.connectionCredit = peer.connectionWindowBytes;
    this.waitingMax = waitingMax;
    this.scheduler = new WeightedScheduler(Math.max(1, peer.streamsMax), weights);
  }

  /** Streams being sent (active) and waiting for a slot. */
  get streams(): { active: number; waiting: number } {
    return { active: this.active.size, waiting: this.waiting.length };
  }

  /** Connection credit left (for stats and tests). */
  get credit(): number {
    return this.connectionCredit;
  }

  /** True when some chunk could be sent now. */
  get hasReady(): boolean {
    return this.connectionCredit > 0 && this.scheduler.size > 0;
  }

  /** Bytes of the streams' messages not yet sent. */
  get bytes(): number {
    return this.queuedBytes;
  }

  /** Starts sending `stream`, or queues it behind the streams in flight. RDB_WRITE_QUEUE_FULL
   * when waitingMax streams already wait, or its bytes would take the total past bytesMax (a
   * message larger than bytesMax alone is still taken when nothing else waits). */
  open(stream: OutboundStream): void {
    if (this.queuedBytes > 0 && this.queuedBytes + stream.data.length > this.bytesMax) {
      throw new RdbnetError(
        ErrorCode.WriteQueueFull,
        `${this.queuedBytes} bytes of chunked messages already wait to be sent (limit ${this.bytesMax})`,
      );
    }
    if (this.active.size < this.peer.streamsMax) {
      this.activate(stream);
    } else if (this.waiting.length >= this.waitingMax) {
      throw new RdbnetError(
        ErrorCode.WriteQueueFull,
        `${this.waiting.length} chunked messages already wait for one of the peer's ${this.peer.streamsMax} streams`,
      );
    } else {
      stream.state = 'waiting';
      this.waiting.push(stream);
    }
    this.queuedBytes += stream.data.length;
  }

  /** The next chunk by priority, within every credit; null when none can go now. */
  nextChunk(): Chunk | null {
    if (this.connectionCredit <= 0) return null;
    const stream = this.scheduler.next();
    if (stream === undefined) return null;
    const remaining = stream.data.length - stream.offset;
    const bytes = Math.min(this.chunkBytes, remaining, stream.credit, this.connectionCredit);
    const start = stream.offset;
    const end = start + bytes;
    stream.offset = end;
    this.queuedBytes -= bytes;
    stream.credit -= bytes;
    this.connectionCredit -= bytes;
    this.chunkBytesSent += bytes;
    this.chunksSent++;
    const last = end === stream.data.length;
    if (last) this.finish(stream);
    // First in, first out within a priority: a message goes on while it has credit, so the
    // first of eight bulk messages completes after its own bytes, not after all eight's.
    else if (stream.credit > 0) this.scheduler.pushFront(stream.priority, stream);
    else stream.state = 'blocked';
    return { stream, start, end, first: start === 0, last };
  }

  /** Credit from the peer. Past WINDOW_BYTES_MAX is RDB_FLOW_CONTROL (the connection's). */
  grant(control: Pick<StreamControl, 'connectionBytes' | 'credits'>): void {
    const connectionBytes = control.connectionBytes ?? 0;
    if (this.connectionCredit + connectionBytes > WINDOW_BYTES_MAX) {
      throw new RdbnetError(
        ErrorCode.FlowControl,
        `connection credit granted past ${WINDOW_BYTES_MAX} bytes`,
      );
    }
    this.connectionCredit += connectionBytes;
    for (const credit of control.credits ?? []) this.grantStream(credit);
  }

  private grantStream(credit: StreamCredit): void {
    const stream = this.active.get(streamKey(credit.reply, Number(credit.id)));
    // Credit for a stream already finished or cancelled: nothing to do.
    if (stream === undefined) return;
    if (stream.credit + credit.bytes > WINDOW_BYTES_MAX) {
      throw new RdbnetError(
        ErrorCode.FlowControl,
        `stream ${credit.id} credit granted past ${WINDOW_BYTES_MAX} bytes`,
      );
    }
    stream.credit += credit.bytes;
    if (stream.state === 'blocked' && stream.credit > 0) {
      stream.state = 'ready';
      this.scheduler.push(stream.priority, stream);
    }
  }

  /** Stops sending a stream (its request completed or timed out, or the peer reset it).
   * Answers whether it was still being sent. */
  cancel(reply: boolean, id: number): boolean {
    const key = streamKey(reply, id);
    const stream = this.active.get(key);
    if (stream !== undefined) {
      if (stream.state === 'ready') this.scheduler.remove((item) => item === stream);
      this.queuedBytes -= stream.data.length - stream.offset;
      this.finish(stream);
      return true;
    }
    const index = this.waiting.findIndex((item) => item.reply === reply && item.id === id);
    if (index < 0) return false;
    const waiting = this.waiting.splice(index, 1)[0]!;
    waiting.state = 'done';
    this.queuedBytes -= waiting.data.length;
    return true;
  }

  /** Drops every stream (the connection is closing). */
  clear(): void {
    this.scheduler.remove(() => true);
    for (const stream of this.active.values()) stream.state = 'done';
    for (const stream of this.waiting) stream.state = 'done';
    this.active.clear();
    this.waiting.length = 0;
    this.queuedBytes = 0;
  }

  private activate(stream: OutboundStream): void {
    const key = streamKey(stream.reply, stream.id);
    if (this.active.has(key)) {
      throw new Error(`invariant violated: stream ${stream.id} (reply ${stream.reply}) sent twice`);
    }
    this.active.set(key, stream);
    stream.credit = this.peer.streamWindowBytes;
    stream.state = 'ready';
    this.scheduler.push(stream.priority, stream);
  }

  private finish(stream: OutboundStream): void {
    stream.state = 'done';
    this.active.delete(streamKey(stream.reply, stream.id));
    const next = this.waiting.shift();
    if (next !== undefined) this.activate(next);
  }
}

// ---- receiving

interface InboundStream {
  reply: boolean;
  id: number;
  /** Announced size of the whole message. */
  total: number;
  buffer: Buffer;
  filled: number;
  /** Credit the peer may still use on this stream. */
  windowLeft: number;
  /** Data bytes taken since the stream was last granted credit. */
  consumed: number;
  /** Bytes of `buffer` reserved from the budget. */
  reserved: number;
  codec: Codec;
}

export interface StreamReceiverOptions {
  /** What this side announced: the peer must stay within it. */
  local: StreamSettings;
  /** Largest message reassembled. */
  messageBytesMax: number;
  /** The node's budget for buffered bytes (accepted connections); none: unbudgeted. */
  budget?: ByteBudget;
}

/** A whole message reassembled from its chunks. */
export interface Reassembled {
  payload: Buffer;
  codec: Codec;
}

/**
 * The receiving half: reassembles the peer's streams within the windows this side announced,
 * and collects the credit to grant back.
 */
export class StreamReceiver {
  private readonly local: StreamSettings;
  private readonly messageBytesMax: number;
  private readonly budget: ByteBudget | undefined;
  private readonly streams = new Map<number, InboundStream>();
  /** Streams reset here, whose late chunks are dropped (oldest first out). */
  private readonly resets = new Set<number>();
  private connectionWindowLeft: number;
  private connectionConsumed = 0;
  private credits: StreamCredit[] = [];
  /** Largest number of data bytes in flight the peer ever had (≤ the connection window). */
  inflightBytesPeak = 0;

  constructor(options: StreamReceiverOptions) {
    this.local = { ...options.local };
    this.messageBytesMax = options.messageBytesMax;
    this.budget = options.budget;
    this.connectionWindowLeft = options.local.connectionWindowBytes;
  }

  /** Streams being reassembled. */
  get open(): number {
    return this.streams.size;
  }

  /** Bytes held by streams being reassembled. */
  get bufferedBytes(): number {
    let bytes = 0;
    for (const stream of this.streams.values()) bytes += stream.buffer.length;
    return bytes;
  }

  /**
   * One chunk: source[start, end) is the frame's payload. Answers the whole message when this
   * chunk completed it, else null. A StreamError refuses that stream only (it is forgotten and
   * its late chunks dropped); any other RdbnetError is about the connection.
   */
  receive(
    reply: boolean,
    id: number,
    first: boolean,
    codec: Codec,
    source: Buffer,
    start: number,
    end: number,
  ): Reassembled | null {
    const key = streamKey(reply, id);
    let total = -1;
    if (first) {
      if (end - start < STREAM_TOTAL_PREFIX_BYTES) {
        throw new RdbnetError(ErrorCode.FrameMalformed, `first chunk of stream ${id} has no size`);
      }
      total = source.readUInt32BE(start);
      start += STREAM_TOTAL_PREFIX_BYTES;
    }
    const bytes = end - start;
    // The connection's window first: every chunk counts, a dropped one too.
    if (bytes > this.connectionWindowLeft) {
      throw new RdbnetError(
        ErrorCode.FlowControl,
        `peer sent a ${bytes}-byte chunk with ${this.connectionWindowLeft} bytes of connection credit`,
      );
    }
    this.connectionWindowLeft -= bytes;
    this.connectionConsumed += bytes;
    this.inflightBytesPeak = Math.max(
      this.inflightBytesPeak,
      this.local.connectionWindowBytes - this.connectionWindowLeft,
    );
    let stream = this.streams.get(key);
    if (first) {
      if (stream !== undefined) {
        throw new RdbnetError(ErrorCode.FrameMalformed, `stream ${id} started twice`);
      }
      this.resets.delete(key);
      stream = this.start(reply, id, total, codec);
    } else if (stream === undefined) {
      if (this.resets.has(key)) return null;
      throw new RdbnetError(ErrorCode.FrameMalformed, `chunk of unknown stream ${id}`);
    }
    if (bytes > stream.windowLeft) {
      this.refuse(stream);
      throw new StreamError(
        id,
        reply,
        ErrorCode.FlowControl,
        `peer sent ${bytes} bytes on stream ${id} with ${stream.windowLeft} bytes of stream credit`,
      );
    }
    if (stream.filled + bytes > stream.total) {
      this.refuse(stream);
      throw new StreamError(
        id,
        reply,
        ErrorCode.FrameMalformed,
        `stream ${id} carries more than the ${stream.total} bytes it announced`,
      );
    }
    stream.windowLeft -= bytes;
    stream.consumed += bytes;
    this.grow(stream, stream.filled + bytes);
    source.copy(stream.buffer, stream.filled, start, end);
    stream.filled += bytes;
    if (stream.filled < stream.total) {
      // Credit back once half the window is used: fewer control frames than one per chunk.
      if (stream.consumed * 2 >= this.local.streamWindowBytes) {
        this.credits.push({ id, reply, bytes: stream.consumed });
        stream.windowLeft += stream.consumed;
        stream.consumed = 0;
      }
      return null;
    }
    this.forget(stream);
    return { payload: stream.buffer.subarray(0, stream.filled), codec: stream.codec };
  }

  /**
   * Credit to grant the peer now, or null when none is due. Connection credit is granted once
   * half the window is used.
   */
  takeControl(): StreamControl | null {
    let connectionBytes = 0;
    if (this.connectionConsumed * 2 >= this.local.connectionWindowBytes) {
      connectionBytes = this.connectionConsumed;
      this.connectionWindowLeft += connectionBytes;
      this.connectionConsumed = 0;
    }
    if (connectionBytes === 0 && this.credits.length === 0) return null;
    const control: StreamControl = { connectionBytes, credits: this.credits, resets: [] };
    this.credits = [];
    return control;
  }

  /** Stops reassembling a stream (its request timed out here): its late chunks are dropped.
   * Answers whether it was being reassembled. */
  reset(reply: boolean, id: number): boolean {
    const stream = this.streams.get(streamKey(reply, id));
    this.remember(streamKey(reply, id));
    if (stream === undefined) return false;
    this.forget(stream);
    return true;
  }

  /** Drops every stream and gives their memory back (the connection is closing). */
  clear(): void {
    for (const stream of [...this.streams.values()]) this.forget(stream);
  }

  private start(reply: boolean, id: number, total: number, codec: Codec): InboundStream {
    if (total > this.messageBytesMax) {
      this.remember(streamKey(reply, id));
      throw new StreamError(
        id,
        reply,
        ErrorCode.MessageTooLarge,
        `message of ${total} bytes exceeds the connection's messageBytesMax of ${this.messageBytesMax}`,
      );
    }
    if (total === 0) {
      this.remember(streamKey(reply, id));
      throw new StreamError(id, reply, ErrorCode.FrameMalformed, `stream ${id} announces 0 bytes`);
    }
    if (this.streams.size >= this.local.streamsMax) {
      this.remember(streamKey(reply, id));
      throw new StreamError(
        id,
        reply,
        ErrorCode.StreamLimit,
        `peer opened more than streamsMax (${this.local.streamsMax}) streams at once`,
      );
    }
    const stream: InboundStream = {
      reply,
      id,
      total,
      buffer: Buffer.alloc(0),
      filled: 0,
      windowLeft: this.local.streamWindowBytes,
      consumed: 0,
      reserved: 0,
      codec,
    };
    this.streams.set(streamKey(reply, id), stream);
    return stream;
  }

  /** Makes room for `bytes` in the stream's buffer: doubling, never past its total. */
  private grow(stream: InboundStream, bytes: number): void {
    if (bytes <= stream.buffer.length) return;
    let size = Math.max(stream.buffer.length, REASSEMBLY_INITIAL_BYTES);
    while (size < bytes) size *= 2;
    size = Math.min(size, stream.total);
    const more = size - stream.buffer.length;
    if (this.budget !== undefined && !this.budget.reserve(more)) {
      this.refuse(stream);
      throw new StreamError(
        stream.id,
        stream.reply,
        ErrorCode.MemoryBudget,
        `reassembling a message of ${stream.total} bytes would take the node past its memory budget`,
      );
    }
    stream.reserved += more;
    const grown = Buffer.allocUnsafe(size);
    stream.buffer.copy(grown, 0, 0, stream.filled);
    stream.buffer = grown;
  }

  private refuse(stream: InboundStream): void {
    this.forget(stream);
    this.remember(streamKey(stream.reply, stream.id));
  }

  private forget(stream: InboundStream): void {
    this.streams.delete(streamKey(stream.reply, stream.id));
    if (stream.reserved > 0) this.budget?.release(stream.reserved);
    stream.reserved = 0;
  }

  private remember(key: number): void {
    this.resets.delete(key);
    this.resets.add(key);
    if (this.resets.size > RESET_STREAMS_REMEMBERED_MAX) {
      this.resets.delete(this.resets.values().next().value!);
    }
  }
}

/** A reset as sent in a StreamControl frame. */
export function streamReset(error: StreamError): StreamReset {
  return { id: error.streamId, reply: error.reply, code: error.code, message: error.message };
}
