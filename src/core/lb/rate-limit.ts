/**
 * Admission limits in front of a peer: a token bucket (rate with a burst) and a concurrency
 * limit (requests in flight). Both refuse rather than queue — the caller learns at once and
 * the refusal is counted — so neither holds memory for waiting requests.
 */
import type { Clock } from '../runtime/index.ts';

export class TokenBucket {
  readonly ratePerSecond: number;
  readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private refilledAtMs: number;
  /** Requests let through and dropped since the start. */
  allowed = 0;
  dropped = 0;

  constructor(clock: Clock, ratePerSecond: number, burst: number) {
    this.clock = clock;
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.tokens = burst;
    this.refilledAtMs = clock.nowMs();
  }

  /** Takes `cost` tokens when there are that many; otherwise drops (and counts) the request. */
  tryTake(cost = 1): boolean {
    this.refill();
    if (this.tokens >= cost) {
      this.tokens -= cost;
      this.allowed++;
      return true;
    }
    this.dropped++;
    return false;
  }

  /** Tokens available now. */
  get available(): number {
    this.refill();
    return this.tokens;
  }

  private refill(): void {
    const now = this.clock.nowMs();
    const elapsed = now - this.refilledAtMs;
    if (elapsed <= 0) return;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSecond) / 1000);
    this.refilledAtMs = now;
  }
}

export class ConcurrencyLimit {
  readonly max: number;
  private active = 0;
  /** Requests refused because `max` were in flight. */
  rejected = 0;

  constructor(max: number) {
    this.max = max;
  }

  tryAcquire(): boolean {
    if (this.active >= this.max) {
      this.rejected++;
      return false;
    }
    this.active++;
    return true;
  }

  release(): void {
    if (this.active > 0) this.active--;
  }

  get inflight(): number {
    return this.active;
  }
}
