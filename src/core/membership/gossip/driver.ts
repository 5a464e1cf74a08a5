/**
 * Runs the pure SWIM machine (membership/swim) on I/O: a datagram transport (the
 * keyring-sealed UDP socket unless another is injected, as the simulator does), a
 * caller-supplied stream transport for push-pull state exchanges, and one timer on the
 * injected clock that ticks the machine when it asks to be woken.
 *
 * Every input (a packet, a reply, a tick, join/leave) is followed by a drain: the outbox is
 * sent, then events go to the listeners. So the machine never holds output across an
 * await, and its own outbox bound is the only queue between it and the network.
 *
 * Stream messages are sealed with the keyring too (with their own additional data), even
 * though the node carries them over mTLS: the keyring, not the certificate, decides who is
 * a member of the gossip pool, so a peer under another key cannot join through push-pull.
 */
import { ErrorCode, RdbnetError } from '../../errors.ts';
import {
  type Clock,
  type Logger,
  type Random,
  systemClock,
  systemRandom,
  type TimerHandle,
  type Timers,
  timersOf,
} from '../../runtime/index.ts';
import { KEYRING_OVERHEAD_BYTES, type Keyring, KeyringOpenError } from '../../security/keyring.ts';
import {
  type LocalHealth,
  type MemberEvent,
  type MemberView,
  type OutboxPacket,
  SWIM_LAN,
  Swim,
  type SwimConfig,
  type SwimStats,
  validateSwimConfig,
} from '../swim/index.ts';
import type { DatagramBinder, DatagramTransport } from './datagram.ts';
import { DATAGRAM_BYTES_MAX_DEFAULT, type UdpStats, UdpTransport } from './udp.ts';

/**
 * Carries push-pull messages between members: a request and its one reply. In a node this
 * rides on the existing mTLS binary protocol; the peer side hands the request to its
 * driver's `onStream` and sends back what that returns.
 */
export interface StreamTransport {
  /** Delivers `bytes` to the member advertising `toAddress` (its gossip address, the same
   * host:port as its --listen) and resolves with the reply, or null if it sent none.
   * Rejects (or resolves null) when the member cannot be reached. */
  send(toAddress: string, bytes: Uint8Array): Promise<Uint8Array | null>;
}

export interface GossipDriverOptions {
  /** Whether a datagram from this IP is taken in (the node's ACL); default every source. */
  admitSource?: (ip: string) => boolean;
  /** Member id (the node id), 1..255 bytes of UTF-8. */
  id: string;
  /** IP address to bind the UDP socket to and to advertise. */
  host: string;
  /** UDP port: the node's --listen port; 0 picks a free one (tests). */
  port: number;
  keyring: Keyring;
  /** Cluster name, authenticated with every packet: members of another cluster that share
   * a key still cannot talk to us. */
  clusterId: string;
  stream: StreamTransport;
  /** Default: the lan preset. `packetBytesMax` is replaced to fit datagramBytesMax. */
  swim?: SwimConfig;
  /** Largest UDP datagram on the wire, sealed (the MTU budget). Default 1400. SWIM packs
   * its packets into this minus the keyring's 29 bytes. */
  datagramBytesMax?: number;
  meta?: Uint8Array;
  /** Starting incarnation (a node that persists its last one restarts above it). */
  incarnation?: number;
  /** Join attempts (each a push-pull to every seed) before `join()` gives up. Default 8. */
  joinAttemptsMax?: number;
  /** Wait before the second attempt; doubles each attempt up to joinRetryCapMs, jittered
   * into [½, 1] of that. Default 250 ms. */
  joinRetryBaseMs?: number;
  /** Default 5000 ms. With the defaults 8 attempts span roughly 10–20 s. */
  joinRetryCapMs?: number;
  /** Push-pull exchanges in flight at once; more are dropped (counted) — the periodic
   * anti-entropy repeats them. Default 16. */
  streamRequestsMax?: number;
  /** A push-pull whose reply has not come by then is abandoned (counted). Default 5000 ms. */
  streamTimeoutMs?: number;
  /** Time for the machine and, through timersOf, for every timer. Default systemClock. */
  clock?: Clock;
  random?: Random;
  logger?: Logger;
  /** Kernel receive buffer for the UDP socket. Default 2 MiB (the OS may cap it). */
  receiveBufferBytes?: number;
  /** Binds the datagram transport. Default: the keyring-sealed UDP socket (UdpTransport). */
  datagrams?: DatagramBinder;
}

