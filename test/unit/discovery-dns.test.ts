/**
 * The dns provider's pure parts: RFC 2782 ordering (priority, then weighted random order),
 * the bounded TTL cache, the key checks, and how answers and errors of a resolver become
 * nodes, cache entries and typed errors (a test double of node:dns's Resolver stands in for
 * the server here; test/integration/discovery-dns.test.ts asks a real dnsmasq).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProviderContext } from '../../src/core/discovery/provider.ts';
import {
  DnsProvider,
  type DnsResolver,
  dnsSettings,
  orderSrvRecords,
  SRV_CACHE_MS_MAX,
  type SrvRecord,
  TtlCache,
} from '../../src/core/discovery/providers/dns.ts';
import { isRdbnetError } from '../../src/core/errors.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { EventQueue } from '../../src/core/sim/index.ts';

const srv = (name: string, priority: number, weight: number): SrvRecord => ({
  name,
  port: 7400,
  priority,
  weight,
});

test('SRV order: lowest priority first; within one, RFC 2782 weighted draw', () => {
  const random = seededRandom(12);
  const records = [srv('c', 20, 100), srv('a', 10, 1), srv('b', 10, 3)];
  const trials = 20_000;
  let bFirst = 0;
  for (let i = 0; i < trials; i++) {
    const order = orderSrvRecords(records, random).map((record) => record.name);
    assert.equal(order[2], 'c', 'priority 20 always after priority 10');
    assert.deepEqual([...order.slice(0, 2)].sort(), ['a', 'b']);
    if (order[0] === 'b') bFirst++;
  }
  // RFC 2782's draw: a number uniform in 0..sum inclusive (0..4), the first record whose running
  // sum reaches it: a (running sum 1) takes 0 and 1, b (running sum 4) takes 2, 3, 4: 3/5.
  const share = bFirst / trials;
  assert.ok(share > 0.56 && share < 0.64, `b first in ${share} of orders`);
});

test('SRV order: weight 0 records still come out, rarely first when others have weight', () => {
  const random = seededRandom(3);
  let zeroFirst = 0;
  for (let i = 0; i < 5000; i++) {
    const order = orderSrvRecords([srv('zero', 10, 0), srv('heavy', 10, 50)], random);
    assert.equal(order.length, 2);
    if (order[0]!.name === 'zero') zeroFirst++;
  }
  assert.ok(zeroFirst > 0 && zeroFirst < 250, `weight 0 first ${zeroFirst} of 5000 times`);
  // All weights 0: uniform.
  const all = orderSrvRecords([srv('x', 1, 0), srv('y', 1, 0), srv('z', 1, 0)], random);
  assert.deepEqual(all.map((r) => r.name).sort(), ['x', 'y', 'z']);
});

test('TtlCache: entries expire on the injected clock; bounded, the oldest goes first', () => {
  const clock = new EventQueue();
  const cache = new TtlCache<number>(clock, 3);
  cache.set('a', 1, 1000);
  cache.set('zero', 9, 0);
  assert.equal(cache.get('zero'), undefined, 'a TTL of 0 is not cached');
  clock.runFor(999);
  assert.equal(cache.get('a'), 1);
  clock.runFor(1);
  assert.equal(cache.get('a'), undefined);
  for (const key of ['b', 'c', 'd', 'e']) cache.set(key, 0, 10_000);
  assert.equal(cache.size, 3);
  assert.equal(cache.get('b'), undefined, 'the oldest was dropped');
  assert.equal(cache.get('e'), 0);
});

test('key checks: a bad value names the provider and the key', () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ name: 'not a name' }, /provider=dns: name/],
    [{ name: 'x.db.internal', type: 'mx' }, /provider=dns: type must be one of srv, a, aaaa/],
    [{ name: 'x.db.internal', type: 'a' }, /provider=dns: port is required with type=a/],
    [
      { name: 'x.db.internal', type: 'a', port: '70000' },
      /provider=dns: port must be a port in 1..65535/,
    ],
    [{ name: 'x.db.internal', port: '7000' }, /provider=dns: port is for type=a/],
    [{ name: 'x.db.internal', server: 'dns.db.internal:53' }, /provider=dns: server/],
    [{ name: 'x.db.internal', timeout: '0s' }, /provider=dns: timeout/],
    [{ name: 'x.db.internal', timeout: '2 s' }, /provider=dns: timeout/],
  ];
  for (const [args, message] of bad) {
    assert.throws(
      () => dnsSettings(new Map(Object.entries(args))),
      (error: unknown) =>
        isRdbnetError(error, 'RDB_DISCOVERY_SYNTAX') && message.test(error.message),
      JSON.stringify(args),
    );
  }
  const settings = dnsSettings(
    new Map([
      ['name', '_rdbnet._tcp.db.internal.'],
      ['server', '127.0.0.1'],
      ['timeout', '500ms'],
    ]),
  );
  assert.deepEqual(settings, {
    name: '_rdbnet._tcp.db.internal',
    type: 'srv',
    server: '127.0.0.1:53',
    port: null,
    timeoutMs: 500,
  });
  assert.equal(
    dnsSettings(
      new Map([
        ['name', 'x'],
        ['server', '[::1]:5353'],
      ]),
    ).server,
    '[::1]:5353',
  );
});

/** node:dns's Resolver as the provider uses it, answering from tables and counting queries. */
function fakeResolver(answers: {
  srv?: Record<string, SrvRecord[]>;
  a?: Record<string, { address: string; ttl: number }[]>;
  error?: string;
}) {
  const queries: string[] = [];
  const fail = (code: string) => Promise.reject(Object.assign(new Error(code), { code }));
  const resolver: DnsResolver = {
    resolveSrv: (name) => {
      queries.push(`SRV ${name}`);
      if (answers.error !== undefined) return fail(answers.error);
      const found = answers.srv?.[name];
      return found === undefined ? fail('ENOTFOUND') : Promise.resolve(found);
    },
    resolve4: (name) => {
      queries.push(`A ${name}`);
      const found = answers.a?.[name];
      return found === undefined ? fail('ENODATA') : Promise.resolve(found);
    },
    resolve6: (name) => {
      queries.push(`AAAA ${name}`);
      return fail('ENODATA');
    },
    cancel: () => {},
  };
  return { resolver, queries };
}

