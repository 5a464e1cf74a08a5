/**
 * SWIM + Lifeguard membership as a pure state machine (ARCHITECTURE.md practice 1).
 *
 * Inputs: `receive()` (a packet from the network), `tick()` (time passed, read from the
 * injected Clock) and the API calls `join()`, `leave()`, `setMeta()`. Outputs: packets to
 * send (`takeOutbox()`) and membership events (`takeEvents()`). No sockets, no timers, no
 * Date.now(); randomness comes from the injected Random, so a seeded run replays exactly.
 *
 * The protocol, briefly:
 *   - Failure detection. Every probe interval we ping one member, round-robin over a list
 *     reshuffled each round. Without an ack by the probe timeout we re-send the ping; still
 *     without one, we ask `indirectChecks` members to ping it for us (they nack if it does
 *     not answer them either). Without any ack by the end of the interval we suspect it.
 *   - Suspicion (Lifeguard). A suspect has a timeout that starts at its maximum and shrinks
 *     with the log of independent confirmations, never below a floor derived from the stall
 *     tolerance. A suspect that hears about it (the suspicion rides on every packet sent to
 *     it — the buddy system) refutes by bumping its incarnation. Past the timeout: dead.
 *   - Local health (Lifeguard). Missing nacks, refutations and our own pauses raise an
 *     awareness score that stretches our probe interval and timeouts; successful probes
 *     lower it. A slow node thus stops accusing healthy ones.
 *   - Dissemination. State changes are queued as broadcasts and piggybacked on every packet
 *     (packed by encoded size into packetBytesMax), plus gossip rounds to `gossipFanout`
 *     random members; urgent news (refutations, deaths, leaves) is forwarded at once.
 *     A push-pull full-state exchange over the stream transport joins new nodes and repairs
 *     anything gossip missed; dead members are pinged now and then so partitions heal.
 *
 * Incarnation rules: alive(i) beats suspect/dead(j) only if i > j; suspect/dead(i) beat
 * alive(j) if i ≥ j; left(i) is final for every incarnation ≤ i, so stale alive messages
 * cannot resurrect a member that left.
 *
 * One id, one process: an alive message that claims a known id at another address is
 * ignored unless the member there is dead or left for deadReclaimMs (a node restarted
 * elsewhere). The newcomer side of such a conflict — a process that learns, before any
 * member has shown that it knows it at its own address, that the members know its id alive
 * at another address — keeps quiet (`selfConflict`): it refutes nothing and announces no
 * leave, since every message it could send about that id would be taken as news about the
 * other process (a leave would mark that one left).
 */
import { assert, ErrorCode, isRdbnetError, RdbnetError } from '../../errors.ts';
import { PhiAccrualDetector, type PhiAccrualOptions } from '../../health/phi.ts';
import { memberScore } from '../../health/score.ts';
import type { Clock, Random } from '../../runtime/index.ts';
import { type Coordinate, VivaldiClient } from '../vivaldi.ts';
import { Awareness } from './awareness.ts';
import { BroadcastQueue } from './broadcast.ts';
import {
  DATAGRAM_HEADER_BYTES,
  DATAGRAM_PARTS_MAX,
  decodeDatagram,
  decodePushPull,
  encodeDatagram,
  encodePart,
  encodePartTransient,
  encodePushPull,
  STRING_BYTES_MAX,
  utf8Bytes,
} from './codec.ts';
import {
  pushPullIntervalMs,
  retransmitLimit,
  SWIM_LAN,
  type SwimConfig,
  validateSwimConfig,
} from './config.ts';
import type {
  AliveMessage,
  BroadcastMessage,
  DatagramMessage,
  DeadMessage,
  LeaveMessage,
  MemberState,
  PushPullMember,
  PushPullMessage,
  SuspectMessage,
  Transport,
} from './messages.ts';
import { Suspicion, suspicionTimeoutMinMs } from './suspicion.ts';

const U32_MAX = 0xffff_ffff;
/** Returned by the take* calls when there is nothing, so polling allocates nothing. */
const NONE: readonly never[] = Object.freeze([]);
/** Weight of a new sample in the smoothed RTT (TCP's SRTT uses 1/8). */
const RTT_GAIN = 1 / 8;
/** Round trips kept per member for its percentiles (a rolling window of probes). */
export const RTT_WINDOW = 64;

/** The last RTT_WINDOW samples in a ring; quantiles by sorting a copy (64 numbers). */
class RttWindow {
  private readonly samples = new Float64Array(RTT_WINDOW);
  private count = 0;

  add(sample: number): void {
    this.samples[this.count % RTT_WINDOW] = sample;
    this.count++;
  }

  quantile(q: number): number {
    const n = Math.min(this.count, RTT_WINDOW);
    const sorted = this.samples.slice(0, n).sort();
    return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  }
}
/** Weight of one probe outcome in a member's loss ratio. */
const LOSS_GAIN = 1 / 8;
/** Tombstones are checked for reaping at most this often. */
const REAP_INTERVAL_MS = 1000;

export interface SwimSelf {
  /** Unique member id, 1..255 bytes of UTF-8. */
  id: string;
  /** Where others reach us: the UDP and stream transports' address ("host:port"). */
  address: string;
  /** Application metadata, at most config.metaBytesMax bytes. */
  meta?: Uint8Array;
  /** Starting incarnation; a node that persists its last one restarts above it. Default 0. */
  incarnation?: number;
}

export interface SwimOptions {
  self: SwimSelf;
  /** Default: the lan preset. */
  config?: SwimConfig;
  clock: Clock;
  random: Random;
}

export interface OutboxPacket {
  to: string;
  bytes: Uint8Array;
  via: Transport;
}

/** join: became alive from unknown, dead or left. alive: a suspicion was refuted.
 * update: an alive member changed its metadata. Events are about other members only. */
export type MemberEventType = 'join' | 'suspect' | 'alive' | 'dead' | 'left' | 'update';

export interface MemberEvent {
  type: MemberEventType;
  id: string;
  address: string;
  incarnation: number;
  atMs: number;
}

export interface MemberView {
  id: string;
  address: string;
  state: MemberState;
  incarnation: number;
  meta: Uint8Array;
  isSelf: boolean;
  stateChangedAtMs: number;
  /** Smoothed RTT of our direct probes; undefined until the first direct ack. */
  rttMs: number | undefined;
  /** Vivaldi coordinate: our own, or the member's from its last direct ack (else undefined). */
  coordinate: Coordinate | undefined;
  /** Median and 99th percentile of the last RTT_WINDOW direct probes; undefined before any. */
  rttP50Ms: number | undefined;
  rttP99Ms: number | undefined;
  lastAckAtMs: number | undefined;
  /** Phi of the member's accrual detector, fed with our probe acks (0 before any). */
  phi: number;
  /** Recent fraction of our probes to it that missed the direct ack, 0..1. */
  lossRatio: number;
  /** 0..1 from phi, RTT and loss (health/score.ts); 0 for dead and left members. */
  score: number;
}

export interface LocalHealth {
  /** Lifeguard awareness, 0 (healthy) .. awarenessMaxMultiplier − 1. */
  awarenessScore: number;
  awarenessMax: number;
  /** Current, scaled probe interval and timeout. */
  probeIntervalMs: number;
  probeTimeoutMs: number;
}

