import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withHints, withNode } from '../../cli/node-client.ts';
import { withSpinner } from '../../cli/output.ts';
import { validateName } from '../../core/security/identity.ts';

export interface ClusterRemoveResult {
  removed: true;
  id: string;
  /** Raft log index of the removal; 0 when the member had gone already. */
  index: number;
}

export default class ClusterRemove extends RdbnetCommand<ClusterRemoveResult> {
  static override summary = 'Take a member out of the cluster by its id (a dead or stuck one).';
  static override description =
    'The node given by --node forwards the removal to the leader. Use it for a member that will ' +
    'not come back (its disk is gone, its machine retired); a running member should rather ' +
    '`rdbnet cluster leave`. Refused (exit 1, RDB_QUORUM_AT_RISK) when the voters left would not ' +
    'have a live quorum, unless --force; an id that is not a member is RDB_NOT_MEMBER (exit 1). ' +
    'A removed node cannot rejoin under the same data dir.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --id n3 --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --id n3 --force --json',
  ];
  static override flags = {
    ...nodeFlags,
    id: Flags.string({
      description: 'Id of the member to remove.',
      required: true,
      helpValue: 'id',
    }),
    force: Flags.boolean({
      description:
        'Remove it even when the voters left would have no live quorum (the cluster may then stop accepting changes until they are back).',
    }),
  };

  protected override async execute(): Promise<ClusterRemoveResult> {
    const { flags } = await this.parse(ClusterRemove);
    const id = validateName('node id', flags.id);
    if (flags.force && !this.json) {
      this.warn(`--force: ${id} is removed even if the voters left cannot make a quorum`);
    }
    const reply = await withSpinner(`removing ${id}`, this.json, () =>
      withHints(
        withNode(flags, (node) =>
          node.ask(
            'clusterRemoveRequest',
            { id, force: flags.force, forwarded: false },
            Math.max(flags.timeout, 15_000),
          ),
        ),
        {
          RDB_NOT_MEMBER: 'see `rdbnet cluster status` for the members',
          RDB_QUORUM_AT_RISK:
            'bring the other voters back first, or pass --force to remove it anyway',
          RDB_NO_LEADER: 'see `rdbnet cluster status`: a quorum of voters may be down',
        },
      ),
    );
    return { removed: true, id: reply.id, index: reply.index };
  }

  protected override render(result: ClusterRemoveResult): void {
    this.log(
      result.index === 0
        ? `${result.id} was not a member any more`
        : `${result.id} removed from the cluster (log index ${result.index})`,
    );
  }
}
