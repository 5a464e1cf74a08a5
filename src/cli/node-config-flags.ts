/**
 * The flags that configure a node, shared by `node start` (which runs it) and `node config`
 * (which shows what it would run with): one definition, so the two always accept the same
 * command line. Each flag's value goes through the same resolution as the environment and
 * the --config file (core/config/node-config.ts), so a bad value is refused the same way.
 */
import { Flags } from '@oclif/core';
import {
  ConfigValueError,
  NODE_PRESET_NAMES,
  type NodeConfigFile,
  type NodeConfigFlags,
  type ResolvedNodeConfig,
  readConfigFile,
  resolveNodeConfigWithSources,
} from '../core/config/node-config.ts';
import type { RdbnetError } from '../core/errors.ts';
import { ExitCode, exitCodeForError } from './exit-codes.ts';
import { readListFlag } from './lists.ts';

export const nodeConfigFlags = {
  id: Flags.string({
    description:
      'Node id. [env: RDBNET_ID; default: recorded in the data dir, or generated on first start]',
    helpValue: 'id',
  }),
  preset: Flags.string({
    description:
      'Gossip and Raft timings for the network: local (one machine), lan, wan (RTTs up to ~300 ms). ' +
      'Every node of a cluster should use the same. [env: RDBNET_PRESET; default: lan]',
    helpValue: NODE_PRESET_NAMES.join('|'),
  }),
  'data-dir': Flags.string({
    description: 'Data directory. [env: RDBNET_DATA_DIR; default: $RDBNET_HOME/node]',
    helpValue: 'dir',
  }),
  listen: Flags.string({
    description: 'Address to listen on. [env: RDBNET_LISTEN; default: 127.0.0.1:7000]',
    helpValue: 'host:port',
  }),
  advertise: Flags.string({
    description:
      'Address others use to reach this node. [env: RDBNET_ADVERTISE; default: --listen]',
    helpValue: 'host:port',
  }),
  http: Flags.string({
    description:
      'Serve the HTTP API (REST, OpenAPI, probes) on this address: HTTPS with the cluster certificates ' +
      '(client certificates or bearer tokens from `rdbnet tokens create`). [env: RDBNET_HTTP; default: off]',
    helpValue: 'host:port',
  }),
  'certs-dir': Flags.string({
    description:
      'Certificates directory. [env: RDBNET_CERTS_DIR; default: $RDBNET_HOME/certs, created if missing]',
    helpValue: 'dir',
  }),
  insecure: Flags.boolean({
    description:
      'Plaintext TCP without authentication. For tests and trusted networks only. [env: RDBNET_INSECURE]',
    allowNo: true,
  }),
  join: Flags.string({
    description:
      'Seed addresses of other nodes, comma-separated, or - to read them from stdin. The node waits for a cluster: ' +
      'it joins one the seeds belong to (as a learner, promoted to voter once caught up), or becomes a founding member ' +
      'when `rdbnet cluster bootstrap` runs (an empty list waits to be found by others). Without --join a new node ' +
      'bootstraps itself as a single-node cluster. [env: RDBNET_JOIN]',
    helpValue: 'host:port,…',
  }),
  'bootstrap-expect': Flags.string({
    description:
      'Bootstrap automatically once this many nodes started with the same value know each other (the lowest id ' +
      'founds the cluster); 1 to 64. [env: RDBNET_BOOTSTRAP_EXPECT]',
    helpValue: 'n',
  }),
  groups: Flags.string({
    description:
      "Groups this node belongs to, comma-separated (at most 8), for the data plane's multicast; " +
      'gossiped to every member. [env: RDBNET_GROUPS]',
    helpValue: 'name,…',
  }),
  'retry-join': Flags.string({
    description:
      'Find seeds through discovery: a spec such as "provider=dns name=_rdbnet._tcp.db.internal server=127.0.0.1:5353" ' +
      'or host:port addresses; repeatable, mixable with --join. Looked up again with exponential backoff and jitter, ' +
      'each attempt logged, until the node is a member; --bootstrap-expect works as with --join. A node that finds ' +
      'two clusters joins none until --cluster-id says which. [env: RDBNET_RETRY_JOIN, one entry a line or a JSON array]',
    helpValue: 'spec',
    multiple: true,
  }),
  register: Flags.string({
    description:
      'Register this node with a discovery provider that supports it (etcd, consul), e.g. ' +
      '"provider=etcd endpoints=127.0.0.1:2379 prefix=/rdbnet/c1"; repeatable; deregistered on `cluster leave` and ' +
      'on a graceful stop. A provider that cannot register is refused (exit 64). [env: RDBNET_REGISTER]',
    helpValue: 'spec',
    multiple: true,
  }),
  'cluster-id': Flags.string({
    description:
      'Join only the cluster with this id (`cluster status` shows it): needed when discovery finds two clusters; ' +
      'the node then never bootstraps one. [env: RDBNET_CLUSTER_ID]',
    helpValue: 'id',
  }),
  config: Flags.string({
    description:
      'JSON config file (fields as in `rdbnet node config --json`); the environment and flags override it.',
    helpValue: 'file',
  }),
  metrics: Flags.string({
    description:
      'Serve Prometheus metrics on this address: plain HTTP, read-only, GET /metrics only. ' +
      '[env: RDBNET_METRICS; default: off]',
    helpValue: 'host:port',
  }),
  'log-level': Flags.string({
    description: 'debug, info, warn or error. [env: RDBNET_LOG_LEVEL; default: info]',
    helpValue: 'level',
  }),
};

export interface NodeConfigFlagValues {
  id?: string | undefined;
  preset?: string | undefined;
  'data-dir'?: string | undefined;
  listen?: string | undefined;
  advertise?: string | undefined;
  http?: string | undefined;
  'certs-dir'?: string | undefined;
  insecure?: boolean | undefined;
  join?: string | undefined;
  'bootstrap-expect'?: string | undefined;
  groups?: string | undefined;
  metrics?: string | undefined;
  'retry-join'?: string[] | undefined;
  register?: string[] | undefined;
  'cluster-id'?: string | undefined;
  config?: string | undefined;
  'log-level'?: string | undefined;
}

/**
 * The node's configuration from its command line, the environment and the --config file.
 * Reads the file and, for `--join -`, stdin; writes nothing.
 */
export async function resolveNodeConfigFromFlags(
  flags: NodeConfigFlagValues,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedNodeConfig> {
  const join = flags.join === undefined ? undefined : await readListFlag(flags.join, '--join');
  const file: NodeConfigFile = flags.config === undefined ? {} : await readConfigFile(flags.config);
  const values: NodeConfigFlags = {
    id: flags.id,
    preset: flags.preset,
    dataDir: flags['data-dir'],
    listen: flags.listen,
    advertise: flags.advertise,
    http: flags.http,
    certsDir: flags['certs-dir'],
    insecure: flags.insecure,
    join,
    bootstrapExpect: flags['bootstrap-expect'],
    groups: flags.groups,
    metrics: flags.metrics,
    retryJoin: flags['retry-join'],
    register: flags.register,
    clusterId: flags['cluster-id'],
    logLevel: flags['log-level'],
  };
  return resolveNodeConfigWithSources({
    flags: values,
    env,
    file,
    ...(flags.config === undefined ? {} : { filePath: flags.config }),
  });
}

/** A bad configuration value is a usage error (64), whichever source gave it. */
export function nodeConfigExitCode(error: RdbnetError): number {
  return error instanceof ConfigValueError ? ExitCode.Usage : exitCodeForError(error.code);
}
