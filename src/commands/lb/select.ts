import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { readListFlag } from '../../cli/lists.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { table, withSpinner } from '../../cli/output.ts';
import { ErrorCode, RdbnetError } from '../../core/errors.ts';
import {
  type LiveSelectResult,
  parseEndpointSpec,
  type SelectRequest,
  type SelectResult,
  STRATEGIES,
  type StrategyName,
  selectFromList,
  selectFromMembers,
  validateSelect,
} from '../../core/lb/index.ts';
import { seededRandom } from '../../core/runtime/index.ts';

export type LbSelectResult =
  | (SelectResult & { source: 'list' })
  | (LiveSelectResult & { source: 'live'; node: string });

export default class LbSelect extends RdbnetCommand<LbSelectResult> {
  static override summary = 'Pick nodes by a balancing strategy, over a list or a live cluster.';
  static override description =
    'With --nodes, chooses in-process among the given nodes (weights as id=weight; - reads them ' +
    'from stdin, one per line). Otherwise asks the node at --node for its gossip view and chooses among the alive ' +
    'members: dead, left and suspect (draining) members never. The hashing strategies (ring, maglev, ' +
    'rendezvous, bounded-load) need --key and give the same answer on every node with the same ' +
    'membership: they see only the sorted member ids, all of weight 1; the others weigh members by their ' +
    'health score. --count N returns N distinct nodes in preference order (replicas for a key).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --nodes a,b=3,c --key user:42',
    '<%= config.bin %> <%= command.id %> --nodes a,b,c --strategy rendezvous --key user:42 --count 2 --json',
    'printf "n1\\nn2=2\\nn3\\n" | <%= config.bin %> <%= command.id %> --nodes - --strategy weighted-round-robin',
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001 --key user:42 --strategy maglev',
  ];
  static override flags = {
    ...nodeFlags,
    nodes: Flags.string({
      description:
        'Choose among these nodes instead of a live cluster: comma-separated, id or id=weight; - reads stdin.',
      helpValue: 'a,b=3,c',
    }),
    strategy: Flags.string({
      char: 's',
      description: 'Balancing strategy.',
      options: [...STRATEGIES],
      default: 'maglev',
    }),
    key: Flags.string({
      char: 'k',
      description: 'Key of the request (needed by ring, maglev, rendezvous, bounded-load).',
      helpValue: 'key',
    }),
    count: Flags.integer({
      char: 'n',
      description: 'Distinct nodes to return, in preference order.',
      default: 1,
      min: 1,
      max: 10_000,
    }),
    seed: Flags.integer({
      description:
        'Seed for the random strategies (random, p2c, p2c-ewma), for a repeatable answer.',
      min: 0,
      max: 2 ** 32 - 1,
    }),
  };

  protected override async execute(): Promise<LbSelectResult> {
    const { flags } = await this.parse(LbSelect);
    const request: SelectRequest = {
      strategy: flags.strategy as StrategyName,
      key: flags.key ?? null,
      count: flags.count,
      ...(flags.seed === undefined ? {} : { random: seededRandom(flags.seed) }),
    };
    // Validate, then act: nothing is asked before the request is known to be sound.
    validateSelect(request);
    if (flags.nodes !== undefined) {
      if (flags.node !== undefined) {
        throw new RdbnetError(ErrorCode.Usage, '--nodes and --node exclude each other', {
          hint: '--nodes chooses among a given list; --node asks a live cluster',
        });
      }
      const text = await readListFlag(flags.nodes, '--nodes');
      const endpoints = text
        .split(/[\s,]+/)
        .filter((item) => item !== '')
        .map((spec) => parseEndpointSpec(spec, '--nodes'));
      return { ...selectFromList(endpoints, request), source: 'list' };
    }
    const reply = await withSpinner('asking the node', this.json, () =>
      withNode(flags, (node) => node.ask('membersRequest', {})),
    );
    const members = reply.members.map((member) => ({
      id: member.id,
      address: member.address,
      state: member.state,
      score: member.score,
      rttMs: member.rttMs < 0 ? null : member.rttMs,
    }));
    return { ...selectFromMembers(members, request), source: 'live', node: reply.id };
  }

  protected override render(result: LbSelectResult): void {
    const live = result.source === 'live';
    this.log(
      table(
        live ? ['#', 'node', 'address'] : ['#', 'node'],
        result.nodes.map((id, rank) =>
          live ? [rank + 1, id, result.addresses[rank] ?? ''] : [rank + 1, id],
        ),
      ),
    );
    const key = result.key === null ? '' : ` for key ${JSON.stringify(result.key)}`;
    const from = live ? `live members seen by ${result.node}` : 'nodes given';
    this.log(`${result.strategy}${key}, among ${result.candidates} ${from}`);
    if (live && result.excluded.length > 0) {
      this.log(
        `left out: ${result.excluded.map((entry) => `${entry.id} (${entry.reason})`).join(', ')}`,
      );
    }
  }
}
