#!/bin/sh
':' //; s=$0; [ -L "$s" ] && s=$(readlink -f "$s"); n=${s%/*}/../node_modules/node/bin/node; [ -x "$n" ] || n=node; exec "$n" "$s" "$@"
// rdbnet entry point. Read by /bin/sh first: the line above replaces the shell with the
// project's own Node 24 (node_modules/node) when it is there, else the `node` on PATH — one
// process either way (exec). Node skips the #! line and reads the shell line as a string and a
// comment. The compile cache makes every later start-up skip re-parsing the modules.
import module from 'node:module';

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(
    `Error: rdbnet needs Node.js 22 or newer; this is ${process.version}.\n` +
      'Hint: install Node.js 22 or newer (https://nodejs.org), or run bin/run.js from a clone after `npm ci`, which brings Node 24.\n',
  );
  process.exit(1);
}

module.enableCompileCache?.();

// A reader that went away (`rdbnet --help | head -1`) is not an error of ours: stop quietly.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const { readFileSync } = await import('node:fs');
const argv = process.argv.slice(2);

if (argv.length === 1 && ['--version', '-v', 'version'].includes(argv[0])) {
  // The commonest question, answered without reading the command manifest.
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(
    `rdbnet/${version} ${process.platform}-${process.arch} node-${process.version}\n`,
  );
  process.exit(0);
}

const { planLaunch } = await import('../dist/cli/launcher.js');
const { outputModeOf, isMachineMode } = await import('../dist/cli/output-mode.js');
const manifest = JSON.parse(
  readFileSync(new URL('../oclif.manifest.json', import.meta.url), 'utf8'),
);
const plan = planLaunch(argv, manifest);

if (plan.kind === 'version') {
  process.exitCode = 0; // answered above; kept so that the plan's cases stay exhaustive
} else if (plan.kind === 'usage-error') {
  reportError('RDB_USAGE', plan.message, plan.hint);
  process.exitCode = 64;
} else {
  const { run, flush, Errors } = await import('@oclif/core');
  try {
    await run(plan.argv, import.meta.url);
    await flush();
  } catch (error) {
    // Errors inside commands are handled by RdbnetCommand; what reaches here is oclif's own:
    // an unknown topic or an explicit exit.
    if (error instanceof Errors.ExitError) {
      process.exitCode = error.oclif.exit;
    } else {
      const message = String(error?.message ?? error).split('\n')[0];
      const unknown = /command .* not found/i.test(message);
      reportError(
        unknown ? 'RDB_USAGE' : 'RDB_INTERNAL',
        message,
        unknown ? 'run `rdbnet --help` for the list of commands' : undefined,
      );
      if (/(^|,)\s*rdbnet/.test(process.env.DEBUG ?? '')) process.stderr.write(`${error?.stack}\n`);
      process.exitCode = unknown ? 64 : 1;
    }
  }
}

function reportError(code, message, hint) {
  if (isMachineMode(outputModeOf(argv))) {
    process.stdout.write(
      `${JSON.stringify({ error: { code, message, ...(hint ? { hint } : {}) } })}\n`,
    );
  } else {
    process.stderr.write(`Error: ${message}\n${hint ? `Hint: ${hint}\n` : ''}`);
  }
}
