/**
 * provider=etcd against a real etcd (Debian etcd-server) on loopback: three registrations from
 * three separate processes are seen by a watch and by `etcdctl get --prefix`; a registrant
 * killed -9 disappears once its lease expires (ttl=2s); one stopped gracefully is gone at once;
 * a lease revoked behind a registrant's back is noticed at the next keep-alive and the node is
 * registered again; endpoints fail over; an etcd nobody listens on is RDB_DISCOVERY_UNREACHABLE
 * naming it. Every wait is bounded; every process is killed in teardown.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type DiscoveredNode,
  type DiscoveryProvider,
  openProvider,
} from '../../src/core/discovery/index.ts';
import { isRdbnetError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';
import {
  createCertificateAuthority,
  issueClientCertificate,
  issueNodeCertificate,
} from '../../src/core/security/pki.ts';
import { type EtcdServer, etcdMissing, freePort, startEtcd } from '../helpers/etcd-server.ts';
import { poller, tempHome } from '../helpers/processes.ts';
import { killAllRegistrants, startRegistrant } from '../helpers/registrants.ts';

/** A lease of 2 s expires within a few seconds of etcd's 500 ms expiry sweep; generous bound. */
const LEASE_GONE_MS_MAX = 20_000;
const until = poller(100);
const missing = etcdMissing();

const logs: string[] = [];
function open(spec: string): DiscoveryProvider {
  return openProvider(spec, {
    env: {},
    clock: systemClock,
    log: (level, message) => logs.push(`${level}: ${message}`),
  }).provider;
}

function ids(nodes: DiscoveredNode[]): string[] {
  return nodes.map((node) => node.id ?? '?').sort();
}

/** The lease a key is attached to (64-bit: read from the text, JSON numbers would round it). */
async function leaseOf(etcd: EtcdServer, key: string): Promise<bigint> {
  const json = await etcd.etcdctl(['get', key, '-w', 'json']);
  const match = /"lease":(\d+)/.exec(json);
  assert.ok(match !== null, `no lease on ${key}: ${json}`);
  return BigInt(match[1]!);
}

