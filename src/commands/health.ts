import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../cli/base-command.ts';
import { HealthExitCode } from '../cli/exit-codes.ts';
import { type NodeFlagValues, nodeDialInit, nodeFlags, withNode } from '../cli/node-client.ts';
import { printJsonLine, table, withSpinner } from '../cli/output.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../core/errors.ts';
import type { HealthReply, NodeHealth } from '../core/protocol/messages.ts';
import { request } from '../core/rpc/request.ts';
import { dial } from '../core/transport/dial.ts';
import { ReconnectingLink } from '../core/transport/reconnecting.ts';

/** A node's health as the CLI prints it: certDaysLeft is null for a node without TLS. */
export type HealthNode = Omit<NodeHealth, 'certDaysLeft' | 'hasCertificate'> & {
  certDaysLeft: number | null;
};

export interface HealthResult {
  status: 'healthy' | 'degraded' | 'critical';
  quorum: boolean;
  nodes: HealthNode[];
}

/** One --watch report: the result, or `unknown` with the reason the node gave no answer. */
export type HealthWatchReport =
  | (HealthResult & { at: string })
  | {
      status: 'unknown';
      quorum: false;
      nodes: HealthNode[];
      error: { code: string; message: string };
      at: string;
    };

/** --watch prints at least every this many intervals, changed or not. */
const WATCH_HEARTBEAT_INTERVALS = 10;

export default class Health extends RdbnetCommand<HealthResult> {
  static override fanOut = true;
  static override summary = 'Cluster health as seen by a node.';
  static override description =
    'One entry per gossip member the node knows (state alive, suspect, dead or left; phi, time since its last ack, score), ' +
    'plus one in state missing per Raft voter gossip does not know, or the node alone when it knows no other. ' +
    'Healthy: every member alive and every Raft voter alive in gossip; ' +
    'degraded: some member suspect or dead, some voter not alive in gossip (suspect, dead, left after a clean stop, or missing), ' +
    'or a certificate expiring soon, but the quorum held; ' +
    'critical: the voters alive in gossip are not a majority of the voters, or the node itself is not serving. ' +
    'Exit codes follow the monitoring-plugin convention, so this command can serve as a Nagios/Icinga/Sensu check: ' +
    '0 healthy, 1 degraded, 2 critical, 3 unknown (the node could not be reached or asked).';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001 --json',
  ];
  static override flags = {
    ...nodeFlags,
    watch: Flags.boolean({
      description:
        'Keep asking the node every --interval over one kept connection (redialled with backoff if it drops) ' +
        'until SIGINT (exit 0-3: that of the last report). With --json: one JSON object per line (NDJSON) ' +
        'whenever the status or a node state changed, and at least every 10 intervals; the unknown state ' +
        '(node unreachable) is printed every interval. On a terminal without --json: a table redrawn every interval.',
    }),
    interval: Flags.integer({
      description: 'Milliseconds between two reports of --watch.',
      default: 1000,
      min: 100,
      max: 60_000,
      helpValue: 'ms',
    }),
    count: Flags.integer({
      description: 'Stop --watch after this many reports (asks of the node, printed or not).',
      min: 1,
      helpValue: 'n',
    }),
  };

  protected override async execute(): Promise<HealthResult> {
    const { flags } = await this.parse(Health);
    const watchOnly = this.argv.find((arg) => /^--(interval|count)(=|$)/.test(arg));
    if (watchOnly !== undefined) {
      throw new RdbnetError(ErrorCode.Usage, `${watchOnly.split('=')[0]} needs --watch`, {
        hint: 'rdbnet health --watch --interval 1000',
      });
    }
    const reply = await withSpinner('asking the node', this.json, () =>
      withNode(flags, (node) => node.ask('healthRequest', {})),
    );
    return toResult(reply);
  }

  /** --watch prints as it goes; the exit code is that of the last report. */
  override async run(): Promise<HealthResult> {
    if (!this.argv.includes('--watch')) return super.run();
    const { flags } = await this.parse(Health);
    const last = await this.watch(flags, flags.interval, flags.count);
    process.exitCode = last === null ? HealthExitCode.unknown : HealthExitCode[last.status];
    return last !== null && last.status !== 'unknown'
      ? { status: last.status, quorum: last.quorum, nodes: last.nodes }
      : { status: 'critical', quorum: false, nodes: [] };
  }

  private async watch(
    flags: NodeFlagValues,
    intervalMs: number,
    count: number | undefined,
  ): Promise<HealthWatchReport | null> {
    let stop: () => void = () => {};
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    let interrupted = false;
    const onSignal = () => {
      interrupted = true;
      stop();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // A failed dial ends the ask it serves at once (unknown), instead of at its timeout.
    let onDialFailed: ((error: unknown) => void) | null = null;
    const link = new ReconnectingLink(
      await nodeDialInit(flags),
      { capDelayMs: Math.min(10_000, Math.max(1000, intervalMs)) },
      undefined,
      (init) =>
        dial(init).catch((error: unknown) => {
          onDialFailed?.(error);
          throw error;
        }),
    );
    const dialFailed = () =>
      new Promise<never>((_resolve, reject) => {
        onDialFailed = reject;
      });
    const redraw = !this.json && Boolean(process.stdout.isTTY);
    let last: HealthWatchReport | null = null;
    let lastPrintedKey = '';
    let sincePrinted = 0;
    try {
      for (let asked = 0; !interrupted && (count === undefined || asked < count); asked++) {
        const startedAt = performance.now();
        // The first ask may need the whole dial and handshake; later ones fit in an interval,
        // so an unreachable node gives one unknown report per interval.
        const timeoutMs = asked === 0 ? flags.timeout : Math.min(flags.timeout, intervalMs);
        const report = await Promise.race([
          ask(link, timeoutMs, dialFailed()),
          stopped.then(() => null),
        ]);
        onDialFailed = null;
        if (report === null) break;
        last = report;
        const key = changeKey(report);
        sincePrinted++;
        if (
          redraw ||
          report.status === 'unknown' ||
          key !== lastPrintedKey ||
          sincePrinted >= WATCH_HEARTBEAT_INTERVALS
        ) {
          this.printReport(report, redraw);
          lastPrintedKey = key;
          sincePrinted = 0;
        }
        if (count !== undefined && asked + 1 >= count) break;
        const waitMs = Math.max(0, intervalMs - (performance.now() - startedAt));
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          stopped,
          new Promise((resolve) => {
            timer = setTimeout(resolve, waitMs);
          }),
        ]);
        clearTimeout(timer);
      }
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      link.close();
    }
    return last;
  }

  private printReport(report: HealthWatchReport, redraw: boolean): void {
    if (this.json) {
      printJsonLine(report);
      return;
    }
    if (redraw) process.stdout.write('\x1b[H\x1b[2J');
    else this.log(`--- ${report.at}`);
    if (report.status === 'unknown') {
      this.log(`status: unknown (${report.error.message})`);
      return;
    }
    this.render(report);
  }

  protected override render(result: HealthResult): void {
    this.log(`status: ${result.status}${result.quorum ? '' : ' (no quorum)'}`);
    this.log(renderTable(result));
  }

  protected override exitCodeFor(result: HealthResult): number {
    return HealthExitCode[result.status];
  }

  /** Usage errors stay 64; anything that kept us from an answer is "unknown". */
  protected override exitCodeForFailure(_error: RdbnetError): number {
    return HealthExitCode.unknown;
  }
}

