import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { type NodeFlagValues, nodeFlags, withNode } from '../../cli/node-client.ts';
import { printJsonLine } from '../../cli/output.ts';
import type { NodeClient } from '../../core/client/node-client.ts';
import type { AuditRecord } from '../../core/protocol/messages.ts';

/** One audit record as printed (an NDJSON line with --json; the same shape as audit.log). */
export interface AuditLine {
  seq: number;
  /** When the node recorded it, ISO 8601. */
  at: string;
  /** deny (a refusal), allow (an admin change applied) or fail (an admin change that failed). */
  decision: string;
  /** The peer's address: ip:port, or the IP alone for a refusal at accept. */
  source: string;
  /** client/NAME or node/ID; '' when not known yet (at accept). */
  who: string;
  /** The operation (acl.add, keys.install, certs.revoke, …), connect, hello or gossip.datagram. */
  what: string;
  /** The deciding ACL rule, 'default' for the default policy, '' when no ACL decided. */
  rule: string;
  /** accept, handshake, message, gossip or admin. */
  stage: string;
  reason: string;
}

export interface AuditTailResult {
  node: string;
  records: AuditLine[];
}

/** How often --follow asks the node for new records. */
const FOLLOW_POLL_MS = 100;

export default class AuditTail extends RdbnetCommand<AuditTailResult> {
  static override summary = "A node's audit log: every refusal and every admin change.";
  static override description =
    'Each record says who (certificate name), what (the operation), from where (source address), the decision and ' +
    'the deciding ACL rule. The node keeps the last 1024 in memory (this command reads them) and writes every one to ' +
    '<dataDir>/audit.log as NDJSON, rotated at 1 MiB (4 files kept). With --json: one JSON object per record and ' +
    'line (NDJSON), also without --follow. With --follow: then every new record until SIGINT (exit 0).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --json',
    '<%= config.bin %> <%= command.id %> --follow --json | jq -c \'select(.decision == "deny")\'',
  ];
  static override flags = {
    ...nodeFlags,
    follow: Flags.boolean({ description: 'Keep printing new records until interrupted (SIGINT).' }),
    lines: Flags.integer({
      char: 'n',
      description: 'Print at most the last N records kept (before following).',
      default: 100,
      min: 1,
      max: 1024,
      helpValue: 'n',
    }),
  };

  protected override async execute(): Promise<AuditTailResult> {
    const { flags } = await this.parse(AuditTail);
    return withNode(flags, async (client) => {
      const reply = await client.ask('auditRequest', { afterSeq: 0 });
      const records = reply.records.slice(-flags.lines).map(toLine);
      if (!flags.follow) return { node: reply.id, records };
      for (const record of records) this.print(record);
      return this.follow(flags, client, reply.lastSeq, reply.id);
    });
  }

  private async follow(
    _flags: NodeFlagValues,
    client: NodeClient,
    fromSeq: number,
    node: string,
  ): Promise<AuditTailResult> {
    let interrupted = false;
    const stopped = new Promise<void>((resolve) => {
      const stop = () => {
        interrupted = true;
        resolve();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    let afterSeq = fromSeq;
    while (!interrupted) {
      const reply = await client.ask('auditRequest', { afterSeq });
      if (reply.missed > 0) {
        process.stderr.write(`${reply.missed} record(s) fell out of the node's buffer unseen\n`);
      }
      for (const record of reply.records) this.print(toLine(record));
      afterSeq = Math.max(afterSeq, reply.lastSeq);
      await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS))]);
    }
    return { node, records: [] };
  }

  private print(line: AuditLine): void {
    if (this.json) printJsonLine(line);
    else
      this.log(
        `${line.at}  ${line.decision.padEnd(5)} ${line.stage.padEnd(9)} ${line.source} ${line.who || '-'} ${line.what} ` +
          `rule=${line.rule || '-'} ${line.reason}`,
      );
  }

  protected override render(result: AuditTailResult): void {
    for (const line of result.records) this.print(line);
  }

  /** NDJSON with --json, with or without --follow (printed as it goes when following). */
  override async run(): Promise<AuditTailResult> {
    const result = await this.execute();
    if (!this.argv.includes('--follow')) this.render(result);
    process.exitCode = 0;
    return result;
  }
}

function toLine(record: AuditRecord): AuditLine {
  return {
    seq: Number(record.seq),
    at: new Date(Number(record.atMs)).toISOString(),
    decision: record.decision,
    source: record.source,
    who: record.who,
    what: record.what,
    rule: record.rule,
    stage: record.stage,
    reason: record.reason,
  };
}
