import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import {
  type ClusterMembershipResult,
  membershipResult,
  renderMembership,
} from '../../cli/cluster-membership.ts';
import { readList } from '../../cli/lists.ts';
import { nodeFlags, withHints, withNode } from '../../cli/node-client.ts';
import { withSpinner } from '../../cli/output.ts';
import { formatHostPort, parseHostPort } from '../../core/transport/address.ts';

export type ClusterJoinResult = ClusterMembershipResult;

/** Answer time on top of --wait. */
const JOIN_EXTRA_MS = 5_000;

export default class ClusterJoin extends RdbnetCommand<ClusterJoinResult> {
  static override summary = 'Make a running node join a cluster through seed addresses.';
  static override description =
    'For a node started with --join that has no cluster yet (wrong or missing seeds): it looks for the cluster ' +
    'through these seeds too, joins as a learner (promoted to voter once caught up) and gossips with the members. ' +
    'The answer waits until the node is a member, at most --wait. A node that already belongs to a cluster is ' +
    'refused (exit 1, RDB_CLUSTER_EXISTS).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --seeds 127.0.0.1:7001,127.0.0.1:7002 --node 127.0.0.1:7004',
    'rdbnet discover --json | jq -r ".nodes[].address" | <%= config.bin %> <%= command.id %> --seeds -',
  ];
  static override flags = {
    ...nodeFlags,
    seeds: Flags.string({
      description:
        'Members to join through: comma-separated host:port list; `-` reads them from stdin.',
      required: true,
      helpValue: 'a,b,c',
    }),
    wait: Flags.integer({
      description: 'Milliseconds to wait until the node is a member.',
      default: 30_000,
      min: 1,
      max: 300_000,
      helpValue: 'ms',
    }),
  };

  protected override async execute(): Promise<ClusterJoinResult> {
    const { flags } = await this.parse(ClusterJoin);
    const seeds = (await readList(flags.seeds, '--seeds')).map((seed) =>
      formatHostPort(parseHostPort(seed, 'seed address')),
    );
    const reply = await withSpinner('joining', this.json, () =>
      withHints(
        withNode(flags, (node) =>
          node.ask('clusterJoinRequest', { seeds, waitMs: flags.wait }, flags.wait + JOIN_EXTRA_MS),
        ),
        {
          RDB_REQUEST_TIMEOUT:
            'check that the seeds are members of a running cluster, or raise --wait',
        },
      ),
    );
    return membershipResult(reply);
  }

  protected override render(result: ClusterJoinResult): void {
    renderMembership(result, 'joined', (line) => this.log(line));
  }
}
