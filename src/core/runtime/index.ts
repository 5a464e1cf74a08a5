/**
 * Time and randomness are injected into every state machine (ARCHITECTURE.md practice 2).
 * Production code uses `systemClock` and `systemRandom`; the simulator supplies its own.
 */
import { systemTimers, type TimedClock } from './timers.ts';

export interface Clock {
  /** Monotonic milliseconds; only differences are meaningful. */
  nowMs(): number;
  /** Wall-clock milliseconds since the epoch, for timestamps shown to people. */
  wallMs(): number;
}

export interface Random {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
}

/** performance.now(), Date.now() and node's timers (see timers.ts). */
export const systemClock: TimedClock = {
  nowMs: () => performance.now(),
  wallMs: () => Date.now(),
  setTimer: systemTimers.setTimer,
  clearTimer: systemTimers.clearTimer,
};

export const systemRandom: Random = {
  next: () => Math.random(),
  int: (maxExclusive) => Math.floor(Math.random() * maxExclusive),
};

/** Deterministic PRNG (mulberry32) for simulations and replayable tests. */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (maxExclusive) => Math.floor(next() * maxExclusive) };
}

/**
 * Exponential backoff with full jitter: attempt 0 waits up to baseMs, each later attempt
 * doubles the ceiling until capMs. Full jitter spreads reconnect storms (AWS architecture blog).
 */
export function backoffDelayMs(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: Random,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random.next() * ceiling);
}
export * from './counters.ts';
export * from './ids.ts';
export * from './log.ts';
export * from './log-limiter.ts';
export * from './timers.ts';
