/**
 * `rdbnet dev`: three real node processes from one command form one cluster by themselves;
 * SIGINT stops every node and exits 0; ports in use are refused (exit 64) before anything is
 * created. Loopback only; the base port is picked where three consecutive ports are free.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { ClusterStatusReply } from '../../src/core/protocol/messages.ts';
import { adminConnections } from '../helpers/admin-connections.ts';
import { freePortRange, listenOn } from '../helpers/ports.ts';
import { BIN, describeResult, poller, runCli, tempHome } from '../helpers/processes.ts';

let home: { dir: string; cleanup(): Promise<void> } | undefined;
const admin = adminConnections(() => join(home!.dir, 'certs'));
const until = poller(200);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('rdbnet dev', { timeout: 180_000 }, () => {
  after(async () => {
    admin.closeAll();
    await home?.cleanup();
  });

  test('three nodes form one cluster; SIGINT stops them all', async () => {
    home = await tempHome('rdbnet-dev-');
    const base = await freePortRange(3);
    const dev = spawn(
      process.execPath,
      [BIN, 'dev', '--nodes', '3', '--base-port', String(base), '--dir', home.dir, '--json'],
      { env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((done) => dev.once('exit', (code) => done(code)));
    try {
      let stdout = '';
      dev.stdout!.on('data', (chunk) => {
        stdout += chunk;
      });
      let stderr = '';
      dev.stderr!.on('data', (chunk) => {
        stderr = (stderr + chunk).slice(-20_000);
      });
      const doc = await until(
        'the JSON document of the nodes',
        async () => {
          try {
            return JSON.parse(stdout) as {
              dir: string;
              nodes: { id: string; address: string; pid: number }[];
            };
          } catch {
            return undefined;
          }
        },
        120_000,
      );
      assert.deepEqual(
        doc.nodes.map((node) => [node.id, node.address]),
        [0, 1, 2].map((i) => [`n${i + 1}`, `127.0.0.1:${base + i}`]),
      );
      assert.match(stderr, /^\[n1\] /m);
      const status = await until(
        'one leader and three voters on n1',
        async () => {
          const reply: ClusterStatusReply = await (await admin.client(doc.nodes[0]!.address)).ask(
            'clusterStatusRequest',
            { localOnly: true },
          );
          const voters = reply.members.filter((member) => member.voter).length;
          return reply.leader !== '' && voters === 3 ? reply : undefined;
        },
        90_000,
      );
      assert.ok(['n1', 'n2', 'n3'].includes(status.leader));
      admin.closeAll();
      dev.kill('SIGINT');
      assert.equal(await exited, 0, stderr);
      for (const node of doc.nodes) assert.equal(alive(node.pid), false, `${node.id} still runs`);
    } finally {
      if (dev.exitCode === null) dev.kill('SIGKILL');
    }
  });

  test('a port in use is refused before anything is created', async () => {
    const base = await freePortRange(3);
    const holder = await listenOn(base + 1);
    assert.ok(holder);
    try {
      const scratch = await tempHome('rdbnet-dev-refused-');
      const dir = join(scratch.dir, 'never');
      const result = await runCli(['dev', '--base-port', String(base), '--dir', dir], {}, 30_000);
      assert.equal(result.code, 64, describeResult(result));
      assert.match(result.stderr, new RegExp(`port ${base + 1} on 127.0.0.1 is in use`));
      assert.equal(existsSync(dir), false);
      await scratch.cleanup();
    } finally {
      await new Promise((done) => holder.close(done));
    }
  });
});
