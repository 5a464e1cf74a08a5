/**
 * Generates troff man pages from oclif.manifest.json: man/rdbnet.1 (overview) and one
 * man/rdbnet-<command>.1 per command. The output depends only on the manifest and
 * package.json, so `--check` (and the unit test) can tell when man/ is stale.
 *
 *   node scripts/manpages.ts          write man/, delete pages of commands that are gone
 *   node scripts/manpages.ts --check  write nothing; exit 1 if man/ differs
 */
import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ManifestFlag {
  name: string;
  type: 'boolean' | 'option';
  char?: string;
  summary?: string;
  description?: string;
  helpValue?: string | string[];
  helpGroup?: string;
  default?: unknown;
  options?: readonly string[];
  env?: string;
  multiple?: boolean;
  required?: boolean;
  allowNo?: boolean;
  hidden?: boolean;
  deprecated?: unknown;
  dependsOn?: readonly string[];
  exclusive?: readonly string[];
}

export interface ManifestArg {
  name: string;
  description?: string;
  required?: boolean;
  default?: unknown;
  options?: readonly string[];
  hidden?: boolean;
}

export type ManifestExample = string | { description: string; command: string };

export interface ManifestCommand {
  id: string;
  summary?: string;
  description?: string;
  examples?: readonly ManifestExample[];
  flags?: Record<string, ManifestFlag>;
  args?: Record<string, ManifestArg>;
  aliases?: readonly string[];
  hidden?: boolean;
  strict?: boolean;
}

export interface Manifest {
  version: string;
  commands: Record<string, ManifestCommand>;
}

export interface PackageInfo {
  name: string;
  version: string;
  description?: string;
  oclif?: {
    bin?: string;
    dirname?: string;
    topicSeparator?: string;
    topics?: Record<string, { description?: string; hidden?: boolean }>;
  };
}

interface Context {
  bin: string;
  dirname: string;
  separator: string;
  version: string;
}

interface ExitCode {
  code: number;
  meaning: string;
}

const EXIT_CODES: readonly ExitCode[] = [
  { code: 0, meaning: 'Success.' },
  { code: 1, meaning: 'The operation failed.' },
  { code: 64, meaning: 'Usage error: unknown command or flag, or an invalid flag value.' },
  {
    code: 69,
    meaning: 'The node could not be reached, or it did not complete the handshake in time.',
  },
];

/** Commands whose exit status is not the common one; keyed by manifest id. */
const EXIT_CODE_OVERRIDES: Readonly<Record<string, readonly ExitCode[]>> = {
  health: [
    { code: 0, meaning: 'Healthy.' },
    { code: 1, meaning: 'Degraded.' },
    { code: 2, meaning: 'Critical.' },
    { code: 3, meaning: 'Unknown: the node could not be reached or asked.' },
    { code: 64, meaning: 'Usage error: unknown flag, or an invalid flag value.' },
  ],
};

// ---------------------------------------------------------------------------------------
// troff escaping

/**
 * Escapes text for a troff text line. Every hyphen becomes `\-` because the text is full of
 * flags and host names, which must survive copy and paste as ASCII hyphen-minus; non-ASCII
 * becomes `\[uXXXX]` so the pages do not depend on the reader's locale or preconv.
 */
