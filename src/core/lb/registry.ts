/**
 * The resilience a node puts around the requests it sends its peers, one entry per peer
 * address: a token bucket and a concurrency limit (admission), a circuit breaker, retries
 * with backoff paid from the peer's retry budget, outlier ejection across peers, and the
 * balancer's view of the peer (requests in flight, peak-EWMA latency, error rate) from which
 * `pick` chooses among peers by p2c-ewma. Every refusal and every outcome is counted, and
 * `status()` is what `rdbnet lb status` shows.
 *
 * Pure but for the work it is handed: time, randomness and sleeping are injected. Bounded:
 * at most `peersMax` entries; a new peer beyond that evicts the least recently used idle one.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { Clock, Random } from '../runtime/index.ts';
import { type BreakerSnapshot, CircuitBreaker } from './breaker.ts';
import {
  type BalancerConfig,
  type BreakerConfig,
  DEFAULT_BALANCER_CONFIG,
  DEFAULT_RATE_LIMIT_CONFIG,
  type OutlierConfig,
  type RateLimitConfig,
  type RetryBudgetConfig,
  type RetryConfig,
  validateRateLimitConfig,
} from './config.ts';
import { adaptiveCost, decayedValue, errorEwma, peakEwma } from './ewma.ts';
import { OutlierDetector } from './outlier.ts';
import { ConcurrencyLimit, TokenBucket } from './rate-limit.ts';
import { Retrying } from './retry.ts';
import { RetryBudget, type RetryBudgetSnapshot } from './retry-budget.ts';

/** Peers tracked at once (like the node's peer links). */
export const PEERS_MAX = 1024;
/** Outlier intervals are judged at most this often (on the next call, pick or status). */
const OUTLIER_TICK_MS = 1000;

export interface PeerResilienceConfig {
  breaker: Partial<BreakerConfig>;
  outlier: Partial<OutlierConfig>;
  retry: Partial<RetryConfig>;
  retryBudget: Partial<RetryBudgetConfig>;
  rateLimit: Partial<RateLimitConfig>;
  /** ewmaDecayMs and errorPenalty of the peers' adaptive cost. */
  balancer: Partial<Pick<BalancerConfig, 'ewmaDecayMs' | 'errorPenalty'>>;
  /** Entries kept at most. PEERS_MAX. */
  peersMax: number;
}

export interface PeerResilienceInit {
  clock: Clock;
  random: Random;
  sleep(ms: number): Promise<void>;
  config?: Partial<PeerResilienceConfig>;
  /** Whether an error says the peer is failing (unreachable, timed out, connection lost), as
   * opposed to a peer that answered with a refusal. Default: every error. */
  peerFailure?(error: unknown): boolean;
  /** Whether another attempt may succeed. Default: peerFailure. */
  retryable?(error: unknown): boolean;
}

/** How one call() may differ from the registry's configuration. */
export interface CallOptions {
  /** Attempts at most, the first included, below the retry configuration's: 1 for a request
   * that must not run twice (a forwarded membership change). Default: the configuration's. */
  attemptsMax?: number;
}

/** What `rdbnet lb status` shows for one peer. */
export interface PeerStatus {
  address: string;
  breaker: BreakerSnapshot;
  ejected: boolean;
  /** Times outlier detection ejected it. */
  ejections: number;
  ejectedRemainingMs: number;
  inflight: number;
  /** Peak-EWMA latency now; null before the first answer. */
  latencyEwmaMs: number | null;
  /** EWMA of failures, 0..1. */
  errorRate: number;
  /** Requests (first attempts, through call() or observe()) and attempts that failed. */
  requests: number;
  failures: number;
  /** Of those requests, the ones sent through call(): guarded by the breaker, the budget and
   * the limits (observe() only measures). */
  calls: number;
  retryBudget: RetryBudgetSnapshot;
  /** Requests the token bucket dropped. */
  rateLimited: number;
  /** Requests refused because the concurrency limit was reached. */
  concurrencyRejected: number;
  /** The code of the last failure ('' when none). */
  lastError: string;
  /** Milliseconds since the last request or observation. */
  idleMs: number;
}

