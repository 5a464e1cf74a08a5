/**
 * `rdbnet node config` and `node start --preset` on the real CLI: the effective configuration
 * with the source of every value, presets that move Raft as well as gossip, the precedence
 * flag > environment > file, bad values refused with exit 64, and a node that reports the Raft
 * timings it runs with in `node status`.
 */
import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import {
  type CliResult,
  describeResult,
  killAllNodes,
  parseJson,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const homes: { cleanup(): Promise<void> }[] = [];

afterEach(async () => {
  await killAllNodes();
  await Promise.all(homes.splice(0).map((home) => home.cleanup()));
});

async function newHome(): Promise<string> {
  const home = await tempHome('rdbnet-config-');
  homes.push(home);
  return home.dir;
}

/** Only RDBNET_HOME and what a test sets decide: no RDBNET_* of the surrounding shell. */
function envFor(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { DEBUG: '' };
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('RDBNET_')) env[name] = '';
  }
  return { ...env, RDBNET_HOME: home, ...extra };
}

interface RaftTimings {
  tickMs: number;
  electionTimeoutMs: number;
  heartbeatIntervalMs: number;
  preVote: boolean;
  checkQuorum: boolean;
  proposalTimeoutMs: number;
  forwardDeadlineMs: number;
  transferTimeoutMs: number;
}

interface ConfigResult {
  config: {
    id: string | null;
    listen: string;
    preset: string;
    raft: RaftTimings;
    [field: string]: unknown;
  };
  sources: Record<string, string>;
}

async function nodeConfig(args: string[], env: NodeJS.ProcessEnv): Promise<ConfigResult> {
  const result = await runCli(['node', 'config', '--json', ...args], env);
  assert.equal(result.code, 0, describeResult(result));
  return parseJson<ConfigResult>(result);
}

/** Exit 64, one `Error:` line naming `field` (human), RDB_CONFIG_INVALID naming it (--json). */
async function assertRefused(
  args: string[],
  env: NodeJS.ProcessEnv,
  field: string,
  source: RegExp,
): Promise<void> {
  const human = await runCli(args, env, 15_000);
  assert.equal(human.code, 64, describeResult(human));
  assert.ok(!human.stderr.includes('    at '), describeResult(human));
  const line = human.stderr.split('\n').find((l) => l.startsWith('Error:')) ?? '';
  assert.ok(line.includes(field), `Error: line does not name ${field}\n${describeResult(human)}`);
  assert.match(line, source, describeResult(human));
  const json: CliResult = await runCli([...args, '--json'], env, 15_000);
  assert.equal(json.code, 64, describeResult(json));
  const { error } = parseJson<{ error: { code: string; message: string } }>(json);
  assert.equal(error.code, 'RDB_CONFIG_INVALID', describeResult(json));
  assert.ok(error.message.includes(field), describeResult(json));
}

