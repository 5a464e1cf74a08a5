/**
 * One framed, handshaken connection over a TCP or TLS socket, used by both sides.
 *
 * - Frames written during one event-loop turn leave in a single socket write
 *   (OutboundBuffer + setImmediate), which is what makes small requests cheap.
 * - `write()` backpressure is honoured: while the socket is congested we stop reading
 *   from the peer (so a peer that does not read its answers stops being served), and
 *   everything waiting to be written is bounded by writeBufferBytesMax.
 * - Requests are correlated by message id, each with a deadline, at most
 *   inflightRequestsMax outstanding.
 * - Any framing or decoding error from the peer is a typed error: the peer gets one error
 *   frame naming it, and only this connection closes. So is a frame compressed with a codec
 *   the handshake did not negotiate (RDB_CODEC_UNSUPPORTED).
 * - With a shared budget (the node's, on accepted connections), partial inbound frames and
 *   replies queued for a congested peer are reserved from it; a reservation that does not fit
 *   closes this connection with RDB_MEMORY_BUDGET.
 * - Multiplexed streams (when both sides announced stream settings in the handshake): a request
 *   or response larger than streamChunkBytes goes as a stream of chunks with credit-based flow
 *   control (streams.ts); small frames leave at the end of their turn and never wait behind
 *   a chunk. Chunks are written one batch at a time (the next once the socket took the last),
 *   picked by weighted round robin over four priorities (priority.ts): a message's priority
 *   comes from the message (a topic message's field; Raft, gossip, pings and flow control are
 *   critical, admin calls high), a response takes its request's.
 */
import type { Socket } from 'node:net';
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import { codecName, compressPayload, decompressPayload } from '../protocol/compression.ts';
import {
  type ByteBudget,
  Codec,
  FrameDecoder,
  FrameKind,
  flagsCodec,
  flagsKind,
  flagsPriority,
  makeFlags,
  OutboundBuffer,
  STREAM_FIRST_FLAG,
  STREAM_FLAGS,
  STREAM_NEXT_FLAG,
  withPriority,
} from '../protocol/frame.ts';
import {
  acceptHello,
  checkHelloAck,
  type LocalEndpoint,
  makeHello,
  type PeerInfo,
} from '../protocol/handshake.ts';
import {
  type DecodedEnvelope,
  decodeEnvelopeAt,
  type Envelope,
  type ErrorReply,
  type Hello,
  type HelloAck,
  type StreamControl,
  type StreamSettingsMessage,
  type TopicMessage,
  writeEnvelope,
} from '../protocol/messages.ts';
import { type Clock, systemClock } from '../runtime/index.ts';
import type { Identity } from '../security/identity.ts';
import type { ConnectionOptions } from './options.ts';
import { Priority, priorityFromWire } from './priority.ts';
import { SequentialIdMap } from './sequential-id-map.ts';
import {
  OutboundStream,
  StreamError,
  StreamReceiver,
  StreamSender,
  type StreamSettings,
  streamReset,
} from './streams.ts';

/** Answers one request from the peer. Throw a RdbnetError to send an error frame back. */
export type RequestHandler = (
  request: DecodedEnvelope,
  connection: Connection,
) => Envelope | Promise<Envelope>;

export interface ConnectionHooks {
  /** The handshake finished; `connection.peer` is set. */
  onOpen?(connection: Connection): void;
  /** The connection is gone; `error` says why when it was not a clean close. */
  onClose?(connection: Connection, error: RdbnetError | undefined): void;
  /** The peer broke the protocol; the connection is closing. For counters and logs. */
  onProtocolError?(connection: Connection, error: RdbnetError): void;
  /** Accepting side: the peer's Hello checked out. Throw a RdbnetError to refuse the peer
   * anyway (a connection limit); it gets the error frame instead of the HelloAck. */
  admitPeer?(connection: Connection, peer: PeerInfo): void;
}

interface PendingRequest {
  resolve(reply: DecodedEnvelope): void;
  reject(error: RdbnetError): void;
  deadlineMs: number;
}

export type ConnectionSide = 'dialer' | 'acceptor';
export type ConnectionState = 'handshaking' | 'open' | 'closing' | 'closed';

/**
 * The resolvers of the promise a request() is creating, handed over by a shared executor: one
 * closure fewer per request than an inline executor.
 */
let capturedResolve: ((reply: DecodedEnvelope) => void) | undefined;
let capturedReject: ((error: RdbnetError) => void) | undefined;
function captureResolvers(
  resolve: (reply: DecodedEnvelope) => void,
  reject: (error: RdbnetError) => void,
): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/**
 * The priority a message is written with: a topic message's own; Raft, gossip streams, pings and
 * flow control critical (the cluster's heartbeat must not wait behind data); every other
 * (admin) call high.
 */
