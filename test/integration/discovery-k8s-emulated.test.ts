/**
 * provider=k8s against an EMULATED Kubernetes API server (test/helpers/emulated-k8s.ts; no real
 * API server runs here): in-cluster service-account auth, kubeconfig with a client certificate
 * or a token, ready/not-ready endpoints, paging, auth failure, unreachable, and the watch.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DiscoveredNode } from '../../src/core/discovery/provider.ts';
import { openProvider } from '../../src/core/discovery/registry.ts';
import { ErrorCode } from '../../src/core/errors.ts';
import { discoverOnce, rejection, specChecks, testContext } from '../helpers/discovery-context.ts';
import { type EmulatedK8s, type EmulatedSlice, startEmulatedK8s } from '../helpers/emulated-k8s.ts';

let api: EmulatedK8s;
let dir: string;
let saDir: string;

function slice(
  name: string,
  service: string,
  endpoints: Array<{ ip: string; ready?: boolean; pod?: string }>,
  ports: EmulatedSlice['ports'] = [{ name: 'rdbnet', port: 7400, protocol: 'TCP' }],
  addressType: EmulatedSlice['addressType'] = 'IPv4',
): EmulatedSlice {
  return {
    metadata: { name, labels: { 'kubernetes.io/service-name': service, tier: 'db' } },
    addressType,
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      ...(e.ready === undefined ? {} : { conditions: { ready: e.ready } }),
      nodeName: 'worker-1',
      zone: 'zone-a',
      ...(e.pod === undefined ? {} : { targetRef: { kind: 'Pod', name: e.pod, namespace: 'db' } }),
    })),
    ports,
  };
}

function inCluster(extra: Record<string, string> = {}) {
  return testContext({
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: String(api.port),
    RDBNET_K8S_SERVICE_ACCOUNT_DIR: saDir,
    ...extra,
  });
}

function discover(spec: string, ctx = inCluster()): Promise<DiscoveredNode[]> {
  return discoverOnce(spec, ctx);
}

before(async () => {
  api = await startEmulatedK8s();
  dir = await mkdtemp(join(tmpdir(), 'rdbnet-k8s-'));
  saDir = join(dir, 'serviceaccount');
  await import('node:fs/promises').then((fs) => fs.mkdir(saDir));
  await writeFile(join(saDir, 'token'), `${api.token}\n`);
  await writeFile(join(saDir, 'ca.crt'), api.ca.certPem);
  await writeFile(join(saDir, 'namespace'), 'db');
  api.put(
    'db',
    slice('rdbnet-a', 'rdbnet', [
      { ip: '127.0.0.11', ready: true, pod: 'rdbnet-0' },
      { ip: '127.0.0.12', ready: false, pod: 'rdbnet-1' },
      { ip: '127.0.0.13', pod: 'rdbnet-2' }, // ready unset: the API says count it as ready
    ]),
  );
  api.put(
    'db',
    slice(
      'rdbnet-b',
      'rdbnet',
      [{ ip: '::1', ready: true }],
      [
        { name: 'metrics', port: 9100, protocol: 'TCP' },
        { name: 'rdbnet', port: 7401, protocol: 'TCP' },
      ],
      'IPv6',
    ),
  );
  api.put('db', slice('other-a', 'other', [{ ip: '127.0.0.99', ready: true }]));
});

after(async () => {
  await api?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('provider=k8s (emulated API server)', () => {
  test('in-cluster: ready endpoints of the service, with the named port; not-ready left out', async () => {
    const nodes = await discover('provider=k8s service=rdbnet port_name=rdbnet');
    assert.deepEqual(
      nodes.map((n) => n.address),
      ['[::1]:7401', '127.0.0.11:7400', '127.0.0.13:7400'],
    );
    const first = nodes.find((n) => n.address === '127.0.0.11:7400')!;
    assert.equal(first.source, 'k8s:db/rdbnet');
    assert.equal(first.meta['pod'], 'rdbnet-0');
    assert.equal(first.meta['zone'], 'zone-a');
    const last = api.requests.at(-1)!;
    assert.match(last, /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/db\/endpointslices\?/);
    assert.match(decodeURIComponent(last), /labelSelector=kubernetes\.io\/service-name=rdbnet/);
  });

  test('without port_name a slice with several ports uses the one named rdbnet', async () => {
    const nodes = await discover('provider=k8s service=rdbnet');
    assert.ok(nodes.some((n) => n.address === '[::1]:7401'));
  });

  test('label_selector narrows the slices; a port name no slice has finds nothing', async () => {
    assert.equal(
      (await discover('provider=k8s service=rdbnet label_selector=tier=cache')).length,
      0,
    );
    assert.equal((await discover('provider=k8s service=rdbnet label_selector=tier=db')).length, 3);
    assert.equal((await discover('provider=k8s service=rdbnet port_name=metrics')).length, 1);
    assert.equal((await discover('provider=k8s service=rdbnet port_name=nope')).length, 0);
  });

  test('a wrong token fails with the API server message (RDB_DISCOVERY_FAILED)', async () => {
    const badDir = join(dir, 'bad-sa');
    await import('node:fs/promises').then((fs) => fs.mkdir(badDir, { recursive: true }));
    await writeFile(join(badDir, 'token'), 'not-the-token');
    await writeFile(join(badDir, 'ca.crt'), api.ca.certPem);
    const error = await rejection(() =>
      discover(
        'provider=k8s service=rdbnet namespace=db',
        inCluster({ RDBNET_K8S_SERVICE_ACCOUNT_DIR: badDir }),
      ),
    );
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(error.message, /^provider=k8s: HTTP 401: Unauthorized/);
  });

  test('nothing listening is RDB_DISCOVERY_UNREACHABLE naming the endpoint', async () => {
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closedPort = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const error = await rejection(() =>
      discover(
        'provider=k8s service=rdbnet',
        inCluster({ KUBERNETES_SERVICE_PORT: String(closedPort) }),
      ),
    );
    assert.equal(error.code, ErrorCode.DiscoveryUnreachable);
    assert.match(
      error.message,
      new RegExp(`provider=k8s: cannot reach https://127\\.0\\.0\\.1:${closedPort}/`),
    );
  });

  test('a server certificate from another CA is refused (unreachable, TLS)', async () => {
    const other = await startEmulatedK8s();
    try {
      const error = await rejection(() =>
        discover(
          'provider=k8s service=rdbnet',
          inCluster({ KUBERNETES_SERVICE_PORT: String(other.port) }),
        ),
      );
      assert.equal(error.code, ErrorCode.DiscoveryUnreachable);
      assert.equal(other.requests.length, 0);
    } finally {
      await other.close();
    }
  });

  test('kubeconfig: client certificate + CA file, current-context and its namespace', async () => {
    await writeFile(join(dir, 'ca.pem'), api.ca.certPem);
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    const kubeconfig = join(dir, 'kubeconfig-cert.yaml');
    await writeFile(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: emulated',
        'clusters:',
        '- name: emulated',
        '  cluster:',
        `    server: ${api.url}`,
        '    certificate-authority: ca.pem',
        'contexts:',
        '- name: emulated',
        '  context: {cluster: emulated, user: operator, namespace: db}',
        '- name: elsewhere',
        '  context: {cluster: emulated, user: operator, namespace: empty}',
        'users:',
        '- name: operator',
        '  user:',
        `    client-certificate-data: ${b64(api.client.certPem)}`,
        `    client-key-data: ${b64(api.client.keyPem)}`,
        '',
      ].join('\n'),
    );
    const nodes = await discover(
      `provider=k8s service=rdbnet kubeconfig=${kubeconfig}`,
      testContext(),
    );
    assert.equal(nodes.length, 3);
    const elsewhere = await discover(
      `provider=k8s service=rdbnet kubeconfig=${kubeconfig} context=elsewhere`,
      testContext(),
    );
    assert.equal(elsewhere.length, 0);
  });

  test('kubeconfig from $KUBECONFIG with a token and CA data; paging past one page', async () => {
    for (let i = 0; i < 1001; i++) {
      api.put(
        'paged',
        slice(`s-${String(i).padStart(4, '0')}`, 'big', [
          { ip: `127.1.${i >> 8}.${i & 255}`, ready: true },
        ]),
      );
    }
    const kubeconfig = join(dir, 'kubeconfig-token.yaml');
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'c',
        clusters: [
          {
            name: 'k',
            cluster: {
              server: api.url,
              'certificate-authority-data': Buffer.from(api.ca.certPem).toString('base64'),
            },
          },
        ],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
        users: [{ name: 'u', user: { token: api.token } }],
      }),
    );
    const before = api.requests.length;
    const nodes = await discover(
      'provider=k8s service=big namespace=paged',
      testContext({ KUBECONFIG: kubeconfig }),
    );
    assert.equal(nodes.length, 1001);
    const pages = api.requests.slice(before);
    assert.equal(pages.length, 3);
    assert.match(pages[1]!, /continue=/);
  });

  test('kubeconfig with an exec plugin is refused with a clear line', async () => {
    const kubeconfig = join(dir, 'kubeconfig-exec.yaml');
    await writeFile(
      kubeconfig,
      'current-context: c\nclusters: [{name: k, cluster: {server: "https://127.0.0.1:1"}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\n',
    );
    const error = await rejection(() =>
      discover(`provider=k8s service=rdbnet kubeconfig=${kubeconfig}`, testContext()),
    );
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(error.message, /exec or auth-provider plugin/);
  });

  test('watch: changes arrive as whole lists; a 410 Gone relists', async () => {
    api.put('watched', slice('w-a', 'rdbnet', [{ ip: '127.0.0.21', ready: true }]));
    const { provider } = openProvider('provider=k8s service=rdbnet namespace=watched', inCluster());
    const controller = new AbortController();
    const seen: string[][] = [];
    let wake: (() => void) | undefined;
    const waitFor = async (want: string[]): Promise<void> => {
      const deadline = Date.now() + 15_000;
      while (JSON.stringify(seen.at(-1)) !== JSON.stringify(want)) {
        assert.ok(
          Date.now() < deadline,
          `watch never showed ${want.join(',')}: ${JSON.stringify(seen)}`,
        );
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 200);
        });
      }
    };
    const watching = provider.watch!((nodes) => {
      seen.push(nodes.map((n) => n.address));
      wake?.();
    }, controller.signal);
    try {
      await waitFor(['127.0.0.21:7400']);
      api.put('watched', slice('w-b', 'rdbnet', [{ ip: '127.0.0.22', ready: true }]));
      await waitFor(['127.0.0.21:7400', '127.0.0.22:7400']);
      api.put('watched', slice('w-a', 'rdbnet', [{ ip: '127.0.0.21', ready: false }]));
      await waitFor(['127.0.0.22:7400']);
      const listCount = () =>
        api.requests.filter((r) => r.includes('namespaces/watched') && !r.includes('watch=1'))
          .length;
      const lists = listCount();
      api.compact();
      api.dropWatches();
      const deadline = Date.now() + 15_000;
      while (listCount() === lists) {
        assert.ok(Date.now() < deadline, 'a 410 Gone made the provider list again');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      api.put('watched', slice('w-c', 'rdbnet', [{ ip: '127.0.0.23', ready: true }]));
      await waitFor(['127.0.0.22:7400', '127.0.0.23:7400']);
    } finally {
      controller.abort();
      await watching;
      await provider.close?.();
    }
  });
});

describe('provider=k8s watch refused (RBAC without watch)', () => {
  test('after repeated 403s on watch the provider polls the list instead', async () => {
    api.refuseWatches = true;
    api.put('polled', slice('p-a', 'rdbnet', [{ ip: '127.0.0.71', ready: true }]));
    const ctx = inCluster();
    const { provider } = openProvider('provider=k8s service=rdbnet namespace=polled', ctx);
    const controller = new AbortController();
    const seen: string[][] = [];
    const watching = provider.watch!(
      (nodes) => seen.push(nodes.map((n) => n.address)),
      controller.signal,
    );
    try {
      const deadline = Date.now() + 30_000;
      const refusals = () => ctx.lines.filter((l) => l.includes('watch refused (HTTP 403')).length;
      while (refusals() < 3) {
        assert.ok(Date.now() < deadline, `never refused three times: ${ctx.lines.join(' | ')}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(seen, [['127.0.0.71:7400']]);
      api.put('polled', slice('p-b', 'rdbnet', [{ ip: '127.0.0.72', ready: true }]));
      while (
        JSON.stringify(seen.at(-1)) !== JSON.stringify(['127.0.0.71:7400', '127.0.0.72:7400'])
      ) {
        assert.ok(
          Date.now() < deadline,
          `the poll never showed the new slice: ${JSON.stringify(seen)}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(refusals(), 3, 'no more watch attempts once polling');
    } finally {
      controller.abort();
      await watching;
      await provider.close?.();
      api.refuseWatches = false;
    }
  });
});

specChecks('k8s', [
  ['provider=k8s service=Not_A_Name', 'service'],
  ['provider=k8s service=rdbnet namespace=a/b', 'namespace'],
  ['provider=k8s service=rdbnet port_name=much-too-long-port-name', 'port_name'],
  ['provider=k8s service=rdbnet label_selector=a;b', 'label_selector'],
  ['provider=k8s service=rdbnet timeout=forever', 'timeout'],
]);
