/**
 * Shell completion scripts for bash, zsh and fish, generated from the commands and flags oclif
 * knows (the manifest), so a new command completes without editing anything here. The scripts
 * are static: pressing TAB runs no Node process.
 */
import { OUTPUT_MODES } from './output-mode.ts';

export const COMPLETION_SHELLS = ['bash', 'zsh', 'fish'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

/** What a completion script needs of one command. */
export interface CompletableCommand {
  /** oclif id, colon-separated (`cluster:members`). */
  id: string;
  /** Long flag names without dashes, plus `help`. */
  flags: string[];
  summary?: string | undefined;
}

/** Words that may follow each path (a topic or the root ''): its sub-topics and commands. */
function childrenByPath(commands: CompletableCommand[]): Map<string, string[]> {
  const children = new Map<string, Set<string>>();
  for (const command of commands) {
    const parts = command.id.split(':');
    for (let depth = 0; depth < parts.length; depth++) {
      const path = parts.slice(0, depth).join(' ');
      const set = children.get(path) ?? new Set<string>();
      set.add(parts[depth]!);
      children.set(path, set);
    }
  }
  return new Map([...children].map(([path, set]) => [path, [...set].sort()]));
}

function bashScript(commands: CompletableCommand[]): string {
  const children = childrenByPath(commands);
  const cases: string[] = [];
  for (const [path, words] of children) {
    cases.push(`    ${JSON.stringify(path)}) words=${JSON.stringify(words.join(' '))} ;;`);
  }
  for (const command of commands) {
    const flags = [...command.flags, 'help'].map((flag) => `--${flag}`);
    cases.push(
      `    ${JSON.stringify(command.id.replaceAll(':', ' '))}) words=${JSON.stringify([...new Set(flags)].sort().join(' '))} ;;`,
    );
  }
  return `# rdbnet completion for bash (rdbnet autocomplete bash); zsh uses it through bashcompinit.
_rdbnet() {
  local cur prev path word words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
    -o|--output) COMPREPLY=( $(compgen -W ${JSON.stringify(OUTPUT_MODES.join(' '))} -- "$cur") ); return 0 ;;
  esac
  # The command path: the words after rdbnet up to the first flag.
  path=""
  for word in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$word" in
      -*) break ;;
      *) path="\${path:+$path }$word" ;;
    esac
  done
  words=""
  case "$path" in
${cases.join('\n')}
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
  return 0
}
complete -F _rdbnet rdbnet
`;
}

function zshScript(commands: CompletableCommand[]): string {
  return `# rdbnet completion for zsh (rdbnet autocomplete zsh): the bash script under bashcompinit.
autoload -U +X bashcompinit && bashcompinit
${bashScript(commands)}`;
}

function fishQuote(text: string): string {
  return `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

function fishScript(commands: CompletableCommand[]): string {
  const lines = [
    '# rdbnet completion for fish (rdbnet autocomplete fish)',
    'complete -c rdbnet -f',
  ];
  const children = childrenByPath(commands);
  for (const [path, words] of children) {
    const condition =
      path === ''
        ? '__fish_use_subcommand'
        : `__fish_seen_subcommand_from ${path.split(' ').at(-1)}`;
    for (const word of words) {
      lines.push(`complete -c rdbnet -n ${fishQuote(condition)} -a ${fishQuote(word)}`);
    }
  }
  for (const command of commands) {
    const last = command.id.split(':').at(-1)!;
    for (const flag of new Set([...command.flags, 'help'])) {
      lines.push(
        `complete -c rdbnet -n ${fishQuote(`__fish_seen_subcommand_from ${last}`)} -l ${flag}`,
      );
    }
  }
  lines.push(`complete -c rdbnet -s o -l output -x -a ${fishQuote(OUTPUT_MODES.join(' '))}`);
  return `${lines.join('\n')}\n`;
}

export function completionScript(shell: CompletionShell, commands: CompletableCommand[]): string {
  const sorted = [...commands].sort((a, b) => a.id.localeCompare(b.id));
  if (shell === 'bash') return bashScript(sorted);
  if (shell === 'zsh') return zshScript(sorted);
  return fishScript(sorted);
}
