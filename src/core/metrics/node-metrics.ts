/**
 * A node's metrics: what the node already counts (the counters of `rdbnet node status`,
 * gossip's and Raft's statistics, the per-peer resilience state) copied into Prometheus
 * families when scraped, so the hot paths pay nothing for them between scrapes. The names and
 * labels are listed in docs/CLI.md ("Metrics").
 */
import { receivedCounterName, TOPIC_KIND_NAMES, type TopicClass } from '../dataplane/dataplane.ts';
import type { LbStatusReply, StatusReply } from '../protocol/messages.ts';
import type { Clock } from '../runtime/index.ts';
import type { CounterSeries, Family, GaugeSeries, MetricsRegistry } from './registry.ts';

/** What the collector reads from a node (RdbnetNode implements it). */
export interface NodeMetricsSource {
  readonly id: string;
  readonly clusterId: string;
  status(): StatusReply;
  /** The gossip view, this node included. */
  members(): readonly { state: string; isSelf: boolean }[];
  /** Raft's term, leader, role and indexes; null while the node belongs to no cluster. */
  raftProgress(): {
    term: number;
    lead: string;
    role: string;
    commit: number;
    applied: number;
    lastIndex: number;
  } | null;
  /** When the node's certificate expires (wall ms); null on --insecure nodes. */
  certificateNotAfterMs(): number | null;
  lbStatus(): LbStatusReply;
}

/** Gossip member states, each always exported (0 when none). */
const MEMBER_STATES = ['alive', 'suspect', 'dead', 'left'] as const;
const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;
const RAFT_ROLES = ['follower', 'preCandidate', 'candidate', 'leader'] as const;
const TOPIC_CLASSES: readonly TopicClass[] = ['builtin', 'user'];

/** Counter families mirrored one-to-one from a node counter. */
const MIRRORED_COUNTERS: readonly { name: string; help: string; counter: string }[] = [
  {
    name: 'rdbnet_connections_accepted_total',
    help: 'Connections this node accepted (TCP, before the handshake).',
    counter: 'connections.accepted',
  },
  {
    name: 'rdbnet_connections_idle_closed_total',
    help: 'Authenticated connections closed for sending nothing for idleTimeoutMs.',
    counter: 'connections.idle_closed',
  },
  {
    name: 'rdbnet_gossip_probes_total',
    help: 'SWIM probes (pings) this node sent.',
    counter: 'gossip.swim.probesSent',
  },
  {
    name: 'rdbnet_gossip_probes_failed_total',
    help: 'SWIM probes that got no ack, directly or through others.',
    counter: 'gossip.swim.probesFailed',
  },
  {
    name: 'rdbnet_gossip_indirect_probes_total',
    help: 'Indirect probes (ping-req) this node asked others for.',
    counter: 'gossip.swim.indirectProbes',
  },
  {
    name: 'rdbnet_gossip_suspicions_total',
    help: 'Members this node started suspecting.',
    counter: 'gossip.swim.suspicionsStarted',
  },
  {
    name: 'rdbnet_gossip_deaths_total',
    help: 'Members this node declared dead when their suspicion timed out.',
    counter: 'gossip.swim.deathsDeclared',
  },
  {
    name: 'rdbnet_gossip_refutations_total',
    help: 'Suspicions of this node that it refuted.',
    counter: 'gossip.swim.refutations',
  },
  {
    name: 'rdbnet_gossip_dissemination_rounds_total',
    help: 'Gossip (dissemination) rounds this node ran.',
    counter: 'gossip.swim.gossipRounds',
  },
  {
    name: 'rdbnet_gossip_push_pulls_total',
    help: 'Push-pull state exchanges this node started.',
    counter: 'gossip.swim.pushPullsSent',
  },
  {
    name: 'rdbnet_raft_leader_changes_total',
    help: 'Times the Raft leader this node knows of changed.',
    counter: 'cluster.leader_changes',
  },
  {
    name: 'rdbnet_raft_elections_total',
    help: 'Elections this node started as a candidate.',
    counter: 'raft.elections',
  },
  {
    name: 'rdbnet_auth_forbidden_total',
    help: 'Requests refused with RDB_FORBIDDEN.',
    counter: 'auth.forbidden',
  },
  {
    name: 'rdbnet_lb_requests_total',
    help: 'Requests this node sent its peers through the per-peer resilience layer.',
    counter: 'lb.requests',
  },
  {
    name: 'rdbnet_lb_failures_total',
    help: 'Of those requests, the ones that failed.',
    counter: 'lb.failures',
  },
  {
    name: 'rdbnet_lb_circuit_opened_total',
    help: 'Times a per-peer circuit breaker opened.',
    counter: 'lb.circuit.opened',
  },
  {
    name: 'rdbnet_dataplane_delivered_total',
    help: 'Data-plane messages handed to a topic handler on this node.',
    counter: 'dataplane.delivered',
  },
  {
    name: 'rdbnet_dataplane_refused_queue_full_total',
    help: "Data-plane messages refused because their topic's queue was full.",
    counter: 'dataplane.refused_queue_full',
  },
  {
    name: 'rdbnet_dataplane_handler_failed_total',
    help: 'Data-plane messages whose handler threw.',
    counter: 'dataplane.handler_failed',
  },
];