export function escapeText(text: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\e';
    else if (ch === '-') out += '\\-';
    else if (ch === '\n' || ch === '\t') out += ch;
    else if (code < 0x20 || code === 0x7f) continue;
    else if (code > 0x7e) out += `\\[u${code.toString(16).toUpperCase().padStart(4, '0')}]`;
    else out += ch;
  }
  // A text line starting with . or ' would be read as a request.
  return out.replace(/^[.']/gm, '\\&$&');
}

/** One quoted macro argument, e.g. for .SS; macro arguments cannot span lines. */
export function escapeArg(text: string): string {
  return `"${escapeText(oneLine(text)).replace(/^\\&/, '').replaceAll('"', '\\(dq')}"`;
}

function bold(text: string): string {
  return `\\fB${escapeText(text)}\\fR`;
}

function italic(text: string): string {
  return `\\fI${escapeText(text)}\\fR`;
}

/** A line built from font-escaped pieces starts with `\f`, but guard anyway. */
function line(text: string): string {
  return /^[.']/.test(text) ? `\\&${text}` : text;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** Paragraphs are separated by blank lines; lines within one are kept (indentation too). */
function paragraphs(text: string | undefined): string[] {
  if (!text) return [];
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((p) =>
      p
        .split('\n')
        .map((l) => l.trimEnd())
        .join('\n')
        .replace(/^\n+|\n+$/g, ''),
    )
    .filter((p) => p.trim() !== '')
    .map((p) => escapeText(p));
}

/** Paragraphs inside a .TP/.IP body: the first follows the tag, the rest are indented alike. */
function indentedParagraphs(texts: string[]): string[] {
  return texts.flatMap((p, i) => (i === 0 ? [p] : ['.IP', p]));
}

// ---------------------------------------------------------------------------------------
// names and ordering

/** Segment-wise, by code unit: independent of locale and of the topic separator. */
export function compareIds(a: string, b: string): number {
  const x = a.split(':');
  const y = b.split(':');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i]! !== y[i]!) return x[i]! < y[i]! ? -1 : 1;
  }
  return x.length - y.length;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function pageName(bin: string, id?: string): string {
  return id === undefined ? bin : `${bin}-${id.replace(/[: ]+/g, '-')}`;
}

export function pageFileName(bin: string, id?: string): string {
  return `${pageName(bin, id)}.1`;
}

function displayId(ctx: Context, id: string): string {
  return id.replaceAll(':', ctx.separator);
}

function visibleCommands(manifest: Manifest): ManifestCommand[] {
  return Object.entries(manifest.commands)
    .filter(([, command]) => !command.hidden)
    .map(([id, command]) => ({ ...command, id: command.id ?? id }))
    .sort((a, b) => compareIds(a.id, b.id));
}

/** Ungrouped flags first (as oclif's help shows them), then each help group; sorted within. */
function flagGroups(command: ManifestCommand): { group: string; flags: ManifestFlag[] }[] {
  const byGroup = new Map<string, ManifestFlag[]>();
  for (const [name, flag] of Object.entries(command.flags ?? {})) {
    if (flag.hidden) continue;
    const group = flag.helpGroup ?? '';
    byGroup.set(group, [...(byGroup.get(group) ?? []), { ...flag, name: flag.name ?? name }]);
  }
  return [...byGroup.entries()]
    .sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : compareStrings(a, b)))
    .map(([group, flags]) => ({
      group,
      flags: flags.sort((a, b) => compareStrings(a.name, b.name)),
    }));
}

/** Replaces the oclif template variables that help output would replace. */
export function renderTemplate(text: string, bin: string, id: string, dirname = bin): string {
  return text
    .replace(/<%[=-]\s*config\.bin\s*%>/g, bin)
    .replace(/<%[=-]\s*config\.dirname\s*%>/g, dirname)
    .replace(/<%[=-]\s*command\.id\s*%>/g, id);
}

function formatValue(value: unknown): string {
  if (Array.isArray(value)) return value.map(formatValue).join(', ');
  if (typeof value === 'string') return value;
  return JSON.stringify(value) ?? String(value);
}

// ---------------------------------------------------------------------------------------
// sections

function header(ctx: Context, name: string): string[] {
  // No hyphenation and no justification: words like $RDBNET_HOME or flag names split across
  // lines cannot be searched for or copied.
  return [
    `.TH ${escapeText(name.toUpperCase()).replaceAll('\\-', '-')} 1 "" ${escapeArg(`${ctx.bin} ${ctx.version}`)} ${escapeArg(`${ctx.bin} manual`)}`,
    '.nh',
    '.ad l',
  ];
}

function nameSection(name: string, summary: string): string[] {
  const whatis = oneLine(summary).replace(/\.$/, '');
  return ['.SH NAME', `${escapeText(name)} \\- ${escapeText(whatis)}`];
}

function exitStatusSection(codes: readonly ExitCode[]): string[] {
  return [
    '.SH "EXIT STATUS"',
    ...codes.flatMap((c) => ['.TP', `.B ${c.code}`, escapeText(c.meaning)]),
  ];
}

function seeAlso(pages: readonly string[]): string[] {
  return [
    '.SH "SEE ALSO"',
    ...pages.map((page, i) => `.BR ${escapeText(page)} (1)${i < pages.length - 1 ? ',' : ''}`),
  ];
}

function flagTag(flag: ManifestFlag): string {
  const dashes = `\\-\\-${flag.allowNo ? '[no\\-]' : ''}`;
  let tag = `\\fB${dashes}${escapeText(flag.name)}\\fR`;
  if (flag.type === 'option') {
    const value = Array.isArray(flag.helpValue) ? flag.helpValue.join(' ') : flag.helpValue;
    tag += `=${italic(value || 'VALUE')}`;
  }
  return line(flag.char ? `${bold(`-${flag.char}`)}, ${tag}` : tag);
}

