import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { formatDurationMs, keyValueTable, withSpinner } from '../../cli/output.ts';
import type { RaftTimingsReply, StatusReply } from '../../core/protocol/messages.ts';

/** The node's StatusReply, with the start time as an ISO timestamp for people and jq. */
export type NodeStatusResult = Omit<StatusReply, 'startedAtMs' | 'preset' | 'raft'> & {
  startedAt: string;
  /** The node's preset (local, lan, wan); '' from a node older than presets. */
  preset: string;
  /** The Raft timings the node runs with; null from a node older than this field. */
  raft: RaftTimingsReply | null;
};

export default class NodeStatus extends RdbnetCommand<NodeStatusResult> {
  static override fanOut = true;
  static override summary = "Show a running node's own facts.";
  static override description =
    'Asks the node over the binary protocol (mutual TLS unless --insecure).';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001 --json',
  ];
  static override flags = { ...nodeFlags };

  protected override async execute(): Promise<NodeStatusResult> {
    const { flags } = await this.parse(NodeStatus);
    const reply = await withSpinner('asking the node', this.json, () =>
      withNode(flags, (node) => node.ask('statusRequest', {})),
    );
    return {
      id: reply.id,
      address: reply.address,
      version: reply.version,
      protocolVersion: reply.protocolVersion,
      uptimeMs: reply.uptimeMs,
      state: reply.state,
      clusterId: reply.clusterId,
      startedAt: new Date(reply.startedAtMs).toISOString(),
      pid: reply.pid,
      tls: reply.tls,
      connections: reply.connections,
      counters: { ...reply.counters },
      preset: reply.preset ?? '',
      raft: raftTimings(reply.raft ?? null),
    };
  }

  protected override render(result: NodeStatusResult): void {
    this.log(
      keyValueTable([
        ['id', result.id],
        ['cluster', result.clusterId],
        ['address', result.address],
        ['state', result.state],
        ['uptime', formatDurationMs(result.uptimeMs)],
        ['version', `${result.version} (protocol ${result.protocolVersion})`],
        ['tls', result.tls ? 'TLS 1.3, mutual' : 'off (--insecure)'],
        ['connections', result.connections],
        ['pid', result.pid],
        ['preset', result.preset || '-'],
        [
          'raft',
          result.raft === null
            ? '-'
            : `tick ${result.raft.tickMs} ms, election ${result.raft.electionTimeoutMs} ms, ` +
              `heartbeat ${result.raft.heartbeatIntervalMs} ms`,
        ],
      ]),
    );
  }
}

/** A plain object with every field (a decoded message keeps unset ones on its prototype). */
function raftTimings(raft: RaftTimingsReply | null): RaftTimingsReply | null {
  if (raft === null) return null;
  return {
    tickMs: raft.tickMs,
    electionTimeoutMs: raft.electionTimeoutMs,
    heartbeatIntervalMs: raft.heartbeatIntervalMs,
    preVote: raft.preVote,
    checkQuorum: raft.checkQuorum,
    proposalTimeoutMs: raft.proposalTimeoutMs,
    forwardDeadlineMs: raft.forwardDeadlineMs,
    transferTimeoutMs: raft.transferTimeoutMs,
  };
}
