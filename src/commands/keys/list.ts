import { RdbnetCommand } from '../../cli/base-command.ts';
import { table } from '../../cli/output.ts';
import { certsDirFlag, certsDirOf } from '../../cli/pki-client.ts';
import { gossipKeyringPath } from '../../core/node/gossip.ts';
import { loadKeyring } from '../../core/security/keyring.ts';

export interface KeysListResult {
  file: string;
  /** The key new packets are sealed with. */
  primary: string;
  /** Every installed key (packets sealed with any of them open), primary first. */
  keys: string[];
}

export default class KeysList extends RdbnetCommand<KeysListResult> {
  static override summary = 'List the keys of the local gossip keyring.';
  static override description =
    'Reads gossip.keyring in --certs-dir (refused when group or others may read it) and prints its keys, primary first.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --certs-dir /etc/rdbnet/certs --json',
  ];
  static override flags = { ...certsDirFlag };

  protected override async execute(): Promise<KeysListResult> {
    const { flags } = await this.parse(KeysList);
    const file = gossipKeyringPath(certsDirOf(flags['certs-dir']));
    const keyring = await loadKeyring(file);
    return { file, primary: keyring.primary, keys: keyring.list() };
  }

  protected override render(result: KeysListResult): void {
    this.log(
      table(
        ['key', 'primary'],
        result.keys.map((key) => [key, key === result.primary ? 'yes' : '']),
      ),
    );
  }
}
