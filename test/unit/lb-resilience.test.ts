/**
 * Resilience around the balancer, on a manual clock: the circuit breaker's state machine
 * (scripted and as a property over random call sequences), outlier ejection and its cap,
 * the retry budget, the token bucket and the concurrency limit, retries with full-jitter
 * backoff, and the per-peer registry that combines them.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, isRdbnetError, RdbnetError } from '../../src/core/errors.ts';
import {
  CircuitBreaker,
  ConcurrencyLimit,
  OutlierDetector,
  PeerResilience,
  REJECTED,
  RetryBudget,
  Retrying,
  TokenBucket,
  WindowCounts,
} from '../../src/core/lb/index.ts';
import { type Clock, seededRandom } from '../../src/core/runtime/index.ts';

function manualClock(start = 1000): Clock & { advance(ms: number): void } {
  let now = start;
  return { nowMs: () => now, wallMs: () => now, advance: (ms) => (now += ms) };
}

describe('lb: circuit breaker', () => {
  test('opens after 5 consecutive failures, refuses while open, half-opens after openMs', () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker(clock);
    for (let i = 0; i < 4; i++) breaker.failed(breaker.acquire());
    assert.equal(breaker.state, 'closed');
    breaker.succeeded(breaker.acquire()); // a success resets the run
    for (let i = 0; i < 4; i++) breaker.failed(breaker.acquire());
    assert.equal(breaker.state, 'closed');
    breaker.failed(breaker.acquire());
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.acquire(), REJECTED);
    clock.advance(4999);
    assert.equal(breaker.acquire(), REJECTED);
    clock.advance(1);
    assert.equal(breaker.state, 'half-open');
    const snapshot = breaker.snapshot();
    assert.equal(snapshot.opened, 1);
    assert.equal(snapshot.rejected, 2);
  });

  test('half-open: one probe at a time; two successes close it; a failed probe reopens for twice as long', () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker(clock);
    for (let i = 0; i < 5; i++) breaker.failed(breaker.acquire());
    clock.advance(5000);
    const probe = breaker.acquire();
    assert.ok(probe >= 0);
    assert.equal(breaker.acquire(), REJECTED, 'a second probe while the first is in flight');
    breaker.failed(probe);
    assert.equal(breaker.state, 'open');
    clock.advance(9999);
    assert.equal(breaker.state, 'open', 'the second open period is 10 s');
    clock.advance(1);
    breaker.succeeded(breaker.acquire());
    assert.equal(breaker.state, 'half-open');
    breaker.succeeded(breaker.acquire());
    assert.equal(breaker.state, 'closed');
    // Closed again: the open period is back to 5 s.
    for (let i = 0; i < 5; i++) breaker.failed(breaker.acquire());
    clock.advance(5000);
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.snapshot().probes, 3);
  });

  test('error rate over the window opens it (with at least 20 calls); old buckets slide out', () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker(clock, { consecutiveFailuresMax: 1000 });
    // 10 calls, alternating: 50% but below the minimum of 20 calls.
    for (let i = 0; i < 10; i++) {
      const permit = breaker.acquire();
      if (i % 2 === 0) breaker.failed(permit);
      else breaker.succeeded(permit);
    }
    assert.equal(breaker.state, 'closed');
    clock.advance(11_000); // the window (10 s) has moved past them
    for (let i = 0; i < 19; i++) {
      const permit = breaker.acquire();
      if (i % 2 === 0) breaker.failed(permit);
      else breaker.succeeded(permit);
    }
    assert.equal(breaker.state, 'closed', 'only 19 calls in the window');
    breaker.failed(breaker.acquire());
    assert.equal(breaker.state, 'open');
  });

  test('a call that began before the breaker opened cannot close or reopen it', () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker(clock);
    const early = breaker.acquire();
    for (let i = 0; i < 5; i++) breaker.failed(breaker.acquire());
    clock.advance(5000);
    assert.equal(breaker.state, 'half-open');
    breaker.succeeded(early);
    breaker.succeeded(early);
    assert.equal(breaker.state, 'half-open');
    const probe = breaker.acquire();
    assert.ok(probe >= 0, 'the stale permit did not take the probe slot');
  });

  test('property: never lets a call through while open, never more probes than allowed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.array(
          fc.oneof(
            fc.constant({ op: 'acquire' as const }),
            fc.record({ op: fc.constant('settle' as const), ok: fc.boolean(), n: fc.nat() }),
            fc.record({ op: fc.constant('wait' as const), ms: fc.integer({ min: 1, max: 8000 }) }),
          ),
          { maxLength: 300 },
        ),
        (probesMax, ops) => {
          const clock = manualClock();
          const breaker = new CircuitBreaker(clock, { halfOpenProbesMax: probesMax });
          const held: number[] = [];
          for (const step of ops) {
            if (step.op === 'wait') {
              clock.advance(step.ms);
            } else if (step.op === 'acquire') {
              const before = breaker.state;
              const permit = breaker.acquire();
              if (before === 'open') assert.equal(permit, REJECTED);
              if (before === 'closed') assert.notEqual(permit, REJECTED);
              if (permit !== REJECTED) held.push(permit);
              if (breaker.state === 'half-open') {
                const probes = held.filter((p) => p % 2 === 1).length;
                assert.ok(probes <= probesMax || before !== 'half-open');
              }
            } else if (held.length > 0) {
              const [permit] = held.splice(step.n % held.length, 1);
              if (step.ok) breaker.succeeded(permit!);
              else breaker.failed(permit!);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('lb: sliding window', () => {
  test('sums the last window only; a report older than the window is ignored', () => {
    const window = new WindowCounts(10_000, 10);
    window.add(500, 1, 0);
    window.add(9_500, 1, 1);
    assert.deepEqual(window.sums(9_999), [2, 1]);
    assert.deepEqual(window.sums(10_500), [1, 1], 'the first bucket slid out');
    window.add(25_000, 1, 0);
    // A call that began at 15.5 s reporting now: its bucket's slot now holds the 25 s count,
    // which must survive.
    window.add(15_500, 5, 5);
    assert.deepEqual(window.sums(25_000), [1, 0]);
  });
});

describe('lb: outlier ejection', () => {
  test('5 consecutive failures eject for 30 s × times ejected; it comes back after', () => {
    const clock = manualClock();
    const outliers = new OutlierDetector(clock);
    for (const id of ['a', 'b', 'c']) outliers.add(id);
    for (let i = 0; i < 4; i++) assert.equal(outliers.record('a', false), false);
    assert.equal(outliers.record('a', false), true);
    assert.ok(outliers.isEjected('a'));
    assert.equal(outliers.snapshot('a').ejectedRemainingMs, 30_000);
    clock.advance(29_999);
    assert.deepEqual(outliers.tick().restored, []);
    clock.advance(1);
    assert.deepEqual(outliers.tick().restored, ['a']);
    for (let i = 0; i < 5; i++) outliers.record('a', false);
    assert.equal(outliers.snapshot('a').ejectedRemainingMs, 60_000, 'second ejection: 2 × 30 s');
    assert.equal(outliers.snapshot('a').ejections, 2);
  });

  test('at most 10% ejected (at least one): the rest are counted as capped', () => {
    const clock = manualClock();
    const outliers = new OutlierDetector(clock);
    const ids = Array.from({ length: 30 }, (_, i) => `n${i}`);
    for (const id of ids) outliers.add(id);
    for (const id of ids) for (let i = 0; i < 5; i++) outliers.record(id, false);
    assert.equal(outliers.ejected, 3);
    assert.equal(outliers.counters.ejections, 3);
    assert.ok(outliers.counters.ejectionsCapped > 0);
    const small = new OutlierDetector(clock);
    for (const id of ['a', 'b', 'c']) small.add(id);
    for (const id of ['a', 'b', 'c']) for (let i = 0; i < 5; i++) small.record(id, false);
    assert.equal(small.ejected, 1, 'one is always allowed, as in Envoy');
  });

  test('property: the cap holds whatever the outcomes and the time', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.tuple(fc.nat(), fc.boolean(), fc.integer({ min: 0, max: 20_000 })), {
          maxLength: 400,
        }),
        (size, steps) => {
          const clock = manualClock();
          const outliers = new OutlierDetector(clock, { intervalRequestsMin: 3 });
          for (let i = 0; i < size; i++) outliers.add(`n${i}`);
          const cap = Math.max(1, Math.floor(0.1 * size));
          for (const [n, ok, wait] of steps) {
            outliers.record(`n${n % size}`, ok);
            clock.advance(wait);
            outliers.tick();
            assert.ok(outliers.ejected <= cap, `${outliers.ejected} > ${cap}`);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('a failure share ≥ 85% over an interval ejects; the multiplier decays while healthy', () => {
    const clock = manualClock();
    const outliers = new OutlierDetector(clock, { consecutiveFailuresMax: 1000 });
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']) outliers.add(id);
    for (let i = 0; i < 60; i++) outliers.record('a', i % 10 === 0); // 90% failures
    clock.advance(10_000);
    assert.deepEqual(outliers.tick().ejected, ['a']);
    clock.advance(30_000);
    assert.deepEqual(outliers.tick().restored, ['a']);
    assert.equal(outliers.snapshot('a').multiplier, 1);
    clock.advance(10_000);
    outliers.tick();
    assert.equal(outliers.snapshot('a').multiplier, 0);
  });
});

describe('lb: retry budget, token bucket, concurrency limit', () => {
  test('retries: 20% of the window’s requests plus 10/s; refused beyond', () => {
    const clock = manualClock();
    const budget = new RetryBudget(clock);
    let allowed = 0;
    while (budget.tryWithdraw()) allowed++;
    assert.equal(allowed, 100, 'the 10/s floor over a 10 s window');
    for (let i = 0; i < 1000; i++) budget.deposit();
    while (budget.tryWithdraw()) allowed++;
    assert.equal(allowed, 300);
    assert.equal(budget.snapshot().refused, 2);
    clock.advance(10_001);
    assert.ok(budget.tryWithdraw(), 'the window slid: the floor is back');
  });

  test('token bucket: a burst, then the rate', () => {
    const clock = manualClock();
    const bucket = new TokenBucket(clock, 10, 5);
    for (let i = 0; i < 5; i++) assert.ok(bucket.tryTake());
    assert.equal(bucket.tryTake(), false);
    clock.advance(100);
    assert.ok(bucket.tryTake());
    assert.equal(bucket.tryTake(), false);
    clock.advance(10_000);
    assert.equal(bucket.available, 5, 'never above the burst');
    assert.equal(bucket.dropped, 2);
    assert.equal(bucket.allowed, 6);
  });

  test('property: a token bucket never lets through more than burst + rate × time', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 300 }),
        (rate, burst, waits) => {
          const clock = manualClock();
          const bucket = new TokenBucket(clock, rate, burst);
          let elapsed = 0;
          for (const wait of waits) {
            clock.advance(wait);
            elapsed += wait;
            bucket.tryTake();
            assert.ok(bucket.allowed <= burst + (rate * elapsed) / 1000 + 1e-9);
          }
        },
      ),
    );
  });

  test('concurrency limit refuses the one too many and counts it', () => {
    const limit = new ConcurrencyLimit(2);
    assert.ok(limit.tryAcquire());
    assert.ok(limit.tryAcquire());
    assert.equal(limit.tryAcquire(), false);
    limit.release();
    assert.ok(limit.tryAcquire());
    assert.equal(limit.rejected, 1);
  });
});

describe('lb: retries', () => {
  function harness(budgetConfig = {}) {
    const clock = manualClock();
    const slept: number[] = [];
    const budget = new RetryBudget(clock, budgetConfig);
    const breaker = new CircuitBreaker(clock);
    const retrying = new Retrying({
      budget,
      breaker,
      clock,
      random: seededRandom(5),
      sleep: async (ms) => {
        slept.push(ms);
        clock.advance(ms);
      },
      retryable: (error) => !isRdbnetError(error, ErrorCode.Forbidden),
      peerFailure: (error) => !isRdbnetError(error, ErrorCode.Forbidden),
    });
    return { clock, slept, budget, breaker, retrying };
  }

  test('exponential backoff with full jitter: waits below 25 then 50 ms, three attempts in all', async () => {
    const { slept, retrying } = harness();
    let attempts = 0;
    await assert.rejects(
      retrying.execute(async () => {
        attempts++;
        throw new RdbnetError(ErrorCode.NodeUnreachable, 'down');
      }),
      (error) => isRdbnetError(error, ErrorCode.NodeUnreachable),
    );
    assert.equal(attempts, 3);
    assert.equal(slept.length, 2);
    assert.ok(slept[0]! >= 0 && slept[0]! < 25, `${slept[0]}`);
    assert.ok(slept[1]! >= 0 && slept[1]! < 50, `${slept[1]}`);
    const value = await retrying.execute(async (attempt) => {
      if (attempt === 0) throw new RdbnetError(ErrorCode.ConnectionClosed, 'lost');
      return 'ok';
    });
    assert.equal(value, 'ok');
  });

  test('no retry for a refusal; an empty budget stops retrying; an open breaker fails fast', async () => {
    const { budget, breaker, retrying } = harness({ retriesPerSecondMin: 0 });
    let attempts = 0;
    await assert.rejects(
      retrying.execute(async () => {
        attempts++;
        throw new RdbnetError(ErrorCode.Forbidden, 'no');
      }),
    );
    assert.equal(attempts, 1, 'a refusal is not retried');
    assert.equal(breaker.state, 'closed', 'and does not count against the peer');
    attempts = 0;
    await assert.rejects(
      retrying.execute(async () => {
        attempts++;
        throw new RdbnetError(ErrorCode.NodeUnreachable, 'down');
      }),
    );
    // Two requests made: 0.4 of a retry earned, none allowed.
    assert.equal(attempts, 1);
    assert.equal(budget.snapshot().refused, 1);
    for (let i = 0; i < 5; i++) {
      await retrying
        .execute(async () => {
          throw new RdbnetError(ErrorCode.NodeUnreachable, 'down');
        })
        .catch(() => {});
    }
    assert.equal(breaker.state, 'open');
    let called = false;
    await assert.rejects(
      retrying.execute(async () => {
        called = true;
      }),
      (error) => isRdbnetError(error, ErrorCode.CircuitOpen),
    );
    assert.equal(called, false);
  });

  test('a deadline stops the retries before it passes', async () => {
    const { clock, retrying } = harness();
    let attempts = 0;
    await assert.rejects(
      retrying.execute(async () => {
        attempts++;
        clock.advance(40);
        throw new RdbnetError(ErrorCode.NodeUnreachable, 'down');
      }, clock.nowMs() + 50),
    );
    assert.equal(attempts, 1);
  });
});

describe('lb: per-peer registry', () => {
  function registry(config = {}) {
    const clock = manualClock();
    const peers = new PeerResilience({
      clock,
      random: seededRandom(3),
      sleep: async (ms) => clock.advance(ms),
      config,
      peerFailure: (error) => !isRdbnetError(error, ErrorCode.Forbidden),
    });
    return { clock, peers };
  }

  test('counts requests, failures, retries and latency per peer; status lists every peer', async () => {
    const { clock, peers } = registry();
    await peers.call('127.0.0.1:7001', async () => {
      clock.advance(4);
      return 1;
    });
    let first = true;
    await peers.call('127.0.0.1:7002', async () => {
      clock.advance(2);
      if (first) {
        first = false;
        throw new RdbnetError(ErrorCode.ConnectionClosed, 'lost');
      }
    });
    const status = peers.status();
    assert.deepEqual(
      status.map((p) => p.address),
      ['127.0.0.1:7001', '127.0.0.1:7002'],
    );
    // 4 ms, decayed a little for the time the second peer's call took.
    assert.ok(Math.abs(status[0]!.latencyEwmaMs! - 4) < 0.05, `${status[0]!.latencyEwmaMs}`);
    assert.equal(status[0]!.breaker.state, 'closed');
    assert.equal(status[1]!.failures, 1);
    assert.equal(status[1]!.retryBudget.retries, 1);
    assert.equal(status[1]!.lastError, ErrorCode.ConnectionClosed);
    const counters = peers.counters();
    assert.equal(counters['lb.requests'], 2);
    assert.equal(counters['lb.retries'], 1);
  });

  test('rate limit and concurrency limit refuse with their codes and count the drops', async () => {
    const { peers } = registry({ rateLimit: { ratePerSecond: 1, burst: 2, concurrencyMax: 1 } });
    let release!: () => void;
    const held = peers.call('p', () => new Promise<void>((resolve) => (release = resolve)));
    await assert.rejects(
      peers.call('p', async () => {}),
      (error) => isRdbnetError(error, ErrorCode.InflightLimit),
    );
    await assert.rejects(
      peers.call('p', async () => {}),
      (error) => isRdbnetError(error, ErrorCode.RateLimited),
    );
    release();
    await held;
    const [status] = peers.status();
    assert.equal(status!.rateLimited, 1);
    assert.equal(status!.concurrencyRejected, 1);
  });

  test('a failing peer opens its breaker and is ejected; pick then avoids it', async () => {
    const { peers } = registry({ retry: { attemptsMax: 1 } });
    for (let i = 0; i < 5; i++) {
      await peers
        .call('bad', async () => {
          throw new RdbnetError(ErrorCode.NodeUnreachable, 'down');
        })
        .catch(() => {});
    }
    const bad = peers.status().find((p) => p.address === 'bad')!;
    assert.equal(bad.breaker.state, 'open');
    assert.equal(bad.ejected, true);
    assert.equal(bad.ejections, 1);
    for (let i = 0; i < 200; i++) assert.notEqual(peers.pick(['bad', 'good1', 'good2']), 'bad');
    assert.equal(peers.pick(['bad']), null);
    await assert.rejects(
      peers.call('bad', async () => {}),
      (error) => isRdbnetError(error, ErrorCode.CircuitOpen),
    );
  });

  test('observe() measures and counts, never refuses, and leaves the breaker to call()', async () => {
    const { peers } = registry();
    for (let i = 0; i < 5; i++) {
      await peers
        .observe('gossip', async () => {
          throw new RdbnetError(ErrorCode.RequestTimeout, 'slow');
        })
        .catch(() => {});
    }
    const [status] = peers.status();
    assert.equal(status!.failures, 5);
    assert.equal(status!.requests, 5);
    assert.equal(status!.ejected, true, 'outlier detection saw the failures');
    assert.equal(status!.breaker.state, 'closed', 'the breaker learns from call() only');
    assert.equal(await peers.observe('gossip', async () => 'still sent'), 'still sent');
    assert.equal(await peers.call('gossip', async () => 'guarded'), 'guarded');
  });

  test('attemptsMax 1: a retryable failure is not tried again (a forwarded change); calls counts guarded requests', async () => {
    const { peers } = registry();
    let sent = 0;
    await assert.rejects(
      peers.call(
        'leader',
        async () => {
          sent++;
          throw new RdbnetError(ErrorCode.ConnectionClosed, 'lost');
        },
        undefined,
        { attemptsMax: 1 },
      ),
      (error) => isRdbnetError(error, ErrorCode.ConnectionClosed),
    );
    assert.equal(sent, 1);
    // Without the override the configuration's three attempts; never more than it allows.
    sent = 0;
    await peers
      .call('leader', async () => {
        sent++;
        throw new RdbnetError(ErrorCode.ConnectionClosed, 'lost');
      })
      .catch(() => {});
    assert.equal(sent, 3);
    sent = 0;
    await peers
      .call(
        'other',
        async () => {
          sent++;
          throw new RdbnetError(ErrorCode.ConnectionClosed, 'lost');
        },
        undefined,
        { attemptsMax: 50 },
      )
      .catch(() => {});
    assert.equal(sent, 3);
    await peers.observe('leader', async () => {});
    const [status] = peers.status();
    assert.equal(status!.address, 'leader');
    assert.equal(status!.requests, 3);
    assert.equal(status!.calls, 2);
    assert.equal(status!.retryBudget.retries, 2);
    assert.equal(peers.available('leader'), true, 'four failures in a row: still closed');
    await peers
      .call('leader', async () => {
        throw new RdbnetError(ErrorCode.NodeUnreachable, 'down');
      })
      .catch(() => {});
    assert.equal(peers.available('leader'), false, 'the fifth opened the breaker');
    assert.equal(peers.available('never-seen'), true);
  });

  test('bounded: beyond peersMax the least recently used idle peer is evicted and counted', async () => {
    const { clock, peers } = registry({ peersMax: 3 });
    for (const address of ['a', 'b', 'c', 'd']) {
      clock.advance(1);
      await peers.call(address, async () => {});
    }
    assert.deepEqual(
      peers.status().map((p) => p.address),
      ['b', 'c', 'd'],
    );
    assert.equal(peers.counters()['lb.peers.evicted'], 1);
  });
});
