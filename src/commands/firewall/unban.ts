import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { bansTable, type FirewallResult, firewallResult } from '../../cli/firewall.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { ErrorCode, RdbnetError } from '../../core/errors.ts';
import { addressWords } from '../../core/security/acl.ts';

export default class FirewallUnban extends RdbnetCommand<FirewallResult> {
  static override summary = 'Lift a ban on the node asked.';
  static override description =
    'Manual and automatic bans alike. `changed` is false (exit 0) when the address was not banned.';
  static override examples = ['<%= config.bin %> <%= command.id %> --source 169.254.2.2'];
  static override flags = {
    ...nodeFlags,
    source: Flags.string({
      description: 'The IP address to unban.',
      required: true,
      helpValue: 'ip',
    }),
  };

  protected override async execute(): Promise<FirewallResult> {
    const { flags } = await this.parse(FirewallUnban);
    if (addressWords(flags.source) === undefined) {
      throw new RdbnetError(ErrorCode.Usage, `--source '${flags.source}' is not an IP address`);
    }
    const reply = await withNode(flags, (node) =>
      node.ask('firewallRequest', { op: 'unban', source: flags.source, banMs: 0 }),
    );
    return firewallResult(reply, 'change');
  }

  protected override render(result: FirewallResult): void {
    this.log(result.changed ? 'ban lifted' : 'was not banned');
    this.log(bansTable(result));
  }
}
