import { Args } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { tokensDataDir, tokensFlags } from '../../cli/tokens-flags.ts';
import { revokeToken, type TokenInfo } from '../../core/http/tokens.ts';

export interface TokensRevokeResult {
  revoked: TokenInfo;
}

export default class TokensRevoke extends RdbnetCommand<TokensRevokeResult> {
  static override summary =
    'Revoke an HTTP API bearer token (the node refuses it within a second).';
  static override examples = ['<%= config.bin %> <%= command.id %> 3f2a9c0d1e4b5a6f'];
  static override args = {
    id: Args.string({ description: 'Token id (from `rdbnet tokens list`).', required: true }),
  };
  static override flags = { ...tokensFlags };

  protected override async execute(): Promise<TokensRevokeResult> {
    const { args, flags } = await this.parse(TokensRevoke);
    return { revoked: await revokeToken(tokensDataDir(flags['data-dir']), args.id) };
  }

  protected override render(result: TokensRevokeResult): void {
    this.log(`revoked token ${result.revoked.id} (${result.revoked.name})`);
  }
}