describe('node config', () => {
  test('--preset wan shows Raft timings that differ from --preset lan', async () => {
    const home = await newHome();
    const wan = await nodeConfig(['--preset', 'wan'], envFor(home));
    const lan = await nodeConfig(['--preset', 'lan'], envFor(home));
    const plain = await nodeConfig([], envFor(home));
    assert.equal(wan.config.preset, 'wan');
    assert.equal(wan.sources['preset'], 'flag');
    assert.equal(plain.sources['preset'], 'default');
    assert.deepEqual(plain.config.raft, lan.config.raft, 'lan is the default');
    assert.ok(wan.config.raft.tickMs > lan.config.raft.tickMs, JSON.stringify(wan.config.raft));
    assert.ok(wan.config.raft.electionTimeoutMs > lan.config.raft.electionTimeoutMs);
    assert.ok(wan.config.raft.heartbeatIntervalMs > lan.config.raft.heartbeatIntervalMs);
    assert.equal(wan.sources['raft.electionTimeoutMs'], 'preset');
    assert.equal(wan.sources['raft.tickMs'], 'preset');
    // Every leaf of config has a source.
    for (const field of ['id', 'listen', 'dataDir', 'raft.tickMs', 'connection.frameBytesMax']) {
      assert.ok(wan.sources[field] !== undefined, `no source for ${field}`);
    }
    assert.equal(wan.config.id, null);

    const human = await runCli(['node', 'config', '--preset', 'wan'], envFor(home));
    assert.equal(human.code, 0, describeResult(human));
    const row = human.stdout.split('\n').find((line) => line.includes('raft.electionTimeoutMs'));
    assert.ok(row?.includes(String(wan.config.raft.electionTimeoutMs)), human.stdout);
    assert.ok(row?.includes('preset'), human.stdout);
  });

  test('the environment overrides the file, a flag overrides the environment', async () => {
    const home = await newHome();
    const file = join(home, 'node.json');
    await writeFile(
      file,
      JSON.stringify({
        listen: '127.0.0.1:7101',
        preset: 'wan',
        raft: { electionTimeoutMs: 1000 },
      }),
    );
    const fromFile = await nodeConfig(['--config', file], envFor(home));
    assert.equal(fromFile.config.listen, '127.0.0.1:7101');
    assert.equal(fromFile.sources['listen'], 'file');
    assert.equal(fromFile.config.raft.electionTimeoutMs, 1000);
    assert.equal(fromFile.sources['raft.electionTimeoutMs'], 'file');
    assert.equal(fromFile.sources['preset'], 'file');

    const env = envFor(home, {
      RDBNET_LISTEN: '127.0.0.1:7102',
      RDBNET_PRESET: 'lan',
      RDBNET_RAFT_ELECTION_TIMEOUT_MS: '2000',
    });
    const fromEnv = await nodeConfig(['--config', file], env);
    assert.equal(fromEnv.config.listen, '127.0.0.1:7102');
    assert.equal(fromEnv.sources['listen'], 'env');
    assert.equal(fromEnv.config.preset, 'lan');
    assert.equal(fromEnv.sources['preset'], 'env');
    assert.equal(fromEnv.config.raft.tickMs, 50, 'the env preset sets the rest');
    assert.equal(fromEnv.config.raft.electionTimeoutMs, 2000);
    assert.equal(fromEnv.sources['raft.electionTimeoutMs'], 'env');

    const fromFlag = await nodeConfig(
      ['--config', file, '--listen', '127.0.0.1:7103', '--preset', 'wan'],
      env,
    );
    assert.equal(fromFlag.config.listen, '127.0.0.1:7103');
    assert.equal(fromFlag.sources['listen'], 'flag');
    assert.equal(fromFlag.config.preset, 'wan');
    assert.equal(fromFlag.sources['preset'], 'flag');
    assert.equal(fromFlag.config.raft.electionTimeoutMs, 2000, 'env still beats the preset');
    assert.equal(fromFlag.config.raft.tickMs, fromFile.config.raft.tickMs, 'wan sets the rest');
  });

  test('a bad value from any source exits 64 naming the field; nothing is written', async () => {
    const home = await newHome();
    const file = join(home, 'node.json');
    await writeFile(file, JSON.stringify({ raft: { tickMs: 0 } }));
    for (const command of [
      ['node', 'config'],
      ['node', 'start'],
    ]) {
      await assertRefused(
        command,
        envFor(home, { RDBNET_RAFT_TICK_MS: 'abc' }),
        'raft.tickMs',
        /RDBNET_RAFT_TICK_MS/,
      );
      await assertRefused([...command, '--config', file], envFor(home), 'raft.tickMs', /file/);
      await assertRefused([...command, '--preset', 'moon'], envFor(home), 'preset', /--preset/);
      await assertRefused(
        [...command, '--listen', '127.0.0.1:7001'],
        envFor(home, { RDBNET_CONNECTION_FRAME_BYTES_MAX: '-1' }),
        'connection.frameBytesMax',
        /RDBNET_CONNECTION_FRAME_BYTES_MAX/,
      );
    }
    assert.deepEqual(await readdir(home), ['node.json'], 'a refused start created nothing');
  });

  test('node config writes nothing: a fresh RDBNET_HOME stays empty', async () => {
    const home = await newHome();
    await nodeConfig(['--preset', 'wan'], envFor(home));
    const human = await runCli(['node', 'config', '--id', 'n1'], envFor(home));
    assert.equal(human.code, 0, describeResult(human));
    const otherDir = await newHome();
    await nodeConfig(
      ['--data-dir', join(otherDir, 'data'), '--certs-dir', join(otherDir, 'certs')],
      envFor(home),
    );
    assert.deepEqual(await readdir(home), []);
    assert.deepEqual(await readdir(otherDir), []);
  });
});

describe('node start --preset', () => {
  test('a node started with --preset wan reports its Raft timings in node status', async () => {
    const home = await newHome();
    const expected = await nodeConfig(['--preset', 'wan'], envFor(home));
    const node = await startNode(['--listen', '127.0.0.1:0', '--preset', 'wan'], envFor(home));
    const status = await runCli(['node', 'status', '--json', '--node', node.address], envFor(home));
    assert.equal(status.code, 0, describeResult(status));
    const reply = parseJson<{ preset: string; raft: RaftTimings }>(status);
    assert.equal(reply.preset, 'wan');
    assert.deepEqual(reply.raft, expected.config.raft);

    // The deprecated gossipPreset of older config files moves Raft as well.
    const oldHome = await newHome();
    const file = join(oldHome, 'node.json');
    await writeFile(file, JSON.stringify({ gossipPreset: 'wan', listen: '127.0.0.1:0' }));
    const old = await startNode(['--config', file], envFor(oldHome));
    const oldStatus = await runCli(
      ['node', 'status', '--json', '--node', old.address],
      envFor(oldHome),
    );
    assert.equal(oldStatus.code, 0, describeResult(oldStatus));
    assert.deepEqual(parseJson<{ raft: RaftTimings }>(oldStatus).raft, expected.config.raft);

    const lanHome = await newHome();
    const lan = await startNode(['--listen', '127.0.0.1:0'], envFor(lanHome));
    const lanStatus = await runCli(
      ['node', 'status', '--json', '--node', lan.address],
      envFor(lanHome),
    );
    assert.equal(lanStatus.code, 0, describeResult(lanStatus));
    const lanReply = parseJson<{ preset: string; raft: RaftTimings }>(lanStatus);
    assert.equal(lanReply.preset, 'lan');
    assert.notDeepEqual(lanReply.raft, reply.raft);
  });
});
