/**
 * Validate, then act, for the `certs` commands that write locally and then ask nodes: a bad
 * node address is a usage error (exit 64) naming it, found before anything is written, so the
 * certificates directory is exactly as it was. No node is needed: nothing may be dialled.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type CliResult,
  describeResult,
  parseJson,
  runCli,
  tempHome,
} from '../helpers/processes.ts';

let home: { dir: string; cleanup(): Promise<void> };
let certs: string;

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

async function cli(args: string[]): Promise<CliResult> {
  return runCli(args, env(), 60_000);
}

/** Every file of the certificates directory with its content. */
async function snapshot(): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(certs)).sort()) {
    files[name] = await readFile(join(certs, name), 'utf8');
  }
  return files;
}

function usageError(result: CliResult, names: RegExp): void {
  assert.equal(result.code, 64, describeResult(result));
  const { error } = parseJson<{ error: { code: string; message: string } }>(result);
  assert.equal(error.code, 'RDB_USAGE', describeResult(result));
  assert.match(error.message, names, describeResult(result));
}

before(async () => {
  home = await tempHome('rdbnet-certs-input-');
  certs = join(home.dir, 'certs');
  for (const args of [
    ['certs', 'init', '--cluster', 'input-test'],
    ['certs', 'client', '--name', 'admin', '--role', 'admin'],
  ]) {
    const result = await cli([...args, '--json']);
    assert.equal(result.code, 0, describeResult(result));
  }
});

after(async () => {
  await home.cleanup();
});

describe('a bad node address refuses the whole command before it writes', () => {
  test('certs revoke --nodes with a bad entry: exit 64, no revoked.txt', async () => {
    const before = await snapshot();
    const result = await cli([
      'certs',
      'revoke',
      '--serial',
      'ABCDEF01',
      '--nodes',
      '127.0.0.1:1,nonsense',
      '--json',
    ]);
    usageError(result, /nonsense/);
    assert.deepEqual(await snapshot(), before);
  });

  test('certs rotate --ca --nodes with a bad entry: exit 64, the CA untouched', async () => {
    const before = await snapshot();
    const result = await cli(['certs', 'rotate', '--ca', '--nodes', '[zz]:7000', '--json']);
    usageError(result, /\[zz\]:7000/);
    assert.deepEqual(await snapshot(), before);
  });

  test('certs rotate with a bad --node: exit 64 naming --node', async () => {
    const before = await snapshot();
    const result = await cli(['certs', 'rotate', '--node', 'no-port', '--json']);
    usageError(result, /--node address 'no-port'/);
    assert.deepEqual(await snapshot(), before);
  });
});
