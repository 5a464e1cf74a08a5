/**
 * Validate, then act (issue 16, defect 3): a command refused for its input has changed
 * nothing — no file written, no node contacted. The README's literal `certs rotate --ca
 * --nodes 127.0.0.1:7101,…`, and `node start` on a port in use or with a certificates
 * directory it cannot use, on real processes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { describeResult, runCli, tempHome } from '../helpers/processes.ts';

const homes: { cleanup(): Promise<void> }[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((done) => server.close(done))));
  await Promise.all(homes.splice(0).map((home) => home.cleanup()));
});

async function newHome(): Promise<string> {
  const home = await tempHome('rdbnet-validate-');
  homes.push(home);
  return home.dir;
}

function envFor(home: string): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', RDBNET_OUTPUT: '', DEBUG: '' };
}

/** Every file under `dir` with a hash of its content: equal snapshots, nothing changed. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  let entries: string[];
  try {
    entries = await readdir(dir, { recursive: true });
  } catch {
    return files;
  }
  for (const entry of entries.sort()) {
    try {
      const content = await readFile(join(dir, entry));
      files[entry] = createHash('sha256').update(content).digest('hex');
    } catch {
      files[entry] = 'directory';
    }
  }
  return files;
}

/** A TCP listener on a loopback port that counts the connections it gets. */
async function countingListener(): Promise<{ address: string; connections: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { address: `127.0.0.1:${port}`, connections: () => count };
}

describe('validate, then act', () => {
  test('certs rotate --ca with `…` in --nodes: exit 64, no CA made, no node asked', async () => {
    const home = await newHome();
    const pki = join(home, 'pki');
    const init = await runCli(
      ['certs', 'init', '--cluster', 'demo', '--certs-dir', pki],
      envFor(home),
    );
    assert.equal(init.code, 0, describeResult(init));
    const client = await runCli(
      ['certs', 'client', '--name', 'admin', '--role', 'admin', '--certs-dir', pki],
      envFor(home),
    );
    assert.equal(client.code, 0, describeResult(client));
    const before = await snapshot(pki);
    const node = await countingListener();

    const result = await runCli(
      ['certs', 'rotate', '--ca', '--certs-dir', pki, '--nodes', `${node.address},…`],
      envFor(home),
    );
    assert.equal(result.code, 64, describeResult(result));
    assert.match(result.stderr, /^Error: .*'…'/m);
    assert.deepEqual(await snapshot(pki), before, 'the certificates directory changed');
    assert.equal(node.connections(), 0, 'a node was contacted before the input was checked');
  });

  test('node start on a port in use: exit 1, no certificates and no data dir written', async () => {
    const home = await newHome();
    const busy = await countingListener();
    const result = await runCli(['node', 'start', '--listen', busy.address], envFor(home), 15_000);
    assert.equal(result.code, 1, describeResult(result));
    assert.match(result.stderr, /^Error: cannot listen on .*EADDRINUSE/m);
    assert.deepEqual(await snapshot(home), {}, 'files were written before the start failed');
  });

  test('node start with a --certs-dir without a CA: nothing written', async () => {
    const home = await newHome();
    const result = await runCli(
      [
        'node',
        'start',
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        join(home, 'n1'),
        '--certs-dir',
        join(home, 'empty'),
        '--id',
        'n1',
      ],
      envFor(home),
      15_000,
    );
    assert.equal(result.code, 1, describeResult(result));
    assert.match(result.stderr, /CA certificate not found/);
    assert.deepEqual(await snapshot(home), {}, 'files were written before the start failed');
  });

  test('node start with a --certs-dir and no --id: exit 64 before a node record is made', async () => {
    const home = await newHome();
    const pki = join(home, 'pki');
    const init = await runCli(
      ['certs', 'init', '--cluster', 'demo', '--certs-dir', pki],
      envFor(home),
    );
    assert.equal(init.code, 0, describeResult(init));
    const before = await snapshot(home);
    const result = await runCli(
      [
        'node',
        'start',
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        join(home, 'n1'),
        '--certs-dir',
        pki,
      ],
      envFor(home),
      15_000,
    );
    assert.equal(result.code, 64, describeResult(result));
    assert.match(result.stderr, /without --id/);
    assert.deepEqual(await snapshot(home), before, 'files were written before the start failed');
  });
});
