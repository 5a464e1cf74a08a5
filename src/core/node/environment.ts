/**
 * Everything a node does I/O or reads time and chance through, in one injected object
 * (ARCHITECTURE.md practices 2 and 3). `productionEnvironment()` is what `rdbnet node start`
 * runs on: the system clock and timers, Math.random, files in the data and certs dirs, a
 * TransportServer, mTLS PeerLinks and the UDP socket. The cluster simulation
 * (test/sim/cluster-sim.test.ts) builds whole RdbnetNodes on a simulated one: virtual time,
 * a seeded Random, MemoryStorage and the simulated network.
 */

import { join } from 'node:path';
import type { ClusterServiceInit } from '../cluster/init.ts';
import { ClusterService } from '../cluster/service.ts';
import type { NodeConfig } from '../config/node-config.ts';
import { type DedupStore, FileDedupStore } from '../dataplane/dedup-store.ts';
import type { PeerResilience } from '../lb/registry.ts';
import type { DatagramBinder } from '../membership/gossip/index.ts';
import type { LocalEndpoint } from '../protocol/handshake.ts';
import type { PeerTransport } from '../rpc/peer.ts';
import { request } from '../rpc/request.ts';
import {
  type Counters,
  type Logger,
  type Random,
  systemClock,
  systemRandom,
  type TimedClock,
} from '../runtime/index.ts';
import type { Keyring } from '../security/keyring.ts';
import type { TlsMaterial } from '../security/tls.ts';
import { parseHostPort } from '../transport/address.ts';
import { dial } from '../transport/dial.ts';
import { connectionOptions } from '../transport/options.ts';
import { AUDIT_FILE_NAME, type AuditSink, auditFileSink } from './audit-log.ts';
import { NodeCertificates } from './certificates.ts';
import { loadNodeCredentials } from './credentials.ts';
import { lockDataDir, type NodeRecord, readOrCreateNodeRecord } from './data-dir.ts';
import { loadNodeKeyring } from './gossip.ts';
import { listenTransport, type NodeListener, type NodeListenInit } from './listener.ts';
import { preflightNodeStart } from './preflight.ts';
import { createPeerResilience } from './resilience.ts';

/** A node's certificates once loaded, and the cluster name they carry. */
export interface LoadedNodeCertificates {
  clusterId: string;
  /** The certificate, key, trust bundle and revocations, reloadable and rotatable. */
  certificates: NodeCertificates;
}

export interface NodeEnvironment {
  /** Time and every timer the node and its parts set (Raft ticks, gossip, chores, waits). */
  readonly clock: TimedClock;
  /** Raft elections, new cluster ids, gossip's probe order, retry jitter. */
  readonly random: Random;
  /** Shown by `node status` (the process id in production). */
  readonly pid: number;
  /** Checks made before anything is written (listen port free, certificate files there);
   * undefined: none (the simulator's network and files cannot be in use). */
  preflight?(config: NodeConfig): Promise<void>;
  /** The node record (its id), created on the first start. */
  nodeRecord(config: NodeConfig): Promise<NodeRecord>;
  /** Holds the data dir for this process; resolves with the release. */
  lockDataDir(config: NodeConfig): Promise<() => Promise<void>>;
  /** TLS credentials for `nodeId` (null on --insecure nodes); `onChange` gets new material. */
  certificates(init: {
    config: NodeConfig;
    nodeId: string;
    log: Logger;
    counters: Counters;
    onChange(material: TlsMaterial): void;
  }): Promise<LoadedNodeCertificates | null>;
  /** The gossip keyring (refuses a start without one where it must exist). */
  keyring(config: NodeConfig, log: Logger): Promise<Keyring>;
  /** Opens the Raft storage under a new cluster service (verified before anything listens). */
  openCluster(init: ClusterServiceInit): Promise<ClusterService>;
  /** Starts answering requests with the node's admin handler. */
  listen(init: NodeListenInit): Promise<NodeListener>;
  /** Node-to-node requests of the cluster service and gossip. Undefined: each dials its own
   * mTLS PeerLinks. */
  readonly peers?: PeerTransport;
  /** Where the data plane records answered exactly-once keys (so a restart does not run
   * them again). Undefined: the window lives in memory only. */
  dedupStore?(config: NodeConfig): DedupStore;
  /** Gossip's datagrams. Undefined: the keyring-sealed UDP socket. */
  readonly datagrams?: DatagramBinder;
  /** Where the audit log's lines go: `<dataDir>/audit.log` in production; undefined: memory only. */
  auditSink?(config: NodeConfig): AuditSink | null;
  /** Breaker, retry budget, rate limit and latency per peer, on this environment's clock. */
  resilience(): PeerResilience;
  /** Whether the node at `address` answers a status request within `timeoutMs` (the
   * diagnosis of a member gossip does not reach). */
  answersStatus(
    address: string,
    local: LocalEndpoint,
    tls: TlsMaterial | null,
    timeoutMs: number,
  ): Promise<boolean>;
}

