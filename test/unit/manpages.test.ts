import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  diffManDir,
  escapeText,
  type Manifest,
  type PackageInfo,
  pageFileName,
  renderManPages,
} from '../../scripts/manpages.ts';

const root = new URL('../../', import.meta.url);
const manDir = fileURLToPath(new URL('man/', root));
const manifest = JSON.parse(readFileSync(new URL('oclif.manifest.json', root), 'utf8')) as Manifest;
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as PackageInfo;
const bin = pkg.oclif?.bin ?? pkg.name;

/** The lines of one section, from its .SH up to the next .SH. */
function section(page: string, name: string): string {
  const lines = page.split('\n');
  const start = lines.findIndex((l) => l === `.SH ${name}` || l === `.SH "${name}"`);
  assert.notEqual(start, -1, `no ${name} section`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('.SH '));
  return lines.slice(start + 1, end === -1 ? undefined : end).join('\n');
}

const troffFlag = (name: string) => `\\-\\-${name.replaceAll('-', '\\-')}`;

describe('man pages from the real manifest', () => {
  const pages = renderManPages(manifest, pkg);

  test('every command has a page, listed in the overview', () => {
    const ids = Object.keys(manifest.commands);
    assert.ok(ids.length > 0);
    const overview = pages.get(`${bin}.1`);
    assert.ok(overview, 'overview page');
    for (const id of ids) {
      const file = pageFileName(bin, id);
      assert.ok(pages.has(file), `${file} for ${id}`);
      const name = file.replace(/\.1$/, '').replaceAll('-', '\\-');
      assert.match(
        section(overview, 'SEE ALSO'),
        new RegExp(`^\\.BR ${name.replaceAll('\\', '\\\\')} \\(1\\)`, 'm'),
      );
      assert.ok(
        section(overview, 'COMMANDS').includes(
          `\\fB${bin} ${id.replaceAll(':', ' ').replaceAll('-', '\\-')}\\fR`,
        ),
      );
    }
    assert.equal(pages.size, ids.length + 1);
  });

  test('node start documents every flag, and its examples are rendered', () => {
    const page = pages.get(pageFileName(bin, 'node:start'));
    assert.ok(page);
    assert.match(page, /^\.TH RDBNET-NODE-START 1 "" "rdbnet \d+\.\d+\.\d+\S*" "rdbnet manual"$/m);
    assert.match(section(page, 'SYNOPSIS'), /\\fBrdbnet node start\\fR \[\\fIflags\\fR\]/);
    const options = section(page, 'OPTIONS');
    const flags = manifest.commands['node:start']?.flags ?? {};
    assert.ok(Object.keys(flags).length > 0);
    for (const [name, flag] of Object.entries(flags)) {
      // A flag with allowNo is shown as --[no-]name.
      const shown = flag.allowNo
        ? troffFlag(name).replace(/^\\-\\-/, '\\-\\-[no\\-]')
        : troffFlag(name);
      assert.ok(options.includes(shown), `--${name} in OPTIONS`);
    }
    const examples = section(page, 'EXAMPLES');
    assert.ok(examples.includes('rdbnet node start'));
    for (const content of pages.values()) assert.ok(!content.includes('<%'), 'template left');
    assert.ok(!/\d{4}-\d{2}-\d{2}/.test(page), 'no dates');
  });

  test('health documents its own exit codes', () => {
    const page = pages.get(pageFileName(bin, 'health'));
    assert.ok(page);
    const exit = section(page, 'EXIT STATUS');
    for (const code of ['0', '1', '2', '3']) assert.match(exit, new RegExp(`^\\.B ${code}$`, 'm'));
  });

  test('rendering is deterministic and independent of key order', () => {
    const shuffled: Manifest = {
      ...manifest,
      commands: Object.fromEntries(
        Object.entries(manifest.commands)
          .reverse()
          .map(([id, command]) => [
            id,
            {
              ...command,
              flags: Object.fromEntries(Object.entries(command.flags ?? {}).reverse()),
            },
          ]),
      ),
    };
    const again = renderManPages(shuffled, pkg);
    assert.deepEqual([...again.keys()], [...pages.keys()]);
    for (const [file, content] of pages) assert.equal(again.get(file), content, file);
  });

  test('man/ is up to date (run `npm run build` when this fails)', async () => {
    const diff = await diffManDir(manDir, pages, bin);
    assert.deepEqual(diff, { differ: [], missing: [], extra: [] });
  });
});

