/**
 * provider=consul against the EMULATED Consul agent (test/helpers/emulated-consul.ts; Consul is
 * not in Debian): three registrations from three processes turn passing and are seen by a
 * blocking-query watch; a registrant killed -9 stops being discovered once its TTL check turns
 * critical, and the agent reaps it after DeregisterCriticalServiceAfter; a graceful stop
 * deregisters at once; an agent that forgot a service gets it registered again at the next
 * TTL pass; tag, datacenter and ACL token (key and CONSUL_HTTP_TOKEN / CONSUL_HTTP_ADDR)
 * are honoured; an agent nobody listens on is RDB_DISCOVERY_UNREACHABLE naming it. Loopback
 * only; every wait bounded; every process killed in teardown.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type DiscoveredNode,
  type DiscoveryProvider,
  openProvider,
} from '../../src/core/discovery/index.ts';
import { isRdbnetError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';
import { EmulatedConsul } from '../helpers/emulated-consul.ts';
import { freePort } from '../helpers/etcd-server.ts';
import { poller } from '../helpers/processes.ts';
import { killAllRegistrants, startRegistrant } from '../helpers/registrants.ts';

const until = poller(50);
const logs: string[] = [];

function open(spec: string, env: Record<string, string> = {}): DiscoveryProvider {
  return openProvider(spec, {
    env,
    clock: systemClock,
    log: (level, message) => logs.push(`${level}: ${message}`),
  }).provider;
}

function ids(nodes: DiscoveredNode[]): string[] {
  return nodes.map((node) => node.id ?? '?').sort();
}

describe('provider=consul against the emulated Consul agent', () => {
  // Reaping is sped up (Consul: at least 1 min, every 30 s) so the test need not wait minutes.
  const consul = new EmulatedConsul({ deregisterMinimumMs: 0, reapIntervalMs: 200 });

  before(async () => {
    await consul.start();
  });

  after(async () => {
    await killAllRegistrants();
    await consul.stop();
  });

  test('three registrations are seen by a blocking-query watch; kill -9 turns critical and is reaped; a stop deregisters at once', async () => {
    const spec = `provider=consul address=${consul.address} service=db ttl=2s deregister_after=3s`;
    const watcher = open(spec);
    const seen: DiscoveredNode[][] = [];
    const stopWatch = new AbortController();
    const watching = watcher.watch!((nodes) => seen.push(nodes), stopWatch.signal);
    try {
      await until('the watch reports no instance', async () =>
        seen.length > 0 ? true : undefined,
      );
      assert.deepEqual(seen[0], []);
      const c1 = await startRegistrant(spec, 'c1', '127.0.0.1:7501');
      const c2 = await startRegistrant(spec, 'c2', '127.0.0.1:7502');
      const c3 = await startRegistrant(spec, 'c3', '[::1]:7503');
      await until('the watch sees c1, c2 and c3 passing', async () =>
        ids(seen.at(-1)!).join() === 'c1,c2,c3' ? true : undefined,
      );
      const found = await watcher.discover(AbortSignal.timeout(10_000));
      assert.deepEqual(
        found.map(({ id, address, source }) => ({ id, address, source })),
        [
          { id: 'c1', address: '127.0.0.1:7501', source: 'consul:db' },
          { id: 'c2', address: '127.0.0.1:7502', source: 'consul:db' },
          { id: 'c3', address: '[::1]:7503', source: 'consul:db' },
        ],
      );
      assert.equal(found[0]!.meta['role'], 'test');
      assert.equal(found[0]!.meta['datacenter'], 'dc1');

      // What was registered: a TTL check with DeregisterCriticalServiceAfter, as documented.
      const registration = consul.requests.find(
        (r) => r.path === '/v1/agent/service/register' && (r.body as { ID?: string }).ID === 'c1',
      );
      assert.deepEqual(registration?.body, {
        ID: 'c1',
        Name: 'db',
        Address: '127.0.0.1',
        Port: 7501,
        Tags: [],
        Meta: { role: 'test' },
        Check: {
          CheckID: 'service:c1',
          Name: 'rdbnet node c1 TTL',
          TTL: '2s',
          DeregisterCriticalServiceAfter: '3s',
        },
      });
      // The watch waits in blocking queries rather than polling.
      assert.ok(
        consul.requests.some(
          (r) =>
            r.path === '/v1/health/service/db' &&
            r.query.get('index') !== null &&
            r.query.get('wait') === '60s',
        ),
      );

      // kill -9: its check is no longer passed, turns critical after the TTL, drops out of
      // the passing list, and the agent reaps the service after deregister_after.
      c2.child.kill('SIGKILL');
      await c2.exited();
      await until(
        'c2 drops out once its TTL check is critical',
        async () => (ids(seen.at(-1)!).join() === 'c1,c3' ? true : undefined),
        20_000,
      );
      assert.equal(consul.catalog().find((s) => s.id === 'c2')?.status, 'critical');
      await until(
        'the agent reaps c2',
        async () => (consul.catalog().some((s) => s.id === 'c2') ? undefined : true),
        20_000,
      );

      // A graceful stop deregisters before the process says so.
      c3.child.kill('SIGTERM');
      await until('c3 deregistered', async () =>
        c3.stdout().includes('deregistered') ? true : undefined,
      );
      assert.ok(!consul.catalog().some((s) => s.id === 'c3'));
      await until('the watch sees c3 leave', async () =>
        ids(seen.at(-1)!).join() === 'c1' ? true : undefined,
      );
      assert.equal(consul.catalog().find((s) => s.id === 'c1')?.status, 'passing');
      assert.ok(c1.child.exitCode === null);
    } finally {
      stopWatch.abort();
      await watching;
      await watcher.close?.();
    }
  });

  test('an agent that forgot a service gets it registered again at the next TTL pass', async () => {
    const spec = `provider=consul address=${consul.address} service=again ttl=3s`;
    await startRegistrant(spec, 'a1', '127.0.0.1:7511');
    consul.forget('a1');
    assert.ok(!consul.catalog().some((s) => s.id === 'a1'));
    await until(
      'a1 registered again',
      async () =>
        consul.catalog().find((s) => s.id === 'a1')?.status === 'passing' ? true : undefined,
      15_000,
    );
  });

  test('tag= and dc= select; another datacenter is RDB_DISCOVERY_FAILED', async () => {
    await startRegistrant(
      `provider=consul address=${consul.address} service=tagged tag=blue`,
      'b1',
      '127.0.0.1:7521',
    );
    await startRegistrant(
      `provider=consul address=${consul.address} service=tagged tag=green`,
      'g1',
      '127.0.0.1:7522',
    );
    const all = open(`provider=consul address=${consul.address} service=tagged`);
    const blue = open(
      `provider=consul address=${consul.address} service=tagged tag=blue datacenter=dc1`,
    );
    const elsewhere = open(`provider=consul address=${consul.address} service=tagged dc=dc9`);
    try {
      assert.deepEqual(ids(await all.discover(AbortSignal.timeout(10_000))), ['b1', 'g1']);
      const blues = await blue.discover(AbortSignal.timeout(10_000));
      assert.deepEqual(ids(blues), ['b1']);
      assert.equal(blues[0]!.meta['tags'], 'blue');
      await assert.rejects(elsewhere.discover(AbortSignal.timeout(10_000)), (error) => {
        assert.ok(isRdbnetError(error, 'RDB_DISCOVERY_FAILED'), String(error));
        assert.match(error.message, /HTTP 500: No path to datacenter/);
        return true;
      });
    } finally {
      await Promise.all([all.close?.(), blue.close?.(), elsewhere.close?.()]);
    }
  });

  test('close() ends a running watch and refuses new registrations', async () => {
    const provider = open(`provider=consul address=${consul.address} service=closing`);
    const seen: DiscoveredNode[][] = [];
    const watching = provider.watch!((nodes) => seen.push(nodes), new AbortController().signal);
    await until('the watch reports', async () => (seen.length > 0 ? true : undefined));
    await provider.close!();
    await watching;
    await assert.rejects(
      provider.register!(
        { id: 'late', address: '127.0.0.1:7400', meta: {} },
        AbortSignal.timeout(5_000),
      ),
      (error) => isRdbnetError(error, 'RDB_DISCOVERY_FAILED'),
    );
  });

  test('an unreachable agent is RDB_DISCOVERY_UNREACHABLE naming it', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const provider = open(`provider=consul address=${dead} timeout=2s`);
    try {
      await assert.rejects(provider.discover(AbortSignal.timeout(10_000)), (error) => {
        assert.ok(isRdbnetError(error, 'RDB_DISCOVERY_UNREACHABLE'), String(error));
        assert.equal(
          error.message,
          `provider=consul: the agent at ${dead} did not answer (connection refused)`,
        );
        return true;
      });
      await assert.rejects(
        provider.register!(
          { id: 'x', address: '127.0.0.1:7400', meta: {} },
          AbortSignal.timeout(10_000),
        ),
        (error) => isRdbnetError(error, 'RDB_DISCOVERY_UNREACHABLE'),
      );
      await assert.rejects(
        provider.watch!(() => {}, new AbortController().signal),
        (error) => isRdbnetError(error, 'RDB_DISCOVERY_UNREACHABLE'),
      );
    } finally {
      await provider.close?.();
    }
  });
});

describe('provider=consul with ACLs on the emulated agent', () => {
  const consul = new EmulatedConsul({ token: 'rdbnet-test-token' });

  before(async () => {
    await consul.start();
  });

  after(async () => {
    await consul.stop();
  });

  test('no token is refused (403, RDB_DISCOVERY_FAILED); token= and CONSUL_HTTP_TOKEN with CONSUL_HTTP_ADDR are sent', async () => {
    const anonymous = open(`provider=consul address=${consul.address}`);
    const keyed = open(`provider=consul address=${consul.address} token=rdbnet-test-token`);
    const fromEnv = open('provider=consul', {
      CONSUL_HTTP_ADDR: `http://${consul.address}`,
      CONSUL_HTTP_TOKEN: 'rdbnet-test-token',
    });
    try {
      await assert.rejects(anonymous.discover(AbortSignal.timeout(10_000)), (error) => {
        assert.ok(isRdbnetError(error, 'RDB_DISCOVERY_FAILED'), String(error));
        assert.match(error.message, /HTTP 403: ACL not found/);
        assert.match(error.hint ?? '', /token=/);
        return true;
      });
      const registration = await keyed.register!(
        { id: 'k1', address: '127.0.0.1:7531', meta: {} },
        AbortSignal.timeout(10_000),
      );
      assert.deepEqual(ids(await fromEnv.discover(AbortSignal.timeout(10_000))), ['k1']);
      await registration.close();
      await registration.close(); // idempotent
      assert.deepEqual(await fromEnv.discover(AbortSignal.timeout(10_000)), []);
      assert.ok(
        consul.requests.every((r) => r.token === undefined || r.token === 'rdbnet-test-token'),
      );
    } finally {
      await Promise.all([anonymous.close?.(), keyed.close?.(), fromEnv.close?.()]);
    }
  });
});

describe('provider=consul across an emulated agent restart', () => {
  let consul = new EmulatedConsul();

  after(async () => {
    await killAllRegistrants();
    await consul.stop();
  });

  test('the agent restarts with no state: the watch reconnects with backoff and the registrant registers again', async () => {
    await consul.start();
    const address = consul.address;
    const spec = `provider=consul address=${address} service=restart ttl=2s timeout=1s`;
    await startRegistrant(spec, 'r1', '127.0.0.1:7541');
    const watcher = open(spec);
    const seen: DiscoveredNode[][] = [];
    const stopWatch = new AbortController();
    const logsBefore = logs.length;
    const watching = watcher.watch!((nodes) => seen.push(nodes), stopWatch.signal);
    try {
      await until('the watch sees r1', async () =>
        ids(seen.at(-1) ?? []).join() === 'r1' ? true : undefined,
      );
      await consul.stop();
      await until(
        'the watch notices the agent is gone',
        async () =>
          logs
            .slice(logsBefore)
            .some((line) => line.includes('provider=consul: watch query failed'))
            ? true
            : undefined,
        20_000,
      );
      consul = new EmulatedConsul();
      await consul.start(Number(address.split(':')[1]));
      await until(
        'r1 registered again with the new agent',
        async () =>
          consul.catalog().find((s) => s.id === 'r1')?.status === 'passing' ? true : undefined,
        20_000,
      );
      // Something only the new agent knows, so only a reconnected watch can report it.
      const other = open(spec);
      const r2 = await other.register!(
        { id: 'r2', address: '127.0.0.1:7542', meta: {} },
        AbortSignal.timeout(10_000),
      );
      await until(
        'the watch, reconnected, reports r1 and r2',
        async () => (ids(seen.at(-1)!).join() === 'r1,r2' ? true : undefined),
        30_000,
      );
      await r2.close();
      await other.close?.();
    } finally {
      stopWatch.abort();
      await watching;
      await watcher.close?.();
    }
  });
});
