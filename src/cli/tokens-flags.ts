/** The flag every `rdbnet tokens …` command shares: the node data dir that keeps the tokens. */
import { Flags } from '@oclif/core';
import { defaultDataDir } from '../core/config/home.ts';

export const tokensFlags = {
  'data-dir': Flags.string({
    description:
      "The node's data directory, where its HTTP tokens are kept (http-tokens.json). " +
      '[env: RDBNET_DATA_DIR; default: $RDBNET_HOME/node]',
    helpValue: 'dir',
  }),
};

export function tokensDataDir(flag: string | undefined): string {
  const fromEnv = process.env['RDBNET_DATA_DIR'];
  return flag ?? (fromEnv === undefined || fromEnv === '' ? defaultDataDir() : fromEnv);
}
