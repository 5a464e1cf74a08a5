/**
 * The resilience the node puts around the requests it sends its peers (src/core/lb's
 * PeerResilience, on the real clock): which errors say a peer is failing, which are worth
 * another attempt, and the `rdbnet lb status` reply built from it and the gossip view.
 */
import { ErrorCode, isRdbnetError } from '../errors.ts';
import { DEFAULT_RETRY_BUDGET_CONFIG } from '../lb/config.ts';
import { PeerResilience } from '../lb/registry.ts';
import type { GossipMember, LbPeerStatus, LbStatusReply } from '../protocol/messages.ts';
import { type Random, systemClock, systemRandom, type TimedClock } from '../runtime/index.ts';

/** Errors that say the peer (or the path to it) is failing. A peer that answers with an
 * error of its own (RDB_FORBIDDEN, RDB_NOT_LEADER, …) is up: it counts as a success. */
export const PEER_FAILURE_CODES: ReadonlySet<string> = new Set([
  ErrorCode.NodeUnreachable,
  ErrorCode.ConnectionClosed,
  ErrorCode.HandshakeTimeout,
  ErrorCode.RequestTimeout,
  ErrorCode.TlsFailed,
  ErrorCode.WriteQueueFull,
]);

/** Failures after which the request surely did not run there, so another attempt is safe
 * and may reach a restarted peer. A timeout is not retried: the deadline is spent. */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  ErrorCode.NodeUnreachable,
  ErrorCode.ConnectionClosed,
  ErrorCode.HandshakeTimeout,
]);

export function isPeerFailure(error: unknown): boolean {
  return !isRdbnetError(error) || PEER_FAILURE_CODES.has(error.code);
}

export function isRetryable(error: unknown): boolean {
  return isRdbnetError(error) && RETRYABLE_CODES.has(error.code);
}

/** The node's registry, with the defaults of src/core/lb/config.ts, on `clock` (and its
 * timers, which never hold the process up) and `random`. */
export function createPeerResilience(
  clock: TimedClock = systemClock,
  random: Random = systemRandom,
): PeerResilience {
  return new PeerResilience({
    clock,
    random,
    sleep: (ms) =>
      new Promise((resolve) => {
        clock.setTimer(ms, () => resolve(), { unref: true });
      }),
    peerFailure: isPeerFailure,
    retryable: isRetryable,
  });
}

/**
 * Every peer the registry tracks, and every other gossip member (nothing sent yet: a closed
 * breaker and zeros), by address; each named by its gossip id and state where known.
 */
export function lbStatusReply(
  id: string,
  resilience: PeerResilience,
  members: readonly GossipMember[],
): LbStatusReply {
  const byAddress = new Map(
    members.filter((member) => !member.isSelf).map((member) => [member.address, member]),
  );
  const peers: LbPeerStatus[] = [];
  const seen = new Set<string>();
  for (const peer of resilience.status()) {
    const member = byAddress.get(peer.address);
    seen.add(peer.address);
    peers.push({
      address: peer.address,
      id: member?.id ?? '',
      memberState: member?.state ?? '',
      breakerState: peer.breaker.state,
      breakerOpened: peer.breaker.opened,
      breakerRejected: peer.breaker.rejected,
      consecutiveFailures: peer.breaker.consecutiveFailures,
      openRemainingMs: Math.round(peer.breaker.openRemainingMs),
      ejected: peer.ejected,
      ejections: peer.ejections,
      ejectedRemainingMs: peer.ejectedRemainingMs,
      inflight: peer.inflight,
      latencyEwmaMs: peer.latencyEwmaMs ?? -1,
      errorRate: peer.errorRate,
      requests: peer.requests,
      failures: peer.failures,
      calls: peer.calls,
      retries: peer.retryBudget.retries,
      retriesRefused: peer.retryBudget.refused,
      retryBalance: peer.retryBudget.balance,
      rateLimited: peer.rateLimited,
      concurrencyRejected: peer.concurrencyRejected,
      lastError: peer.lastError,
      idleMs: peer.idleMs,
    });
  }
  for (const member of byAddress.values()) {
    if (seen.has(member.address) || member.state === 'left') continue;
    peers.push({
      address: member.address,
      id: member.id,
      memberState: member.state,
      breakerState: 'closed',
      breakerOpened: 0,
      breakerRejected: 0,
      consecutiveFailures: 0,
      openRemainingMs: 0,
      ejected: false,
      ejections: 0,
      ejectedRemainingMs: 0,
      inflight: 0,
      latencyEwmaMs: -1,
      errorRate: 0,
      requests: 0,
      failures: 0,
      calls: 0,
      retries: 0,
      retriesRefused: 0,
      // A fresh budget holds its per-second floor for one window.
      retryBalance: Math.floor(
        (DEFAULT_RETRY_BUDGET_CONFIG.retriesPerSecondMin * DEFAULT_RETRY_BUDGET_CONFIG.windowMs) /
          1000,
      ),
      rateLimited: 0,
      concurrencyRejected: 0,
      lastError: '',
      idleMs: -1,
    });
  }
  peers.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return { id, peers };
}
