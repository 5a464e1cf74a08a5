/**
 * A circuit breaker per endpoint, as a pure state machine over an injected clock:
 *
 *   closed ── consecutive failures ≥ max, or error rate ≥ max over the window ──► open
 *   open ── openMs elapsed ──► half-open (at most halfOpenProbesMax probes at once)
 *   half-open ── halfOpenSuccessesToClose probe successes ──► closed
 *   half-open ── a probe fails ──► open again, for twice as long (up to openMsMax)
 *
 * A caller asks `acquire()` before a call and reports the outcome with the permit it got, so
 * a call that began in an earlier state (closed, before the breaker opened) cannot close or
 * reopen it: its outcome only counts in the window.
 */
import type { Clock } from '../runtime/index.ts';
import { type BreakerConfig, DEFAULT_BREAKER_CONFIG, validateBreakerConfig } from './config.ts';
import { WindowCounts } from './window.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** acquire() refused the call: the breaker is open, or its probes are all in flight. */
export const REJECTED = -1;

export interface BreakerSnapshot {
  state: BreakerState;
  /** Times it opened (from closed or from half-open). */
  opened: number;
  /** Calls refused while open or half-open. */
  rejected: number;
  /** Probes let through while half-open. */
  probes: number;
  consecutiveFailures: number;
  /** Calls and failures in the current window. */
  windowRequests: number;
  windowFailures: number;
  /** Milliseconds until an open breaker lets a probe through; 0 otherwise. */
  openRemainingMs: number;
}

export class CircuitBreaker {
  readonly config: Readonly<BreakerConfig>;
  private readonly clock: Clock;
  private current: BreakerState = 'closed';
  /** Bumped at every transition; a permit is generation × 2 (+1 for a probe). */
  private generation = 0;
  private consecutiveFailures = 0;
  private readonly window: WindowCounts;
  private openUntilMs = 0;
  private openMs: number;
  private probesInFlight = 0;
  private probeSuccesses = 0;
  private openedCount = 0;
  private rejectedCount = 0;
  private probeCount = 0;

  constructor(clock: Clock, config: Partial<BreakerConfig> = {}) {
    this.config = validateBreakerConfig({ ...DEFAULT_BREAKER_CONFIG, ...config });
    this.clock = clock;
    this.openMs = this.config.openMs;
    this.window = new WindowCounts(this.config.windowMs, this.config.windowBuckets);
  }

  /** The state now (an open breaker whose time is up reads as half-open). */
  get state(): BreakerState {
    this.advance(this.clock.nowMs());
    return this.current;
  }

  /** A permit (≥ 0) to make one call, or REJECTED. Every permit must be settled once.
   * `nowMs` saves a clock read when the caller has just made one. */
  acquire(nowMs = this.clock.nowMs()): number {
    const now = nowMs;
    this.advance(now);
    switch (this.current) {
      case 'closed':
        return this.generation * 2;
      case 'open':
        this.rejectedCount++;
        return REJECTED;
      case 'half-open':
        if (this.probesInFlight >= this.config.halfOpenProbesMax) {
          this.rejectedCount++;
          return REJECTED;
        }
        this.probesInFlight++;
        this.probeCount++;
        return this.generation * 2 + 1;
    }
  }

  /** The call made under `permit` succeeded. `nowMs` may be the time the call began (it
   * only places the success in the window), saving a clock read on the hot path. */
  succeeded(permit: number, nowMs = this.clock.nowMs()): void {
    this.settle(permit, true, nowMs);
  }

  /** The call made under `permit` failed (a failure of the peer, not of the request). */
  failed(permit: number): void {
    this.settle(permit, false, this.clock.nowMs());
  }

  snapshot(): BreakerSnapshot {
    const now = this.clock.nowMs();
    this.advance(now);
    const [windowRequests, windowFailures] = this.window.sums(now);
    return {
      state: this.current,
      opened: this.openedCount,
      rejected: this.rejectedCount,
      probes: this.probeCount,
      consecutiveFailures: this.consecutiveFailures,
      windowRequests,
      windowFailures,
      openRemainingMs: this.current === 'open' ? Math.max(0, this.openUntilMs - now) : 0,
    };
  }

  private settle(permit: number, ok: boolean, now: number): void {
    if (permit < 0) return;
    this.advance(now);
    this.window.add(now, 1, ok ? 0 : 1);
    const current = Math.floor(permit / 2) === this.generation;
    const probe = permit % 2 === 1;
    if (probe && current) this.probesInFlight = Math.max(0, this.probesInFlight - 1);
    if (ok) this.consecutiveFailures = 0;
    else this.consecutiveFailures++;
    if (!current) return; // began in an earlier state: counted, decides nothing
    if (this.current === 'half-open' && probe) {
      if (!ok) {
        this.openMs = Math.min(this.config.openMsMax, this.openMs * 2);
        this.open(now);
      } else if (++this.probeSuccesses >= this.config.halfOpenSuccessesToClose) {
        this.close();
      }
      return;
    }
    if (this.current === 'closed' && !ok && this.tripped(now)) {
      this.openMs = this.config.openMs;
      this.open(now);
    }
  }

  private tripped(now: number): boolean {
    if (this.consecutiveFailures >= this.config.consecutiveFailuresMax) return true;
    const [requests, failures] = this.window.sums(now);
    return (
      requests >= this.config.windowRequestsMin && failures / requests >= this.config.errorRateMax
    );
  }

  private advance(now: number): void {
    if (this.current === 'open' && now >= this.openUntilMs) {
      this.transition('half-open');
      this.probesInFlight = 0;
      this.probeSuccesses = 0;
    }
  }

  private open(now: number): void {
    this.transition('open');
    this.openedCount++;
    this.openUntilMs = now + this.openMs;
  }

  private close(): void {
    this.transition('closed');
    this.consecutiveFailures = 0;
    this.window.clear();
    this.openMs = this.config.openMs;
  }

  private transition(to: BreakerState): void {
    this.current = to;
    this.generation++;
  }
}
