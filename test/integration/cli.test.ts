/**
 * The command-line contract of ../shared/docs/CLI.md, exercised on real processes: zero-config
 * start, health/status output, exit codes, error lines, signals, data-dir lock, --insecure,
 * --config and certificates from another cluster. Every test runs in its own RDBNET_HOME.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { connect as connectTls } from 'node:tls';
import { encodeFrame, FrameKind, makeFlags } from '../../src/core/protocol/frame.ts';
import { makeHello } from '../../src/core/protocol/handshake.ts';
import { encodeEnvelope } from '../../src/core/protocol/messages.ts';
import { ensureLocalCertificates } from '../../src/core/security/certs-dir.ts';
import {
  type CliResult,
  describeResult,
  killAllNodes,
  type NodeProcess,
  REPO_ROOT,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const VERSION = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

const homes: { cleanup(): Promise<void> }[] = [];
const sockets = new Set<Socket>();

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await killAllNodes();
  await Promise.all(homes.splice(0).map((home) => home.cleanup()));
});

async function newHome(): Promise<string> {
  const home = await tempHome('rdbnet-cli-');
  homes.push(home);
  return home.dir;
}

/** Only RDBNET_HOME decides; variables of the surrounding shell must not leak in. */
function envFor(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '', ...extra };
}

function parseJson<T = Record<string, unknown>>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    assert.fail(
      `stdout is not one JSON document (exit ${result.code}):\n${result.stdout}\n${result.stderr}`,
    );
  }
}

/** One `Error:` line, optionally one `Hint:` line, no stack trace; node logs (JSON) ignored. */
function assertCleanError(result: CliResult, pattern?: RegExp): string {
  assert.ok(!result.stderr.includes('    at '), `stack trace on stderr:\n${result.stderr}`);
  const lines = result.stderr
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('{"ts":'));
  assert.equal(
    lines.filter((line) => line.startsWith('Error:')).length,
    1,
    `expected one Error: line:\n${result.stderr}`,
  );
  assert.match(lines[0] ?? '', /^Error: \S/, result.stderr);
  assert.ok(lines.length <= 2, `more than Error: + Hint: on stderr:\n${result.stderr}`);
  if (lines.length === 2) assert.match(lines[1] ?? '', /^Hint: \S/, result.stderr);
  if (pattern !== undefined) assert.match(lines[0] ?? '', pattern);
  return lines[0] ?? '';
}

interface JsonError {
  error: { code: string; message: string; hint?: string };
}

function assertJsonError(result: CliResult, code?: string): JsonError['error'] {
  assert.ok(!result.stdout.includes('    at '), `stack trace on stdout:\n${result.stdout}`);
  assert.ok(!result.stderr.includes('    at '), `stack trace on stderr:\n${result.stderr}`);
  const { error } = parseJson<JsonError>(result);
  assert.equal(typeof error?.code, 'string', describeResult(result));
  assert.equal(typeof error.message, 'string', describeResult(result));
  assert.ok(error.message.length > 0);
  if (code !== undefined) assert.equal(error.code, code, describeResult(result));
  return error;
}

function hostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return {
    host: address.slice(0, colon).replace(/^\[|\]$/g, ''),
    port: Number(address.slice(colon + 1)),
  };
}

/** Waits until the node has answered a request. */
async function serving(node: NodeProcess, home: string): Promise<void> {
  const health = await runCli(['health', '--json', '--node', node.address], envFor(home));
  assert.equal(health.code, 0, describeResult(health));
}

/** A loopback port nothing listens on (port 1 is privileged and unused on test machines). */
const DEAD_ADDRESS = '127.0.0.1:1';

