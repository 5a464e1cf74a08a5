/**
 * What the `rdbnet certs …` commands share on the command line: their flags, the prompts for
 * a missing name, and turning flags into the typed inputs of the certificate service
 * (src/core/pki), checked before the service does anything.
 */
import { Flags } from '@oclif/core';
import { FORBIDDEN_HINT } from '../core/client/node-client.ts';
import { defaultCertsDir, defaultNodeAddress } from '../core/config/home.ts';
import { ErrorCode, RdbnetError } from '../core/errors.ts';
import { type NodeTarget, nodeTargets, type PkiOperator } from '../core/pki/operator.ts';
import { validateName } from '../core/security/identity.ts';
import type { KeyBits } from '../core/security/pki.ts';
import { readList } from './lists.ts';
import { type NodeFlagValues, nodeFlags, withHints } from './node-client.ts';
import { interactive } from './output.ts';

// ---- flags ------------------------------------------------------------------------------

export const certsDirFlag = { 'certs-dir': nodeFlags['certs-dir'] };

/** Flags of commands that talk to nodes about certificates; --insecure nodes have none. */
export const pkiNodeFlags = {
  node: nodeFlags.node,
  'certs-dir': nodeFlags['certs-dir'],
  client: nodeFlags.client,
  timeout: nodeFlags.timeout,
};

export type PkiNodeFlagValues = Omit<NodeFlagValues, 'insecure'>;

export function daysFlag(defaultDays: number, what: string) {
  return Flags.integer({
    description: `Validity of the ${what} in days.`,
    default: defaultDays,
    min: 1,
    max: 36_500,
    helpValue: 'days',
  });
}

export const keyBitsFlag = Flags.string({
  description: 'RSA key size in bits.',
  options: ['2048', '3072', '4096'],
  default: '2048',
});

export const overwriteFlag = Flags.boolean({
  description: 'Replace existing files instead of refusing.',
});

export function nodesFlag(dependsOn: string[] = []) {
  return Flags.string({
    description:
      'Nodes to act on, comma-separated host:port list; `-` reads them from stdin. [default: --node]',
    helpValue: 'a,b,c',
    ...(dependsOn.length > 0 ? { dependsOn } : {}),
  });
}

export function certsDirOf(flag: string | undefined): string {
  return flag ?? defaultCertsDir();
}

export function keyBitsOf(flag: string): KeyBits {
  return Number(flag) as KeyBits;
}

// ---- input ------------------------------------------------------------------------------

/** The operator the flags name: certificates directory, client certificate, timeout. */
export function pkiOperator(flags: PkiNodeFlagValues): PkiOperator {
  return {
    certsDir: certsDirOf(flags['certs-dir']),
    clientName: validateName('client name', flags.client),
    timeoutMs: flags.timeout,
  };
}

/** The node of --node / RDBNET_NODE, parsed (a bad address is RDB_USAGE, exit 64). */
export function targetNode(flags: { node?: string | undefined }): NodeTarget {
  return nodeTargets([flags.node ?? defaultNodeAddress()], '--node address')[0]!;
}

/** The nodes named by --nodes, or else the one of --node / RDBNET_NODE; all parsed before
 * anything is written or sent. */
export async function targetNodes(flags: {
  nodes?: string | undefined;
  node?: string | undefined;
}): Promise<NodeTarget[]> {
  if (flags.nodes === undefined) return [targetNode(flags)];
  return nodeTargets(await readList(flags.nodes, '--nodes'), 'address in --nodes');
}

/** Nodes refuse a certificate whose role may not do the operation; say what to do. */
export function withForbiddenHint<T>(work: Promise<T>): Promise<T> {
  return withHints(work, { [ErrorCode.Forbidden]: FORBIDDEN_HINT });
}

/**
 * A value a person can be asked for: asked with inquirer on an interactive terminal (never
 * with --json), else `fallback`, else a usage error naming the flag.
 */
export async function askIfMissing(
  value: string | undefined,
  opts: { flag: string; message: string; json: boolean; fallback?: string; kind: string },
): Promise<string> {
  if (value !== undefined) return validateName(opts.kind, value);
  if (!opts.json && interactive()) {
    const { input } = await import('@inquirer/prompts');
    const answer = await input(
      {
        message: opts.message,
        ...(opts.fallback === undefined ? {} : { default: opts.fallback }),
        validate: (text: string) => {
          try {
            validateName(opts.kind, text);
            return true;
          } catch (error) {
            return (error as Error).message;
          }
        },
      },
      { output: process.stderr },
    );
    return validateName(opts.kind, answer);
  }
  if (opts.fallback !== undefined) return opts.fallback;
  throw new RdbnetError(ErrorCode.Usage, `missing required flag --${opts.flag}`, {
    hint: `pass --${opts.flag}; it is only asked for on an interactive terminal`,
  });
}
