/**
 * Every rdbnet command extends this. A command implements `execute()` (returns the typed
 * result that --json prints) and `render()` (the human view); errors, exit codes and the
 * JSON error shape are handled here once, as docs/CLI.md specifies.
 */
import { Command, Flags, type Interfaces } from '@oclif/core';
import { ErrorCode, isRdbnetError, RdbnetError } from '../core/errors.ts';
import { ExitCode, exitCodeForError } from './exit-codes.ts';
import { argvForNode, type FanOutResult, fanOutNodes } from './fan-out.ts';
import { printJson, printJsonLine, printYaml, setHumanMode } from './output.ts';
import { isMachineMode, OUTPUT_MODES, type OutputMode, outputModeOf } from './output-mode.ts';

export type BaseFlags = Interfaces.InferredFlags<(typeof RdbnetCommand)['baseFlags']>;

export abstract class RdbnetCommand<Result> extends Command {
  static override baseFlags = {
    json: Flags.boolean({
      description: 'Print the result as one JSON document on stdout (same as -o json).',
      helpGroup: 'GLOBAL',
    }),
    output: Flags.string({
      char: 'o',
      description:
        'Output format: table (boxed), plain (tab-separated, no colour), json, ndjson (one ' +
        'compact object a line) or yaml. [default: table on a terminal, plain in a pipe]',
      options: [...OUTPUT_MODES],
      env: 'RDBNET_OUTPUT',
      helpValue: 'format',
      helpGroup: 'GLOBAL',
    }),
  };

  /** The output format of this command line; known before parsing so parse errors honour it. */
  protected get outputMode(): OutputMode {
    return outputModeOf(this.argv);
  }

  /** True for machine output (--json, -o json|ndjson|yaml): no spinner, no prompt, errors as
   * a JSON object on stdout. */
  protected get json(): boolean {
    return isMachineMode(this.outputMode);
  }

  protected abstract execute(): Promise<Result>;
  protected abstract render(result: Result): void;

  /** Exit code for a successful result; `health` overrides this. */
  protected exitCodeFor(_result: Result): number {
    return ExitCode.Ok;
  }

  /** Read-only commands that may ask several nodes at once with `--node a,b,c`. */
  static fanOut = false;

  async run(): Promise<Result> {
    if ((this.constructor as typeof RdbnetCommand).fanOut) {
      const nodes = fanOutNodes(this.argv, process.env);
      if (nodes !== null) return (await this.runOnNodes(nodes)) as unknown as Result;
    }
    const result = await this.execute();
    await this.printResult(result);
    process.exitCode = this.exitCodeFor(result);
    return result;
  }

  /** Runs the command once per node (in turn: each run parses its own argv) and prints one
   * merged result; the exit code is the worst of the nodes'. */
  private async runOnNodes(nodes: string[]): Promise<FanOutResult<Result>> {
    const argv = this.argv;
    const merged: FanOutResult<Result> = { nodes: [] };
    let exitCode: number = ExitCode.Ok;
    for (const node of nodes) {
      this.argv = argvForNode(argv, node);
      try {
        const result = await this.execute();
        merged.nodes.push({ node, result });
        exitCode = Math.max(exitCode, this.exitCodeFor(result));
      } catch (error) {
        const typed = toTypedError(error as Error);
        if (typed === null || typed.code === ErrorCode.Usage) throw error;
        merged.nodes.push({ node, error: { code: typed.code, message: typed.message } });
        exitCode = Math.max(exitCode, this.exitCodeForFailure(typed));
      } finally {
        this.argv = argv;
      }
    }
    const mode = this.outputMode;
    if (isMachineMode(mode)) {
      if (mode === 'json') printJson(merged);
      else if (mode === 'ndjson') for (const answer of merged.nodes) printJsonLine(answer);
      else await printYaml(merged);
    } else {
      setHumanMode(mode);
      for (const answer of merged.nodes) {
        this.log(`# node ${answer.node}`);
        if ('result' in answer) this.render(answer.result);
        else this.log(`Error: ${answer.error.message}`);
      }
    }
    process.exitCode = exitCode;
    return merged;
  }