describe('zero-config node', () => {
  test('creates the CA, node and admin certificates, private keys mode 0600', async () => {
    const home = await newHome();
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    const certs = join(home, 'certs');
    assert.equal((node.info as { tls?: boolean }).tls, true);
    assert.equal(node.info.certsDir, certs);
    assert.equal(node.info.dataDir, join(home, 'node'));
    assert.match(node.address, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(hostPort(node.address).port, 0);
    const id = node.info.id;
    const files = [
      'ca.crt',
      'ca.key',
      `node.${id}.crt`,
      `node.${id}.key`,
      'client.admin.crt',
      'client.admin.key',
    ];
    for (const file of files) {
      const info = await stat(join(certs, file));
      assert.ok(info.isFile() && info.size > 0, `${file} missing or empty`);
      if (file.endsWith('.key')) {
        assert.equal((info.mode & 0o777).toString(8), '600', `${file} mode`);
      }
    }
    assert.match(readFileSync(join(certs, 'ca.crt'), 'utf8'), /-----BEGIN CERTIFICATE-----/);
  });

  test('health --json and node status --json carry the contract fields', async () => {
    const home = await newHome();
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));

    const health = await runCli(['health', '--json', '--node', node.address], envFor(home));
    assert.equal(health.code, 0, describeResult(health));
    const report = parseJson<{
      status: string;
      nodes: { id: string; state: string; phi: number; lastHeartbeatMs: number }[];
    }>(health);
    assert.equal(report.status, 'healthy');
    assert.ok(Array.isArray(report.nodes) && report.nodes.length >= 1);
    const [first] = report.nodes;
    assert.equal(first?.id, node.info.id);
    assert.equal(typeof first?.state, 'string');
    assert.equal(typeof first?.phi, 'number');
    assert.equal(typeof first?.lastHeartbeatMs, 'number');

    const status = await runCli(['node', 'status', '--json', '--node', node.address], envFor(home));
    assert.equal(status.code, 0, describeResult(status));
    const facts = parseJson<Record<string, unknown>>(status);
    assert.equal(facts['id'], node.info.id);
    assert.equal(facts['address'], node.info.address);
    assert.equal(facts['version'], VERSION);
    assert.equal(facts['protocolVersion'], 1);
    assert.equal(typeof facts['uptimeMs'], 'number');
    assert.ok((facts['uptimeMs'] as number) >= 0);
    assert.equal(facts['state'], 'running');
  });

  test('RDBNET_NODE names the node when --node is absent', async () => {
    const home = await newHome();
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    const env = envFor(home, { RDBNET_NODE: node.address });

    const health = await runCli(['health', '--json'], env);
    assert.equal(health.code, 0, describeResult(health));
    assert.equal(parseJson<{ nodes: { id: string }[] }>(health).nodes[0]?.id, node.info.id);

    const status = await runCli(['node', 'status', '--json'], env);
    assert.equal(status.code, 0, describeResult(status));
    assert.equal(parseJson(status)['id'], node.info.id);

    // --node wins over the environment.
    const override = await runCli(['node', 'status', '--json', '--node', DEAD_ADDRESS], env);
    assert.equal(override.code, 69, describeResult(override));
  });

  test('with -o table, health and node status print tables', async () => {
    const home = await newHome();
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));

    const health = await runCli(['health', '--node', node.address, '-o', 'table'], envFor(home));
    assert.equal(health.code, 0, describeResult(health));
    assert.match(health.stdout, /healthy/);
    assert.ok(health.stdout.includes(node.info.id), health.stdout);
    assert.match(health.stdout, /[┌│└]/, 'no table borders');
    assert.throws(() => JSON.parse(health.stdout));

    const status = await runCli(
      ['node', 'status', '--node', node.address, '--output=table'],
      envFor(home),
    );
    assert.equal(status.code, 0, describeResult(status));
    assert.ok(status.stdout.includes(node.info.id), status.stdout);
    assert.ok(status.stdout.includes(node.address), status.stdout);
    assert.match(status.stdout, /[┌│└]/, 'no table borders');
    assert.match(status.stdout, /running/);
  });
});

