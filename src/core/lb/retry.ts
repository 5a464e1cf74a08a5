/**
 * One call through a circuit breaker, with retries: exponential backoff with full jitter
 * between attempts, each retry paid for from a retry budget, all within an optional
 * deadline. A breaker that refuses fails the call at once with RDB_CIRCUIT_OPEN (no retry:
 * the peer is known to be failing). Sleeping is injected, so tests and simulations run on
 * virtual time.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import { backoffDelayMs, type Clock, type Random } from '../runtime/index.ts';
import { type CircuitBreaker, REJECTED } from './breaker.ts';
import { DEFAULT_RETRY_CONFIG, type RetryConfig, validateRetryConfig } from './config.ts';
import type { RetryBudget } from './retry-budget.ts';

export interface RetryingInit {
  budget: RetryBudget;
  breaker?: CircuitBreaker;
  config?: Partial<RetryConfig>;
  clock: Clock;
  random: Random;
  sleep(ms: number): Promise<void>;
  /** Whether another attempt may succeed (default: every error). */
  retryable?(error: unknown): boolean;
  /** Whether the error counts against the peer in the breaker (default: every error); a
   * peer that answers with a refusal is healthy. */
  peerFailure?(error: unknown): boolean;
  /** Told of every attempt's end (for counters). */
  onAttempt?(attempt: number, ok: boolean): void;
}

const always = (): boolean => true;

export class Retrying {
  readonly config: Readonly<RetryConfig>;
  private readonly init: RetryingInit;
  private readonly retryable: (error: unknown) => boolean;
  private readonly peerFailure: (error: unknown) => boolean;

  constructor(init: RetryingInit) {
    this.init = init;
    this.config = validateRetryConfig({ ...DEFAULT_RETRY_CONFIG, ...init.config });
    this.retryable = init.retryable ?? always;
    this.peerFailure = init.peerFailure ?? always;
  }

  /**
   * Runs `work` (given the attempt number, from 0, and the milliseconds left before the
   * deadline, or undefined without one) until it succeeds, an error is not retryable, the
   * attempts or the budget run out, or the deadline passes; then rethrows the last error.
   * `attemptsMax` overrides the configured attempts for this call only (1: no retry, for a
   * request that must not run twice); it never raises them above the configuration's.
   */
  async execute<T>(
    work: (attempt: number, remainingMs: number | undefined) => Promise<T>,
    deadlineMs?: number,
    attemptsMax?: number,
  ): Promise<T> {
    const { budget, breaker, clock } = this.init;
    const attempts =
      attemptsMax === undefined
        ? this.config.attemptsMax
        : Math.max(1, Math.min(this.config.attemptsMax, Math.floor(attemptsMax)));
    const startedMs = clock.nowMs();
    budget.deposit(startedMs);
    for (let attempt = 0; ; attempt++) {
      const permit =
        breaker === undefined ? 0 : breaker.acquire(attempt === 0 ? startedMs : clock.nowMs());
      if (permit === REJECTED) {
        throw new RdbnetError(ErrorCode.CircuitOpen, 'circuit breaker open: the peer is failing', {
          hint: 'it lets a probe through after its open period; see `rdbnet lb status`',
        });
      }
      const remaining =
        deadlineMs === undefined
          ? undefined
          : deadlineMs - (attempt === 0 ? startedMs : clock.nowMs());
      try {
        const value = await work(attempt, remaining);
        // The first attempt's start time places the success in the breaker's window: one
        // clock read per call on the path every successful call takes.
        breaker?.succeeded(permit, attempt === 0 ? startedMs : clock.nowMs());
        this.init.onAttempt?.(attempt, true);
        return value;
      } catch (error) {
        if (this.peerFailure(error)) breaker?.failed(permit);
        else breaker?.succeeded(permit);
        this.init.onAttempt?.(attempt, false);
        if (attempt + 1 >= attempts || !this.retryable(error)) throw error;
        const delay = backoffDelayMs(
          attempt,
          this.config.backoffBaseMs,
          this.config.backoffCapMs,
          this.init.random,
        );
        if (deadlineMs !== undefined && clock.nowMs() + delay >= deadlineMs) throw error;
        if (!budget.tryWithdraw()) throw error;
        await this.init.sleep(delay);
      }
    }
  }
}
