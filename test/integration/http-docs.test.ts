/**
 * docs/api.md on a real three-node cluster started with --http: every route of the table is
 * documented, and every curl line of the document runs (real curl, in document order, against
 * the first node) and answers the status written after it. Before that, a flood of requests
 * from one client is refused by the per-client rate limit and does not starve gossip: no
 * member suspects the flooded node, and it answers throughout.
 *
 * Loopback only, ports from the kernel; every node is killed in teardown.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Agent, request } from 'undici';
import { API_PREFIX, ROUTES } from '../../src/core/http/routes.ts';
import {
  killAllNodes,
  type NodeProcess,
  poller,
  REPO_ROOT,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const until = poller(200);
/** The flood: this long, this many requests in flight, at most this many in all. */
const FLOOD_MS = 8000;
const FLOOD_CONCURRENCY = 8;
const FLOOD_REQUESTS_MAX = 5000;
const CURL_TIMEOUT_MS = 20_000;
/** Generous: CI's machine may be busy. */
const START_TIMEOUT_MS = 60_000;

let home: { dir: string; cleanup(): Promise<void> };
let certs: string;
const nodes: (NodeProcess & { http: string })[] = [];
let agent: Agent;

function env(): NodeJS.ProcessEnv {
  return {
    RDBNET_HOME: home.dir,
    RDBNET_NODE: '',
    RDBNET_CERTS_DIR: '',
    DEBUG: '',
  };
}

/** The flooded node's per-client limit: low, so that even a slow machine's flood passes it. */
const FLOODED_LIMITS = { RDBNET_HTTP_RATE_PER_SECOND: '10', RDBNET_HTTP_RATE_BURST: '10' };

async function start(id: string, join_: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
  const started = await startNode(
    [
      '--id',
      id,
      '--listen',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
      '--data-dir',
      join(home.dir, id),
      ...(join_.length === 0 ? [] : ['--join', join_.join(',')]),
    ],
    { ...env(), ...extraEnv },
    START_TIMEOUT_MS,
  );
  nodes.push({ ...started, http: (started.info as unknown as { http: string }).http });
}

async function getJson(node: { http: string }, path: string) {
  const response = await request(`https://${node.http}${path}`, { dispatcher: agent });
  return {
    status: response.statusCode,
    body: (await response.body.json()) as Record<string, unknown>,
  };
}

before(async () => {
  home = await tempHome('rdbnet-http-docs-');
  certs = join(home.dir, 'certs');
  await start('n1', []);
  await start('n2', [nodes[0]!.address], FLOODED_LIMITS);
  await start('n3', [nodes[0]!.address]);
  agent = new Agent({
    connect: {
      ca: await readFile(join(certs, 'ca.crt'), 'utf8'),
      cert: await readFile(join(certs, 'client.admin.crt'), 'utf8'),
      key: await readFile(join(certs, 'client.admin.key'), 'utf8'),
    },
  });
  await until(
    'three voters, all alive in the gossip of n1',
    async () => {
      const raft = await getJson(nodes[0]!, `${API_PREFIX}/membership/raft/status`);
      const view = await getJson(nodes[0]!, `${API_PREFIX}/membership/view`);
      const voters = (raft.body['members'] as { voter: boolean }[] | undefined)?.filter(
        (m) => m.voter,
      );
      const alive = (view.body['members'] as { status: string }[]).filter(
        (m) => m.status === 'alive',
      );
      return voters?.length === 3 && alive.length === 3 ? true : undefined;
    },
    90_000,
  );
});

after(async () => {
  await agent?.close();
  await killAllNodes();
  await home?.cleanup();
});

test('every route is in docs/api.md (aliases may be in prose)', async () => {
  const doc = await readFile(join(REPO_ROOT, 'docs', 'api.md'), 'utf8');
  for (const route of ROUTES) {
    const path = `${API_PREFIX}${route.path}`.replace(/:node_id/, '[^ ]+');
    assert.match(doc, new RegExp(`https://\\$HTTP${path}[" ?\`]`), `${route.method} ${path}`);
  }
});

