/**
 * How results reach people and scripts: one JSON document with --json (or -o json|ndjson|yaml),
 * boxed tables on a terminal (-o table), tab-separated lines in a pipe (-o plain), and spinners
 * only when a person is watching an interactive terminal.
 */
import Table from 'cli-table3';
import type { OutputMode } from './output-mode.ts';

/** The human mode the running command renders in; set once by RdbnetCommand before render. */
let humanMode: 'table' | 'plain' = process.stdout.isTTY ? 'table' : 'plain';

export function setHumanMode(mode: OutputMode): void {
  if (mode === 'table' || mode === 'plain') humanMode = mode;
}

/** True when rendering tab-separated lines: cells then carry bare values (no "(this node)"). */
export function plainOutput(): boolean {
  return humanMode === 'plain';
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One compact JSON object per line, for --watch/--follow streams and -o ndjson. */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export async function printYaml(value: unknown): Promise<void> {
  const { stringify } = await import('yaml');
  process.stdout.write(stringify(value));
}

/** NO_COLOR (https://no-color.org) set to anything non-empty turns colour off. */
export function colourAllowed(): boolean {
  return Boolean(process.stdout.isTTY) && !process.env['NO_COLOR'];
}

/** Narrowest a column is squeezed to when the terminal is too narrow for the table. */
const COLUMN_WIDTH_MIN = 6;
/** cli-table3 adds a border and one space of padding each side to every column. */
const COLUMN_CHROME = 3;

/** A cell of a plain line: no tab or newline inside it, so `cut -f` and awk see one field. */
function plainCell(value: string | number | boolean): string {
  return String(value).replace(/\r?\n/g, ',').replace(/\t/g, ' ');
}

/** Column widths for a table that fits `columns` characters, or null when it fits as is. */
export function fittedWidths(
  head: string[],
  rows: string[][],
  columns: number | undefined,
): number[] | null {
  if (columns === undefined || columns <= 0) return null;
  const natural = head.map((title, index) =>
    Math.max(
      title.length,
      ...rows.map((row) => Math.max(...(row[index] ?? '').split('\n').map((line) => line.length))),
    ),
  );
  const total = () => natural.reduce((sum, width) => sum + width + COLUMN_CHROME, 1);
  if (total() <= columns) return null;
  // Take one character at a time from the widest column until the table fits.
  while (total() > columns) {
    let widest = 0;
    for (let index = 1; index < natural.length; index++) {
      if (natural[index]! > natural[widest]!) widest = index;
    }
    if (natural[widest]! <= COLUMN_WIDTH_MIN) break;
    natural[widest]!--;
  }
  return natural.map((width) => width + COLUMN_CHROME - 1);
}

export function table(head: string[], rows: (string | number | boolean)[][]): string {
  if (humanMode === 'plain') {
    return [head, ...rows].map((row) => row.map(plainCell).join('\t')).join('\n');
  }
  const cells = rows.map((row) => row.map(String));
  const widths = fittedWidths(
    head,
    cells,
    process.stdout.isTTY ? process.stdout.columns : undefined,
  );
  const t = new Table({
    head,
    style: { head: colourAllowed() ? ['cyan'] : [], border: [] },
    ...(widths === null ? {} : { colWidths: widths, wordWrap: true, wrapOnWordBoundary: false }),
  });
  for (const row of cells) t.push(row);
  return t.toString();
}

/** Two-column key/value table for a single object; `key<TAB>value` lines when plain. */
export function keyValueTable(entries: [string, string | number | boolean][]): string {
  if (humanMode === 'plain') {
    return entries.map(([key, value]) => `${plainCell(key)}\t${plainCell(value)}`).join('\n');
  }
  const t = new Table({ style: { head: [], border: [] } });
  for (const [key, value] of entries) t.push({ [key]: String(value) });
  return t.toString();
}

export function interactive(): boolean {
  return Boolean(process.stderr.isTTY && process.stdin.isTTY && !process.env['CI']);
}

/** Runs `work` under an ora spinner on an interactive terminal, silently otherwise. */
export async function withSpinner<T>(
  text: string,
  json: boolean,
  work: () => Promise<T>,
): Promise<T> {
  if (json || !interactive()) return work();
  const { default: ora } = await import('ora');
  const spinner = ora({ text, stream: process.stderr }).start();
  try {
    return await work();
  } finally {
    spinner.stop();
  }
}

export function formatDurationMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const seconds = Math.floor(ms / 1000);
  const parts: string[] = [];
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (days) parts.push(`${days}d`);
  if (hours) parts.push(`${hours}h`);
  if (minutes) parts.push(`${minutes}m`);
  parts.push(`${seconds % 60}s`);
  return parts.join(' ');
}