export type StreamDropReason =
  /** No installed key opens it. */
  | 'unknownKey'
  | 'malformed'
  | 'version'
  /** Larger than the machine's streamBytesMax plus the envelope. */
  | 'oversize'
  /** streamRequestsMax exchanges were in flight already. */
  | 'inflightFull'
  /** The transport rejected (peer unreachable, connection lost). */
  | 'sendFailed'
  /** No reply within streamTimeoutMs. */
  | 'timeout';

export interface StreamStats {
  requestsSent: number;
  repliesReceived: number;
  requestsReceived: number;
  repliesSent: number;
  bytesSent: number;
  bytesReceived: number;
  inflight: number;
  dropped: Record<StreamDropReason, number>;
}

export interface GossipStats {
  udp: UdpStats;
  stream: StreamStats;
  swim: SwimStats;
  ticks: number;
  joinAttempts: number;
  /** Event listeners that threw (logged, otherwise ignored). */
  listenerErrors: number;
}

export type GossipEventListener = (event: MemberEvent) => void;

const STREAM_AAD_SUFFIX = '/gossip-stream';
const UDP_AAD_SUFFIX = '/gossip-udp';
/** Extra wait for leave() beyond the machine's own leaveTimeoutMs, for the last ticks. */
const LEAVE_SLACK_MS = 500;

function newStreamStats(): StreamStats {
  return {
    requestsSent: 0,
    repliesReceived: 0,
    requestsReceived: 0,
    repliesSent: 0,
    bytesSent: 0,
    bytesReceived: 0,
    inflight: 0,
    dropped: {
      unknownKey: 0,
      malformed: 0,
      version: 0,
      oversize: 0,
      inflightFull: 0,
      sendFailed: 0,
      timeout: 0,
    },
  };
}

interface PendingJoin {
  seeds: string[];
  attempt: number;
  timer: TimerHandle | undefined;
  resolve: (liveCount: number) => void;
  reject: (error: Error) => void;
}

interface PendingLeave {
  timer: TimerHandle;
  resolve: (complete: boolean) => void;
}

export class GossipDriver {
  readonly id: string;
  /** The advertised gossip address, "host:port" as bound. */
  readonly address: string;
  private readonly swim: Swim;
  private readonly udp: DatagramTransport;
  private readonly stream: StreamTransport;
  private readonly keyring: Keyring;
  private readonly streamAad: string;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly random: Random;
  private readonly logger: Logger | undefined;
  private readonly joinAttemptsMax: number;
  private readonly joinRetryBaseMs: number;
  private readonly joinRetryCapMs: number;
  private readonly streamRequestsMax: number;
  private readonly streamTimeoutMs: number;
  private readonly streamBytesMax: number;
  private readonly listeners = new Set<GossipEventListener>();
  private readonly streamCounts = newStreamStats();
  private ticks = 0;
  private joinAttempts = 0;
  private listenerErrors = 0;

  private timer: TimerHandle | undefined;
  private timerDueMs = Number.POSITIVE_INFINITY;
  /** The conflict last logged, so each one is logged once. */
  private loggedConflict: string | undefined;
  private emitting = false;
  private closed = false;
  private join_: PendingJoin | undefined;
  private leave_: PendingLeave | undefined;