async function ask(
  link: ReconnectingLink,
  timeoutMs: number,
  dialFailed: Promise<never>,
): Promise<HealthWatchReport> {
  const at = new Date().toISOString();
  try {
    const reply = await Promise.race([request(link, 'healthRequest', {}, timeoutMs), dialFailed]);
    return { ...toResult(reply), at };
  } catch (error) {
    const typed = isRdbnetError(error)
      ? error
      : new RdbnetError(ErrorCode.NodeUnreachable, String(error));
    return {
      status: 'unknown',
      quorum: false,
      nodes: [],
      error: { code: typed.code, message: typed.message },
      at,
    };
  }
}

/** What counts as a change for --watch: the status and every node's state. */
function changeKey(report: HealthWatchReport): string {
  const states = report.nodes.map((n) => `${n.id}=${n.state}`).sort();
  return `${report.status}|${states.join(',')}`;
}

function toResult(reply: HealthReply): HealthResult {
  const status =
    reply.status === 'healthy' || reply.status === 'degraded' ? reply.status : 'critical';
  return {
    status,
    quorum: reply.quorum,
    nodes: reply.nodes.map((node) => ({
      id: node.id,
      address: node.address,
      state: node.state,
      phi: node.phi,
      lastHeartbeatMs: node.lastHeartbeatMs,
      score: node.score,
      live: node.live,
      ready: node.ready,
      problems: [...node.problems],
      certDaysLeft: node.hasCertificate ? node.certDaysLeft : null,
    })),
  };
}

function renderTable(result: HealthResult): string {
  return table(
    [
      'id',
      'address',
      'state',
      'phi',
      'last heartbeat',
      'score',
      'live',
      'ready',
      'cert days',
      'problems',
    ],
    result.nodes.map((n) => [
      n.id,
      n.address,
      n.state,
      n.phi.toFixed(2),
      `${n.lastHeartbeatMs} ms`,
      n.score.toFixed(2),
      n.live,
      n.ready,
      n.certDaysLeft === null ? '-' : n.certDaysLeft.toFixed(0),
      n.problems.join('; '),
    ]),
  );
}
