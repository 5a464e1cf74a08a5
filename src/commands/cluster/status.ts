import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { keyValueTable, table, withSpinner } from '../../cli/output.ts';
import type { ConfChangeTiming, ConfigRecord } from '../../core/protocol/messages.ts';

export interface ClusterStatusMember {
  id: string;
  address: string;
  /** leader, follower, learner, candidate or unknown. */
  role: string;
  voter: boolean;
  /** Highest log index the leader knows the member holds (0 when the leader was not asked). */
  matchIndex: number;
  /** Leader's last index minus matchIndex. */
  lag: number;
  /** Milliseconds since the leader last heard from the member; null when unknown. */
  lastContactMs: number | null;
}

export interface ClusterStatusResult {
  clusterId: string;
  clusterName: string;
  /** The node that answered, and its state: pending, joining, member or left. */
  node: string;
  state: string;
  leader: string | null;
  leaderAddress: string | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  /** The answering node's Raft role. */
  role: string;
  members: ClusterStatusMember[];
  /** The leader whose replication progress fills matchIndex, lag and lastContactMs. */
  progressFrom: string | null;
  settings: Record<string, string>;
  /** Every configuration change applied, in order (bounded). */
  history: ConfigRecord[];
  /** Proposal-to-apply times of membership changes this node proposed as leader. */
  confChangeTimings: ConfChangeTiming[];
  /** Nodes found through the seeds, before bootstrap. */
  knownPeers: { id: string; address: string }[];
}

export default class ClusterStatus extends RdbnetCommand<ClusterStatusResult> {
  static override fanOut = true;
  static override summary = 'Consensus view: leader, term, commit index and members.';
  static override description =
    "Answered by the node from its own Raft state; each member's matchIndex, lag and lastContactMs come from the leader, " +
    'which the node asks when it is not the leader itself.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --json | jq -r .leader',
  ];
  static override flags = { ...nodeFlags };

  protected override async execute(): Promise<ClusterStatusResult> {
    const { flags } = await this.parse(ClusterStatus);
    const reply = await withSpinner('asking the node', this.json, () =>
      withNode(flags, (node) => node.ask('clusterStatusRequest', { localOnly: false })),
    );
    return {
      clusterId: reply.clusterId,
      clusterName: reply.clusterName,
      node: reply.id,
      state: reply.state,
      leader: reply.leader || null,
      leaderAddress: reply.leaderAddress || null,
      term: reply.term,
      commitIndex: reply.commitIndex,
      appliedIndex: reply.appliedIndex,
      lastIndex: reply.lastIndex,
      role: reply.role,
      members: (reply.members ?? []).map((member) => ({
        id: member.id,
        address: member.address,
        role: member.role,
        voter: member.voter,
        matchIndex: member.matchIndex,
        lag: member.lag,
        lastContactMs: member.lastContactMs < 0 ? null : member.lastContactMs,
      })),
      progressFrom: reply.progressFrom || null,
      settings: { ...reply.settings },
      history: (reply.history ?? []).map((record) => ({ ...record })),
      confChangeTimings: (reply.confChangeTimings ?? []).map((timing) => ({ ...timing })),
      knownPeers: (reply.knownPeers ?? []).map((peer) => ({ id: peer.id, address: peer.address })),
    };
  }

  protected override render(result: ClusterStatusResult): void {
    this.log(
      keyValueTable([
        ['cluster', result.clusterId || '(none yet)'],
        ['node', `${result.node} (${result.state}${result.role ? `, ${result.role}` : ''})`],
        [
          'leader',
          result.leader === null ? 'none' : `${result.leader} at ${result.leaderAddress ?? '?'}`,
        ],
        ['term', result.term],
        ['commit index', result.commitIndex],
      ]),
    );
    if (result.members.length > 0) {
      this.log(
        table(
          ['id', 'address', 'role', 'voter', 'match index', 'lag', 'last contact'],
          result.members.map((member) => [
            member.id,
            member.address,
            member.role,
            member.voter,
            result.progressFrom === null ? '-' : member.matchIndex,
            result.progressFrom === null ? '-' : member.lag,
            member.lastContactMs === null ? '-' : `${member.lastContactMs} ms`,
          ]),
        ),
      );
    } else if (result.knownPeers.length > 0) {
      this.log(
        table(
          ['known peer', 'address'],
          result.knownPeers.map((peer) => [peer.id, peer.address]),
        ),
      );
    }
  }
}
