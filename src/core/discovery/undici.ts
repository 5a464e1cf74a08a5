/**
 * undici, loaded on first use. The discovery providers are imported by the config parser (to
 * check specs) and so by `node start` and `node config`; undici is about a hundred modules, and
 * only a provider that actually makes an HTTP request needs it. Loading it here, synchronously
 * on first call, keeps every caller's code unchanged.
 */
import { createRequire } from 'node:module';

type Undici = typeof import('undici');

let loaded: Undici | undefined;

export function undici(): Undici {
  loaded ??= createRequire(import.meta.url)('undici') as Undici;
  return loaded;
}
