import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import {
  type ClusterMembershipResult,
  membershipResult,
  renderMembership,
} from '../../cli/cluster-membership.ts';
import { nodeFlags, withHints, withNode } from '../../cli/node-client.ts';
import { withSpinner } from '../../cli/output.ts';

export type ClusterBootstrapResult = ClusterMembershipResult;

/** Answer time on top of --wait: making the configuration and electing the first leader. */
const BOOTSTRAP_EXTRA_MS = 10_000;

export default class ClusterBootstrap extends RdbnetCommand<ClusterBootstrapResult> {
  static override summary = 'Initialise the cluster, once, on nodes started with --join.';
  static override description =
    'Asks the node to wait until --expect nodes without a cluster know each other through their --join seeds, ' +
    'then to found the cluster with them as voters; the other nodes receive the founding configuration. ' +
    'Refused (exit 1, RDB_CLUSTER_EXISTS) when the node, or a node it finds, already belongs to a cluster.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --expect 3 --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --expect 3 --json | jq -r .leader',
  ];
  static override flags = {
    ...nodeFlags,
    expect: Flags.integer({
      description: 'Number of founding voters (this node included).',
      required: true,
      min: 1,
      max: 64,
      helpValue: 'n',
    }),
    wait: Flags.integer({
      description: 'Milliseconds to wait for --expect nodes to be found.',
      default: 30_000,
      min: 1,
      max: 300_000,
      helpValue: 'ms',
    }),
  };

  protected override async execute(): Promise<ClusterBootstrapResult> {
    const { flags } = await this.parse(ClusterBootstrap);
    const reply = await withSpinner(`waiting for ${flags.expect} nodes`, this.json, () =>
      withHints(
        withNode(flags, (node) =>
          node.ask(
            'clusterBootstrapRequest',
            { expect: flags.expect, waitMs: flags.wait },
            flags.wait + BOOTSTRAP_EXTRA_MS,
          ),
        ),
        {
          RDB_CLUSTER_EXISTS:
            'a cluster is bootstrapped once; add nodes with `rdbnet node start --join <member address>`',
          RDB_REQUEST_TIMEOUT:
            'start the missing nodes with --join pointing at this one, or raise --wait',
        },
      ),
    );
    return membershipResult(reply);
  }

  protected override render(result: ClusterBootstrapResult): void {
    renderMembership(result, 'bootstrapped', (line) => this.log(line));
  }
}
