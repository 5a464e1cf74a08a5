/**
 * What bin/run.js does before oclif: the answers that need no command module (`--version`,
 * `-v`, `version`), the shell's spellings of help (`help …`, `-h`), and an unknown command or
 * flag refused with a "did you mean" — all from oclif.manifest.json, so a typo costs one JSON
 * read instead of loading oclif and a command. Everything else goes to oclif unchanged.
 */

/** The part of oclif.manifest.json read here. */
export interface LauncherManifest {
  commands: Record<
    string,
    {
      flags: Record<
        string,
        { name: string; char?: string; allowNo?: boolean; type?: string; aliases?: string[] }
      >;
    }
  >;
}

/** What the launcher decided for one command line. */
export type LaunchPlan =
  | { kind: 'version' }
  | { kind: 'oclif'; argv: string[] }
  | { kind: 'usage-error'; message: string; hint: string };

/** Suggestions further than this many edits away are noise, not typos. */
const SUGGESTION_DISTANCE_MAX = 3;

/** Turns the shell's spellings into oclif's, and refuses unknown commands and flags. */
export function planLaunch(argv: string[], manifest: LauncherManifest): LaunchPlan {
  const first = argv[0];
  if (argv.length === 1 && (first === '--version' || first === '-v' || first === 'version')) {
    return { kind: 'version' };
  }
  if (first === 'help') return planLaunch([...argv.slice(1), '--help'], manifest);
  const end = argv.indexOf('--');
  const head = (end === -1 ? argv : argv.slice(0, end)).map((arg) =>
    arg === '-h' ? '--help' : arg,
  );
  const rest = end === -1 ? [] : argv.slice(end);
  const normalised = [...head, ...rest];

  const words: string[] = [];
  for (const arg of head) {
    if (arg.startsWith('-')) break;
    words.push(arg);
  }
  if (words.length === 0) return { kind: 'oclif', argv: normalised };

  const ids = Object.keys(manifest.commands);
  const topics = new Set(ids.flatMap((id) => prefixesOf(id)));
  // The longest run of leading words that names a command; the remaining words are its
  // arguments (no rdbnet command takes a positional argument that looks like a topic).
  let id: string | null = null;
  for (let count = words.length; count > 0; count--) {
    const candidate = words.slice(0, count).join(':');
    if (manifest.commands[candidate] !== undefined) {
      id = candidate;
      break;
    }
  }
  if (id === null) {
    const joined = words.join(':');
    // A topic alone (`rdbnet cluster`) or with --help is oclif's topic help.
    if (topics.has(joined)) return { kind: 'oclif', argv: normalised };
    const wanted = words.slice(0, Math.min(words.length, 2)).join(':');
    const topic = topics.has(words[0]!) ? words[0]! : null;
    // Under a known topic only its commands are suggested (`node frobnicate` is not `node`).
    const nearest =
      closest(wanted, ids) ?? (topic === null ? closest(words[0]!, [...topics, ...ids]) : null);
    const typed = words.slice(0, Math.min(words.length, 2)).join(' ');
    return {
      kind: 'usage-error',
      message: `unknown command \`${typed}\`${nearest ? `; did you mean \`${spaced(nearest)}\`?` : ''}`,
      hint: `run \`rdbnet ${topic === null ? '' : `${topic} `}--help\` for the list of commands`,
    };
  }

  const flags = manifest.commands[id]!.flags;
  const known = new Set<string>(['help']);
  for (const flag of Object.values(flags)) {
    known.add(flag.name);
    if (flag.allowNo) known.add(`no-${flag.name}`);
    // Other commands may declare aliases (oclif `aliases`): those are flags too.
    for (const alias of flag.aliases ?? []) known.add(alias);
  }
  for (const arg of head) {
    if (arg.startsWith('--') && arg.length > 2) {
      const name = arg.slice(2).split('=')[0]!;
      if (!known.has(name)) {
        const nearest = closest(name, [...known]);
        return {
          kind: 'usage-error',
          message: `unknown flag --${name} for \`${spaced(id)}\`${nearest ? `; did you mean --${nearest}?` : ''}`,
          hint: `run \`rdbnet ${spaced(id)} --help\` for its flags`,
        };
      }
    }
  }
  return { kind: 'oclif', argv: normalised };
}

/** `cluster:members` → `cluster members`: oclif's ids are colon-separated, people type spaces. */
export function spaced(id: string): string {
  return id.replaceAll(':', ' ');
}

function prefixesOf(id: string): string[] {
  const parts = id.split(':');
  return parts.slice(0, -1).map((_, index) => parts.slice(0, index + 1).join(':'));
}

/** The candidate nearest to `word` by edit distance, when it is close enough to be a typo. */
export function closest(word: string, candidates: Iterable<string>): string | null {
  let best: string | null = null;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const allowed = Math.min(SUGGESTION_DISTANCE_MAX, Math.max(1, Math.floor(word.length / 3)));
  return bestDistance <= allowed ? best : null;
}

/** Levenshtein distance with transpositions counted as one edit (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, () => new Array<number>(cols).fill(0));
  for (let i = 0; i < rows; i++) d[i]![0] = i;
  for (let j = 0; j < cols; j++) d[0]![j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        value = Math.min(value, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = value;
    }
  }
  return d[a.length]![b.length]!;
}