describe('troff escaping', () => {
  const demo: Manifest = {
    version: '9.9.9',
    commands: {
      'demo:run': {
        id: 'demo:run',
        summary: 'Run the demo.',
        description:
          '.starts with a dot\nand has a back\\slash\n\'quoted start, "double" and caf\u00e9',
        examples: ['<%= config.bin %> <%= command.id %> --dry-run'],
        flags: {
          'dry-run': { name: 'dry-run', type: 'boolean', char: 'n', description: '.hidden?' },
          level: { name: 'level', type: 'option', description: 'How \\much.', default: 2 },
        },
        args: { target: { name: 'target', description: 'What to run.', required: true } },
      },
    },
  };
  const demoPkg: PackageInfo = {
    name: 'demo',
    version: '9.9.9',
    description: 'Demo.',
    oclif: { topicSeparator: ' ' },
  };

  test('escapeText', () => {
    assert.equal(escapeText('a\\b'), 'a\\eb');
    assert.equal(escapeText('--dry-run'), '\\-\\-dry\\-run');
    assert.equal(escapeText(".x\n'y\nz."), "\\&.x\n\\&'y\nz.");
    assert.equal(escapeText('caf\u00e9'), 'caf\\[u00E9]');
  });

  test('user text cannot start a request, and backslashes are literal', () => {
    const page = renderManPages(demo, demoPkg).get('demo-demo-run.1');
    assert.ok(page);
    assert.ok(page.includes('\n\\&.starts with a dot\n'));
    assert.ok(page.includes('and has a back\\eslash'));
    assert.ok(page.includes('\n\\&\'quoted start, "double" and caf\\[u00E9]'));
    assert.ok(page.includes('\\fB\\-n\\fR, \\fB\\-\\-dry\\-run\\fR\n\\&.hidden?'));
    assert.ok(page.includes('\\fB\\-\\-level\\fR=\\fIVALUE\\fR\nHow \\emuch.'));
    assert.ok(page.includes('\\fBdemo demo run\\fR [\\fIflags\\fR] \\fITARGET\\fR'));
    assert.ok(page.includes('\ndemo demo run \\-\\-dry\\-run\n'));
    // Apart from escaped text, the only lines starting with . are the requests we emit.
    for (const l of page.split('\n')) {
      if (l.startsWith('.') || l.startsWith("'")) {
        assert.match(l, /^\.(TH|SH|SS|PP|IP|TP|RS|RE|nf|fi|br|nh|ad|B|BR)( |$)/, l);
      }
      for (const seq of l.match(/\\./g) ?? []) {
        assert.ok(['\\e', '\\-', '\\&', '\\f', '\\(', '\\['].includes(seq), `${seq} in ${l}`);
      }
    }
  });
});

/**
 * man-db's man (it prints "man 2.x"), not mandoc's, whose options differ, nor the stub of a
 * minimized system that only explains how to install the real one.
 */
function manDbAvailable(): boolean {
  const version = spawnSync('man', ['--version'], { encoding: 'utf8' });
  return version.status === 0 && /^man \d/.test(version.stdout);
}

describe('rendering with man(1)', {
  skip: manDbAvailable() ? false : 'man-db is not installed',
}, () => {
  const files = [pageFileName(bin, 'node:start'), ...renderManPages(manifest, pkg).keys()];
  for (const file of new Set(files)) {
    test(`man -l man/${file}`, () => {
      // Without --warnings man-db keeps groff quiet even about undefined macros.
      const result = spawnSync('man', ['--warnings=all', '-l', `${manDir}${file}`], {
        encoding: 'utf8',
        env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat', LC_ALL: 'C.UTF-8' },
      });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stderr, '');
      assert.match(result.stdout, /NAME/);
      if (file === pageFileName(bin, 'node:start')) {
        assert.match(result.stdout, /--data-dir=dir/);
        assert.match(result.stdout, /rdbnet node start --config node\.json --json/);
      }
    });
  }
});
