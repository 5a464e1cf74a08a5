/**
 * The spec values every discovery provider parses through src/core/discovery/values.ts:
 * durations (Go-style, with the bare-number unit each provider kept), ports, booleans,
 * endpoints and node addresses. Every refusal is RDB_DISCOVERY_SYNTAX naming provider and key.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addressListValue,
  booleanValue,
  durationValue,
  endpointValue,
  nameValue,
  oneOfValue,
  parseDurationText,
  parseEndpointText,
  portValue,
  urlValue,
  valueOr,
} from '../../src/core/discovery/values.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';

const syntaxError = (message: RegExp) => (error: unknown) =>
  isRdbnetError(error) && error.code === ErrorCode.DiscoverySyntax && message.test(error.message);

describe('durations', () => {
  test('Go-style text, compound parts included', () => {
    assert.equal(parseDurationText('10s'), 10_000);
    assert.equal(parseDurationText('1m30s'), 90_000);
    assert.equal(parseDurationText('250ms'), 250);
    assert.equal(parseDurationText('1.5s'), 1500);
    assert.equal(parseDurationText('2h'), 7_200_000);
    assert.equal(parseDurationText(''), undefined);
    assert.equal(parseDurationText('5 s'), undefined);
    assert.equal(parseDurationText('-2s'), undefined);
    assert.equal(parseDurationText('2d'), undefined);
  });

  test('a bare number: refused unless the provider names its unit', () => {
    assert.equal(parseDurationText('10'), undefined);
    assert.equal(parseDurationText('10', 1000), 10_000);
    assert.equal(parseDurationText('10', 1), 10);
    assert.equal(
      durationValue('dns', 'timeout', '2', { minMs: 10, maxMs: 30_000, bareUnitMs: 1000 }),
      2000,
    );
    assert.equal(
      durationValue('aws', 'timeout', '750', { minMs: 1, maxMs: 120_000, bareUnitMs: 1 }),
      750,
    );
    assert.throws(
      () => durationValue('p', 'k', '2', { minMs: 0, maxMs: 10_000 }),
      syntaxError(/^provider=p: k must be a duration like 500ms, 2s or 1m, got "2"$/),
    );
  });

  test('bounds are inclusive and named in the refusal', () => {
    const bounds = { minMs: 100, maxMs: 60_000 };
    assert.equal(durationValue('p', 'k', '100ms', bounds), 100);
    assert.equal(durationValue('p', 'k', '1m', bounds), 60_000);
    assert.throws(
      () => durationValue('mdns', 'timeout', '99ms', bounds),
      syntaxError(
        /^provider=mdns: timeout must be a duration from 100 ms to 60000 ms, got "99ms"$/,
      ),
    );
    assert.throws(() => durationValue('p', 'k', '1m1ms', bounds), syntaxError(/provider=p: k/));
  });
});

test('ports, booleans, words, names and URLs', () => {
  assert.equal(portValue('p', 'port', '1'), 1);
  assert.equal(portValue('p', 'port', '65535'), 65535);
  for (const bad of ['0', '65536', '', '7400x', '-1', '123456']) {
    assert.throws(
      () => portValue('p', 'port', bad),
      syntaxError(/^provider=p: port must be a port in 1\.\.65535/),
    );
  }
  assert.equal(booleanValue('etcd', 'tls', 'true'), true);
  assert.equal(booleanValue('etcd', 'tls', 'false'), false);
  assert.throws(
    () => booleanValue('etcd', 'tls', 'yes'),
    syntaxError(/provider=etcd: tls is "yes"; write true or false/),
  );
  assert.equal(oneOfValue('dns', 'type', 'srv', ['srv', 'a'] as const), 'srv');
  assert.throws(
    () => oneOfValue('dns', 'type', 'mx', ['srv', 'a']),
    syntaxError(/type must be one of srv, a, got "mx"/),
  );
  assert.equal(nameValue('k8s', 'service', 'db', /^[a-z]+$/, 'a DNS label'), 'db');
  assert.throws(
    () => nameValue('k8s', 'service', 'a/b', /^[a-z]+$/, 'a DNS label'),
    syntaxError(/service must be a DNS label/),
  );
  assert.equal(urlValue('gce', 'endpoint', 'http://127.0.0.1:8080/x').port, '8080');
  for (const bad of ['ftp://127.0.0.1/', 'not a url']) {
    assert.throws(
      () => urlValue('gce', 'endpoint', bad),
      syntaxError(/endpoint must be an http:\/\/ or https:\/\/ URL/),
    );
  }
  assert.equal(
    valueOr(undefined, 7400, (text) => portValue('p', 'port', text)),
    7400,
  );
  assert.equal(
    valueOr('7401', 7400, (text) => portValue('p', 'port', text)),
    7401,
  );
  assert.throws(
    () => valueOr('0', 7400, (text) => portValue('p', 'port', text)),
    syntaxError(/port/),
  );
});

test('endpoints a provider talks to, and node addresses it returns', () => {
  assert.deepEqual(parseEndpointText('[::1]:2379'), {
    host: '::1',
    port: 2379,
    text: '[::1]:2379',
  });
  assert.deepEqual(parseEndpointText('etcd.internal:2379'), {
    host: 'etcd.internal',
    port: 2379,
    text: 'etcd.internal:2379',
  });
  assert.equal(parseEndpointText('::1:2379'), undefined);
  assert.equal(parseEndpointText('127.0.0.1:65536'), undefined);
  assert.equal(parseEndpointText('127.0.0.1:0'), undefined);
  assert.equal(parseEndpointText('http://127.0.0.1:2379'), undefined);
  assert.throws(
    () => endpointValue('etcd', 'endpoints', '127.0.0.1'),
    syntaxError(/^provider=etcd: endpoints has "127.0.0.1", not host:port/),
  );
  assert.deepEqual(addressListValue('static', 'addrs', '127.0.0.1:1, [::1]:2,127.0.0.1:1'), [
    '127.0.0.1:1',
    '[::1]:2',
  ]);
  assert.throws(
    () => addressListValue('static', 'addrs', ' , '),
    syntaxError(/addrs holds no address/),
  );
});
