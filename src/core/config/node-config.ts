/**
 * The one typed configuration of a node. Every field has a documented default. A value comes
 * from, highest precedence first:
 *
 *   flag     a command-line flag of `node start` / `node config`
 *   env      an environment variable: RDBNET_ + the field's path in upper snake case
 *            (listen → RDBNET_LISTEN, raft.electionTimeoutMs → RDBNET_RAFT_ELECTION_TIMEOUT_MS);
 *            an empty variable counts as unset
 *   file     the JSON --config file (the same field names; raft, connection and pool are
 *            objects)
 *   preset   the preset's value (`local`, `lan`, `wan`: gossip and Raft timings together)
 *   default  the documented default
 *
 * resolveNodeConfigWithSources says, per field, which one it was. A bad value from any
 * source is a ConfigValueError (RDB_CONFIG_INVALID) naming the field and the source.
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CLUSTER_TUNABLE_BOUNDS,
  CLUSTER_TUNABLES_DEFAULT,
  type ClusterTunables,
} from '../cluster/init.ts';
import {
  RAFT_DURATION_MS_MAX,
  RAFT_TICK_MS_MAX,
  RAFT_TIMINGS_PRESETS,
  type RaftTimings,
  raftTimingsProblems,
} from '../cluster/timings.ts';
import { ConfigFieldError, ErrorCode, RdbnetError } from '../errors.ts';
import { SWIM_PRESETS, type SwimPreset } from '../membership/swim/config.ts';
import type { LogLevel } from '../runtime/log.ts';
import { FIREWALL_BAN_MS_MAX, FIREWALL_LIMITS_DEFAULT } from '../security/firewall.ts';
import { formatHostPort, type HostPort, parseHostPort } from '../transport/address.ts';
import {
  type ConnectionOptions,
  connectionOptions,
  DEFAULT_CONNECTION_OPTIONS,
} from '../transport/options.ts';
import { DEFAULT_POOL_OPTIONS, type PoolOptions, poolOptions } from '../transport/pool.ts';
import {
  UNAUTHENTICATED_CONNECTIONS_MAX_DEFAULT,
  UNAUTHENTICATED_CONNECTIONS_PER_SOURCE_MAX_DEFAULT,
} from '../transport/server.ts';
import { DEFAULT_CLUSTER, DEFAULT_LISTEN, defaultDataDir, rdbnetHome } from './home.ts';
import {
  addressList,
  boolean,
  clusterIdValue,
  discoveryEntries,
  groupList,
  hostPort,
  integer,
  name,
  oneOf,
  type Parse,
  positiveNumber,
  shown,
  text,
  ValueProblem,
} from './values.ts';

export { parseAddressList } from './values.ts';

/** A named set of gossip (SWIM) and Raft timings for one kind of network. */
export type NodePreset = SwimPreset;

/**
 * The node's settings. It extends ClusterTunables (cluster/init.ts documents each of those
 * fields with its default and bounds: discoveryIntervalMs, peerRequestTimeoutMs, joinRetryMs,
 * bootstrapWaitMs, joinGossipWaitMs, promoteLagMaxEntries, deadVoterCheckIntervalMs).
 */
