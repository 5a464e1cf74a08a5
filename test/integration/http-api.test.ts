/**
 * The HTTP face on real processes: a node started with `--http` answers REST requests over
 * HTTPS for a client certificate of its CA (role from the certificate) and for bearer tokens
 * made by `rdbnet tokens create`, refuses everything else with 401/403 JSON carrying the CLI's
 * codes, and answers bad input (unknown route, malformed JSON, schema violation, oversized
 * body, stalled client) with the documented status. A revoked certificate and a revoked token
 * stop working. The OpenAPI document is checked by an OpenAPI 3.1 validator.
 *
 * One node, shared by the steps (they run in order); loopback only, ports from the kernel.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Agent, request } from 'undici';
import { ABSENT_ROUTES, API_PREFIX, ROUTES } from '../../src/core/http/routes.ts';
import {
  type CliResult,
  describeResult,
  killAllNodes,
  type NodeProcess,
  parseJson,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const until = poller(100);

let home: { dir: string; cleanup(): Promise<void> };
let certs: string;
let node: NodeProcess;
let base: string;
const agents: Agent[] = [];

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

async function cli(args: string[]): Promise<CliResult> {
  return runCli(args, env(), 60_000);
}

async function ok<T>(args: string[]): Promise<T> {
  const result = await cli([...args, '--json']);
  assert.equal(result.code, 0, describeResult(result));
  return parseJson<T>(result);
}

/** An undici agent trusting the cluster's CA, presenting client `name`'s certificate if given. */
async function agent(name?: string): Promise<Agent> {
  const ca = await readFile(join(certs, 'ca.crt'), 'utf8');
  const client =
    name === undefined
      ? {}
      : {
          cert: await readFile(join(certs, `client.${name}.crt`), 'utf8'),
          key: await readFile(join(certs, `client.${name}.key`), 'utf8'),
        };
  const made = new Agent({ connect: { ca, ...client } });
  agents.push(made);
  return made;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function call(
  dispatcher: Agent,
  method: 'GET' | 'POST',
  path: string,
  options: { body?: string; token?: string; contentType?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
  if (options.body !== undefined)
    headers['content-type'] = options.contentType ?? 'application/json';
  const response = await request(`${base}${path}`, {
    method,
    dispatcher,
    headers,
    ...(options.body === undefined ? {} : { body: options.body }),
  });
  const text = await response.body.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    assert.fail(
      `${method} ${path} answered ${response.statusCode} with no JSON: ${text.slice(0, 200)}`,
    );
  }
  return { status: response.statusCode, body };
}

function errorOf(answer: Answer): { code: string; message: string } {
  return answer.body['error'] as { code: string; message: string };
}

before(async () => {
  home = await tempHome('rdbnet-http-');
  certs = join(home.dir, 'certs');
  node = await startNode(
    [
      '--id',
      'h1',
      '--listen',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
      '--data-dir',
      join(home.dir, 'h1'),
    ],
    { ...env(), RDBNET_HTTP_HEADERS_TIMEOUT_MS: '1500', RDBNET_HTTP_BODY_BYTES_MAX: '65536' },
    60_000,
  );
  const info = node.info as NodeProcess['info'] & { http: string };
  assert.match(info.http, /^127\.0\.0\.1:\d+$/);
  base = `https://${info.http}`;
  // A read-only client next to the zero-config admin client.
  await ok(['certs', 'client', '--name', 'viewer', '--role', 'read']);
  await until('the node is a member', async () => {
    const answer = await call(await agent('admin'), 'GET', `${API_PREFIX}/membership/raft/status`);
    return answer.status === 200 && answer.body['state'] === 'member' ? true : undefined;
  });
});

after(async () => {
  await Promise.all(agents.map((made) => made.close()));
  await killAllNodes();
  await home?.cleanup();
});

describe('authentication', () => {
  test('no certificate and no token: 401 RDB_UNAUTHENTICATED, probes included (not opened)', async () => {
    const anonymous = await agent();
    for (const path of [`${API_PREFIX}/health`, '/livez', '/api/v1/openapi.json', '/metrics']) {
      const answer = await call(anonymous, 'GET', path);
      assert.equal(answer.status, 401, path);
      assert.equal(errorOf(answer).code, 'RDB_UNAUTHENTICATED');
    }
    const answer = await call(anonymous, 'GET', `${API_PREFIX}/health`, { token: 'rdbt_nonsense' });
    assert.equal(answer.status, 401);
  });

  test('the admin certificate reads the membership view the CLI sees', async () => {
    const answer = await call(await agent('admin'), 'GET', `${API_PREFIX}/membership/view`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const members = answer.body['members'] as { id: string; status: string }[];
    assert.equal(answer.body['total_members'], members.length);
    const cli = await ok<{ members: { id: string }[] }>([
      'cluster',
      'members',
      '--node',
      node.address,
    ]);
    assert.deepEqual(
      members.map((member) => member.id).sort(),
      cli.members.map((member) => member.id).sort(),
    );
    assert.ok(members.some((member) => member.id === 'h1' && member.status === 'alive'));
  });

  test('a read certificate asks but cannot change: 403 RDB_FORBIDDEN naming the operation', async () => {
    const viewer = await agent('viewer');
    assert.equal((await call(viewer, 'GET', `${API_PREFIX}/health`)).status, 200);
    const refused = await call(viewer, 'POST', `${API_PREFIX}/membership/leave`, { body: '{}' });
    assert.equal(refused.status, 403);
    assert.equal(errorOf(refused).code, 'RDB_FORBIDDEN');
    assert.match(errorOf(refused).message, /operation cluster\.leave needs role admin/);
    const still = await call(await agent('admin'), 'GET', `${API_PREFIX}/membership/raft/status`);
    assert.equal(still.body['state'], 'member');
  });

  test('bearer tokens: read and admin roles, refused once revoked', async () => {
    const plain = await agent();
    const read = await ok<{ id: string; token: string; role: string }>([
      'tokens',
      'create',
      '--role',
      'read',
      '--name',
      'dash',
      '--data-dir',
      join(home.dir, 'h1'),
    ]);
    assert.match(read.token, /^rdbt_[0-9a-f]{16}_/);
    const listed = await ok<{ tokens: { id: string; role: string }[] }>([
      'tokens',
      'list',
      '--data-dir',
      join(home.dir, 'h1'),
    ]);
    assert.ok(listed.tokens.some((token) => token.id === read.id && token.role === 'read'));
    assert.ok(!JSON.stringify(listed).includes(read.token.split('_')[2]!), 'list shows no secret');
    const stored = await readFile(join(home.dir, 'h1', 'http-tokens.json'), 'utf8');
    assert.ok(!stored.includes(read.token.split('_')[2]!), 'the store keeps no secret');

    const health = await until('the node accepts the new token', async () => {
      const answer = await call(plain, 'GET', `${API_PREFIX}/health`, { token: read.token });
      return answer.status === 200 ? answer : undefined;
    });
    assert.equal((health.body['nodes'] as unknown[]).length, 1);
    const refused = await call(plain, 'POST', `${API_PREFIX}/security/certificates/rotate`, {
      token: read.token,
      body: '{}',
    });
    assert.equal(refused.status, 403);
    assert.equal(errorOf(refused).code, 'RDB_FORBIDDEN');

    const admin = await ok<{ token: string }>([
      'tokens',
      'create',
      '--role',
      'admin',
      '--ttl',
      '1h',
      '--data-dir',
      join(home.dir, 'h1'),
    ]);
    const keys = await until('the node accepts the admin token', async () => {
      const answer = await call(plain, 'GET', `${API_PREFIX}/security/keyring`, {
        token: admin.token,
      });
      return answer.status === 200 ? answer : undefined;
    });
    assert.ok(Array.isArray(keys.body['results']));

    await ok(['tokens', 'revoke', read.id, '--data-dir', join(home.dir, 'h1')]);
    await until('the revoked token is refused', async () => {
      const answer = await call(plain, 'GET', `${API_PREFIX}/health`, { token: read.token });
      return answer.status === 401 ? true : undefined;
    });
    const unknown = await cli([
      'tokens',
      'revoke',
      'ffffffffffffffff',
      '--data-dir',
      join(home.dir, 'h1'),
      '--json',
    ]);
    assert.equal(unknown.code, 64, describeResult(unknown));
  });

  test('a revoked client certificate is refused with 401 RDB_CERT_REVOKED', async () => {
    await ok(['certs', 'client', '--name', 'gone', '--role', 'admin']);
    const gone = await agent('gone');
    assert.equal((await call(gone, 'GET', `${API_PREFIX}/health`)).status, 200);
    const inspected = await ok<{ certificates: { serial: string }[] }>([
      'certs',
      'inspect',
      join(certs, 'client.gone.crt'),
    ]);
    await ok([
      'certs',
      'revoke',
      '--serial',
      inspected.certificates[0]!.serial,
      '--nodes',
      node.address,
    ]);
    // The same keep-alive connection: revocation is checked on every request.
    const answer = await call(gone, 'GET', `${API_PREFIX}/health`);
    assert.equal(answer.status, 401);
    assert.equal(errorOf(answer).code, 'RDB_CERT_REVOKED');
  });
});

describe('bad input', () => {
  test('unknown route 404, malformed JSON 400, schema violation 400 naming the field', async () => {
    const admin = await agent('admin');
    const missing = await call(admin, 'GET', `${API_PREFIX}/no/such/thing`);
    assert.equal(missing.status, 404);
    assert.equal(errorOf(missing).code, 'RDB_ROUTE_UNKNOWN');

    const malformed = await call(admin, 'POST', `${API_PREFIX}/membership/join`, {
      body: '{"seed_nodes": [',
    });
    assert.equal(malformed.status, 400);
    assert.equal(errorOf(malformed).code, 'RDB_USAGE');
    assert.match(errorOf(malformed).message, /JSON/);

    const wrongType = await call(admin, 'POST', `${API_PREFIX}/membership/join`, {
      body: '{"seed_nodes": "127.0.0.1:7000"}',
    });
    assert.equal(wrongType.status, 400);
    assert.match(errorOf(wrongType).message, /seed_nodes/);

    const unknownField = await call(admin, 'POST', `${API_PREFIX}/loadbalancer/select`, {
      body: '{"strategy": "maglev", "key": "user:42", "bogus": 1}',
    });
    assert.equal(unknownField.status, 400);
    assert.match(errorOf(unknownField).message, /bogus|additional/);

    const badStrategy = await call(admin, 'POST', `${API_PREFIX}/loadbalancer/select`, {
      body: '{"strategy": "RoundRobinX"}',
    });
    assert.equal(badStrategy.status, 400);
    assert.match(errorOf(badStrategy).message, /strategy/);
  });

  test('a body over the limit is 413', async () => {
    const admin = await agent('admin');
    const big = JSON.stringify({ topic: 'echo', target_node: 'h1', payload: 'x'.repeat(70_000) });
    const answer = await call(admin, 'POST', `${API_PREFIX}/send`, { body: big });
    assert.equal(answer.status, 413);
    assert.equal(errorOf(answer).code, 'RDB_BODY_TOO_LARGE');
  });

  test('a capability rdbnet lacks is 501 naming it', async () => {
    const admin = await agent('admin');
    for (const absent of ABSENT_ROUTES.slice(0, 5)) {
      const answer = await call(admin, absent.method, `${API_PREFIX}${absent.path}`, {
        ...(absent.method === 'POST' ? { body: '{}' } : {}),
      });
      assert.equal(answer.status, 501, absent.path);
      assert.equal(errorOf(answer).code, 'RDB_NOT_IMPLEMENTED');
      assert.ok(errorOf(answer).message.includes(absent.capability), errorOf(answer).message);
    }
  });

  test('a client that stalls in its headers is cut off; the node keeps serving', async () => {
    const [host, port] = base.slice('https://'.length).split(':') as [string, string];
    const ca = await readFile(join(certs, 'ca.crt'), 'utf8');
    const started = performance.now();
    const closed = await new Promise<boolean>((resolve) => {
      const socket = tlsConnect({ host, port: Number(port), ca, servername: 'localhost' }, () => {
        socket.write('GET /api/v1/network/health HTTP/1.1\r\nHost: x\r\n');
      });
      socket.on('data', () => {});
      socket.on('error', () => {});
      socket.on('close', () => resolve(true));
      setTimeout(() => {
        socket.destroy();
        resolve(false);
      }, 15_000).unref();
    });
    assert.ok(closed, 'the stalled socket was not closed within 15 s');
    // headersTimeout 1.5 s, checked every second: a generous bound only.
    assert.ok(performance.now() - started < 14_000);
    assert.equal((await call(await agent('admin'), 'GET', `${API_PREFIX}/health`)).status, 200);
  });
});

describe('OpenAPI', () => {
  test('GET /api/v1/openapi.json is a valid OpenAPI 3.1 document listing every route', async () => {
    const answer = await call(await agent('admin'), 'GET', '/api/v1/openapi.json');
    assert.equal(answer.status, 200);
    assert.equal(answer.body['openapi'], '3.1.0');
    const validator = new Validator();
    const result = await validator.validate(answer.body);
    assert.ok(result.valid, JSON.stringify(result.errors, null, 2));
    const paths = answer.body['paths'] as Record<string, Record<string, unknown>>;
    for (const route of ROUTES) {
      const path = `${API_PREFIX}${route.path}`.replace(/:([a-z_]+)/g, '{$1}');
      assert.ok(paths[path]?.[route.method.toLowerCase()] !== undefined, `${route.method} ${path}`);
    }
    // The body schema that validates join is the one documented.
    const join = paths[`${API_PREFIX}/membership/join`]!['post'] as {
      requestBody: { content: { 'application/json': { schema: { required: string[] } } } };
    };
    assert.deepEqual(join.requestBody.content['application/json'].schema.required, ['seed_nodes']);
  });
});
