/**
 * The node's firewall: per-source-address limits that hold whatever the ACL allows — a cap on
 * connections open at once, token buckets on new connections, handshakes, requests and gossip
 * datagrams, and bans with an expiry (manual, or automatic after repeated handshake failures).
 * Pure: the caller gives each event's source key (transport/admission.ts sourceKey: the IPv4
 * address, or the IPv6 /64) and the clock it was built with says the time.
 *
 * Bounded memory: at most FIREWALL_SOURCES_MAX sources are tracked (the one touched least
 * recently is forgotten first — its buckets start full again, its open count from zero) and at
 * most FIREWALL_BANS_MAX bans are held (a new one past it replaces the one expiring soonest).
 */
import { ConfigFieldError } from '../errors.ts';
import type { Clock } from '../runtime/index.ts';

/** Sources whose counters and buckets are kept. */
export const FIREWALL_SOURCES_MAX = 4096;
/** Bans held at once. */
export const FIREWALL_BANS_MAX = 1024;
/** A bucket holds this many seconds of its rate: the burst a source may spend at once. */
export const FIREWALL_BURST_SECONDS = 2;
/** Handshake failures are counted over this window for the automatic ban. */
export const FIREWALL_FAILURE_WINDOW_MS = 60_000;
/** Longest ban accepted (7 days). */
export const FIREWALL_BAN_MS_MAX = 7 * 24 * 3600 * 1000;

export interface FirewallLimits {
  /** Connections one source may hold open at once. */
  connectionsPerSourceMax: number;
  /** New connections per second per source (burst FIREWALL_BURST_SECONDS of it). */
  connectionsPerSecond: number;
  /** Handshakes (Hellos) per second per source. */
  handshakesPerSecond: number;
  /** Requests per second per source, over all its connections (cluster members exempt). */
  messagesPerSecond: number;
  /** Gossip datagrams per second per source. */
  datagramsPerSecond: number;
  /** Handshake failures within FIREWALL_FAILURE_WINDOW_MS that ban the source; 0: never. */
  banAfterFailures: number;
  /** How long an automatic ban lasts. */
  banMs: number;
}

export const FIREWALL_LIMITS_DEFAULT: FirewallLimits = {
  connectionsPerSourceMax: 256,
  connectionsPerSecond: 50,
  handshakesPerSecond: 50,
  messagesPerSecond: 100_000,
  datagramsPerSecond: 2_000,
  banAfterFailures: 20,
  banMs: 300_000,
};

export type FirewallRefusal =
  | 'banned'
  | 'connectionsMax'
  | 'connectionRate'
  | 'handshakeRate'
  | 'messageRate'
  | 'datagramRate';

export const FIREWALL_REFUSALS: readonly FirewallRefusal[] = [
  'banned',
  'connectionsMax',
  'connectionRate',
  'handshakeRate',
  'messageRate',
  'datagramRate',
];

class Bucket {
  tokens: number;
  updatedMs: number;

  constructor(capacity: number, nowMs: number) {
    this.tokens = capacity;
    this.updatedMs = nowMs;
  }

