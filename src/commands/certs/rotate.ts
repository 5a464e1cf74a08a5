import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import {
  daysFlag,
  keyBitsFlag,
  keyBitsOf,
  nodesFlag,
  pkiNodeFlags,
  pkiOperator,
  targetNode,
  targetNodes,
  withForbiddenHint,
} from '../../cli/certs-flags.ts';
import { ExitCode } from '../../cli/exit-codes.ts';
import { keyValueTable, table, withSpinner } from '../../cli/output.ts';
import {
  type CaRotationResult,
  finishCaRotation,
  startCaRotation,
} from '../../core/pki/ca-rotation.ts';
import { type NodeRotation, rotateNodeCertificate } from '../../core/pki/node-rotation.ts';

export type CertsRotateResult = NodeRotation | CaRotationResult;

export default class CertsRotate extends RdbnetCommand<CertsRotateResult> {
  static override summary = "Rotate a node's certificate, or the cluster CA.";
  static override description =
    'Without --ca: the node at --node makes a new key and a CSR, the CA of --certs-dir signs it ' +
    '(same identity and hosts), the node presents it on new connections (open ones continue), and ' +
    'a fresh connection checks the new serial.\n\n' +
    'With --ca, phase 1: a new CA for the same cluster signs from now on (ca.key; the old key is ' +
    'kept as ca.previous.key), ca.crt becomes [new, old] and is pushed to every node of --nodes ' +
    'before any certificate changes; then each node certificate is rotated to the new CA and the ' +
    'local client certificates are re-signed (same names and keys). Run again to resume after a ' +
    'failure or to move more nodes.\n\n' +
    'With --ca --finish, phase 2: refused (exit 1) while a node of --nodes or a certificate in ' +
    '--certs-dir is still signed by the old CA; otherwise the trust bundle of every node, then ' +
    'ca.crt, shrinks to the new CA and ca.previous.key is removed. Exit 1 when a node step fails.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --ca --nodes 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003',
    '<%= config.bin %> <%= command.id %> --ca --finish --nodes 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003',
  ];
  static override flags = {
    ca: Flags.boolean({
      description: 'Rotate the cluster CA (phase 1, or phase 2 with --finish).',
    }),
    finish: Flags.boolean({
      description: 'Finish a CA rotation: drop the old CA everywhere.',
      dependsOn: ['ca'],
    }),
    nodes: nodesFlag(['ca']),
    days: daysFlag(365, 'new node and client certificates'),
    'ca-days': daysFlag(3650, 'new CA certificate'),
    'key-bits': keyBitsFlag,
    ...pkiNodeFlags,
  };

  protected override async execute(): Promise<CertsRotateResult> {
    const { flags } = await this.parse(CertsRotate);
    const keyBits = keyBitsOf(flags['key-bits']);
    const operator = pkiOperator(flags);
    if (!flags.ca) {
      const target = targetNode(flags);
      return withSpinner(`rotating the certificate of ${target.node}`, this.json, () =>
        withForbiddenHint(rotateNodeCertificate(operator, target, { days: flags.days, keyBits })),
      );
    }
    const nodes = await targetNodes(flags);
    if (flags.finish) {
      return withSpinner('finishing the CA rotation', this.json, () =>
        withForbiddenHint(finishCaRotation(operator, nodes)),
      );
    }
    return withSpinner('rotating the CA', this.json, () =>
      withForbiddenHint(
        startCaRotation(operator, nodes, { caDays: flags['ca-days'], days: flags.days, keyBits }),
      ),
    );
  }

  protected override render(result: CertsRotateResult): void {
    if ('rotated' in result) {
      this.log(
        keyValueTable([
          ['node', `${result.nodeId} at ${result.node}`],
          ['serial', `${result.previousSerial} → ${result.serial}`],
          ['expires', result.notAfter],
        ]),
      );
      return;
    }
    const phase = result.phase === 'start' ? 'CA rotation phase 1' : 'CA rotation finished';
    this.log(`${phase}${result.resumed ? ' (resumed)' : ''}${result.ok ? '' : ': INCOMPLETE'}`);
    this.log(
      keyValueTable([
        ['cluster', result.cluster],
        ['new CA', `${result.ca.serial} (until ${result.ca.notAfter})`],
        ['old CA', result.previousCa?.serial ?? '-'],
        ['trust bundle', result.bundle.join('\n')],
        ...(result.removed.length > 0
          ? [['removed', result.removed.join('\n')] as [string, string]]
          : []),
      ]),
    );
    this.log(
      table(
        ['node', 'ok', 'id', 'bundle', 'certificate', 'error'],
        result.nodes.map((step) => [
          step.node,
          step.ok,
          step.nodeId ?? '',
          step.bundle ?? '',
          step.rotated
            ? `${step.rotated.previousSerial} → ${step.rotated.serial}`
            : (step.skipped ?? step.serial ?? ''),
          step.error ?? '',
        ]),
      ),
    );
    for (const client of result.clients) {
      this.log(`re-signed ${client.file}: ${client.previousSerial} → ${client.serial}`);
    }
    for (const file of result.skipped) {
      this.log(`left alone ${file.file} (serial ${file.serial}): ${file.reason}`);
    }
  }

  protected override exitCodeFor(result: CertsRotateResult): number {
    return 'rotated' in result || result.ok ? ExitCode.Ok : ExitCode.Failed;
  }
}