export interface NodeConfig extends ClusterTunables {
  /** Node id, unique in the cluster. Default: the id recorded in dataDir, or a new
   * random `node-` + 6 hex digits on first start (then recorded). */
  id: string | undefined;
  /** Cluster name used on --insecure nodes. With TLS the cluster comes from the node's
   * certificate. Default 'rdbnet'. */
  cluster: string;
  /**
   * Timings for the network the cluster runs on, gossip and Raft together: `lan` (default;
   * sub-millisecond RTTs, a crash seen dead in about 2-3 s, a leader replaced in 0.5-1 s),
   * `wan` (RTTs up to about 300 ms, 5 s stalls tolerated, 3-6 s elections), `local` (one
   * machine, 1 s stalls, 250-500 ms elections). Every node of a cluster should use the same.
   */
  preset: NodePreset;
  /** Where the node keeps its state. Default `$RDBNET_HOME/node`. */
  dataDir: string;
  /** Address the node listens on for the binary protocol. Default 127.0.0.1:7000. */
  listen: HostPort;
  /** Address other nodes and clients should use to reach this one. Default: listen. */
  advertise: HostPort;
  /** Address of the HTTP face (REST API, OpenAPI, probes; HTTPS with the cluster's
   * certificates unless --insecure). Default: none (off). */
  http: HostPort | undefined;
  /** /livez and /readyz of the HTTP face answer without credentials. Default false. */
  httpProbesOpen: boolean;
  /** Requests per second one client address may make to the HTTP face; more are 429.
   * Default 500. */
  httpRatePerSecond: number;
  /** Burst of that per-client limit. Default 1000. */
  httpRateBurst: number;
  /** Time an HTTP client has to send its request headers; then the socket is closed.
   * Default 10000 ms. */
  httpHeadersTimeoutMs: number;
  /** Time an HTTP client has to send its whole request, and that an idle socket is kept.
   * Default 30000 ms. */
  httpRequestTimeoutMs: number;
  /** Largest HTTP request body; a larger one is 413. Default 1 MiB. */
  httpBodyBytesMax: number;
  /** Certificates directory (layout in docs/CLI.md). Default `$RDBNET_HOME/certs`;
   * certificates are created there on first start unless it was given by a flag or file. */
  certsDir: string;
  /** True when certsDir is the default one (or RDBNET_CERTS_DIR), so that a missing CA may
   * be created. */
  certsDirIsDefault: boolean;
  /** Plaintext TCP without authentication. Only for tests and trusted networks. Default false. */
  insecure: boolean;
  /** Authenticated connections (past TLS and the Hello) held at once. One more peer is refused
   * in the handshake with RDB_CONNECTION_LIMIT, except members of the cluster configuration.
   * Default 4096. */
  connectionsMax: number;
  /** Unauthenticated connections (TCP accepted, TLS handshake or Hello not done) held at once,
   * apart from connectionsMax. A new one past it closes the oldest unauthenticated connection
   * (counted in `connections.preauth.evicted`), so strangers cannot lock peers and operators
   * out. Default 1024. */
  unauthenticatedConnectionsMax: number;
  /** Unauthenticated connections held at once from one source address (IPv6: one /64). A new
   * one past it closes that source's oldest. Default 64. */
  unauthenticatedConnectionsPerSourceMax: number;
  /** An authenticated connection that sent no frame, with no request outstanding either way,
   * for this long is closed with RDB_IDLE_TIMEOUT (`connections.failed.RDB_IDLE_TIMEOUT`).
   * Connections of cluster members (Raft configuration or gossip) are exempt. 0: never.
   * Default 300000 ms (`health --watch` asks at least every 60 s). */
  idleTimeoutMs: number;
  /** Node-wide budget for bytes buffered by accepted connections: partial inbound frames
   * being assembled and replies queued for peers that are not reading. A connection whose
   * buffering would pass it is closed with RDB_MEMORY_BUDGET. At least
   * connection.frameBytesMax. Default 256 MiB. */
  bufferedBytesMax: number;
  /** Time a stopping node gives open connections to finish. Default 3000 ms, so that a
   * stop always completes within 5 s. */
  shutdownGraceMs: number;
  /** Firewall (security/firewall.ts): connections one source address (IPv6: one /64) may hold
   * open at once; one more is closed at accept. Default 256. */
  firewallConnectionsPerSourceMax: number;
  /** New connections per second per source (a burst of 2 s of it); more are closed at accept.
   * Default 50. */
  firewallConnectionsPerSecond: number;
  /** Handshakes (Hellos) per second per source; more are refused with RDB_RATE_LIMITED. Default 50. */
  firewallHandshakesPerSecond: number;
  /** Requests per second per source over all its connections; more are answered with
   * RDB_RATE_LIMITED. Cluster members are exempt. Default 100000. */
  firewallMessagesPerSecond: number;
  /** Gossip datagrams per second per source; more are dropped. Default 2000. */
  firewallDatagramsPerSecond: number;
  /** Failed handshakes (TLS, certificate, Hello, timeout) from one source within 60 s that ban
   * it for firewallBanMs. 0: never. Default 20. */
  firewallBanAfterFailures: number;
  /** How long an automatic ban lasts. Default 300000 ms. */
  firewallBanMs: number;
  /** Per-connection limits (frame size, requests in flight, deadlines, buffers). */
  connection: ConnectionOptions;
  /** The data plane's connection pools per peer (src/core/transport/pool.ts): min/max size,
   * waits, idle / lifetime / node-wide LRU eviction, health checks. Defaults there. */
  pool: PoolOptions;
  /**
   * Seed addresses (`--join`). Undefined: not given, and a node without a cluster bootstraps
   * itself as a single-node cluster. Given (even empty): the node waits for a cluster — it
   * exchanges ids and addresses with the seeds, joins a cluster they belong to, or is made
   * a founding member by `rdbnet cluster bootstrap` / `--bootstrap-expect`. Ignored once
   * the node belongs to a cluster (members' addresses are part of its configuration).
   */
  join: string[] | undefined;
  /**
   * Bootstrap automatically once this many nodes without a cluster know each other (each
   * started with the same value); the one with the lowest id founds the cluster. Default:
   * undefined (bootstrap with `rdbnet cluster bootstrap`).
   */
  bootstrapExpect: number | undefined;
  /**
   * Discovery entries (`--retry-join`, repeatable): specs such as
   * `provider=dns name=_rdbnet._tcp.db.internal` or plain host:port addresses. The node looks
   * them up and uses what they name as seeds, again with exponential backoff and full jitter
   * (RETRY_JOIN_BASE_MS..RETRY_JOIN_CAP_MS, each attempt logged with its outcome) until it is a
   * member. Given (non-empty), the node waits for a cluster as with --join. Default: none.
   */
  retryJoin: string[];
  /**
   * Discovery specs this node registers itself with (`--register`, repeatable), for providers
   * that can (etcd, consul); deregistered on `cluster leave` and on a graceful stop. A provider
   * without registration is refused at start. Default: none.
   */
  register: string[];
  /**
   * The Raft cluster id this node may join (`--cluster-id`). Without it a node that finds two
   * or more clusters among its candidates joins none (RDB_DISCOVERY_AMBIGUOUS in its log);
   * with it, it joins only that one and never bootstraps. Default: undefined (any one cluster).
   */
  clusterId: string | undefined;
  /**
   * The Raft leader removes a voter that gossip (SWIM) reports `dead` continuously for
   * longer than this, one at a time and only when quorum stays safe: the voters left alive
   * must be a majority of the new voter set, and a cluster of 3 or more voters is never
   * shrunk below 3. 0 turns the removal off. Keep it well below gossip's tombstone time
   * (after which a dead member is forgotten: 60 s on lan, 300 s on wan, 30 s on local).
   * Default from the preset: lan 30000 ms, wan 60000 ms, local 10000 ms.
   */
  deadVoterRemoveAfterMs: number;
  /** Least severe log level written to stderr: debug, info, warn or error. Default info. */
  logLevel: LogLevel;
  /** Raft timings (cluster/timings.ts documents each); default from the preset. */
  raft: RaftTimings;
  /**
   * A node id is held by its live process: another process claiming it at another address
   * is refused (RDB_ID_IN_USE at join; its gossip ignored) until gossip has reported the
   * holder `dead` or `left` continuously for this long. A restart on the same address is
   * never held back. Also gossip's window for taking an id at a new address (SWIM
   * deadReclaimMs). Keep it below gossip's tombstone time (60 s on lan timings). Default:
   * the preset's gossip deadReclaimMs — lan 5000 ms, wan 30000 ms, local 2000 ms.
   */
  idReclaimAfterMs: number;
  /**
   * Named groups this node belongs to, for the data plane's multicast (gossiped with the
   * node's address, so every member knows every member's groups). At most 8 names of at
   * most 32 characters. Default none.
   */
  groups: string[];
  /**
   * Address of the plain-HTTP, read-only Prometheus listener (GET /metrics only, like etcd's
   * --listen-metrics-urls). Default none: no metrics listener.
   */
  metrics: HostPort | undefined;
}

