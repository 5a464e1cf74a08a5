import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { printJsonLine, table } from '../../cli/output.ts';
import type { GossipMember } from '../../core/protocol/messages.ts';

export interface NetTopPeer {
  id: string;
  address: string;
  state: string;
  /** Median and p99 of the node's last 64 probe round trips; null before the first. */
  rttP50Ms: number | null;
  rttP99Ms: number | null;
  /** Recent share of probes that missed the direct ack, 0..1. */
  loss: number;
  /** 0..1 from phi, RTT and loss. */
  score: number;
  phi: number;
}

export interface NetTopSnapshot {
  node: string;
  at: string;
  peers: NetTopPeer[];
}

export interface NetTopResult {
  snapshots: number;
}

export default class NetTop extends RdbnetCommand<NetTopResult> {
  static override summary = "Live view of a node's network quality to each peer.";
  static override description =
    'Every --interval: each peer the node probes, with the median and 99th percentile of its ' +
    'last 64 probe round trips, the share of probes that missed their direct ack, phi and the ' +
    '0..1 quality score; worst score first. Redrawn in place on a terminal; in a pipe one table ' +
    '(or, with --json, one JSON object per line) per interval. Until Ctrl-C, or --count snapshots.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001 --json --count 5 | jq .peers[0]',
  ];
  static override flags = {
    ...nodeFlags,
    interval: Flags.integer({
      description: 'Seconds between snapshots.',
      default: 1,
      min: 1,
      max: 3600,
    }),
    count: Flags.integer({ description: 'Stop after this many snapshots.', min: 1 }),
  };

  protected override async execute(): Promise<NetTopResult> {
    const { flags } = await this.parse(NetTop);
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
    const redraw = !this.json && Boolean(process.stdout.isTTY);
    return withNode(flags, async (client) => {
      let snapshots = 0;
      while (!interrupted && (flags.count === undefined || snapshots < flags.count)) {
        const reply = await client.ask('membersRequest', {});
        const snapshot: NetTopSnapshot = {
          node: reply.id,
          at: new Date().toISOString(),
          peers: reply.members
            .filter((member) => !member.isSelf)
            .map(peerOf)
            .sort((a, b) => a.score - b.score || a.id.localeCompare(b.id)),
        };
        snapshots++;
        if (this.json) printJsonLine(snapshot);
        else {
          if (redraw) process.stdout.write('\x1b[H\x1b[2J');
          this.log(`${snapshot.node} at ${snapshot.at}`);
          this.log(
            table(
              ['peer', 'address', 'state', 'rtt p50 ms', 'rtt p99 ms', 'loss', 'phi', 'score'],
              snapshot.peers.map((p) => [
                p.id,
                p.address,
                p.state,
                p.rttP50Ms ?? '-',
                p.rttP99Ms ?? '-',
                `${(p.loss * 100).toFixed(1)}%`,
                p.phi,
                p.score,
              ]),
            ),
          );
        }
        if (flags.count !== undefined && snapshots >= flags.count) break;
        await Promise.race([
          stopped,
          new Promise((resolve) => setTimeout(resolve, flags.interval * 1000)),
        ]);
      }
      return { snapshots };
    });
  }

  protected override render(): void {}

  /** Printed as it went. */
  override async run(): Promise<NetTopResult> {
    const result = await this.execute();
    process.exitCode = 0;
    return result;
  }
}

function peerOf(member: GossipMember): NetTopPeer {
  const ms = (value: number | undefined) => (value === undefined || value < 0 ? null : value);
  return {
    id: member.id,
    address: member.address,
    state: member.state,
    rttP50Ms: ms(member.rttP50Ms),
    rttP99Ms: ms(member.rttP99Ms),
    loss: member.lossRatio ?? 0,
    score: member.score,
    phi: member.phi,
  };
}
