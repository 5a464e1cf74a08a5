import { RdbnetCommand } from '../../cli/base-command.ts';
import { generateKey } from '../../core/security/keyring.ts';

export interface KeysGenerateResult {
  /** A new random 32-byte AES-256 key, base64. */
  key: string;
}

export default class KeysGenerate extends RdbnetCommand<KeysGenerateResult> {
  static override summary = 'Print a new gossip key (base64).';
  static override description =
    'A new random 32-byte key for the gossip keyring (AES-256-GCM). Nothing is written: put it in a ' +
    'gossip.keyring file ({"primary": "<key>", "keys": ["<key>"]}, mode 0600) in the certs dir of every node.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json | jq -r .key',
  ];
  static override flags = {};

  protected override async execute(): Promise<KeysGenerateResult> {
    await this.parse(KeysGenerate);
    return { key: generateKey() };
  }

  protected override render(result: KeysGenerateResult): void {
    this.log(result.key);
  }
}
