/**
 * `rdbnet monitor` against a real node: the recent lines first, then new ones as they are
 * logged; with --log-level debug the node records debug lines for the monitor while its own
 * stderr stays at info; SIGINT exits 0; an unreachable node is exit 69.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  BIN,
  describeResult,
  killAllNodes,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

let home: { dir: string; cleanup(): Promise<void> } | undefined;
const until = poller(100);

describe('rdbnet monitor', { timeout: 120_000 }, () => {
  after(async () => {
    await killAllNodes();
    await home?.cleanup();
  });

  test('streams the node log, debug lines included when asked, until SIGINT', async () => {
    home = await tempHome('rdbnet-monitor-');
    const env = { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '' };
    const node = await startNode(
      ['--id', 'n1', '--listen', '127.0.0.1:0', '--data-dir', join(home.dir, 'n1')],
      env,
    );
    const monitor = spawn(
      process.execPath,
      [BIN, 'monitor', '--node', node.address, '--log-level', 'debug', '--lines', '100', '--json'],
      { env: { ...process.env, CI: 'true', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((done) => monitor.once('exit', (code) => done(code)));
    try {
      let stdout = '';
      monitor.stdout!.on('data', (chunk) => {
        stdout += chunk;
      });
      const messages = () =>
        stdout
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => (JSON.parse(line) as { msg: string }).msg);
      await until(
        'the start of the node among the recent lines',
        async () => (messages().includes('node running') ? true : undefined),
        30_000,
      );
      const before = messages().filter((msg) => msg === 'connection open').length;
      // Another client connects: the node logs it at debug, for the monitor only.
      const status = await runCli(['node', 'status', '--node', node.address], env);
      assert.equal(status.code, 0, describeResult(status));
      const opened = () => messages().filter((msg) => msg === 'connection open').length;
      await until(
        'the debug line of the new connection',
        async () => (opened() > before ? true : undefined),
        30_000,
      );
      assert.doesNotMatch(node.stderr(), /connection open/, 'the node itself logs at info');
      monitor.kill('SIGINT');
      assert.equal(await exited, 0);
    } finally {
      if (monitor.exitCode === null) monitor.kill('SIGKILL');
    }
  });

  test('an unreachable node is exit 69', async () => {
    const result = await runCli(['monitor', '--node', '127.0.0.1:1', '--timeout', '2000'], {
      RDBNET_HOME: home!.dir,
    });
    assert.equal(result.code, 69, describeResult(result));
  });
});