function context(clock: EventQueue, logs: string[] = []): ProviderContext {
  return { env: {}, clock, log: (_level, message) => logs.push(message) };
}

test('SRV targets resolved through the same resolver; answers cached for their TTL, SRV at most SRV_CACHE_MS_MAX', async () => {
  const clock = new EventQueue();
  const { resolver, queries } = fakeResolver({
    srv: {
      '_rdbnet._tcp.db.internal': [srv('n1.db.internal', 10, 1), srv('n2.db.internal', 10, 1)],
    },
    a: {
      'n1.db.internal': [{ address: '127.0.0.11', ttl: 60 }],
      'n2.db.internal': [{ address: '127.0.0.12', ttl: 60 }],
    },
  });
  const provider = new DnsProvider(
    dnsSettings(
      new Map([
        ['name', '_rdbnet._tcp.db.internal'],
        ['server', '127.0.0.1:5353'],
      ]),
    ),
    context(clock),
    seededRandom(1),
    resolver,
  );
  const signal = new AbortController().signal;
  const first = await provider.discover(signal);
  assert.deepEqual(first.map((node) => node.address).sort(), [
    '127.0.0.11:7400',
    '127.0.0.12:7400',
  ]);
  assert.equal(first[0]!.source, 'dns:_rdbnet._tcp.db.internal');
  assert.equal(queries.length, 3);
  await provider.discover(signal);
  assert.equal(queries.length, 3, 'a second lookup within the TTL asks nothing');
  clock.runFor(SRV_CACHE_MS_MAX);
  await provider.discover(signal);
  assert.deepEqual(
    queries.slice(3),
    ['SRV _rdbnet._tcp.db.internal'],
    'SRV again, addresses still cached',
  );
  clock.runFor(60_000);
  await provider.discover(signal);
  assert.equal(
    queries.filter((query) => query.startsWith('A ')).length,
    4,
    'addresses again after 60 s',
  );
});

test('no records: RDB_DISCOVERY_FAILED naming name and server; a timeout: RDB_DISCOVERY_UNREACHABLE', async () => {
  const clock = new EventQueue();
  const settings = dnsSettings(
    new Map([
      ['name', '_none._tcp.db.internal'],
      ['server', '127.0.0.1:5353'],
    ]),
  );
  const none = new DnsProvider(
    settings,
    context(clock),
    seededRandom(1),
    fakeResolver({}).resolver,
  );
  await assert.rejects(
    none.discover(new AbortController().signal),
    (error: unknown) =>
      isRdbnetError(error, 'RDB_DISCOVERY_FAILED') &&
      error.message === 'provider=dns: no SRV records for _none._tcp.db.internal at 127.0.0.1:5353',
  );
  for (const code of ['ETIMEOUT', 'ECONNREFUSED', 'EREFUSED']) {
    const silent = new DnsProvider(
      settings,
      context(clock),
      seededRandom(1),
      fakeResolver({ error: code }).resolver,
    );
    await assert.rejects(
      silent.discover(new AbortController().signal),
      (error: unknown) =>
        isRdbnetError(error, 'RDB_DISCOVERY_UNREACHABLE') && error.message.includes(code),
      code,
    );
  }
  // A target without an address is left out (logged); none left at all is a failure.
  const logs: string[] = [];
  const orphan = new DnsProvider(
    dnsSettings(new Map([['name', '_x._tcp.db.internal']])),
    context(clock, logs),
    seededRandom(1),
    fakeResolver({ srv: { '_x._tcp.db.internal': [srv('gone.db.internal', 1, 1)] } }).resolver,
  );
  await assert.rejects(orphan.discover(new AbortController().signal), (error: unknown) =>
    isRdbnetError(error, 'RDB_DISCOVERY_FAILED'),
  );
  assert.deepEqual(logs, ['SRV target has no address']);
});
