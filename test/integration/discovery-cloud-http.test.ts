/**
 * The bounds of `apiCall`, the HTTP call of the single-endpoint API providers (discovery/http.ts),
 * against loopback servers that misbehave on purpose: a body over the cap (declared and
 * chunked), a server that never answers (the deadline), and the caller's own abort.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { apiCall, createAgent } from '../../src/core/discovery/http.ts';
import { ErrorCode } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';
import { rejection } from '../helpers/discovery-context.ts';

let server: Server;
let base: string;
const agent = createAgent();

before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/declared-large') {
      res.writeHead(200, { 'content-length': String(2048) });
      res.end('x'.repeat(2048));
    } else if (req.url === '/chunked-large') {
      res.writeHead(200);
      const chunk = 'y'.repeat(256);
      let sent = 0;
      const push = (): void => {
        if (sent++ >= 16 || res.destroyed) {
          res.end();
          return;
        }
        res.write(chunk, () => setImmediate(push));
      };
      push();
    } else if (req.url === '/silent') {
      // never answers: only the caller's deadline ends it
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('fine');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await agent.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function call(
  path: string,
  opts: { timeoutMs?: number; signal?: AbortSignal; bodyBytesMax?: number } = {},
) {
  return apiCall({
    provider: 'test',
    url: new URL(path, base),
    timeoutMs: opts.timeoutMs ?? 5_000,
    clock: systemClock,
    signal: opts.signal ?? AbortSignal.timeout(20_000),
    dispatcher: agent,
    bodyBytesMax: opts.bodyBytesMax ?? 1024,
  });
}

describe('cloud http call bounds', () => {
  test('a body within the cap is returned', async () => {
    const response = await call('/ok');
    assert.equal(response.status, 200);
    assert.equal(response.body, 'fine');
  });

  test('a declared content-length over the cap is refused before reading', async () => {
    const error = await rejection(() => call('/declared-large'));
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(
      error.message,
      /^provider=test: http:\/\/127\.0\.0\.1:\d+\/declared-large answered a body of 2048\+ bytes; at most 1024/,
    );
  });

  test('a chunked body growing past the cap is cut off', async () => {
    const error = await rejection(() => call('/chunked-large'));
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(error.message, /at most 1024/);
  });

  test('no answer within the deadline: RDB_DISCOVERY_UNREACHABLE naming the wait', async () => {
    const error = await rejection(() => call('/silent', { timeoutMs: 300 }));
    assert.equal(error.code, ErrorCode.DiscoveryUnreachable);
    assert.match(
      error.message,
      /^provider=test: cannot reach http:\/\/127\.0\.0\.1:\d+\/silent: no answer within 300 ms$/,
    );
  });

  test("the caller's abort is passed through, not turned into unreachable", async () => {
    const controller = new AbortController();
    const pending = call('/silent', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('stopped by caller')), 100);
    const error = await rejection(() => pending);
    assert.equal(error.message, 'stopped by caller');
    assert.equal(error.code, undefined);
  });
});
