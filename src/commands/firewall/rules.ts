import { RdbnetCommand } from '../../cli/base-command.ts';
import { bansTable, type FirewallResult, firewallResult } from '../../cli/firewall.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { table } from '../../cli/output.ts';

export default class FirewallRules extends RdbnetCommand<FirewallResult> {
  static override summary = "The node's firewall: per-source limits and the bans in force.";
  static override description =
    'Limits per source address (IPv6: per /64), set by the node config fields firewall* (or RDBNET_FIREWALL_* ' +
    'env): connections open at once, new connections, handshakes, requests and gossip datagrams per second (token ' +
    'buckets with a 2 s burst), and the automatic ban after repeated failed handshakes. Which peers may do what ' +
    'at all is the access control list (`rdbnet acl`).';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
  ];
  static override flags = { ...nodeFlags };

  protected override async execute(): Promise<FirewallResult> {
    const { flags } = await this.parse(FirewallRules);
    const reply = await withNode(flags, (node) =>
      node.ask('firewallRequest', { op: 'rules', source: '', banMs: 0 }),
    );
    return firewallResult(reply, 'rules');
  }

  protected override render(result: FirewallResult): void {
    this.log(
      table(
        ['limit', 'value'],
        Object.entries(result.limits).map(([name, value]) => [name, value]),
      ),
    );
    this.log(bansTable(result));
  }
}
