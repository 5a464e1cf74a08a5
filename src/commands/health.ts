import { RdbnetCommand } from '../cli/base-command.ts';
import { HealthExitCode } from '../cli/exit-codes.ts';
import { nodeFlags, withNode } from '../cli/node-client.ts';
import { table, withSpinner } from '../cli/output.ts';
import type { RdbnetError } from '../core/errors.ts';
import type { NodeHealth } from '../core/protocol/messages.ts';
import { call } from '../core/rpc/call.ts';

/** A node's health as the CLI prints it: certDaysLeft is null for a node without TLS. */
export type HealthNode = Omit<NodeHealth, 'certDaysLeft' | 'hasCertificate'> & {
  certDaysLeft: number | null;
};

export interface HealthResult {
  status: 'healthy' | 'degraded' | 'critical';
  quorum: boolean;
  nodes: HealthNode[];
}

export default class Health extends RdbnetCommand<HealthResult> {
  static override summary = 'Cluster health as seen by a node.';
  static override description =
    'One entry per gossip member the node knows (state alive, suspect, dead or left; phi, time since its last ack, score), ' +
    'or the node alone when it knows no other. Healthy: every member alive and a quorum of the Raft voters alive; ' +
    'degraded: some member suspect or dead (or a certificate expiring soon) but the quorum held; critical: no quorum, or the node itself is not serving. ' +
    'Exit codes follow the monitoring-plugin convention, so this command can serve as a Nagios/Icinga/Sensu check: ' +
    '0 healthy, 1 degraded, 2 critical, 3 unknown (the node could not be reached or asked).';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001 --json',
  ];
  static override flags = { ...nodeFlags };

  protected override async execute(): Promise<HealthResult> {
    const { flags } = await this.parse(Health);
    const reply = await withSpinner('asking the node', this.json, () =>
      withNode(flags, (connection) => call(connection, { healthRequest: {} }, 'healthReply')),
    );
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

  protected override render(result: HealthResult): void {
    this.log(`status: ${result.status}${result.quorum ? '' : ' (no quorum)'}`);
    this.log(
      table(
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
      ),
    );
  }

  protected override exitCodeFor(result: HealthResult): number {
    return HealthExitCode[result.status];
  }

  /** Usage errors stay 64; anything that kept us from an answer is "unknown". */
  protected override exitCodeForFailure(_error: RdbnetError): number {
    return HealthExitCode.unknown;
  }
}
