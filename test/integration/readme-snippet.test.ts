/**
 * The README's library snippet runs as written: extracted from between its markers, saved
 * inside the package (so `import … from 'rdbnet'` resolves to the package's own export, built
 * to dist) and run with a fresh working directory for its data dirs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, tempHome } from '../helpers/processes.ts';

const SNIPPET =
  /<!-- library-snippet:start -->\n```ts\n([\s\S]*?)```\n<!-- library-snippet:end -->/;

test('the README library snippet runs and prints what it says', async () => {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const code = SNIPPET.exec(readme)?.[1];
  assert.ok(code !== undefined, 'README.md has no library snippet between its markers');
  const home = await tempHome('rdbnet-readme-');
  const file = join(REPO_ROOT, 'test', `.readme-snippet-${process.pid}.ts`);
  await writeFile(file, code);
  try {
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(process.execPath, [file], {
          cwd: home.dir,
          env: { ...process.env, RDBNET_HOME: home.dir, RDBNET_LOG_LEVEL: 'warn' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk) => {
          stdout += chunk;
        });
        child.stderr.on('data', (chunk) => {
          stderr += chunk;
        });
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`the snippet did not finish within 60 s\n${stdout}\n${stderr}`));
        }, 60_000);
        child.on('close', (exit) => {
          clearTimeout(timer);
          resolve({ code: exit, stdout, stderr });
        });
      },
    );
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /^hello a, you said hi \(\d+\.\d\d ms\)$/m);
    assert.match(result.stdout, /^\{ acked: \[ 'a', 'b' \], missing: \[\] \}$/m);
    assert.match(result.stdout, /^\{ acked: \[ 'b' \], missing: \[\] \}$/m);
    assert.match(result.stdout, /^\[ 'a', 'b' \] a \d+$/m);
    assert.match(result.stdout, /^member join b$/m);
  } finally {
    await rm(file, { force: true });
    await home.cleanup();
  }
});
