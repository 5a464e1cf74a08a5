import { Args } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { certsDirFlag, certsDirOf } from '../../cli/certs-flags.ts';
import { keyValueTable } from '../../cli/output.ts';
import { type InspectResult, inspectFile } from '../../core/pki/local-inventory.ts';

export default class CertsInspect extends RdbnetCommand<InspectResult> {
  static override summary = 'Show one certificate file (or a bundle such as ca.crt) in detail.';
  static override description =
    'FILE is a path, or a file name in --certs-dir. Shows subject, issuer, serial, validity, ' +
    'identity, role (read or admin for clients, node for nodes), DNS names and IP addresses, SHA-256 fingerprint, the CA of ca.crt that signed ' +
    'it, and whether the key next to it (X.crt → X.key) matches.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> ca.crt',
    '<%= config.bin %> <%= command.id %> ./certs/node.n1.crt --json',
  ];
  static override args = {
    file: Args.string({ description: 'Certificate file (PEM).', required: true }),
  };
  static override flags = { ...certsDirFlag };

  protected override async execute(): Promise<InspectResult> {
    const { args, flags } = await this.parse(CertsInspect);
    return inspectFile(args.file, certsDirOf(flags['certs-dir']));
  }

  protected override render(result: InspectResult): void {
    this.log(result.file);
    for (const cert of result.certificates) {
      this.log(
        keyValueTable([
          ['kind', cert.kind],
          ['subject', cert.subject],
          ['issuer', cert.issuer],
          ['serial', cert.serial],
          ['valid from', cert.notBefore],
          ['valid until', `${cert.notAfter} (${Math.floor(cert.daysLeft)} days left)`],
          ['identity', cert.identityUri ?? '-'],
          ['role', cert.role ?? '-'],
          ['DNS names', cert.dnsNames.join(', ') || '-'],
          ['IP addresses', cert.ipAddresses.join(', ') || '-'],
          ['signed by', cert.signedBy ?? 'no CA in ca.crt'],
          ['SHA-256', cert.fingerprintSha256],
        ]),
      );
    }
    if (result.key !== null) {
      const matches = result.key.matches ? 'matches' : 'DOES NOT MATCH';
      this.log(`key ${result.key.file} (mode ${result.key.mode}): ${matches}`);
    }
  }
}
