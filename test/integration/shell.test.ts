/**
 * The shell's conventions on the real CLI process (docs/CLI.md, issue 16): the launcher runs
 * the project's Node 24 in one process, help/version spellings, did-you-mean, one-line usage
 * errors, `--help | head -1`, output formats (plain by default in a pipe, -o table|json|ndjson|
 * yaml, RDBNET_OUTPUT), NO_COLOR and terminal widths under a real pseudo-terminal (script(1)),
 * and RDBNET_* for the global flags. No node is started: `lb select --nodes` works offline.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { BIN, describeResult, parseJson, runCli, tempHome } from '../helpers/processes.ts';

const execFileAsync = promisify(execFile);
const homes: { cleanup(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(homes.splice(0).map((home) => home.cleanup()));
});

async function newHome(): Promise<string> {
  const home = await tempHome('rdbnet-shell-');
  homes.push(home);
  return home.dir;
}

/** Only what a test sets: no RDBNET_* of the surrounding shell. */
function envFor(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    RDBNET_HOME: home,
    RDBNET_NODE: '',
    RDBNET_OUTPUT: '',
    RDBNET_CLIENT: '',
    RDBNET_TIMEOUT: '',
    NO_COLOR: '',
    DEBUG: '',
    ...extra,
  };
}

/** Runs a shell line with bash; resolves with its output whatever the exit status. */
async function bash(
  line: string,
  env: NodeJS.ProcessEnv,
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await execFileAsync('bash', ['-c', line], {
      env: { ...process.env, ...env },
      timeout: 20_000,
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number };
    return { stdout: failed.stdout, stderr: failed.stderr, code: failed.code };
  }
}

/** Runs `rdbnet args` on a real pseudo-terminal of `columns` columns (script from util-linux). */
function onTerminal(args: string, env: NodeJS.ProcessEnv, columns = 80) {
  return bash(
    // A person's terminal: no CI in the environment (.ci/run sets it, and chalk then drops colour).
    `env -u CI script -qec ${JSON.stringify(`stty cols ${columns}; ${BIN} ${args}`)} /dev/null`,
    env,
  );
}

