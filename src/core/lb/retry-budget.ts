/**
 * A retry budget (Finagle's RetryBudget, Envoy's retry_budget): retries may be at most
 * `retryShare` of the requests of the last window, plus `retriesPerSecondMin` per second so a
 * quiet peer can still be retried. When a peer fails, retries cannot multiply the load on
 * it beyond that share — the retry storm a fixed "3 attempts" policy makes.
 */
import type { Clock } from '../runtime/index.ts';
import {
  DEFAULT_RETRY_BUDGET_CONFIG,
  type RetryBudgetConfig,
  validateRetryBudgetConfig,
} from './config.ts';
import { WindowCounts } from './window.ts';

export interface RetryBudgetSnapshot {
  /** Retries that would be allowed now. */
  balance: number;
  /** First attempts counted in the window. */
  windowRequests: number;
  /** Retries made in the window. */
  windowRetries: number;
  /** Retries allowed and refused since the start. */
  retries: number;
  refused: number;
}

export class RetryBudget {
  readonly config: Readonly<RetryBudgetConfig>;
  private readonly clock: Clock;
  private readonly window: WindowCounts;
  private retries = 0;
  private refused = 0;

  constructor(clock: Clock, config: Partial<RetryBudgetConfig> = {}) {
    this.config = validateRetryBudgetConfig({ ...DEFAULT_RETRY_BUDGET_CONFIG, ...config });
    this.clock = clock;
    this.window = new WindowCounts(this.config.windowMs, this.config.windowBuckets);
  }

  /** A first attempt was made (at `nowMs`, read from the clock when not given): it earns
   * `retryShare` of a retry. */
  deposit(nowMs = this.clock.nowMs()): void {
    this.window.add(nowMs, 1, 0);
  }

  /** True (and the retry counted) when a retry fits in the budget now. */
  tryWithdraw(): boolean {
    const now = this.clock.nowMs();
    if (this.balanceAt(now) < 1) {
      this.refused++;
      return false;
    }
    this.window.add(now, 0, 1);
    this.retries++;
    return true;
  }

  snapshot(): RetryBudgetSnapshot {
    const now = this.clock.nowMs();
    const [windowRequests, windowRetries] = this.window.sums(now);
    return {
      balance: Math.max(0, Math.floor(this.balanceAt(now))),
      windowRequests,
      windowRetries,
      retries: this.retries,
      refused: this.refused,
    };
  }

  private balanceAt(now: number): number {
    const [requests, retries] = this.window.sums(now);
    const reserve = (this.config.retriesPerSecondMin * this.config.windowMs) / 1000;
    return this.config.retryShare * requests + reserve - retries;
  }
}
