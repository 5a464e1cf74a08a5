/**
 * The one typed configuration of a node. Every field has a documented default; flags
 * override a --config file, which overrides the defaults.
 */
import { readFile } from 'node:fs/promises';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { SWIM_PRESETS, type SwimPreset } from '../membership/swim/config.ts';
import { validateName } from '../security/identity.ts';
import { formatHostPort, type HostPort, parseHostPort } from '../transport/address.ts';
import { type ConnectionOptions, connectionOptions } from '../transport/options.ts';
import {
  UNAUTHENTICATED_CONNECTIONS_MAX_DEFAULT,
  UNAUTHENTICATED_CONNECTIONS_PER_SOURCE_MAX_DEFAULT,
} from '../transport/server.ts';
import { DEFAULT_CLUSTER, DEFAULT_LISTEN, defaultCertsDir, defaultDataDir } from './home.ts';

export interface NodeConfig {
  /** Node id, unique in the cluster. Default: the id recorded in dataDir, or a new
   * random `node-` + 6 hex digits on first start (then recorded). */
  id: string | undefined;
  /** Cluster name used on --insecure nodes. With TLS the cluster comes from the node's
   * certificate. Default 'rdbnet'. */
  cluster: string;
  /** Where the node keeps its state. Default `$RDBNET_HOME/node`. */
  dataDir: string;
  /** Address the node listens on for the binary protocol. Default 127.0.0.1:7000. */
  listen: HostPort;
  /** Address other nodes and clients should use to reach this one. Default: listen. */
  advertise: HostPort;
  /** Certificates directory (layout in docs/CLI.md). Default `$RDBNET_CERTS_DIR` or
   * `$RDBNET_HOME/certs`; certificates are created there on first start. */
  certsDir: string;
  /** True when certsDir is the default one, so that a missing CA may be created. */
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
  /** Per-connection limits (frame size, requests in flight, deadlines, buffers). */
  connection: ConnectionOptions;
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
   * The Raft leader removes a voter that gossip (SWIM) reports `dead` continuously for
   * longer than this, one at a time and only when quorum stays safe: the voters left alive
   * must be a majority of the new voter set, and a cluster of 3 or more voters is never
   * shrunk below 3. 0 turns the removal off. Keep it well below gossip's tombstone time
   * (60 s on LAN timings), after which a dead member is forgotten. Default 30000 ms.
   */
  deadVoterRemoveAfterMs: number;
  /**
   * Gossip (SWIM) timings: `lan` (default; crash seen dead in about 2-3 s, 2 s stalls
   * tolerated), `wan` (RTTs up to about 300 ms, 5 s stalls tolerated), `local` (loopback,
   * 1 s stalls). Every node of a cluster should use the same preset.
   */
  gossipPreset: SwimPreset;
}

/** Default of NodeConfig.deadVoterRemoveAfterMs. */
export const DEAD_VOTER_REMOVE_AFTER_MS_DEFAULT = 30_000;
/** Default of NodeConfig.idleTimeoutMs. */
export const IDLE_TIMEOUT_MS_DEFAULT = 300_000;
/** Default of NodeConfig.bufferedBytesMax. */
export const BUFFERED_BYTES_MAX_DEFAULT = 256 * 1024 * 1024;

/** What a --config file may contain: the same fields, addresses as "host:port" strings. */
export interface NodeConfigFile {
  id?: string;
  cluster?: string;
  dataDir?: string;
  listen?: string;
  advertise?: string;
  certsDir?: string;
  insecure?: boolean;
  connectionsMax?: number;
  unauthenticatedConnectionsMax?: number;
  unauthenticatedConnectionsPerSourceMax?: number;
  idleTimeoutMs?: number;
  bufferedBytesMax?: number;
  shutdownGraceMs?: number;
  connection?: Partial<ConnectionOptions>;
  join?: string[] | string;
  bootstrapExpect?: number;
  deadVoterRemoveAfterMs?: number;
  gossipPreset?: string;
}

const FILE_KEYS = new Set([
  'id',
  'cluster',
  'dataDir',
  'listen',
  'advertise',
  'certsDir',
  'insecure',
  'connectionsMax',
  'unauthenticatedConnectionsMax',
  'unauthenticatedConnectionsPerSourceMax',
  'idleTimeoutMs',
  'bufferedBytesMax',
  'shutdownGraceMs',
  'connection',
  'join',
  'bootstrapExpect',
  'deadVoterRemoveAfterMs',
  'gossipPreset',
]);

