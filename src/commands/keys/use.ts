import { KeyringChangeCommand } from '../../cli/keyring-ops.ts';

export default class KeysUse extends KeyringChangeCommand {
  static override summary = 'Make an installed gossip key the primary on every alive member.';
  static override description =
    'Refused (nothing changes) when a member lacks KEY: the result names the nodes that lack it. The node applies it to its own keyring (saved atomically, mode 0600) and forwards it to every alive gossip member over mTLS (5 s each); one result per node, exit 1 if any failed. Rotation: install the new key, use it, remove the old one.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> "$(rdbnet keys generate)" --node 127.0.0.1:7000',
    '<%= config.bin %> <%= command.id %> KEY --json',
  ];
  protected override readonly op = 'use' as const;
}
