/**
 * The metrics registry and its text exposition: exact output for counters, gauges and
 * histograms, label escaping, the bound on label sets, refused names, RPC metrics by method,
 * and metricsRequestListener on a real node:http server on loopback (GET /metrics only).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { nodeConfigJson, resolveNodeConfig } from '../../src/core/config/node-config.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { exposition } from '../../src/core/metrics/exposition.ts';
import { metricsRequestListener } from '../../src/core/metrics/http.ts';
import { MetricsRegistry, OVERFLOW_LABEL_VALUE } from '../../src/core/metrics/registry.ts';
import { RPC_LATENCY_SAMPLE_EVERY, RpcMetrics } from '../../src/core/metrics/rpc.ts';

describe('metrics registry and exposition', () => {
  test('counters, gauges and histograms in the text format', () => {
    const registry = new MetricsRegistry();
    const requests = registry.counter({
      name: 'demo_requests_total',
      help: 'Requests.',
      labelNames: ['method'],
    });
    requests.labels('get').inc();
    requests.labels('get').inc(2);
    registry.gauge({ name: 'demo_temperature', help: 'Heat.' }).only.set(-1.5);
    const latency = registry.histogram({
      name: 'demo_seconds',
      help: 'Latency.',
      buckets: [0.1, 1],
    });
    latency.only.observe(0.05);
    latency.only.observe(0.1);
    latency.only.observe(0.5);
    latency.only.observe(7);
    assert.equal(
      exposition(registry),
      [
        '# HELP demo_requests_total Requests.',
        '# TYPE demo_requests_total counter',
        'demo_requests_total{method="get"} 3',
        '# HELP demo_seconds Latency.',
        '# TYPE demo_seconds histogram',
        'demo_seconds_bucket{le="0.1"} 2',
        'demo_seconds_bucket{le="1"} 3',
        'demo_seconds_bucket{le="+Inf"} 4',
        'demo_seconds_sum 7.65',
        'demo_seconds_count 4',
        '# HELP demo_temperature Heat.',
        '# TYPE demo_temperature gauge',
        'demo_temperature -1.5',
        '',
      ].join('\n'),
    );
  });

  test('label values and help are escaped', () => {
    const registry = new MetricsRegistry();
    registry
      .gauge({ name: 'demo_info', help: 'back\\slash\nnewline', labelNames: ['v'] })
      .labels('a"b\\c\nd')
      .set(1);
    const text = exposition(registry);
    assert.match(text, /^# HELP demo_info back\\\\slash\\nnewline$/m);
    assert.match(text, /^demo_info\{v="a\\"b\\\\c\\nd"\} 1$/m);
  });

  test('past seriesMax label sets, new ones share one `other` series', () => {
    const registry = new MetricsRegistry();
    const family = registry.counter({
      name: 'demo_by_peer_total',
      help: 'By peer.',
      labelNames: ['peer'],
      seriesMax: 2,
    });
    for (const peer of ['a', 'b', 'c', 'd', 'e']) family.labels(peer).inc();
    family.labels('a').inc();
    const lines = exposition(registry)
      .split('\n')
      .filter((line) => line.startsWith('demo_by_peer_total'));
    assert.deepEqual(lines, [
      'demo_by_peer_total{peer="a"} 2',
      'demo_by_peer_total{peer="b"} 1',
      `demo_by_peer_total{peer="${OVERFLOW_LABEL_VALUE}"} 3`,
    ]);
    assert.equal(family.overflowed, 3);
  });

  test('bad names, buckets, label counts and duplicates are refused with RDB_USAGE', () => {
    const registry = new MetricsRegistry();
    const refused = (fn: () => unknown) =>
      assert.throws(fn, (error: unknown) => isRdbnetError(error, ErrorCode.Usage));
    refused(() => registry.counter({ name: '9lives', help: '' }));
    refused(() => registry.counter({ name: 'demo_a', help: '', labelNames: ['__x'] }));
    refused(() => registry.counter({ name: 'demo_b', help: '', labelNames: ['le'] }));
    refused(() => registry.histogram({ name: 'demo_c', help: '', buckets: [1, 1] }));
    refused(() => registry.histogram({ name: 'demo_d', help: '', buckets: [] }));
    const family = registry.gauge({ name: 'demo_e', help: '', labelNames: ['x'] });
    refused(() => family.labels('a', 'b'));
    refused(() => registry.gauge({ name: 'demo_e', help: '' }));
  });

  test('a counter mirrored with setTotal never goes down', () => {
    const registry = new MetricsRegistry();
    const series = registry.counter({ name: 'demo_total', help: '' }).only;
    series.setTotal(5);
    series.setTotal(3);
    assert.equal(series.value, 5);
  });

  test('RPC metrics: a count per outcome and a latency observation per answered request', () => {
    let nowMs = 1000;
    const registry = new MetricsRegistry();
    const rpc = new RpcMetrics(registry, ['health', 'echo'], {
      nowMs: () => nowMs,
      wallMs: () => 0,
    });
    const health = rpc.method('health')!;
    const echo = rpc.method('echo')!;
    assert.equal(rpc.method('not.a.method'), undefined);
    const started = health.started();
    nowMs += 3;
    health.answered(started, true);
    echo.answered(echo.started(), false);
    // Every request is counted; one in RPC_LATENCY_SAMPLE_EVERY of a method is timed.
    for (let i = 1; i < RPC_LATENCY_SAMPLE_EVERY; i++) {
      const untimed = echo.started();
      assert.ok(Number.isNaN(untimed));
      echo.answered(untimed, true);
    }
    const timed = echo.started();
    nowMs += 1;
    echo.answered(timed, true);
    const text = exposition(registry);
    assert.match(text, /^rdbnet_rpc_requests_total\{method="health",outcome="ok"\} 1$/m);
    assert.match(text, /^rdbnet_rpc_requests_total\{method="health",outcome="error"\} 0$/m);
    assert.match(text, /^rdbnet_rpc_requests_total\{method="echo",outcome="error"\} 1$/m);
    assert.match(
      text,
      new RegExp(
        `^rdbnet_rpc_requests_total\\{method="echo",outcome="ok"\\} ${RPC_LATENCY_SAMPLE_EVERY}$`,
        'm',
      ),
    );
    assert.match(text, /^rdbnet_rpc_duration_seconds_count\{method="echo"\} 2$/m);
    assert.match(text, /^rdbnet_rpc_duration_seconds_sum\{method="echo"\} 0.001$/m);
    assert.match(text, /^rdbnet_rpc_duration_seconds_sum\{method="health"\} 0.003$/m);
    assert.match(text, /^rdbnet_rpc_duration_seconds_bucket\{method="health",le="0.0025"\} 0$/m);
    assert.match(text, /^rdbnet_rpc_duration_seconds_bucket\{method="health",le="0.005"\} 1$/m);
    assert.doesNotMatch(text, /not\.a\.method/);
  });
});

describe('metricsRequestListener on a node:http server', () => {
  test('GET /metrics serves the exposition; other paths 404, other methods 405', async () => {
    const registry = new MetricsRegistry();
    const scraped = registry.counter({ name: 'demo_scrapes_total', help: 'Scrapes.' }).only;
    let scrapes = 0;
    registry.onCollect(() => {
      scrapes++;
      scraped.inc();
    });
    const server = createServer(metricsRequestListener(registry));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const ok = await fetch(`${base}/metrics`);
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
      assert.match(await ok.text(), /^demo_scrapes_total 1$/m);
      assert.equal(scrapes, 1);

      const missing = await fetch(`${base}/api/v1/nothing`);
      assert.equal(missing.status, 404);
      assert.equal(
        ((await missing.json()) as { error: { code: string } }).error.code,
        'RDB_METHOD_UNKNOWN',
      );
      const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET, HEAD');
      assert.equal(((await post.json()) as { error: { code: string } }).error.code, 'RDB_USAGE');
      const head = await fetch(`${base}/metrics?x=1`, { method: 'HEAD' });
      assert.equal(head.status, 200);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('the metrics setting', () => {
  test('off by default; host:port from a flag, the environment or a file; bad values refused', () => {
    const none = resolveNodeConfig({}, {}, {});
    assert.equal(none.metrics, undefined);
    assert.equal(nodeConfigJson(none).metrics, null);
    assert.deepEqual(resolveNodeConfig({ metrics: '127.0.0.1:9100' }, {}, {}).metrics, {
      host: '127.0.0.1',
      port: 9100,
    });
    assert.equal(
      nodeConfigJson(resolveNodeConfig({}, {}, { RDBNET_METRICS: '[::1]:0' })).metrics,
      '[::1]:0',
    );
    assert.equal(resolveNodeConfig({}, { metrics: ':9200' }, {}).metrics?.port, 9200);
    for (const bad of ['nope', '127.0.0.1:70000', '127.0.0.1']) {
      assert.throws(
        () => resolveNodeConfig({ metrics: bad }, {}, {}),
        (error: unknown) =>
          isRdbnetError(error, ErrorCode.ConfigInvalid) &&
          /invalid metrics from flag/.test(error.message),
      );
    }
  });
});
