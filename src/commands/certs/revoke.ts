import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import {
  nodesFlag,
  pkiNodeFlags,
  pkiOperator,
  targetNodes,
  withForbiddenHint,
} from '../../cli/certs-flags.ts';
import { ExitCode } from '../../cli/exit-codes.ts';
import { readList } from '../../cli/lists.ts';
import { table, withSpinner } from '../../cli/output.ts';
import { type RevokeResult, revokeSerials } from '../../core/pki/revocation.ts';

export default class CertsRevoke extends RdbnetCommand<RevokeResult> {
  static override summary = 'Revoke certificates by serial and push the list to nodes.';
  static override description =
    'Adds the serials to revoked.txt in --certs-dir and sends the whole list to each node of ' +
    '--nodes (default: --node / RDBNET_NODE), which refuses them on every new connection; open ' +
    'connections are not cut. Exit 1 when any node could not be updated (re-run to retry).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --serial 5A3F09C1 --nodes 127.0.0.1:7001,127.0.0.1:7002',
    '<%= config.bin %> certs inspect client.old.crt --json | jq -r .certificates[0].serial | ' +
      '<%= config.bin %> <%= command.id %> --serial - --json',
  ];
  static override flags = {
    serial: Flags.string({
      description:
        'Serial(s) to revoke, hex, comma-separated (colons allowed); `-` reads them from stdin.',
      required: true,
      helpValue: 'hex',
    }),
    nodes: nodesFlag(),
    ...pkiNodeFlags,
  };

  protected override async execute(): Promise<RevokeResult> {
    const { flags } = await this.parse(CertsRevoke);
    const serials = await readList(flags.serial, '--serial');
    const nodes = await targetNodes(flags);
    const operator = pkiOperator(flags);
    return withSpinner('pushing the revocation list', this.json, () =>
      withForbiddenHint(revokeSerials(operator, nodes, serials)),
    );
  }

  protected override render(result: RevokeResult): void {
    this.log(`${result.revoked.length} serial(s) revoked in ${result.file}`);
    this.log(
      table(
        ['node', 'ok', 'revoked', 'error'],
        result.nodes.map((step) => [step.node, step.ok, step.revoked ?? '-', step.error ?? '']),
      ),
    );
  }

  protected override exitCodeFor(result: RevokeResult): number {
    return result.nodes.every((step) => step.ok) ? ExitCode.Ok : ExitCode.Failed;
  }
}