  private constructor(options: GossipDriverOptions, swim: Swim, udp: DatagramTransport) {
    this.id = options.id;
    this.address = udp.address;
    this.swim = swim;
    this.udp = udp;
    this.stream = options.stream;
    this.keyring = options.keyring;
    this.streamAad = options.clusterId + STREAM_AAD_SUFFIX;
    this.clock = options.clock ?? systemClock;
    this.timers = timersOf(this.clock);
    this.random = options.random ?? systemRandom;
    this.logger = options.logger;
    this.joinAttemptsMax = options.joinAttemptsMax ?? 8;
    this.joinRetryBaseMs = options.joinRetryBaseMs ?? 250;
    this.joinRetryCapMs = options.joinRetryCapMs ?? 5000;
    this.streamRequestsMax = options.streamRequestsMax ?? 16;
    this.streamTimeoutMs = options.streamTimeoutMs ?? 5000;
    this.streamBytesMax = swim.config.streamBytesMax + KEYRING_OVERHEAD_BYTES;
  }

  /**
   * Binds the datagram transport (UDP unless `datagrams` says otherwise) and starts the
   * machine (probing begins once it knows a member). The advertised address is the bound
   * one, so with port 0 it carries the chosen port.
   */
  static async start(options: GossipDriverOptions): Promise<GossipDriver> {
    const datagramBytesMax = options.datagramBytesMax ?? DATAGRAM_BYTES_MAX_DEFAULT;
    // Validated before binding, so a bad config never touches the network.
    const config = validateSwimConfig({
      ...(options.swim ?? SWIM_LAN),
      packetBytesMax: datagramBytesMax - KEYRING_OVERHEAD_BYTES,
    });
    if (typeof options.clusterId !== 'string' || options.clusterId === '') {
      throw new RdbnetError(ErrorCode.ConfigInvalid, 'clusterId must be a non-empty string');
    }
    for (const [name, value, min] of [
      ['joinAttemptsMax', options.joinAttemptsMax, 1],
      ['joinRetryBaseMs', options.joinRetryBaseMs, 1],
      ['joinRetryCapMs', options.joinRetryCapMs, 1],
      ['streamRequestsMax', options.streamRequestsMax, 1],
      ['streamTimeoutMs', options.streamTimeoutMs, 1],
    ] as const) {
      if (value !== undefined && !(Number.isFinite(value) && value >= min)) {
        throw new RdbnetError(ErrorCode.ConfigInvalid, `${name} must be ≥ ${min}`);
      }
    }
    let driver: GossipDriver | undefined;
    const bind: DatagramBinder =
      options.datagrams ??
      ((init) =>
        UdpTransport.bind({
          ...init,
          receiveBufferBytes: options.receiveBufferBytes,
          ...(options.admitSource === undefined ? {} : { admitSource: options.admitSource }),
          logger: options.logger,
          clock: options.clock,
        }));
    const udp = await bind({
      host: options.host,
      port: options.port,
      keyring: options.keyring,
      aad: options.clusterId + UDP_AAD_SUFFIX,
      datagramBytesMax,
      onPacket: (from, plaintext) => driver?.onDatagram(from, plaintext),
    });
    try {
      const swim = new Swim({
        self: {
          id: options.id,
          address: udp.address,
          meta: options.meta,
          incarnation: options.incarnation,
        },
        config,
        clock: options.clock ?? systemClock,
        random: options.random ?? systemRandom,
      });
      driver = new GossipDriver(options, swim, udp);
    } catch (error) {
      await udp.close();
      throw error;
    }
    driver.pump();
    return driver;
  }

  // --- public API ---------------------------------------------------------------------------

