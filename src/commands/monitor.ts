import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../cli/base-command.ts';
import { nodeFlags, withNode } from '../cli/node-client.ts';
import type { NodeClient } from '../core/client/node-client.ts';
import type { LogTailReply } from '../core/protocol/messages.ts';

export interface MonitorResult {
  /** Lines printed before the stop. */
  lines: number;
}

/** How often the node is asked for new lines. */
const POLL_MS = 200;
/** At most this many requests to catch up with the node's ring at start (it holds 2,000). */
const CATCH_UP_REQUESTS_MAX = 8;

export default class Monitor extends RdbnetCommand<MonitorResult> {
  static override summary = "Stream a node's log lines until Ctrl-C.";
  static override description =
    "Prints the node's last --lines lines, then every new one as it is logged, until SIGINT or " +
    "SIGTERM (exit 0). --log-level below the node's own (debug on a node at info) makes the node " +
    'record those lines too while monitors ask — they go to the monitor only, not to its stderr. ' +
    'With --json each line is the JSON object the node logged (NDJSON). Lines that left the ' +
    "node's ring (2,000 lines) before they could be sent are counted on stderr.";
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001 --log-level debug --json | jq -r .msg',
  ];
  static override flags = {
    ...nodeFlags,
    'log-level': Flags.string({
      description: 'Least severe level to show.',
      options: ['debug', 'info', 'warn', 'error'],
      default: 'info',
    }),
    lines: Flags.integer({
      description: 'How many of the recent lines to print first.',
      default: 10,
      min: 0,
      max: 2000,
    }),
  };

  protected override async execute(): Promise<MonitorResult> {
    const { flags } = await this.parse(Monitor);
    const minLevel = flags['log-level'];
    let stop: () => void = () => {};
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    process.once('SIGINT', () => stop());
    process.once('SIGTERM', () => stop());
    let interrupted = false;
    void stopped.then(() => {
      interrupted = true;
    });
    return withNode(flags, async (client: NodeClient) => {
      let lines = 0;
      const ask = (afterSeq: number): Promise<LogTailReply> =>
        client.ask('logTailRequest', { afterSeq, minLevel });
      // Catch up with what the node holds, keeping the last --lines of it.
      let recent: LogTailReply['records'] = [];
      let afterSeq = 0;
      for (let i = 0; i < CATCH_UP_REQUESTS_MAX; i++) {
        const reply = await ask(afterSeq);
        recent = flags.lines > 0 ? [...recent, ...reply.records].slice(-flags.lines) : [];
        const caughtUp = reply.lastSeq === afterSeq;
        afterSeq = reply.lastSeq;
        if (caughtUp) break;
      }
      for (const record of recent) lines += this.print(record.line);
      while (!interrupted) {
        const reply = await ask(afterSeq);
        if (reply.dropped > 0) {
          process.stderr.write(`${reply.dropped} line(s) left the node's ring unseen\n`);
        }
        for (const record of reply.records) lines += this.print(record.line);
        const more = reply.lastSeq > afterSeq && reply.records.length > 0;
        afterSeq = Math.max(afterSeq, reply.lastSeq);
        if (more) continue;
        await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, POLL_MS))]);
      }
      return { lines };
    });
  }

  /** One line as the node logged it (--json), or as a person reads it. */
  private print(line: string): number {
    if (this.json) {
      process.stdout.write(`${line}\n`);
      return 1;
    }
    try {
      const { ts, level, msg, ...fields } = JSON.parse(line) as Record<string, unknown>;
      const extra = Object.entries(fields)
        .map(
          ([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`,
        )
        .join(' ');
      this.log(`${ts} ${String(level).toUpperCase().padEnd(5)} ${msg}${extra ? ` ${extra}` : ''}`);
    } catch {
      this.log(line);
    }
    return 1;
  }

  protected override render(): void {}

  /** Printed as it went; a stop asked for is a success. */
  override async run(): Promise<MonitorResult> {
    const result = await this.execute();
    process.exitCode = 0;
    return result;
  }
}