describe('unreachable node', () => {
  /** A home holding valid client certificates, so that only reachability can fail. */
  async function homeWithCerts(): Promise<string> {
    const home = await newHome();
    await ensureLocalCertificates({ dir: join(home, 'certs'), cluster: 'rdbnet', hosts: [] });
    return home;
  }

  test('health exits 3 with one Error: line and no stack trace', async () => {
    const home = await homeWithCerts();
    const result = await runCli(['health', '--node', DEAD_ADDRESS], envFor(home));
    assert.equal(result.code, 3, describeResult(result));
    assertCleanError(result, /127\.0\.0\.1:1/);
    assert.equal(result.stdout, '');
  });

  test('health --json prints the error object on stdout and exits 3', async () => {
    const home = await homeWithCerts();
    const result = await runCli(['health', '--json', '--node', DEAD_ADDRESS], envFor(home));
    assert.equal(result.code, 3, describeResult(result));
    const error = assertJsonError(result, 'RDB_NODE_UNREACHABLE');
    assert.match(error.message, /127\.0\.0\.1:1/);
  });

  test('node status exits 69 (human, --json and --insecure)', async () => {
    const home = await homeWithCerts();
    const human = await runCli(['node', 'status', '--node', DEAD_ADDRESS], envFor(home));
    assert.equal(human.code, 69, describeResult(human));
    assertCleanError(human);

    const json = await runCli(['node', 'status', '--json', '--node', DEAD_ADDRESS], envFor(home));
    assert.equal(json.code, 69, describeResult(json));
    assertJsonError(json, 'RDB_NODE_UNREACHABLE');

    const insecure = await runCli(
      ['node', 'status', '--insecure', '--node', DEAD_ADDRESS],
      envFor(await newHome()),
    );
    assert.equal(insecure.code, 69, describeResult(insecure));
    assertCleanError(insecure);
  });

  test('missing client certificates are a clear error, not a crash', async () => {
    const home = await newHome();
    const result = await runCli(['node', 'status', '--node', DEAD_ADDRESS], envFor(home));
    assert.equal(result.code, 1, describeResult(result));
    assertCleanError(result, /ca\.crt/);
  });
});

describe('usage errors and help', () => {
  test('an unknown flag exits 64, human and --json', async () => {
    const home = await newHome();
    for (const command of [['health'], ['node', 'status'], ['node', 'start']]) {
      const human = await runCli([...command, '--no-such-flag'], envFor(home));
      assert.equal(human.code, 64, describeResult(human));
      assertCleanError(human, /no-such-flag/);

      const json = await runCli([...command, '--no-such-flag', '--json'], envFor(home));
      assert.equal(json.code, 64, describeResult(json));
      assertJsonError(json, 'RDB_USAGE');
    }
  });

  test('a malformed --node address exits 64', async () => {
    const home = await newHome();
    const result = await runCli(['health', '--node', 'not-an-address'], envFor(home));
    assert.equal(result.code, 64, describeResult(result));
    assertCleanError(result, /not-an-address/);
    const json = await runCli(['node', 'status', '--json', '--node', 'x:99999'], envFor(home));
    assert.equal(json.code, 64, describeResult(json));
    assertJsonError(json, 'RDB_USAGE');
  });

  test('a bad flag value (--timeout abc / 0) exits 64 with RDB_USAGE', {}, async () => {
    const home = await newHome();
    const health = await runCli(['health', '--timeout', 'abc'], envFor(home));
    assert.equal(health.code, 64, describeResult(health));
    assertCleanError(health, /--timeout/);

    const status = await runCli(['node', 'status', '--json', '--timeout', '0'], envFor(home));
    assert.equal(status.code, 64, describeResult(status));
    assertJsonError(status, 'RDB_USAGE');
  });

  test('an unknown command exits 64, human and --json', async () => {
    const home = await newHome();
    const human = await runCli(['frobnicate'], envFor(home));
    assert.equal(human.code, 64, describeResult(human));
    assertCleanError(human, /frobnicate/);

    const json = await runCli(['node', 'frobnicate', '--json'], envFor(home));
    assert.equal(json.code, 64, describeResult(json));
    assertJsonError(json, 'RDB_USAGE');
  });

  test('help reaches every command: root lists node and health, node lists its two', async () => {
    const home = await newHome();
    const root = await runCli(['--help'], envFor(home));
    assert.equal(root.code, 0, describeResult(root));
    assert.match(root.stdout, /^\s+health\s/m);
    assert.match(root.stdout, /^\s+node\s/m);

    const node = await runCli(['node', '--help'], envFor(home));
    assert.equal(node.code, 0, describeResult(node));
    assert.match(node.stdout, /node start/);
    assert.match(node.stdout, /node status/);

    const health = await runCli(['health', '--help'], envFor(home));
    assert.equal(health.code, 0, describeResult(health));
    assert.match(health.stdout, /--node/);
    assert.match(health.stdout, /--json/);
  });

  test('root --help lists node start, node status and health', {}, async () => {
    const home = await newHome();
    const root = await runCli(['--help'], envFor(home));
    assert.equal(root.code, 0, describeResult(root));
    assert.match(root.stdout, /node start/);
    assert.match(root.stdout, /node status/);
    assert.match(root.stdout, /health/);
  });

  test('--version exits 0 and prints the package version', async () => {
    const home = await newHome();
    const result = await runCli(['--version'], envFor(home));
    assert.equal(result.code, 0, describeResult(result));
    assert.ok(result.stdout.includes(VERSION), result.stdout);
  });
});

