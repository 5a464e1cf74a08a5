/**
 * What the launcher decides before oclif runs (src/cli/launcher.ts) and the output format of a
 * command line (src/cli/output-mode.ts), against the real oclif.manifest.json: version, help
 * spellings, did-you-mean for commands and flags in the spaced form, never the colon form.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  closest,
  editDistance,
  type LauncherManifest,
  type LaunchPlan,
  planLaunch,
} from '../../src/cli/launcher.ts';
import { fittedWidths } from '../../src/cli/output.ts';
import { outputModeOf, requestedOutputMode } from '../../src/cli/output-mode.ts';
import { REPO_ROOT } from '../helpers/processes.ts';

const manifest = JSON.parse(
  readFileSync(join(REPO_ROOT, 'oclif.manifest.json'), 'utf8'),
) as LauncherManifest;

function usageMessage(plan: LaunchPlan): string {
  assert.equal(plan.kind, 'usage-error', JSON.stringify(plan));
  return plan.kind === 'usage-error' ? plan.message : '';
}

describe('planLaunch', () => {
  test('--version, -v and version are answered by the launcher', () => {
    for (const argv of [['--version'], ['-v'], ['version']]) {
      assert.deepEqual(planLaunch(argv, manifest), { kind: 'version' });
    }
  });

  test('help and -h become --help for oclif', () => {
    assert.deepEqual(planLaunch(['help'], manifest), { kind: 'oclif', argv: ['--help'] });
    assert.deepEqual(planLaunch(['help', 'cluster', 'members'], manifest), {
      kind: 'oclif',
      argv: ['cluster', 'members', '--help'],
    });
    assert.deepEqual(planLaunch(['health', '-h'], manifest), {
      kind: 'oclif',
      argv: ['health', '--help'],
    });
    // After `--` nothing is rewritten.
    assert.deepEqual(planLaunch(['health', '--', '-h'], manifest), {
      kind: 'oclif',
      argv: ['health', '--', '-h'],
    });
  });

  test('a misspelt topic: did you mean the spaced command, never the colon form', () => {
    const message = usageMessage(planLaunch(['clustr', 'members'], manifest));
    assert.match(message, /did you mean `cluster members`\?/);
    assert.doesNotMatch(message, /:members/);
    assert.match(usageMessage(planLaunch(['helth'], manifest)), /did you mean `health`\?/);
    assert.match(usageMessage(planLaunch(['node', 'strat'], manifest)), /`node start`/);
  });

  test('an unknown command far from any gets no suggestion, and a topic alone is help', () => {
    assert.equal(
      usageMessage(planLaunch(['frobnicate'], manifest)),
      'unknown command `frobnicate`',
    );
    assert.equal(
      usageMessage(planLaunch(['node', 'frobnicate'], manifest)),
      'unknown command `node frobnicate`',
    );
    assert.deepEqual(planLaunch(['cluster'], manifest), { kind: 'oclif', argv: ['cluster'] });
  });

  test('a misspelt flag: did you mean, for that command', () => {
    const message = usageMessage(planLaunch(['cluster', 'members', '--nod', 'x'], manifest));
    assert.match(message, /unknown flag --nod for `cluster members`; did you mean --node\?/);
    assert.match(usageMessage(planLaunch(['health', '--jsno'], manifest)), /did you mean --json\?/);
    // Known flags, --flag=value, --no-<boolean> where allowed, and arguments pass through.
    for (const argv of [
      ['cluster', 'members', '--node=127.0.0.1:7000', '-o', 'plain'],
      ['discover', 'provider=static addrs=127.0.0.1:7000'],
      ['node', 'start', '--no-insecure'],
    ]) {
      assert.equal(planLaunch(argv, manifest).kind, 'oclif', argv.join(' '));
    }
  });
});

test('a flag alias declared in the manifest is a known flag', () => {
  const withAlias: LauncherManifest = {
    commands: { 'pool:stats': { flags: { node: { name: 'node', aliases: ['endpoint'] } } } },
  };
  assert.equal(planLaunch(['pool', 'stats', '--endpoint', 'x'], withAlias).kind, 'oclif');
  assert.equal(planLaunch(['pool', 'stats', '--endpiont', 'x'], withAlias).kind, 'usage-error');
});

describe('edit distance', () => {
  test('counts insertions, deletions, substitutions and transpositions', () => {
    assert.equal(editDistance('clustr', 'cluster'), 1);
    assert.equal(editDistance('nod', 'node'), 1);
    assert.equal(editDistance('hte', 'the'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(closest('zzzzzz', ['health', 'cluster']), null);
  });
});

describe('output mode', () => {
  test('-o, --output, --output=, -oFORMAT and --json; the last one wins', () => {
    assert.equal(requestedOutputMode(['-o', 'yaml']), 'yaml');
    assert.equal(requestedOutputMode(['--output', 'plain']), 'plain');
    assert.equal(requestedOutputMode(['--output=ndjson']), 'ndjson');
    assert.equal(requestedOutputMode(['-ojson']), 'json');
    assert.equal(requestedOutputMode(['--json']), 'json');
    assert.equal(requestedOutputMode(['--json', '-o', 'table']), 'table');
    assert.equal(requestedOutputMode(['--', '--json']), null);
  });

  test('RDBNET_OUTPUT, else table on a terminal and plain in a pipe', () => {
    assert.equal(outputModeOf([], {}, true), 'table');
    assert.equal(outputModeOf([], {}, false), 'plain');
    assert.equal(outputModeOf([], { RDBNET_OUTPUT: 'yaml' }, true), 'yaml');
    assert.equal(outputModeOf(['-o', 'json'], { RDBNET_OUTPUT: 'yaml' }, true), 'json');
  });
});

describe('table widths', () => {
  test('a table wider than the terminal is fitted, narrow ones are left alone', () => {
    const head = ['id', 'problems'];
    const rows = [['n1', 'x'.repeat(200)]];
    assert.equal(fittedWidths(head, [['n1', 'ok']], 80), null);
    const widths = fittedWidths(head, rows, 80);
    assert.ok(widths !== null);
    // Borders: one per column plus one; the fitted table is at most 80 characters wide.
    assert.ok(widths.reduce((sum, width) => sum + width + 1, 1) <= 80, String(widths));
  });
});
