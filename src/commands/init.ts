import { resolve } from 'node:path';
import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../cli/base-command.ts';
import {
  checkInitPlan,
  defaultInitNodes,
  INIT_NODES_MAX,
  type InitNode,
  type InitPlan,
  type InitResult,
  parseInitNodes,
  writeInitPlan,
} from '../cli/init-plan.ts';
import { interactive, table } from '../cli/output.ts';
import { DEFAULT_CLUSTER } from '../core/config/home.ts';

/** Where the systemd unit keeps a node's state (its StateDirectory). */
const SYSTEMD_ROOT = '/var/lib/rdbnet';

export default class Init extends RdbnetCommand<InitResult> {
  static override summary = 'Make a new cluster: CA, certificates, keyring and a config per node.';
  static override description =
    'Writes into --dir (new or empty): certs/ (the CA, gossip keyring, a node certificate per ' +
    'node, an admin client certificate) and <id>.json per node, each joining the others with ' +
    'bootstrapExpect set to the number of nodes; with --systemd also rdbnet@.service. On an ' +
    'interactive terminal, values not given as flags are asked for; in a script they take their ' +
    'defaults (three nodes on 127.0.0.1:7001-7003). Everything is checked before the first file ' +
    'is written: a refused init creates nothing.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --cluster prod --nodes n1=db1.internal:7000,n2=db2.internal:7000,n3=db3.internal:7000 --systemd --dir ./prod',
  ];
  static override flags = {
    cluster: Flags.string({
      description: `Cluster name, carried in every certificate. [default: ${DEFAULT_CLUSTER}]`,
      helpValue: 'name',
    }),
    nodes: Flags.string({
      description:
        'The nodes, as id=host:port separated by commas (ids may be left out: n1, n2, …). [default: n1..n3 on 127.0.0.1:7001-7003]',
      helpValue: 'id=host:port,…',
    }),
    dir: Flags.string({
      description: 'Directory to write into (new or empty).',
      default: './rdbnet-cluster',
      helpValue: 'dir',
    }),
    root: Flags.string({
      description: `Where the nodes keep their data (<root>/<id>) and find certs/ (<root>/certs). [default: --dir, or ${SYSTEMD_ROOT} with --systemd]`,
      helpValue: 'dir',
    }),
    systemd: Flags.boolean({
      description: 'Also write the systemd template unit (rdbnet@.service).',
    }),
  };

  protected override async execute(): Promise<InitResult> {
    const { flags } = await this.parse(Init);
    const ask = !this.json && interactive();
    const cluster =
      flags.cluster ?? (ask ? await askText('Cluster name', DEFAULT_CLUSTER) : DEFAULT_CLUSTER);
    const nodes =
      flags.nodes !== undefined
        ? parseInitNodes(flags.nodes)
        : ask
          ? await askNodes()
          : defaultInitNodes(3);
    const dir = resolve(flags.dir);
    const plan: InitPlan = {
      cluster,
      nodes,
      dir,
      root: resolve(flags.root ?? (flags.systemd ? SYSTEMD_ROOT : dir)),
      systemd: flags.systemd,
    };
    await checkInitPlan(plan);
    return writeInitPlan(plan);
  }

  protected override render(result: InitResult): void {
    this.log(`cluster ${result.cluster} in ${result.dir}`);
    this.log(
      table(
        ['id', 'address', 'config', 'start with'],
        result.nodes.map((node) => [node.id, node.address, node.config, node.start]),
      ),
    );
    this.log(`certificates: ${result.certsDir} (admin client: ${result.adminCertificate})`);
    if (result.systemdUnit !== null) this.log(`systemd unit: ${result.systemdUnit}`);
  }
}

async function askText(message: string, fallback: string): Promise<string> {
  const { input } = await import('@inquirer/prompts');
  return input({ message, default: fallback }, { output: process.stderr });
}

async function askNodes(): Promise<InitNode[]> {
  const { number } = await import('@inquirer/prompts');
  const count =
    (await number(
      { message: 'How many nodes', default: 3, min: 1, max: INIT_NODES_MAX, required: true },
      { output: process.stderr },
    )) ?? 3;
  const nodes: InitNode[] = [];
  for (const fallback of defaultInitNodes(count)) {
    const id = await askText(`Node ${nodes.length + 1}: id`, fallback.id);
    const address = await askText(`Node ${id}: address (host:port)`, fallback.address);
    nodes.push({ id, address });
  }
  return nodes;
}
