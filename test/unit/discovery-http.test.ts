/**
 * The bounded HTTP every API-backed provider uses (src/core/discovery/http.ts), against a loopback node:http
 * server: an answer past its byte cap is RDB_DISCOVERY_FAILED, a server that does not answer
 * within the deadline or refuses the connection is HttpUnreachable naming the endpoint, a
 * caller's abort wins over both, and a stream is split into lines across chunk boundaries
 * (multi-byte characters included) with a cap on one line.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Agent } from 'undici';
import {
  type HttpCall,
  HttpUnreachable,
  httpCall,
  httpStream,
} from '../../src/core/discovery/http.ts';
import { isRdbnetError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';

describe('discovery HTTP bounds', () => {
  let server: Server;
  let endpoint: string;
  const dispatcher = new Agent();

  before(async () => {
    server = createServer((request, response) => {
      if (request.url === '/big') {
        response.end('x'.repeat(10_000));
      } else if (request.url === '/silent') {
        // never answers; the client's deadline must end it
      } else if (request.url === '/stream') {
        response.write('{"a":"é');
        response.write(Buffer.from([0xc3])); // first byte of "é"
        setTimeout(() => {
          response.write(Buffer.from([0xa9]));
          response.write('"}\n\n{"b":');
          setTimeout(() => response.end('2}'), 20);
        }, 20);
      } else if (request.url === '/long-line') {
        response.write('y'.repeat(5_000));
        response.write('y'.repeat(5_000));
        setTimeout(() => response.end('\n'), 20);
      } else {
        response.end('ok');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await dispatcher.destroy();
  });

  function call(path: string, overrides: Partial<HttpCall> = {}): HttpCall {
    return {
      provider: 'test',
      endpoint,
      url: `http://${endpoint}${path}`,
      method: 'GET',
      timeoutMs: 2_000,
      bytesMax: 4_096,
      signal: new AbortController().signal,
      dispatcher,
      timers: systemClock,
      ...overrides,
    };
  }

  test('an answer within its cap is read whole', async () => {
    const answer = await httpCall(call('/'));
    assert.equal(answer.status, 200);
    assert.equal(answer.text, 'ok');
  });

  test('an answer past its byte cap is RDB_DISCOVERY_FAILED naming the endpoint', async () => {
    await assert.rejects(httpCall(call('/big')), (error) => {
      assert.ok(isRdbnetError(error, 'RDB_DISCOVERY_FAILED'), String(error));
      assert.equal(
        error.message,
        `provider=test: ${endpoint} answered a body of 10000+ bytes; at most 4096`,
      );
      return true;
    });
  });

  test('no answer within the deadline is HttpUnreachable; a caller abort is the caller’s reason', async () => {
    await assert.rejects(httpCall(call('/silent', { timeoutMs: 200 })), (error) => {
      assert.ok(error instanceof HttpUnreachable);
      assert.equal(error.endpoint, endpoint);
      assert.equal(error.reason, 'no answer within 200 ms');
      return true;
    });
    const controller = new AbortController();
    const reason = new Error('caller stopped');
    setTimeout(() => controller.abort(reason), 50);
    await assert.rejects(
      httpCall(call('/silent', { signal: controller.signal })),
      (error) => error === reason,
    );
  });

  test('a refused connection is HttpUnreachable "connection refused"', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(
      httpCall(call('/', { endpoint: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}/` })),
      (error) => error instanceof HttpUnreachable && error.reason === 'connection refused',
    );
  });

  test('a stream is split into lines across chunks, multi-byte characters intact, blank lines skipped', async () => {
    const stream = await httpStream(call('/stream'));
    const lines: string[] = [];
    for await (const line of stream.lines) lines.push(line);
    assert.deepEqual(lines, ['{"a":"éé"}', '{"b":2}']);
  });

  test('a streamed line past its cap is RDB_DISCOVERY_FAILED', async () => {
    const stream = await httpStream(call('/long-line', { bytesMax: 8_000 }));
    await assert.rejects(
      (async () => {
        for await (const _ of stream.lines) {
          // no line ever completes
        }
      })(),
      (error) =>
        isRdbnetError(error, 'RDB_DISCOVERY_FAILED') &&
        /answered a line of \d+\+ bytes; at most 8000/.test(error.message),
    );
  });
});
