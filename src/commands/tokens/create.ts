import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { tokensDataDir, tokensFlags } from '../../cli/tokens-flags.ts';
import { parseDurationText } from '../../core/discovery/values.ts';
import { ErrorCode, RdbnetError } from '../../core/errors.ts';
import { createToken, type TokenInfo } from '../../core/http/tokens.ts';
import { parseClientRole } from '../../core/security/identity.ts';

export interface TokensCreateResult extends TokenInfo {
  /** The bearer token: shown this once, kept only as a hash. */
  token: string;
}

export default class TokensCreate extends RdbnetCommand<TokensCreateResult> {
  static override summary = 'Create a bearer token for the HTTP API (shown once, kept hashed).';
  static override description =
    'Writes the SHA-256 of a new 256-bit random token to http-tokens.json in the node data dir and ' +
    'prints the token once. The running node accepts it within a second: `Authorization: Bearer <token>`. ' +
    'A read token may ask, an admin token may also change (the same roles as client certificates).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --role read --name dashboard',
    '<%= config.bin %> <%= command.id %> --role admin --ttl 24h --data-dir ./n1 --json | jq -r .token',
  ];
  static override flags = {
    ...tokensFlags,
    role: Flags.string({
      description: 'What the token may do: read (ask) or admin (ask and change).',
      required: true,
      helpValue: 'read|admin',
    }),
    name: Flags.string({ description: 'A name to recognize it by.', default: 'token' }),
    ttl: Flags.string({
      description: 'Lifetime (1h, 30m, 7d as 168h); default: until revoked.',
      helpValue: 'duration',
    }),
  };

  protected override async execute(): Promise<TokensCreateResult> {
    const { flags } = await this.parse(TokensCreate);
    const role = parseClientRole(flags.role);
    let ttlMs: number | null = null;
    if (flags.ttl !== undefined) {
      const parsed = parseDurationText(flags.ttl);
      if (parsed === undefined || parsed <= 0) {
        throw new RdbnetError(
          ErrorCode.Usage,
          `invalid --ttl ${JSON.stringify(flags.ttl.slice(0, 40))}: use a duration such as 30m, 24h or 1h30m`,
        );
      }
      ttlMs = parsed;
    }
    const { token, info } = await createToken(tokensDataDir(flags['data-dir']), {
      role,
      name: flags.name,
      ttlMs,
      nowMs: Date.now(),
    });
    return { ...info, token };
  }

  protected override render(result: TokensCreateResult): void {
    this.log(result.token);
    this.logToStderr(
      `token ${result.id} (${result.name}, role ${result.role}` +
        `${result.expiresAt === null ? '' : `, expires ${result.expiresAt}`}): shown once, kept only as a hash`,
    );
  }
}
