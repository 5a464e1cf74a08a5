/**
 * The discovery plumbing a node runs: --retry-join's bounded, jittered lookups (on the
 * simulator's clock), --register's registration and deregistration, the entries checks of the
 * node config, and the merge/diff `discover --watch` prints. The providers here are test
 * doubles of the DiscoveryProvider seam, built in the test — not features: the real
 * providers are tested against real servers in test/integration/discovery-*.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type NodeConfigInputs,
  resolveNodeConfigWithSources,
} from '../../src/core/config/node-config.ts';
import type {
  DiscoveredNode,
  DiscoveryProvider,
  SelfRegistration,
} from '../../src/core/discovery/provider.ts';
import {
  type DiscoverySource,
  diffNodes,
  mergeNodes,
  openSources,
} from '../../src/core/discovery/resolve.ts';
import {
  RETRY_JOIN_CAP_MS,
  RETRY_JOIN_FLOOR_MS,
  RetryJoin,
} from '../../src/core/discovery/retry-join.ts';
import {
  checkRegistrable,
  REGISTER_ATTEMPTS_MAX,
  SelfRegistrations,
} from '../../src/core/discovery/self-registration.ts';
import { isRdbnetError, RdbnetError } from '../../src/core/errors.ts';
import { type Logger, seededRandom, systemClock } from '../../src/core/runtime/index.ts';
import { EventQueue } from '../../src/core/sim/index.ts';

function recordingLog() {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      lines.push({ level, msg, fields });
    };
  const log: Logger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
  return { log, lines };
}

function source(instance: DiscoveryProvider): DiscoverySource {
  return { provider: instance.name, text: `provider=${instance.name}`, instance };
}

const node = (address: string): DiscoveredNode => ({ address, source: 'double', meta: {} });

test('retry-join: jittered backoff between floor and cap, never spinning, the reason logged each time', async () => {
  const clock = new EventQueue();
  const { log, lines } = recordingLog();
  const lookupsAtMs: number[] = [];
  const failing: DiscoveryProvider = {
    name: 'double',
    discover: async () => {
      lookupsAtMs.push(clock.nowMs());
      throw new RdbnetError(
        'RDB_DISCOVERY_UNREACHABLE',
        'provider=double: 127.0.0.1:1 did not answer',
      );
    },
  };
  const retry = new RetryJoin({
    sources: [source(failing)],
    clock,
    random: seededRandom(7),
    log,
    self: '127.0.0.1:7000',
    isMember: () => false,
    onSeeds: () => assert.fail('nothing was found'),
  });
  retry.start();
  await clock.runForAsync(10 * 60_000);
  const gaps = lookupsAtMs.slice(1).map((at, i) => at - lookupsAtMs[i]!);
  assert.ok(
    gaps.every((gap) => gap >= RETRY_JOIN_FLOOR_MS && gap <= RETRY_JOIN_CAP_MS),
    String(gaps),
  );
  // Ten minutes of an unreachable source: a few dozen lookups, not a busy loop.
  assert.ok(lookupsAtMs.length >= 20 && lookupsAtMs.length <= 200, `${lookupsAtMs.length} lookups`);
  const attempts = lines.filter((line) => line.msg === 'retry-join: lookup failed');
  assert.equal(attempts.length, lookupsAtMs.length, 'every attempt logged');
  assert.deepEqual(
    (attempts[0]!.fields['failures'] as { code: string }[])[0]!.code,
    'RDB_DISCOVERY_UNREACHABLE',
  );
  assert.equal(attempts[0]!.fields['attempt'], 1);
  await retry.stop();
});

test('retry-join: found seeds (less itself) go to the cluster once per change; lookups stop once a member', async () => {
  const clock = new EventQueue();
  const { log } = recordingLog();
  let member = false;
  let lookups = 0;
  const answers = [
    [],
    ['127.0.0.1:7001', '127.0.0.1:7000'],
    ['127.0.0.1:7000', '127.0.0.1:7001'],
    ['127.0.0.1:7002'],
  ];
  const provider: DiscoveryProvider = {
    name: 'double',
    discover: async () => (answers[Math.min(lookups++, answers.length - 1)] ?? []).map(node),
  };
  const seeds: string[][] = [];
  const retry = new RetryJoin({
    sources: [source(provider)],
    clock,
    random: seededRandom(1),
    log,
    self: '127.0.0.1:7000',
    isMember: () => member,
    onSeeds: (addresses) => {
      seeds.push(addresses);
    },
  });
  retry.start();
  await clock.runForAsync(120_000, () => lookups >= 4);
  assert.deepEqual(
    seeds,
    [['127.0.0.1:7001'], ['127.0.0.1:7002']],
    'the same set twice is handed over once',
  );
  member = true;
  await clock.runForAsync(120_000);
  const after = lookups;
  await clock.runForAsync(600_000);
  assert.equal(lookups, after, 'no lookup once a member');
  await retry.stop();
});

test('--register: registers id, address and meta; a failing one retried a bounded number of times; close deregisters', async () => {
  const clock = new EventQueue();
  const { log, lines } = recordingLog();
  const registered: SelfRegistration[] = [];
  let closed = 0;
  const registering: DiscoveryProvider = {
    name: 'double',
    discover: async () => [],
    register: async (self) => {
      registered.push(self);
      return { close: async () => void closed++ };
    },
  };
  let failedTries = 0;
  const refusing: DiscoveryProvider = {
    name: 'refusing',
    discover: async () => [],
    register: async () => {
      failedTries++;
      throw new RdbnetError('RDB_DISCOVERY_UNREACHABLE', 'provider=refusing: down');
    },
  };
  const registrations = new SelfRegistrations({
    sources: [source(registering), source(refusing)],
    clock,
    random: seededRandom(2),
    log,
  });
  const self = { id: 'n1', address: '127.0.0.1:7001', meta: { cluster: 'c1' } };
  registrations.start(self);
  await clock.runForAsync(120_000);
  assert.deepEqual(registered, [self]);
  assert.equal(failedTries, REGISTER_ATTEMPTS_MAX);
  assert.equal(
    lines.filter((line) => line.msg === 'registration failed; retrying').length,
    REGISTER_ATTEMPTS_MAX - 1,
  );
  assert.equal(lines.filter((line) => line.msg === 'registration failed; giving up').length, 1);
  const closing = registrations.close();
  await clock.runForAsync(5000);
  await closing;
  assert.equal(closed, 1);
  await registrations.close();
  assert.equal(closed, 1, 'idempotent');
});

test('--register with a provider that cannot register is refused before anything runs', () => {
  const sources = openSources(['provider=static addrs=127.0.0.1:7001'], {
    env: {},
    clock: systemClock,
    log: () => {},
  });
  assert.throws(
    () => checkRegistrable(sources),
    (error: unknown) =>
      isRdbnetError(error, 'RDB_DISCOVERY_SYNTAX') &&
      /provider=static cannot register/.test(error.message),
  );
});

test('node config: retryJoin from flags, env (lines or JSON) and file; bad specs refused naming the field', () => {
  const spec = 'provider=dns name=_rdbnet._tcp.db.internal server=127.0.0.1:5353';
  const fromFlags = resolveNodeConfigWithSources({
    flags: { retryJoin: [spec, '127.0.0.1:7001'] },
    env: {},
  });
  assert.deepEqual(fromFlags.config.retryJoin, [spec, '127.0.0.1:7001']);
  assert.equal(fromFlags.sources['retryJoin'], 'flag');
  const fromEnv = resolveNodeConfigWithSources({
    env: { RDBNET_RETRY_JOIN: `${spec}\n127.0.0.1:7001\n` },
  });
  assert.deepEqual(fromEnv.config.retryJoin, [spec, '127.0.0.1:7001']);
  const fromJsonEnv = resolveNodeConfigWithSources({
    env: { RDBNET_RETRY_JOIN: JSON.stringify([spec]) },
  });
  assert.deepEqual(fromJsonEnv.config.retryJoin, [spec]);
  const fromFile = resolveNodeConfigWithSources({
    env: {},
    file: { retryJoin: [spec], clusterId: 'abc-1' },
  });
  assert.deepEqual(fromFile.config.retryJoin, [spec]);
  assert.equal(fromFile.config.clusterId, 'abc-1');
  assert.deepEqual(resolveNodeConfigWithSources({ env: {} }).config.retryJoin, []);

  const refusals: [NodeConfigInputs, RegExp][] = [
    [
      { flags: { retryJoin: ['provider=dns nmae=x'] } },
      /invalid retryJoin from flag --retry-join: provider=dns: unknown key "nmae"/,
    ],
    [{ flags: { retryJoin: ['provider=nosuch'] } }, /unknown discovery provider "nosuch"/],
    [{ flags: { retryJoin: ['not an address'] } }, /invalid retryJoin/],
    [
      { flags: { register: ['127.0.0.1:7001'] } },
      /invalid register from flag --register: "127.0.0.1:7001" is not a discovery spec/,
    ],
    [{ flags: { clusterId: 'a b' } }, /invalid clusterId/],
  ];
  for (const [inputs, message] of refusals) {
    assert.throws(
      () => resolveNodeConfigWithSources({ env: {}, ...inputs }),
      (error: unknown) => isRdbnetError(error, 'RDB_CONFIG_INVALID') && message.test(error.message),
      message.source,
    );
  }
});

test('merge and diff: de-duplicated by address, removals then additions', () => {
  const a = node('127.0.0.1:7001');
  const b = node('127.0.0.1:7002');
  const c = node('127.0.0.1:7003');
  assert.deepEqual(
    mergeNodes([
      [a, b],
      [b, c],
    ]),
    [a, b, c],
  );
  assert.deepEqual(diffNodes([a, b], [b, c]), [
    { event: 'removed', node: a },
    { event: 'added', node: c },
  ]);
  assert.deepEqual(diffNodes([a], [a]), []);
});