/**
 * Registers the node's families on `registry`, refreshed from `source` at every scrape.
 * `clock.wallMs()` dates the certificate's expiry.
 */
export function registerNodeMetrics(
  registry: MetricsRegistry,
  source: NodeMetricsSource,
  clock: Clock,
): void {
  const info = registry.gauge({
    name: 'rdbnet_node_info',
    help: "The node's id, cluster and software version (always 1).",
    labelNames: ['id', 'cluster', 'version'],
    seriesMax: 1,
  });
  const mirrored = MIRRORED_COUNTERS.map(({ name, help, counter }) => ({
    series: registry.counter({ name, help }).only,
    counter,
  }));
  const open = registry.gauge({
    name: 'rdbnet_connections_open',
    help: 'Connections open on this node now, by stage: authenticated, or still in the handshake (preauth).',
    labelNames: ['stage'],
  });
  const openAuthenticated = open.labels('authenticated');
  const openPreauth = open.labels('preauth');
  const refused = registry.counter({
    name: 'rdbnet_connections_refused_total',
    help: 'Connections refused or closed before or in the handshake, by error code.',
    labelNames: ['code'],
    seriesMax: 64,
  });
  const frames = registry.counter({
    name: 'rdbnet_frames_total',
    help: 'Protocol frames on connections this node accepted, by direction.',
    labelNames: ['direction'],
  });
  const framesIn = frames.labels('in');
  const framesOut = frames.labels('out');
  const bytes = registry.counter({
    name: 'rdbnet_bytes_total',
    help: 'Bytes of protocol frames on connections this node accepted (after TLS decryption), by direction.',
    labelNames: ['direction'],
  });
  const bytesIn = bytes.labels('in');
  const bytesOut = bytes.labels('out');
  const gossipBytes = registry.counter({
    name: 'rdbnet_gossip_udp_bytes_total',
    help: 'Gossip UDP bytes, by direction.',
    labelNames: ['direction'],
  });
  const gossipBytesIn = gossipBytes.labels('in');
  const gossipBytesOut = gossipBytes.labels('out');
  const members = registry.gauge({
    name: 'rdbnet_gossip_members',
    help: "Members in this node's gossip view (itself included), by state.",
    labelNames: ['state'],
  });
  const memberSeries = new Map<string, GaugeSeries>(
    MEMBER_STATES.map((state) => [state, members.labels(state)]),
  );
  const term = registry.gauge({ name: 'rdbnet_raft_term', help: 'Current Raft term.' }).only;
  const commit = registry.gauge({
    name: 'rdbnet_raft_commit_index',
    help: 'Highest Raft log index known committed.',
  }).only;
  const applied = registry.gauge({
    name: 'rdbnet_raft_applied_index',
    help: 'Highest Raft log index applied to the cluster configuration.',
  }).only;
  const lastIndex = registry.gauge({
    name: 'rdbnet_raft_last_index',
    help: "Last index of this node's Raft log.",
  }).only;
  const role = registry.gauge({
    name: 'rdbnet_raft_role',
    help: "This node's Raft role (1 for the current one).",
    labelNames: ['role'],
  });
  const roleSeries = RAFT_ROLES.map((name) => ({ name, series: role.labels(name) }));
  const hasLeader = registry.gauge({
    name: 'rdbnet_raft_has_leader',
    help: '1 when this node knows a Raft leader, else 0.',
  }).only;
  const certificateExpiry = registry.gauge({
    name: 'rdbnet_certificate_expiry_seconds',
    help: "Seconds until this node's certificate expires (negative: expired); absent on --insecure nodes.",
  });
  const breaker = registry.gauge({
    name: 'rdbnet_lb_breaker_state',
    help: "Each peer's circuit breaker for requests this node sends it (1 for the current state).",
    labelNames: ['peer', 'state'],
    seriesMax: 3 * 256,
  });
  const ejected = registry.gauge({
    name: 'rdbnet_lb_peer_ejected',
    help: '1 while outlier detection holds the peer out of rotation.',
    labelNames: ['peer'],
    seriesMax: 256,
  });
  const inflight = registry.gauge({
    name: 'rdbnet_lb_peer_inflight',
    help: 'Requests to the peer in flight now.',
    labelNames: ['peer'],
    seriesMax: 256,
  });
  const latency = registry.gauge({
    name: 'rdbnet_lb_peer_latency_ewma_seconds',
    help: "Moving average of the peer's reply time (absent before its first reply).",
    labelNames: ['peer'],
    seriesMax: 256,
  });
  const received = registry.counter({
    name: 'rdbnet_dataplane_messages_received_total',
    help: 'Data-plane messages this node received, by kind and topic class (builtin: echo; user: the rest).',
    labelNames: ['kind', 'topic_class'],
  });
  const receivedSeries: { series: CounterSeries; counter: string }[] = [];
  for (const kind of TOPIC_KIND_NAMES) {
    for (const topicClass of TOPIC_CLASSES) {
      receivedSeries.push({
        series: received.labels(kind, topicClass),
        counter: receivedCounterName(kind, topicClass),
      });
    }
  }

  registry.onCollect(() => {
    const status = source.status();
    const counters = status.counters;
    const value = (name: string): number => counters[name] ?? 0;
    info.reset();
    info.labels(source.id, source.clusterId, status.version).set(1);
    for (const { series, counter } of mirrored) series.setTotal(value(counter));
    for (const { series, counter } of receivedSeries) series.setTotal(value(counter));
    openAuthenticated.set(value('connections.authenticated'));
    openPreauth.set(value('connections.preauth.open'));
    for (const [name, total] of Object.entries(counters)) {
      if (name.startsWith('connections.rejected.')) {
        refused.labels(name.slice('connections.rejected.'.length)).setTotal(total);
      }
    }
    framesIn.setTotal(value('frames.in'));
    framesOut.setTotal(value('frames.out'));
    bytesIn.setTotal(value('bytes.in'));
    bytesOut.setTotal(value('bytes.out'));
    gossipBytesIn.setTotal(value('gossip.udp.bytesReceived'));
    gossipBytesOut.setTotal(value('gossip.udp.bytesSent'));

    for (const series of memberSeries.values()) series.set(0);
    for (const member of source.members()) memberSeries.get(member.state)?.inc();

    const raft = source.raftProgress();
    if (raft !== null) {
      term.set(raft.term);
      commit.set(raft.commit);
      applied.set(raft.applied);
      lastIndex.set(raft.lastIndex);
      hasLeader.set(raft.lead === '' ? 0 : 1);
      for (const { name, series } of roleSeries) series.set(raft.role === name ? 1 : 0);
    }

    certificateExpiry.reset();
    const notAfterMs = source.certificateNotAfterMs();
    if (notAfterMs !== null) {
      certificateExpiry.only.set(Math.round((notAfterMs - clock.wallMs()) / 1000));
    }

    // Peers come and go: these gauges are rebuilt from the current list at every scrape.
    resetAll([breaker, ejected, inflight, latency]);
    for (const peer of source.lbStatus().peers) {
      const name = peer.id === '' ? peer.address : peer.id;
      for (const state of BREAKER_STATES) {
        breaker.labels(name, state).set(peer.breakerState === state ? 1 : 0);
      }
      ejected.labels(name).set(peer.ejected ? 1 : 0);
      inflight.labels(name).set(peer.inflight);
      if (peer.latencyEwmaMs >= 0) latency.labels(name).set(peer.latencyEwmaMs / 1000);
    }
  });
}

function resetAll(families: readonly Family[]): void {
  for (const family of families) family.reset();
}
