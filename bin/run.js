#!/usr/bin/env node
// rdbnet entry point. The compile cache makes every later start-up skip re-parsing the
// command modules (Node >= 22.1).
import module from 'node:module';

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(
    `Error: rdbnet needs Node.js 22 or newer; this is ${process.version}.\n` +
      'Hint: run it as `npx rdbnet …` in the project directory, which uses the Node 24 the project installs.\n',
  );
  process.exit(1);
}

module.enableCompileCache?.();

const { run, flush, Errors } = await import('@oclif/core');

try {
  await run(process.argv.slice(2), import.meta.url);
  await flush();
} catch (error) {
  // Errors inside commands are handled by RdbnetCommand; what reaches here is oclif's own:
  // an unknown command or topic, or an explicit exit.
  if (error instanceof Errors.ExitError) {
    process.exitCode = error.oclif.exit;
  } else {
    const message = String(error?.message ?? error).split('\n')[0];
    const json = process.argv.includes('--json');
    const unknown = /command .* not found/i.test(message);
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ error: { code: unknown ? 'RDB_USAGE' : 'RDB_INTERNAL', message } })}\n`,
      );
    } else {
      process.stderr.write(`Error: ${message}\n`);
      if (unknown) process.stderr.write('Hint: run `rdbnet --help` for the list of commands\n');
    }
    if (/(^|,)\s*rdbnet/.test(process.env.DEBUG ?? '')) process.stderr.write(`${error?.stack}\n`);
    process.exitCode = unknown ? 64 : 1;
  }
}