/** The exactly-once deduplication log in the data dir (docs/data-dir.md). */
export const DEDUP_LOG_FILE_NAME = 'dataplane-dedup.log';

/** What `rdbnet node start` runs on. */
export function productionEnvironment(): NodeEnvironment {
  return {
    clock: systemClock,
    random: systemRandom,
    pid: process.pid,
    preflight: preflightNodeStart,
    nodeRecord: (config) => readOrCreateNodeRecord(config.dataDir, config.id),
    lockDataDir: (config) => lockDataDir(config.dataDir),
    certificates: loadCertificateFiles,
    keyring: loadNodeKeyring,
    openCluster: (init) => ClusterService.open(init),
    listen: listenTransport,
    dedupStore: (config) =>
      new FileDedupStore(join(config.dataDir, DEDUP_LOG_FILE_NAME), systemClock),
    auditSink: (config) => auditFileSink(join(config.dataDir, AUDIT_FILE_NAME)),
    resilience: () => createPeerResilience(),
    answersStatus: answersStatusOverTcp,
  };
}

/** The certs dir's files (created on the first start in the default certs dir). */
async function loadCertificateFiles(init: {
  config: NodeConfig;
  nodeId: string;
  log: Logger;
  counters: Counters;
  onChange(material: TlsMaterial): void;
}): Promise<LoadedNodeCertificates | null> {
  const { config, log } = init;
  if (config.insecure) {
    log.warn(
      'running without TLS (--insecure): connections are neither encrypted nor authenticated',
    );
    return null;
  }
  const hosts = [
    ...new Set([config.listen.host, config.advertise.host, 'localhost', '127.0.0.1', '::1']),
  ].filter((host) => host !== '0.0.0.0' && host !== '::');
  const credentials = await loadNodeCredentials({
    certsDir: config.certsDir,
    nodeId: init.nodeId,
    createMissing: config.certsDirIsDefault,
    defaultCluster: config.cluster,
    hosts,
  });
  for (const file of credentials.created) log.info('created certificate file', { file });
  const certificates = await NodeCertificates.load({
    certsDir: config.certsDir,
    nodeId: init.nodeId,
    identity: credentials.identity,
    tls: credentials.tls,
    log,
    counters: init.counters,
    onChange: init.onChange,
  });
  return { clusterId: credentials.identity.cluster, certificates };
}

async function answersStatusOverTcp(
  address: string,
  local: LocalEndpoint,
  tls: TlsMaterial | null,
  timeoutMs: number,
): Promise<boolean> {
  try {
    const connection = await dial({
      address: parseHostPort(address),
      local,
      tls,
      options: connectionOptions({ handshakeTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs }),
    });
    try {
      await request(connection, 'statusRequest', {});
      return true;
    } finally {
      connection.close();
    }
  } catch {
    return false;
  }
}
