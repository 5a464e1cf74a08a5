/**
 * How results reach people and scripts: one JSON document with --json, tables otherwise,
 * and spinners only when a person is watching an interactive terminal.
 */
import Table from 'cli-table3';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One compact JSON object per line, for --watch/--follow streams. */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function table(head: string[], rows: (string | number | boolean)[][]): string {
  const t = new Table({ head, style: { head: process.stdout.isTTY ? ['cyan'] : [], border: [] } });
  for (const row of rows) t.push(row.map(String));
  return t.toString();
}

/** Two-column key/value table for a single object. */
export function keyValueTable(entries: [string, string | number | boolean][]): string {
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
