/**
 * List flags (`--join`, `--seeds`, `--nodes`): comma- or newline-separated values, or `-` to
 * read them from stdin (docs/CLI.md), so a pipeline can feed them.
 */
import { ErrorCode, RdbnetError } from '../core/errors.ts';

/** Most bytes read from stdin for one list flag. */
const STDIN_LIST_BYTES_MAX = 1024 * 1024;

/** The flag's value, or stdin's content when the value is `-`, as one comma-separated string. */
export async function readListFlag(value: string, flag: string): Promise<string> {
  if (value !== '-') return value;
  if (process.stdin.isTTY) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `${flag} - reads the list from stdin, which is a terminal`,
      {
        hint: `pipe the list in, e.g. echo 127.0.0.1:7002 | rdbnet … ${flag} -`,
      },
    );
  }
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of process.stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    bytes += buffer.length;
    if (bytes > STDIN_LIST_BYTES_MAX) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `${flag} -: more than ${STDIN_LIST_BYTES_MAX} bytes on stdin`,
      );
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .split(/[\s,]+/)
    .filter((item) => item !== '')
    .join(',');
}

/** The list as values: de-duplicated, in order; an empty list is a usage error. */
export async function readList(value: string, flag: string): Promise<string[]> {
  const items = [...new Set((await readListFlag(value, flag)).split(/[\s,]+/).filter(Boolean))];
  if (items.length === 0) {
    throw new RdbnetError(ErrorCode.Usage, `${flag} is empty`, {
      ...(value.trim() === '-' ? { hint: 'stdin held no values' } : {}),
    });
  }
  return items;
}
