/**
 * Delivery options and bounds on the simulated network (test/helpers/delivery-sim.ts): bad
 * input refused before sending, caller-given idempotency keys, the bounded attempts
 * (RDB_DELIVERY_FAILED), the per-peer unacknowledged window (backpressure), and the controls
 * that show the counting of the 100,000-message tests can see a failure: the same faults lose
 * at-most-once messages and run at-least-once handlers twice.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Delivery } from '../../src/core/dataplane/delivery.ts';
import { dataPlaneLimits } from '../../src/core/dataplane/limits.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  addressOf,
  CUTS,
  DeliverySim,
  LIMITS,
  RECEIVER,
  SENDER,
  TOPIC,
} from '../helpers/delivery-sim.ts';

/** Enough for the controls to see losses and repeats at these fault rates. */
const CONTROL_MESSAGES = 10_000;

describe('the counting sees a broken guarantee', () => {
  test('controls: the same faults lose at-most-once messages and duplicate at-least-once handlers', async () => {
    const lossy = new DeliverySim(404);
    const atMostOnce = await lossy.sendAll(
      'at-most-once',
      'send',
      { cuts: CUTS },
      CONTROL_MESSAGES,
    );
    assert.ok((atMostOnce.get('ok') ?? 0) < CONTROL_MESSAGES, 'at-most-once calls failed');
    assert.ok(
      lossy.count((runs, number) => runs === 0 && number < CONTROL_MESSAGES) > 0,
      'at-most-once messages were lost',
    );
    const repeated = new DeliverySim(505);
    await repeated.sendAll('at-least-once', 'request', { cuts: CUTS }, CONTROL_MESSAGES);
    assert.equal(
      repeated.count((runs, number) => runs === 0 && number < CONTROL_MESSAGES),
      0,
      'at-least-once lost none',
    );
    assert.ok(repeated.count((runs) => runs > 1) > 0, 'at-least-once ran some handlers twice');
  });
});

describe('delivery options and bounds', () => {
  test('bad delivery input is refused before anything is sent', async () => {
    const sim = new DeliverySim(606);
    const plane = sim.plane(SENDER);
    await assert.rejects(
      plane.send(RECEIVER, TOPIC, '1', { delivery: 'twice' as Delivery }),
      (error: unknown) => isRdbnetError(error, ErrorCode.Usage),
    );
    await assert.rejects(
      plane.send(RECEIVER, TOPIC, '1', { delivery: 'at-least-once', idempotencyKey: 'k' }),
      (error: unknown) => isRdbnetError(error, ErrorCode.Usage),
    );
    await assert.rejects(
      plane.send(RECEIVER, TOPIC, '1', {
        delivery: 'exactly-once',
        idempotencyKey: 'k'.repeat(129),
      }),
      (error: unknown) => isRdbnetError(error, ErrorCode.Usage),
    );
    assert.equal(sim.tcp.stats.sent, 0);
  });

  test('a caller-given idempotency key runs the handler once however often it is sent', async () => {
    const sim = new DeliverySim(707);
    sim.tcp.setFaults({ dropRate: 0, duplicateRate: 0 });
    const plane = sim.plane(SENDER);
    const sends = Array.from({ length: 5 }, () =>
      plane.request(RECEIVER, TOPIC, '42', {
        delivery: 'exactly-once',
        idempotencyKey: 'order-42',
      }),
    );
    await sim.queue.runForAsync(5000);
    const replies = await Promise.all(sends);
    assert.deepEqual(
      replies.map(({ reply }) => new TextDecoder().decode(reply)),
      Array(5).fill('ok 42'),
    );
    assert.equal(sim.runs[42], 1);
    assert.equal(sim.plane(RECEIVER).stats()['dataplane.dedup.suppressed'], 4);
  });

  test('an unreachable receiver: RDB_DELIVERY_FAILED after the bounded attempts, the window freed', async () => {
    const sim = new DeliverySim(808);
    sim.peers.detach(addressOf(RECEIVER));
    const plane = sim.plane(SENDER);
    const call = plane
      .send(RECEIVER, TOPIC, '1', { delivery: 'at-least-once', deadlineMs: 60_000 })
      .catch((error: unknown) => error);
    await sim.queue.runForAsync(61_000);
    const error = await call;
    assert.ok(isRdbnetError(error, ErrorCode.DeliveryFailed), String(error));
    assert.match((error as Error).message, /after 20 attempt\(s\)/);
    const stats = plane.stats();
    assert.equal(stats['dataplane.delivery.failed'], 1);
    assert.equal(stats['dataplane.delivery.retries'], 19);
    assert.equal(stats['dataplane.delivery.unacked'], 0);
  });

  test('a full unacknowledged window makes senders wait, then RDB_QUEUE_FULL (backpressure)', async () => {
    const sim = new DeliverySim(909);
    sim.tcp.setFaults({ dropRate: 1 });
    const plane = sim.plane(SENDER);
    const size = dataPlaneLimits(LIMITS).unackedPerPeerMax;
    const calls = Array.from({ length: size * 2 + 1 }, () =>
      plane.send(RECEIVER, TOPIC, '1', { delivery: 'at-least-once', deadlineMs: 2000 }).then(
        () => 'ok',
        (error: unknown) => (isRdbnetError(error) ? error.code : String(error)),
      ),
    );
    await sim.queue.runForAsync(10);
    const stats = plane.stats();
    assert.equal(stats['dataplane.delivery.unacked'], size);
    assert.equal(stats['dataplane.delivery.unacked_waiting'], size);
    await sim.queue.runForAsync(3000);
    const outcomes = await Promise.all(calls);
    assert.equal(
      outcomes.at(-1),
      ErrorCode.QueueFull,
      'one over window and waiters: refused at once',
    );
    assert.deepEqual(
      [...new Set(outcomes)].sort(),
      [ErrorCode.DeliveryFailed, ErrorCode.QueueFull].sort(),
    );
    const after = plane.stats();
    assert.equal(after['dataplane.delivery.unacked'], 0);
    assert.equal(after['dataplane.delivery.unacked_waiting'], 0);
  });
});