export function envelopePriority(envelope: Envelope): Priority {
  const topic = (envelope as { topicRequest?: TopicMessage }).topicRequest;
  if (topic !== undefined) return priorityFromWire(topic.priority);
  const fields = envelope as Record<string, unknown>;
  if (
    fields['raftBatch'] !== undefined ||
    fields['gossipStreamRequest'] !== undefined ||
    fields['pingRequest'] !== undefined ||
    fields['streamControl'] !== undefined
  ) {
    return Priority.Critical;
  }
  return Priority.High;
}

/** Ids from here up are ours; the handshake uses id 0 on both sides. */
const HANDSHAKE_MESSAGE_ID = 0;
/** How long a closing connection may take to flush its last frames before it is destroyed. */
const CLOSE_LINGER_MS = 1000;
const SWEEP_INTERVAL_MS = 50;
/** Stream chunks handed to the socket per write. One: under a saturating transfer a small
 * message then waits behind one chunk in our buffers, not a batch of them (bench:dataplane's
 * critical request; chunks of 16 KiB already fill a TLS record each). */
const CHUNKS_PER_WRITE = 1;

export class Connection {
  readonly socket: Socket;
  readonly side: ConnectionSide;
  readonly remoteAddress: string;
  state: ConnectionState = 'handshaking';
  peer: PeerInfo | null = null;

  framesIn = 0;
  framesOut = 0;
  bytesIn = 0;
  bytesOut = 0;

