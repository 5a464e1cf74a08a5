/**
 * The static provider: a list, a file of lines or JSON, bad entries named by line, and a
 * watched file re-read when it changes (real files in a temporary directory).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DiscoveredNode, ProviderContext } from '../../src/core/discovery/provider.ts';
import { parsePeersFile, staticProvider } from '../../src/core/discovery/providers/static.ts';
import { isRdbnetError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';

const ctx: ProviderContext = { env: {}, clock: systemClock, log: () => {} };
const signal = () => new AbortController().signal;

test('addrs: normalised and de-duplicated; bad values refused before any I/O', async () => {
  const provider = staticProvider.create(
    new Map([['addrs', '127.0.0.1:7001, [::1]:7002,127.0.0.1:7001']]),
    ctx,
  );
  assert.deepEqual(
    (await provider.discover(signal())).map((node) => node.address),
    ['127.0.0.1:7001', '[::1]:7002'],
  );
  for (const [args, message] of [
    [{ addrs: '127.0.0.1' }, /provider=static: addrs holds "127.0.0.1", not host:port/],
    [{}, /provider=static: addrs or file/],
    [{ addrs: '127.0.0.1:1', file: '/x' }, /provider=static: addrs or file/],
  ] as const) {
    assert.throws(
      () => staticProvider.create(new Map(Object.entries(args)), ctx),
      (error: unknown) =>
        isRdbnetError(error, 'RDB_DISCOVERY_SYNTAX') && message.test(error.message),
    );
  }
});

test('a peers file: lines with comments, or JSON strings and objects', () => {
  assert.deepEqual(
    parsePeersFile('# peers\n127.0.0.1:7001  # first\n\n  127.0.0.2:7002\n', 'peers').map(
      (n) => n.address,
    ),
    ['127.0.0.1:7001', '127.0.0.2:7002'],
  );
  const json = parsePeersFile(
    JSON.stringify([
      '127.0.0.1:7001',
      { address: '127.0.0.3:7003', id: 'n3', meta: { zone: 'z1' } },
    ]),
    'peers.json',
  );
  assert.deepEqual(json, [
    { address: '127.0.0.1:7001', source: 'static:peers.json', meta: {} },
    { address: '127.0.0.3:7003', id: 'n3', source: 'static:peers.json', meta: { zone: 'z1' } },
  ]);
  for (const [text, message] of [
    ['127.0.0.1:7001\nnot-an-address\n', /peers line 2: "not-an-address" is not host:port/],
    ['[1, 2]', /peers entry 0 must be/],
    ['[{"id": "x"}]', /peers entry 0 has no "address"/],
    ['[{"address": "127.0.0.1:1", "meta": {"a": 1}}]', /meta\.a must be a string/],
    ['[oops', /not valid JSON/],
  ] as const) {
    assert.throws(
      () => parsePeersFile(text, 'peers'),
      (error: unknown) =>
        isRdbnetError(error, 'RDB_DISCOVERY_FAILED') && message.test(error.message),
      text,
    );
  }
});

test('a missing file fails the lookup, naming it', async () => {
  const provider = staticProvider.create(new Map([['file', '/nonexistent/rdbnet-peers']]), ctx);
  await assert.rejects(
    provider.discover(signal()),
    (error: unknown) =>
      isRdbnetError(error, 'RDB_DISCOVERY_FAILED') &&
      /cannot read \/nonexistent\/rdbnet-peers: ENOENT/.test(error.message),
  );
});

test('watch(): the file is re-read when it changes, also when replaced by rename', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rdbnet-static-'));
  try {
    const file = join(dir, 'peers');
    await writeFile(file, '127.0.0.1:7001\n');
    const provider = staticProvider.create(new Map([['file', file]]), ctx);
    const controller = new AbortController();
    const seen: DiscoveredNode[][] = [];
    let notify: () => void = () => {};
    const watching = provider.watch!((nodes) => {
      seen.push(nodes);
      notify();
    }, controller.signal);
    const next = (count: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no change ${count} within 10 s`)), 10_000);
        const check = () => {
          if (seen.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        };
        notify = check;
        check();
      });
    await next(1);
    await writeFile(file, '127.0.0.1:7001\n127.0.0.1:7002\n');
    await next(2);
    await writeFile(join(dir, 'peers.new'), '127.0.0.1:7003\n');
    await rename(join(dir, 'peers.new'), file);
    await next(3);
    controller.abort();
    await watching;
    assert.deepEqual(
      seen.map((nodes) => nodes.map((node) => node.address)),
      [['127.0.0.1:7001'], ['127.0.0.1:7001', '127.0.0.1:7002'], ['127.0.0.1:7003']],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
