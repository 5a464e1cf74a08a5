/**
 * Prometheus metrics on real processes: three `rdbnet node start --metrics 127.0.0.1:0` nodes
 * form a cluster with --bootstrap-expect; each one's /metrics passes `promtool check metrics`
 * and counts the requests the CLI sent it; then a real Prometheus server (Debian's
 * `prometheus`, a temp config and storage, listening on 127.0.0.1 only) scrapes all three and
 * its HTTP API is asked for `up`, a Raft and a gossip metric of each.
 *
 * .ci/run installs promtool and prometheus (Debian `prometheus`); loopback only.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  describeResult,
  killAllNodes,
  type NodeProcess,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const hasPrometheus =
  spawnSync('promtool', ['--version']).status === 0 &&
  spawnSync('prometheus', ['--version']).status === 0;
const skip = hasPrometheus
  ? false
  : 'promtool/prometheus not installed (Debian package prometheus; .ci/run installs it)';

/** Safety bounds, far above what a quiet machine needs (a few seconds each). */
const CLUSTER_FORMED_MS_MAX = 30_000;
const PROMETHEUS_SEES_ALL_MS_MAX = 60_000;

let home: { dir: string; cleanup(): Promise<void> };
const nodes: NodeProcess[] = [];
let prometheus: ChildProcess | undefined;
let prometheusLog = '';

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

function metricsAddress(node: NodeProcess): string {
  const address = (node.info as { metrics?: string | null }).metrics;
  assert.ok(typeof address === 'string', `node start --json names its metrics address`);
  return address;
}

async function scrape(node: NodeProcess): Promise<string> {
  const response = await fetch(`http://${metricsAddress(node)}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

/** The value of one sample line `name{labels} value`, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const until = poller(100);

before(async () => {
  home = await tempHome('rdbnet-metrics-');
});

after(async () => {
  if (prometheus !== undefined && prometheus.exitCode === null) {
    const exited = new Promise((resolve) => prometheus!.once('exit', resolve));
    prometheus.kill('SIGKILL');
    await exited;
  }
  await killAllNodes();
  await home.cleanup();
});

describe('Prometheus metrics of real nodes', { skip }, () => {
  test('three nodes with --metrics: promtool accepts each /metrics, RPCs are counted', async () => {
    const start = (id: string, seeds: string) =>
      startNode(
        [
          '--id',
          id,
          '--listen',
          '127.0.0.1:0',
          '--data-dir',
          join(home.dir, id),
          '--join',
          seeds,
          '--bootstrap-expect',
          '3',
          '--metrics',
          '127.0.0.1:0',
        ],
        env(),
      );
    const n1 = await start('n1', '');
    nodes.push(n1);
    nodes.push(...(await Promise.all([start('n2', n1.address), start('n3', n1.address)])));

    await until(
      'a leader known to all three, seen in /metrics',
      async () => {
        const texts = await Promise.all(nodes.map(scrape));
        return texts.every((text) => sample(text, 'rdbnet_raft_has_leader') === 1)
          ? true
          : undefined;
      },
      CLUSTER_FORMED_MS_MAX,
    );

    const health = await runCli(['health', '--json', '--node', n1.address], env(), 30_000);
    assert.ok(health.code === 0 || health.code === 1, describeResult(health));

    for (const node of nodes) {
      const text = await scrape(node);
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, timeout: 20_000 });
      assert.equal(
        check.status,
        0,
        `promtool check metrics on ${node.info.id}: ${check.stdout}${check.stderr}`,
      );
      assert.equal(`${check.stdout}${check.stderr}`.trim(), '', 'promtool has no complaint');
      assert.equal(sample(text, 'rdbnet_gossip_members{state="alive"}'), 3);
      assert.ok((sample(text, 'rdbnet_raft_term') ?? 0) >= 1);
      assert.ok((sample(text, 'rdbnet_raft_commit_index') ?? 0) >= 1);
      assert.ok((sample(text, 'rdbnet_certificate_expiry_seconds') ?? 0) > 86_400);
      assert.ok((sample(text, 'rdbnet_gossip_probes_total') ?? 0) > 0);
      // Raft's batches between members are RPCs too.
      assert.ok(
        (sample(text, 'rdbnet_rpc_requests_total{method="raft.batch",outcome="ok"}') ?? 0) > 0,
      );
    }
    const n1Text = await scrape(n1);
    assert.ok(
      (sample(n1Text, 'rdbnet_rpc_requests_total{method="health",outcome="ok"}') ?? 0) >= 1,
      'the health request of `rdbnet health` is counted',
    );
    assert.ok((sample(n1Text, 'rdbnet_rpc_duration_seconds_count{method="health"}') ?? 0) >= 1);

    // The metrics listener is read-only.
    const post = await fetch(`http://${metricsAddress(n1)}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
  });

  test('a real Prometheus scrapes all three: up, raft term and alive members of each', async () => {
    assert.equal(nodes.length, 3, 'the cluster of the previous test');
    const port = await freePort();
    const config = join(home.dir, 'prometheus.yml');
    const targets = nodes.map((node) => `'${metricsAddress(node)}'`).join(', ');
    await writeFile(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        'scrape_configs:',
        "  - job_name: 'rdbnet'",
        '    static_configs:',
        `      - targets: [${targets}]`,
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(home.dir, 'prometheus-data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus.stderr!.on('data', (chunk) => {
      prometheusLog = (prometheusLog + chunk).slice(-8000);
    });
    const query = async (promql: string) => {
      const response = await fetch(
        `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`,
      );
      const body = (await response.json()) as {
        status: string;
        data: { result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      assert.equal(body.status, 'success');
      return body.data.result;
    };
    const byInstance = (result: Awaited<ReturnType<typeof query>>) =>
      new Map(result.map((row) => [row.metric['instance'], Number(row.value[1])]));
    const instances = nodes.map(metricsAddress).sort();

    try {
      await until(
        'Prometheus reports up == 1 for all three nodes',
        async () => {
          const up = byInstance(await query('up{job="rdbnet"}'));
          return instances.every((instance) => up.get(instance) === 1) ? true : undefined;
        },
        PROMETHEUS_SEES_ALL_MS_MAX,
      );
      const terms = byInstance(await query('rdbnet_raft_term'));
      assert.deepEqual([...terms.keys()].sort(), instances);
      for (const term of terms.values()) assert.ok(term >= 1);
      const alive = byInstance(await query('rdbnet_gossip_members{state="alive"}'));
      assert.deepEqual([...alive.keys()].sort(), instances);
      for (const count of alive.values()) assert.equal(count, 3);
      const leaders = await query('sum(rdbnet_raft_role{role="leader"})');
      assert.equal(Number(leaders[0]!.value[1]), 1, 'exactly one leader among the three');
    } catch (error) {
      throw new Error(`${String(error)}\nprometheus log (tail):\n${prometheusLog}`);
    }
  });
});
