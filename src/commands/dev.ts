import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../cli/base-command.ts';
import { checkPortsFree, DEV_NODES_MAX, DevCluster, type DevNode } from '../cli/dev-cluster.ts';
import { printJson, table } from '../cli/output.ts';
import { ErrorCode, RdbnetError } from '../core/errors.ts';

export interface DevResult {
  /** RDBNET_HOME of the nodes: `export RDBNET_HOME=<dir>` to ask them with other commands. */
  dir: string;
  nodes: DevNode[];
}

export default class Dev extends RdbnetCommand<DevResult> {
  static override summary = 'Run a local cluster of real nodes in one command (Ctrl-C stops all).';
  static override description =
    'Starts --nodes node processes on 127.0.0.1, ports --base-port upwards, which bootstrap one ' +
    'cluster by themselves. Certificates and data dirs go under --dir (default: a new temporary ' +
    'directory), which is their RDBNET_HOME. Prints the nodes once they listen (--json: one JSON ' +
    'document), then their logs on stderr, each line prefixed with the node id. Ctrl-C or SIGTERM ' +
    'stops every node and exits 0; a node that exits by itself stops the others (exit 1). ' +
    'Ports in use are refused before anything is created (exit 64).';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --nodes 5 --base-port 7201 --dir ./dev-cluster',
  ];
  static override flags = {
    nodes: Flags.integer({
      description: `How many nodes (1-${DEV_NODES_MAX}).`,
      default: 3,
      min: 1,
      max: DEV_NODES_MAX,
    }),
    'base-port': Flags.integer({
      description: 'Port of n1 on 127.0.0.1; n2 takes the next one, and so on.',
      default: 7101,
      min: 1,
      max: 65535 - DEV_NODES_MAX,
    }),
    dir: Flags.string({
      description: 'Directory for certificates and data dirs (kept; reused on the next run).',
      helpValue: 'dir',
    }),
    'log-level': Flags.string({
      description: 'Log level of the nodes.',
      options: ['debug', 'info', 'warn', 'error'],
      default: 'info',
    }),
  };

  protected override async execute(): Promise<DevResult> {
    const { flags } = await this.parse(Dev);
    const plan = {
      nodes: flags.nodes,
      basePort: flags['base-port'],
      dir: flags.dir === undefined ? '' : resolve(flags.dir),
      logLevel: flags['log-level'],
    };
    await checkPortsFree(plan);
    plan.dir ||= await mkdtemp(join(tmpdir(), 'rdbnet-dev-'));
    const cluster = new DevCluster(plan, (line) => process.stderr.write(`${line}\n`));
    const stopRequested = new Promise<void>((done) => {
      process.once('SIGINT', () => done());
      process.once('SIGTERM', () => done());
    });
    const nodes = await Promise.race([cluster.start(), stopRequested.then(() => null)]);
    if (nodes === null) {
      await cluster.stop();
      return { dir: plan.dir, nodes: [] };
    }
    const result = { dir: plan.dir, nodes };
    if (this.json) printJson(result);
    else this.render(result);
    const exited = await Promise.race([stopRequested.then(() => null), cluster.firstExit]);
    await cluster.stop();
    if (exited !== null) {
      throw new RdbnetError(
        ErrorCode.DevNodeFailed,
        `${exited.id} exited with code ${exited.code}; every node was stopped`,
      );
    }
    return result;
  }

  protected override render(result: DevResult): void {
    this.log(
      table(
        ['id', 'address', 'data dir', 'pid'],
        result.nodes.map((node) => [node.id, node.address, node.dataDir, node.pid]),
      ),
    );
    this.log(
      `export RDBNET_HOME=${result.dir}   # then: rdbnet cluster status --node ${result.nodes[0]?.address}`,
    );
    this.log('Ctrl-C stops every node.');
  }

  /** Everything was said while running. */
  override async run(): Promise<DevResult> {
    const result = await this.execute();
    process.exitCode = 0;
    return result;
  }
}