  take(nowMs: number, perSecond: number): boolean {
    const capacity = perSecond * FIREWALL_BURST_SECONDS;
    const elapsed = nowMs - this.updatedMs;
    if (elapsed > 0) {
      this.tokens = Math.min(capacity, this.tokens + (elapsed * perSecond) / 1000);
      this.updatedMs = nowMs;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** What the firewall keeps per source. */
export class SourceState {
  readonly source: string;
  open = 0;
  refused = 0;
  failures = 0;
  failuresSinceMs = 0;
  readonly connections: Bucket;
  readonly handshakes: Bucket;
  readonly messages: Bucket;
  readonly datagrams: Bucket;

  constructor(source: string, limits: FirewallLimits, nowMs: number) {
    this.source = source;
    this.connections = new Bucket(limits.connectionsPerSecond * FIREWALL_BURST_SECONDS, nowMs);
    this.handshakes = new Bucket(limits.handshakesPerSecond * FIREWALL_BURST_SECONDS, nowMs);
    this.messages = new Bucket(limits.messagesPerSecond * FIREWALL_BURST_SECONDS, nowMs);
    this.datagrams = new Bucket(limits.datagramsPerSecond * FIREWALL_BURST_SECONDS, nowMs);
  }
}

export interface FirewallBan {
  source: string;
  untilMs: number;
  /** `manual` (firewall ban) or `handshake-failures`. */
  reason: string;
}

export function validateFirewallLimits(limits: FirewallLimits): FirewallLimits {
  for (const [name, value] of Object.entries(limits)) {
    const zeroOk = name === 'banAfterFailures';
    if (!Number.isSafeInteger(value) || value < (zeroOk ? 0 : 1)) {
      throw new ConfigFieldError(
        name,
        `must be a ${zeroOk ? 'non-negative' : 'positive'} integer, got ${value}`,
      );
    }
  }
  if (limits.banMs > FIREWALL_BAN_MS_MAX) {
    throw new ConfigFieldError(
      'banMs',
      `must be at most ${FIREWALL_BAN_MS_MAX}, got ${limits.banMs}`,
    );
  }
  return limits;
}

export class Firewall {
  readonly limits: FirewallLimits;
  private readonly clock: Clock;
  /** By source, least recently touched first. */
  private readonly sources = new Map<string, SourceState>();
  private readonly bans = new Map<string, FirewallBan>();
  readonly refusedBy: Record<FirewallRefusal, number> = {
    banned: 0,
    connectionsMax: 0,
    connectionRate: 0,
    handshakeRate: 0,
    messageRate: 0,
    datagramRate: 0,
  };
  automaticBans = 0;
  sourcesForgotten = 0;

  constructor(limits: FirewallLimits, clock: Clock) {
    this.limits = validateFirewallLimits({ ...limits });
    this.clock = clock;
  }

  /** The state of `source`, made (and the least recently touched forgotten) when new. */
  stateOf(source: string): SourceState {
    let state = this.sources.get(source);
    if (state !== undefined) {
      this.sources.delete(source);
      this.sources.set(source, state);
      return state;
    }
    if (this.sources.size >= FIREWALL_SOURCES_MAX) {
      const oldest = this.sources.keys().next().value as string;
      this.sources.delete(oldest);
      this.sourcesForgotten++;
    }
    state = new SourceState(source, this.limits, this.clock.nowMs());
    this.sources.set(source, state);
    return state;
  }

  /** A new connection from `source`: undefined when admitted (then counted open until closed). */
  onConnect(source: string): FirewallRefusal | undefined {
    const now = this.clock.nowMs();
    if (this.banned(source, now)) return this.refuse(this.stateOf(source), 'banned');
    const state = this.stateOf(source);
    if (state.open >= this.limits.connectionsPerSourceMax)
      return this.refuse(state, 'connectionsMax');
    if (!state.connections.take(now, this.limits.connectionsPerSecond)) {
      return this.refuse(state, 'connectionRate');
    }
    state.open++;
    return undefined;
  }

  onClose(source: string): void {
    const state = this.sources.get(source);
    if (state !== undefined && state.open > 0) state.open--;
  }

  onHandshake(source: string): FirewallRefusal | undefined {
    const state = this.stateOf(source);
    if (state.handshakes.take(this.clock.nowMs(), this.limits.handshakesPerSecond))
      return undefined;
    return this.refuse(state, 'handshakeRate');
  }

  /** A request on a connection whose source state is `state` (held by the connection). */
  onMessage(state: SourceState): FirewallRefusal | undefined {
    if (state.messages.take(this.clock.nowMs(), this.limits.messagesPerSecond)) return undefined;
    return this.refuse(state, 'messageRate');
  }

  onDatagram(source: string): FirewallRefusal | undefined {
    const now = this.clock.nowMs();
    if (this.bans.size > 0 && this.banned(source, now))
      return this.refuse(this.stateOf(source), 'banned');
    const state = this.stateOf(source);
    if (state.datagrams.take(now, this.limits.datagramsPerSecond)) return undefined;
    return this.refuse(state, 'datagramRate');
  }

  /** A failed handshake (TLS, certificate, Hello, timeout); returns the ban when it made one. */
  onHandshakeFailed(source: string): FirewallBan | undefined {
    if (this.limits.banAfterFailures === 0) return undefined;
    const now = this.clock.nowMs();
    const state = this.stateOf(source);
    if (now - state.failuresSinceMs > FIREWALL_FAILURE_WINDOW_MS) {
      state.failures = 0;
      state.failuresSinceMs = now;
    }
    state.failures++;
    if (state.failures < this.limits.banAfterFailures || this.banned(source, now)) return undefined;
    state.failures = 0;
    this.automaticBans++;
    return this.ban(source, this.limits.banMs, 'handshake-failures');
  }

  ban(source: string, forMs: number, reason: string): FirewallBan {
    const now = this.clock.nowMs();
    this.dropExpiredBans(now);
    if (!this.bans.has(source) && this.bans.size >= FIREWALL_BANS_MAX) {
      let soonest: FirewallBan | undefined;
      for (const ban of this.bans.values())
        if (soonest === undefined || ban.untilMs < soonest.untilMs) soonest = ban;
      this.bans.delete(soonest!.source);
    }
    const ban = { source, untilMs: now + Math.min(forMs, FIREWALL_BAN_MS_MAX), reason };
    this.bans.set(source, ban);
    return ban;
  }

  /** Lifts a ban; false when there was none. */
  unban(source: string): boolean {
    this.dropExpiredBans(this.clock.nowMs());
    return this.bans.delete(source);
  }

  activeBans(): FirewallBan[] {
    this.dropExpiredBans(this.clock.nowMs());
    return [...this.bans.values()];
  }

  /** Tracked sources, most refused first. */
  tracked(): SourceState[] {
    return [...this.sources.values()].sort((a, b) => b.refused - a.refused || b.open - a.open);
  }

  private banned(source: string, nowMs: number): boolean {
    const ban = this.bans.get(source);
    if (ban === undefined) return false;
    if (ban.untilMs > nowMs) return true;
    this.bans.delete(source);
    return false;
  }

  private dropExpiredBans(nowMs: number): void {
    for (const [source, ban] of this.bans) if (ban.untilMs <= nowMs) this.bans.delete(source);
  }

  private refuse(state: SourceState, why: FirewallRefusal): FirewallRefusal {
    state.refused++;
    this.refusedBy[why]++;
    return why;
  }
}
