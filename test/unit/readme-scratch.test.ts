/**
 * Defect 12 of issue 16: following the README in the clone must not leave untracked state in
 * the repository. Every path the README's commands write relative to the working directory
 * (`--data-dir ./n1`, `RDBNET_CERTS_DIR=$PWD/pki`, `> node.json`) is ignored by git.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/processes.ts';

/** Paths under the working directory that the README's shell lines create. */
function scratchPaths(readme: string): string[] {
  const paths = new Set<string>();
  for (const match of readme.matchAll(/--(?:data|certs)-dir \.\/([A-Za-z0-9_-]+)/g)) {
    paths.add(`${match[1]}/`);
  }
  // Directories given to rdbnet through the environment (RDBNET_CERTS_DIR=$PWD/pki).
  for (const match of readme.matchAll(/_DIR=\$PWD\/([A-Za-z0-9_-]+)/g)) paths.add(`${match[1]}/`);
  for (const match of readme.matchAll(/> ([A-Za-z0-9_-]+\.json)\b/g)) paths.add(match[1]!);
  return [...paths].sort();
}

test('every path the README writes in the working directory is git-ignored', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const paths = scratchPaths(readme);
  assert.ok(paths.includes('n1/') && paths.includes('pki/'), `found only ${paths.join(', ')}`);
  const notIgnored = paths.filter((path) => {
    try {
      execFileSync('git', ['check-ignore', '-q', '--no-index', path], { cwd: REPO_ROOT });
      return false;
    } catch {
      return true;
    }
  });
  assert.deepEqual(notIgnored, [], 'README scratch paths that git would show as untracked');
});
