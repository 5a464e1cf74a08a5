/**
 * The node's composition root: how one NodeConfig and one NodeEnvironment become the init
 * of the cluster service and of gossip. RdbnetNode.start runs it for `rdbnet node start`
 * (production environment) and for the cluster simulation (a simulated one), so the two
 * cannot be wired differently.
 */
import type { ClusterServiceInit } from '../cluster/init.ts';
import { raftCoreConfig } from '../cluster/timings.ts';
import { clusterTunablesOf, NODE_PRESETS, type NodeConfig } from '../config/node-config.ts';
import { HTTP_LIMITS_DEFAULT, type HttpMounts, type HttpServerInit } from '../http/server.ts';
import { TokenVerifier } from '../http/tokens.ts';
import type { PeerResilience } from '../lb/registry.ts';
import type { LocalEndpoint } from '../protocol/handshake.ts';
import type { PeerRequestHandler } from '../rpc/peer.ts';
import type { Counters, Logger } from '../runtime/index.ts';
import type { Keyring } from '../security/keyring.ts';
import type { TlsMaterial } from '../security/tls.ts';
import type { HostPort } from '../transport/address.ts';
import { SOFTWARE_VERSION } from '../version.ts';
import type { NodeCertificates } from './certificates.ts';
import type { NodeEnvironment } from './environment.ts';
import {
  gossipKeyringPath,
  type NodeGossip,
  type NodeGossipInit,
  nodeAddressOf,
} from './gossip.ts';

/** What the node being assembled lends its parts. */
export interface NodeParts {
  id: string;
  /** The certificates' cluster name (the handshake's cluster id). */
  clusterId: string;
  /** Whether a gossip datagram from this IP is taken in (the node's ACL); default every source. */
  admitDatagram?: (ip: string) => boolean;
  config: NodeConfig;
  environment: NodeEnvironment;
  log: Logger;
  counters: Counters;
  resilience: PeerResilience;
  /** The node's current TLS material; null on --insecure nodes. */
  tls(): TlsMaterial | null;
  /** Gossip once it runs (it starts after the cluster service), else null. */
  gossip(): NodeGossip | null;
}

export function localEndpointOf(parts: Pick<NodeParts, 'id' | 'clusterId'>): LocalEndpoint {
  return {
    id: parts.id,
    clusterId: parts.clusterId,
    role: 'node',
    softwareVersion: SOFTWARE_VERSION,
  };
}

/** The cluster service of a node: its seeds, timings, tunables, and the environment's clock,
 * randomness and transport (mTLS PeerLinks of its own when the environment has none). */
export function clusterServiceInit(parts: NodeParts): ClusterServiceInit {
  const { config, environment, log } = parts;
  return {
    id: parts.id,
    dataDir: config.dataDir,
    clusterName: parts.clusterId,
    // --retry-join alone still means "wait for a cluster", as an empty --join does.
    seeds: config.join ?? (config.retryJoin.length > 0 ? [] : undefined),
    clusterId: config.clusterId,
    bootstrapExpect: config.bootstrapExpect,
    local: localEndpointOf(parts),
    tls: parts.tls,
    connection: config.connection,
    log,
    counters: parts.counters,
    clock: environment.clock,
    random: environment.random,
    ...(environment.peers === undefined ? {} : { transport: environment.peers }),
    deadVoterRemoveAfterMs: config.deadVoterRemoveAfterMs,
    // The preset's (or overridden) Raft timings: ticks for the core, deadlines for the service.
    tickMs: config.raft.tickMs,
    raft: raftCoreConfig(config.raft),
    timeouts: {
      proposalTimeoutMs: config.raft.proposalTimeoutMs,
      forwardDeadlineMs: config.raft.forwardDeadlineMs,
      transferTimeoutMs: config.raft.transferTimeoutMs,
    },
    idReclaimAfterMs: config.idReclaimAfterMs,
    tunables: clusterTunablesOf(config),
    // Forwards to the leader, the status hop, joins and link upkeep share the breakers,
    // retry budgets and limits of gossip's requests (`rdbnet lb status`).
    peerGuard: parts.resilience,
    onSeeds: (seeds) => {
      parts
        .gossip()
        ?.driver.join(seeds)
        .catch((error: unknown) => {
          log.warn('gossip join through new seeds gave up', { reason: (error as Error).message });
        });
    },
    joinGossip: async (addresses) => {
      // One push-pull round when gossip already has someone alive, else its full attempts;
      // a refusal (its own join still under way) or giving up is retried by the caller.
      await parts
        .gossip()
        ?.driver.join(addresses)
        .catch((error: unknown) => {
          log.debug('gossip join through discovered peers ended', {
            reason: (error as Error).message,
          });
        });
    },
    // Gossip starts after the cluster service; until then there is no view.
    gossip: () => {
      const gossip = parts.gossip();
      if (gossip === null) return null;
      const now = environment.clock.nowMs();
      return gossip.driver.members().map((member) => ({
        id: member.id,
        state: member.state,
        inStateMs: now - member.stateChangedAtMs,
        address: nodeAddressOf(member),
      }));
    },
  };
}

