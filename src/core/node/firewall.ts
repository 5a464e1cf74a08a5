/**
 * The node's firewall (security/firewall.ts) on real connections: sources as the pre-auth table
 * counts them (transport/admission.ts sourceKey), refusals counted (`firewall.refused.*`) and
 * audited at most once per source and reason per FIREWALL_AUDIT_INTERVAL_MS (a flood must not
 * push every other record out of the audit ring), automatic bans audited, and the
 * `rdbnet firewall rules|ban|unban|stats` requests.
 */
import type { NodeConfig } from '../config/node-config.ts';
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { FirewallReply, FirewallRequest } from '../protocol/messages.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import type { Clock, Counters } from '../runtime/index.ts';
import {
  FIREWALL_BAN_MS_MAX,
  FIREWALL_REFUSALS,
  Firewall,
  type FirewallLimits,
  type FirewallRefusal,
  type SourceState,
} from '../security/firewall.ts';
import { sourceKey } from '../transport/admission.ts';
import { hostOf } from './access.ts';
import type { AuditLog } from './audit-log.ts';

/**
 * Whether `ip` is the machine's own (127.0.0.0/8, ::1): exempt from the firewall, since a local
 * process can do worse than flood the node, and the operator's own tools must never be banned.
 */
export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');
}

/** At most one audit record per source and refusal reason this often. */
export const FIREWALL_AUDIT_INTERVAL_MS = 1000;
/** Sources `firewall stats` lists (most refused first). */
export const FIREWALL_STATS_SOURCES_MAX = 100;
/** Default of `firewall ban --for`. */
export const FIREWALL_MANUAL_BAN_MS_DEFAULT = 3_600_000;

/** Handshake failures that count towards a ban: the peer's doing, not our own refusals. */
const FAILURE_CODES = new Set<string>([
  ErrorCode.TlsFailed,
  ErrorCode.HandshakeRejected,
  ErrorCode.HandshakeTimeout,
  ErrorCode.IdentityInvalid,
  ErrorCode.CertificateRevoked,
  ErrorCode.ClusterMismatch,
  ErrorCode.VersionIncompatible,
  ErrorCode.FrameMalformed,
  ErrorCode.MessageMalformed,
]);

export function firewallLimitsOf(config: NodeConfig): FirewallLimits {
  return {
    connectionsPerSourceMax: config.firewallConnectionsPerSourceMax,
    connectionsPerSecond: config.firewallConnectionsPerSecond,
    handshakesPerSecond: config.firewallHandshakesPerSecond,
    messagesPerSecond: config.firewallMessagesPerSecond,
    datagramsPerSecond: config.firewallDatagramsPerSecond,
    banAfterFailures: config.firewallBanAfterFailures,
    banMs: config.firewallBanMs,
  };
}

export class NodeFirewall {
  readonly firewall: Firewall;
  private readonly id: string;
  private readonly clock: Clock;
  private readonly counters: Counters;
  private readonly audit: AuditLog;
  /** When each source and reason was last audited (bounded with the firewall's sources). */
  private readonly auditedMs = new WeakMap<SourceState, Map<FirewallRefusal, number>>();
  private readonly states = new WeakMap<object, SourceState>();

  constructor(init: {
    id: string;
    limits: FirewallLimits;
    clock: Clock;
    counters: Counters;
    audit: AuditLog;
  }) {
    this.id = init.id;
    this.clock = init.clock;
    this.counters = init.counters;
    this.audit = init.audit;
    this.firewall = new Firewall(init.limits, init.clock);
  }

  /** Accept: a RdbnetError closes the connection unanswered. */
  onAccept(remoteIp: string): RdbnetError | undefined {
    if (isLoopback(remoteIp)) return undefined;
    const source = sourceKey(remoteIp);
    const refusal = this.firewall.onConnect(source);
    if (refusal === undefined) return undefined;
    return this.refused(source, remoteIp, '', 'accept', 'connect', refusal);
  }

  onClosed(remoteIp: string): void {
    if (isLoopback(remoteIp)) return;
    this.firewall.onClose(sourceKey(remoteIp));
  }

  /** Handshake: throws RDB_RATE_LIMITED past the source's handshake rate. */
  onHandshake(remoteAddress: string, who: string): void {
    const host = hostOf(remoteAddress);
    if (isLoopback(host)) return;
    const source = sourceKey(host);
    const refusal = this.firewall.onHandshake(source);
    if (refusal !== undefined) {
      throw this.refused(source, remoteAddress, who, 'handshake', 'hello', refusal);
    }
  }

  onHandshakeFailed(remoteAddress: string, error: RdbnetError): void {
    const host = hostOf(remoteAddress);
    if (!FAILURE_CODES.has(error.code) || isLoopback(host)) return;
    const source = sourceKey(host);
    const ban = this.firewall.onHandshakeFailed(source);
    if (ban === undefined) return;
    this.counters.increment('firewall.bans.automatic');
    this.audit.record({
      decision: 'deny',
      stage: 'handshake',
      source: remoteAddress,
      who: '',
      what: 'ban',
      rule: 'firewall',
      reason: `banned ${source} for ${this.firewall.limits.banMs} ms after ${this.firewall.limits.banAfterFailures} failed handshakes (last: ${error.code})`,
    });
  }