/** Default of NodeConfig.deadVoterRemoveAfterMs (the lan preset's). */
export const DEAD_VOTER_REMOVE_AFTER_MS_DEFAULT = 30_000;
/** Default of NodeConfig.idleTimeoutMs. */
export const IDLE_TIMEOUT_MS_DEFAULT = 300_000;
/** Default of NodeConfig.bufferedBytesMax. */
export const BUFFERED_BYTES_MAX_DEFAULT = 256 * 1024 * 1024;

export interface NodePresetValues {
  /** The SWIM preset gossip runs with (membership/swim/config.ts). */
  gossip: SwimPreset;
  raft: Readonly<RaftTimings>;
  deadVoterRemoveAfterMs: number;
}

/** The presets, fastest first. Each names the SWIM and Raft presets of the same name. */
export const NODE_PRESETS: Readonly<Record<NodePreset, Readonly<NodePresetValues>>> = Object.freeze(
  {
    // Well below local gossip's 30 s tombstone time.
    local: { gossip: 'local', raft: RAFT_TIMINGS_PRESETS.local, deadVoterRemoveAfterMs: 10_000 },
    lan: {
      gossip: 'lan',
      raft: RAFT_TIMINGS_PRESETS.lan,
      deadVoterRemoveAfterMs: DEAD_VOTER_REMOVE_AFTER_MS_DEFAULT,
    },
    // A WAN link is down longer before it counts; gossip keeps a dead member 300 s.
    wan: { gossip: 'wan', raft: RAFT_TIMINGS_PRESETS.wan, deadVoterRemoveAfterMs: 60_000 },
  },
);

export const NODE_PRESET_NAMES = Object.keys(NODE_PRESETS) as readonly NodePreset[];

/**
 * What a --config file may contain: the same fields, addresses as "host:port" strings.
 * null means "not set" (so that `node config --json`'s `config` is itself a valid file).
 */
export interface NodeConfigFile {
  id?: string | null;
  cluster?: string | null;
  preset?: string | null;
  /** Deprecated alias of `preset` (it used to set gossip timings only). */
  gossipPreset?: string | null;
  dataDir?: string | null;
  listen?: string | null;
  advertise?: string | null;
  http?: string | null;
  httpProbesOpen?: boolean | null;
  httpRatePerSecond?: number | null;
  httpRateBurst?: number | null;
  httpHeadersTimeoutMs?: number | null;
  httpRequestTimeoutMs?: number | null;
  httpBodyBytesMax?: number | null;
  certsDir?: string | null;
  insecure?: boolean | null;
  connectionsMax?: number | null;
  unauthenticatedConnectionsMax?: number | null;
  unauthenticatedConnectionsPerSourceMax?: number | null;
  idleTimeoutMs?: number | null;
  bufferedBytesMax?: number | null;
  shutdownGraceMs?: number | null;
  firewallConnectionsPerSourceMax?: number | null;
  firewallConnectionsPerSecond?: number | null;
  firewallHandshakesPerSecond?: number | null;
  firewallMessagesPerSecond?: number | null;
  firewallDatagramsPerSecond?: number | null;
  firewallBanAfterFailures?: number | null;
  firewallBanMs?: number | null;
  connection?: Partial<ConnectionOptions> | null;
  pool?: Partial<PoolOptions> | null;
  join?: string[] | string | null;
  bootstrapExpect?: number | null;
  retryJoin?: string[] | string | null;
  register?: string[] | string | null;
  clusterId?: string | null;
  deadVoterRemoveAfterMs?: number | null;
  idReclaimAfterMs?: number | null;
  discoveryIntervalMs?: number | null;
  peerRequestTimeoutMs?: number | null;
  joinRetryMs?: number | null;
  bootstrapWaitMs?: number | null;
  joinGossipWaitMs?: number | null;
  promoteLagMaxEntries?: number | null;
  deadVoterCheckIntervalMs?: number | null;
  logLevel?: string | null;
  raft?: Partial<RaftTimings> | null;
  groups?: string[] | string | null;
  metrics?: string | null;
}

