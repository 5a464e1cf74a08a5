import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withHints, withNode } from '../../cli/node-client.ts';
import { withSpinner } from '../../cli/output.ts';

export interface TransferLeaderResult {
  leader: string;
  term: number;
}

export default class ClusterTransferLeader extends RdbnetCommand<TransferLeaderResult> {
  static override summary = 'Move Raft leadership to another voter.';
  static override description =
    'The node forwards the request to the current leader, which hands over once the new leader has its whole log. ' +
    'Exit 0 once the new leader leads; 1 when the transfer did not complete within 3 seconds.';
  static override examples = ['<%= config.bin %> <%= command.id %> --to n2 --node 127.0.0.1:7001'];
  static override flags = {
    ...nodeFlags,
    to: Flags.string({
      description: 'Id of the voter that should lead.',
      required: true,
      helpValue: 'id',
    }),
  };

  protected override async execute(): Promise<TransferLeaderResult> {
    const { flags } = await this.parse(ClusterTransferLeader);
    const reply = await withSpinner(`moving leadership to ${flags.to}`, this.json, () =>
      withHints(
        withNode(flags, (node) =>
          node.ask(
            'transferLeaderRequest',
            { to: flags.to, forwarded: false },
            Math.max(flags.timeout, 12_000),
          ),
        ),
        { RDB_NOT_MEMBER: 'see `rdbnet cluster status` for the voters' },
      ),
    );
    return { leader: reply.leader, term: reply.term };
  }

  protected override render(result: TransferLeaderResult): void {
    this.log(`leader: ${result.leader} (term ${result.term})`);
  }
}
