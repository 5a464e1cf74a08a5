import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../cli/base-command.ts';
import { ExitCode } from '../cli/exit-codes.ts';
import { nodeFlags, withNode } from '../cli/node-client.ts';
import { table } from '../cli/output.ts';
import { validateName } from '../core/security/identity.ts';

export interface PingResult {
  /** RTT in ms from each member (rows) to each other member (columns), measured by the
   * members themselves; without --all, the asked node's row only. */
  matrix: Record<string, Record<string, number>>;
  /** Pairs that could not be measured (`to` empty: the member could not be asked at all). */
  errors: { from: string; to: string; code: string }[];
}

export default class Ping extends RdbnetCommand<PingResult> {
  static override summary = 'Round-trip times between members, measured by the nodes themselves.';
  static override description =
    'The node given by --node measures the RTT of an echo over an open connection to the ' +
    'member --to, or to every alive member. With --all it also asks every alive member for its ' +
    'own measurements: the whole matrix. Exit 1 when a pair could not be measured.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --to n2',
    '<%= config.bin %> <%= command.id %> --all --json | jq .matrix',
  ];
  static override flags = {
    ...nodeFlags,
    to: Flags.string({
      description: 'Id of one member to measure.',
      helpValue: 'id',
      exclusive: ['all'],
    }),
    all: Flags.boolean({ description: 'Every pair of alive members.', exclusive: ['to'] }),
  };

  protected override async execute(): Promise<PingResult> {
    const { flags } = await this.parse(Ping);
    const to = flags.to === undefined ? '' : validateName('node id', flags.to);
    const reply = await withNode(flags, async (node) => {
      const asked = flags.all
        ? { to: '', all: true, forwarded: false }
        : // Without --to: every member, from the asked node only.
          { to, all: to === '', forwarded: to === '' };
      return node.ask('pingRequest', asked);
    });
    const matrix: PingResult['matrix'] = {};
    const errors: PingResult['errors'] = [];
    for (const row of reply.rtts ?? []) {
      if (row.error !== '' || row.rttMs < 0) {
        errors.push({ from: row.from, to: row.to, code: row.error });
        continue;
      }
      matrix[row.from] ??= {};
      matrix[row.from]![row.to] = Number(row.rttMs.toFixed(3));
    }
    return { matrix, errors };
  }

  protected override exitCodeFor(result: PingResult): number {
    return result.errors.length === 0 ? ExitCode.Ok : ExitCode.Failed;
  }

  protected override render(result: PingResult): void {
    const ids = [
      ...new Set([
        ...Object.keys(result.matrix),
        ...Object.values(result.matrix).flatMap(Object.keys),
      ]),
    ].sort();
    this.log(
      table(
        ['from \\ to (ms)', ...ids],
        Object.keys(result.matrix)
          .sort()
          .map((from) => [
            from,
            ...ids.map((to) => {
              const rtt = result.matrix[from]![to];
              return rtt === undefined ? '-' : rtt.toFixed(3);
            }),
          ]),
      ),
    );
    for (const error of result.errors) {
      this.log(`${error.from} → ${error.to || '?'}: ${error.code}`);
    }
  }
}