interface PeerEntry {
  address: string;
  breaker: CircuitBreaker;
  budget: RetryBudget;
  bucket: TokenBucket;
  concurrency: ConcurrencyLimit;
  retrying: Retrying;
  inflight: number;
  latencyMs: number;
  latencyAtMs: number;
  measured: boolean;
  errorRate: number;
  errorAtMs: number;
  requests: number;
  failures: number;
  calls: number;
  lastError: string;
  usedAtMs: number;
}

export class PeerResilience {
  private readonly init: PeerResilienceInit;
  private readonly config: PeerResilienceConfig;
  private readonly rateLimit: RateLimitConfig;
  private readonly balancer: BalancerConfig;
  private readonly peers = new Map<string, PeerEntry>();
  private readonly outliers: OutlierDetector;
  private readonly peerFailure: (error: unknown) => boolean;
  private readonly retryable: (error: unknown) => boolean;
  private lastTickMs: number;
  private evicted = 0;
  private readonly choices: string[] = ['', ''];

  constructor(init: PeerResilienceInit) {
    this.init = init;
    this.config = {
      breaker: {},
      outlier: {},
      retry: {},
      retryBudget: {},
      rateLimit: {},
      balancer: {},
      peersMax: PEERS_MAX,
      ...init.config,
    };
    this.rateLimit = validateRateLimitConfig({
      ...DEFAULT_RATE_LIMIT_CONFIG,
      ...this.config.rateLimit,
    });
    this.balancer = { ...DEFAULT_BALANCER_CONFIG, ...this.config.balancer };
    this.outliers = new OutlierDetector(init.clock, this.config.outlier);
    this.peerFailure = init.peerFailure ?? (() => true);
    this.retryable = init.retryable ?? this.peerFailure;
    this.lastTickMs = init.clock.nowMs();
    // Fail at construction, not at the first call, on a bad breaker/retry/budget setting.
    this.createEntry('config-check');
  }

  /**
   * Sends one request to `address` through every guard: RDB_RATE_LIMITED when the bucket is
   * empty, RDB_INFLIGHT_LIMIT at the concurrency limit, RDB_CIRCUIT_OPEN while the breaker
   * refuses; otherwise `work` runs (given the milliseconds left before `deadlineMs`) and is
   * retried on retryable errors with backoff while the budget allows (and `options` allow).
   */
  async call<T>(
    address: string,
    work: (remainingMs: number | undefined) => Promise<T>,
    deadlineMs?: number,
    options?: CallOptions,
  ): Promise<T> {
    this.maybeTick();
    const entry = this.entry(address);
    if (!entry.bucket.tryTake()) {
      throw new RdbnetError(
        ErrorCode.RateLimited,
        `request to ${address} dropped: more than ${this.rateLimit.ratePerSecond}/s (burst ${this.rateLimit.burst})`,
      );
    }
    if (!entry.concurrency.tryAcquire()) {
      throw new RdbnetError(
        ErrorCode.InflightLimit,
        `request to ${address} refused: ${this.rateLimit.concurrencyMax} already in flight`,
      );
    }
    entry.requests++;
    entry.calls++;
    try {
      return await entry.retrying.execute(
        (_attempt, remainingMs) => this.measured(entry, () => work(remainingMs)),
        deadlineMs,
        options?.attemptsMax,
      );
    } finally {
      entry.concurrency.release();
    }
  }

  /**
   * A request the node must send whatever the guards say (gossip's push-pull keeps its own
   * schedule and timeouts): measured and counted like any other (latency, errors, outlier
   * ejection, which pick() honours), never refused or retried. It does not move the breaker:
   * the breaker guards the requests sent through call() and learns from them only, so a
   * member gossip reports alive again is not refused for push-pulls that failed while it was
   * down.
   */
  async observe<T>(address: string, work: () => Promise<T>): Promise<T> {
    this.maybeTick();
    const entry = this.entry(address);
    entry.requests++;
    return this.measured(entry, work);
  }