describe('node lifecycle', () => {
  test('SIGTERM stops the node with exit 0 within 5 s and releases the data dir', async () => {
    const home = await newHome();
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    assert.ok(existsSync(join(home, 'node', 'LOCK')));
    await serving(node, home);
    const stopped = await node.stop();
    assert.equal(stopped.signal, null, node.stderr());
    assert.equal(stopped.code, 0, node.stderr());
    assert.ok(stopped.elapsedMs < 5000, `stop took ${Math.round(stopped.elapsedMs)} ms`);
    assert.ok(!existsSync(join(home, 'node', 'LOCK')), 'LOCK left behind');
    assert.match(node.stderr(), /node stopped/);
  });

  test('SIGTERM with an idle, handshaken client connection still exits 0 within 5 s', async () => {
    const home = await newHome();
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    const certs = join(home, 'certs');
    const socket = connectTls({
      ...hostPort(node.address),
      ca: readFileSync(join(certs, 'ca.crt')),
      cert: readFileSync(join(certs, 'client.admin.crt')),
      key: readFileSync(join(certs, 'client.admin.key')),
      checkServerIdentity: () => undefined,
    });
    sockets.add(socket);
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    const hello = makeHello({
      id: 'admin',
      clusterId: node.info.clusterId,
      role: 'client',
      softwareVersion: 'test',
    });
    socket.write(encodeFrame(makeFlags(FrameKind.Request, 0, true), 0, encodeEnvelope({ hello })));
    await new Promise((resolve) => socket.once('data', resolve)); // the HelloAck
    const stopped = await node.stop();
    assert.equal(stopped.code, 0, node.stderr());
    assert.ok(stopped.elapsedMs < 5000, `stop took ${Math.round(stopped.elapsedMs)} ms`);
  });

  test('SIGTERM while a client is in the middle of the TLS handshake exits 0 within 5 s', {}, async () => {
    const home = await newHome();
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    const socket = connectTcp(hostPort(node.address));
    sockets.add(socket);
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    await serving(node, home);
    const stopped = await node.stop();
    assert.equal(stopped.code, 0, `${stopped.signal} ${stopped.elapsedMs} ms\n${node.stderr()}`);
    assert.ok(stopped.elapsedMs < 5000, `stop took ${Math.round(stopped.elapsedMs)} ms`);
    assert.ok(!existsSync(join(home, 'node', 'LOCK')), 'LOCK left behind');
  });

  test('SIGTERM sent as soon as the JSON document is printed still stops gracefully', {}, async () => {
    const home = await newHome();
    await startNode(['--listen', '127.0.0.1:0'], envFor(home)).then((node) => node.stop());
    for (let attempt = 0; attempt < 10; attempt++) {
      const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
      const stopped = await node.stop();
      assert.deepEqual(
        { code: stopped.code, signal: stopped.signal },
        { code: 0, signal: null },
        `attempt ${attempt}: ${node.stderr()}`,
      );
      assert.ok(!existsSync(join(home, 'node', 'LOCK')), `attempt ${attempt}: LOCK left`);
    }
  });

  test('a restart on the same data dir keeps the node id and certificates', async () => {
    const home = await newHome();
    const first = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    const caBefore = readFileSync(join(home, 'certs', 'ca.crt'), 'utf8');
    await serving(first, home);
    assert.equal((await first.stop()).code, 0, first.stderr());

    const second = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    assert.equal(second.info.id, first.info.id);
    assert.equal(readFileSync(join(home, 'certs', 'ca.crt'), 'utf8'), caBefore);
    assert.doesNotMatch(second.stderr(), /created certificate file/);
    const status = await runCli(
      ['node', 'status', '--json', '--node', second.address],
      envFor(home),
    );
    assert.equal(status.code, 0, describeResult(status));
    assert.equal(parseJson(status)['id'], first.info.id);
  });

  test('a second node on a data dir in use fails with exit 1 naming the pid', async () => {
    const home = await newHome();
    const first = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    const second = await runCli(['node', 'start', '--listen', '127.0.0.1:0'], envFor(home), 15_000);
    assert.equal(second.code, 1, describeResult(second));
    assertCleanError(second, new RegExp(`\\b${first.info.pid}\\b`));

    const json = await runCli(
      ['node', 'start', '--json', '--listen', '127.0.0.1:0'],
      envFor(home),
      15_000,
    );
    assert.equal(json.code, 1, describeResult(json));
    const error = assertJsonError(json);
    assert.match(error.message, new RegExp(`\\b${first.info.pid}\\b`));

    // The first node is untouched.
    const health = await runCli(['health', '--json', '--node', first.address], envFor(home));
    assert.equal(health.code, 0, describeResult(health));
    assert.ok(existsSync(join(home, 'node', 'LOCK')));
  });

  test('a second node on a port in use fails with exit 1 and a clear error', async () => {
    const home = await newHome();
    const first = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    const other = await newHome();
    const second = await runCli(
      ['node', 'start', '--listen', first.address],
      envFor(other),
      15_000,
    );
    assert.equal(second.code, 1, describeResult(second));
    const line = assertCleanError(second);
    assert.ok(line.includes(first.address), line);
    assert.match(second.stderr, /in use|EADDRINUSE/i);
    assert.ok(!existsSync(join(other, 'node', 'LOCK')), 'failed start left its LOCK behind');

    const health = await runCli(['health', '--json', '--node', first.address], envFor(home));
    assert.equal(health.code, 0, describeResult(health));
  });
});

