/**
 * go-discover's configuration strings: `provider=NAME key=value key=value ...`, the syntax
 * Consul's and Nomad's `retry_join` made familiar. Values may be double-quoted to hold spaces
 * (`tag_value="db primary"`); a backslash escapes the next character inside quotes. Parsing
 * checks everything (provider known, keys known, required keys present, no key twice) before
 * any provider is built, so a bad string changes nothing and names what is wrong.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { ProviderFactory } from './provider.ts';

/** A spec longer than this is refused: it is a mistake, not a configuration. */
export const SPEC_CHARS_MAX = 4096;

export interface DiscoverySpec {
  provider: string;
  args: ReadonlyMap<string, string>;
  /** The string as given, for logs. */
  text: string;
}

function syntax(message: string, hint?: string): RdbnetError {
  return new RdbnetError(
    ErrorCode.DiscoverySyntax,
    message,
    hint === undefined ? undefined : { hint },
  );
}

/** Splits `a=b c="d e"` into pairs, refusing what is not `key=value`. */
function tokens(text: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i] as string)) i++;
    if (i >= text.length) break;
    const start = i;
    while (i < text.length && text[i] !== '=' && !/\s/.test(text[i] as string)) i++;
    const key = text.slice(start, i);
    if (text[i] !== '=' || key === '') {
      throw syntax(
        `discovery spec: "${text.slice(start, i) || text.slice(start)}" is not key=value`,
        'write provider=NAME key=value ...',
      );
    }
    i++; // '='
    let value = '';
    if (text[i] === '"') {
      i++;
      let closed = false;
      while (i < text.length) {
        const c = text[i] as string;
        if (c === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
          continue;
        }
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        value += c;
        i++;
      }
      if (!closed) throw syntax(`discovery spec: the quoted value of ${key} is not closed`);
    } else {
      const vstart = i;
      while (i < text.length && !/\s/.test(text[i] as string)) i++;
      value = text.slice(vstart, i);
    }
    pairs.push([key, value]);
  }
  return pairs;
}

/**
 * Parses and checks one spec against the known providers. Throws RDB_DISCOVERY_SYNTAX naming
 * the provider and key for: no provider, an unknown provider, an unknown key, a missing
 * required key, an empty value, a key given twice.
 */
export function parseSpec(
  text: string,
  factories: ReadonlyMap<string, ProviderFactory>,
): { spec: DiscoverySpec; factory: ProviderFactory } {
  if (text.length > SPEC_CHARS_MAX) {
    throw syntax(`discovery spec is ${text.length} characters; at most ${SPEC_CHARS_MAX}`);
  }
  const pairs = tokens(text);
  const args = new Map<string, string>();
  let provider: string | undefined;
  for (const [key, value] of pairs) {
    if (key === 'provider') {
      if (provider !== undefined) throw syntax('discovery spec: provider given twice');
      provider = value;
      continue;
    }
    if (args.has(key)) throw syntax(`discovery spec: key ${key} given twice`);
    args.set(key, value);
  }
  const known = [...factories.keys()].sort().join(', ');
  if (provider === undefined || provider === '') {
    throw syntax('discovery spec has no provider=', `providers: ${known}`);
  }
  const factory = factories.get(provider);
  if (factory === undefined) {
    throw syntax(`unknown discovery provider "${provider}"`, `providers: ${known}`);
  }
  const keyNames = new Set(factory.keys.map((k) => k.name));
  for (const [key, value] of args) {
    if (!keyNames.has(key)) {
      throw syntax(
        `provider=${provider}: unknown key "${key}"`,
        `keys: ${factory.keys.map((k) => k.name).join(', ')}`,
      );
    }
    if (value === '') throw syntax(`provider=${provider}: key ${key} has an empty value`);
  }
  for (const key of factory.keys) {
    if (key.required && !args.has(key.name)) {
      throw syntax(`provider=${provider}: key ${key.name} is required`, key.doc);
    }
  }
  return { spec: { provider, args, text }, factory };
}

/** True when `text` looks like a discovery spec rather than a plain `host:port` address. */
export function isSpec(text: string): boolean {
  return /^\s*provider=/.test(text);
}