describe('provider=etcd against a real etcd', { skip: missing }, () => {
  let etcd: EtcdServer;

  before(async () => {
    etcd = await startEtcd();
  });

  after(async () => {
    await killAllRegistrants();
    await etcd?.stop();
  });

  test('registrations from three processes: a watch and etcdctl see them, kill -9 expires, a stop deregisters at once', async () => {
    const spec = `provider=etcd endpoints=${etcd.endpoint} prefix=/rdbnet/t1 ttl=2s`;
    const watcher = open(spec);
    const seen: DiscoveredNode[][] = [];
    const stopWatch = new AbortController();
    const watching = watcher.watch!((nodes) => seen.push(nodes), stopWatch.signal);
    try {
      await until('the watch reports the empty prefix', async () =>
        seen.length > 0 ? true : undefined,
      );
      assert.deepEqual(seen[0], []);

      const n1 = await startRegistrant(spec, 'n1', '127.0.0.1:7401');
      const n2 = await startRegistrant(spec, 'n2', '127.0.0.1:7402');
      const n3 = await startRegistrant(spec, 'n3', '[::1]:7403');
      await until('the watch sees n1, n2 and n3', async () =>
        seen.some((nodes) => ids(nodes).join() === 'n1,n2,n3') ? true : undefined,
      );

      const found = await watcher.discover(AbortSignal.timeout(10_000));
      assert.deepEqual(
        found.map(({ id, address, source, meta }) => ({ id, address, source, meta })),
        [
          {
            id: 'n1',
            address: '127.0.0.1:7401',
            source: 'etcd:/rdbnet/t1/n1',
            meta: { role: 'test' },
          },
          {
            id: 'n2',
            address: '127.0.0.1:7402',
            source: 'etcd:/rdbnet/t1/n2',
            meta: { role: 'test' },
          },
          { id: 'n3', address: '[::1]:7403', source: 'etcd:/rdbnet/t1/n3', meta: { role: 'test' } },
        ],
      );

      // What an operator sees: one key per node, the node's JSON as the value, under a lease.
      const listing = (await etcd.etcdctl(['get', '--prefix', '/rdbnet/t1/'])).trim().split('\n');
      assert.deepEqual(
        listing.filter((_, i) => i % 2 === 0),
        ['/rdbnet/t1/n1', '/rdbnet/t1/n2', '/rdbnet/t1/n3'],
      );
      assert.deepEqual(JSON.parse(listing[1]!), {
        id: 'n1',
        address: '127.0.0.1:7401',
        meta: { role: 'test' },
      });
      const leases = (await etcd.etcdctl(['lease', 'list'])).trim();
      assert.match(leases, /found 3 leases/, leases);

      // kill -9: nothing deregisters; the lease runs out and the key goes with it.
      n2.child.kill('SIGKILL');
      await n2.exited();
      await until(
        'n2 disappears once its lease expired',
        async () => (ids(seen.at(-1)!).join() === 'n1,n3' ? true : undefined),
        LEASE_GONE_MS_MAX,
      );
      assert.equal((await etcd.etcdctl(['get', '/rdbnet/t1/n2'])).trim(), '');

      // A graceful stop revokes the lease and deletes the key before the process says so.
      n3.child.kill('SIGTERM');
      await until('n3 deregistered', async () =>
        n3.stdout().includes('deregistered') ? true : undefined,
      );
      assert.equal((await etcd.etcdctl(['get', '/rdbnet/t1/n3'])).trim(), '');
      await until('the watch sees n3 leave', async () =>
        ids(seen.at(-1)!).join() === 'n1' ? true : undefined,
      );
      assert.ok(n1.child.exitCode === null, 'n1 still runs');
      // Every list the watch reported is whole and sorted, never a partial update.
      for (const nodes of seen) assert.deepEqual(ids(nodes), [...ids(nodes)].sort());
    } finally {
      stopWatch.abort();
      await watching;
      await watcher.close?.();
    }
  });

  test('a lease revoked behind a registrant is noticed at the next keep-alive and the node registers again', async () => {
    const spec = `provider=etcd endpoints=${etcd.endpoint} prefix=/rdbnet/t2 ttl=3s`;
    await startRegistrant(spec, 'r1', '127.0.0.1:7411');
    const lease = await leaseOf(etcd, '/rdbnet/t2/r1');
    await etcd.etcdctl(['lease', 'revoke', lease.toString(16)]);
    assert.equal((await etcd.etcdctl(['get', '/rdbnet/t2/r1'])).trim(), '');
    const provider = open(spec);
    try {
      const back = await until(
        'r1 registered again under a new lease',
        async () => {
          const nodes = await provider.discover(AbortSignal.timeout(5_000));
          return nodes.length === 1 ? nodes : undefined;
        },
        15_000,
      );
      assert.equal(back[0]!.id, 'r1');
      assert.notEqual(await leaseOf(etcd, '/rdbnet/t2/r1'), lease);
    } finally {
      await provider.close?.();
    }
  });

  test('endpoints fail over to the next; none answering is RDB_DISCOVERY_UNREACHABLE naming them', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const failover = open(`provider=etcd endpoints=${dead},${etcd.endpoint} prefix=/rdbnet/t3`);
    try {
      assert.deepEqual(await failover.discover(AbortSignal.timeout(10_000)), []);
    } finally {
      await failover.close?.();
    }
    const unreachable = open(`provider=etcd endpoints=${dead} prefix=/rdbnet/t3 timeout=2s`);
    try {
      await assert.rejects(unreachable.discover(AbortSignal.timeout(10_000)), (error) => {
        assert.ok(isRdbnetError(error, 'RDB_DISCOVERY_UNREACHABLE'), String(error));
        assert.match(
          error.message,
          new RegExp(`provider=etcd: no endpoint answered: ${dead} \\(connection refused\\)`),
        );
        assert.doesNotMatch(error.message, /\n/);
        return true;
      });
      await assert.rejects(
        unreachable.register!(
          { id: 'x', address: '127.0.0.1:7400', meta: {} },
          AbortSignal.timeout(10_000),
        ),
        (error) => isRdbnetError(error, 'RDB_DISCOVERY_UNREACHABLE'),
      );
      const watchStop = new AbortController();
      await assert.rejects(
        unreachable.watch!(() => {}, watchStop.signal),
        (error) => isRdbnetError(error, 'RDB_DISCOVERY_UNREACHABLE'),
      );
    } finally {
      await unreachable.close?.();
    }
  });

  test('close() ends a running watch', async () => {
    const provider = open(`provider=etcd endpoints=${etcd.endpoint} prefix=/rdbnet/t6`);
    const seen: DiscoveredNode[][] = [];
    const watching = provider.watch!((nodes) => seen.push(nodes), new AbortController().signal);
    await until('the watch reports', async () => (seen.length > 0 ? true : undefined));
    await provider.close!();
    await watching;
  });

  test('a value someone else wrote under the prefix is skipped with one warning', async () => {
    await etcd.etcdctl(['put', '/rdbnet/t4/stray', 'not json']);
    await etcd.etcdctl([
      'put',
      '/rdbnet/t4/ok',
      JSON.stringify({ id: 'ok', address: '127.0.0.1:7420', meta: {} }),
    ]);
    await etcd.etcdctl([
      'put',
      '/rdbnet/t40/other-cluster',
      JSON.stringify({ id: 'x', address: '127.0.0.1:7999' }),
    ]);
    const provider = open(`provider=etcd endpoints=${etcd.endpoint} prefix=/rdbnet/t4`);
    try {
      const nodes = await provider.discover(AbortSignal.timeout(10_000));
      assert.deepEqual(ids(nodes), ['ok']);
      await provider.discover(AbortSignal.timeout(10_000));
      assert.equal(
        logs.filter((line) => line.includes('/rdbnet/t4/stray')).length,
        1,
        logs.join('\n'),
      );
    } finally {
      await provider.close?.();
    }
  });

  // Last: it restarts the shared etcd.
  test('a watch survives etcd going away: it reconnects with backoff, re-reads and sees what changed meanwhile', async () => {
    const put = (id: string, port: number) =>
      etcd.etcdctl([
        'put',
        `/rdbnet/t5/${id}`,
        JSON.stringify({ id, address: `127.0.0.1:${port}`, meta: {} }),
      ]);
    await put('w1', 7451);
    const watcher = open(`provider=etcd endpoints=${etcd.endpoint} prefix=/rdbnet/t5 timeout=1s`);
    const seen: DiscoveredNode[][] = [];
    const stopWatch = new AbortController();
    const logsBefore = logs.length;
    const watching = watcher.watch!((nodes) => seen.push(nodes), stopWatch.signal);
    try {
      await until('the watch sees w1', async () =>
        ids(seen.at(-1) ?? []).join() === 'w1' ? true : undefined,
      );
      await etcd.kill();
      await until(
        'the watch notices etcd is gone',
        async () =>
          logs.slice(logsBefore).some((line) => line.includes('provider=etcd: watch broke'))
            ? true
            : undefined,
        20_000,
      );
      await etcd.restart();
      await put('w2', 7452);
      await until(
        'the watch, reconnected, sees w2',
        async () => (ids(seen.at(-1)!).join() === 'w1,w2' ? true : undefined),
        30_000,
      );
      await etcd.etcdctl(['del', '/rdbnet/t5/w1']);
      await until('and keeps following changes', async () =>
        ids(seen.at(-1)!).join() === 'w2' ? true : undefined,
      );
    } finally {
      stopWatch.abort();
      await watching;
      await watcher.close?.();
    }
  });
});