describe('--insecure', () => {
  test('an --insecure node answers health --insecure and creates no certificates', async () => {
    const home = await newHome();
    const node = await startNode(['--insecure', '--listen', '127.0.0.1:0'], envFor(home));
    assert.equal((node.info as { tls?: boolean }).tls, false);
    assert.equal(node.info.certsDir, null);
    assert.ok(!existsSync(join(home, 'certs')), 'certificates created for an --insecure node');

    const health = await runCli(
      ['health', '--insecure', '--json', '--node', node.address],
      envFor(home),
    );
    assert.equal(health.code, 0, describeResult(health));
    assert.equal(parseJson(health)['status'], 'healthy');

    const status = await runCli(
      ['node', 'status', '--insecure', '--json', '--node', node.address],
      envFor(home),
    );
    assert.equal(status.code, 0, describeResult(status));
    assert.equal(parseJson(status)['tls'], false);
  });

  test('health --insecure against a TLS node fails with a clear error', async () => {
    const home = await newHome();
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));
    const human = await runCli(['health', '--insecure', '--node', node.address], envFor(home));
    assert.equal(human.code, 3, describeResult(human));
    assertCleanError(human);
    assert.ok(human.stderr.includes(node.address), human.stderr);

    const json = await runCli(
      ['health', '--insecure', '--json', '--node', node.address],
      envFor(home),
    );
    assert.equal(json.code, 3, describeResult(json));
    assertJsonError(json);

    // The node is not disturbed by the plaintext attempt.
    const health = await runCli(['health', '--json', '--node', node.address], envFor(home));
    assert.equal(health.code, 0, describeResult(health));
  });

  test('health with TLS against an --insecure node fails with a clear error', async () => {
    const home = await newHome();
    const node = await startNode(['--insecure', '--listen', '127.0.0.1:0'], envFor(home));
    const tlsHome = await newHome();
    await ensureLocalCertificates({ dir: join(tlsHome, 'certs'), cluster: 'rdbnet', hosts: [] });
    const result = await runCli(['health', '--node', node.address], envFor(tlsHome));
    assert.equal(result.code, 3, describeResult(result));
    assertCleanError(result);
  });
});