export async function readConfigFile(path: string): Promise<NodeConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new RdbnetError(
      ErrorCode.ConfigInvalid,
      `cannot read config file ${path}: ${(cause as Error).message}`,
      { cause },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new RdbnetError(
      ErrorCode.ConfigInvalid,
      `config file ${path} is not valid JSON: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new RdbnetError(ErrorCode.ConfigInvalid, `config file ${path} must hold a JSON object`);
  }
  for (const key of Object.keys(parsed)) {
    if (!FILE_KEYS.has(key)) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `config file ${path}: unknown field '${key}'`,
        {
          hint: `known fields: ${[...FILE_KEYS].join(', ')}`,
        },
      );
    }
  }
  return parsed as NodeConfigFile;
}

export function resolveNodeConfig(
  overrides: NodeConfigFile,
  file: NodeConfigFile = {},
  env: NodeJS.ProcessEnv = process.env,
): NodeConfig {
  const pick = <K extends keyof NodeConfigFile>(key: K): NodeConfigFile[K] =>
    overrides[key] ?? file[key];
  const listen = parseHostPort(pick('listen') ?? DEFAULT_LISTEN, 'listen address');
  const advertiseText = pick('advertise');
  const advertise =
    advertiseText === undefined ? listen : parseHostPort(advertiseText, 'advertise address');
  if (advertise.host === '0.0.0.0' || advertise.host === '::') {
    throw new RdbnetError(
      ErrorCode.Usage,
      `cannot advertise the wildcard address ${advertise.host}`,
      {
        hint: 'set --advertise to an address other nodes can reach',
      },
    );
  }
  const id = pick('id');
  const certsDir = pick('certsDir');
  const joinValue = pick('join');
  const join =
    joinValue === undefined
      ? undefined
      : parseAddressList(Array.isArray(joinValue) ? joinValue.join(',') : String(joinValue));
  const bootstrapExpect = pick('bootstrapExpect');
  if (
    bootstrapExpect !== undefined &&
    !(Number.isInteger(bootstrapExpect) && bootstrapExpect >= 1 && bootstrapExpect <= 64)
  ) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `bootstrap-expect must be 1..64, got ${bootstrapExpect}`,
    );
  }
  const config: NodeConfig = {
    id: id === undefined ? undefined : validateName('node id', id),
    cluster: validateName('cluster name', pick('cluster') ?? DEFAULT_CLUSTER),
    dataDir: pick('dataDir') ?? defaultDataDir(env),
    listen,
    advertise,
    certsDir: certsDir ?? defaultCertsDir(env),
    certsDirIsDefault: certsDir === undefined,
    insecure: pick('insecure') ?? false,
    connectionsMax: pick('connectionsMax') ?? 4096,
    unauthenticatedConnectionsMax:
      pick('unauthenticatedConnectionsMax') ?? UNAUTHENTICATED_CONNECTIONS_MAX_DEFAULT,
    unauthenticatedConnectionsPerSourceMax:
      pick('unauthenticatedConnectionsPerSourceMax') ??
      UNAUTHENTICATED_CONNECTIONS_PER_SOURCE_MAX_DEFAULT,
    idleTimeoutMs: pick('idleTimeoutMs') ?? IDLE_TIMEOUT_MS_DEFAULT,
    bufferedBytesMax: pick('bufferedBytesMax') ?? BUFFERED_BYTES_MAX_DEFAULT,
    shutdownGraceMs: pick('shutdownGraceMs') ?? 3000,
    connection: connectionOptions({ ...file.connection, ...overrides.connection }),
    join,
    bootstrapExpect,
    deadVoterRemoveAfterMs: pick('deadVoterRemoveAfterMs') ?? DEAD_VOTER_REMOVE_AFTER_MS_DEFAULT,
    gossipPreset: gossipPresetOf(pick('gossipPreset')),
  };
  if (!(config.shutdownGraceMs > 0 && config.shutdownGraceMs <= 4500)) {
    throw new RdbnetError(
      ErrorCode.ConfigInvalid,
      'shutdownGraceMs must be in 1..4500 so a stop completes within 5 s',
    );
  }
  if (
    !(
      Number.isInteger(config.deadVoterRemoveAfterMs) &&
      config.deadVoterRemoveAfterMs >= 0 &&
      config.deadVoterRemoveAfterMs <= 86_400_000
    )
  ) {
    throw new RdbnetError(
      ErrorCode.ConfigInvalid,
      'deadVoterRemoveAfterMs must be an integer in 0..86400000 (0: never remove)',
    );
  }
  for (const name of [
    'connectionsMax',
    'unauthenticatedConnectionsMax',
    'unauthenticatedConnectionsPerSourceMax',
  ] as const) {
    if (!(Number.isSafeInteger(config[name]) && config[name] > 0)) {
      throw new RdbnetError(ErrorCode.ConfigInvalid, `${name} must be a positive integer`);
    }
  }
  if (!(Number.isSafeInteger(config.idleTimeoutMs) && config.idleTimeoutMs >= 0)) {
    throw new RdbnetError(
      ErrorCode.ConfigInvalid,
      'idleTimeoutMs must be a non-negative integer (0: never)',
    );
  }
  if (
    !(
      Number.isSafeInteger(config.bufferedBytesMax) &&
      config.bufferedBytesMax >= config.connection.frameBytesMax
    )
  ) {
    throw new RdbnetError(
      ErrorCode.ConfigInvalid,
      `bufferedBytesMax must be an integer of at least connection.frameBytesMax (${config.connection.frameBytesMax})`,
      { hint: 'a smaller budget could never hold one frame of the largest size' },
    );
  }
  return config;
}

/**
 * A list of host:port addresses, comma- or whitespace-separated (an empty list is allowed),
 * normalised to host:port; a bad one is a usage error naming it.
 */
export function parseAddressList(text: string): string[] {
  const out: string[] = [];
  for (const item of text.split(/[\s,]+/)) {
    if (item === '') continue;
    const address = formatHostPort(parseHostPort(item, 'join address'));
    if (!out.includes(address)) out.push(address);
  }
  return out;
}

function gossipPresetOf(name: string | undefined): SwimPreset {
  if (name === undefined) return 'lan';
  if (Object.hasOwn(SWIM_PRESETS, name)) return name as SwimPreset;
  throw new RdbnetError(ErrorCode.ConfigInvalid, `unknown gossipPreset '${name}'`, {
    hint: `one of ${Object.keys(SWIM_PRESETS).join(', ')}`,
  });
}