export interface SwimStats {
  packetsReceived: number;
  /** Packets that failed to decode (malformed, oversize, wrong transport); ignored. */
  packetsRejected: number;
  packetsSent: number;
  udpBytesSent: number;
  streamBytesSent: number;
  probesSent: number;
  probesFailed: number;
  indirectProbes: number;
  acksReceived: number;
  nacksReceived: number;
  nacksSent: number;
  /** Pings for an id that is not ours (someone else now lives at a probed address). */
  misdirectedPings: number;
  relaysStarted: number;
  /** Ping-reqs ignored because relaysPendingMax were in flight. */
  relaysDropped: number;
  suspicionsStarted: number;
  /** Members this node declared dead when their suspicion timed out. */
  deathsDeclared: number;
  /** Pings sent to a suspect just before its deadline (see Suspicion). */
  lastChancePings: number;
  refutations: number;
  gossipRounds: number;
  /** Broadcasts dropped because the queue was full. */
  broadcastsDropped: number;
  outboxDropped: number;
  eventsDropped: number;
  /** New members refused because memberCountMax were held. */
  membersRefused: number;
  /** Alive messages claiming a known id at another address, ignored. */
  addressConflicts: number;
  /** Times we learned that the members know our own id alive at another address before
   * knowing us (see Swim.selfConflict). */
  selfConflicts: number;
  /** Push-pulls started because a member we know at another address, dead or left long
   * enough to be reclaimed, probed us from a new one (see onPing). */
  movedSenderSyncs: number;
  pushPullsSent: number;
  pushPullsReceived: number;
  /** Push-pull messages cut short at streamBytesMax. */
  pushPullsTruncated: number;
  reconnectsAttempted: number;
  reconnects: number;
  /** Push-pulls started because a member we did not know probed us. */
  unknownSenderSyncs: number;
  /** Times our own process was found paused (a tick or packet far later than expected). */
  localStalls: number;
  tombstonesReaped: number;
}

interface Member {
  id: string;
  address: string;
  meta: Uint8Array;
  incarnation: number;
  state: MemberState;
  stateChangeMs: number;
  suspicion: Suspicion | undefined;
  /** Position in Swim.list, for O(1) removal; −1 for self. */
  index: number;
  rttMs: number;
  lastAckAtMs: number;
  lossRatio: number;
  detector: PhiAccrualDetector | undefined;
  /** Its Vivaldi coordinate, from its last direct ack. */
  coordinate: Coordinate | undefined;
  /** The last RTT_WINDOW direct-probe round trips (allocated at the first). */
  rttWindow: RttWindow | undefined;
}

interface Probe {
  seq: number;
  target: Member;
  incarnation: number;
  /** When the latest direct ping went out, for the RTT of a retried ping's ack. */
  pingAtMs: number;
  /** direct: waiting for the first ack; retry: direct pings re-sent, waiting for theirs;
   * indirect: relays asked, waiting until endAtMs. */
  phase: 'direct' | 'retry' | 'indirect';
  phaseEndsAtMs: number;
  endAtMs: number;
  expectedNacks: number;
  nacks: number;
}

interface Relay {
  requester: string;
  requesterSeq: number;
  wantNack: boolean;
  nackAtMs: number;
}