describe('provider=etcd over TLS with client certificates, against a real etcd', {
  skip: missing,
}, () => {
  let etcd: EtcdServer;
  let dir: { dir: string; cleanup(): Promise<void> };
  let files: { ca: string; cert: string; key: string; serverCert: string; serverKey: string };

  before(async () => {
    dir = await tempHome('rdbnet-etcd-tls-');
    const ca = createCertificateAuthority({ cluster: 'etcdtest' });
    const server = issueNodeCertificate({
      ca,
      cluster: 'etcdtest',
      nodeId: 'etcd',
      hosts: ['127.0.0.1'],
    });
    const client = issueClientCertificate({ ca, cluster: 'etcdtest', name: 'rdbnet' });
    files = {
      ca: join(dir.dir, 'ca.crt'),
      cert: join(dir.dir, 'client.crt'),
      key: join(dir.dir, 'client.key'),
      serverCert: join(dir.dir, 'etcd.crt'),
      serverKey: join(dir.dir, 'etcd.key'),
    };
    await writeFile(files.ca, ca.certPem);
    await writeFile(files.cert, client.certPem);
    await writeFile(files.key, client.keyPem, { mode: 0o600 });
    await writeFile(files.serverCert, server.certPem);
    await writeFile(files.serverKey, server.keyPem, { mode: 0o600 });
    etcd = await startEtcd({
      tls: { certFile: files.serverCert, keyFile: files.serverKey, caFile: files.ca },
    });
  });

  after(async () => {
    await etcd?.stop();
    await dir?.cleanup();
  });

  test('tls=true with ca=, cert= and key= registers and discovers; without the client certificate etcd refuses', async () => {
    const base = `provider=etcd endpoints=${etcd.endpoint} prefix=/rdbnet/tls ttl=5s tls=true ca=${files.ca}`;
    const provider = open(`${base} cert=${files.cert} key=${files.key}`);
    try {
      const registration = await provider.register!(
        { id: 's1', address: '127.0.0.1:7461', meta: {} },
        AbortSignal.timeout(10_000),
      );
      assert.deepEqual(ids(await provider.discover(AbortSignal.timeout(10_000))), ['s1']);
      assert.match(await etcd.etcdctl(['get', '--prefix', '/rdbnet/tls/']), /\/rdbnet\/tls\/s1/);
      await registration.close();
      assert.equal((await etcd.etcdctl(['get', '--prefix', '/rdbnet/tls/'])).trim(), '');
    } finally {
      await provider.close?.();
    }
    const noClientCert = open(`${base} timeout=3s`);
    try {
      await assert.rejects(noClientCert.discover(AbortSignal.timeout(10_000)), (error) => {
        assert.ok(isRdbnetError(error, 'RDB_DISCOVERY_UNREACHABLE'), String(error));
        assert.match(error.message, new RegExp(`no endpoint answered: ${etcd.endpoint}`));
        return true;
      });
    } finally {
      await noClientCert.close?.();
    }
  });
});
