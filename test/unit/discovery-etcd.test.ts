/**
 * provider=etcd's pure parts: every key's value checked before any I/O (RDB_DISCOVERY_SYNTAX
 * naming provider and key), the key range of a prefix, stored values read as nodes, and the
 * shared duration and host:port parsing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openProvider } from '../../src/core/discovery/index.ts';
import {
  nodeFromKv,
  parseEtcdConfig,
  registrationRange,
} from '../../src/core/discovery/providers/etcd.ts';
import {
  decodeRegistrationValue,
  encodeRegistrationValue,
} from '../../src/core/discovery/providers/kv/registrations.ts';
import { isRdbnetError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';

const ctx = { env: {}, clock: systemClock, log: () => {} };

function args(text: string): Map<string, string> {
  return new Map(
    text
      .split(' ')
      .filter(Boolean)
      .map((pair) => pair.split('=') as [string, string]),
  );
}

function refused(spec: string, message: RegExp): void {
  assert.throws(
    () => openProvider(spec, ctx),
    (error) => {
      assert.ok(isRdbnetError(error, 'RDB_DISCOVERY_SYNTAX'), String(error));
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, /\n/);
      return true;
    },
  );
}

const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('provider=etcd configuration', () => {
  test('defaults: prefix /rdbnet/default, ttl 10 s, timeout 5 s, plain HTTP', () => {
    const config = parseEtcdConfig(args('endpoints=127.0.0.1:2379,[::1]:2379'));
    assert.deepEqual(
      config.endpoints.map((e) => e.text),
      ['127.0.0.1:2379', '[::1]:2379'],
    );
    assert.equal(config.prefix, '/rdbnet/default');
    assert.equal(config.ttlSeconds, 10);
    assert.equal(config.timeoutMs, 5000);
    assert.equal(config.tls, null);
  });

  test('bad values are refused naming the key, before any I/O', () => {
    refused('provider=etcd', /provider=etcd: key endpoints is required/);
    refused('provider=etcd endpoints=127.0.0.1', /: endpoints has "127.0.0.1", not host:port/);
    refused('provider=etcd endpoints=127.0.0.1:0', /: endpoints/);
    refused('provider=etcd endpoints=127.0.0.1:2379,', /: endpoints has ""/);
    refused(
      'provider=etcd endpoints=127.0.0.1:2379 ttl=1s',
      /: ttl must be a duration from 2000 ms to 300000 ms, got "1s"/,
    );
    refused('provider=etcd endpoints=127.0.0.1:2379 ttl=301s', /: ttl/);
    refused(
      'provider=etcd endpoints=127.0.0.1:2379 ttl=2500ms',
      /: ttl is 2500ms; etcd leases count whole seconds/,
    );
    refused(
      'provider=etcd endpoints=127.0.0.1:2379 ttl=ten',
      /: ttl must be a duration like 500ms, 2s or 1m, got "ten"/,
    );
    refused('provider=etcd endpoints=127.0.0.1:2379 timeout=10ms', /: timeout/);
    refused('provider=etcd endpoints=127.0.0.1:2379 prefix=rdbnet', /: prefix is "rdbnet"/);
    refused('provider=etcd endpoints=127.0.0.1:2379 prefix=/rdbnet/', /: prefix/);
    refused('provider=etcd endpoints=127.0.0.1:2379 prefix=/a//b', /: prefix/);
    refused(
      'provider=etcd endpoints=127.0.0.1:2379 tls=yes',
      /: tls is "yes"; write true or false/,
    );
    refused('provider=etcd endpoints=127.0.0.1:2379 ca=/x.pem', /: ca needs tls=true/);
    refused(
      'provider=etcd endpoints=127.0.0.1:2379 tls=true cert=/x.pem',
      /: key is required with cert= and key= together/,
    );
    refused(
      'provider=etcd endpoints=127.0.0.1:2379 tls=true ca=/nonexistent/ca.pem',
      /: ca names \/nonexistent\/ca.pem, which cannot be read \(ENOENT\)/,
    );
    refused(
      `provider=etcd endpoints=${Array.from({ length: 17 }, (_, i) => `127.0.0.1:${2000 + i}`).join(',')}`,
      /lists 17; at most 16/,
    );
  });

  test('tls=true reads ca, cert and key', () => {
    const read: string[] = [];
    const config = parseEtcdConfig(
      args('endpoints=db.internal:2379 tls=true ca=/c cert=/p key=/k'),
      (path) => {
        read.push(path);
        return Buffer.from(path);
      },
    );
    assert.deepEqual(read, ['/c', '/p', '/k']);
    assert.equal(config.tls?.ca?.toString(), '/c');
  });
});

describe('provider=etcd keys and values', () => {
  test('the range of a prefix is PREFIX/ up to PREFIX0, so /rdbnet/c1 never reads /rdbnet/c10', () => {
    const range = registrationRange('/rdbnet/c1');
    const key = Buffer.from(range.key, 'base64').toString();
    const end = Buffer.from(range.range_end, 'base64').toString();
    assert.equal(key, '/rdbnet/c1/');
    assert.equal(end, '/rdbnet/c10');
    const inRange = (k: string) => k >= key && k < end;
    assert.ok(inRange('/rdbnet/c1/n1'));
    assert.ok(!inRange('/rdbnet/c10/n1'));
    assert.ok(!inRange('/rdbnet/c1'));
  });

  test('a stored value is a node; anything else is a one-line reason', () => {
    const value = encodeRegistrationValue({
      id: 'n1',
      address: '127.0.0.1:7401',
      meta: { zone: 'a' },
    });
    assert.deepEqual(nodeFromKv({ key: b64('/rdbnet/c1/n1'), value: b64(value) }), {
      key: '/rdbnet/c1/n1',
      node: {
        id: 'n1',
        address: '127.0.0.1:7401',
        source: 'etcd:/rdbnet/c1/n1',
        meta: { zone: 'a' },
      },
    });
    assert.equal(decodeRegistrationValue('nope', 's'), 'value is not JSON');
    assert.equal(decodeRegistrationValue('[1]', 's'), 'address is not host:port');
    assert.equal(
      decodeRegistrationValue('{"address":"127.0.0.1"}', 's'),
      'address is not host:port',
    );
    assert.match(decodeRegistrationValue('x'.repeat(20_000), 's') as string, /longer than/);
    // An id that is not a node id is dropped, the node kept; meta keeps strings only.
    assert.deepEqual(
      decodeRegistrationValue('{"id":"a/b","address":"[::1]:1","meta":{"a":"b","n":1}}', 's'),
      {
        address: '[::1]:1',
        source: 's',
        meta: { a: 'b' },
      },
    );
  });
});