describe('--config', () => {
  test('a config file sets listen and id', async () => {
    const home = await newHome();
    const file = join(home, 'node.json');
    await writeFile(file, JSON.stringify({ id: 'from-config', listen: '127.0.0.1:0' }));
    const node = await startNode(['--config', file], envFor(home));
    assert.equal(node.info.id, 'from-config');
    assert.match(node.address, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(hostPort(node.address).port, 7000, 'config listen ignored (default port)');
    assert.ok(existsSync(join(home, 'certs', 'node.from-config.crt')));

    const status = await runCli(['node', 'status', '--json', '--node', node.address], envFor(home));
    assert.equal(status.code, 0, describeResult(status));
    assert.equal(parseJson(status)['id'], 'from-config');
  });

  test('flags override the config file', async () => {
    const home = await newHome();
    const file = join(home, 'node.json');
    await writeFile(file, JSON.stringify({ id: 'from-config', listen: '127.0.0.1:1' }));
    const node = await startNode(
      ['--config', file, '--id', 'from-flag', '--listen', '127.0.0.1:0'],
      envFor(home),
    );
    assert.equal(node.info.id, 'from-flag');
    assert.notEqual(hostPort(node.address).port, 1);
  });

  test('an unknown field in the config file exits 64 naming the field', async () => {
    const home = await newHome();
    const file = join(home, 'node.json');
    await writeFile(file, JSON.stringify({ listen: '127.0.0.1:0', listenPort: 7001 }));
    const human = await runCli(['node', 'start', '--config', file], envFor(home), 15_000);
    assert.equal(human.code, 64, describeResult(human));
    assertCleanError(human, /listenPort/);

    const json = await runCli(['node', 'start', '--json', '--config', file], envFor(home), 15_000);
    assert.equal(json.code, 64, describeResult(json));
    const error = assertJsonError(json, 'RDB_CONFIG_INVALID');
    assert.match(error.message, /listenPort/);
  });

  test('a config file that is not JSON exits 64 with a clear error', async () => {
    const home = await newHome();
    const file = join(home, 'node.json');
    await writeFile(file, '{ listen: 127.0.0.1:0 ');
    const result = await runCli(['node', 'start', '--config', file], envFor(home), 15_000);
    assert.equal(result.code, 64, describeResult(result));
    assertCleanError(result, /node\.json/);
  });
});

describe('another cluster', () => {
  test("another cluster's client certificates are refused, the right ones not", async () => {
    const home = await newHome();
    const node = await startNode(['--listen', '127.0.0.1:0'], envFor(home));

    // A second zero-config cluster, with its own CA, created the way an operator would.
    const otherHome = await newHome();
    const other = await startNode(['--listen', '127.0.0.1:0'], envFor(otherHome));
    await serving(other, otherHome);
    assert.equal((await other.stop()).code, 0, other.stderr());
    assert.notEqual(
      readFileSync(join(otherHome, 'certs', 'ca.crt'), 'utf8'),
      readFileSync(join(home, 'certs', 'ca.crt'), 'utf8'),
    );

    const health = await runCli(['health', '--node', node.address], envFor(otherHome));
    assert.notEqual(health.code, 0, describeResult(health));
    assert.equal(health.code, 3, describeResult(health));
    assertCleanError(health);

    const status = await runCli(
      ['node', 'status', '--json', '--node', node.address],
      envFor(otherHome),
    );
    assert.notEqual(status.code, 0, describeResult(status));
    assertJsonError(status);

    // RDBNET_CERTS_DIR pointing at the other cluster is refused too.
    const viaEnv = await runCli(
      ['health', '--json', '--node', node.address],
      envFor(home, { RDBNET_CERTS_DIR: join(otherHome, 'certs') }),
    );
    assert.notEqual(viaEnv.code, 0, describeResult(viaEnv));

    const right = await runCli(['health', '--json', '--node', node.address], envFor(home));
    assert.equal(right.code, 0, describeResult(right));
    assert.equal(parseJson(right)['status'], 'healthy');
  });
});
