import { RdbnetCommand } from '../../cli/base-command.ts';
import { bansTable, type FirewallResult, firewallResult } from '../../cli/firewall.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { table } from '../../cli/output.ts';

export default class FirewallStats extends RdbnetCommand<FirewallResult> {
  static override summary = "The node's firewall counters: refusals by reason, and per source.";
  static override description =
    'Refusals since the node started by reason (banned, connectionsMax, connectionRate, handshakeRate, messageRate, ' +
    'datagramRate), automatic bans, and the sources the node tracks (at most 4096, the least recently seen ' +
    'forgotten first), most refused first: connections open, refusals, recent handshake failures.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json | jq .refused',
  ];
  static override flags = { ...nodeFlags };

  protected override async execute(): Promise<FirewallResult> {
    const { flags } = await this.parse(FirewallStats);
    const reply = await withNode(flags, (node) =>
      node.ask('firewallRequest', { op: 'stats', source: '', banMs: 0 }),
    );
    return firewallResult(reply, 'stats');
  }

  protected override render(result: FirewallResult): void {
    this.log(
      table(
        ['refused by', 'count'],
        Object.entries(result.refused).map(([name, value]) => [name, value]),
      ),
    );
    this.log(
      table(
        ['source', 'open', 'refused', 'failures'],
        (result.sources ?? []).map((source) => [
          source.source,
          source.open,
          source.refused,
          source.failures,
        ]),
      ),
    );
    this.log(bansTable(result));
  }
}