type Loose<T> = { [K in keyof T]?: T[K] | string | null | undefined };

/** Command-line values: a file's fields, where a string is parsed as an env value is. */
export type NodeConfigFlags = Loose<Omit<NodeConfigFile, 'connection' | 'raft' | 'pool'>> & {
  connection?: Loose<ConnectionOptions>;
  pool?: Loose<PoolOptions>;
  raft?: Loose<RaftTimings>;
};

export interface NodeConfigInputs {
  flags?: NodeConfigFlags;
  env?: NodeJS.ProcessEnv;
  file?: NodeConfigFile;
  /** Where the file was read from, for messages. */
  filePath?: string;
}

export type ConfigSource = 'default' | 'preset' | 'file' | 'env' | 'flag';

export interface ResolvedNodeConfig {
  config: NodeConfig;
  /** The source of every field, keyed by its path ('listen', 'raft.tickMs'). */
  sources: Record<string, ConfigSource>;
  /** Things a person should change (deprecated fields), one sentence each. */
  warnings: string[];
}

/** A bad value for one field: RDB_CONFIG_INVALID naming the field and where it came from. */
export class ConfigValueError extends RdbnetError {
  readonly field: string;
  readonly source: ConfigSource;

  constructor(field: string, source: ConfigSource, where: string, problem: string, hint?: string) {
    super(ErrorCode.ConfigInvalid, `invalid ${field} from ${where}: ${problem}`, {
      ...(hint === undefined ? {} : { hint }),
    });
    this.name = 'ConfigValueError';
    this.field = field;
    this.source = source;
  }
}

interface Field {
  /** Dotted path: 'listen', 'raft.tickMs'. */
  path: string;
  /** RDBNET_ + the path in upper snake case. */
  env: string;
  /** The command-line flag that sets it, if any. */
  flag?: string;
  parse: Parse<unknown>;
  /** Its value when no source sets it, from the preset or a default. */
  fallback(context: FallbackContext): { value: unknown; source: 'default' | 'preset' };
}

interface FallbackContext {
  env: NodeJS.ProcessEnv;
  preset: NodePreset;
  values: Map<string, unknown>;
}

