import { RdbnetCommand } from '../../cli/base-command.ts';
import { table } from '../../cli/output.ts';
import { tokensDataDir, tokensFlags } from '../../cli/tokens-flags.ts';
import { listTokens, type TokenInfo } from '../../core/http/tokens.ts';

export interface TokensListResult {
  tokens: TokenInfo[];
}

export default class TokensList extends RdbnetCommand<TokensListResult> {
  static override summary = 'List the HTTP API bearer tokens of a node (never their secrets).';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --data-dir ./n1 --json',
  ];
  static override flags = { ...tokensFlags };

  protected override async execute(): Promise<TokensListResult> {
    const { flags } = await this.parse(TokensList);
    return { tokens: await listTokens(tokensDataDir(flags['data-dir'])) };
  }

  protected override render(result: TokensListResult): void {
    if (result.tokens.length === 0) {
      this.log('no tokens');
      return;
    }
    this.log(
      table(
        ['id', 'name', 'role', 'created', 'expires'],
        result.tokens.map((t) => [t.id, t.name, t.role, t.createdAt, t.expiresAt ?? 'never']),
      ),
    );
  }
}