function flagBody(ctx: Context, command: ManifestCommand, flag: ManifestFlag): string[] {
  const render = (t: string) => renderTemplate(t, ctx.bin, displayId(ctx, command.id), ctx.dirname);
  const texts = [...paragraphs(flag.summary && render(flag.summary))];
  texts.push(...paragraphs(flag.description && render(flag.description)));
  const facts: string[] = [];
  if (flag.required) facts.push('Required.');
  if (flag.multiple) facts.push('May be given more than once.');
  if (flag.default !== undefined && flag.default !== false) {
    facts.push(`Default: ${bold(formatValue(flag.default))}.`);
  }
  if (flag.options?.length) facts.push(`Values: ${flag.options.map(bold).join(', ')}.`);
  if (flag.env) facts.push(`Environment: ${bold(flag.env)}.`);
  if (flag.dependsOn?.length) {
    facts.push(`Requires ${flag.dependsOn.map((f) => bold(`--${f}`)).join(', ')}.`);
  }
  if (flag.exclusive?.length) {
    facts.push(`Cannot be combined with ${flag.exclusive.map((f) => bold(`--${f}`)).join(', ')}.`);
  }
  if (flag.deprecated) facts.push('Deprecated.');
  if (facts.length > 0) texts.push(facts.map(line).join('\n.br\n'));
  return indentedParagraphs(texts);
}

function visibleArgs(command: ManifestCommand): ManifestArg[] {
  // Argument order is positional, so it stays as declared.
  return Object.entries(command.args ?? {})
    .filter(([, arg]) => !arg.hidden)
    .map(([name, arg]) => ({ ...arg, name: arg.name ?? name }));
}

function synopsis(ctx: Context, command: ManifestCommand): string {
  const parts = [bold(`${ctx.bin} ${displayId(ctx, command.id)}`)];
  if (flagGroups(command).length > 0) parts.push(`[${italic('flags')}]`);
  const args = visibleArgs(command);
  args.forEach((arg, i) => {
    const variadic = command.strict === false && i === args.length - 1 ? '...' : '';
    const name = italic(arg.name.toUpperCase()) + variadic;
    parts.push(arg.required ? name : `[${name}]`);
  });
  return line(parts.join(' '));
}

function examplesSection(ctx: Context, command: ManifestCommand): string[] {
  const id = displayId(ctx, command.id);
  const render = (t: string) => renderTemplate(t, ctx.bin, id, ctx.dirname);
  const out: string[] = [];
  for (const example of command.examples ?? []) {
    const { description, commandLine } =
      typeof example === 'string'
        ? { description: undefined, commandLine: example }
        : { description: example.description, commandLine: example.command };
    out.push('.PP');
    if (description) out.push(...paragraphs(render(description)), '.PP');
    out.push('.RS 4', '.nf', escapeText(render(commandLine).replace(/\s+$/, '')), '.fi', '.RE');
  }
  return out.length > 0 ? ['.SH EXAMPLES', ...out] : [];
}

function commandPage(
  ctx: Context,
  command: ManifestCommand,
  siblings: readonly ManifestCommand[],
): string[] {
  const id = displayId(ctx, command.id);
  const render = (t: string) => renderTemplate(t, ctx.bin, id, ctx.dirname);
  const name = pageName(ctx.bin, command.id);
  const summary = render(command.summary ?? command.description?.split('\n')[0] ?? '');
  const description = render(command.description ?? '');
  const out = [...header(ctx, name), ...nameSection(name, summary)];

  out.push('.SH SYNOPSIS', synopsis(ctx, command));

  out.push('.SH DESCRIPTION', '.PP', ...paragraphs(summary));
  // oclif allows the description to repeat the summary as its first line.
  const body = description.startsWith(summary) ? description.slice(summary.length) : description;
  for (const p of paragraphs(body)) out.push('.PP', p);
  const aliases = (command.aliases ?? []).map((a) => bold(`${ctx.bin} ${displayId(ctx, a)}`));
  if (aliases.length > 0) out.push('.PP', `Also available as ${aliases.join(', ')}.`);

  const args = visibleArgs(command);
  if (args.length > 0) {
    out.push('.SH ARGUMENTS');
    for (const arg of args) {
      const facts: string[] = [];
      if (arg.default !== undefined) facts.push(`Default: ${bold(formatValue(arg.default))}.`);
      if (arg.options?.length) facts.push(`Values: ${arg.options.map(bold).join(', ')}.`);
      const texts = [...paragraphs(arg.description && render(arg.description))];
      if (facts.length > 0) texts.push(facts.join('\n.br\n'));
      out.push('.TP', italic(arg.name.toUpperCase()), ...indentedParagraphs(texts));
    }
  }

  const groups = flagGroups(command);
  if (groups.length > 0) {
    out.push('.SH OPTIONS');
    for (const { group, flags } of groups) {
      if (group !== '')
        out.push(
          `.SS ${escapeArg(`${group[0]!.toUpperCase()}${group.slice(1).toLowerCase()} options`)}`,
        );
      for (const flag of flags) out.push('.TP', flagTag(flag), ...flagBody(ctx, command, flag));
    }
  }

  out.push(...examplesSection(ctx, command));
  out.push(...exitStatusSection(EXIT_CODE_OVERRIDES[command.id] ?? EXIT_CODES));
  const related = siblings.filter((c) => c.id !== command.id).map((c) => pageName(ctx.bin, c.id));
  out.push(...seeAlso([ctx.bin, ...related]));
  return out;
}

