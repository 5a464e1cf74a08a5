/**
 * The firewall core (src/core/security/firewall.ts) on a virtual clock: token buckets per
 * source (one source limited while another is served), the per-source connection cap, bans
 * (manual and after repeated handshake failures) that expire, and bounded per-source state.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, isRdbnetError, RdbnetError } from '../../src/core/errors.ts';
import { AuditLog } from '../../src/core/node/audit-log.ts';
import { NodeFirewall } from '../../src/core/node/firewall.ts';
import { Counters } from '../../src/core/runtime/index.ts';
import {
  FIREWALL_BANS_MAX,
  FIREWALL_BURST_SECONDS,
  FIREWALL_FAILURE_WINDOW_MS,
  FIREWALL_LIMITS_DEFAULT,
  FIREWALL_SOURCES_MAX,
  Firewall,
  type FirewallLimits,
} from '../../src/core/security/firewall.ts';
import { VirtualClock } from '../../src/core/sim/index.ts';

const limits: FirewallLimits = {
  ...FIREWALL_LIMITS_DEFAULT,
  connectionsPerSourceMax: 3,
  connectionsPerSecond: 5,
  messagesPerSecond: 100,
  banAfterFailures: 4,
  banMs: 10_000,
};

describe('firewall', () => {
  test('a flood from one source is limited to its burst and rate; another source is served', () => {
    const clock = new VirtualClock();
    const firewall = new Firewall({ ...limits, connectionsPerSourceMax: 1000 }, clock);
    let admitted = 0;
    for (let i = 0; i < 100; i++) {
      if (firewall.onConnect('169.254.2.2') === undefined) admitted++;
    }
    assert.equal(admitted, limits.connectionsPerSecond * FIREWALL_BURST_SECONDS);
    assert.equal(firewall.onConnect('169.254.1.2'), undefined);
    clock.setNow(1000); // one second refills connectionsPerSecond tokens
    admitted = 0;
    for (let i = 0; i < 100; i++) {
      if (firewall.onConnect('169.254.2.2') === undefined) admitted++;
    }
    assert.equal(admitted, limits.connectionsPerSecond);
    assert.equal(firewall.refusedBy.connectionRate, 100 - 10 + 100 - 5);
  });

  test('connections open at once per source are capped; a close frees a slot', () => {
    const firewall = new Firewall(limits, new VirtualClock());
    for (let i = 0; i < 3; i++) assert.equal(firewall.onConnect('169.254.2.2'), undefined);
    assert.equal(firewall.onConnect('169.254.2.2'), 'connectionsMax');
    firewall.onClose('169.254.2.2');
    assert.equal(firewall.onConnect('169.254.2.2'), undefined);
  });

  test('messages per source share one bucket across connections', () => {
    const clock = new VirtualClock();
    const firewall = new Firewall(limits, clock);
    const state = firewall.stateOf('169.254.2.2');
    let served = 0;
    for (let i = 0; i < 1000; i++) if (firewall.onMessage(state) === undefined) served++;
    assert.equal(served, limits.messagesPerSecond * FIREWALL_BURST_SECONDS);
    assert.equal(firewall.onMessage(firewall.stateOf('169.254.1.2')), undefined);
  });

  test('repeated handshake failures ban the source until the ban expires; unban lifts one', () => {
    const clock = new VirtualClock();
    const firewall = new Firewall(limits, clock);
    for (let i = 0; i < 3; i++) assert.equal(firewall.onHandshakeFailed('169.254.2.2'), undefined);
    const ban = firewall.onHandshakeFailed('169.254.2.2');
    assert.equal(ban?.reason, 'handshake-failures');
    assert.equal(firewall.onConnect('169.254.2.2'), 'banned');
    assert.equal(firewall.onDatagram('169.254.2.2'), 'banned');
    assert.equal(firewall.onConnect('169.254.1.2'), undefined);
    clock.setNow(limits.banMs - 1);
    assert.equal(firewall.onConnect('169.254.2.2'), 'banned');
    clock.setNow(limits.banMs);
    assert.equal(firewall.onConnect('169.254.2.2'), undefined);
    assert.deepEqual(firewall.activeBans(), []);
    // Failures spread wider than the window never add up to a ban.
    for (let i = 0; i < 10; i++) {
      clock.setNow(clock.nowMs() + FIREWALL_FAILURE_WINDOW_MS / 2);
      assert.equal(firewall.onHandshakeFailed('169.254.3.2'), undefined);
      clock.setNow(clock.nowMs() + FIREWALL_FAILURE_WINDOW_MS);
    }
    firewall.ban('169.254.4.2', 60_000, 'manual');
    assert.equal(firewall.onConnect('169.254.4.2'), 'banned');
    assert.equal(firewall.unban('169.254.4.2'), true);
    assert.equal(firewall.unban('169.254.4.2'), false);
    assert.equal(firewall.onConnect('169.254.4.2'), undefined);
  });

  test('per-source state and bans are bounded', () => {
    const clock = new VirtualClock();
    const firewall = new Firewall(limits, clock);
    for (let i = 0; i < FIREWALL_SOURCES_MAX + 500; i++) firewall.onConnect(`source-${i}`);
    assert.equal(firewall.tracked().length, FIREWALL_SOURCES_MAX);
    assert.equal(firewall.sourcesForgotten, 500);
    for (let i = 0; i < FIREWALL_BANS_MAX + 10; i++) firewall.ban(`ban-${i}`, 1000 + i, 'manual');
    const bans = firewall.activeBans();
    assert.equal(bans.length, FIREWALL_BANS_MAX);
    // The ones expiring soonest made room.
    assert.ok(!bans.some((ban) => ban.source === 'ban-0'));
    assert.ok(bans.some((ban) => ban.source === `ban-${FIREWALL_BANS_MAX + 9}`));
  });

  test('bad limits are RDB_CONFIG_INVALID naming the field', () => {
    assert.throws(
      () => new Firewall({ ...limits, messagesPerSecond: 0 }, new VirtualClock()),
      (error: unknown) =>
        isRdbnetError(error) && (error as { field?: string }).field === 'messagesPerSecond',
    );
  });
});

describe('the node firewall', () => {
  test('loopback sources are exempt; others limited and audited once per second per reason', () => {
    const clock = new VirtualClock();
    const counters = new Counters();
    const audit = new AuditLog({ clock, counters, sink: null });
    const firewall = new NodeFirewall({
      id: 'n1',
      limits: { ...limits, connectionsPerSourceMax: 1000 },
      clock,
      counters,
      audit,
    });
    for (let i = 0; i < 100; i++) {
      assert.equal(firewall.onAccept('127.0.0.1'), undefined);
      assert.equal(firewall.onAccept('::1'), undefined);
      assert.equal(firewall.onAccept('::ffff:127.0.0.9'), undefined);
    }
    let refused = 0;
    for (let i = 0; i < 100; i++) if (firewall.onAccept('169.254.2.2') !== undefined) refused++;
    assert.equal(refused, 100 - limits.connectionsPerSecond * FIREWALL_BURST_SECONDS);
    assert.equal(counters.get('firewall.refused.connectionRate'), refused);
    const records = audit.after(0, 'n1').records;
    assert.equal(records.length, 1);
    assert.equal(records[0]!.source, '169.254.2.2');
    assert.equal(records[0]!.rule, 'firewall');
    for (let i = 0; i < 10; i++) {
      firewall.onHandshakeFailed('127.0.0.1:4000', new RdbnetError(ErrorCode.TlsFailed, 'bad'));
    }
    assert.equal(firewall.firewall.activeBans().length, 0);
  });
});
