/**
 * The output format of a command line, known before oclif parses it (so that a parse error,
 * or a typo caught by the launcher, is already printed the way the caller asked).
 *
 * `-o/--output table|plain|json|ndjson|yaml`, `--json` (an alias of `-o json`), else
 * RDBNET_OUTPUT, else `table` on a terminal and `plain` in a pipe.
 */
export const OUTPUT_MODES = ['table', 'plain', 'json', 'ndjson', 'yaml'] as const;
export type OutputMode = (typeof OUTPUT_MODES)[number];

export function isOutputMode(value: string): value is OutputMode {
  return (OUTPUT_MODES as readonly string[]).includes(value);
}

/** The mode the flags ask for, or null when they name none (or an unknown one: oclif's
 * parser refuses that with exit 64). Only words before `--` count. */
export function requestedOutputMode(argv: readonly string[]): OutputMode | null {
  let mode: OutputMode | null = null;
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    if (arg === '--') break;
    let value: string | undefined;
    if (arg === '--json') value = 'json';
    else if (arg === '-o' || arg === '--output') value = argv[index + 1];
    else if (arg.startsWith('--output=')) value = arg.slice('--output='.length);
    else if (arg.startsWith('-o') && arg.length > 2 && !arg.startsWith('--')) {
      value = arg.slice(arg[2] === '=' ? 3 : 2);
    }
    if (value !== undefined && isOutputMode(value)) mode = value;
  }
  return mode;
}

export function outputModeOf(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  stdoutIsTerminal: boolean = Boolean(process.stdout.isTTY),
): OutputMode {
  const requested = requestedOutputMode(argv);
  if (requested !== null) return requested;
  const fromEnv = env['RDBNET_OUTPUT'];
  if (fromEnv !== undefined && isOutputMode(fromEnv)) return fromEnv;
  return stdoutIsTerminal ? 'table' : 'plain';
}

/** Machine-readable modes: no spinner, no prompt, errors as a JSON object on stdout. */
export function isMachineMode(mode: OutputMode): boolean {
  return mode === 'json' || mode === 'ndjson' || mode === 'yaml';
}
