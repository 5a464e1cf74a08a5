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
import { keyValueTable } from '../../cli/output.ts';
import { DEFAULT_CLUSTER } from '../../core/config/home.ts';
import { type InitResult, initCa } from '../../core/pki/local-create.ts';

export default class CertsInit extends RdbnetCommand<InitResult> {
  static override summary = 'Create the cluster CA.';
  static override description =
    'Writes ca.crt and ca.key (mode 0600) into --certs-dir, and gossip.keyring (mode 0600, kept if it exists) for the nodes started from it. Without --cluster the name is asked ' +
    `for on an interactive terminal, and is '${DEFAULT_CLUSTER}' otherwise. An existing CA is ` +
    'never replaced without --overwrite (exit 1): every certificate it signed would stop being ' +
    'trusted. To replace a CA in a running cluster use `certs rotate --ca` instead.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --cluster prod',
    '<%= config.bin %> <%= command.id %> --cluster prod --days 1825 --key-bits 4096 --json',
  ];
  static override flags = {
    cluster: Flags.string({
      description: `Cluster name, carried in every certificate. [default: ${DEFAULT_CLUSTER}]`,
      helpValue: 'name',
    }),
    days: daysFlag(3650, 'CA certificate'),
    'key-bits': keyBitsFlag,
    overwrite: overwriteFlag,
    ...certsDirFlag,
  };

  protected override async execute(): Promise<InitResult> {
    const { flags } = await this.parse(CertsInit);
    const cluster = await askIfMissing(flags.cluster, {
      flag: 'cluster',
      kind: 'cluster name',
      message: 'Cluster name',
      json: this.json,
      fallback: DEFAULT_CLUSTER,
    });
    return initCa({
      dir: certsDirOf(flags['certs-dir']),
      cluster,
      days: flags.days,
      keyBits: keyBitsOf(flags['key-bits']),
      overwrite: flags.overwrite,
    });
  }

  protected override render(result: InitResult): void {
    this.log(
      keyValueTable([
        ['cluster', result.cluster],
        ['serial', result.serial],
        ['expires', result.notAfter],
        ['created', result.created.join('\n')],
        ...(result.removed.length > 0
          ? [['removed', result.removed.join('\n')] as [string, string]]
          : []),
      ]),
    );
  }
}
