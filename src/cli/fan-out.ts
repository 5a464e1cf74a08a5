/**
 * `--node a,b,c` on a read-only command (like etcdctl's --endpoints): the command runs once per
 * node, one after another, and the answers are merged into one result that names the node of
 * each. Every address is checked before any node is asked.
 */
import { ErrorCode, RdbnetError } from '../core/errors.ts';
import { parseHostPort } from '../core/transport/address.ts';

/** At most this many nodes in one fanned-out command. */
export const FAN_OUT_NODES_MAX = 32;

/** One node's answer, or why it gave none. */
export type FanOutAnswer<Result> =
  | { node: string; result: Result }
  | { node: string; error: { code: string; message: string } };

/** The merged result: `--json` prints exactly this. */
export interface FanOutResult<Result> {
  nodes: FanOutAnswer<Result>[];
}

/** The comma-separated --node of `argv` (else RDBNET_NODE), or null when it names one node. */
export function fanOutNodes(argv: readonly string[], env: NodeJS.ProcessEnv): string[] | null {
  let value: string | undefined;
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    if (arg === '--') break;
    if (arg === '--node') value = argv[index + 1];
    else if (arg.startsWith('--node=')) value = arg.slice('--node='.length);
  }
  value ??= env['RDBNET_NODE'] || undefined;
  if (value === undefined || !value.includes(',')) return null;
  const nodes = value
    .split(',')
    .map((node) => node.trim())
    .filter((node) => node !== '');
  if (nodes.length > FAN_OUT_NODES_MAX) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `--node names ${nodes.length} nodes; at most ${FAN_OUT_NODES_MAX} at once`,
    );
  }
  for (const node of nodes) parseHostPort(node, 'address in --node');
  return [...new Set(nodes)];
}

/** `argv` asking one node: its --node replaced (or added, when it came from RDBNET_NODE). */
export function argvForNode(argv: readonly string[], node: string): string[] {
  const out: string[] = [];
  let replaced = false;
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    if (arg === '--node') {
      out.push('--node', node);
      index++;
      replaced = true;
    } else if (arg.startsWith('--node=')) {
      out.push(`--node=${node}`);
      replaced = true;
    } else out.push(arg);
  }
  return replaced ? out : ['--node', node, ...out];
}
