import { RdbnetCommand } from '../../cli/base-command.ts';
import { pkiNodeFlags, pkiOperator, targetNode, withForbiddenHint } from '../../cli/certs-flags.ts';
import { keyValueTable, withSpinner } from '../../cli/output.ts';
import { type IdentityProof, verifyNode } from '../../core/pki/verification.ts';

export default class CertsVerify extends RdbnetCommand<IdentityProof> {
  static override summary = 'Check that a node holds the key of the certificate it presents.';
  static override description =
    'Proof of possession: sends a fresh random 32-byte nonce, checks the signature the node ' +
    'returns against the public key of the certificate it presented in this TLS session, and ' +
    'checks that certificate chains to a CA in the local ca.crt, is valid now and names the ' +
    'node. Exit 0 when verified, 1 when verification fails, 69 when the node cannot be reached.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001 --json',
  ];
  static override flags = { ...pkiNodeFlags };

  protected override async execute(): Promise<IdentityProof> {
    const { flags } = await this.parse(CertsVerify);
    const target = targetNode(flags);
    const operator = pkiOperator(flags);
    return withSpinner(`verifying ${target.node}`, this.json, () =>
      withForbiddenHint(verifyNode(operator, target)),
    );
  }

  protected override render(result: IdentityProof): void {
    this.log(
      keyValueTable([
        ['verified', result.verified],
        ['node', `${result.nodeId} at ${result.node}`],
        ['serial', result.serial],
        ['issuer', result.issuer],
        ['expires', result.notAfter],
        ['proof', result.algorithm],
      ]),
    );
  }
}
