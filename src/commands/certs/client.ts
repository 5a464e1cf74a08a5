import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import {
  askIfMissing,
  certsDirFlag,
  certsDirOf,
  daysFlag,
  keyBitsFlag,
  keyBitsOf,
  overwriteFlag,
} from '../../cli/certs-flags.ts';
import { type IssueResult, issueLeaf } from '../../core/pki/local-create.ts';
import { CLIENT_ROLES, parseClientRole } from '../../core/security/identity.ts';
import { issuedTable } from './issue.ts';

export default class CertsClient extends RdbnetCommand<IssueResult> {
  static override summary = 'Issue a client certificate for an operator or a tool.';
  static override description =
    'Writes client.<name>.crt and client.<name>.key (mode 0600) into --certs-dir, signed by ' +
    'ca.key there, with the identity rdbnet://<cluster>/client/<name> and its role (URI SAN ' +
    'urn:rdbnet:role:<role>). Role read may ask nodes (status, health, members, events, cluster ' +
    'status, keys list, certs verify); admin may also change things (certs rotate and revoke, ' +
    'keys install/use/remove, cluster bootstrap, join, leave, transfer-leader). Commands use it ' +
    'with --client <name>. An existing certificate is never replaced without --overwrite (exit 1).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --name admin --role admin',
    '<%= config.bin %> <%= command.id %> --name dashboard',
    '<%= config.bin %> <%= command.id %> --name backup --days 30 --json',
  ];
  static override flags = {
    name: Flags.string({ description: 'Client name.', helpValue: 'name' }),
    role: Flags.string({
      description: 'What the certificate may do on nodes: read (ask) or admin (ask and change).',
      options: [...CLIENT_ROLES],
      default: 'read',
    }),
    days: daysFlag(365, 'certificate'),
    'key-bits': keyBitsFlag,
    overwrite: overwriteFlag,
    ...certsDirFlag,
  };

  protected override async execute(): Promise<IssueResult> {
    const { flags } = await this.parse(CertsClient);
    const name = await askIfMissing(flags.name, {
      flag: 'name',
      kind: 'client name',
      message: 'Client name',
      json: this.json,
    });
    return issueLeaf({
      dir: certsDirOf(flags['certs-dir']),
      kind: 'client',
      name,
      role: parseClientRole(flags.role),
      hosts: [],
      days: flags.days,
      keyBits: keyBitsOf(flags['key-bits']),
      overwrite: flags.overwrite,
    });
  }

  protected override render(result: IssueResult): void {
    this.log(issuedTable(result));
  }
}