function newStats(): SwimStats {
  return {
    packetsReceived: 0,
    packetsRejected: 0,
    packetsSent: 0,
    udpBytesSent: 0,
    streamBytesSent: 0,
    probesSent: 0,
    probesFailed: 0,
    indirectProbes: 0,
    acksReceived: 0,
    nacksReceived: 0,
    nacksSent: 0,
    misdirectedPings: 0,
    relaysStarted: 0,
    relaysDropped: 0,
    suspicionsStarted: 0,
    deathsDeclared: 0,
    lastChancePings: 0,
    refutations: 0,
    gossipRounds: 0,
    broadcastsDropped: 0,
    outboxDropped: 0,
    eventsDropped: 0,
    membersRefused: 0,
    addressConflicts: 0,
    selfConflicts: 0,
    movedSenderSyncs: 0,
    pushPullsSent: 0,
    pushPullsReceived: 0,
    pushPullsTruncated: 0,
    reconnectsAttempted: 0,
    reconnects: 0,
    unknownSenderSyncs: 0,
    localStalls: 0,
    tombstonesReaped: 0,
  };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isLive(m: Member): boolean {
  return m.state === 'alive' || m.state === 'suspect';
}

export class Swim {
  readonly config: Readonly<SwimConfig>;
  readonly stats: SwimStats = newStats();
  private readonly clock: Clock;
  private readonly random: Random;
  /** Our network coordinate, moved by the RTTs of our direct probes (vivaldi.ts). */
  private readonly vivaldi: VivaldiClient;
  private readonly self: Member;
  private readonly byId = new Map<string, Member>();
  private readonly byAddress = new Map<string, Member>();
  /** Every member but ourselves, in no order; for random picks. */
  private readonly list: Member[] = [];
  private readonly suspects = new Set<Member>();
  private readonly tombstones = new Set<Member>();
  /** Other members alive or suspect; N = liveOthers + 1. */
  private liveOthers = 0;
  private readonly awareness: Awareness;
  private readonly queue: BroadcastQueue;
  private outbox: OutboxPacket[] = [];
  private events: MemberEvent[] = [];
  private readonly relays = new Map<number, Relay>();
  private seq: number;

  private probe: Probe | undefined;
  private probeRound: Member[] = [];
  private probeIndex = 0;
  private nextProbeAtMs: number;
  private nextGossipAtMs: number;
  private lastGossipAtMs = Number.NEGATIVE_INFINITY;
  private nextPushPullAtMs: number;
  private nextReconnectAtMs: number;
  private reconnect: { seq: number; member: Member } | undefined;
  private lastUnknownSyncMs = Number.NEGATIVE_INFINITY;
  /** When we last sent our alive straight to a member that accused us (onAccused). */
  private readonly answeredAccusers = new Map<string, number>();
  /** The one extra push-pull after joining (see onPushPull); `null` once done. */
  private joinResync: { address: string; atMs: number } | null | undefined;
  private nextReapAtMs: number;
  /** Earliest suspicion deadline, recomputed lazily when `suspicionsDirty`. */
  private suspicionWakeMs = Number.POSITIVE_INFINITY;
  private suspicionsDirty = false;
  /** When we expect the caller back at the latest; later than this means we were paused. */
  private expectedByMs = Number.POSITIVE_INFINITY;
  private leaving: 'no' | 'leaving' | 'done' = 'no';
  /**
   * True once a member has shown it knows us at our own address: it probed us there, or
   * its state lists us there. Until then a claim of our id alive elsewhere makes us the
   * newcomer in a conflict, not the incumbent.
   */
  private known = false;
  private conflict: { address: string; incarnation: number } | undefined;
  private leaveDeadlineMs = Number.POSITIVE_INFINITY;
  private detectorOptions: { members: number; options: Readonly<PhiAccrualOptions> } | undefined;

  constructor(options: SwimOptions) {
    this.config = Object.freeze(validateSwimConfig({ ...(options.config ?? SWIM_LAN) }));
    this.clock = options.clock;
    this.random = options.random;
    this.vivaldi = new VivaldiClient(options.random);
    const { id, address } = options.self;
    const meta = options.self.meta ?? new Uint8Array(0);
    const incarnation = options.self.incarnation ?? 0;
    const problems: string[] = [];
    for (const [name, value] of [
      ['id', id],
      ['address', address],
    ] as const) {
      const length = typeof value === 'string' ? utf8Bytes(value) : 0;
      if (length < 1 || length > STRING_BYTES_MAX) {
        problems.push(`${name} must be 1..${STRING_BYTES_MAX} bytes of UTF-8`);
      }
    }
    if (!Number.isInteger(incarnation) || incarnation < 0 || incarnation >= U32_MAX) {
      problems.push('incarnation must be an integer in 0..2^32−2');
    }
    if (problems.length > 0) {
      throw new RdbnetError(ErrorCode.ConfigInvalid, `invalid SWIM self: ${problems.join('; ')}`);
    }
    this.checkMeta(meta);
    const now = this.clock.nowMs();
    this.self = {
      id,
      address,
      meta: meta.slice(),
      incarnation,
      state: 'alive',
      stateChangeMs: now,
      suspicion: undefined,
      index: -1,
      rttMs: Number.NaN,
      coordinate: undefined,
      rttWindow: undefined,
      lastAckAtMs: Number.NaN,
      lossRatio: 0,
      detector: undefined,
    };
    this.awareness = new Awareness(this.config.awarenessMaxMultiplier);
    this.queue = new BroadcastQueue(this.config.broadcastsQueuedMax);
    this.seq = this.random.int(U32_MAX);
    // Random phases, so nodes started together do not probe and sync in lockstep.
    this.nextProbeAtMs = now + this.random.next() * this.config.probeIntervalMs;
    this.nextGossipAtMs = now;
    // The first anti-entropy exchange comes within one unscaled interval of starting: it
    // repairs whatever the join's rumours missed while the cluster is young.
    this.nextPushPullAtMs = now + this.random.next() * this.config.pushPullIntervalMs;
    this.nextReconnectAtMs = now + this.random.next() * this.config.reconnectIntervalMs;
    this.nextReapAtMs = now + REAP_INTERVAL_MS;
    // Announce ourselves to whoever we meet first.
    this.broadcast(this.self.id, this.aliveOf(this.self), now, false);
  }

  // --- public API ---------------------------------------------------------------------------

  get id(): string {
    return this.self.id;
  }

  get address(): string {
    return this.self.address;
  }

  get incarnation(): number {
    return this.self.incarnation;
  }

  /** True once `leave()` has finished broadcasting; the caller may then stop the node. */
  get leftComplete(): boolean {
    return this.leaving === 'done';
  }

  /**
   * Set while the members know our id alive (or suspect) at another address and none has
   * shown it knows us at ours: another process holds our id, or our previous life there is
   * not over yet. Meanwhile we refute nothing and leave() announces nothing. Cleared when a
   * member probes us or lists us at our address, or lists the other address dead or left.
   */
  get selfConflict(): { address: string; incarnation: number } | undefined {
    return this.conflict === undefined ? undefined : { ...this.conflict };
  }

  /** Members in the alive or suspect state, ourselves included. */
  get liveCount(): number {
    return this.liveOthers + (this.leaving === 'no' ? 1 : 0);
  }

  /**
   * Starts a push-pull state exchange with each seed (over the stream transport). There is
   * no retry here: if no seed answers (liveCount stays 1), the caller calls join() again.
   */
  join(seedAddresses: readonly string[]): void {
    const now = this.clock.nowMs();
    this.observeTime(now);
    if (this.leaving !== 'no') {
      throw new RdbnetError(ErrorCode.Usage, 'cannot join after leave()');
    }
    for (const seed of new Set(seedAddresses)) {
      if (seed !== this.self.address) this.sendPushPull(seed, true, false);
    }
    this.refreshExpected(now);
  }

  /**
   * Graceful departure: broadcasts that we left, stops probing, keeps answering pings until
   * the caller stops us. `leftComplete` turns true once the broadcast has been sent its
   * full retransmit count (or after leaveTimeoutMs).
   */
  leave(): void {
    const now = this.clock.nowMs();
    this.observeTime(now);
    if (this.leaving !== 'no') return;
    this.leaving = 'leaving';
    this.self.state = 'left';
    this.self.stateChangeMs = now;
    this.probe = undefined;
    this.leaveDeadlineMs = now + this.config.leaveTimeoutMs;
    if (this.conflict !== undefined) {
      // The members know our id as another process: a leave would mark that one left.
      this.leaving = 'done';
      this.refreshExpected(now);
      return;
    }
    const message: LeaveMessage = {
      type: 'leave',
      incarnation: this.self.incarnation,
      id: this.self.id,
    };
    this.broadcast(this.self.id, message, now, true);
    this.checkLeave(now);
    this.refreshExpected(now);
  }

  /** Replaces our metadata; bumps our incarnation so the change wins everywhere. */
  setMeta(meta: Uint8Array): void {
    const now = this.clock.nowMs();
    this.observeTime(now);
    this.checkMeta(meta);
    if (this.leaving !== 'no')
      throw new RdbnetError(ErrorCode.Usage, 'cannot setMeta after leave()');
    this.self.meta = meta.slice();
    this.bumpIncarnation(this.self.incarnation);
    this.broadcast(this.self.id, this.aliveOf(this.self), now, true);
    this.refreshExpected(now);
  }

  /**
   * Handles one packet. `fromAddress` is the datagram's source, where UDP answers go (run
   * one UDP socket bound to the advertised address, so that source and advertised address
   * agree); a stream message names its sender's advertised address itself. Malformed
   * packets are counted in stats.packetsRejected and dropped, never thrown.
   */
  receive(fromAddress: string, packet: Uint8Array, via: Transport): void {
    const now = this.clock.nowMs();
    this.observeTime(now);
    this.stats.packetsReceived++;
    if (via === 'udp') {
      let messages: DatagramMessage[];
      try {
        messages = decodeDatagram(packet, this.config);
      } catch (error) {
        if (!isRdbnetError(error)) throw error;
        this.stats.packetsRejected++;
        return;
      }
      // Broadcasts first: a ping that carries "you are suspected" is then answered by an
      // ack that already carries our refutation.
      for (const message of messages) {
        if (
          message.type === 'alive' ||
          message.type === 'suspect' ||
          message.type === 'dead' ||
          message.type === 'leave'
        ) {
          this.onBroadcast(message, now);
        }
      }
      for (const message of messages) {
        switch (message.type) {
          case 'ping':
            this.onPing(fromAddress, message.seq, message.targetId, message.sourceId, now);
            break;
          case 'ping-req':
            this.onPingReq(
              fromAddress,
              message.seq,
              message.targetId,
              message.targetAddress,
              message.wantNack,
              now,
            );
            break;
          case 'ack':
            this.onAck(fromAddress, message.seq, now, message.coordinate);
            break;
          case 'nack':
            if (this.probe !== undefined && this.probe.seq === message.seq) {
              this.probe.nacks++;
              this.stats.nacksReceived++;
            }
            break;
        }
      }
    } else {
      let message: PushPullMessage;
      try {
        message = decodePushPull(packet, this.config);
      } catch (error) {
        if (!isRdbnetError(error)) throw error;
        this.stats.packetsRejected++;
        return;
      }
      this.onPushPull(message, now);
    }
    this.refreshExpected(now);
  }

  /** Advances every timer to clock.nowMs(). Call at nextWakeMs(), and at least every tickMs. */
  tick(): void {
    const now = this.clock.nowMs();
    this.observeTime(now);
    if (this.leaving !== 'done') {
      this.checkLeave(now);
      this.expireSuspicions(now);
      this.expireRelays(now);
      this.runProbe(now);
      this.runGossip(now);
      this.runPushPull(now);
      this.runReconnect(now);
      this.reap(now);
    }
    this.refreshExpected(now);
  }

  /** When the next timer is due (Infinity if none); the caller should tick then. */
  nextWakeMs(): number {
    if (this.leaving === 'done') return Number.POSITIVE_INFINITY;
    let wake = this.nextPushPullAtMs;
    if (this.leaving === 'no') {
      const p = this.probe;
      const probeWake =
        p === undefined
          ? this.nextProbeAtMs
          : p.phase === 'indirect'
            ? p.endAtMs
            : Math.min(p.phaseEndsAtMs, p.endAtMs);
      if (probeWake < wake) wake = probeWake;
    } else if (this.leaveDeadlineMs < wake) {
      wake = this.leaveDeadlineMs;
    }
    if (this.queue.size > 0 && this.nextGossipAtMs < wake) wake = this.nextGossipAtMs;
    // Relay deadlines are issued in order, so the first one in the Map is the earliest.
    for (const relay of this.relays.values()) {
      if (relay.nackAtMs < wake) wake = relay.nackAtMs;
      break;
    }
    if (this.suspects.size > 0) {
      if (this.suspicionsDirty) {
        this.suspicionWakeMs = Number.POSITIVE_INFINITY;
        for (const m of this.suspects) {
          this.suspicionWakeMs = Math.min(this.suspicionWakeMs, m.suspicion!.wakeMs);
        }
        this.suspicionsDirty = false;
      }
      if (this.suspicionWakeMs < wake) wake = this.suspicionWakeMs;
    }
    if (this.joinResync && this.joinResync.atMs < wake) wake = this.joinResync.atMs;
    if (this.tombstones.size > 0) {
      if (this.nextReapAtMs < wake) wake = this.nextReapAtMs;
      if (this.nextReconnectAtMs < wake) wake = this.nextReconnectAtMs;
    }
    return wake;
  }

  /** Packets to send, oldest first; the machine forgets them. */
  takeOutbox(): readonly OutboxPacket[] {
    if (this.outbox.length === 0) return NONE;
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  /** Membership events since the last call, oldest first. */
  takeEvents(): readonly MemberEvent[] {
    if (this.events.length === 0) return NONE;
    const out = this.events;
    this.events = [];
    return out;
  }

  /** Every member we know, ourselves first, tombstones included. */
  members(): MemberView[] {
    const now = this.clock.nowMs();
    const views = [this.view(this.self, now)];
    for (const m of this.list) views.push(this.view(m, now));
    return views;
  }

  member(id: string): MemberView | undefined {
    if (id === this.self.id) return this.view(this.self, this.clock.nowMs());
    const m = this.byId.get(id);
    return m === undefined ? undefined : this.view(m, this.clock.nowMs());
  }

  /** A member's state without building a view (cheap; for simulations and checks). */
  memberState(id: string): MemberState | undefined {
    if (id === this.self.id) return this.self.state;
    return this.byId.get(id)?.state;
  }

  localHealth(): LocalHealth {
    return {
      awarenessScore: this.awareness.score,
      awarenessMax: this.config.awarenessMaxMultiplier,
      probeIntervalMs: this.awareness.scale(this.config.probeIntervalMs),
      probeTimeoutMs: this.awareness.scale(this.config.probeTimeoutMs),
    };
  }

  // --- time ---------------------------------------------------------------------------------

  private observeTime(now: number): void {
    const lateMs = now - this.expectedByMs;
    if (lateMs > this.config.localStallThresholdMs) this.onLocalStall(now, lateMs);
  }

  private refreshExpected(now: number): void {
    this.expectedByMs = Math.max(now + this.config.tickMs, this.nextWakeMs());
  }

  /**
   * We were not running for `lateMs` (our own pause, not the network's). Whatever we did
   * not hear meanwhile says nothing about others: drop the probe in flight without a
   * verdict, and give every suspect the time it lost to refute.
   */
  private onLocalStall(now: number, lateMs: number): void {
    this.stats.localStalls++;
    this.awareness.applyDelta(1);
    // Paused for longer than a probe interval, we are probably suspected by now. Refute
    // before hearing it: waiting for the accusation to reach us (a probe, a lost packet, a
    // retry) would eat into the little time the stall tolerance leaves us.
    if (lateMs >= this.config.probeIntervalMs && this.leaving === 'no') {
      this.stats.refutations++;
      this.bumpIncarnation(this.self.incarnation);
      this.broadcast(this.self.id, this.aliveOf(this.self), now, true);
    }
    if (this.probe !== undefined) {
      this.probe = undefined;
      this.nextProbeAtMs = now;
    }
    this.relays.clear();
    this.reconnect = undefined;
    for (const m of this.suspects) m.suspicion!.postpone(lateMs);
    this.suspicionsDirty = true;
  }

  // --- probing ------------------------------------------------------------------------------

  private runProbe(now: number): void {
    if (this.leaving !== 'no') return;
    const p = this.probe;
    if (p !== undefined) {
      if (p.phase === 'direct' && now >= p.phaseEndsAtMs) {
        if (this.config.probeDirectRetries > 0) this.probeRetry(p, now);
        else this.probeIndirect(p);
      }
      if (p.phase === 'retry' && now >= p.phaseEndsAtMs) this.probeIndirect(p);
      if (now >= p.endAtMs) this.probeFailed(p, now);
    }
    if (this.probe === undefined && now >= this.nextProbeAtMs) this.startProbe(now);
  }

  private nextProbeTarget(): Member | undefined {
    for (let pass = 0; pass < 2; pass++) {
      while (this.probeIndex < this.probeRound.length) {
        const m = this.probeRound[this.probeIndex++]!;
        if (m.index >= 0 && isLive(m)) return m; // index −1: forgotten since the shuffle
      }
      // A new round: every live member once, in a fresh random order.
      const round = this.list.filter(isLive);
      for (let i = round.length - 1; i > 0; i--) {
        const j = this.random.int(i + 1);
        const t = round[i]!;
        round[i] = round[j]!;
        round[j] = t;
      }
      this.probeRound = round;
      this.probeIndex = 0;
      if (round.length === 0) return undefined;
    }
    return undefined;
  }

  private startProbe(now: number): void {
    const multiplier = this.awareness.multiplier;
    const target = this.nextProbeTarget();
    if (target === undefined) {
      this.nextProbeAtMs = now + this.config.probeIntervalMs * multiplier;
      return;
    }
    const seq = this.nextSeq();
    this.probe = {
      seq,
      target,
      incarnation: target.incarnation,
      pingAtMs: now,
      phase: 'direct',
      phaseEndsAtMs: now + this.config.probeTimeoutMs * multiplier,
      endAtMs: now + this.config.probeIntervalMs * multiplier,
      expectedNacks: 0,
      nacks: 0,
    };
    this.nextProbeAtMs = this.probe.endAtMs;
    this.stats.probesSent++;
    this.sendDatagram(target.address, this.pingPart(seq, target.id), target);
  }

  /**
   * No ack yet: re-send the direct ping first. One lost datagram is by far the most common
   * reason, and a retry costs 2 packets where the indirect probes cost 12 or more.
   */
  private probeRetry(p: Probe, now: number): void {
    p.phase = 'retry';
    p.phaseEndsAtMs = now + this.awareness.scale(this.config.probeRetryTimeoutMs);
    p.pingAtMs = now;
    for (let i = 0; i < this.config.probeDirectRetries; i++) {
      this.sendDatagram(p.target.address, this.pingPart(p.seq, p.target.id), p.target);
    }
  }

  /** Still no ack: ask `indirectChecks` members to probe the target for us (SWIM). */
  private probeIndirect(p: Probe): void {
    p.phase = 'indirect';
    const target = p.target;
    const relays = this.pickMembers(
      this.config.indirectChecks,
      (m) => m !== target && m.state === 'alive',
    );
    for (const relay of relays) {
      const part = encodePartTransient({
        type: 'ping-req',
        seq: p.seq,
        targetId: target.id,
        targetAddress: target.address,
        wantNack: true,
      });
      this.sendDatagram(relay.address, part, relay);
      p.expectedNacks++;
    }
    if (relays.length > 0) this.stats.indirectProbes++;
  }

  private probeFailed(p: Probe, now: number): void {
    this.probe = undefined;
    this.stats.probesFailed++;
    const target = p.target;
    target.lossRatio += (1 - target.lossRatio) * LOSS_GAIN;
    // Lifeguard: relays that could not nack us either point at our own health; with no
    // relays at all, any failed probe counts against us.
    this.awareness.applyDelta(p.expectedNacks > 0 ? Math.max(0, p.expectedNacks - p.nacks) : 1);
    if (this.byId.get(target.id) === target && isLive(target)) {
      this.onSuspect(
        { type: 'suspect', incarnation: p.incarnation, id: target.id, fromId: this.self.id },
        now,
      );
    }
  }

  private onAck(from: string, seq: number, now: number, coordinate?: Coordinate): void {
    const p = this.probe;
    if (p !== undefined && p.seq === seq) {
      this.probe = undefined;
      this.stats.acksReceived++;
      this.awareness.applyDelta(-1);
      const target = p.target;
      if (from === target.address) {
        const sample = now - p.pingAtMs;
        target.rttMs = Number.isNaN(target.rttMs)
          ? sample
          : target.rttMs + (sample - target.rttMs) * RTT_GAIN;
        target.rttWindow ??= new RttWindow();
        target.rttWindow.add(sample);
        if (coordinate !== undefined) {
          target.coordinate = coordinate;
          this.vivaldi.observe(target.id, coordinate, sample);
        }
      }
      target.lossRatio += ((p.phase === 'direct' ? 0 : 1) - target.lossRatio) * LOSS_GAIN;
      target.lastAckAtMs = now;
      if (target.detector === undefined) {
        target.detector = new PhiAccrualDetector(this.phiOptions());
      }
      target.detector.heartbeat(now);
      return;
    }
    const r = this.reconnect;
    if (r !== undefined && r.seq === seq) {
      this.reconnect = undefined;
      if (this.byId.get(r.member.id) === r.member && r.member.state === 'dead') {
        this.stats.reconnects++;
        this.sendPushPull(r.member.address, false, false);
      }
      return;
    }
    const relay = this.relays.get(seq);
    if (relay !== undefined) {
      this.relays.delete(seq);
      this.sendDatagram(
        relay.requester,
        encodePartTransient({ type: 'ack', seq: relay.requesterSeq }),
        this.byAddress.get(relay.requester),
      );
    }
  }

  private onPing(from: string, seq: number, targetId: string, sourceId: string, now: number): void {
    if (targetId !== this.self.id) {
      this.stats.misdirectedPings++;
      return;
    }
    this.sendDatagram(from, this.ackPart(seq), this.byAddress.get(from));
    // Someone probes our id at our address: it knows us here.
    if (sourceId !== this.self.id) this.markKnown();
    if (
      sourceId === this.self.id ||
      this.leaving !== 'no' ||
      now - this.lastUnknownSyncMs < this.config.unknownSenderSyncIntervalMs
    ) {
      return;
    }
    const known = this.byId.get(sourceId);
    if (known === undefined) {
      // A prober we have never heard of: its join's rumour missed us (the rumour can die out
      // while a burst of joiners, who learn it by push-pull and never pass it on, soak up its
      // transmissions). A push-pull with it repairs both views.
      this.lastUnknownSyncMs = now;
      this.stats.unknownSenderSyncs++;
      this.sendPushPull(from, false, false);
    } else if (known.address !== from && this.reclaimable(known, now)) {
      // A member we hold dead or left elsewhere, now probing from a new address (restarted
      // there): its alive reached us before the reclaim window was over and was ignored, and
      // nothing would repeat it before the next periodic push-pull. Learn it now.
      this.lastUnknownSyncMs = now;
      this.stats.movedSenderSyncs++;
      this.sendPushPull(from, false, false);
    }
  }

  /** A dead or left member whose id a new address may take (a node restarted elsewhere). */
  private reclaimable(m: Member, now: number): boolean {
    return (
      (m.state === 'dead' || m.state === 'left') &&
      now - m.stateChangeMs >= this.config.deadReclaimMs
    );
  }

  private markKnown(): void {
    this.known = true;
    this.conflict = undefined;
  }

  /** Our answer to a ping, with our coordinate so the prober can place itself. */
  private ackPart(seq: number): Uint8Array {
    return encodePartTransient({ type: 'ack', seq, coordinate: this.vivaldi.coordinate() });
  }

  private pingPart(seq: number, targetId: string): Uint8Array {
    return encodePartTransient({ type: 'ping', seq, targetId, sourceId: this.self.id });
  }

  private onPingReq(
    from: string,
    seq: number,
    targetId: string,
    targetAddress: string,
    wantNack: boolean,
    now: number,
  ): void {
    if (targetId === this.self.id) {
      this.sendDatagram(from, this.ackPart(seq), this.byAddress.get(from));
      return;
    }
    if (this.relays.size >= this.config.relaysPendingMax) {
      this.stats.relaysDropped++;
      return;
    }
    const relaySeq = this.nextSeq();
    this.relays.set(relaySeq, {
      requester: from,
      requesterSeq: seq,
      wantNack,
      nackAtMs: now + this.config.indirectProbeTimeoutMs,
    });
    this.stats.relaysStarted++;
    this.sendDatagram(targetAddress, this.pingPart(relaySeq, targetId), this.byId.get(targetId));
  }

  private expireRelays(now: number): void {
    for (const [seq, relay] of this.relays) {
      if (relay.nackAtMs > now) break;
      this.relays.delete(seq);
      if (relay.wantNack) {
        this.stats.nacksSent++;
        this.sendDatagram(
          relay.requester,
          encodePartTransient({ type: 'nack', seq: relay.requesterSeq }),
          this.byAddress.get(relay.requester),
        );
      }
    }
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  // --- membership state ---------------------------------------------------------------------

  private onBroadcast(message: BroadcastMessage, now: number): void {
    switch (message.type) {
      case 'alive':
        this.onAlive(message, now, 'gossip');
        break;
      case 'suspect':
        this.onSuspect(message, now);
        break;
      case 'dead':
        this.onDead(message, now);
        break;
      case 'leave':
        this.onLeave(message, now);
        break;
    }
  }

  /**
   * `source` decides how a member we did not know is passed on. From gossip: like any news.
   * From the push-pull of that member itself (it is joining through us): at once, while
   * nobody else knows it, so that many members spread it before later joiners (who learn it
   * from their own push-pull and never pass it on) dilute the rumour. Third parties learned
   * in a push-pull: not at all, or every joiner would re-gossip the whole cluster.
   */
  private onAlive(
    message: AliveMessage,
    now: number,
    source: 'gossip' | 'push-pull-sender' | 'push-pull',
  ): void {
    if (message.id === this.self.id) {
      if (this.leaving !== 'no' || this.conflict !== undefined) return;
      if (message.incarnation < this.self.incarnation) return;
      const same =
        message.incarnation === this.self.incarnation &&
        message.address === this.self.address &&
        bytesEqual(message.meta, this.self.meta);
      // Someone holds a newer or different story about us (a previous life, or an
      // impostor): out-bid it.
      if (!same) this.refute(message.incarnation, now);
      return;
    }
    const m = this.byId.get(message.id);
    if (m === undefined) {
      if (this.byId.size >= this.config.memberCountMax) {
        this.stats.membersRefused++;
        return;
      }
      const added = this.addMember(message, now);
      this.emit('join', added, now);
      if (source !== 'push-pull') {
        this.broadcast(added.id, message, now, source === 'push-pull-sender');
      }
      return;
    }
    if (m.address !== message.address) {
      if (!this.reclaimable(m, now)) {
        this.stats.addressConflicts++;
        return;
      }
      // The id moved (a node restarted elsewhere): its old incarnations mean nothing there.
      this.setAddress(m, message.address);
      m.incarnation = message.incarnation;
      m.meta = message.meta;
      m.rttMs = Number.NaN;
      m.detector = undefined;
      this.setState(m, 'alive', now);
      this.emit('join', m, now);
      this.broadcast(m.id, message, now, true);
      return;
    }
    if (message.incarnation <= m.incarnation) return;
    const previous = m.state;
    const metaChanged = !bytesEqual(m.meta, message.meta);
    m.incarnation = message.incarnation;
    m.meta = message.meta;
    if (previous === 'alive') {
      if (metaChanged) this.emit('update', m, now);
      this.broadcast(m.id, message, now, false);
    } else {
      this.setState(m, 'alive', now);
      this.emit(previous === 'suspect' ? 'alive' : 'join', m, now);
      this.broadcast(m.id, message, now, true);
    }
  }

  private onSuspect(message: SuspectMessage, now: number): void {
    if (message.id === this.self.id) {
      this.onAccused(message.incarnation, message.fromId, now);
      return;
    }
    const m = this.byId.get(message.id);
    if (m === undefined || message.incarnation < m.incarnation) return;
    if (m.state === 'suspect') {
      if (message.incarnation > m.incarnation) m.incarnation = message.incarnation;
      if (m.suspicion!.confirm(message.fromId)) {
        this.suspicionsDirty = true;
        this.broadcast(m.id, { ...message, incarnation: m.incarnation }, now, false);
      }
      return;
    }
    if (m.state !== 'alive') return;
    m.incarnation = message.incarnation;
    const members = this.liveOthers + 1;
    const minMs = suspicionTimeoutMinMs(this.config, members);
    const expected = Math.min(this.config.suspicionConfirmationsExpected, members - 2);
    this.setState(m, 'suspect', now);
    m.suspicion = new Suspicion(
      now,
      message.fromId,
      expected,
      minMs,
      minMs * this.config.suspicionMaxTimeoutMult,
      this.config.probeTimeoutMs,
    );
    this.suspicionsDirty = true;
    this.stats.suspicionsStarted++;
    this.emit('suspect', m, now);
    this.broadcast(m.id, message, now, false);
  }

  private onDead(message: DeadMessage, now: number): void {
    if (message.id === this.self.id) {
      this.onAccused(message.incarnation, message.fromId, now);
      return;
    }
    const m = this.byId.get(message.id);
    if (m === undefined || message.incarnation < m.incarnation) return;
    if (m.state === 'dead' || m.state === 'left') return;
    m.incarnation = message.incarnation;
    this.setState(m, 'dead', now);
    this.emit('dead', m, now);
    this.broadcast(m.id, message, now, true);
  }

  private onLeave(message: LeaveMessage, now: number): void {
    if (message.id === this.self.id) {
      this.onAccused(message.incarnation, undefined, now);
      return;
    }
    const m = this.byId.get(message.id);
    if (m === undefined || message.incarnation < m.incarnation || m.state === 'left') return;
    m.incarnation = message.incarnation;
    this.setState(m, 'left', now);
    this.emit('left', m, now);
    this.broadcast(m.id, message, now, true);
  }

  private expireSuspicions(now: number): void {
    if (this.suspects.size === 0) return;
    if (!this.suspicionsDirty && this.suspicionWakeMs > now) return;
    for (const m of [...this.suspects]) {
      const suspicion = m.suspicion!;
      if (suspicion.wakeMs > now) continue;
      if (suspicion.lastChanceAtMs === undefined) {
        suspicion.lastChance(now);
        // As many pings as a probe would send directly: each is an independent chance.
        for (let i = 0; i <= this.config.probeDirectRetries; i++) {
          this.stats.lastChancePings++;
          this.sendDatagram(m.address, this.pingPart(this.nextSeq(), m.id), m);
        }
        continue;
      }
      this.stats.deathsDeclared++;
      this.onDead(
        { type: 'dead', incarnation: m.incarnation, id: m.id, fromId: this.self.id },
        now,
      );
    }
    this.suspicionsDirty = true;
  }

  /**
   * Someone says we are suspect, dead or gone. At our incarnation or above: refute. Below
   * it, we already refuted but the accuser has not heard (our refutation can be lost, or
   * spent while our packets could not get out): announce again, unless still queued. The
   * accusation keeps coming, piggybacked on the accuser's pings, until it hears us.
   *
   * Either way the accuser itself also gets our alive directly: it started the suspicion,
   * so its timer runs out first, and gossip alone reaches any one member only with high
   * probability, not certainty.
   */
  private onAccused(incarnation: number, accuserId: string | undefined, now: number): void {
    // In a conflict the accusation is about the other process: not ours to refute.
    if (this.leaving !== 'no' || this.conflict !== undefined) return;
    if (incarnation >= this.self.incarnation) this.refute(incarnation, now);
    else if (!this.queue.has(this.self.id)) {
      this.broadcast(this.self.id, this.aliveOf(this.self), now, true);
    }
    const accuser = accuserId === undefined ? undefined : this.byId.get(accuserId);
    if (accuser === undefined || !isLive(accuser)) return;
    // Every gossip packet that carries the accusation would trigger this: once per accuser
    // per gossipIntervalMinMs is plenty (the map is small: only current accusers).
    const last = this.answeredAccusers.get(accuser.id);
    if (last !== undefined && now - last < this.config.gossipIntervalMinMs) return;
    if (this.answeredAccusers.size >= 64) this.answeredAccusers.clear();
    this.answeredAccusers.set(accuser.id, now);
    const alive = encodePartTransient(this.aliveOf(this.self));
    this.sendDatagram(accuser.address, alive, accuser, this.self.id); // alive is the primary
  }

  /** Someone says we are suspect, dead, left or different: out-bid them. */
  private refute(incarnation: number, now: number): void {
    this.stats.refutations++;
    // Lifeguard: being suspected is a hint that we are the slow one.
    this.awareness.applyDelta(1);
    this.bumpIncarnation(incarnation);
    this.broadcast(this.self.id, this.aliveOf(this.self), now, true);
  }

  private bumpIncarnation(atLeast: number): void {
    // u32 wraps after 4 billion refutations; saturating keeps order, and is unreachable.
    this.self.incarnation = Math.min(U32_MAX, Math.max(this.self.incarnation, atLeast) + 1);
  }

  private addMember(message: AliveMessage, now: number): Member {
    const m: Member = {
      id: message.id,
      address: message.address,
      meta: message.meta,
      incarnation: message.incarnation,
      state: 'alive',
      stateChangeMs: now,
      suspicion: undefined,
      index: this.list.length,
      rttMs: Number.NaN,
      coordinate: undefined,
      rttWindow: undefined,
      lastAckAtMs: Number.NaN,
      lossRatio: 0,
      detector: undefined,
    };
    this.byId.set(m.id, m);
    this.byAddress.set(m.address, m);
    this.list.push(m);
    this.liveOthers++;
    return m;
  }

  private removeMember(m: Member): void {
    assert(this.list[m.index] === m, 'member list index out of sync');
    assert(m.state === 'dead' || m.state === 'left', 'only tombstones are removed');
    this.tombstones.delete(m);
    this.byId.delete(m.id);
    this.vivaldi.forget(m.id);
    if (this.byAddress.get(m.address) === m) this.byAddress.delete(m.address);
    const last = this.list.pop()!;
    if (last !== m) {
      this.list[m.index] = last;
      last.index = m.index;
    }
    m.index = -1;
  }

  private setAddress(m: Member, address: string): void {
    if (this.byAddress.get(m.address) === m) this.byAddress.delete(m.address);
    m.address = address;
    this.byAddress.set(address, m);
  }

  private setState(m: Member, state: MemberState, now: number): void {
    const previous = m.state;
    if (previous === state) return;
    if (previous === 'suspect') {
      this.suspects.delete(m);
      m.suspicion = undefined;
      this.suspicionsDirty = true;
    } else if (previous === 'dead' || previous === 'left') {
      this.tombstones.delete(m);
    }
    if (state === 'suspect') this.suspects.add(m);
    else if (state === 'dead' || state === 'left') this.tombstones.add(m);
    const wasLive = previous === 'alive' || previous === 'suspect';
    const nowLive = state === 'alive' || state === 'suspect';
    if (wasLive !== nowLive) this.liveOthers += nowLive ? 1 : -1;
    m.state = state;
    m.stateChangeMs = now;
  }

  private emit(type: MemberEventType, m: Member, now: number): void {
    if (this.events.length >= this.config.eventsQueuedMax) {
      this.events.shift();
      this.stats.eventsDropped++;
    }
    this.events.push({ type, id: m.id, address: m.address, incarnation: m.incarnation, atMs: now });
  }

  // --- dissemination ------------------------------------------------------------------------

  private aliveOf(m: Member): AliveMessage {
    return {
      type: 'alive',
      incarnation: m.incarnation,
      id: m.id,
      address: m.address,
      meta: m.meta,
    };
  }

  /** Queues a broadcast about member `key`. Urgent news is gossiped at once (batched by
   * gossipIntervalMinMs) instead of waiting for the next round. */
  private broadcast(key: string, message: BroadcastMessage, now: number, urgent: boolean): void {
    this.queue.enqueue(
      key,
      encodePart(message),
      message.type === 'suspect' ? message.fromId : undefined,
      urgent,
    );
    this.stats.broadcastsDropped = this.queue.dropped;
    if (urgent) {
      const soonest = Math.max(now, this.lastGossipAtMs + this.config.gossipIntervalMinMs);
      if (soonest < this.nextGossipAtMs) this.nextGossipAtMs = soonest;
    }
  }

  private runGossip(now: number): void {
    if (now < this.nextGossipAtMs) return;
    this.nextGossipAtMs = now + this.config.gossipIntervalMs;
    if (this.queue.size === 0) return;
    // Urgent news (a refutation racing a suspicion timeout) goes out in quick rounds until
    // it has been sent its full count: the same packets, sooner, so that the few members
    // the first wave missed are reached within tens of milliseconds, not hundreds.
    if (this.queue.urgent > 0) this.nextGossipAtMs = now + this.config.gossipUrgentIntervalMs;
    this.lastGossipAtMs = now;
    const deadCutoffMs = now - this.config.gossipToDeadMs;
    // Twice the candidates: a member that the only queued news is about gets nothing (see
    // BroadcastQueue.fill), and its slot goes to the next one. In a small cluster this is
    // what makes a round reach everyone who still needs the news.
    const candidates = this.pickMembers(
      this.config.gossipFanout * 2,
      (m) => isLive(m) || (m.state === 'dead' && m.stateChangeMs > deadCutoffMs),
    );
    let sent = 0;
    for (const target of candidates) {
      if (sent >= this.config.gossipFanout || this.queue.size === 0) break;
      if (this.sendDatagram(target.address, undefined, target)) sent++;
    }
    if (sent > 0) this.stats.gossipRounds++;
  }

  /**
   * Sends `primary` (if any) plus as many queued broadcasts as fit in packetBytesMax. A
   * suspect or dead recipient first gets the news about itself, so it can refute (the
   * buddy system). Returns false if there was nothing to send.
   */
  private sendDatagram(
    to: string,
    primary: Uint8Array | undefined,
    about: Member | undefined,
    skipMember: string | undefined = about?.id,
  ): boolean {
    const parts: Uint8Array[] = [];
    let budget = this.config.packetBytesMax - DATAGRAM_HEADER_BYTES;
    if (primary !== undefined) {
      parts.push(primary);
      budget -= primary.length;
    }
    if (about !== undefined && (about.state === 'suspect' || about.state === 'dead')) {
      const part = encodePart({
        type: about.state,
        incarnation: about.incarnation,
        id: about.id,
        fromId: about.suspicion?.fromId ?? this.self.id,
      });
      if (part.length <= budget) {
        parts.push(part);
        budget -= part.length;
      }
    }
    if (this.queue.size > 0) {
      this.queue.fill(
        parts,
        budget,
        DATAGRAM_PARTS_MAX,
        retransmitLimit(this.config, this.liveOthers + 1),
        skipMember,
      );
    }
    if (parts.length === 0) return false;
    const bytes = encodeDatagram(parts);
    assert(bytes.length <= this.config.packetBytesMax, 'datagram over packetBytesMax');
    this.stats.udpBytesSent += bytes.length;
    this.push({ to, bytes, via: 'udp' });
    return true;
  }

  private push(packet: OutboxPacket): void {
    if (this.outbox.length >= this.config.outboxPacketsMax) {
      this.stats.outboxDropped++;
      return;
    }
    this.stats.packetsSent++;
    this.outbox.push(packet);
  }

  private checkLeave(now: number): void {
    if (this.leaving !== 'leaving') return;
    if (!this.queue.has(this.self.id) || now >= this.leaveDeadlineMs || this.liveOthers === 0) {
      this.leaving = 'done';
    }
  }

  // --- anti-entropy -------------------------------------------------------------------------

  private sendPushPull(to: string, join: boolean, reply: boolean): void {
    const members: PushPullMember[] = [this.pushPullEntry(this.self)];
    for (const m of this.list) members.push(this.pushPullEntry(m));
    const { bytes, included } = encodePushPull(
      { type: 'push-pull', join, reply, fromAddress: this.self.address, members },
      this.config,
    );
    if (included < members.length) this.stats.pushPullsTruncated++;
    this.stats.pushPullsSent++;
    this.stats.streamBytesSent += bytes.length;
    this.push({ to, bytes, via: 'stream' });
  }

  private pushPullEntry(m: Member): PushPullMember {
    return {
      id: m.id,
      address: m.address,
      meta: m.meta,
      incarnation: m.incarnation,
      state: m.state,
    };
  }

  private onPushPull(message: PushPullMessage, now: number): void {
    this.stats.pushPullsReceived++;
    for (const entry of message.members) {
      if (entry.id === this.self.id) this.noteSelfEntry(entry, message.fromAddress);
      switch (entry.state) {
        case 'alive':
          this.onAlive(
            { type: 'alive', ...entry },
            now,
            entry.address === message.fromAddress ? 'push-pull-sender' : 'push-pull',
          );
          break;
        case 'left':
          this.onLeave({ type: 'leave', incarnation: entry.incarnation, id: entry.id }, now);
          break;
        default:
          // A remote "dead" may be stale: suspect it rather than bury it (memberlist).
          this.onSuspect(
            { type: 'suspect', incarnation: entry.incarnation, id: entry.id, fromId: this.self.id },
            now,
          );
      }
    }
    if (!message.reply) {
      this.sendPushPull(message.fromAddress, message.join, true);
    } else if (message.join && this.leaving === 'no') {
      // We just joined and now know the cluster: announce ourselves at once (see onAlive).
      this.broadcast(this.self.id, this.aliveOf(this.self), now, true);
      // Members that joined at the same moment as we did were missing from our seed's
      // state then; the seed, which they most likely joined through too, has them soon.
      if (this.joinResync === undefined) {
        this.joinResync = {
          address: message.fromAddress,
          atMs: now + this.config.joinResyncMs * (0.5 + this.random.next() / 2),
        };
      }
    }
  }

  /**
   * What a member's state says about our own id (see selfConflict): listed at our address,
   * it knows us; listed alive or suspect elsewhere before any member knew us, another
   * process holds the id (or our previous life there is not over); listed dead or left at
   * the address of a conflict, that other life is over.
   */
  private noteSelfEntry(entry: PushPullMember, fromAddress: string): void {
    if (fromAddress === this.self.address) return;
    if (entry.address === this.self.address) {
      this.markKnown();
      return;
    }
    if (entry.state === 'alive' || entry.state === 'suspect') {
      if (this.known) return; // the incumbent: onAlive refutes the claim
      if (this.conflict?.address !== entry.address) this.stats.selfConflicts++;
      this.conflict = { address: entry.address, incarnation: entry.incarnation };
      // Whatever we still meant to say about our id (our alive, a leave already under way)
      // would be taken as news about the other process.
      this.queue.forget(this.self.id);
    } else if (this.conflict?.address === entry.address) {
      this.conflict = undefined;
    }
  }

  private runPushPull(now: number): void {
    if (this.joinResync && now >= this.joinResync.atMs) {
      this.sendPushPull(this.joinResync.address, false, false);
      this.joinResync = null;
    }
    if (now < this.nextPushPullAtMs) return;
    // Jittered ±50%, so nodes that started together drift apart instead of syncing in bursts.
    const intervalMs = pushPullIntervalMs(this.config, this.liveOthers + 1);
    this.nextPushPullAtMs = now + intervalMs * (0.5 + this.random.next());
    const [target] = this.pickMembers(1, (m) => m.state === 'alive');
    if (target !== undefined) this.sendPushPull(target.address, false, false);
  }

  /** Pings one random dead member: if it answers, a partition has healed and we push-pull. */
  private runReconnect(now: number): void {
    if (now < this.nextReconnectAtMs) return;
    this.nextReconnectAtMs = now + this.config.reconnectIntervalMs;
    const dead: Member[] = [];
    for (const m of this.tombstones) if (m.state === 'dead') dead.push(m);
    if (dead.length === 0) return;
    const member = dead[this.random.int(dead.length)]!;
    const seq = this.nextSeq();
    this.reconnect = { seq, member };
    this.stats.reconnectsAttempted++;
    this.sendDatagram(member.address, this.pingPart(seq, member.id), member);
  }

  private reap(now: number): void {
    if (now < this.nextReapAtMs) return;
    this.nextReapAtMs = now + REAP_INTERVAL_MS;
    for (const m of [...this.tombstones]) {
      if (now - m.stateChangeMs >= this.config.tombstoneMs) {
        this.removeMember(m);
        this.stats.tombstonesReaped++;
      }
    }
  }

  // --- helpers ------------------------------------------------------------------------------

  /** Up to `count` distinct random members satisfying `accept`. */
  private pickMembers(count: number, accept: (m: Member) => boolean): Member[] {
    const list = this.list;
    const n = list.length;
    const out: Member[] = [];
    if (count <= 0 || n === 0) return out;
    // Random draws are cheap when most members qualify; a scan covers the rest.
    for (let i = 0; i < count * 4 && out.length < count; i++) {
      const m = list[this.random.int(n)]!;
      if (accept(m) && !out.includes(m)) out.push(m);
    }
    if (out.length < count) {
      const start = this.random.int(n);
      for (let i = 0; i < n && out.length < count; i++) {
        const m = list[(start + i) % n]!;
        if (accept(m) && !out.includes(m)) out.push(m);
      }
    }
    return out;
  }

  private checkMeta(meta: Uint8Array): void {
    if (!(meta instanceof Uint8Array) || meta.length > this.config.metaBytesMax) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `member metadata must be at most ${this.config.metaBytesMax} bytes, got ${meta?.length}`,
        { hint: 'keep metadata small (tags, ports); it rides in every alive message' },
      );
    }
  }

  /** Detector options for the current cluster size, shared by every member's detector. Our
   * acks from one member arrive about every N probe intervals (round-robin). */
  private phiOptions(): Readonly<PhiAccrualOptions> {
    const members = this.liveOthers + 1;
    const cached = this.detectorOptions;
    if (cached !== undefined && Math.abs(cached.members - members) * 10 <= members) {
      return cached.options;
    }
    const spacingMs = this.config.probeIntervalMs * Math.max(1, members - 1);
    const options = PhiAccrualDetector.validated({
      threshold: this.config.phiThreshold,
      windowSize: this.config.phiWindowSize,
      minStdDeviationMs: this.config.probeIntervalMs,
      acceptableHeartbeatPauseMs: spacingMs,
      firstHeartbeatEstimateMs: spacingMs,
    });
    this.detectorOptions = { members, options };
    return options;
  }

  private view(m: Member, now: number): MemberView {
    const phi = m.detector?.phi(now) ?? 0;
    const rttMs = Number.isNaN(m.rttMs) ? undefined : m.rttMs;
    const gone = m.state === 'dead' || m.state === 'left';
    return {
      id: m.id,
      address: m.address,
      state: m.state,
      incarnation: m.incarnation,
      meta: m.meta,
      isSelf: m === this.self,
      stateChangedAtMs: m.stateChangeMs,
      rttMs,
      coordinate: m === this.self ? this.vivaldi.coordinate() : m.coordinate,
      rttP50Ms: m.rttWindow?.quantile(0.5),
      rttP99Ms: m.rttWindow?.quantile(0.99),
      lastAckAtMs: Number.isNaN(m.lastAckAtMs) ? undefined : m.lastAckAtMs,
      phi,
      lossRatio: m.lossRatio,
      score:
        m === this.self
          ? gone
            ? 0
            : 1
          : gone
            ? 0
            : memberScore({
                phi,
                phiThreshold: this.config.phiThreshold,
                rttMs,
                rttReferenceMs: this.config.probeTimeoutMs,
                lossRatio: m.lossRatio,
              }),
    };
  }
}
