import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { memberScore, PhiAccrualDetector, phiOf } from '../../src/core/health/index.ts';

describe('phi accrual detector', () => {
  test('phiOf: the logistic approximation at known points', () => {
    // At the mean the chance of a later heartbeat is one half: phi = log10(2).
    assert.ok(Math.abs(phiOf(1000, 1000, 100) - Math.log10(2)) < 1e-9);
    // One std early: P(later) ≈ 0.841, phi ≈ 0.075; one late: P ≈ 0.159, phi ≈ 0.80.
    assert.ok(Math.abs(phiOf(900, 1000, 100) - 0.075) < 0.005);
    assert.ok(Math.abs(phiOf(1100, 1000, 100) - 0.8) < 0.01);
    // Far past the mean it keeps growing and stays finite (no log of zero).
    const far = phiOf(1_000_000, 1000, 100);
    assert.ok(Number.isFinite(far) && far > 1e6);
    assert.equal(phiOf(-1e9, 1000, 100), 0);
  });

  test('no heartbeat yet: phi 0, available', () => {
    const d = new PhiAccrualDetector();
    assert.equal(d.phi(10_000), 0);
    assert.equal(d.isAvailable(10_000), true);
    assert.equal(d.lastHeartbeatAtMs, undefined);
  });

  test('regular heartbeats: phi low on time, crosses the threshold when they stop', () => {
    const d = new PhiAccrualDetector({ threshold: 8, minStdDeviationMs: 50 });
    for (let t = 0; t <= 20_000; t += 1000) d.heartbeat(t);
    assert.ok(d.phi(20_500) < 0.1, `phi half-way ${d.phi(20_500)}`);
    assert.ok(d.phi(21_000) < 1, `phi on time ${d.phi(21_000)}`);
    assert.ok(d.isAvailable(21_200));
    assert.ok(!d.isAvailable(23_000), `phi 2 s late ${d.phi(23_000)}`);
    // Monotonic in elapsed time.
    let previous = -1;
    for (let t = 20_000; t <= 25_000; t += 100) {
      const phi = d.phi(t);
      assert.ok(phi >= previous, `phi fell at ${t}`);
      previous = phi;
    }
    // The first crossing of 8 lies between 1.2 and 1.6 s late with a 50 ms std floor.
    let crossing = 20_000;
    while (d.isAvailable(crossing)) crossing += 10;
    assert.ok(crossing > 21_200 && crossing < 21_600, `crossed at ${crossing}`);
  });

  test('jittery heartbeats widen the distribution; the std floor bounds a perfect one', () => {
    const jittery = new PhiAccrualDetector({ minStdDeviationMs: 1 });
    const regular = new PhiAccrualDetector({ minStdDeviationMs: 1 });
    let t = 0;
    for (let i = 0; i < 50; i++) {
      t += i % 2 === 0 ? 600 : 1400;
      jittery.heartbeat(t);
      regular.heartbeat(i * 1000);
    }
    assert.ok(jittery.phi(t + 1500) < regular.phi(49_000 + 1500));
    const floored = new PhiAccrualDetector({ minStdDeviationMs: 500 });
    for (let i = 0; i < 50; i++) floored.heartbeat(i * 1000);
    assert.ok(floored.phi(49_000 + 1500) < regular.phi(49_000 + 1500));
  });

  test('acceptable pause shifts the curve by exactly the pause', () => {
    const plain = new PhiAccrualDetector({ minStdDeviationMs: 100 });
    const paused = new PhiAccrualDetector({
      minStdDeviationMs: 100,
      acceptableHeartbeatPauseMs: 3000,
    });
    for (let i = 0; i < 10; i++) {
      plain.heartbeat(i * 1000);
      paused.heartbeat(i * 1000);
    }
    assert.ok(Math.abs(plain.phi(9000 + 1200) - paused.phi(9000 + 4200)) < 1e-9);
  });

  test('the first heartbeat seeds the history with the estimate; the window forgets', () => {
    const d = new PhiAccrualDetector({ firstHeartbeatEstimateMs: 2000, windowSize: 10 });
    d.heartbeat(0);
    assert.equal(d.samples, 2);
    assert.equal(d.meanIntervalMs, 2000);
    assert.ok(d.phi(2000) < 0.5 && d.phi(6000) > 8);
    // 30 heartbeats 100 ms apart: the window of 10 holds only them, the seed is gone.
    for (let i = 1; i <= 30; i++) d.heartbeat(i * 100);
    assert.equal(d.samples, 10);
    assert.ok(Math.abs(d.meanIntervalMs - 100) < 1e-9, `mean ${d.meanIntervalMs}`);
    // Out-of-order heartbeats are ignored.
    d.heartbeat(5);
    assert.equal(d.lastHeartbeatAtMs, 3000);
  });

  test('invalid options are RDB_CONFIG_INVALID', () => {
    for (const bad of [{ threshold: 0 }, { windowSize: 1.5 }, { minStdDeviationMs: Number.NaN }]) {
      assert.throws(
        () => new PhiAccrualDetector(bad),
        (e: unknown) => isRdbnetError(e, ErrorCode.ConfigInvalid),
      );
    }
  });
});

describe('member score', () => {
  const base = { phi: 0, phiThreshold: 8, rttMs: 0.1, rttReferenceMs: 75, lossRatio: 0 };

  test('a healthy nearby member scores ~1; each factor pulls it down on its own', () => {
    assert.ok(memberScore(base) > 0.99);
    assert.equal(memberScore({ ...base, rttMs: undefined }), 1);
    assert.ok(Math.abs(memberScore({ ...base, rttMs: 75 }) - 0.5) < 0.01);
    assert.ok(Math.abs(memberScore({ ...base, phi: 4 }) - 0.5) < 0.01);
    assert.ok(Math.abs(memberScore({ ...base, lossRatio: 0.25 }) - 0.75) < 0.01);
    assert.equal(memberScore({ ...base, phi: 8 }), 0);
    assert.equal(memberScore({ ...base, phi: 50 }), 0);
    assert.equal(memberScore({ ...base, lossRatio: 2 }), 0);
    assert.equal(memberScore({ ...base, phi: Number.NaN }), 0);
  });
});
