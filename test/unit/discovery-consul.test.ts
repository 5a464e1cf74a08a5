/**
 * provider=consul's pure parts: every key's value (and CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN)
 * checked before any I/O, health entries read as nodes, and the blocking-query index rules of
 * Consul's "Blocking Queries" page.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openProvider } from '../../src/core/discovery/index.ts';
import {
  nextBlockingIndex,
  nodeFromEntry,
  parseConsulConfig,
} from '../../src/core/discovery/providers/consul.ts';
import { isRdbnetError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';

function args(text: string): Map<string, string> {
  return new Map(
    text
      .split(' ')
      .filter(Boolean)
      .map((pair) => pair.split('=') as [string, string]),
  );
}

function refused(spec: string, message: RegExp, env: Record<string, string> = {}): void {
  assert.throws(
    () => openProvider(spec, { env, clock: systemClock, log: () => {} }),
    (error) => {
      assert.ok(isRdbnetError(error, 'RDB_DISCOVERY_SYNTAX'), String(error));
      assert.match(error.message, message);
      return true;
    },
  );
}

describe('provider=consul configuration', () => {
  test('defaults: service rdbnet at 127.0.0.1:8500 over http, ttl 10 s, deregister after 1 m', () => {
    const config = parseConsulConfig(new Map(), {});
    assert.equal(config.service, 'rdbnet');
    assert.equal(config.address.text, '127.0.0.1:8500');
    assert.equal(config.scheme, 'http');
    assert.equal(config.ttlMs, 10_000);
    assert.equal(config.deregisterAfterMs, 60_000);
    assert.equal(config.token, undefined);
  });

  test('CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN apply when the spec does not say; keys win', () => {
    const env = { CONSUL_HTTP_ADDR: 'https://consul.internal:8501', CONSUL_HTTP_TOKEN: 'from-env' };
    const fromEnv = parseConsulConfig(new Map(), env);
    assert.equal(fromEnv.address.text, 'consul.internal:8501');
    assert.equal(fromEnv.scheme, 'https');
    assert.equal(fromEnv.token, 'from-env');
    const keyed = parseConsulConfig(args('address=[::1]:8500 token=k scheme=http dc=dc2'), env);
    assert.equal(keyed.address.text, '[::1]:8500');
    assert.equal(keyed.scheme, 'http');
    assert.equal(keyed.token, 'k');
    assert.equal(keyed.datacenter, 'dc2');
  });

  test('bad values are refused naming the key, before any I/O', () => {
    refused(
      'provider=consul address=127.0.0.1',
      /provider=consul: address has "127.0.0.1", not host:port/,
    );
    refused('provider=consul scheme=ftp', /: scheme is "ftp"; write http or https/);
    refused('provider=consul service=a/b', /: service is "a\/b"/);
    refused('provider=consul dc=a datacenter=b', /: dc and datacenter name the same thing/);
    refused('provider=consul dc=a/b', /: dc is "a\/b"/);
    refused('provider=consul ttl=1s', /: ttl must be a duration from .* got "1s"/);
    refused('provider=consul timeout=2h', /: timeout/);
    refused('provider=consul deregister_after=forever', /: deregister_after/);
    refused('provider=consul color=red', /unknown key "color"/);
    refused('provider=consul', /CONSUL_HTTP_ADDR is "not an address"/, {
      CONSUL_HTTP_ADDR: 'not an address',
    });
  });
});

describe('provider=consul answers', () => {
  test('a health entry is the service address (the node address when empty) and port', () => {
    const entry = {
      Node: { Node: 'agent-1', Address: '127.0.0.9', Datacenter: 'dc1' },
      Service: {
        ID: 'n1',
        Service: 'rdbnet',
        Tags: ['c1'],
        Address: '',
        Port: 7401,
        Meta: { zone: 'a' },
      },
    };
    assert.deepEqual(nodeFromEntry(entry, 'rdbnet'), {
      id: 'n1',
      address: '127.0.0.9:7401',
      source: 'consul:rdbnet',
      meta: { zone: 'a', consul_node: 'agent-1', datacenter: 'dc1', tags: 'c1' },
    });
    assert.equal(
      nodeFromEntry({ ...entry, Service: { ...entry.Service, Address: '::1' } }, 'rdbnet')?.address,
      '[::1]:7401',
    );
    assert.equal(nodeFromEntry({ Service: { ID: 'x', Port: 1 } }, 'rdbnet'), undefined);
    assert.equal(
      nodeFromEntry({ Service: { ID: 'x', Address: '127.0.0.1' } }, 'rdbnet'),
      undefined,
    );
  });

  test('blocking-query index: forwards as given, backwards starts over, below 1 is 1', () => {
    assert.equal(nextBlockingIndex(0n, '42'), 42n);
    assert.equal(nextBlockingIndex(42n, '43'), 43n);
    assert.equal(nextBlockingIndex(42n, '42'), 42n);
    assert.equal(nextBlockingIndex(42n, '7'), 0n);
    assert.equal(nextBlockingIndex(42n, '0'), 1n);
    assert.equal(nextBlockingIndex(42n, undefined), 1n);
    assert.equal(nextBlockingIndex(42n, 'junk'), 1n);
  });
});
