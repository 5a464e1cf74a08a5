/**
 * Outlier ejection (Envoy's outlier detection) over a set of endpoints: an endpoint that
 * fails `consecutiveFailuresMax` times in a row, or whose failure share over an interval
 * reaches `failureRateMax` (with at least `intervalRequestsMin` requests), is ejected for
 * baseEjectionMs × times ejected (at most ejectionMsMax). At most `ejectedShareMax` of the
 * endpoints are out at once (one always may be); an ejection the cap forbids is counted,
 * not made. The times-ejected multiplier drops by one for every interval an endpoint spends
 * back in without being ejected again. Pure: time from the injected clock; the caller takes
 * the ids returned by record() and tick() in and out of its balancer.
 */
import type { Clock } from '../runtime/index.ts';
import { DEFAULT_OUTLIER_CONFIG, type OutlierConfig, validateOutlierConfig } from './config.ts';

export interface OutlierSnapshot {
  ejected: boolean;
  /** Times this endpoint was ejected. */
  ejections: number;
  /** The current multiplier of the ejection time. */
  multiplier: number;
  /** Milliseconds until an ejected endpoint comes back; 0 otherwise. */
  ejectedRemainingMs: number;
}

export interface OutlierCounters {
  /** Ejections made. */
  ejections: number;
  /** Ejections the share cap refused (the overflow of the cap). */
  ejectionsCapped: number;
  /** Endpoints taken back after their ejection time. */
  restored: number;
}

interface Entry {
  consecutiveFailures: number;
  intervalRequests: number;
  intervalFailures: number;
  ejectedUntilMs: number;
  multiplier: number;
  ejections: number;
  /** When the multiplier last dropped (or the endpoint came back). */
  decayedAtMs: number;
}

export class OutlierDetector {
  readonly config: Readonly<OutlierConfig>;
  readonly counters: OutlierCounters = { ejections: 0, ejectionsCapped: 0, restored: 0 };
  private readonly clock: Clock;
  private readonly entries = new Map<string, Entry>();
  private ejectedCount = 0;
  private intervalStartMs: number;

  constructor(clock: Clock, config: Partial<OutlierConfig> = {}) {
    this.config = validateOutlierConfig({ ...DEFAULT_OUTLIER_CONFIG, ...config });
    this.clock = clock;
    this.intervalStartMs = clock.nowMs();
  }

  /** Starts watching `id` (record() does it too). */
  add(id: string): void {
    if (this.entries.has(id)) return;
    this.entries.set(id, {
      consecutiveFailures: 0,
      intervalRequests: 0,
      intervalFailures: 0,
      ejectedUntilMs: 0,
      multiplier: 0,
      ejections: 0,
      decayedAtMs: this.clock.nowMs(),
    });
  }

  /** Stops watching `id` (it left the set). */
  remove(id: string): void {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    if (entry.ejectedUntilMs > 0) this.ejectedCount--;
    this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }

  isEjected(id: string): boolean {
    return (this.entries.get(id)?.ejectedUntilMs ?? 0) > 0;
  }

  /** One outcome of a request to `id`; true when it ejected `id` just now. */
  record(id: string, ok: boolean): boolean {
    this.add(id);
    const entry = this.entries.get(id)!;
    entry.intervalRequests++;
    if (ok) {
      entry.consecutiveFailures = 0;
      return false;
    }
    entry.intervalFailures++;
    entry.consecutiveFailures++;
    if (entry.consecutiveFailures < this.config.consecutiveFailuresMax) return false;
    return this.eject(entry, this.clock.nowMs());
  }

  /**
   * Time passes: endpoints whose ejection is over come back (returned in `restored`); at the
   * end of each interval failure shares are judged (`ejected`) and multipliers decay.
   */
  tick(): { ejected: string[]; restored: string[] } {
    const now = this.clock.nowMs();
    const ejected: string[] = [];
    const restored: string[] = [];
    for (const [id, entry] of this.entries) {
      if (entry.ejectedUntilMs > 0 && now >= entry.ejectedUntilMs) {
        entry.ejectedUntilMs = 0;
        entry.consecutiveFailures = 0;
        entry.decayedAtMs = now;
        this.ejectedCount--;
        this.counters.restored++;
        restored.push(id);
      } else if (
        entry.ejectedUntilMs === 0 &&
        entry.multiplier > 0 &&
        now - entry.decayedAtMs >= this.config.intervalMs
      ) {
        entry.multiplier--;
        entry.decayedAtMs = now;
      }
    }
    if (now - this.intervalStartMs >= this.config.intervalMs) {
      this.intervalStartMs = now;
      for (const [id, entry] of this.entries) {
        const judged =
          entry.ejectedUntilMs === 0 &&
          entry.intervalRequests >= this.config.intervalRequestsMin &&
          entry.intervalFailures / entry.intervalRequests >= this.config.failureRateMax;
        entry.intervalRequests = 0;
        entry.intervalFailures = 0;
        if (judged && this.eject(entry, now)) ejected.push(id);
      }
    }
    return { ejected, restored };
  }

  snapshot(id: string): OutlierSnapshot {
    const entry = this.entries.get(id);
    const now = this.clock.nowMs();
    return {
      ejected: (entry?.ejectedUntilMs ?? 0) > 0,
      ejections: entry?.ejections ?? 0,
      multiplier: entry?.multiplier ?? 0,
      ejectedRemainingMs:
        entry !== undefined && entry.ejectedUntilMs > 0
          ? Math.max(0, entry.ejectedUntilMs - now)
          : 0,
    };
  }

  /** Endpoints that may be out at once: the share of the set, and never less than one. */
  get ejectedMax(): number {
    return Math.max(1, Math.floor(this.config.ejectedShareMax * this.entries.size));
  }

  get ejected(): number {
    return this.ejectedCount;
  }

  private eject(entry: Entry, now: number): boolean {
    if (entry.ejectedUntilMs > 0) return false;
    if (this.ejectedCount >= this.ejectedMax) {
      this.counters.ejectionsCapped++;
      return false;
    }
    entry.multiplier++;
    entry.ejections++;
    entry.ejectedUntilMs =
      now + Math.min(this.config.ejectionMsMax, this.config.baseEjectionMs * entry.multiplier);
    entry.consecutiveFailures = 0;
    this.ejectedCount++;
    this.counters.ejections++;
    return true;
  }
}
