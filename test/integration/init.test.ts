/**
 * `rdbnet init` as a script runs it (no terminal: no prompts): the files it writes start three
 * real node processes (`node start --config <id>.json`, nothing else) that form one cluster,
 * asked with the admin certificate it made. Refusals create nothing: a duplicate id or address
 * (exit 64), a directory that is not empty (exit 1).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { ClusterStatusReply } from '../../src/core/protocol/messages.ts';
import { adminConnections } from '../helpers/admin-connections.ts';
import { freePortRange } from '../helpers/ports.ts';
import {
  describeResult,
  killAllNodes,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const homes: { dir: string; cleanup(): Promise<void> }[] = [];
let certsDir = '';
const admin = adminConnections(() => certsDir);
const until = poller(200);

async function scratch(): Promise<string> {
  const home = await tempHome('rdbnet-init-');
  homes.push(home);
  return home.dir;
}

describe('rdbnet init', { timeout: 180_000 }, () => {
  after(async () => {
    admin.closeAll();
    await killAllNodes();
    for (const home of homes) await home.cleanup();
  });

  test('its files start a three-node cluster', async () => {
    const dir = join(await scratch(), 'prod');
    const base = await freePortRange(3);
    const spec = [0, 1, 2].map((i) => `db${i + 1}=127.0.0.1:${base + i}`).join(',');
    const made = await runCli(
      ['init', '--cluster', 'prod', '--nodes', spec, '--dir', dir, '--json'],
      {
        CI: 'true',
      },
    );
    assert.equal(made.code, 0, describeResult(made));
    const result = JSON.parse(made.stdout) as {
      cluster: string;
      nodes: { id: string; config: string }[];
      certsDir: string;
      systemdUnit: string | null;
    };
    assert.equal(result.cluster, 'prod');
    assert.deepEqual(
      result.nodes.map((node) => node.id),
      ['db1', 'db2', 'db3'],
    );
    assert.equal(result.systemdUnit, null);
    certsDir = result.certsDir;
    const config = JSON.parse(await readFile(result.nodes[1]!.config, 'utf8'));
    assert.deepEqual(config.join, [`127.0.0.1:${base}`, `127.0.0.1:${base + 2}`]);

    // Only the config file: no other flag, no RDBNET_HOME.
    const nodes = await Promise.all(
      result.nodes.map((node) =>
        startNode(['--config', node.config], { RDBNET_HOME: join(dir, 'unused-home') }, 60_000),
      ),
    );
    let status: ClusterStatusReply;
    try {
      status = await until(
        'one leader and three voters',
        async () => {
          const reply: ClusterStatusReply = await (await admin.client(nodes[0]!.address)).ask(
            'clusterStatusRequest',
            { localOnly: true },
          );
          return reply.leader !== '' && reply.members.filter((m) => m.voter).length === 3
            ? reply
            : undefined;
        },
        90_000,
      );
    } catch (error) {
      // The nodes' own account of what happened, for whoever reads the failure.
      const tails = nodes.map(
        (n) => `--- ${n.info.id}\n${n.stderr().split('\n').slice(-30).join('\n')}`,
      );
      assert.fail(`${(error as Error).message}\n${tails.join('\n')}`);
    }
    assert.ok(['db1', 'db2', 'db3'].includes(status.leader));
    assert.equal(existsSync(join(dir, 'unused-home')), false, 'every path came from the config');
  });

  test('--systemd writes the unit and roots the nodes in /var/lib/rdbnet', async () => {
    const dir = join(await scratch(), 'svc');
    const made = await runCli(['init', '--systemd', '--dir', dir, '--json'], { CI: 'true' });
    assert.equal(made.code, 0, describeResult(made));
    const result = JSON.parse(made.stdout);
    assert.match(await readFile(result.systemdUnit, 'utf8'), /^ExecStart=.* node start --config/m);
    const config = JSON.parse(await readFile(join(dir, 'n1.json'), 'utf8'));
    assert.equal(config.dataDir, '/var/lib/rdbnet/n1');
    assert.equal(config.certsDir, '/var/lib/rdbnet/certs');
  });

  test('refusals create nothing', async () => {
    const root = await scratch();
    const twice = await runCli(
      ['init', '--nodes', 'a=127.0.0.1:7001,a=127.0.0.1:7002', '--dir', join(root, 'x')],
      { CI: 'true' },
    );
    assert.equal(twice.code, 64, describeResult(twice));
    assert.match(twice.stderr, /node id a is twice/);
    const sameAddress = await runCli(
      ['init', '--nodes', '127.0.0.1:7001,127.0.0.1:7001', '--dir', join(root, 'x')],
      { CI: 'true' },
    );
    assert.equal(sameAddress.code, 64, describeResult(sameAddress));
    const noPort = await runCli(['init', '--nodes', 'a=db.internal', '--dir', join(root, 'x')], {
      CI: 'true',
    });
    assert.equal(noPort.code, 64, describeResult(noPort));
    assert.equal(existsSync(join(root, 'x')), false);

    const used = join(root, 'used');
    const first = await runCli(['init', '--dir', used], { CI: 'true' });
    assert.equal(first.code, 0, describeResult(first));
    const before = (await readdir(used)).sort();
    const again = await runCli(['init', '--dir', used, '--cluster', 'other'], { CI: 'true' });
    assert.equal(again.code, 1, describeResult(again));
    assert.match(again.stderr, /is not empty/);
    assert.deepEqual((await readdir(used)).sort(), before);
  });
});
