/**
 * Timers on the injected clock (ARCHITECTURE.md practices 2 and 12). A shell that sets every
 * timer through `Timers` runs unchanged on node's timers in production (`systemClock`) and
 * in virtual time in the simulator (sim's EventQueue), where a timer fires exactly when the
 * simulated clock reaches it.
 */
import type { Clock } from './index.ts';

declare const timerBrand: unique symbol;

/** An armed timer; only the Timers that made it can clear it. */
export interface TimerHandle {
  readonly [timerBrand]: true;
}

export interface TimerOptions {
  /**
   * The timer alone does not keep the process alive (node's `unref()`): for housekeeping
   * that must not hold up an exit. No effect in simulation, where nothing is a process.
   */
  unref?: boolean;
}

export interface Timers {
  /** Runs `run` once, `delayMs` from now (a negative or NaN delay counts as 0). */
  setTimer(delayMs: number, run: () => void, options?: TimerOptions): TimerHandle;
  /** Cancels a timer that has not fired yet; a fired or cleared one is left alone. */
  clearTimer(handle: TimerHandle): void;
}

/** A clock with timers that fire on its own time: what a driver that waits takes. */
export interface TimedClock extends Clock, Timers {}

/** node:timers. Node clamps delays below 1 ms to 1 ms; so does nothing here. */
export const systemTimers: Timers = {
  setTimer(delayMs, run, options) {
    const timer = setTimeout(run, delayMs);
    if (options?.unref === true) timer.unref();
    return timer as unknown as TimerHandle;
  },
  clearTimer(handle) {
    clearTimeout(handle as unknown as NodeJS.Timeout);
  },
};

function hasTimers(clock: Clock): clock is TimedClock {
  const candidate = clock as Partial<TimedClock>;
  return typeof candidate.setTimer === 'function' && typeof candidate.clearTimer === 'function';
}

/**
 * The timers that belong to `clock`: its own when it has them (`systemClock` and the
 * simulator's clock do), node's otherwise — a clock that only reads time (the pure machines'
 * kind) is a real one in practice. Lets a driver take one `clock` and never mix time sources.
 */
export function timersOf(clock: Clock): Timers {
  return hasTimers(clock) ? clock : systemTimers;
}

/** Resolves after `ms` on `timers` (the injected replacement for timers/promises' setTimeout). */
export function sleep(timers: Timers, ms: number, options?: TimerOptions): Promise<void> {
  return new Promise<void>((resolve) => {
    timers.setTimer(ms, resolve, options);
  });
}

export interface RepeatingTimer {
  /** No further runs; a run already under way finishes. Idempotent. */
  stop(): void;
}

/**
 * setInterval on `timers`: runs `run` every `periodMs`, the first time `periodMs` from now.
 * The next run is armed before this one starts, so the period is measured from the start of
 * each run, as node's setInterval does, and a run that throws does not end the repetition.
 */
export function setRepeating(
  timers: Timers,
  periodMs: number,
  run: () => void,
  options?: TimerOptions,
): RepeatingTimer {
  let stopped = false;
  let handle: TimerHandle;
  const fire = (): void => {
    if (stopped) return;
    handle = timers.setTimer(periodMs, fire, options);
    run();
  };
  handle = timers.setTimer(periodMs, fire, options);
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      timers.clearTimer(handle);
    },
  };
}
