import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { plainOutput, table, withSpinner } from '../../cli/output.ts';

export const MEMBER_STATES = ['alive', 'suspect', 'dead', 'left'] as const;
export type MemberStateName = (typeof MEMBER_STATES)[number];

export interface ClusterMembersEntry {
  id: string;
  address: string;
  state: MemberStateName;
  incarnation: number;
  /** Smoothed RTT of the asked node's direct probes; null before the first ack (and for itself). */
  rttMs: number | null;
  phi: number;
  score: number;
  /** True for the node that answered. */
  self: boolean;
}

export interface ClusterMembersResult {
  /** The node that answered. */
  node: string;
  members: ClusterMembersEntry[];
}

export default class ClusterMembers extends RdbnetCommand<ClusterMembersResult> {
  static override fanOut = true;
  static override summary = 'Membership view (gossip): every member the node knows and its state.';
  static override description =
    "The asked node's SWIM view: state alive, suspect, dead or left, incarnation, and the RTT, phi and score of " +
    'its own probes to each member. The answering node comes first.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --state dead --json | jq -r .members[].id',
  ];
  static override flags = {
    ...nodeFlags,
    state: Flags.string({
      description: 'Only members in this state.',
      options: [...MEMBER_STATES],
    }),
  };

  protected override async execute(): Promise<ClusterMembersResult> {
    const { flags } = await this.parse(ClusterMembers);
    const reply = await withSpinner('asking the node', this.json, () =>
      withNode(flags, (node) => node.ask('membersRequest', {})),
    );
    const members = reply.members
      .map(
        (member): ClusterMembersEntry => ({
          id: member.id,
          address: member.address,
          state: member.state as MemberStateName,
          incarnation: member.incarnation,
          rttMs: member.rttMs < 0 ? null : member.rttMs,
          phi: member.phi,
          score: member.score,
          self: member.isSelf,
        }),
      )
      .filter((member) => flags.state === undefined || member.state === flags.state);
    return { node: reply.id, members };
  }

  protected override render(result: ClusterMembersResult): void {
    if (plainOutput()) {
      // Bare values for awk and cut: the unit is in the header, "this node" its own column.
      this.log(
        table(
          ['id', 'address', 'state', 'incarnation', 'rttMs', 'phi', 'score', 'self'],
          result.members.map((m) => [
            m.id,
            m.address,
            m.state,
            m.incarnation,
            m.rttMs === null ? '-' : m.rttMs.toFixed(2),
            m.phi.toFixed(2),
            m.score.toFixed(2),
            m.self,
          ]),
        ),
      );
      return;
    }
    this.log(
      table(
        ['id', 'address', 'state', 'incarnation', 'rtt', 'phi', 'score'],
        result.members.map((m) => [
          m.self ? `${m.id} (this node)` : m.id,
          m.address,
          m.state,
          m.incarnation,
          m.rttMs === null ? '-' : `${m.rttMs.toFixed(2)} ms`,
          m.phi.toFixed(2),
          m.score.toFixed(2),
        ]),
      ),
    );
  }
}