  private readonly local: LocalEndpoint;
  private readonly options: ConnectionOptions;
  private readonly certified: Identity | null;
  private readonly handler: RequestHandler | undefined;
  private readonly hooks: ConnectionHooks;
  private readonly clock: Clock;
  private readonly decoder: FrameDecoder;
  private readonly budget: ByteBudget | undefined;
  /** What the budget is charged for replies waiting on a congested socket. */
  private outboundReservedBytes = 0;
  /** Monotonic ms of the last complete frame from the peer (or of the connection's start): the
   * arrival of the chunk that completed it, as the clock is read once per chunk, not per frame. */
  private lastFrameInMs: number;
  /** The clock as the first request of this event-loop turn read it; the turn's later requests
   * count their deadlines from it too (valid until the turn's flush). With a hundred requests a
   * turn, reading the clock per request was a measurable share of each call; a turn lasts far
   * less than a deadline's own slack (the sweep runs every SWEEP_INTERVAL_MS). */
  private turnNowMs = 0;
  private turnNowValid = false;
  private readonly out = new OutboundBuffer();
  private codec: Codec = Codec.None;
  /** CRC-32 on what we send: only where TLS does not already authenticate every byte. */
  private readonly checksum: boolean;
  private flushScheduled = false;
  private congested = false;
  private readonly pending: SequentialIdMap<PendingRequest>;
  private nextMessageId = 1;
  private inboundInflight = 0;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** No pending request's deadline is earlier (it may be later: a request answered since is
   * not taken out): the sweep walks the requests only once it has come. */
  private earliestDeadlineMs = Number.POSITIVE_INFINITY;
  private closeError: RdbnetError | undefined;
  private handshake: PendingRequest | null = null;
  private readonly onFrameBound = this.onFrame.bind(this);
  private readonly flushBound = this.flush.bind(this);
  /** Chunked messages, once both sides announced stream settings in the handshake. */
  private streamSender: StreamSender | null = null;
  private streamReceiver: StreamReceiver | null = null;
  /** A write holding chunks is with the socket; the next chunks wait for it. */
  private chunkWriteInFlight = false;
  private readonly onChunksWrittenBound = this.onChunksWritten.bind(this);

  constructor(init: {
    socket: Socket;
    side: ConnectionSide;
    local: LocalEndpoint;
    options: ConnectionOptions;
    /** Identity proven by the peer's certificate; null on --insecure connections. */
    certified: Identity | null;
    handler?: RequestHandler;
    hooks?: ConnectionHooks;
    clock?: Clock;
    /** Shared memory budget for this connection's buffered frames; none: unbudgeted. */
    budget?: ByteBudget;
  }) {
    this.socket = init.socket;
    this.side = init.side;
    this.local = init.local;
    this.options = init.options;
    this.certified = init.certified;
    this.handler = init.handler;
    this.hooks = init.hooks ?? {};
    this.clock = init.clock ?? systemClock;
    this.remoteAddress = `${init.socket.remoteAddress ?? '?'}:${init.socket.remotePort ?? '?'}`;
    this.budget = init.budget;
    this.lastFrameInMs = this.clock.nowMs();
    this.decoder = new FrameDecoder({
      frameBytesMax: init.options.frameBytesMax,
      ...(init.budget === undefined ? {} : { budget: init.budget }),
    });
    this.pending = new SequentialIdMap(init.options.inflightRequestsMax);
    this.checksum = init.options.checksum && !(init.socket as { encrypted?: boolean }).encrypted;
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('drain', () => this.onDrain());
    this.socket.on('error', (error) => this.fail(socketError(error)));
    this.socket.on('close', () => this.finish());
    this.socket.on('end', () => this.close());
  }

  /** Dialer only: sends Hello and resolves once the node's HelloAck checks out. */
  startHandshake(timeoutMs = this.options.handshakeTimeoutMs): Promise<PeerInfo> {
    if (this.side !== 'dialer' || this.handshake !== null || this.state !== 'handshaking') {
      throw new Error('invariant violated: startHandshake called twice or on the accepting side');
    }
    return new Promise<PeerInfo>((resolve, reject) => {
      this.handshake = {
        resolve: (reply) => {
          try {
            if (reply.kind !== 'helloAck') {
              throw new RdbnetError(
                ErrorCode.HandshakeRejected,
                `expected HelloAck, got ${reply.kind}`,
              );
            }
            const ack = reply.body as HelloAck;
            this.open(checkHelloAck(ack, this.local, this.certified), ack.streams);
            resolve(this.peer!);
          } catch (error) {
            const typed = toRdbnetError(error);
            this.close(typed);
            reject(typed);
          }
        },
        reject,
        deadlineMs: this.clock.nowMs() + timeoutMs,
      };
      this.startSweeping();
      this.writeFrame(FrameKind.Request, HANDSHAKE_MESSAGE_ID, {
        hello: { ...makeHello(this.local), streams: this.localStreamSettings() },
      });
    });
  }

  /** Sends a request and resolves with the reply; rejects with a typed error. */
  request(envelope: Envelope, timeoutMs = this.options.requestTimeoutMs): Promise<DecodedEnvelope> {
    if (this.state !== 'open') {
      return Promise.reject(
        this.closeError ??
          new RdbnetError(
            ErrorCode.ConnectionClosed,
            `connection to ${this.remoteAddress} is ${this.state}`,
          ),
      );
    }
    if (this.pending.size >= this.options.inflightRequestsMax) {
      return Promise.reject(
        new RdbnetError(
          ErrorCode.InflightLimit,
          `${this.pending.size} requests already in flight to ${this.remoteAddress} (limit ${this.options.inflightRequestsMax})`,
        ),
      );
    }
    if (this.out.bytes >= this.options.writeBufferBytesMax) {
      return Promise.reject(
        new RdbnetError(
          ErrorCode.WriteQueueFull,
          `${this.out.bytes} bytes already waiting to be written to ${this.remoteAddress}`,
        ),
      );
    }
    const id = this.nextMessageId++;
    const reply = new Promise<DecodedEnvelope>(captureResolvers);
    if (!this.turnNowValid) {
      this.turnNowMs = this.clock.nowMs();
      this.turnNowValid = true;
    }
    const request: PendingRequest = {
      resolve: capturedResolve!,
      reject: capturedReject!,
      deadlineMs: this.turnNowMs + timeoutMs,
    };
    this.pending.set(id, request);
    if (request.deadlineMs < this.earliestDeadlineMs) this.earliestDeadlineMs = request.deadlineMs;
    if (this.sweepTimer === null) this.startSweeping();
    try {
      this.writeFrame(FrameKind.Request, id, envelope);
    } catch (error) {
      // Not encodable (a caller's bug, reported as thrown): it must not hold a slot until its
      // deadline. No flush may be coming to end the turn's clock reading, so it ends here.
      this.turnNowValid = false;
      this.pending.delete(id);
      request.reject(error as RdbnetError);
    }
    return reply;
  }

  /** Fire-and-forget message; no reply, no delivery guarantee. */
  send(envelope: Envelope): void {
    if (this.state === 'open') this.writeFrame(FrameKind.OneWay, 0, envelope);
  }

  get inflightRequests(): number {
    return this.pending.size;
  }

  get bufferedBytes(): number {
    return this.out.bytes + this.decoder.bufferedBytes + (this.streamReceiver?.bufferedBytes ?? 0);
  }

  /** Chunked messages on this connection; null when the peer does not take streams. */
  get streams(): {
    sending: number;
    waiting: number;
    receiving: number;
    chunksSent: number;
    connectionCredit: number;
    inflightBytesPeak: number;
  } | null {
    const sender = this.streamSender;
    const receiver = this.streamReceiver;
    if (sender === null || receiver === null) return null;
    const { active, waiting } = sender.streams;
    return {
      sending: active,
      waiting,
      receiving: receiver.open,
      chunksSent: sender.chunksSent,
      connectionCredit: sender.credit,
      inflightBytesPeak: receiver.inflightBytesPeak,
    };
  }

  /**
   * How long the connection has been idle at `nowMs`: time since the peer's last complete
   * frame, or 0 while a request is outstanding either way. A peer trickling a frame that
   * never completes is idle.
   */
  idleMs(nowMs = this.clock.nowMs()): number {
    if (this.pending.size > 0 || this.inboundInflight > 0) return 0;
    return Math.max(0, nowMs - this.lastFrameInMs);
  }

  /**
   * Gives back the buffers an idle connection keeps for writes that may never come (the
   * outbound slab); nothing if a write is waiting. Called by its owner's sweep (the server's
   * single timer), not by a timer per connection.
   */
  releaseIdleBuffers(): void {
    if (this.flushScheduled || this.congested) return;
    this.out.releaseIdle();
  }

  /** Tells the peer why in an error frame about the whole connection (id 0), then closes. */
  closeWithError(error: RdbnetError): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.writeFrame(FrameKind.Error, 0, { error: { code: error.code, message: error.message } });
    this.close(error);
  }

  /**
   * Closes after flushing what is queued. Outstanding requests fail with `error` or
   * RDB_CONNECTION_CLOSED. Idempotent.
   */
  close(error?: RdbnetError): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    const wasHandshaking = this.state === 'handshaking';
    this.state = 'closing';
    this.closeError ??= error ?? (wasHandshaking ? this.closedDuringHandshake() : undefined);
    this.rejectAll(
      this.closeError ??
        new RdbnetError(ErrorCode.ConnectionClosed, `connection to ${this.remoteAddress} closed`),
    );
    // Nothing more is read: a partial frame is dropped and its memory given back now.
    this.decoder.dispose();
    this.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS).unref();
  }

  /** Ends the connection at once, without flushing or telling the peer; onClose gets `error`. */
  destroy(error: RdbnetError): void {
    this.fail(error);
  }

  private fail(error: RdbnetError): void {
    this.closeError ??= error;
    this.close(error);
    this.socket.destroy();
  }

  private finish(): void {
    if (this.state === 'closed') return;
    const wasHandshaking = this.state === 'handshaking';
    this.state = 'closed';
    this.stopSweeping();
    this.decoder.dispose();
    this.streamSender?.clear();
    this.streamReceiver?.clear();
    if (this.outboundReservedBytes > 0) {
      this.budget?.release(this.outboundReservedBytes);
      this.outboundReservedBytes = 0;
    }
    const error = this.closeError ?? (wasHandshaking ? this.closedDuringHandshake() : undefined);
    this.rejectAll(
      error ??
        new RdbnetError(ErrorCode.ConnectionClosed, `connection to ${this.remoteAddress} closed`),
    );
    this.hooks.onClose?.(this, error);
  }

  private closedDuringHandshake(): RdbnetError {
    return new RdbnetError(
      ErrorCode.HandshakeRejected,
      `${this.remoteAddress} closed the connection during the handshake`,
      {
        hint:
          this.certified === null && this.side === 'dialer'
            ? 'if the node runs with TLS, drop --insecure'
            : undefined,
      },
    );
  }

  private rejectAll(error: RdbnetError): void {
    if (this.handshake !== null) {
      const handshake = this.handshake;
      this.handshake = null;
      handshake.reject(error);
    }
    if (this.pending.size === 0) return;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const request of waiting) request.reject(error);
  }

  private open(peer: PeerInfo, peerStreams: StreamSettingsMessage | null | undefined): void {
    this.peer = peer;
    this.codec = peer.codec;
    if (
      peerStreams &&
      peerStreams.streamWindowBytes > 0 &&
      peerStreams.connectionWindowBytes > 0 &&
      peerStreams.streamsMax > 0
    ) {
      const options = this.options;
      this.streamSender = new StreamSender(
        {
          streamWindowBytes: peerStreams.streamWindowBytes,
          connectionWindowBytes: peerStreams.connectionWindowBytes,
          streamsMax: peerStreams.streamsMax,
        },
        options.streamChunkBytes,
        // Each waiting stream is a request of ours or a reply to one of the peer's: both bounded.
        options.inflightRequestsMax + options.inboundInflightMax,
        options.writeBufferBytesMax,
      );
      this.streamReceiver = new StreamReceiver({
        local: this.localStreamSettings(),
        messageBytesMax: options.messageBytesMax,
        ...(this.budget === undefined ? {} : { budget: this.budget }),
      });
    }
    this.state = 'open';
    this.lastFrameInMs = this.clock.nowMs();
    this.hooks.onOpen?.(this);
  }

  private localStreamSettings(): StreamSettings {
    return {
      streamWindowBytes: this.options.streamWindowBytes,
      connectionWindowBytes: this.options.connectionWindowBytes,
      streamsMax: this.options.streamsMax,
    };
  }

  // ---- reading ----------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.bytesIn += chunk.length;
    const framesBefore = this.framesIn;
    try {
      this.decoder.pushRanges(chunk, this.onFrameBound);
      if (this.framesIn !== framesBefore) this.lastFrameInMs = this.clock.nowMs();
      const control = this.streamReceiver?.takeControl();
      if (control) this.sendControl(control);
    } catch (error) {
      const typed = toRdbnetError(error);
      // Out of memory budget is the node's limit, not the peer breaking the protocol.
      if (typed.code === ErrorCode.MemoryBudget) this.closeWithError(typed);
      else this.protocolError(typed);
    }
  }

  /** The payload is source[start, end): decoded from there, with no view made of it. */
  private onFrame(
    flags: number,
    messageId: number,
    source: Buffer,
    start: number,
    end: number,
  ): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.framesIn++;
    const codec = flagsCodec(flags);
    // Each side compresses only with the codec both agreed on; anything else is a peer that
    // ignores the handshake (or probes our decoders), refused before any decoding work.
    if (codec !== Codec.None && codec !== this.codec) {
      throw new RdbnetError(
        ErrorCode.CodecUnsupported,
        `frame compressed with ${codecName(codec)}, but ` +
          (this.codec === Codec.None
            ? 'no codec was negotiated'
            : `${codecName(this.codec)} was negotiated`),
      );
    }
    if ((flags & STREAM_FLAGS) !== 0) {
      this.onChunk(flags, messageId, source, start, end);
      return;
    }
    if (codec !== Codec.None) {
      source = decompressPayload(codec, source.subarray(start, end), this.options.frameBytesMax);
      start = 0;
      end = source.length;
    }
    const kind = flagsKind(flags);
    const message = decodeEnvelopeAt(source, start, end);
    this.dispatch(kind, messageId, message, flagsPriority(flags));
  }

  /** One chunk of a stream; the message it completes is handled as if it came whole. */
  private onChunk(
    flags: number,
    messageId: number,
    source: Buffer,
    start: number,
    end: number,
  ): void {
    const receiver = this.streamReceiver;
    const kind = flagsKind(flags);
    if (receiver === null || this.state !== 'open') {
      throw new RdbnetError(
        ErrorCode.FrameMalformed,
        'a stream chunk on a connection without streams',
      );
    }
    if (kind !== FrameKind.Request && kind !== FrameKind.Response) {
      throw new RdbnetError(ErrorCode.FrameMalformed, `a stream chunk of frame kind ${kind}`);
    }
    const reply = kind === FrameKind.Response;
    const first = (flags & STREAM_FIRST_FLAG) !== 0;
    if (first && (flags & STREAM_NEXT_FLAG) !== 0) {
      throw new RdbnetError(ErrorCode.FrameMalformed, 'a chunk flagged both first and next');
    }
    let whole: ReturnType<StreamReceiver['receive']>;
    try {
      whole = receiver.receive(reply, messageId, first, flagsCodec(flags), source, start, end);
    } catch (error) {
      if (!(error instanceof StreamError)) throw error;
      this.refuseStream(error);
      return;
    }
    if (whole === null && first && reply && this.pending.get(messageId) === undefined) {
      // A reply nobody waits for any more (timed out here): dropped, and the rest refused.
      receiver.reset(true, messageId);
      this.sendControl({
        connectionBytes: 0,
        credits: [],
        resets: [
          {
            id: messageId,
            reply: true,
            code: ErrorCode.RequestTimeout,
            message: 'no one waits for this reply',
          },
        ],
      });
      return;
    }
    if (whole === null) return;
    let payload = whole.payload;
    if (whole.codec !== Codec.None) {
      payload = decompressPayload(whole.codec, payload, this.options.messageBytesMax);
    }
    const message = decodeEnvelopeAt(payload, 0, payload.length);
    this.dispatch(kind, messageId, message, flagsPriority(flags));
  }

  /** A stream the peer sent that we will not take: only it fails, the connection goes on. */
  private refuseStream(error: StreamError): void {
    this.hooks.onProtocolError?.(this, error);
    if (!error.reply) {
      // The peer's request: its answer is the error (the peer stops sending when it arrives).
      this.replyError(error.streamId, error, Priority.Critical);
      return;
    }
    // A reply to our request: that request fails, and the peer stops sending the rest.
    this.sendControl({ connectionBytes: 0, credits: [], resets: [streamReset(error)] });
    const request = this.pending.get(error.streamId);
    if (request !== undefined) {
      this.pending.delete(error.streamId);
      request.reject(new RdbnetError(error.code, error.message));
    }
  }

  /** Credit and resets from the peer's receiving half. */
  private onStreamControl(control: StreamControl): void {
    const sender = this.streamSender;
    if (sender === null) {
      throw new RdbnetError(
        ErrorCode.FrameMalformed,
        'stream control on a connection without streams',
      );
    }
    sender.grant(control);
    for (const reset of control.resets ?? []) {
      const id = Number(reset.id);
      sender.cancel(reset.reply, id);
      if (reset.reply) continue;
      // Our request refused mid-stream: it fails with the peer's reason.
      const request = this.pending.get(id);
      if (request === undefined) continue;
      this.pending.delete(id);
      request.reject(remoteError({ code: reset.code, message: reset.message }));
    }
    if (sender.hasReady) this.scheduleFlush();
  }

  private sendControl(control: StreamControl): void {
    this.writeFrame(FrameKind.OneWay, 0, { streamControl: control }, Priority.Critical);
  }

  private dispatch(
    kind: FrameKind,
    messageId: number,
    message: DecodedEnvelope,
    priority: number,
  ): void {
    if (this.state === 'handshaking') {
      this.onHandshakeFrame(kind, messageId, message);
      return;
    }
    switch (kind) {
      case FrameKind.Request:
        this.onRequest(messageId, message, priority as Priority);
        return;
      case FrameKind.Response:
        this.onReply(messageId, message, null);
        return;
      case FrameKind.Error:
        this.onReply(messageId, null, message);
        return;
      case FrameKind.OneWay:
        // The one one-way message: flow control of streams. Others are validated and ignored.
        if (message.kind === 'streamControl') this.onStreamControl(message.body as StreamControl);
        return;
    }
  }

  private onHandshakeFrame(kind: FrameKind, messageId: number, message: DecodedEnvelope): void {
    if (this.side === 'acceptor') {
      if (kind !== FrameKind.Request || message.kind !== 'hello') {
        throw new RdbnetError(
          ErrorCode.HandshakeRejected,
          `expected a Hello request as the first frame, got ${message.kind}`,
        );
      }
      const hello = message.body as Hello;
      const { ack, peer } = acceptHello(hello, this.local, this.certified);
      this.hooks.admitPeer?.(this, peer);
      // Our stream settings go only to a peer that announced its own: an older peer would
      // ignore them anyway, and neither side chunks.
      const streams = hello.streams ? this.localStreamSettings() : null;
      this.writeFrame(FrameKind.Response, messageId, {
        helloAck: streams === null ? ack : { ...ack, streams },
      });
      this.open(peer, hello.streams);
      return;
    }
    const handshake = this.handshake;
    if (handshake === null)
      throw new RdbnetError(ErrorCode.HandshakeRejected, 'unexpected frame before Hello');
    this.handshake = null;
    if (kind === FrameKind.Error && message.kind === 'error') {
      const reply = message.body as ErrorReply;
      const error = remoteError(reply);
      this.fail(error);
      handshake.reject(error);
      return;
    }
    handshake.resolve(message);
  }

  /** `priority`: the request frame's; its response is written with the same. */
  private onRequest(messageId: number, request: DecodedEnvelope, priority: Priority): void {
    if (this.handler === undefined) {
      this.replyError(
        messageId,
        new RdbnetError(ErrorCode.MethodUnknown, 'this side serves no requests'),
        priority,
      );
      return;
    }
    if (this.inboundInflight >= this.options.inboundInflightMax) {
      this.replyError(
        messageId,
        new RdbnetError(
          ErrorCode.InflightLimit,
          `node is already handling ${this.inboundInflight} requests from this connection`,
        ),
        priority,
      );
      return;
    }
    let result: Envelope | Promise<Envelope>;
    try {
      result = this.handler(request, this);
    } catch (error) {
      this.replyError(messageId, error, priority);
      return;
    }
    if (!(result instanceof Promise)) {
      this.writeFrame(FrameKind.Response, messageId, result, priority);
      return;
    }
    this.inboundInflight++;
    result.then(
      (reply) => {
        this.inboundInflight--;
        if (this.state === 'open') this.writeFrame(FrameKind.Response, messageId, reply, priority);
      },
      (error: unknown) => {
        this.inboundInflight--;
        if (this.state === 'open') this.replyError(messageId, error, priority);
      },
    );
  }

  private onReply(
    messageId: number,
    reply: DecodedEnvelope | null,
    error: DecodedEnvelope | null,
  ): void {
    const request = this.pending.get(messageId);
    if (request === undefined) {
      // An error frame with id 0 is about the connection as a whole.
      if (error !== null && messageId === 0) this.fail(remoteError(error.body as ErrorReply));
      // Otherwise a late answer to a request that already timed out: drop it.
      return;
    }
    this.pending.delete(messageId);
    // An answer before our request was all sent (an error, say): the rest is not sent.
    this.streamSender?.cancel(false, messageId);
    if (reply !== null) request.resolve(reply);
    else request.reject(remoteError((error?.body ?? {}) as ErrorReply));
  }

  private replyError(messageId: number, error: unknown, priority?: Priority): void {
    const typed = isRdbnetError(error)
      ? error
      : new RdbnetError(ErrorCode.Internal, 'internal error while handling the request', {
          cause: error,
        });
    this.writeFrame(
      FrameKind.Error,
      messageId,
      { error: { code: typed.code, message: typed.message } },
      priority,
    );
  }

  private protocolError(error: RdbnetError): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.hooks.onProtocolError?.(this, error);
    // Tell the peer why, once, then close; the stream can no longer be trusted.
    this.closeWithError(error);
  }

  // ---- writing ----------------------------------------------------------------------

  /**
   * Encodes one message and queues it. `priority`: a response's is its request's; otherwise it
   * comes from the message (envelopePriority). Only the peer of a stream-capable connection
   * sees the priority bits; a message larger than streamChunkBytes goes to it as a stream.
   */
  private writeFrame(
    kind: FrameKind,
    messageId: number,
    envelope: Envelope,
    priority?: Priority,
  ): void {
    // Encoded in place; a payload worth compressing is then replaced by its packed form.
    let flags = makeFlags(kind, Codec.None, this.checksum);
    const sender = this.streamSender;
    if (sender !== null) {
      flags = withPriority(flags, priority ?? envelopePriority(envelope));
    }
    let encodedBytes = this.out.appendEncoded(flags, messageId, writeEnvelope, envelope);
    if (this.codec !== Codec.None && encodedBytes >= this.options.compressThresholdBytes) {
      const threshold = this.options.compressThresholdBytes;
      const packed = compressPayload(this.codec, this.out.lastPayload(), threshold);
      if (packed.codec !== Codec.None) {
        this.out.dropLast();
        // The codec bits were None: set them (kind 0 adds no kind bits).
        flags |= makeFlags(0, packed.codec, false);
        this.out.append(flags, messageId, packed.payload);
        encodedBytes = packed.payload.length;
      }
    }
    this.framesOut++;
    if (
      sender !== null &&
      encodedBytes > this.options.streamChunkBytes &&
      (kind === FrameKind.Request || kind === FrameKind.Response)
    ) {
      // Too large for one frame among the small ones: taken back out and sent in chunks.
      const data = Buffer.from(this.out.lastPayload());
      this.out.dropLast();
      const stream = new OutboundStream(
        kind === FrameKind.Response,
        messageId,
        flagsPriority(flags) as Priority,
        flagsCodec(flags),
        data,
      );
      try {
        sender.open(stream);
      } catch (error) {
        // Too much waiting to be sent: a request's caller learns it (request() rejects); the
        // peer whose request this answers gets the error instead of the reply.
        if (kind !== FrameKind.Response) throw error;
        this.replyError(messageId, error, Priority.Critical);
        return;
      }
      this.scheduleFlush();
      return;
    }
    // A full batch leaves now, so the peer can start on it while we encode the rest.
    if (this.out.bytes >= this.options.writeBatchBytesMax) {
      this.flush();
      return;
    }
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /**
   * Adds the next chunk to the batch, by priority and within the peer's credit. One chunk is
   * with the socket at a time (the next once the socket took it), so a small message written
   * meanwhile waits for at most that chunk, and what the peer's credit lets be in flight.
   */
  private appendChunks(): boolean {
    const sender = this.streamSender;
    if (sender === null || this.chunkWriteInFlight || this.congested) return false;
    let added = false;
    for (let chunks = 0; chunks < CHUNKS_PER_WRITE; chunks++) {
      const chunk = sender.nextChunk();
      if (chunk === null) break;
      const stream = chunk.stream;
      let flags = makeFlags(
        stream.reply ? FrameKind.Response : FrameKind.Request,
        stream.codec,
        this.checksum,
      );
      flags =
        withPriority(flags, stream.priority) | (chunk.first ? STREAM_FIRST_FLAG : STREAM_NEXT_FLAG);
      this.out.appendChunk(
        flags,
        stream.id,
        chunk.first ? stream.data.length : -1,
        stream.data,
        chunk.start,
        chunk.end,
      );
      this.framesOut++;
      added = true;
    }
    return added;
  }

  private onChunksWritten(): void {
    this.chunkWriteInFlight = false;
    if (this.streamSender?.hasReady) this.scheduleFlush();
  }

  private flush(): void {
    this.flushScheduled = false;
    this.turnNowValid = false;
    if (this.socket.destroyed) return;
    const withChunks = this.state === 'open' && this.appendChunks();
    if (this.out.bytes === 0) return;
    if (this.congested) {
      if (this.out.bytes > this.options.writeBufferBytesMax && this.side === 'acceptor') {
        this.fail(
          new RdbnetError(
            ErrorCode.WriteQueueFull,
            `peer ${this.remoteAddress} is not reading its replies (${this.out.bytes} bytes waiting)`,
          ),
        );
        return;
      }
      this.chargeOutbound();
      return;
    }
    const chunk = this.out.take();
    this.bytesOut += chunk.length;
    if (withChunks) this.chunkWriteInFlight = true;
    if (!this.socket.write(chunk, withChunks ? this.onChunksWrittenBound : undefined)) {
      this.congested = true;
      // Stop taking new requests from a peer that is not reading what we send it.
      if (this.side === 'acceptor') this.socket.pause();
      this.chargeOutbound();
    }
  }

  private onDrain(): void {
    this.congested = false;
    if (this.side === 'acceptor' && this.state !== 'closed') this.socket.resume();
    this.flush();
    if (!this.congested) this.chargeOutbound();
  }

  /**
   * Keeps the budget charged with what waits for a congested socket (nothing once it drains);
   * a peer whose backlog no longer fits is disconnected, like one past writeBufferBytesMax.
   */
  private chargeOutbound(): void {
    if (this.budget === undefined || this.state === 'closed') return;
    const waitingBytes = this.congested ? this.out.bytes + this.socket.writableLength : 0;
    const moreBytes = waitingBytes - this.outboundReservedBytes;
    if (moreBytes < 0) this.budget.release(-moreBytes);
    else if (moreBytes > 0 && !this.budget.reserve(moreBytes)) {
      this.fail(
        new RdbnetError(
          ErrorCode.MemoryBudget,
          `${waitingBytes} bytes waiting for ${this.remoteAddress} would take the node past its memory budget`,
        ),
      );
      return;
    }
    this.outboundReservedBytes = waitingBytes;
  }

  // ---- deadlines --------------------------------------------------------------------

  private startSweeping(): void {
    if (this.sweepTimer !== null) return;
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
  }

  private stopSweeping(): void {
    if (this.sweepTimer === null) return;
    clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  private sweep(): void {
    const now = this.clock.nowMs();
    if (this.handshake !== null && now >= this.handshake.deadlineMs) {
      this.fail(
        new RdbnetError(
          ErrorCode.HandshakeTimeout,
          `no handshake answer from ${this.remoteAddress} in time`,
        ),
      );
      return;
    }
    if (now >= this.earliestDeadlineMs) {
      let earliest = Number.POSITIVE_INFINITY;
      for (const [id, request] of this.pending) {
        if (now < request.deadlineMs) {
          earliest = Math.min(earliest, request.deadlineMs);
          continue;
        }
        this.pending.delete(id);
        // Nothing more of it is sent, and the peer is told to stop sending its answer.
        this.streamSender?.cancel(false, id);
        if (this.streamReceiver?.reset(true, id)) {
          this.sendControl({
            connectionBytes: 0,
            credits: [],
            resets: [
              {
                id,
                reply: true,
                code: ErrorCode.RequestTimeout,
                message: 'the request timed out',
              },
            ],
          });
        }
        request.reject(
          new RdbnetError(ErrorCode.RequestTimeout, `request to ${this.remoteAddress} timed out`),
        );
      }
      this.earliestDeadlineMs = earliest;
    }
    if (this.pending.size === 0 && this.handshake === null) this.stopSweeping();
  }
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

function remoteError(reply: ErrorReply): RdbnetError {
  const code = KNOWN_CODES.has(reply.code) ? (reply.code as ErrorCode) : ErrorCode.RemoteError;
  return new RdbnetError(code, reply.message || `peer answered with error ${reply.code}`);
}

export function toRdbnetError(error: unknown): RdbnetError {
  if (isRdbnetError(error)) return error;
  return new RdbnetError(
    ErrorCode.Internal,
    error instanceof Error ? error.message : String(error),
    {
      cause: error,
    },
  );
}

/** Maps socket-level failures to the codes a person and a script can act on. */
export function socketError(error: Error & { code?: string }): RdbnetError {
  const code = error.code ?? '';
  if (
    [
      'ECONNREFUSED',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'ETIMEDOUT',
      'EADDRNOTAVAIL',
      'ENOTFOUND',
      'EAI_AGAIN',
    ].includes(code)
  ) {
    return new RdbnetError(ErrorCode.NodeUnreachable, error.message, { cause: error });
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return new RdbnetError(ErrorCode.ConnectionClosed, error.message, { cause: error });
  }
  if (
    code.startsWith('ERR_SSL') ||
    code.startsWith('ERR_TLS') ||
    /certificate|tls|ssl|alert/i.test(error.message)
  ) {
    // OpenSSL messages carry a library trace; its `reason` is the part a person can act on.
    const reason = (error as { reason?: string }).reason ?? error.message.split('\n')[0];
    return new RdbnetError(ErrorCode.TlsFailed, reason ?? error.message, { cause: error });
  }
  return new RdbnetError(ErrorCode.ConnectionClosed, error.message, { cause: error });
}