  /**
   * One of `addresses` by p2c-ewma (two at random, the lower cost), leaving out ejected peers
   * and peers whose breaker is open; null when none is left.
   */
  pick(addresses: readonly string[]): string | null {
    this.maybeTick();
    const open: string[] = [];
    for (const address of addresses) {
      const entry = this.peers.get(address);
      if (entry === undefined) {
        open.push(address);
        continue;
      }
      if (this.outliers.isEjected(address) || entry.breaker.state === 'open') continue;
      open.push(address);
    }
    if (open.length === 0) return null;
    if (open.length === 1) return open[0]!;
    const first = this.init.random.int(open.length);
    let second = this.init.random.int(open.length - 1);
    if (second >= first) second++;
    this.choices[0] = open[first]!;
    this.choices[1] = open[second]!;
    const now = this.init.clock.nowMs();
    return this.cost(this.choices[1], now) < this.cost(this.choices[0], now)
      ? this.choices[1]
      : this.choices[0];
  }

  /**
   * False while `address` is ejected or its breaker is open (a call would be refused or the
   * balancer would skip it); true for a peer not tracked yet.
   */
  available(address: string): boolean {
    this.maybeTick();
    const entry = this.peers.get(address);
    if (entry === undefined) return true;
    return !this.outliers.isEjected(address) && entry.breaker.state !== 'open';
  }

  /** Every tracked peer, by address. */
  status(): PeerStatus[] {
    this.maybeTick();
    const now = this.init.clock.nowMs();
    return [...this.peers.values()]
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
      .map((entry) => {
        const outlier = this.outliers.snapshot(entry.address);
        return {
          address: entry.address,
          breaker: entry.breaker.snapshot(),
          ejected: outlier.ejected,
          ejections: outlier.ejections,
          ejectedRemainingMs: Math.round(outlier.ejectedRemainingMs),
          inflight: entry.inflight,
          latencyEwmaMs: entry.measured
            ? round3(decayedValue(entry.latencyMs, entry.latencyAtMs, now, this.decayMs))
            : null,
          errorRate: round3(decayedValue(entry.errorRate, entry.errorAtMs, now, this.decayMs)),
          requests: entry.requests,
          failures: entry.failures,
          calls: entry.calls,
          retryBudget: entry.budget.snapshot(),
          rateLimited: entry.bucket.dropped,
          concurrencyRejected: entry.concurrency.rejected,
          lastError: entry.lastError,
          idleMs: Math.round(now - entry.usedAtMs),
        };
      });
  }

  /** Flat `lb.*` counters for `node status`. */
  counters(): Record<string, number> {
    let requests = 0;
    let failures = 0;
    let retries = 0;
    let retriesRefused = 0;
    let rateLimited = 0;
    let concurrencyRejected = 0;
    let circuitRejected = 0;
    let circuitOpened = 0;
    for (const entry of this.peers.values()) {
      const budget = entry.budget.snapshot();
      const breaker = entry.breaker.snapshot();
      requests += entry.requests;
      failures += entry.failures;
      retries += budget.retries;
      retriesRefused += budget.refused;
      rateLimited += entry.bucket.dropped;
      concurrencyRejected += entry.concurrency.rejected;
      circuitRejected += breaker.rejected;
      circuitOpened += breaker.opened;
    }
    return {
      'lb.peers': this.peers.size,
      'lb.peers.evicted': this.evicted,
      'lb.requests': requests,
      'lb.failures': failures,
      'lb.retries': retries,
      'lb.retries.refused': retriesRefused,
      'lb.rate_limited': rateLimited,
      'lb.concurrency_rejected': concurrencyRejected,
      'lb.circuit.rejected': circuitRejected,
      'lb.circuit.opened': circuitOpened,
      'lb.ejections': this.outliers.counters.ejections,
      'lb.ejections.capped': this.outliers.counters.ejectionsCapped,
    };
  }

