/**
 * Typed configuration of the balancer and of the resilience around it, every field with its
 * default and the reason for it. Defaults follow Envoy (ring hash, Maglev, outlier detection,
 * retry budgets) and Finagle (peak EWMA) where they have one. `validate*` reject a
 * configuration that cannot work, with RDB_CONFIG_INVALID naming the field.
 */
import { ConfigFieldError, ErrorCode, RdbnetError } from '../errors.ts';

export interface BalancerConfig {
  /** Ring points per unit of weight (ring, bounded-load); ketama's 160. More points, a more even
   * ring and a slower build. */
  ringVnodesPerWeight: number;
  /** Ring points at most (bounded like every table): points per node are scaled down to fit.
   * 1,048,576 (12 MiB of typed arrays). */
  ringPointsMax: number;
  /** Maglev lookup table size: a prime larger than the number of endpoints, ideally 100× it
   * (the Maglev paper). 65,537, Envoy's default. */
  maglevTableSize: number;
  /** Consistent hashing with bounded loads: no endpoint is given more than
   * ceil(c × (load + 1) × weight share), so max/mean stays ≤ c. 1.25 (Mirrokni et al.; Vimeo). */
  boundedLoadFactor: number;
  /** p2c and least-connections: a request's preference is weight / (active + 1)^bias
   * (Envoy's active_request_bias). 1. */
  activeRequestBias: number;
  /** p2c-ewma: time constant of the peak-EWMA latency and of the error-rate EWMA; a sample
   * counts half after 0.69 of it. 10,000 ms (Finagle's decayTime). */
  ewmaDecayMs: number;
  /** p2c-ewma: cost × (1 + errorPenalty × error rate), so a node that fails fast does not
   * attract traffic for its low latency. 50. */
  errorPenalty: number;
  /** Smooth weighted round robin precomputes its schedule when the integer weights sum to at
   * most this many slots (O(1) picks); otherwise it runs the O(N) nginx algorithm. 65,536. */
  wrrScheduleSlotsMax: number;
}

export const DEFAULT_BALANCER_CONFIG: Readonly<BalancerConfig> = Object.freeze({
  ringVnodesPerWeight: 160,
  ringPointsMax: 1 << 20,
  maglevTableSize: 65_537,
  boundedLoadFactor: 1.25,
  activeRequestBias: 1,
  ewmaDecayMs: 10_000,
  errorPenalty: 50,
  wrrScheduleSlotsMax: 65_536,
});

export interface BreakerConfig {
  /** Consecutive failures that open the breaker. 5 (Envoy's consecutive_5xx). */
  consecutiveFailuresMax: number;
  /** Error rate over the window that opens the breaker, 0..1. 0.5. */
  errorRateMax: number;
  /** Window the error rate is measured over (in windowBuckets buckets). 10,000 ms. */
  windowMs: number;
  /** Buckets of the window (bounded memory; the window slides one bucket at a time). 10. */
  windowBuckets: number;
  /** Calls in the window below which the error rate is not judged (one failure of two is not
   * a trend). 20. */
  windowRequestsMin: number;
  /** Time the breaker stays open before it lets probes through (half-open). Doubles on each
   * failed probe up to openMsMax. 5,000 ms. */
  openMs: number;
  /** The longest open period. 60,000 ms. */
  openMsMax: number;
  /** Probes allowed at once while half-open; every other call is rejected. 1. */
  halfOpenProbesMax: number;
  /** Successful probes that close the breaker again. 2. */
  halfOpenSuccessesToClose: number;
}

export const DEFAULT_BREAKER_CONFIG: Readonly<BreakerConfig> = Object.freeze({
  consecutiveFailuresMax: 5,
  errorRateMax: 0.5,
  windowMs: 10_000,
  windowBuckets: 10,
  windowRequestsMin: 20,
  openMs: 5000,
  openMsMax: 60_000,
  halfOpenProbesMax: 1,
  halfOpenSuccessesToClose: 2,
});

export interface OutlierConfig {
  /** Consecutive failures that eject an endpoint. 5 (Envoy's consecutive_5xx). */
  consecutiveFailuresMax: number;
  /** Failure share over one interval that ejects an endpoint, 0..1. 0.85 (Envoy's
   * failure_percentage_threshold). */
  failureRateMax: number;
  /** Requests in the interval below which the failure share is not judged. 50 (Envoy). */
  intervalRequestsMin: number;
  /** Length of one measuring interval; also how often the ejection multiplier decays. 10,000 ms
   * (Envoy's interval). */
  intervalMs: number;
  /** Ejection time is this × times ejected (Envoy's base_ejection_time). 30,000 ms. */
  baseEjectionMs: number;
  /** The longest ejection (Envoy's max_ejection_time). 300,000 ms. */
  ejectionMsMax: number;
  /** Share of endpoints that may be ejected at once, 0..1; one is always allowed, as in Envoy.
   * 0.1 (Envoy's max_ejection_percent). */
  ejectedShareMax: number;
}

export const DEFAULT_OUTLIER_CONFIG: Readonly<OutlierConfig> = Object.freeze({
  consecutiveFailuresMax: 5,
  failureRateMax: 0.85,
  intervalRequestsMin: 50,
  intervalMs: 10_000,
  baseEjectionMs: 30_000,
  ejectionMsMax: 300_000,
  ejectedShareMax: 0.1,
});

