import { basename } from 'node:path';
import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { certsDirFlag, certsDirOf } from '../../cli/certs-flags.ts';
import { ExitCode } from '../../cli/exit-codes.ts';
import { table } from '../../cli/output.ts';
import { type CertificateEntry, listCertificates } from '../../core/pki/local-inventory.ts';

export interface CertsListResult {
  dir: string;
  certificates: CertificateEntry[];
  /** Number of certificates with at least one problem. */
  problems: number;
}

export default class CertsList extends RdbnetCommand<CertsListResult> {
  static override summary = 'List the certificates of the certificates directory.';
  static override description =
    'Every certificate of --certs-dir (each CA of the ca.crt bundle, node.<id>.crt, ' +
    'client.<name>.crt) with its role (read or admin for clients, node for nodes), serial, ' +
    'expiry, days left and problems: expired or not yet valid, key missing or not matching, key ' +
    'file mode wider than 0600, not signed by a CA in ca.crt, identity not matching the file ' +
    'name, serial revoked, a client certificate naming no role (made before roles: read). Problems are reported, not ' +
    'failed on: the exit code is 0 unless --strict is given, then 1 when any certificate has a ' +
    'problem.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    "<%= config.bin %> <%= command.id %> --json | jq '.certificates[] | select(.daysLeft < 30)'",
    '<%= config.bin %> <%= command.id %> --strict',
  ];
  static override flags = {
    strict: Flags.boolean({ description: 'Exit 1 when any certificate has a problem.' }),
    ...certsDirFlag,
  };

  private strict = false;

  protected override async execute(): Promise<CertsListResult> {
    const { flags } = await this.parse(CertsList);
    this.strict = flags.strict;
    const dir = certsDirOf(flags['certs-dir']);
    const certificates = await listCertificates(dir);
    return {
      dir,
      certificates,
      problems: certificates.filter((entry) => entry.problems.length > 0).length,
    };
  }

  protected override render(result: CertsListResult): void {
    if (result.certificates.length === 0) {
      this.log(`no certificates in ${result.dir}`);
      return;
    }
    this.log(
      table(
        ['file', 'kind', 'role', 'subject', 'serial', 'expires', 'days left', 'problems'],
        result.certificates.map((entry) => [
          basename(entry.file),
          entry.kind,
          entry.role ?? '-',
          entry.identity ?? entry.subject,
          entry.serial,
          entry.notAfter.slice(0, 10),
          Math.floor(entry.daysLeft),
          entry.problems.join('\n'),
        ]),
      ),
    );
  }

  protected override exitCodeFor(result: CertsListResult): number {
    return this.strict && result.problems > 0 ? ExitCode.Failed : ExitCode.Ok;
  }
}
