/**
 * Structured logs on stderr: one JSON object per line when stderr is not a terminal (for
 * journald, jq, log shippers), an aligned human line when it is.
 */
import { LOG_LEVEL_RANK as LEVEL_RANK, type LogTail } from './log-tail.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'json' | 'text';
  write?: (line: string) => void;
  now?: () => number;
  /** Also keep the lines (as JSON) for `rdbnet monitor`, which may ask for a lower level. */
  tail?: LogTail;
}

export function parseLogLevel(text: string | undefined): LogLevel | undefined {
  return text === 'debug' || text === 'info' || text === 'warn' || text === 'error'
    ? text
    : undefined;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = LEVEL_RANK[options.level ?? 'info'];
  const format = options.format ?? (process.stderr.isTTY ? 'text' : 'json');
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const now = options.now ?? Date.now;
  const tail = options.tail;
  const emit = (level: LogLevel, msg: string, fields: LogFields = {}): void => {
    const rank = LEVEL_RANK[level];
    const toStderr = rank >= threshold;
    if (!toStderr && (tail === undefined || rank < tail.leasedLevelRank())) return;
    const ts = new Date(now()).toISOString();
    const json = format === 'json' || tail !== undefined;
    const line = json ? JSON.stringify({ ts, level, msg, ...fields }, jsonSafe) : '';
    tail?.record(level, line);
    if (!toStderr) return;
    if (format === 'json') {
      write(`${line}\n`);
      return;
    }
    const extra = Object.entries(fields)
      .map(
        ([key, value]) =>
          `${key}=${typeof value === 'string' ? value : JSON.stringify(value, jsonSafe)}`,
      )
      .join(' ');
    write(`${ts} ${level.toUpperCase().padEnd(5)} ${msg}${extra ? ` ${extra}` : ''}\n`);
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  };
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return value.message;
  return value;
}