  /** Forgets peers not in `keep` that have nothing in flight (members that left). */
  retain(keep: ReadonlySet<string>): void {
    for (const [address, entry] of this.peers) {
      if (keep.has(address) || entry.inflight > 0) continue;
      this.peers.delete(address);
      this.outliers.remove(address);
    }
  }

  private get decayMs(): number {
    return this.balancer.ewmaDecayMs;
  }

  private cost(address: string, now: number): number {
    const entry = this.peers.get(address);
    if (entry === undefined) return 0;
    return adaptiveCost(
      decayedValue(entry.latencyMs, entry.latencyAtMs, now, this.decayMs),
      entry.inflight,
      decayedValue(entry.errorRate, entry.errorAtMs, now, this.decayMs),
      0,
      1,
      this.balancer.errorPenalty,
    );
  }

  /** Runs one attempt, keeping in-flight, latency, error rate and outlier state. */
  private async measured<T>(entry: PeerEntry, work: () => Promise<T>): Promise<T> {
    const clock = this.init.clock;
    const started = clock.nowMs();
    entry.inflight++;
    entry.usedAtMs = started;
    let ok = true;
    try {
      return await work();
    } catch (error) {
      if (this.peerFailure(error)) {
        ok = false;
        entry.failures++;
        entry.lastError = (error as { code?: string }).code ?? (error as Error).name ?? 'Error';
      }
      throw error;
    } finally {
      entry.inflight--;
      const now = clock.nowMs();
      entry.latencyMs = peakEwma(
        entry.latencyMs,
        entry.latencyAtMs,
        now - started,
        now,
        this.decayMs,
      );
      entry.latencyAtMs = now;
      entry.measured = true;
      entry.errorRate = errorEwma(entry.errorRate, entry.errorAtMs, !ok, now, this.decayMs);
      entry.errorAtMs = now;
      this.outliers.record(entry.address, ok);
    }
  }

  private maybeTick(): void {
    const now = this.init.clock.nowMs();
    if (now - this.lastTickMs < OUTLIER_TICK_MS) return;
    this.lastTickMs = now;
    this.outliers.tick();
  }

  private entry(address: string): PeerEntry {
    let entry = this.peers.get(address);
    if (entry === undefined) {
      if (this.peers.size >= this.config.peersMax) this.evictOne();
      entry = this.createEntry(address);
      this.peers.set(address, entry);
      this.outliers.add(address);
    }
    return entry;
  }

  private createEntry(address: string): PeerEntry {
    const { clock, random, sleep } = this.init;
    const breaker = new CircuitBreaker(clock, this.config.breaker);
    const budget = new RetryBudget(clock, this.config.retryBudget);
    return {
      address,
      breaker,
      budget,
      bucket: new TokenBucket(clock, this.rateLimit.ratePerSecond, this.rateLimit.burst),
      concurrency: new ConcurrencyLimit(this.rateLimit.concurrencyMax),
      retrying: new Retrying({
        budget,
        breaker,
        config: this.config.retry,
        clock,
        random,
        sleep,
        retryable: this.retryable,
        peerFailure: this.peerFailure,
      }),
      inflight: 0,
      latencyMs: 0,
      latencyAtMs: 0,
      measured: false,
      errorRate: 0,
      errorAtMs: 0,
      requests: 0,
      failures: 0,
      calls: 0,
      lastError: '',
      usedAtMs: clock.nowMs(),
    };
  }

  /** The least recently used peer with nothing in flight (else the least recently used). */
  private evictOne(): void {
    let victim: PeerEntry | undefined;
    for (const entry of this.peers.values()) {
      if (entry.inflight > 0) continue;
      if (victim === undefined || entry.usedAtMs < victim.usedAtMs) victim = entry;
    }
    victim ??= [...this.peers.values()].sort((a, b) => a.usedAtMs - b.usedAtMs)[0];
    if (victim === undefined) return;
    this.peers.delete(victim.address);
    this.outliers.remove(victim.address);
    this.evicted++;
  }
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