  /** Per request: throws RDB_RATE_LIMITED past the source's message rate. */
  onMessage(connection: PeerIdentity, what: string): void {
    let state = this.states.get(connection);
    if (state === undefined) {
      const host = hostOf(connection.remoteAddress);
      if (isLoopback(host)) return;
      state = this.firewall.stateOf(sourceKey(host));
      this.states.set(connection, state);
    }
    const refusal = this.firewall.onMessage(state);
    if (refusal === undefined) return;
    const who = connection.peer === null ? '' : `${connection.peer.role}/${connection.peer.id}`;
    throw this.refused(state.source, connection.remoteAddress, who, 'message', what, refusal);
  }

  /** Gossip datagrams: false drops it. */
  admitsDatagram(remoteIp: string): boolean {
    if (isLoopback(remoteIp)) return true;
    const source = sourceKey(remoteIp);
    const refusal = this.firewall.onDatagram(source);
    if (refusal === undefined) return true;
    this.refused(source, remoteIp, '', 'gossip', 'gossip.datagram', refusal);
    return false;
  }

  handle(request: FirewallRequest, _connection: PeerIdentity): FirewallReply {
    const reply: FirewallReply = {
      node: this.id,
      limits: { ...this.firewall.limits },
      bans: [],
      sources: [],
      refused: { ...this.firewall.refusedBy },
      tracked: 0,
      automaticBans: this.firewall.automaticBans,
      changed: false,
    };
    switch (request.op) {
      case 'rules':
        break;
      case 'stats':
        reply.sources = this.firewall
          .tracked()
          .slice(0, FIREWALL_STATS_SOURCES_MAX)
          .map((state) => ({
            source: state.source,
            open: state.open,
            refused: state.refused,
            failures: state.failures,
          }));
        reply.tracked = this.firewall.tracked().length;
        break;
      case 'ban': {
        const source = this.sourceOf(request.source);
        const forMs = request.banMs === 0 ? FIREWALL_MANUAL_BAN_MS_DEFAULT : request.banMs;
        if (!Number.isSafeInteger(forMs) || forMs < 1 || forMs > FIREWALL_BAN_MS_MAX) {
          throw new RdbnetError(
            ErrorCode.Usage,
            `ban length ${forMs} ms is not in 1..${FIREWALL_BAN_MS_MAX}`,
          );
        }
        this.firewall.ban(source, forMs, 'manual');
        reply.changed = true;
        break;
      }
      case 'unban':
        reply.changed = this.firewall.unban(this.sourceOf(request.source));
        break;
      default:
        throw new RdbnetError(ErrorCode.Usage, `unknown firewall operation '${request.op}'`);
    }
    const now = this.clock.nowMs();
    reply.bans = this.firewall.activeBans().map((ban) => ({
      source: ban.source,
      remainingMs: Math.max(0, ban.untilMs - now),
      reason: ban.reason,
    }));
    return reply;
  }

  private sourceOf(address: string): string {
    const key = sourceKey(address);
    if (key === address || key.endsWith('::/64')) {
      if (key !== '?' && (key.includes('.') || key.includes(':'))) return key;
    }
    throw new RdbnetError(ErrorCode.Usage, `--source '${address}' is not an IP address`);
  }

  private refused(
    source: string,
    remote: string,
    who: string,
    stage: 'accept' | 'handshake' | 'message' | 'gossip',
    what: string,
    refusal: FirewallRefusal,
  ): RdbnetError {
    this.counters.increment(`firewall.refused.${refusal}`);
    const message = `${what} from ${remote} refused by the firewall: ${describe(refusal, this.firewall.limits)}`;
    const state = this.firewall.stateOf(source);
    let audited = this.auditedMs.get(state);
    if (audited === undefined) {
      audited = new Map();
      this.auditedMs.set(state, audited);
    }
    const now = this.clock.nowMs();
    if (now - (audited.get(refusal) ?? Number.NEGATIVE_INFINITY) >= FIREWALL_AUDIT_INTERVAL_MS) {
      audited.set(refusal, now);
      this.audit.record({
        decision: 'deny',
        stage,
        source: remote,
        who,
        what,
        rule: 'firewall',
        reason: message,
      });
    }
    return new RdbnetError(ErrorCode.RateLimited, message, {
      hint: 'see `rdbnet firewall stats`; an operator may lift a ban with `rdbnet firewall unban`',
    });
  }
}

function describe(refusal: FirewallRefusal, limits: FirewallLimits): string {
  switch (refusal) {
    case 'banned':
      return 'the source is banned';
    case 'connectionsMax':
      return `the source holds ${limits.connectionsPerSourceMax} connections (firewallConnectionsPerSourceMax)`;
    case 'connectionRate':
      return `more than ${limits.connectionsPerSecond} new connections per second (firewallConnectionsPerSecond)`;
    case 'handshakeRate':
      return `more than ${limits.handshakesPerSecond} handshakes per second (firewallHandshakesPerSecond)`;
    case 'messageRate':
      return `more than ${limits.messagesPerSecond} requests per second (firewallMessagesPerSecond)`;
    case 'datagramRate':
      return `more than ${limits.datagramsPerSecond} gossip datagrams per second (firewallDatagramsPerSecond)`;
  }
}

export { FIREWALL_REFUSALS };
