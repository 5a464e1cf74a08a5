/**
 * Phi-accrual failure detector (Hayashibara et al. 2004, as in Akka and Cassandra).
 * Instead of a yes/no timeout it reports phi = −log10(P(a heartbeat arrives later than
 * now)), given the mean and standard deviation of recent heartbeat intervals: phi 1 means a
 * 10% chance the member is merely late, phi 8 (the usual threshold) one in 10^8.
 *
 * Pure: heartbeat and query times are passed in, never read from a clock.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';

export interface PhiAccrualOptions {
  /** Phi at and above which the member is reported unavailable. Default 8. */
  threshold: number;
  /** Intervals remembered; older ones are forgotten, so the detector follows change.
   * Default 100. */
  windowSize: number;
  /** Floor of the standard deviation, so a perfectly regular history does not make the
   * first slightly late heartbeat look like a failure. Default 100 ms. */
  minStdDeviationMs: number;
  /** Extra lateness always tolerated (a known pause, e.g. GC), added to the mean.
   * Default 0 ms. */
  acceptableHeartbeatPauseMs: number;
  /** Interval assumed before two heartbeats have been seen; the history starts with it
   * ± a quarter (as Akka does), so phi is meaningful from the first heartbeat. Default
   * 1000 ms. */
  firstHeartbeatEstimateMs: number;
}

export const PHI_DEFAULTS: Readonly<PhiAccrualOptions> = Object.freeze({
  threshold: 8,
  windowSize: 100,
  minStdDeviationMs: 100,
  acceptableHeartbeatPauseMs: 0,
  firstHeartbeatEstimateMs: 1000,
});

const VALIDATED = new WeakSet<object>();

export class PhiAccrualDetector {
  readonly options: Readonly<PhiAccrualOptions>;
  /** Ring buffer of intervals; grows to windowSize, then overwrites the oldest. */
  private readonly intervals: number[] = [];
  private next = 0;
  private sum = 0;
  private sumSquares = 0;
  private lastHeartbeatMs: number | undefined;

  /** Checks and freezes options once, so that many detectors can share them cheaply. */
  static validated(options: Partial<PhiAccrualOptions> = {}): Readonly<PhiAccrualOptions> {
    const merged = { ...PHI_DEFAULTS, ...options };
    const problems = Object.entries(merged)
      .filter(([name, value]) => {
        const positive = name !== 'acceptableHeartbeatPauseMs';
        return !Number.isFinite(value) || value < 0 || (positive && value === 0);
      })
      .map(([name, value]) => `${name}=${value}`);
    if (!Number.isInteger(merged.windowSize)) problems.push('windowSize must be an integer');
    if (problems.length > 0) {
      throw new RdbnetError(ErrorCode.ConfigInvalid, `invalid phi detector options: ${problems}`);
    }
    const frozen = Object.freeze(merged);
    VALIDATED.add(frozen);
    return frozen;
  }

  constructor(options: Partial<PhiAccrualOptions> = {}) {
    this.options = VALIDATED.has(options)
      ? (options as Readonly<PhiAccrualOptions>)
      : PhiAccrualDetector.validated(options);
  }

  /** Heartbeats seen so far. */
  get samples(): number {
    return this.intervals.length;
  }

  get lastHeartbeatAtMs(): number | undefined {
    return this.lastHeartbeatMs;
  }

  /** Mean of the remembered intervals (NaN before the first heartbeat). */
  get meanIntervalMs(): number {
    return this.intervals.length === 0 ? Number.NaN : this.sum / this.intervals.length;
  }

  heartbeat(nowMs: number): void {
    const last = this.lastHeartbeatMs;
    if (last === undefined) {
      const estimate = this.options.firstHeartbeatEstimateMs;
      this.push(estimate - estimate / 4);
      this.push(estimate + estimate / 4);
    } else if (nowMs >= last) {
      this.push(nowMs - last);
    } else {
      return; // out of order: keep the newer heartbeat
    }
    this.lastHeartbeatMs = nowMs;
  }

  /** Suspicion level at `nowMs`; 0 before the first heartbeat (nothing to expect yet). */
  phi(nowMs: number): number {
    const last = this.lastHeartbeatMs;
    if (last === undefined) return 0;
    const n = this.intervals.length;
    const mean = this.sum / n;
    const variance = Math.max(0, this.sumSquares / n - mean * mean);
    const std = Math.max(Math.sqrt(variance), this.options.minStdDeviationMs);
    return phiOf(nowMs - last, mean + this.options.acceptableHeartbeatPauseMs, std);
  }

  isAvailable(nowMs: number): boolean {
    return this.phi(nowMs) < this.options.threshold;
  }

  private push(interval: number): void {
    const window = this.options.windowSize;
    if (this.intervals.length < window) {
      this.intervals.push(interval);
      this.sum += interval;
      this.sumSquares += interval * interval;
      return;
    }
    const old = this.intervals[this.next]!;
    this.intervals[this.next] = interval;
    this.next = (this.next + 1) % window;
    if (this.next === 0) {
      // Once per lap, recompute, so the running sums cannot drift from rounding.
      this.sum = 0;
      this.sumSquares = 0;
      for (const value of this.intervals) {
        this.sum += value;
        this.sumSquares += value * value;
      }
    } else {
      this.sum += interval - old;
      this.sumSquares += interval * interval - old * old;
    }
  }
}

/**
 * −log10 of the probability that a normally distributed interval (mean, std) exceeds
 * `elapsedMs`, with the logistic approximation of the normal CDF that Akka uses. Written as
 * log10(1 + e^a) so it stays finite and exact for any lateness (no 1 − tiny cancellation).
 */
export function phiOf(elapsedMs: number, meanMs: number, stdMs: number): number {
  const y = (elapsedMs - meanMs) / stdMs;
  const a = y * (1.5976 + 0.070566 * y * y);
  const lnPhi = a > 0 ? a + Math.log1p(Math.exp(-a)) : Math.log1p(Math.exp(a));
  return lnPhi / Math.LN10;
}
