/**
 * Parsers for configuration values. Each takes a value as a source gave it and returns it
 * typed, or throws a ValueProblem saying what is wrong with it (the caller adds which field
 * and which source). Environment variables and command-line flags are text, so a `textual`
 * value is parsed from a string; a config file's JSON value must already have the right type.
 */
import { PROVIDERS } from '../discovery/registry.ts';
import { isSpec, parseSpec } from '../discovery/spec.ts';
import { isRdbnetError } from '../errors.ts';
import { validateName } from '../security/identity.ts';
import { formatHostPort, type HostPort, parseHostPort } from '../transport/address.ts';

/** What is wrong with one value; the resolver turns it into a ConfigValueError. */
export class ValueProblem extends Error {
  readonly hint: string | undefined;

  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'ValueProblem';
    this.hint = hint;
  }
}

export type Parse<T> = (value: unknown, textual: boolean) => T;

/** How a value is shown in a message: strings quoted, cut short. */
export function shown(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function text(): Parse<string> {
  return (value) => {
    if (typeof value !== 'string' || value === '') {
      throw new ValueProblem(`expected a non-empty string, got ${shown(value)}`);
    }
    return value;
  };
}

export function integer(min: number, max: number): Parse<number> {
  return (value, textual) => {
    const number =
      textual && typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isInteger(number) || number < min || number > max) {
      throw new ValueProblem(`expected an integer in ${min}..${max}, got ${shown(value)}`);
    }
    return number;
  };
}

/** A finite number above zero (the connection limits). */
export function positiveNumber(): Parse<number> {
  return (value, textual) => {
    const number =
      textual && typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value)
        ? Number(value)
        : value;
    if (typeof number !== 'number' || !Number.isFinite(number) || number <= 0) {
      throw new ValueProblem(`expected a number above 0, got ${shown(value)}`);
    }
    return number;
  };
}

const TRUE_TEXT = new Set(['true', '1', 'yes', 'on']);
const FALSE_TEXT = new Set(['false', '0', 'no', 'off']);

export function boolean(): Parse<boolean> {
  return (value, textual) => {
    if (typeof value === 'boolean') return value;
    if (textual && typeof value === 'string') {
      const lower = value.trim().toLowerCase();
      if (TRUE_TEXT.has(lower)) return true;
      if (FALSE_TEXT.has(lower)) return false;
    }
    throw new ValueProblem(
      `expected ${textual ? 'true or false (or 1/0, yes/no, on/off)' : 'true or false'}, got ${shown(value)}`,
    );
  };
}

export function oneOf<T extends string>(values: readonly T[]): Parse<T> {
  return (value) => {
    if (typeof value === 'string' && (values as readonly string[]).includes(value)) {
      return value as T;
    }
    throw new ValueProblem(`expected one of ${values.join(', ')}, got ${shown(value)}`);
  };
}

/** Turns the RdbnetError of an existing validator into a ValueProblem with its message. */
function rethrown<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (isRdbnetError(error)) throw new ValueProblem(error.message, error.hint);
    throw error;
  }
}

export function hostPort(what: string): Parse<HostPort> {
  return (value) => {
    if (typeof value !== 'string') {
      throw new ValueProblem(`expected a "host:port" string, got ${shown(value)}`);
    }
    return rethrown(() => parseHostPort(value, what));
  };
}

/** A node id or cluster name (identity.ts's rules). */
export function name(kind: string): Parse<string> {
  return (value) => rethrown(() => validateName(kind, value as string));
}

/**
 * host:port addresses: a JSON array of strings, or one string (comma- or space-separated);
 * normalised and de-duplicated. An empty list is allowed.
 */
export function addressList(): Parse<string[]> {
  return (value) => {
    let items: string[];
    if (typeof value === 'string') items = value.split(/[\s,]+/);
    else if (Array.isArray(value) && value.every((item) => typeof item === 'string')) {
      items = value.flatMap((item: string) => item.split(/[\s,]+/));
    } else {
      throw new ValueProblem(`expected host:port addresses, got ${shown(value)}`);
    }
    return rethrown(() => parseAddressList(items.join(',')));
  };
}

