/**
 * `rdbnet autocomplete`: the bash script is loaded into a real bash and driven the way bash
 * drives it on TAB (COMP_WORDS/COMP_CWORD, then the completion function, then COMPREPLY); the
 * zsh and fish scripts are checked by their own shells' syntax check where installed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { describeResult, runCli, tempHome } from '../helpers/processes.ts';

const execFileAsync = promisify(execFile);
const homes: { cleanup(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(homes.splice(0).map((home) => home.cleanup()));
});

async function bashScript(): Promise<string> {
  const home = await tempHome('rdbnet-completion-');
  homes.push(home);
  const result = await runCli(['autocomplete', 'bash'], {
    RDBNET_HOME: home.dir,
    RDBNET_OUTPUT: '',
  });
  assert.equal(result.code, 0, describeResult(result));
  const file = join(home.dir, 'rdbnet.bash');
  await writeFile(file, result.stdout);
  return file;
}

/** What bash offers for the command line `words` with the cursor on the last word. */
async function complete(script: string, words: string[]): Promise<string[]> {
  const quoted = words.map((word) => `'${word}'`).join(' ');
  const line = [
    `source '${script}'`,
    `COMP_WORDS=(${quoted})`,
    `COMP_CWORD=${words.length - 1}`,
    'complete -p rdbnet >/dev/null',
    '_rdbnet',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, not a template
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('; ');
  const { stdout } = await execFileAsync('bash', ['--norc', '--noprofile', '-c', line], {
    timeout: 10_000,
  });
  return stdout.split('\n').filter((word) => word !== '');
}

describe('rdbnet autocomplete', () => {
  test('bash completes topics, commands, flags and -o values', async () => {
    const script = await bashScript();
    assert.deepEqual(await complete(script, ['rdbnet', 'clu']), ['cluster']);
    assert.ok((await complete(script, ['rdbnet', ''])).includes('health'));
    assert.deepEqual(await complete(script, ['rdbnet', 'cluster', 'me']), ['members']);
    assert.deepEqual(await complete(script, ['rdbnet', 'cluster', 'members', '--no']), ['--node']);
    assert.deepEqual(
      await complete(script, ['rdbnet', 'health', '--node', '127.0.0.1:7000', '--js']),
      ['--json'],
    );
    assert.deepEqual(await complete(script, ['rdbnet', 'health', '-o', 'n']), ['ndjson']);
    assert.deepEqual(await complete(script, ['rdbnet', 'node', 'st']), ['start', 'status']);
  });

  test('zsh and fish scripts are printed and parse in their shells where installed', async () => {
    const home = await tempHome('rdbnet-completion-');
    homes.push(home);
    for (const shell of ['zsh', 'fish']) {
      const result = await runCli(['autocomplete', shell], {
        RDBNET_HOME: home.dir,
        RDBNET_OUTPUT: '',
      });
      assert.equal(result.code, 0, describeResult(result));
      assert.match(result.stdout, shell === 'zsh' ? /bashcompinit/ : /^complete -c rdbnet /m);
      const file = join(home.dir, `rdbnet.${shell}`);
      await writeFile(file, result.stdout);
      try {
        await execFileAsync(shell, ['-n', file], { timeout: 10_000 });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // shell not installed
        throw error;
      }
    }
    const bad = await runCli(['autocomplete', 'tcsh'], { RDBNET_HOME: home.dir });
    assert.equal(bad.code, 64, describeResult(bad));
  });
});