export interface RetryConfig {
  /** Attempts in all, the first included. 3. */
  attemptsMax: number;
  /** Ceiling of the first backoff; each later ceiling doubles (full jitter: the wait is
   * uniform below the ceiling). 25 ms (Envoy's base_interval). */
  backoffBaseMs: number;
  /** The highest ceiling. 250 ms (Envoy: 10 × base). */
  backoffCapMs: number;
}

export const DEFAULT_RETRY_CONFIG: Readonly<RetryConfig> = Object.freeze({
  attemptsMax: 3,
  backoffBaseMs: 25,
  backoffCapMs: 250,
});

export interface RetryBudgetConfig {
  /** Retries allowed as a share of the requests of the last window, 0..1. 0.2 (Finagle's
   * percentCanRetry, Envoy's budget_percent). */
  retryShare: number;
  /** Retries allowed per second whatever the traffic, so a quiet peer can still be retried.
   * 10 (Finagle's minRetriesPerSec). */
  retriesPerSecondMin: number;
  /** Window requests and retries are counted over (in windowBuckets buckets). 10,000 ms
   * (Finagle's ttl). */
  windowMs: number;
  /** Buckets of the window. 10. */
  windowBuckets: number;
}

export const DEFAULT_RETRY_BUDGET_CONFIG: Readonly<RetryBudgetConfig> = Object.freeze({
  retryShare: 0.2,
  retriesPerSecondMin: 10,
  windowMs: 10_000,
  windowBuckets: 10,
});

export interface RateLimitConfig {
  /** Tokens added per second; one request takes one. 200. */
  ratePerSecond: number;
  /** Tokens the bucket holds at most (the burst). 400. */
  burst: number;
  /** Requests in flight at once; one more is refused. 64. */
  concurrencyMax: number;
}

export const DEFAULT_RATE_LIMIT_CONFIG: Readonly<RateLimitConfig> = Object.freeze({
  ratePerSecond: 200,
  burst: 400,
  concurrencyMax: 64,
});

type Bounds = Record<string, [min: number, max: number, integer: boolean]>;

function check<T extends object>(what: string, config: T, bounds: Bounds): T {
  for (const [field, [min, max, integer]] of Object.entries(bounds)) {
    const value = (config as Record<string, unknown>)[field];
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      value < min ||
      value > max ||
      (integer && !Number.isInteger(value))
    ) {
      throw new ConfigFieldError(
        `${what}.${field}`,
        `must be ${integer ? 'an integer' : 'a number'} in ${min}..${max}, got ${String(value)}`,
      );
    }
  }
  return config;
}

export function validateBalancerConfig(config: BalancerConfig): BalancerConfig {
  check('balancer', config, {
    ringVnodesPerWeight: [1, 10_000, true],
    ringPointsMax: [1, 1 << 24, true],
    maglevTableSize: [3, 16_777_259, true],
    boundedLoadFactor: [1, 100, false],
    activeRequestBias: [0, 10, false],
    ewmaDecayMs: [1, 3_600_000, false],
    errorPenalty: [0, 1_000_000, false],
    wrrScheduleSlotsMax: [0, 1 << 24, true],
  });
  if (!isPrime(config.maglevTableSize)) {
    throw new ConfigFieldError(
      'balancer.maglevTableSize',
      `must be prime, got ${config.maglevTableSize}`,
      { hint: 'Maglev needs a prime table size, e.g. 65537, 655373 or 5000011' },
    );
  }
  return config;
}

export function validateBreakerConfig(config: BreakerConfig): BreakerConfig {
  check('breaker', config, {
    consecutiveFailuresMax: [1, 1_000_000, true],
    errorRateMax: [0, 1, false],
    windowMs: [1, 3_600_000, false],
    windowBuckets: [1, 1000, true],
    windowRequestsMin: [1, 1_000_000_000, true],
    openMs: [1, 3_600_000, false],
    openMsMax: [1, 3_600_000, false],
    halfOpenProbesMax: [1, 10_000, true],
    halfOpenSuccessesToClose: [1, 10_000, true],
  });
  if (config.openMsMax < config.openMs) {
    throw new RdbnetError(ErrorCode.ConfigInvalid, 'invalid breaker.openMsMax: below openMs');
  }
  return config;
}

export function validateOutlierConfig(config: OutlierConfig): OutlierConfig {
  check('outlier', config, {
    consecutiveFailuresMax: [1, 1_000_000, true],
    failureRateMax: [0, 1, false],
    intervalRequestsMin: [1, 1_000_000_000, true],
    intervalMs: [1, 3_600_000, false],
    baseEjectionMs: [1, 3_600_000, false],
    ejectionMsMax: [1, 86_400_000, false],
    ejectedShareMax: [0, 1, false],
  });
  return config;
}

export function validateRetryConfig(config: RetryConfig): RetryConfig {
  return check('retry', config, {
    attemptsMax: [1, 100, true],
    backoffBaseMs: [0, 3_600_000, false],
    backoffCapMs: [0, 3_600_000, false],
  });
}

export function validateRetryBudgetConfig(config: RetryBudgetConfig): RetryBudgetConfig {
  return check('retryBudget', config, {
    retryShare: [0, 1, false],
    retriesPerSecondMin: [0, 1_000_000, false],
    windowMs: [1, 3_600_000, false],
    windowBuckets: [1, 1000, true],
  });
}

export function validateRateLimitConfig(config: RateLimitConfig): RateLimitConfig {
  return check('rateLimit', config, {
    ratePerSecond: [0, 1_000_000_000, false],
    burst: [1, 1_000_000_000, false],
    concurrencyMax: [1, 1_000_000_000, true],
  });
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}
