import { Args } from '@oclif/core';
import { RdbnetCommand } from '../cli/base-command.ts';
import { COMPLETION_SHELLS, type CompletionShell, completionScript } from '../cli/completion.ts';

export interface AutocompleteResult {
  shell: CompletionShell;
  script: string;
}

export default class Autocomplete extends RdbnetCommand<AutocompleteResult> {
  static override summary = 'Print the shell completion script for bash, zsh or fish.';
  static override description =
    'Completes topics, commands, their flags and the values of -o/--output. The script is ' +
    'static (TAB starts no process); print it again after an upgrade. Install it with one line ' +
    'in the shell start-up file.';
  static override examples = [
    'eval "$(<%= config.bin %> autocomplete bash)"    # in ~/.bashrc',
    'eval "$(<%= config.bin %> autocomplete zsh)"     # in ~/.zshrc',
    '<%= config.bin %> autocomplete fish > ~/.config/fish/completions/rdbnet.fish',
  ];
  static override args = {
    shell: Args.string({
      description: 'The shell.',
      options: [...COMPLETION_SHELLS],
      default: 'bash',
    }),
  };

  protected override async execute(): Promise<AutocompleteResult> {
    const { args } = await this.parse(Autocomplete);
    const shell = args.shell as CompletionShell;
    const commands = this.config.commands.map((command) => ({
      id: command.id,
      flags: Object.keys(command.flags ?? {}),
      summary: command.summary,
    }));
    return { shell, script: completionScript(shell, commands) };
  }

  protected override render(result: AutocompleteResult): void {
    process.stdout.write(result.script);
  }
}