  /** Prints a result in the asked format; commands with their own run() call it too. */
  protected async printResult(result: Result): Promise<void> {
    const mode = this.outputMode;
    if (mode === 'json') printJson(result);
    else if (mode === 'ndjson') printJsonLine(result);
    else if (mode === 'yaml') await printYaml(result);
    else {
      setHumanMode(mode);
      this.render(result);
    }
  }

  /** Exit code when the command fails with `error`; `health` maps failures to 3. */
  protected exitCodeForFailure(error: RdbnetError): number {
    return exitCodeForError(error.code);
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<void> {
    // Ctrl-C at a prompt (inquirer's ExitPromptError): the person chose to stop; say nothing
    // more and exit as a shell does after SIGINT.
    if (error.name === 'ExitPromptError') {
      process.stderr.write('\n');
      process.exitCode = EXIT_AFTER_SIGINT;
      return;
    }
    const typed = toTypedError(error);
    if (typed === null) throw error; // oclif's own exits (help, version)
    const code = typed.code === 'RDB_USAGE' ? ExitCode.Usage : this.exitCodeForFailure(typed);
    if (this.json) {
      printJson({
        error: {
          code: typed.code,
          message: typed.message,
          ...(typed.hint ? { hint: typed.hint } : {}),
        },
      });
    } else {
      process.stderr.write(`Error: ${typed.message}\n`);
      if (typed.hint) process.stderr.write(`Hint: ${typed.hint}\n`);
    }
    if (debugEnabled()) process.stderr.write(`${error.stack ?? error}\n`);
    process.exitCode = code;
  }
}

/** 128 + SIGINT (2), what a shell reports for a command stopped by Ctrl-C. */
const EXIT_AFTER_SIGINT = 130;

export function debugEnabled(): boolean {
  return /(^|,)\s*rdbnet/.test(process.env['DEBUG'] ?? '');
}

/** oclif's parse and validation errors; some arrive re-thrown as plain Errors, so the
 * message shape is checked too. */
const PARSE_ERROR_MESSAGE =
  /^(Parsing --|Expected |Missing required|missing required flag|The following errors? occurred|Missing \d+ required|Unexpected argument|Nonexistent flag|--\S+ (?:cannot|must|=))/;

/** oclif parse errors become usage errors; everything unexpected keeps its message. */
function toTypedError(
  error: Error & { oclif?: { exit?: number }; parse?: unknown },
): RdbnetError | null {
  if (isRdbnetError(error)) return error;
  if (error.name === 'ExitError' || (error.oclif?.exit === 0 && !('parse' in error))) return null;
  const lines = error.message
    .split('\n')
    .map((line) => line.trim())
    .filter(
      (line) =>
        line !== '' &&
        !line.startsWith('See more help') &&
        !/^The following errors? occurred:?$/.test(line),
    )
    // oclif names a missing flag without its dashes ("Missing required flag to").
    .map((line) =>
      line.replace(/^Missing required flag (\w[\w-]*)$/, 'missing required flag --$1'),
    );
  if (
    'parse' in error ||
    error.constructor?.name?.endsWith('ParseError') ||
    PARSE_ERROR_MESSAGE.test(lines[0] ?? '')
  ) {
    // One line for a person: "Parsing --timeout" + "Expected an integer ..." joined.
    return new RdbnetError(
      'RDB_USAGE',
      lines
        .join(': ')
        .replace(/^Parsing (--\S+):/, '$1:')
        .replace(/:: /g, ': ')
        .replace(/ {2,}/g, ' — '),
      {
        hint: 'see --help for the flags this command takes',
      },
    );
  }
  return new RdbnetError('RDB_INTERNAL', lines.join(': ') || error.message);
}
