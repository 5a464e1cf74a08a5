import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import {
  bansTable,
  type FirewallResult,
  firewallResult,
  parseBanLength,
} from '../../cli/firewall.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { ErrorCode, RdbnetError } from '../../core/errors.ts';
import { addressWords } from '../../core/security/acl.ts';
import { FIREWALL_BAN_MS_MAX } from '../../core/security/firewall.ts';

export default class FirewallBan extends RdbnetCommand<FirewallResult> {
  static override summary = 'Ban a source address on the node asked, for a while.';
  static override description =
    'Every new connection and gossip datagram from the address (IPv6: its /64) is refused at accept until the ban ' +
    "expires or `firewall unban` lifts it; connections already open stay. The ban is the node's own (not replicated); " +
    'ban on each member to ban everywhere. Default length 1 h.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --source 169.254.2.2 --for 10m',
    '<%= config.bin %> <%= command.id %> --source 169.254.2.2 --for 30s --json',
  ];
  static override flags = {
    ...nodeFlags,
    source: Flags.string({
      description: 'The IP address to ban.',
      required: true,
      helpValue: 'ip',
    }),
    for: Flags.string({
      description: 'How long: ms, or with a unit (30s, 10m, 2h). Default 1h.',
      helpValue: 'duration',
    }),
  };

  protected override async execute(): Promise<FirewallResult> {
    const { flags } = await this.parse(FirewallBan);
    if (addressWords(flags.source) === undefined) {
      throw new RdbnetError(ErrorCode.Usage, `--source '${flags.source}' is not an IP address`);
    }
    const banMs = flags.for === undefined ? 0 : parseBanLength(flags.for);
    if (
      banMs === undefined ||
      banMs > FIREWALL_BAN_MS_MAX ||
      (flags.for !== undefined && banMs < 1)
    ) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `--for '${flags.for}' is not a duration of 1 ms to 7 days`,
        {
          hint: 'e.g. 500ms, 30s, 10m, 2h',
        },
      );
    }
    const reply = await withNode(flags, (node) =>
      node.ask('firewallRequest', { op: 'ban', source: flags.source, banMs }),
    );
    return firewallResult(reply, 'change');
  }

  protected override render(result: FirewallResult): void {
    this.log(bansTable(result));
  }
}