/**
 * A list of host:port addresses, comma- or whitespace-separated (an empty list is allowed),
 * normalised to host:port; a bad one is a usage error naming it.
 */
export function parseAddressList(text: string): string[] {
  const out: string[] = [];
  for (const item of text.split(/[\s,]+/)) {
    if (item === '') continue;
    const address = formatHostPort(parseHostPort(item, 'join address'));
    if (!out.includes(address)) out.push(address);
  }
  return out;
}

/** Group names (identity.ts's name rules, at most 32 characters each and 8 groups, so they fit
 * in gossip's metadata): a JSON array of strings or one comma-separated string. */
export function groupList(): Parse<string[]> {
  return (value) => {
    let items: string[];
    if (typeof value === 'string') items = value.split(/[\s,]+/);
    else if (Array.isArray(value) && value.every((item) => typeof item === 'string')) {
      items = value as string[];
    } else {
      throw new ValueProblem(`expected group names, got ${shown(value)}`);
    }
    const groups = [...new Set(items.filter((item) => item !== ''))];
    for (const group of groups) {
      rethrown(() => validateName('group name', group));
      if (group.length > GROUP_NAME_CHARS_MAX) {
        throw new ValueProblem(
          `group name "${group}" is longer than ${GROUP_NAME_CHARS_MAX} characters`,
        );
      }
    }
    if (groups.length > GROUPS_MAX) {
      throw new ValueProblem(`at most ${GROUPS_MAX} groups, got ${groups.length}`);
    }
    return groups;
  };
}

/** Bounds of the node config's `groups` (the data plane's groupsMax, groupNameBytesMax). */
export const GROUPS_MAX = 8;
export const GROUP_NAME_CHARS_MAX = 32;
/** Most discovery entries one field holds (`--retry-join`, `--register`). */
export const DISCOVERY_ENTRIES_FIELD_MAX = 32;

/**
 * Discovery entries (`--retry-join`, `--register`): a JSON array of strings (a file, or text
 * starting with `[`), repeated flags, or text with one entry a line. Each entry is a spec
 * (`provider=dns name=...`, checked against the known providers and their keys) or, unless
 * `specsOnly`, host:port addresses (comma-separated).
 */
export function discoveryEntries(specsOnly: boolean): Parse<string[]> {
  return (value, textual) => {
    let items: unknown[];
    if (Array.isArray(value)) items = value;
    else if (typeof value === 'string' && textual && value.trim().startsWith('[')) {
      try {
        items = JSON.parse(value) as unknown[];
      } catch {
        throw new ValueProblem(`expected a JSON array of strings, got ${shown(value)}`);
      }
      if (!Array.isArray(items))
        throw new ValueProblem(`expected a JSON array, got ${shown(value)}`);
    } else if (typeof value === 'string') items = value.split('\n');
    else throw new ValueProblem(`expected discovery specs, got ${shown(value)}`);
    const out: string[] = [];
    for (const item of items) {
      if (typeof item !== 'string') {
        throw new ValueProblem(`expected discovery specs as strings, got ${shown(item)}`);
      }
      const entry = item.trim();
      if (entry === '') continue;
      if (isSpec(entry)) rethrown(() => parseSpec(entry, PROVIDERS));
      else if (specsOnly) {
        throw new ValueProblem(
          `${shown(entry)} is not a discovery spec`,
          'write "provider=NAME key=value ..." (a provider that can register: see rdbnet discover --help)',
        );
      } else {
        rethrown(() => parseAddressList(entry));
      }
      if (!out.includes(entry)) out.push(entry);
    }
    if (out.length > DISCOVERY_ENTRIES_FIELD_MAX) {
      throw new ValueProblem(`${out.length} entries; at most ${DISCOVERY_ENTRIES_FIELD_MAX}`);
    }
    return out;
  };
}

/** A Raft cluster id as `cluster status` shows it. */
export function clusterIdValue(): Parse<string> {
  return (value) => {
    if (typeof value !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(value)) {
      throw new ValueProblem(
        `expected a cluster id (letters, digits, . _ -), got ${shown(value)}`,
        'the id `rdbnet cluster status` shows as clusterId',
      );
    }
    return value;
  };
}
