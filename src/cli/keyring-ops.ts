/**
 * `rdbnet keys install|use|remove|list` against a running node: the node applies the change
 * to its own gossip keyring and forwards it to every alive member, replying per node.
 */
import { Args } from '@oclif/core';
import { ErrorCode, RdbnetError } from '../core/errors.ts';
import type { KeyringNodeResult, KeyringOp } from '../core/protocol/messages.ts';
import { decodeKey } from '../core/security/keyring.ts';
import { RdbnetCommand } from './base-command.ts';
import { ExitCode } from './exit-codes.ts';
import { type NodeFlagValues, nodeFlags, withNode } from './node-client.ts';
import { table } from './output.ts';

export const keyArg = {
  key: Args.string({
    description: 'The gossip key, base64 (32 bytes; `rdbnet keys generate` makes one).',
    required: true,
  }),
};

/** One node's answer as the CLI prints it. */
export interface KeyNodeResult {
  node: string;
  address: string;
  ok: boolean;
  /** Present when ok is false. */
  error?: string;
  /** False when the node already was in the asked state. */
  changed: boolean;
}

export interface KeysChangeResult {
  op: Exclude<KeyringOp, 'list'>;
  /** True when every node that answered applied the change. */
  ok: boolean;
  results: KeyNodeResult[];
  /** Present when ok is false, as docs/CLI.md shapes errors. */
  error?: { code: string; message: string };
}

/** Asks the node named by the flags; the key is checked here first (a typo fails at once). */
export async function keyringRequest(
  flags: NodeFlagValues,
  op: KeyringOp,
  key: string,
): Promise<KeyringNodeResult[]> {
  if (op !== 'list') {
    try {
      decodeKey(key).fill(0);
    } catch (error) {
      // A bad argument is a usage error (exit 64), not a failed operation.
      throw new RdbnetError(ErrorCode.Usage, `KEY: ${(error as Error).message}`, {
        hint: 'generate one with `rdbnet keys generate`',
      });
    }
  }
  const reply = await withNode(flags, (node) =>
    node.ask('keyringRequest', { op, key, forwarded: false }),
  );
  return reply.results;
}

export async function changeKeyring(
  flags: NodeFlagValues,
  op: Exclude<KeyringOp, 'list'>,
  key: string,
): Promise<KeysChangeResult> {
  const results = (await keyringRequest(flags, op, key)).map((result) => ({
    node: result.node,
    address: result.address,
    ok: result.ok,
    ...(result.ok ? {} : { error: result.error }),
    changed: result.changed,
  }));
  const failed = results.filter((result) => !result.ok);
  if (failed.length === 0) return { op, ok: true, results };
  return {
    op,
    ok: false,
    results,
    error: {
      code: ErrorCode.RemoteError,
      message: `${op} failed on ${failed.map((result) => result.node).join(', ')}: ${failed[0]!.error}`,
    },
  };
}

export function renderChange(result: KeysChangeResult, log: (line: string) => void): void {
  log(
    table(
      ['node', 'address', 'result'],
      result.results.map((r) => [
        r.node,
        r.address,
        r.ok ? (r.changed ? 'done' : 'unchanged') : `failed: ${r.error}`,
      ]),
    ),
  );
  if (result.error !== undefined) process.stderr.write(`Error: ${result.error.message}\n`);
}

/**
 * `keys install|use|remove`: the same request with a different operation. Each command file
 * only names its operation and documents it.
 */
export abstract class KeyringChangeCommand extends RdbnetCommand<KeysChangeResult> {
  static override args = keyArg;
  static override flags = { ...nodeFlags };
  protected abstract readonly op: Exclude<KeyringOp, 'list'>;

  protected override async execute(): Promise<KeysChangeResult> {
    // Every subclass has exactly these args and flags, so the base class describes them.
    const { args, flags } = await this.parse(KeyringChangeCommand);
    return changeKeyring(flags, this.op, args.key);
  }

  protected override render(result: KeysChangeResult): void {
    renderChange(result, (line) => this.log(line));
  }

  protected override exitCodeFor(result: KeysChangeResult): number {
    return result.ok ? ExitCode.Ok : ExitCode.Failed;
  }
}