test('a flood from one client is rate-limited and gossip keeps the node alive', async (t) => {
  const [observer, flooded] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  const eventsBefore = await getJson(observer, `${API_PREFIX}/membership/events?after_seq=0`);
  const lastSeq = Math.max(
    0,
    ...(eventsBefore.body['events'] as { seq: number }[]).map((e) => e.seq),
  );
  const statuses = new Map<number, number>();
  const deadline = performance.now() + FLOOD_MS;
  let sent = 0;
  const worker = async () => {
    while (performance.now() < deadline && sent < FLOOD_REQUESTS_MAX) {
      sent++;
      // The cheapest authenticated path: the flood measures the limiter, not the handlers.
      const response = await request(`https://${flooded.http}/livez`, { dispatcher: agent });
      await response.body.dump();
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: FLOOD_CONCURRENCY }, worker));
  assert.ok((statuses.get(429) ?? 0) > 0, `no 429 among ${JSON.stringify([...statuses])}`);
  assert.ok((statuses.get(200) ?? 0) > 0, `no 200 among ${JSON.stringify([...statuses])}`);
  // Gossip kept the flooded node alive: never declared dead (a suspicion it refuted is
  // counted, not failed: on a loaded machine a probe can miss its 50 ms without any flood).
  const events = await getJson(observer, `${API_PREFIX}/membership/events?after_seq=${lastSeq}`);
  const aboutFlooded = (events.body['events'] as { type: string; id: string }[]).filter(
    (event) => event.id === 'n2',
  );
  const deaths = aboutFlooded.filter((event) => event.type === 'dead' || event.type === 'left');
  assert.deepEqual(deaths, [], 'n2 was declared dead or left during the flood');
  t.diagnostic(
    `flood: ${JSON.stringify(Object.fromEntries(statuses))} answers in ${FLOOD_MS} ms at most; ` +
      `${aboutFlooded.filter((event) => event.type === 'suspect').length} refuted suspicions of n2`,
  );
  for (const node of [nodes[0]!, nodes[2]!]) {
    const view = await getJson(node, `${API_PREFIX}/membership/view`);
    const states = (view.body['members'] as { id: string; status: string }[]).map(
      (m) => `${m.id}=${m.status}`,
    );
    assert.deepEqual(states.sort(), ['n1=alive', 'n2=alive', 'n3=alive']);
  }
  // The flood is counted on the node.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const stats = await getJson(flooded, `${API_PREFIX}/stats`);
  assert.ok((stats.body['counters'] as Record<string, number>)['http.rate_limited']! > 0);
});

test('every curl line of docs/api.md answers its documented status', async () => {
  // After the flood, a full bucket again.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const doc = await readFile(join(REPO_ROOT, 'docs', 'api.md'), 'utf8');
  const lines = doc
    .split('\n')
    .filter((line) => line.startsWith('curl '))
    .map((line) => {
      const match = /^(curl .*?)\s+# → (\d{3})$/.exec(line);
      assert.ok(match !== null, `no "# → status" after: ${line}`);
      return { command: match[1]!, status: Number(match[2]) };
    });
  assert.ok(
    lines.length >= ROUTES.length,
    `${lines.length} curl lines for ${ROUTES.length} routes`,
  );
  const c = certs;
  const shellEnv = {
    ...process.env,
    HTTP: nodes[0]!.http,
    C: c,
    AUTH: `--cacert ${c}/ca.crt --cert ${c}/client.admin.crt --key ${c}/client.admin.key`,
  };
  for (const { command, status } of lines) {
    const { stdout, code } = await new Promise<{ stdout: string; code: number }>((resolve) => {
      execFile(
        'bash',
        ['-c', `${command} -w '\\n%{http_code}'`],
        { env: shellEnv, timeout: CURL_TIMEOUT_MS },
        (error, out) =>
          resolve({ stdout: out, code: error === null ? 0 : Number(error.code ?? 1) }),
      );
    });
    assert.equal(code, 0, `curl failed: ${command}`);
    const cut = stdout.lastIndexOf('\n');
    const body = stdout.slice(0, cut);
    const answered = Number(stdout.slice(cut + 1));
    assert.equal(answered, status, `${command}\n${body}`);
    if (/\/metrics\b/.test(command)) {
      assert.match(body, /^# TYPE rdbnet_/m, `not the Prometheus text format: ${command}`);
    } else {
      assert.doesNotThrow(() => JSON.parse(body), `not JSON: ${command}\n${body}`);
    }
    if (command.includes('/graphql')) {
      const answer = JSON.parse(body) as { data?: unknown; errors?: unknown };
      assert.ok(answer.data !== undefined && answer.errors === undefined, `${command}\n${body}`);
    }
  }
});