  /** Subscribes to membership events (about other members); returns the unsubscribe. */
  on(type: 'event', listener: GossipEventListener): () => void {
    if (type !== 'event') throw new RdbnetError(ErrorCode.Usage, `unknown event type ${type}`);
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  off(type: 'event', listener: GossipEventListener): void {
    if (type === 'event') this.listeners.delete(listener);
  }

  /** Every member we know, ourselves first, tombstones included. */
  members(): MemberView[] {
    return this.swim.members();
  }

  /** Members alive or suspect, ourselves included. */
  get liveCount(): number {
    return this.swim.liveCount;
  }

  get incarnation(): number {
    return this.swim.incarnation;
  }

  /** The address at which the members know our id alive, while that is not us (see
   * Swim.selfConflict); undefined otherwise. */
  get selfConflict(): string | undefined {
    return this.swim.selfConflict?.address;
  }

  localHealth(): LocalHealth {
    return this.swim.localHealth();
  }

  stats(): GossipStats {
    return {
      udp: this.udp.stats(),
      stream: { ...this.streamCounts, dropped: { ...this.streamCounts.dropped } },
      swim: { ...this.swim.stats },
      ticks: this.ticks,
      joinAttempts: this.joinAttempts,
      listenerErrors: this.listenerErrors,
    };
  }

  /** Replaces our metadata (bumps our incarnation so the change wins everywhere). */
  setMeta(meta: Uint8Array): void {
    this.checkOpen();
    this.swim.setMeta(meta);
    this.pump();
  }

  /**
   * Joins the cluster through `seeds` (gossip addresses; our own is ignored). Each attempt
   * push-pulls with every seed; while none has answered (we know no live member), it is
   * repeated with exponential backoff, at most joinAttemptsMax times. Resolves with the
   * live member count once one answered; with 1 at once when no seed is left (the first
   * member of a cluster). Rejects RDB_NODE_UNREACHABLE when the attempts run out, and
   * RDB_CONNECTION_CLOSED if the driver is closed meanwhile.
   */
  join(seeds: readonly string[]): Promise<number> {
    this.checkOpen();
    if (this.join_ !== undefined) {
      return Promise.reject(new RdbnetError(ErrorCode.Usage, 'a join is already under way'));
    }
    const others = [...new Set(seeds)].filter((s) => s !== this.address);
    if (others.length === 0 || this.swim.liveCount > 1) {
      return Promise.resolve(this.swim.liveCount);
    }
    return new Promise<number>((resolve, reject) => {
      this.join_ = { seeds: others, attempt: 0, timer: undefined, resolve, reject };
      this.joinAttempt();
    });
  }

  /**
   * Graceful departure: broadcasts our leave and resolves true once the machine has sent it
   * its full retransmit count, or false if that took longer than leaveTimeoutMs (plus a
   * little). The driver keeps answering pings until `close()`, so call that afterwards.
   */
  leave(): Promise<boolean> {
    this.checkOpen();
    if (this.leave_ !== undefined) {
      return Promise.reject(new RdbnetError(ErrorCode.Usage, 'leave() is already under way'));
    }
    this.swim.leave();
    if (this.swim.leftComplete) {
      this.pump();
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const timer = this.timers.setTimer(
        this.swim.config.leaveTimeoutMs + LEAVE_SLACK_MS,
        () => {
          this.leave_ = undefined;
          resolve(this.swim.leftComplete);
        },
        { unref: true },
      );
      this.leave_ = { timer, resolve };
      this.pump();
    });
  }

  /**
   * Stops at once: timers, socket, pending join (rejected) and leave (resolved false).
   * Without a leave() first, the others see a crash and declare us dead after their
   * suspicion timeout. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) this.timers.clearTimer(this.timer);
    this.timer = undefined;
    const join = this.join_;
    this.join_ = undefined;
    if (join !== undefined) {
      if (join.timer !== undefined) this.timers.clearTimer(join.timer);
      join.reject(new RdbnetError(ErrorCode.ConnectionClosed, 'gossip closed while joining'));
    }
    const leave = this.leave_;
    this.leave_ = undefined;
    if (leave !== undefined) {
      this.timers.clearTimer(leave.timer);
      leave.resolve(this.swim.leftComplete);
    }
    await this.udp.close();
  }

  /**
   * The peer side of StreamTransport: the node calls this with a push-pull request that
   * arrived from `fromAddress` and sends back the reply (null: send none — the request did
   * not open, was a reply itself, or we are closed). Never throws for bad input.
   */
  onStream(fromAddress: string, bytes: Uint8Array): Uint8Array | null {
    if (this.closed) return null;
    const plaintext = this.openStream(bytes);
    if (plaintext === null) return null;
    this.streamCounts.requestsReceived++;
    this.streamCounts.bytesReceived += bytes.length;
    // Send what is queued first, so that whatever this message produces is told apart.
    this.dispatch(this.swim.takeOutbox());
    this.swim.receive(fromAddress, plaintext, 'stream');
    // A push-pull request produces exactly one stream packet: its reply (Swim.onPushPull).
    // It goes back on this exchange rather than as a new request.
    const out = this.swim.takeOutbox();
    let reply: OutboxPacket | undefined;
    for (let i = out.length - 1; i >= 0; i--) {
      if (out[i]!.via === 'stream') {
        reply = out[i];
        break;
      }
    }
    this.dispatch(reply === undefined ? out : out.filter((p) => p !== reply));
    this.pump();
    if (reply === undefined) return null;
    const sealed = this.keyring.seal(reply.bytes, this.streamAad);
    this.streamCounts.repliesSent++;
    this.streamCounts.bytesSent += sealed.length;
    return sealed;
  }