/** An SGR colour sequence: ESC [ … m. */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`);

describe('help, version and typos', () => {
  test('help, version, -h, -v and `help <command>` exit 0', async () => {
    const home = await newHome();
    for (const args of [['help'], ['-h'], ['help', 'cluster', 'members'], ['health', '-h']]) {
      const result = await runCli(args, envFor(home));
      assert.equal(result.code, 0, `${args.join(' ')}: ${describeResult(result)}`);
      assert.match(result.stdout, /USAGE/, args.join(' '));
    }
    for (const args of [['version'], ['-v'], ['--version']]) {
      const result = await runCli(args, envFor(home));
      assert.equal(result.code, 0, describeResult(result));
      assert.match(result.stdout, /^rdbnet\/\d+\.\d+\.\d+ /);
    }
  });

  test('`clustr members`: did you mean `cluster members`, exit 64, never the colon form', async () => {
    const home = await newHome();
    const human = await runCli(['clustr', 'members'], envFor(home));
    assert.equal(human.code, 64, describeResult(human));
    assert.match(
      human.stderr,
      /^Error: unknown command `clustr members`; did you mean `cluster members`\?$/m,
    );
    assert.doesNotMatch(human.stderr, /clustr:members|cluster:members/);

    const json = await runCli(['clustr', 'members', '--json'], envFor(home));
    assert.equal(json.code, 64, describeResult(json));
    const { error } = parseJson<{ error: { code: string; message: string } }>(json);
    assert.equal(error.code, 'RDB_USAGE');
    assert.match(error.message, /did you mean `cluster members`/);
  });

  test('a misspelt flag: did you mean, exit 64', async () => {
    const home = await newHome();
    const result = await runCli(['cluster', 'members', '--nod', '127.0.0.1:7000'], envFor(home));
    assert.equal(result.code, 64, describeResult(result));
    assert.match(
      result.stderr,
      /^Error: unknown flag --nod for `cluster members`; did you mean --node\?$/m,
    );
  });

  test('a missing required flag is one clean line naming it', async () => {
    const home = await newHome();
    const result = await runCli(['cluster', 'transfer-leader'], envFor(home));
    assert.equal(result.code, 64, describeResult(result));
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines[0], 'Error: missing required flag --to', result.stderr);
    assert.ok(lines.length <= 2 && (lines[1] ?? 'Hint:').startsWith('Hint:'), result.stderr);
  });

  test('`--help | head -1`: no warning, exit 0', async () => {
    const home = await newHome();
    const result = await bash(`${BIN} --help | head -1; echo "status=\${PIPESTATUS[0]}"`, {
      ...envFor(home),
    });
    assert.doesNotMatch(result.stderr, /Warning|unsettled/, result.stderr);
    assert.match(result.stdout, /status=0$/m, result.stdout);
    assert.equal(result.stdout.trim().split('\n').length, 2, result.stdout);
  });
});

describe('the launcher', () => {
  test('runs the project Node 24 even when PATH has an older node, also through a symlink', async () => {
    const home = await newHome();
    const link = join(home, 'rdbnet');
    await symlink(BIN, link);
    // PATH without node_modules/.bin: whatever node the system has (20 on CI) comes first.
    const env = { ...envFor(home), PATH: '/usr/local/bin:/usr/bin:/bin' };
    for (const path of [BIN, link]) {
      const result = await bash(`${path} --version`, env);
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stdout,
        new RegExp(` node-${process.version.replace(/\./g, '\\.')}$`, 'm'),
      );
    }
  });
});

describe('output formats', () => {
  const select = ['lb', 'select', '--nodes', 'a,b,c', '--key', 'user:42'];

  test('in a pipe the default is plain: tab-separated, header first, no box, no colour', async () => {
    const home = await newHome();
    const result = await runCli(select, envFor(home));
    assert.equal(result.code, 0, describeResult(result));
    assert.doesNotMatch(result.stdout, /[┌│└─]/);
    assert.doesNotMatch(result.stdout, ANSI);
    const lines = result.stdout.split('\n');
    assert.equal(lines[0], '#\tnode');
    assert.match(lines[1] ?? '', /^1\t[abc]$/);
  });

  test('-o json, --json, -o ndjson, -o yaml and RDBNET_OUTPUT print the same result', async () => {
    const home = await newHome();
    const json = await runCli([...select, '-o', 'json'], envFor(home));
    const expected = parseJson<{ nodes: string[] }>(json);
    assert.deepEqual(parseJson(await runCli([...select, '--json'], envFor(home))), expected);
    const ndjson = await runCli([...select, '--output=ndjson'], envFor(home));
    assert.equal(ndjson.stdout.trim().split('\n').length, 1);
    assert.deepEqual(JSON.parse(ndjson.stdout), expected);
    const yaml = await runCli([...select, '-o', 'yaml'], envFor(home));
    assert.deepEqual(parseYaml(yaml.stdout), expected);
    const fromEnv = await runCli(select, envFor(home, { RDBNET_OUTPUT: 'json' }));
    assert.deepEqual(parseJson(fromEnv), expected);
    const bad = await runCli([...select, '-o', 'xml'], envFor(home));
    assert.equal(bad.code, 64, describeResult(bad));
  });

  test('on a terminal: boxed and coloured; NO_COLOR turns the colour off', async () => {
    const home = await newHome();
    const coloured = await onTerminal(select.join(' '), envFor(home));
    assert.match(coloured.stdout, /┌/);
    assert.match(coloured.stdout, ANSI);
    const plain = await onTerminal(select.join(' '), envFor(home, { NO_COLOR: '1' }));
    assert.match(plain.stdout, /┌/);
    assert.doesNotMatch(plain.stdout, ANSI);
  });

  test('a table wider than the terminal is fitted to its columns', async () => {
    const home = await newHome();
    const wide = ['lb', 'select', '--nodes', `${'n'.repeat(70)},${'m'.repeat(70)}`, '--key', 'k'];
    const result = await onTerminal(wide.join(' '), envFor(home, { NO_COLOR: '1' }), 40);
    const tableLines = result.stdout.split(/\r?\n/).filter((line) => /^[┌│├└]/.test(line));
    assert.ok(tableLines.length > 0, result.stdout);
    for (const line of tableLines) assert.ok(line.length <= 40, `${line.length}: ${line}`);
  });
});

describe('RDBNET_* for the global flags', () => {
  test('RDBNET_TIMEOUT and RDBNET_CLIENT are read and checked like their flags', async () => {
    const home = await newHome();
    const timeout = await runCli(['health'], envFor(home, { RDBNET_TIMEOUT: '0' }));
    assert.equal(timeout.code, 64, describeResult(timeout));
    assert.match(timeout.stderr, /timeout/);
    const client = await runCli(['node', 'status'], envFor(home, { RDBNET_CLIENT: '../x' }));
    assert.equal(client.code, 64, describeResult(client));
    assert.match(client.stderr, /client name/);
  });
});

describe('address errors say what is wrong (defect 10)', () => {
  test('a port out of range is named as such, exit 64', async () => {
    const home = await newHome();
    const listen = await runCli(['node', 'start', '--listen', '127.0.0.1:99999'], envFor(home));
    assert.equal(listen.code, 64, describeResult(listen));
    assert.match(listen.stderr, /port 99999 is out of range \(0-65535\)/);
    assert.doesNotMatch(listen.stderr, /expected host:port/);
    const node = await runCli(['health', '--node', '127.0.0.1:70000'], envFor(home));
    assert.match(node.stderr, /port 70000 is out of range/);
  });

  test('a host that does not resolve: "cannot resolve host", not "is the node running?"', async () => {
    const home = await newHome();
    // The emulated resolver answers ENOTFOUND for *.unresolvable.test: no DNS query leaves.
    const resolver = join(import.meta.dirname, '..', 'helpers', 'emulated-resolver.mjs');
    const env = envFor(home, { NODE_OPTIONS: `--import=${resolver}` });
    const result = await runCli(
      ['node', 'status', '--insecure', '--node', 'foo.unresolvable.test:47001'],
      env,
    );
    assert.equal(result.code, 69, describeResult(result));
    assert.match(result.stderr, /^Error: cannot resolve host foo\.unresolvable\.test/m);
    assert.doesNotMatch(result.stderr, /is the node running/);
  });
});

describe('prompts', () => {
  test('Ctrl-C at a prompt on a terminal exits 130 quietly', async () => {
    const home = await newHome();
    const init = await runCli(
      ['certs', 'init', '--cluster', 'demo', '--certs-dir', join(home, 'pki')],
      envFor(home),
    );
    assert.equal(init.code, 0, describeResult(init));
    // script(1) gives the command a real terminal; CI unset so that it may prompt.
    const child = spawn(
      'script',
      ['-qec', `${BIN} certs issue --certs-dir ${join(home, 'pki')}`, '/dev/null'],
      { env: { ...process.env, ...envFor(home), CI: '' }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let output = '';
    const prompted = new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk) => {
        output += chunk;
        if (output.includes('Node id')) resolve();
      });
    });
    const code = new Promise<number | null>((resolve) => child.on('close', resolve));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      await prompted;
      child.stdin.write('\x03'); // the Ctrl-C key, as typed
      assert.equal(await code, 130, output);
      assert.doesNotMatch(output, /Error|force closed/, output);
    } finally {
      clearTimeout(timer);
      child.kill('SIGKILL');
    }
  });
});
