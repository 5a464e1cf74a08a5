/**
 * The node's audit log: every refusal (by the ACL at accept, handshake or per message, by the
 * role table, on gossip's UDP) and every admin change, as one structured record — who, what,
 * from where, the decision and the deciding rule. Records go to a ring in memory (what
 * `rdbnet audit tail` reads over the protocol, `--follow` included: the event stream) and,
 * as NDJSON lines, to `<dataDir>/audit.log`, rotated by size.
 *
 * Bounds: the ring keeps AUDIT_RING_MAX records (the oldest drop out; a reader that fell behind
 * is told how many it missed). Lines wait for the file in a queue of AUDIT_PENDING_LINES_MAX;
 * past it, lines are dropped and counted (`audit.dropped`) — a flood of refusals costs the
 * disk at most one batch per flush and never grows memory. The file is rotated past
 * AUDIT_FILE_BYTES_MAX into audit.log.1 … audit.log.<AUDIT_FILES_KEPT - 1>, the oldest deleted.
 */
import { appendFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuditRecord, AuditReply } from '../protocol/messages.ts';
import type { Clock, Counters } from '../runtime/index.ts';

/** The audit file in the data dir. */
export const AUDIT_FILE_NAME = 'audit.log';
/** Records kept in memory for `audit tail`. */
export const AUDIT_RING_MAX = 1024;
/** Lines waiting to be written; more are dropped and counted. */
export const AUDIT_PENDING_LINES_MAX = 4096;
/** The audit file is rotated once it would pass this size. */
export const AUDIT_FILE_BYTES_MAX = 1024 * 1024;
/** Files kept: audit.log and audit.log.1 … audit.log.<AUDIT_FILES_KEPT - 1>. */
export const AUDIT_FILES_KEPT = 4;

export type AuditDecision = 'deny' | 'allow' | 'fail';
export type AuditStage = 'accept' | 'handshake' | 'message' | 'gossip' | 'admin';

/** A record before it is numbered and stamped. */
export type AuditEntry = Omit<AuditRecord, 'seq' | 'atMs'>;

/** Where lines go: the file in production, nowhere in the simulator. */
export interface AuditSink {
  write(lines: string): Promise<void>;
}

export class AuditLog {
  private readonly ring: AuditRecord[] = [];
  private seq = 0;
  private pending: string[] = [];
  private flushing: Promise<void> | null = null;
  private readonly clock: Clock;
  private readonly counters: Counters;
  private readonly sink: AuditSink | null;

  constructor(init: { clock: Clock; counters: Counters; sink: AuditSink | null }) {
    this.clock = init.clock;
    this.counters = init.counters;
    this.sink = init.sink;
  }

  record(entry: AuditEntry): void {
    const record: AuditRecord = { seq: ++this.seq, atMs: this.clock.wallMs(), ...entry };
    this.ring.push(record);
    if (this.ring.length > AUDIT_RING_MAX) this.ring.shift();
    this.counters.increment(`audit.${entry.decision}`);
    if (this.sink === null) return;
    if (this.pending.length >= AUDIT_PENDING_LINES_MAX) {
      this.counters.increment('audit.dropped');
      return;
    }
    this.pending.push(`${JSON.stringify(toLine(record))}\n`);
    if (this.flushing === null) this.flushing = this.flush();
  }

  /** Records after `afterSeq` still in memory; `missed` counts those that dropped out. */
  after(afterSeq: number, id: string): AuditReply {
    const first = this.ring[0]?.seq ?? this.seq + 1;
    const records = this.ring.filter((record) => record.seq > afterSeq);
    const missed = afterSeq + 1 < first ? first - afterSeq - 1 : 0;
    return { id, records, lastSeq: this.seq, missed };
  }

  /** Resolves once every line recorded so far is written (or failed). */
  async drain(): Promise<void> {
    while (this.flushing !== null) await this.flushing;
  }

  private async flush(): Promise<void> {
    // One write per turn of the loop at most: lines recorded meanwhile go in the next batch.
    await Promise.resolve();
    while (this.pending.length > 0) {
      const batch = this.pending.join('');
      this.pending = [];
      try {
        await this.sink!.write(batch);
      } catch {
        this.counters.increment('audit.writeFailed');
      }
    }
    this.flushing = null;
  }
}

/** The file line: the NDJSON shape of `audit tail --json` (docs/CLI.md). */
export function toLine(record: AuditRecord): Record<string, unknown> {
  return {
    seq: record.seq,
    at: new Date(record.atMs).toISOString(),
    decision: record.decision,
    source: record.source,
    who: record.who,
    what: record.what,
    rule: record.rule,
    stage: record.stage,
    reason: record.reason,
  };
}

/** Appends to `path`, rotating it past AUDIT_FILE_BYTES_MAX (mode 0600: it names peers). */
export function auditFileSink(path: string): AuditSink {
  let size: number | undefined;
  return {
    async write(lines: string): Promise<void> {
      if (size === undefined) {
        await mkdir(dirname(path), { recursive: true });
        size = await stat(path).then(
          (info) => info.size,
          () => 0,
        );
      }
      const bytes = Buffer.byteLength(lines);
      if (size > 0 && size + bytes > AUDIT_FILE_BYTES_MAX) {
        await rm(`${path}.${AUDIT_FILES_KEPT - 1}`, { force: true });
        for (let n = AUDIT_FILES_KEPT - 2; n >= 1; n--) {
          await rename(`${path}.${n}`, `${path}.${n + 1}`).catch(() => {});
        }
        await rename(path, `${path}.1`);
        size = 0;
      }
      await appendFile(path, lines, { mode: 0o600 });
      size += bytes;
    },
  };
}
