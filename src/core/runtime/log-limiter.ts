/**
 * Keeps a flood of alike events (refused connections) from flooding the log: the first
 * `burst` events of each interval are logged in full, later ones are only counted, and the
 * owner asks for one summary of the counts per interval (`takeSummary`, from its own timer,
 * so the last summary of a flood that stopped is not lost). Pure: time comes from the clock.
 */
import { assert } from '../errors.ts';
import type { Clock } from './index.ts';

export interface LogLimiterOptions {
  /** Length of one window, in ms. */
  intervalMs: number;
  /** Events logged in full per window; the rest are counted. */
  burst: number;
  clock: Clock;
}

export interface LogSummary {
  /** Events left out since the previous summary, by kind. */
  suppressed: Record<string, number>;
  /** Sum of `suppressed`. */
  total: number;
}

export class LogLimiter {
  private readonly options: LogLimiterOptions;
  private windowStartMs = Number.NEGATIVE_INFINITY;
  private loggedInWindow = 0;
  private readonly suppressed = new Map<string, number>();

  constructor(options: LogLimiterOptions) {
    // Chosen by code, never configured: bad options are a bug.
    assert(
      options.intervalMs > 0 && Number.isInteger(options.burst) && options.burst >= 0,
      'LogLimiter needs intervalMs > 0 and an integer burst >= 0',
    );
    this.options = options;
  }

  /** True: log this event in full. False: it was counted under `kind` for the next summary. */
  admit(kind: string): boolean {
    const nowMs = this.options.clock.nowMs();
    if (nowMs - this.windowStartMs >= this.options.intervalMs) {
      this.windowStartMs = nowMs;
      this.loggedInWindow = 0;
    }
    if (this.loggedInWindow < this.options.burst) {
      this.loggedInWindow++;
      return true;
    }
    this.suppressed.set(kind, (this.suppressed.get(kind) ?? 0) + 1);
    return false;
  }

  /** What was left out since the last call, or null when nothing was. */
  takeSummary(): LogSummary | null {
    if (this.suppressed.size === 0) return null;
    const suppressed = Object.fromEntries(
      [...this.suppressed].sort(([a], [b]) => a.localeCompare(b)),
    );
    let total = 0;
    for (const count of this.suppressed.values()) total += count;
    this.suppressed.clear();
    return { suppressed, total };
  }
}
