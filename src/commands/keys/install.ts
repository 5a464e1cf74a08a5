import { KeyringChangeCommand } from '../../cli/keyring-ops.ts';

export default class KeysInstall extends KeyringChangeCommand {
  static override summary =
    'Install a gossip key on every alive member (accepted, not yet used to seal).';
  static override description =
    'Adds KEY to the keyring of the target node and of every alive member; packets sealed with it open from now on. The node applies it to its own keyring (saved atomically, mode 0600) and forwards it to every alive gossip member over mTLS (5 s each); one result per node, exit 1 if any failed. Rotation: install the new key, use it, remove the old one.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> "$(rdbnet keys generate)" --node 127.0.0.1:7000',
    '<%= config.bin %> <%= command.id %> KEY --json',
  ];
  protected override readonly op = 'install' as const;
}
