import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { type NodeFlagValues, nodeFlags, withNode } from '../../cli/node-client.ts';
import { printJsonLine, table } from '../../cli/output.ts';
import type { NodeClient } from '../../core/client/node-client.ts';
import type { MemberEventRecord } from '../../core/protocol/messages.ts';

export interface ClusterEvent {
  seq: number;
  /** join, suspect, alive, dead, left or update. */
  type: string;
  id: string;
  address: string;
  incarnation: number;
  /** When the node saw it, ISO 8601. */
  at: string;
}

export interface ClusterEventsResult {
  /** The node that answered. */
  node: string;
  events: ClusterEvent[];
}

/** How often --follow asks the node for new events. */
const FOLLOW_POLL_MS = 100;

export default class ClusterEvents extends RdbnetCommand<ClusterEventsResult> {
  static override summary =
    'Gossip membership events seen by a node (join, suspect, alive, dead, left).';
  static override description =
    'Without --follow: the recent events the node keeps (the last 1024), oldest first. With --follow: those, then ' +
    'every new one as it happens until SIGINT (exit 0); with --json one JSON object per line (NDJSON). ' +
    "Events that fell out of the node's buffer before they could be printed are reported on stderr.";
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --follow --json | jq -c \'select(.type == "dead")\'',
  ];
  static override flags = {
    ...nodeFlags,
    follow: Flags.boolean({
      description: 'Keep printing new events until interrupted (SIGINT).',
    }),
  };

  protected override async execute(): Promise<ClusterEventsResult> {
    const { flags } = await this.parse(ClusterEvents);
    if (flags.follow) return this.follow(flags);
    return withNode(flags, async (node) => {
      const reply = await node.ask('memberEventsRequest', { afterSeq: 0 });
      return { node: reply.id, events: reply.events.map(toEvent) };
    });
  }

  private follow(flags: NodeFlagValues): Promise<ClusterEventsResult> {
    let stop: () => void = () => {};
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    process.once('SIGINT', () => stop());
    process.once('SIGTERM', () => stop());
    return withNode(flags, async (client: NodeClient) => {
      let afterSeq = 0;
      let node = '';
      let interrupted = false;
      void stopped.then(() => {
        interrupted = true;
      });
      while (!interrupted) {
        const reply = await client.ask('memberEventsRequest', { afterSeq });
        node = reply.id;
        if (reply.missed > 0) {
          process.stderr.write(`${reply.missed} event(s) fell out of the node's buffer unseen\n`);
        }
        for (const record of reply.events) this.print(toEvent(record));
        afterSeq = reply.events.at(-1)?.seq ?? Math.max(afterSeq, reply.lastSeq);
        if (reply.events.length > 0 && afterSeq < reply.lastSeq) continue;
        await Promise.race([
          stopped,
          new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS)),
        ]);
      }
      return { node, events: [] };
    });
  }

  private print(event: ClusterEvent): void {
    if (this.json) printJsonLine(event);
    else
      this.log(
        `${event.at}  ${event.type.padEnd(7)} ${event.id} ${event.address} (incarnation ${event.incarnation})`,
      );
  }

  protected override render(result: ClusterEventsResult): void {
    this.log(
      table(
        ['seq', 'at', 'event', 'id', 'address', 'incarnation'],
        result.events.map((e) => [e.seq, e.at, e.type, e.id, e.address, e.incarnation]),
      ),
    );
  }

  /** --follow printed as it went (NDJSON with --json); otherwise one document or a table. */
  override async run(): Promise<ClusterEventsResult> {
    if (!this.argv.includes('--follow')) return super.run();
    const result = await this.execute();
    process.exitCode = 0;
    return result;
  }
}

function toEvent(record: MemberEventRecord): ClusterEvent {
  return {
    seq: record.seq,
    type: record.type,
    id: record.id,
    address: record.address,
    incarnation: record.incarnation,
    at: new Date(record.atMs).toISOString(),
  };
}