export function envName(path: string): string {
  return `RDBNET_${path
    .replaceAll('.', '_')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()}`;
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
/** Upper bound of millisecond fields without a tighter one (one day). */
const DURATION_MS_MAX = 86_400_000;

function field(
  path: string,
  parse: Parse<unknown>,
  fallback: Field['fallback'],
  flag?: string,
): Field {
  return { path, env: envName(path), parse, fallback, ...(flag === undefined ? {} : { flag }) };
}

const byDefault =
  (value: unknown): Field['fallback'] =>
  () => ({ value, source: 'default' });

const raftField = (key: keyof RaftTimings, parse: Parse<unknown>): Field =>
  field(`raft.${key}`, parse, ({ preset }) => ({
    value: NODE_PRESETS[preset].raft[key],
    source: 'preset',
  }));

/** The cluster tunables, in the order `node config` lists them. */
const CLUSTER_TUNABLE_KEYS = Object.keys(CLUSTER_TUNABLES_DEFAULT) as (keyof ClusterTunables)[];

/** Every field, in the order `node config` lists them. */
const FIELDS: readonly Field[] = [
  field('id', name('node id'), byDefault(undefined), '--id'),
  field('cluster', name('cluster name'), byDefault(DEFAULT_CLUSTER)),
  field('preset', oneOf(NODE_PRESET_NAMES), byDefault('lan'), '--preset'),
  field('listen', hostPort('listen address'), byDefault(parseHostPort(DEFAULT_LISTEN)), '--listen'),
  field(
    'advertise',
    hostPort('advertise address'),
    ({ values }) => ({ value: values.get('listen'), source: 'default' }),
    '--advertise',
  ),
  field('http', hostPort('http address'), byDefault(undefined), '--http'),
  field('httpProbesOpen', boolean(), byDefault(false)),
  field('httpRatePerSecond', integer(1, 1_000_000), byDefault(500)),
  field('httpRateBurst', integer(1, 1_000_000), byDefault(1000)),
  field('httpHeadersTimeoutMs', integer(100, DURATION_MS_MAX), byDefault(10_000)),
  field('httpRequestTimeoutMs', integer(100, DURATION_MS_MAX), byDefault(30_000)),
  field('httpBodyBytesMax', integer(1024, 64 * 1024 * 1024), byDefault(1024 * 1024)),
  field(
    'dataDir',
    text(),
    ({ env }) => ({ value: defaultDataDir(env), source: 'default' }),
    '--data-dir',
  ),
  field(
    'certsDir',
    text(),
    ({ env }) => ({ value: join(rdbnetHome(env), 'certs'), source: 'default' }),
    '--certs-dir',
  ),
  field('insecure', boolean(), byDefault(false), '--insecure'),
  field('join', addressList(), byDefault(undefined), '--join'),
  field('bootstrapExpect', integer(1, 64), byDefault(undefined), '--bootstrap-expect'),
  field('groups', groupList(), byDefault([]), '--groups'),
  field('metrics', hostPort('metrics address'), byDefault(undefined), '--metrics'),
  field('retryJoin', discoveryEntries(false), byDefault([]), '--retry-join'),
  field('register', discoveryEntries(true), byDefault([]), '--register'),
  field('clusterId', clusterIdValue(), byDefault(undefined), '--cluster-id'),
  field('connectionsMax', integer(1, Number.MAX_SAFE_INTEGER), byDefault(4096)),
  field(
    'unauthenticatedConnectionsMax',
    integer(1, Number.MAX_SAFE_INTEGER),
    byDefault(UNAUTHENTICATED_CONNECTIONS_MAX_DEFAULT),
  ),
  field(
    'unauthenticatedConnectionsPerSourceMax',
    integer(1, Number.MAX_SAFE_INTEGER),
    byDefault(UNAUTHENTICATED_CONNECTIONS_PER_SOURCE_MAX_DEFAULT),
  ),
  field('idleTimeoutMs', integer(0, DURATION_MS_MAX), byDefault(IDLE_TIMEOUT_MS_DEFAULT)),
  field(
    'bufferedBytesMax',
    integer(1, Number.MAX_SAFE_INTEGER),
    byDefault(BUFFERED_BYTES_MAX_DEFAULT),
  ),
  // At most 4500 ms, so that a stop completes within 5 s.
  field('shutdownGraceMs', integer(1, 4500), byDefault(3000)),
  field(
    'firewallConnectionsPerSourceMax',
    integer(1, 1_000_000),
    byDefault(FIREWALL_LIMITS_DEFAULT.connectionsPerSourceMax),
  ),
  field(
    'firewallConnectionsPerSecond',
    integer(1, 1_000_000),
    byDefault(FIREWALL_LIMITS_DEFAULT.connectionsPerSecond),
  ),
  field(
    'firewallHandshakesPerSecond',
    integer(1, 1_000_000),
    byDefault(FIREWALL_LIMITS_DEFAULT.handshakesPerSecond),
  ),
  field(
    'firewallMessagesPerSecond',
    integer(1, 100_000_000),
    byDefault(FIREWALL_LIMITS_DEFAULT.messagesPerSecond),
  ),
  field(
    'firewallDatagramsPerSecond',
    integer(1, 100_000_000),
    byDefault(FIREWALL_LIMITS_DEFAULT.datagramsPerSecond),
  ),
  field(
    'firewallBanAfterFailures',
    integer(0, 1_000_000),
    byDefault(FIREWALL_LIMITS_DEFAULT.banAfterFailures),
  ),
  field('firewallBanMs', integer(1, FIREWALL_BAN_MS_MAX), byDefault(FIREWALL_LIMITS_DEFAULT.banMs)),
  field('deadVoterRemoveAfterMs', integer(0, DURATION_MS_MAX), ({ preset }) => ({
    value: NODE_PRESETS[preset].deadVoterRemoveAfterMs,
    source: 'preset',
  })),
  field('idReclaimAfterMs', integer(0, DURATION_MS_MAX), ({ preset }) => ({
    value: SWIM_PRESETS[NODE_PRESETS[preset].gossip].deadReclaimMs,
    source: 'preset',
  })),
  // The cluster's own defaults and bounds, so the two cannot disagree.
  ...CLUSTER_TUNABLE_KEYS.map((key) =>
    field(
      key,
      integer(CLUSTER_TUNABLE_BOUNDS[key].min, CLUSTER_TUNABLE_BOUNDS[key].max),
      byDefault(CLUSTER_TUNABLES_DEFAULT[key]),
    ),
  ),
  field('logLevel', oneOf(LOG_LEVELS), byDefault('info'), '--log-level'),
  raftField('tickMs', integer(1, RAFT_TICK_MS_MAX)),
  raftField('electionTimeoutMs', integer(1, RAFT_DURATION_MS_MAX)),
  raftField('heartbeatIntervalMs', integer(1, RAFT_DURATION_MS_MAX)),
  raftField('preVote', boolean()),
  raftField('checkQuorum', boolean()),
  raftField('proposalTimeoutMs', integer(1, RAFT_DURATION_MS_MAX)),
  raftField('forwardDeadlineMs', integer(1, RAFT_DURATION_MS_MAX)),
  raftField('transferTimeoutMs', integer(1, RAFT_DURATION_MS_MAX)),
  // Derived from the transport's own defaults, so a new connection option is a field at once.
  ...Object.entries(DEFAULT_CONNECTION_OPTIONS).map(([key, value]) =>
    field(
      `connection.${key}`,
      typeof value === 'boolean' ? boolean() : positiveNumber(),
      byDefault(value),
    ),
  ),
  // The pool's own defaults, likewise.
  ...Object.entries(DEFAULT_POOL_OPTIONS).map(([key, value]) =>
    field(`pool.${key}`, integer(0, Number.MAX_SAFE_INTEGER), byDefault(value)),
  ),
];

/** Every field's path, environment variable and flag, for docs and `node config`. */
export const NODE_CONFIG_FIELDS: readonly { path: string; env: string; flag?: string }[] =
  FIELDS.map(({ path, env, flag }) => ({ path, env, ...(flag === undefined ? {} : { flag }) }));

const NESTED_KEYS: Record<'raft' | 'connection' | 'pool', ReadonlySet<string>> = {
  raft: new Set(Object.keys(RAFT_TIMINGS_PRESETS.lan)),
  connection: new Set(Object.keys(DEFAULT_CONNECTION_OPTIONS)),
  pool: new Set(Object.keys(DEFAULT_POOL_OPTIONS)),
};

const FILE_KEYS: ReadonlySet<string> = new Set([
  ...FIELDS.map((f) => f.path.split('.')[0]!),
  'gossipPreset',
]);

/**
 * A file's shape: an object with known fields; raft, connection and pool objects with known
 * keys.
 * Its values are checked when resolved. Every refusal is a ConfigValueError (exit 64, like
 * a bad flag): the file is the value of --config, and nothing has been done yet.
 */
export function checkConfigFileFields(parsed: unknown, path = 'the config file'): NodeConfigFile {
  const where = `config file ${path}`;
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigValueError('config', 'file', where, 'must hold a JSON object');
  }
  for (const [key, value] of Object.entries(parsed)) {
    if (!FILE_KEYS.has(key)) {
      throw new ConfigValueError(
        key,
        'file',
        where,
        `unknown field '${key}'`,
        `known fields: ${[...FILE_KEYS].join(', ')}`,
      );
    }
    if (key !== 'raft' && key !== 'connection' && key !== 'pool') continue;
    if (value === null) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new ConfigValueError(key, 'file', where, `must be an object, got ${shown(value)}`);
    }
    for (const inner of Object.keys(value)) {
      if (!NESTED_KEYS[key].has(inner)) {
        throw new ConfigValueError(
          `${key}.${inner}`,
          'file',
          where,
          `unknown field '${key}.${inner}'`,
          `known ${key} fields: ${[...NESTED_KEYS[key]].join(', ')}`,
        );
      }
    }
  }
  return parsed as NodeConfigFile;
}