/** The topic a command is listed under in the overview, or '' for top-level commands. */
function topicOf(command: ManifestCommand, topics: Record<string, unknown>): string {
  const [first] = command.id.split(':');
  return command.id.includes(':') || Object.hasOwn(topics, first!) ? first! : '';
}

function overviewPage(ctx: Context, pkg: PackageInfo, commands: ManifestCommand[]): string[] {
  const topics = pkg.oclif?.topics ?? {};
  const b = ctx.bin;
  const out = [...header(ctx, b), ...nameSection(b, pkg.description ?? `${b} command line`)];

  out.push(
    '.SH SYNOPSIS',
    line(`${bold(b)} ${italic('command')} [${italic('flags')}]`),
    '.br',
    line(`${bold(b)} [${italic('command')}] ${bold('--help')}`),
    '.br',
    line(bold(`${b} --version`)),
  );

  out.push('.SH DESCRIPTION');
  for (const p of paragraphs(pkg.description)) out.push('.PP', p);
  out.push(
    '.PP',
    `Each command has its own manual page, ${bold(`${b}-`)}${italic('command')}(1), ` +
      `and prints its usage with ${bold('--help')}. ` +
      `Commands that take ${bold('--json')} print one JSON document on stdout instead of the ` +
      'human-readable view; errors then become a JSON document too.',
  );

  out.push('.SH COMMANDS');
  const groups = new Map<string, ManifestCommand[]>();
  for (const command of commands) {
    const topic = topicOf(command, topics);
    groups.set(topic, [...(groups.get(topic) ?? []), command]);
  }
  for (const [topic, members] of [...groups.entries()].sort(([a], [b]) => compareIds(a, b))) {
    if (topic !== '') {
      out.push(`.SS ${escapeArg(displayId(ctx, topic))}`);
      const about = topics[topic]?.description;
      if (about) out.push(...paragraphs(about));
    }
    for (const command of members) {
      const summary = command.summary ?? command.description?.split('\n')[0] ?? '';
      const rendered = renderTemplate(summary, b, displayId(ctx, command.id), ctx.dirname);
      out.push('.TP', bold(`${b} ${displayId(ctx, command.id)}`), ...paragraphs(rendered));
    }
  }

  out.push(
    '.SH ENVIRONMENT',
    '.TP',
    '.B RDBNET_NODE',
    `The node that client commands talk to, as ${italic('host')}:${italic('port')}, ` +
      `when ${bold('--node')} is not given. Default: ${bold('127.0.0.1:7000')}.`,
    '.TP',
    '.B RDBNET_HOME',
    `Where a node keeps its data (${bold('$RDBNET_HOME/node')}) and certificates by default. ` +
      `Default: ${bold('~/.rdbnet')}.`,
    '.TP',
    '.B RDBNET_CERTS_DIR',
    `The certificates directory when ${bold('--certs-dir')} is not given. ` +
      `Default: ${bold('$RDBNET_HOME/certs')}.`,
    '.TP',
    '.B DEBUG',
    `When it names ${bold('rdbnet')} (for example ${bold('DEBUG=rdbnet*')}), ` +
      'errors are followed by their stack trace on stderr.',
  );

  out.push(...exitStatusSection(EXIT_CODES));
  const health = commands.find((c) => c.id === 'health');
  if (health) {
    out.push(
      '.PP',
      `${bold(`${b} ${displayId(ctx, health.id)}`)} follows the monitoring-plugin convention ` +
        `instead: ${bold('0')} healthy, ${bold('1')} degraded, ${bold('2')} critical, ` +
        `${bold('3')} unknown; see ${bold(pageName(b, health.id))}(1).`,
    );
  }

  out.push(
    '.SH FILES',
    '.PP',
    `Certificates live in ${bold('$RDBNET_CERTS_DIR')} (default ${bold('$RDBNET_HOME/certs')}):`,
    '.TP',
    bold('ca.crt'),
    'The cluster certificate authority.',
    '.TP',
    bold('ca.key'),
    'The private key of the cluster certificate authority.',
    '.TP',
    line(`${bold('node.<id>.crt')}, ${bold('node.<id>.key')}`),
    `Certificate and private key of node ${italic('id')}.`,
    '.TP',
    line(`${bold('client.<name>.crt')}, ${bold('client.<name>.key')}`),
    `Certificate and private key of client ${italic('name')} (${bold('admin')} unless ` +
      `${bold('--client')} says otherwise).`,
  );

  out.push(...seeAlso(commands.map((c) => pageName(b, c.id))));
  return out;
}