  // --- internals ----------------------------------------------------------------------------

  private checkOpen(): void {
    if (this.closed) throw new RdbnetError(ErrorCode.ConnectionClosed, 'gossip is closed');
  }

  private onDatagram(fromAddress: string, plaintext: Uint8Array): void {
    if (this.closed) return;
    this.swim.receive(fromAddress, plaintext, 'udp');
    this.pump();
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerDueMs = Number.POSITIVE_INFINITY;
    if (this.closed) return;
    this.ticks++;
    this.swim.tick();
    this.pump();
  }

  /** Sends the outbox, delivers events, settles join/leave, re-arms the timer. */
  private pump(): void {
    if (this.closed) return;
    this.dispatch(this.swim.takeOutbox());
    this.emitEvents();
    this.logConflict();
    this.settle();
    this.schedule();
  }

  private logConflict(): void {
    const conflict = this.swim.selfConflict?.address;
    if (conflict === this.loggedConflict) return;
    this.loggedConflict = conflict;
    if (conflict !== undefined) {
      this.logger?.warn(
        'gossip: the members know this id alive at another address; not refuting, no leave',
        { id: this.id, address: conflict },
      );
    }
  }

  private dispatch(packets: readonly OutboxPacket[]): void {
    for (const packet of packets) {
      if (packet.via === 'udp') this.udp.send(packet.to, packet.bytes);
      else this.request(packet.to, packet.bytes);
    }
  }

  private emitEvents(): void {
    // A listener that calls back into the driver pumps again; the outer loop keeps the
    // events in order by being the only one that delivers them.
    if (this.emitting) return;
    this.emitting = true;
    try {
      for (let events = this.swim.takeEvents(); events.length > 0; ) {
        for (const event of events) {
          for (const listener of this.listeners) {
            try {
              listener(event);
            } catch (error) {
              this.listenerErrors++;
              this.logger?.error('gossip: event listener threw', { event: event.type, error });
            }
          }
        }
        events = this.closed ? [] : this.swim.takeEvents();
      }
    } finally {
      this.emitting = false;
    }
  }

  private settle(): void {
    const join = this.join_;
    if (join !== undefined && this.swim.liveCount > 1) {
      this.join_ = undefined;
      if (join.timer !== undefined) this.timers.clearTimer(join.timer);
      join.resolve(this.swim.liveCount);
    }
    const leave = this.leave_;
    if (leave !== undefined && this.swim.leftComplete) {
      this.leave_ = undefined;
      this.timers.clearTimer(leave.timer);
      leave.resolve(true);
    }
  }