export async function readConfigFile(path: string): Promise<NodeConfigFile> {
  let content: string;
  try {
    content = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ConfigValueError(
      'config',
      'flag',
      '--config',
      `cannot read ${path}: ${(cause as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch (cause) {
    throw new ConfigValueError(
      'config',
      'file',
      `config file ${path}`,
      `not valid JSON: ${(cause as Error).message}`,
    );
  }
  return checkConfigFileFields(parsed, path);
}

/** The value at a dotted path of a file or flags object; null and undefined are "not set". */
function lookup(object: object | undefined, path: string): unknown {
  let value: unknown = object;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value ?? undefined;
}

const SOURCE_RANK: Record<ConfigSource, number> = {
  default: 0,
  preset: 1,
  file: 2,
  env: 3,
  flag: 4,
};

/** Resolves a node's configuration and the source of every value. */
export function resolveNodeConfigWithSources(inputs: NodeConfigInputs = {}): ResolvedNodeConfig {
  const env = inputs.env ?? process.env;
  const file = checkConfigFileFields(inputs.file ?? {}, inputs.filePath);
  const flags = inputs.flags ?? {};
  const fileWhere = inputs.filePath === undefined ? 'file' : `file ${inputs.filePath}`;
  const values = new Map<string, unknown>();
  const sources: Record<string, ConfigSource> = {};
  const wheres = new Map<string, string>();
  const warnings: string[] = [];

  // The deprecated gossipPreset stands for preset (and now moves Raft timings as well).
  const fileForPreset = { ...file };
  if (file.gossipPreset != null) {
    warnings.push(
      `${fileWhere}: gossipPreset is deprecated; use preset, which sets gossip and Raft timings`,
    );
    if (file.preset != null && file.preset !== file.gossipPreset) {
      throw new ConfigValueError(
        'gossipPreset',
        'file',
        fileWhere,
        `${shown(file.gossipPreset)} contradicts preset ${shown(file.preset)}`,
        'gossipPreset is a deprecated alias of preset: keep preset only',
      );
    }
    fileForPreset.preset = file.gossipPreset;
  }

  const resolve = (spec: Field, preset: NodePreset): void => {
    const envText = env[spec.env];
    const given: [unknown, ConfigSource, string, boolean][] = [
      [
        lookup(flags, spec.path),
        'flag',
        spec.flag === undefined ? 'flag' : `flag ${spec.flag}`,
        true,
      ],
      [envText === '' ? undefined : envText, 'env', `env ${spec.env}`, true],
      [lookup(fileForPreset, spec.path), 'file', fileWhere, false],
    ];
    for (const [value, source, where, textual] of given) {
      if (value === undefined) continue;
      try {
        values.set(spec.path, spec.parse(value, textual));
      } catch (error) {
        if (!(error instanceof ValueProblem)) throw error;
        throw new ConfigValueError(spec.path, source, where, error.message, error.hint);
      }
      sources[spec.path] = source;
      wheres.set(spec.path, where);
      return;
    }
    const { value, source } = spec.fallback({ env, preset, values });
    values.set(spec.path, value);
    sources[spec.path] = source;
    wheres.set(spec.path, source === 'preset' ? `preset ${preset}` : 'default');
  };

  const presetField = FIELDS.find((f) => f.path === 'preset')!;
  resolve(presetField, 'lan');
  const preset = values.get('preset') as NodePreset;
  for (const spec of FIELDS) if (spec !== presetField) resolve(spec, preset);

  const get = <T>(path: string) => values.get(path) as T;
  const fail = (path: string, problem: string, hint?: string): never => {
    throw new ConfigValueError(path, sources[path]!, wheres.get(path)!, problem, hint);
  };

  const listen = get<HostPort>('listen');
  const advertise = get<HostPort>('advertise');
  if (advertise.host === '0.0.0.0' || advertise.host === '::') {
    fail(
      'advertise',
      `cannot advertise the wildcard address ${advertise.host}` +
        (sources['advertise'] === 'default' ? ' (advertise defaults to listen)' : ''),
      'set --advertise to an address other nodes can reach',
    );
  }

  const raft = Object.fromEntries(
    Object.keys(RAFT_TIMINGS_PRESETS.lan).map((key) => [key, get(`raft.${key}`)]),
  ) as unknown as RaftTimings;
  const [problem] = raftTimingsProblems(raft, 'raft.');
  if (problem !== undefined) {
    // Blame the value someone set rather than the one it contradicts, and say where that
    // one came from.
    let blamed = `raft.${problem.field}`;
    let other = problem.other === undefined ? undefined : `raft.${problem.other}`;
    if (other !== undefined && SOURCE_RANK[sources[other]!] > SOURCE_RANK[sources[blamed]!]) {
      [blamed, other] = [other, blamed];
    }
    fail(
      blamed,
      `${problem.message}${other === undefined ? '' : `; ${other} is from ${wheres.get(other)}`}`,
    );
  }

  const connectionValues = Object.fromEntries(
    Object.keys(DEFAULT_CONNECTION_OPTIONS).map((key) => [key, get(`connection.${key}`)]),
  ) as unknown as ConnectionOptions;
  let connection: ConnectionOptions;
  try {
    connection = connectionOptions(connectionValues);
  } catch (error) {
    // The transport's own limits (a frame size above the protocol's): blame the option named.
    if (!(error instanceof ConfigFieldError)) throw error;
    return fail(`connection.${error.field}`, error.problem, error.hint);
  }
  const poolValues = Object.fromEntries(
    Object.keys(DEFAULT_POOL_OPTIONS).map((key) => [key, get(`pool.${key}`)]),
  ) as unknown as PoolOptions;
  let pool: PoolOptions;
  try {
    pool = poolOptions(poolValues);
  } catch (error) {
    if (!(error instanceof ConfigFieldError)) throw error;
    return fail(`pool.${error.field}`, error.problem, error.hint);
  }
  const bufferedBytesMax = get<number>('bufferedBytesMax');
  if (bufferedBytesMax < connection.frameBytesMax) {
    fail(
      'bufferedBytesMax',
      `must be at least connection.frameBytesMax (${connection.frameBytesMax}), got ${bufferedBytesMax}`,
      'a smaller budget could never hold one frame of the largest size',
    );
  }

  const certsSource = sources['certsDir'];
  const config: NodeConfig = {
    id: get('id'),
    cluster: get('cluster'),
    preset,
    dataDir: get('dataDir'),
    listen,
    advertise,
    http: get('http'),
    httpProbesOpen: get('httpProbesOpen'),
    httpRatePerSecond: get('httpRatePerSecond'),
    httpRateBurst: get('httpRateBurst'),
    httpHeadersTimeoutMs: get('httpHeadersTimeoutMs'),
    httpRequestTimeoutMs: get('httpRequestTimeoutMs'),
    httpBodyBytesMax: get('httpBodyBytesMax'),
    certsDir: get('certsDir'),
    // RDBNET_CERTS_DIR has always been the default directory, created when missing.
    certsDirIsDefault: certsSource === 'default' || certsSource === 'env',
    insecure: get('insecure'),
    connectionsMax: get('connectionsMax'),
    unauthenticatedConnectionsMax: get('unauthenticatedConnectionsMax'),
    unauthenticatedConnectionsPerSourceMax: get('unauthenticatedConnectionsPerSourceMax'),
    idleTimeoutMs: get('idleTimeoutMs'),
    bufferedBytesMax,
    shutdownGraceMs: get('shutdownGraceMs'),
    firewallConnectionsPerSourceMax: get('firewallConnectionsPerSourceMax'),
    firewallConnectionsPerSecond: get('firewallConnectionsPerSecond'),
    firewallHandshakesPerSecond: get('firewallHandshakesPerSecond'),
    firewallMessagesPerSecond: get('firewallMessagesPerSecond'),
    firewallDatagramsPerSecond: get('firewallDatagramsPerSecond'),
    firewallBanAfterFailures: get('firewallBanAfterFailures'),
    firewallBanMs: get('firewallBanMs'),
    connection,
    pool,
    join: get('join'),
    bootstrapExpect: get('bootstrapExpect'),
    retryJoin: get('retryJoin'),
    register: get('register'),
    clusterId: get('clusterId'),
    deadVoterRemoveAfterMs: get('deadVoterRemoveAfterMs'),
    idReclaimAfterMs: get('idReclaimAfterMs'),
    ...(Object.fromEntries(CLUSTER_TUNABLE_KEYS.map((key) => [key, get(key)])) as ClusterTunables),
    logLevel: get('logLevel'),
    raft,
    groups: get('groups'),
    metrics: get('metrics'),
  };
  // Listed in field order (the preset was resolved first).
  const ordered = Object.fromEntries(FIELDS.map((f) => [f.path, sources[f.path]!]));
  return { config, sources: ordered, warnings };
}

/** resolveNodeConfigWithSources with flag values first (`overrides`), then env, then file. */
export function resolveNodeConfig(
  overrides: NodeConfigFlags = {},
  file: NodeConfigFile = {},
  env: NodeJS.ProcessEnv = process.env,
): NodeConfig {
  return resolveNodeConfigWithSources({ flags: overrides, file, env }).config;
}

/** A configuration as JSON: what `node config --json` prints, and a valid --config file. */
export interface NodeConfigJson {
  id: string | null;
  cluster: string;
  preset: NodePreset;
  listen: string;
  advertise: string;
  http: string | null;
  httpProbesOpen: boolean;
  httpRatePerSecond: number;
  httpRateBurst: number;
  httpHeadersTimeoutMs: number;
  httpRequestTimeoutMs: number;
  httpBodyBytesMax: number;
  dataDir: string;
  certsDir: string;
  insecure: boolean;
  join: string[] | null;
  bootstrapExpect: number | null;
  groups: string[];
  metrics: string | null;
  retryJoin: string[];
  register: string[];
  clusterId: string | null;
  connectionsMax: number;
  unauthenticatedConnectionsMax: number;
  unauthenticatedConnectionsPerSourceMax: number;
  idleTimeoutMs: number;
  bufferedBytesMax: number;
  shutdownGraceMs: number;
  firewallConnectionsPerSourceMax: number;
  firewallConnectionsPerSecond: number;
  firewallHandshakesPerSecond: number;
  firewallMessagesPerSecond: number;
  firewallDatagramsPerSecond: number;
  firewallBanAfterFailures: number;
  firewallBanMs: number;
  deadVoterRemoveAfterMs: number;
  idReclaimAfterMs: number;
  discoveryIntervalMs: number;
  peerRequestTimeoutMs: number;
  joinRetryMs: number;
  bootstrapWaitMs: number;
  joinGossipWaitMs: number;
  promoteLagMaxEntries: number;
  deadVoterCheckIntervalMs: number;
  logLevel: LogLevel;
  raft: RaftTimings;
  connection: ConnectionOptions;
  pool: PoolOptions;
}

export function nodeConfigJson(config: NodeConfig): NodeConfigJson {
  return {
    id: config.id ?? null,
    cluster: config.cluster,
    preset: config.preset,
    listen: formatHostPort(config.listen),
    advertise: formatHostPort(config.advertise),
    http: config.http === undefined ? null : formatHostPort(config.http),
    httpProbesOpen: config.httpProbesOpen,
    httpRatePerSecond: config.httpRatePerSecond,
    httpRateBurst: config.httpRateBurst,
    httpHeadersTimeoutMs: config.httpHeadersTimeoutMs,
    httpRequestTimeoutMs: config.httpRequestTimeoutMs,
    httpBodyBytesMax: config.httpBodyBytesMax,
    dataDir: config.dataDir,
    certsDir: config.certsDir,
    insecure: config.insecure,
    join: config.join === undefined ? null : [...config.join],
    bootstrapExpect: config.bootstrapExpect ?? null,
    groups: [...config.groups],
    metrics: config.metrics === undefined ? null : formatHostPort(config.metrics),
    retryJoin: [...config.retryJoin],
    register: [...config.register],
    clusterId: config.clusterId ?? null,
    connectionsMax: config.connectionsMax,
    unauthenticatedConnectionsMax: config.unauthenticatedConnectionsMax,
    unauthenticatedConnectionsPerSourceMax: config.unauthenticatedConnectionsPerSourceMax,
    idleTimeoutMs: config.idleTimeoutMs,
    bufferedBytesMax: config.bufferedBytesMax,
    shutdownGraceMs: config.shutdownGraceMs,
    firewallConnectionsPerSourceMax: config.firewallConnectionsPerSourceMax,
    firewallConnectionsPerSecond: config.firewallConnectionsPerSecond,
    firewallHandshakesPerSecond: config.firewallHandshakesPerSecond,
    firewallMessagesPerSecond: config.firewallMessagesPerSecond,
    firewallDatagramsPerSecond: config.firewallDatagramsPerSecond,
    firewallBanAfterFailures: config.firewallBanAfterFailures,
    firewallBanMs: config.firewallBanMs,
    deadVoterRemoveAfterMs: config.deadVoterRemoveAfterMs,
    idReclaimAfterMs: config.idReclaimAfterMs,
    ...clusterTunablesOf(config),
    logLevel: config.logLevel,
    raft: { ...config.raft },
    connection: { ...config.connection },
    pool: { ...config.pool },
  };
}

/** The cluster service's tunables of a configuration (ClusterServiceInit.tunables). */
export function clusterTunablesOf(config: NodeConfig): ClusterTunables {
  return Object.fromEntries(
    CLUSTER_TUNABLE_KEYS.map((key) => [key, config[key]]),
  ) as unknown as ClusterTunables;
}
