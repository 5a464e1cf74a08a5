import { RdbnetCommand } from '../../cli/base-command.ts';
import {
  nodeConfigExitCode,
  nodeConfigFlags,
  resolveNodeConfigFromFlags,
} from '../../cli/node-config-flags.ts';
import { printJson } from '../../cli/output.ts';
import type { RdbnetError } from '../../core/errors.ts';
import { RdbnetNode } from '../../core/node/node.ts';
import { createLogger } from '../../core/runtime/log.ts';
import { LogTail } from '../../core/runtime/log-tail.ts';

export interface NodeStartResult {
  id: string;
  clusterId: string;
  address: string;
  listen: string;
  /** host:port of the HTTP face (--http); null when off. */
  http: string | null;
  tls: boolean;
  dataDir: string;
  certsDir: string | null;
  /** host:port of the Prometheus listener (--metrics); null without it. */
  metrics: string | null;
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
    'With --json, one JSON document describing the running node is printed on stdout once it listens. ' +
    'Every setting comes from a flag, else an RDBNET_* environment variable, else the --config file, else the ' +
    'preset, else its default: `rdbnet node config` with the same flags shows the result and where each value came from.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --id n2 --listen 127.0.0.1:7002 --data-dir ./n2',
    '<%= config.bin %> <%= command.id %> --config node.json --json',
    '<%= config.bin %> <%= command.id %> --preset wan --listen 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --id n2 --listen 127.0.0.1:7002 --data-dir ./n2 --join 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --id n1 --join 127.0.0.1:7002,127.0.0.1:7003 --bootstrap-expect 3',
    '<%= config.bin %> <%= command.id %> --metrics 127.0.0.1:9100',
  ];
  static override flags = { ...nodeConfigFlags };

  protected override async execute(): Promise<NodeStartResult> {
    const { flags } = await this.parse(NodeStart);
    const { config, warnings } = await resolveNodeConfigFromFlags(flags);
    // The last lines are kept for `rdbnet monitor`.
    const logTail = new LogTail();
    const log = createLogger({ level: config.logLevel, tail: logTail });
    for (const warning of warnings) log.warn(warning);
    // Signals are watched from before the node starts: a stop asked for during start-up, or
    // right after the JSON document, still stops gracefully.
    const stopRequested = watchStopSignals();
    const node = await RdbnetNode.start(config, log, { logTail });
    const result: NodeStartResult = {
      id: node.id,
      clusterId: node.clusterId,
      address: node.address,
      listen: node.boundAddress,
      http: node.httpAddress,
      tls: !config.insecure,
      dataDir: config.dataDir,
      certsDir: config.insecure ? null : config.certsDir,
      metrics: node.metricsAddress,
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

  /** A bad value in the flags, environment or config file is a usage error (64). */
  protected override exitCodeForFailure(error: RdbnetError): number {
    return nodeConfigExitCode(error);
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
