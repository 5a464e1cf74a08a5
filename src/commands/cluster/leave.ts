import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withHints, withNode } from '../../cli/node-client.ts';
import { withSpinner } from '../../cli/output.ts';

export interface ClusterLeaveResult {
  left: true;
  id: string;
}

export default class ClusterLeave extends RdbnetCommand<ClusterLeaveResult> {
  static override summary = 'Remove the target node from the cluster; it then stops.';
  static override description =
    'The node asks the leader to remove it from the configuration and exits 0 once that is committed. ' +
    'Refused (exit 1, RDB_QUORUM_AT_RISK) when the remaining voters would not have a live quorum, unless --force. ' +
    'A node that left cannot start on the same data dir again.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7004',
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7004 --force --json',
  ];
  static override flags = {
    ...nodeFlags,
    force: Flags.boolean({
      description: 'Remove the node even when the remaining voters would have no live quorum.',
    }),
  };

  protected override async execute(): Promise<ClusterLeaveResult> {
    const { flags } = await this.parse(ClusterLeave);
    const reply = await withSpinner('leaving the cluster', this.json, () =>
      withHints(
        withNode(flags, (node) =>
          node.ask('leaveRequest', { force: flags.force }, Math.max(flags.timeout, 15_000)),
        ),
        {
          RDB_QUORUM_AT_RISK: 'bring the other voters back first, or pass --force to leave anyway',
          RDB_NO_LEADER: 'see `rdbnet cluster status`: a quorum of voters may be down',
        },
      ),
    );
    return { left: true, id: reply.id };
  }

  protected override render(result: ClusterLeaveResult): void {
    this.log(`${result.id} left the cluster`);
  }
}