/** Gossip of a node listening at `boundAddress` and advertising `advertise`. */
export function nodeGossipInit(
  parts: NodeParts,
  started: {
    keyring: Keyring;
    boundAddress: string;
    advertise: string;
    /** Members' addresses from the Raft configuration (a restarted member's seeds). */
    memberAddresses: readonly string[];
  },
): NodeGossipInit {
  const { config, environment } = parts;
  // Gossip binds UDP on the listen host and the bound TCP port number.
  const wildcard = config.listen.host === '0.0.0.0' || config.listen.host === '::';
  return {
    id: parts.id,
    host: wildcard ? config.advertise.host : config.listen.host,
    port: Number(started.boundAddress.split(':').pop()),
    keyring: started.keyring,
    keyringPath: config.insecure ? null : gossipKeyringPath(config.certsDir),
    preset: NODE_PRESETS[config.preset].gossip,
    advertise: started.advertise,
    groups: config.groups,
    deadReclaimMs: config.idReclaimAfterMs,
    clusterId: parts.clusterId,
    seeds: [...new Set([...(config.join ?? []), ...started.memberAddresses])],
    ...(environment.peers === undefined
      ? { links: { local: localEndpointOf(parts), tls: parts.tls, options: config.connection } }
      : { peers: environment.peers }),
    ...(environment.datagrams === undefined ? {} : { datagrams: environment.datagrams }),
    clock: environment.clock,
    random: environment.random,
    log: parts.log,
    resilience: parts.resilience,
    ...(parts.admitDatagram === undefined ? {} : { admitSource: parts.admitDatagram }),
  };
}

/** The HTTP face of a node started with --http: its admin handler behind HTTP credentials. */
export function nodeHttpInit(
  parts: NodeParts,
  started: {
    http: HostPort;
    admin: PeerRequestHandler;
    certificates: NodeCertificates | null;
    ready(): boolean;
    mounts?: HttpMounts;
  },
): HttpServerInit {
  const { config, environment } = parts;
  const certificates = started.certificates;
  return {
    listen: started.http,
    tls: parts.tls(),
    clusterId: parts.clusterId,
    ...(certificates === null ? {} : { admit: certificates.admit.bind(certificates) }),
    admin: started.admin,
    tokens: new TokenVerifier(config.dataDir, () => environment.clock.wallMs()),
    probesOpen: config.httpProbesOpen,
    ready: started.ready,
    limits: {
      ...HTTP_LIMITS_DEFAULT,
      ratePerSecond: config.httpRatePerSecond,
      rateBurst: config.httpRateBurst,
      headersTimeoutMs: config.httpHeadersTimeoutMs,
      requestTimeoutMs: config.httpRequestTimeoutMs,
      bodyBytesMax: config.httpBodyBytesMax,
    },
    clock: environment.clock,
    log: parts.log,
    ...(started.mounts === undefined ? {} : { mounts: started.mounts }),
  };
}
