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
import { readList } from '../../cli/lists.ts';
import { keyValueTable } from '../../cli/output.ts';
import { type IssueResult, issueLeaf } from '../../core/pki/local-create.ts';

const DEFAULT_HOSTS = 'localhost,127.0.0.1,::1';

export default class CertsIssue extends RdbnetCommand<IssueResult> {
  static override summary = 'Issue a node certificate signed by the cluster CA.';
  static override description =
    'Writes node.<id>.crt and node.<id>.key (mode 0600) into --certs-dir, signed by ca.key there. ' +
    'The certificate carries the identity rdbnet://<cluster>/node/<id> (cluster from the CA) and ' +
    'the DNS names and IP addresses of --host. An existing certificate for the id is never ' +
    'replaced without --overwrite (exit 1).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node-id n1 --host 127.0.0.1,localhost',
    'echo 127.0.0.2 | <%= config.bin %> <%= command.id %> --node-id n2 --host - --json',
  ];
  static override flags = {
    'node-id': Flags.string({ description: 'Node id.', helpValue: 'id' }),
    host: Flags.string({
      description: `DNS names and IP addresses of the node, comma-separated; \`-\` reads them from stdin. [default: ${DEFAULT_HOSTS}]`,
      helpValue: 'h1,h2',
    }),
    days: daysFlag(365, 'certificate'),
    'key-bits': keyBitsFlag,
    overwrite: overwriteFlag,
    ...certsDirFlag,
  };

  protected override async execute(): Promise<IssueResult> {
    const { flags } = await this.parse(CertsIssue);
    const nodeId = await askIfMissing(flags['node-id'], {
      flag: 'node-id',
      kind: 'node id',
      message: 'Node id',
      json: this.json,
    });
    return issueLeaf({
      dir: certsDirOf(flags['certs-dir']),
      kind: 'node',
      name: nodeId,
      hosts: await readList(flags.host ?? DEFAULT_HOSTS, '--host'),
      days: flags.days,
      keyBits: keyBitsOf(flags['key-bits']),
      overwrite: flags.overwrite,
    });
  }

  protected override render(result: IssueResult): void {
    this.log(issuedTable(result));
  }
}

export function issuedTable(result: IssueResult): string {
  return keyValueTable([
    ['identity', result.identity],
    ['role', result.role],
    ['serial', result.serial],
    ['expires', result.notAfter],
    ...(result.hosts.length > 0 ? [['hosts', result.hosts.join(', ')] as [string, string]] : []),
    ['certificate', result.file],
    ['key', result.keyFile],
  ]);
}
