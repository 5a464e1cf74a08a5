/**
 * The last lines a node logged, for `rdbnet monitor`: a ring of LOG_TAIL_RECORDS records, each
 * with a sequence number so that a poller asks for what came after the last one it saw (and
 * learns how many fell out of the ring before it asked). A monitor may also ask for a more
 * detailed level than the node logs at: that lasts LOG_LEVEL_LEASE_MS after its last request,
 * and the extra lines go to the ring only, never to the node's own stderr.
 */
import type { LogLevel } from './log.ts';

export const LOG_TAIL_RECORDS = 2000;
/** A longer line is cut to this many characters in the ring. */
export const LOG_TAIL_LINE_CHARS = 8192;
/** A monitor's level holds this long after its last poll. */
export const LOG_LEVEL_LEASE_MS = 10_000;
/** Most records one request returns. */
export const LOG_TAIL_BATCH_MAX = 500;

export const LOG_LEVEL_RANK: Readonly<Record<LogLevel, number>> = {
  debug: 10,
  info: 20,
  warn: 30,
  error: 40,
};

export interface LogRecord {
  seq: number;
  level: LogLevel;
  /** The JSON line (without its newline). */
  line: string;
}

export class LogTail {
  private readonly ring: (LogRecord | undefined)[] = new Array(LOG_TAIL_RECORDS);
  private nextSeq = 1;
  private leasedRank = Number.POSITIVE_INFINITY;
  private leaseUntilMs = 0;
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  record(level: LogLevel, line: string): void {
    const seq = this.nextSeq++;
    const text = line.length > LOG_TAIL_LINE_CHARS ? line.slice(0, LOG_TAIL_LINE_CHARS) : line;
    this.ring[seq % LOG_TAIL_RECORDS] = { seq, level, line: text };
  }

  /** The most detailed level a monitor asked for, while its lease lasts (Infinity: none). */
  leasedLevelRank(): number {
    if (this.leasedRank !== Number.POSITIVE_INFINITY && this.now() > this.leaseUntilMs) {
      this.leasedRank = Number.POSITIVE_INFINITY;
    }
    return this.leasedRank;
  }

  /**
   * Records after `afterSeq` at `minLevel` or above, oldest first, at most `max`;
   * `dropped` counts those that left the ring before they could be returned.
   */
  since(
    afterSeq: number,
    minLevel: LogLevel,
    max = LOG_TAIL_BATCH_MAX,
  ): { records: LogRecord[]; lastSeq: number; dropped: number } {
    const now = this.now();
    const rank = LOG_LEVEL_RANK[minLevel];
    // Asking keeps the level on (the lease is renewed at every poll); with several monitors
    // the most detailed level wins until its lease runs out.
    this.leasedRank = now > this.leaseUntilMs ? rank : Math.min(this.leasedRank, rank);
    this.leaseUntilMs = now + LOG_LEVEL_LEASE_MS;
    const newest = this.nextSeq - 1;
    const oldest = Math.max(1, newest - LOG_TAIL_RECORDS + 1);
    let from = Math.max(afterSeq + 1, oldest);
    const dropped = afterSeq === 0 ? 0 : Math.max(0, oldest - (afterSeq + 1));
    const limit = Math.min(Math.max(1, max), LOG_TAIL_BATCH_MAX);
    const records: LogRecord[] = [];
    let lastSeq = Math.max(afterSeq, from - 1);
    for (; from <= newest && records.length < limit; from++) {
      const record = this.ring[from % LOG_TAIL_RECORDS]!;
      lastSeq = record.seq;
      if (LOG_LEVEL_RANK[record.level] >= rank) records.push(record);
    }
    return { records, lastSeq, dropped };
  }
}
