import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { readListFlag } from '../../cli/lists.ts';
import { printJson } from '../../cli/output.ts';
import {
  type NodeConfigFile,
  readConfigFile,
  resolveNodeConfig,
} from '../../core/config/node-config.ts';
import { RdbnetNode } from '../../core/node/node.ts';
import { createLogger, parseLogLevel } from '../../core/runtime/log.ts';

export interface NodeStartResult {
  id: string;
  clusterId: string;
  address: string;
  listen: string;
  tls: boolean;
  dataDir: string;
  certsDir: string | null;
  pid: number;
}

/** A stop must finish within 5 s even if a connection refuses to close. */
const STOP_DEADLINE_MS = 4500;

export default class NodeStart extends RdbnetCommand<NodeStartResult> {
  static override summary = 'Run a node in the foreground.';
  static override description =
    'With no flags: a single node under $RDBNET_HOME (default ~/.rdbnet) listening on 127.0.0.1:7000, ' +
    'with a cluster CA, a node certificate and an admin client certificate created in $RDBNET_HOME/certs on first start. ' +
    'Logs go to stderr; SIGINT or SIGTERM stops the node gracefully within 5 seconds; SIGHUP reloads its certificates. ' +
    'With --json, one JSON document describing the running node is printed on stdout once it listens.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --id n2 --listen 127.0.0.1:7002 --data-dir ./n2',
    '<%= config.bin %> <%= command.id %> --config node.json --json',
    '<%= config.bin %> <%= command.id %> --id n2 --listen 127.0.0.1:7002 --data-dir ./n2 --join 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --id n1 --join 127.0.0.1:7002,127.0.0.1:7003 --bootstrap-expect 3',
  ];
  static override flags = {
    id: Flags.string({
      description: 'Node id (default: recorded in the data dir, or generated on first start).',
    }),
    'data-dir': Flags.string({
      description: 'Data directory. [default: $RDBNET_HOME/node]',
      helpValue: 'dir',
    }),
    listen: Flags.string({
      description: 'Address to listen on. [default: 127.0.0.1:7000]',
      helpValue: 'host:port',
    }),
    advertise: Flags.string({
      description: 'Address others use to reach this node. [default: --listen]',
      helpValue: 'host:port',
    }),
    'certs-dir': Flags.string({
      description:
        'Certificates directory. [env: RDBNET_CERTS_DIR; default: $RDBNET_HOME/certs, created if missing]',
      helpValue: 'dir',
    }),
    insecure: Flags.boolean({
      description: 'Plaintext TCP without authentication. For tests and trusted networks only.',
    }),
    join: Flags.string({
      description:
        'Seed addresses of other nodes, comma-separated, or - to read them from stdin. The node waits for a cluster: ' +
        'it joins one the seeds belong to (as a learner, promoted to voter once caught up), or becomes a founding member ' +
        'when `rdbnet cluster bootstrap` runs (an empty list waits to be found by others). Without --join a new node ' +
        'bootstraps itself as a single-node cluster.',
      helpValue: 'host:port,…',
    }),
    'bootstrap-expect': Flags.integer({
      description:
        'Bootstrap automatically once this many nodes started with the same value know each other (the lowest id founds the cluster).',
      min: 1,
      max: 64,
      helpValue: 'n',
    }),
    config: Flags.string({
      description: 'JSON config file; flags override its fields.',
      helpValue: 'file',
    }),
    'log-level': Flags.string({
      description: 'debug, info, warn or error.',
      default: 'info',
      options: ['debug', 'info', 'warn', 'error'],
    }),
  };

  protected override async execute(): Promise<NodeStartResult> {
    const { flags } = await this.parse(NodeStart);
    const join = flags.join === undefined ? undefined : await readListFlag(flags.join, '--join');
    const file: NodeConfigFile =
      flags.config === undefined ? {} : await readConfigFile(flags.config);
    const config = resolveNodeConfig(
      {
        ...(flags.id === undefined ? {} : { id: flags.id }),
        ...(flags['data-dir'] === undefined ? {} : { dataDir: flags['data-dir'] }),
        ...(flags.listen === undefined ? {} : { listen: flags.listen }),
        ...(flags.advertise === undefined ? {} : { advertise: flags.advertise }),
        ...(flags['certs-dir'] === undefined ? {} : { certsDir: flags['certs-dir'] }),
        ...(flags.insecure ? { insecure: true } : {}),
        ...(join === undefined ? {} : { join }),
        ...(flags['bootstrap-expect'] === undefined
          ? {}
          : { bootstrapExpect: flags['bootstrap-expect'] }),
      },
      file,
    );
    const log = createLogger({ level: parseLogLevel(flags['log-level']) ?? 'info' });
    // Signals are watched from before the node starts: a stop asked for during start-up, or
    // right after the JSON document, still stops gracefully.
    const stopRequested = watchStopSignals();
    const node = await RdbnetNode.start(config, log);
    const result: NodeStartResult = {
      id: node.id,
      clusterId: node.clusterId,
      address: node.address,
      listen: node.boundAddress,
      tls: !config.insecure,
      dataDir: config.dataDir,
      certsDir: config.insecure ? null : config.certsDir,
      pid: process.pid,
    };
    if (this.json) printJson(result);
    // SIGHUP re-reads certificates, trust bundle and revocations (errors are logged, the
    // node keeps what it has).
    process.on('SIGHUP', () => {
      node.reloadCertificates().catch(() => {});
    });
    // Stops on a signal, after `rdbnet cluster leave` (exit 0), or when the Raft storage
    // failed (exit 1: what is on disk is unknown until a restart recovers it).
    const reason = await Promise.race([
      stopRequested.then(() => undefined),
      node.left.then(() => undefined),
      node.failed,
    ]);
    // A stop must finish within 5 s even if a connection refuses to close.
    setTimeout(() => process.exit(1), STOP_DEADLINE_MS).unref();
    await node.stop();
    if (reason !== undefined) throw reason;
    return result;
  }

  /** Everything was said while running: the JSON document at start, logs on stderr. */
  protected override render(): void {}

  override async run(): Promise<NodeStartResult> {
    const result = await this.execute();
    process.exitCode = 0;
    return result;
  }
}

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
function watchStopSignals(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      // A second signal means "now": the operator does not want to wait.
      if (stopping) process.exit(130);
      stopping = true;
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