  /** Arms the one timer for the machine's next wake-up, but never further than tickMs away
   * (the machine reads a longer silence as our own process having stalled). */
  private schedule(): void {
    if (this.closed) return;
    const now = this.clock.nowMs();
    const wake = this.swim.nextWakeMs();
    // After a completed leave nothing is due; packets still arrive and are answered.
    if (wake === Number.POSITIVE_INFINITY && this.swim.leftComplete) return;
    const dueMs = Math.min(wake, now + this.swim.config.tickMs);
    // Re-arming on every packet would churn timers; only move it earlier.
    if (this.timer !== undefined && dueMs >= this.timerDueMs) return;
    if (this.timer !== undefined) this.timers.clearTimer(this.timer);
    this.timerDueMs = dueMs;
    this.timer = this.timers.setTimer(Math.max(0, Math.ceil(dueMs - now)), () => this.onTimer(), {
      unref: true,
    });
  }

  private joinAttempt(): void {
    const join = this.join_;
    if (join === undefined || this.closed) return;
    join.timer = undefined;
    if (join.attempt >= this.joinAttemptsMax) {
      this.join_ = undefined;
      join.reject(
        new RdbnetError(
          ErrorCode.NodeUnreachable,
          `no seed answered after ${join.attempt} join attempts: ${join.seeds.join(', ')}`,
          { hint: 'check the seed addresses, that the seeds run, and that they share our key' },
        ),
      );
      return;
    }
    this.joinAttempts++;
    try {
      this.swim.join(join.seeds);
    } catch (error) {
      // After leave() the machine refuses to join again.
      this.join_ = undefined;
      join.reject(error as Error);
      return;
    }
    const ceilingMs = Math.min(
      this.joinRetryCapMs,
      this.joinRetryBaseMs * 2 ** Math.min(join.attempt, 30),
    );
    join.attempt++;
    // Jitter within [½, 1] of the ceiling: nodes restarted together spread out, but an
    // attempt still gets time for its reply to come back.
    const delayMs = ceilingMs * (0.5 + this.random.next() / 2);
    join.timer = this.timers.setTimer(delayMs, () => this.joinAttempt(), { unref: true });
    this.pump();
  }

  private request(to: string, bytes: Uint8Array): void {
    const counts = this.streamCounts;
    if (counts.inflight >= this.streamRequestsMax) {
      this.dropStream('inflightFull', to);
      return;
    }
    const sealed = this.keyring.seal(bytes, this.streamAad);
    counts.inflight++;
    counts.requestsSent++;
    counts.bytesSent += sealed.length;
    let done = false;
    const timer = this.timers.setTimer(
      this.streamTimeoutMs,
      () => {
        if (done) return;
        done = true;
        counts.inflight--;
        this.dropStream('timeout', to);
      },
      { unref: true },
    );
    const finish = (reply: Uint8Array | null, error?: unknown): void => {
      if (done) return;
      done = true;
      this.timers.clearTimer(timer);
      counts.inflight--;
      if (this.closed) return;
      if (error !== undefined) {
        this.dropStream('sendFailed', to, error);
        return;
      }
      if (reply === null) return;
      const plaintext = this.openStream(reply);
      if (plaintext === null) return;
      counts.repliesReceived++;
      counts.bytesReceived += reply.length;
      this.swim.receive(to, plaintext, 'stream');
      this.pump();
    };
    let pending: Promise<Uint8Array | null>;
    try {
      pending = this.stream.send(to, sealed);
    } catch (error) {
      finish(null, error ?? new Error('stream send threw'));
      return;
    }
    pending.then(
      (reply) => finish(reply),
      (error: unknown) => finish(null, error ?? new Error('stream send rejected')),
    );
  }

  private openStream(bytes: Uint8Array): Uint8Array | null {
    if (bytes.length > this.streamBytesMax) {
      this.dropStream('oversize');
      return null;
    }
    try {
      return this.keyring.open(bytes, this.streamAad);
    } catch (error) {
      if (!(error instanceof KeyringOpenError)) throw error;
      this.dropStream(error.reason === 'unknown-key' ? 'unknownKey' : error.reason);
      return null;
    }
  }

  private dropStream(reason: StreamDropReason, peer?: string, error?: unknown): void {
    this.streamCounts.dropped[reason]++;
    this.logger?.debug('gossip: stream exchange dropped', { reason, peer, error });
  }
}