// ---------------------------------------------------------------------------------------
// entry points

/** Every page, file name → content; deterministic for a given manifest and package.json. */
export function renderManPages(manifest: Manifest, pkg: PackageInfo): Map<string, string> {
  const bin = pkg.oclif?.bin ?? pkg.name;
  const ctx: Context = {
    bin,
    dirname: pkg.oclif?.dirname ?? bin,
    separator: pkg.oclif?.topicSeparator ?? ':',
    version: pkg.version,
  };
  const commands = visibleCommands(manifest);
  const topics = pkg.oclif?.topics ?? {};
  const pages = new Map<string, string>();
  const finish = (lines: string[]) => `${lines.join('\n')}\n`;
  pages.set(pageFileName(bin), finish(overviewPage(ctx, pkg, commands)));
  for (const command of commands) {
    const topic = topicOf(command, topics);
    const siblings = topic === '' ? [] : commands.filter((c) => topicOf(c, topics) === topic);
    pages.set(pageFileName(bin, command.id), finish(commandPage(ctx, command, siblings)));
  }
  return new Map([...pages.entries()].sort(([a], [b]) => compareStrings(a, b)));
}

export interface ManDirDiff {
  /** Present in both, with different content. */
  differ: string[];
  /** Generated but not in the directory. */
  missing: string[];
  /** In the directory but no longer generated. */
  extra: string[];
}

/** Existing man pages of this CLI in `dir` (other files there are none of our business). */
async function existingPages(dir: string, bin: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return names.filter((n) => n.startsWith(bin) && n.endsWith('.1')).sort(compareStrings);
}

export async function diffManDir(
  dir: string,
  pages: Map<string, string>,
  bin: string,
): Promise<ManDirDiff> {
  const existing = await existingPages(dir, bin);
  const diff: ManDirDiff = { differ: [], missing: [], extra: [] };
  for (const [file, content] of pages) {
    if (!existing.includes(file)) diff.missing.push(file);
    else if ((await readFile(join(dir, file), 'utf8')) !== content) diff.differ.push(file);
  }
  diff.extra = existing.filter((file) => !pages.has(file));
  return diff;
}

/** Writes only changed pages (keeps mtimes stable for make-like tools) and removes stale ones. */
export async function writeManDir(
  dir: string,
  pages: Map<string, string>,
  bin: string,
): Promise<ManDirDiff> {
  const diff = await diffManDir(dir, pages, bin);
  await mkdir(dir, { recursive: true });
  for (const file of [...diff.missing, ...diff.differ]) {
    await writeFile(join(dir, file), pages.get(file)!);
  }
  for (const file of diff.extra) await unlink(join(dir, file));
  return diff;
}

async function main(argv: string[]): Promise<number> {
  const root = new URL('..', import.meta.url);
  const manifest = JSON.parse(
    await readFile(new URL('oclif.manifest.json', root), 'utf8'),
  ) as Manifest;
  const pkg = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as PackageInfo;
  const pages = renderManPages(manifest, pkg);
  const bin = pkg.oclif?.bin ?? pkg.name;
  const dir = join(root.pathname, 'man');
  if (argv.includes('--check')) {
    const diff = await diffManDir(dir, pages, bin);
    const problems = [
      ...diff.differ.map((f) => `man/${f}: out of date`),
      ...diff.missing.map((f) => `man/${f}: missing`),
      ...diff.extra.map((f) => `man/${f}: no longer generated`),
    ];
    if (problems.length === 0) {
      console.log(`man: ${pages.size} pages up to date`);
      return 0;
    }
    for (const p of problems) console.error(p);
    console.error('run `npm run build` to regenerate man/');
    return 1;
  }
  await writeManDir(dir, pages, bin);
  console.log(`man: ${pages.size} pages`);
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
