/**
 * The GraphQL schema of a node (types and field names after seed 001's GraphQL section and
 * seed 002's list) and its resolvers. Every resolver asks the node through the admin handler,
 * as the caller (admin-requests.ts): no value is computed here that the CLI's requests do not
 * answer, and no operation is implemented twice. Counters are Float: they outgrow GraphQL's
 * 32-bit Int.
 */
import { buildSchema, type GraphQLSchema } from 'graphql';
import { ErrorCode, RdbnetError } from '../errors.ts';
import type {
  GossipMember,
  HealthReply,
  MemberEventRecord,
  NodeHealth,
  StatusReply,
} from '../protocol/messages.ts';
import type { AdminAsk } from './admin-requests.ts';
import type { LeaderChange, NodeStreams, StreamKind, StreamKinds } from './events.ts';

export const SCHEMA_SDL = /* GraphQL */ `
"A member of this node's gossip view, with its health as this node sees it."
type Peer {
  nodeId: String!
  address: String!
  "alive, suspect, dead or left"
  state: String!
  "healthy when alive and ready with no problem; else unhealthy"
  health: String!
  incarnation: Float!
  rttMs: Float
  phi: Float!
  score: Float!
  self: Boolean!
  problems: [String!]!
}

type TopologyMember {
  id: String!
  address: String!
  state: String!
  "voter, learner, or none (a gossip member outside the Raft configuration)"
  raftRole: String!
}

type Topology {
  localNode: String!
  "Members alive or suspect in gossip, this node included."
  clusterSize: Int!
  clusterId: String!
  leader: String!
  term: Float!
  members: [TopologyMember!]!
}

type NetworkStats {
  "Frames this node sent on the connections it accepted."
  messagesSent: Float!
  "Frames this node received on the connections it accepted."
  messagesReceived: Float!
  bytesSent: Float!
  bytesReceived: Float!
  activeConnections: Int!
  "Mean of the per-peer reply-time averages of the requests this node sends; null before any."
  avgLatencyMs: Float
  gossipProbes: Float!
  gossipBytesSent: Float!
  gossipBytesReceived: Float!
}

type NodeHealth {
  id: String!
  address: String!
  state: String!
  phi: Float!
  lastHeartbeatMs: Float!
  live: Boolean!
  ready: Boolean!
  problems: [String!]!
  score: Float!
}

type Health {
  "healthy, degraded or critical (as rdbnet health)"
  status: String!
  quorum: Boolean!
  nodes: [NodeHealth!]!
}

type MemberEvent {
  seq: Float!
  "join, suspect, alive, dead, left or update"
  eventType: String!
  nodeId: String!
  address: String!
  incarnation: Float!
  "ISO 8601"
  timestamp: String!
}

type Membership {
  members: [Peer!]!
  "The recent events the node keeps, after afterSeq (as rdbnet cluster events)."
  events(afterSeq: Float = 0): [MemberEvent!]!
}

type ClusterMember {
  id: String!
  address: String!
  role: String!
  voter: Boolean!
  matchIndex: Float!
  lag: Float!
}

type Cluster {
  clusterId: String!
  leader: String!
  term: Float!
  commitIndex: Float!
  appliedIndex: Float!
  members: [ClusterMember!]!
}

type LbPeer {
  id: String!
  address: String!
  memberState: String!
  "closed, open or half-open"
  breakerState: String!
  ejected: Boolean!
  inflight: Int!
  "negative before the first reply"
  latencyEwmaMs: Float!
  errorRate: Float!
  requests: Float!
  failures: Float!
}

type LoadBalancer {
  peers: [LbPeer!]!
}

type Connections {
  open: Int!
  authenticated: Int!
  handshaking: Int!
  accepted: Float!
  "Refused or closed in or before the handshake, by error code."
  refused: [CodeCount!]!
}

type CodeCount {
  code: String!
  count: Float!
}

type NodeStatus {
  id: String!
  address: String!
  version: String!
  protocolVersion: Int!
  uptimeMs: Float!
  state: String!
  clusterId: String!
  tls: Boolean!
  connections: Int!
  preset: String
}

type JoinResult {
  success: Boolean!
  message: String!
  clusterId: String!
  clusterSize: Int!
}

type LeaveResult {
  success: Boolean!
  message: String!
  id: String!
}

type TransferResult {
  leader: String!
  term: Float!
}

type LeaderChange {
  "'' while no leader is known"
  leader: String!
  term: Float!
  timestamp: String!
}

type Query {
  "This node (rdbnet node status)."
  node: NodeStatus!
  "Gossip members with their health (rdbnet cluster members and rdbnet health)."
  peers: [Peer!]!
  "The same list as peers (seed 002's name)."
  nodes: [Peer!]!
  topology: Topology!
  networkStats: NetworkStats!
  health: Health!
  membership: Membership!
  cluster: Cluster!
  loadBalancer: LoadBalancer!
  connections: Connections!
}

type Mutation {
  "rdbnet cluster join --seeds (a node started with --join that has no cluster yet)."
  joinCluster(seedNodes: [String!]!, waitMs: Int = 10000): JoinResult!
  "rdbnet cluster leave: this node leaves its cluster and then stops."
  leaveCluster(force: Boolean = false): LeaveResult!
  "rdbnet cluster transfer-leader --to"
  transferLeadership(to: String!): TransferResult!
}

type Subscription {
  "Membership events (as rdbnet cluster events --follow), from the moment of subscribing."
  peerEvents: MemberEvent!
  "The node's health: the current one first, then each change of status or of a node's state."
  healthChanges: Health!
  "The Raft leader: the current one first, then each change."
  leaderChanges: LeaderChange!
}
`;

export const schema: GraphQLSchema = buildSchema(SCHEMA_SDL);

/** What every resolver gets: the caller's requests to the node, and the node's streams. */
export interface GraphqlContext {
  ask: AdminAsk;
  /** Checks the caller may follow a stream (by asking its request once), then subscribes. */
  subscribe<K extends StreamKind>(kind: K): Promise<AsyncIterableIterator<StreamKinds[K]>>;
}

/** Waits allowed for a join, as `rdbnet cluster join --wait` allows. */
const JOIN_WAIT_MS_MAX = 120_000;

function peerOf(member: GossipMember, health: Map<string, NodeHealth>) {
  const seen = health.get(member.id);
  const problems = seen?.problems ?? [];
  const healthy =
    member.state === 'alive' && (seen === undefined || (seen.ready && problems.length === 0));
  return {
    nodeId: member.id,
    address: member.address,
    state: member.state,
    health: healthy ? 'healthy' : 'unhealthy',
    incarnation: member.incarnation,
    rttMs: Number.isFinite(member.rttMs) && member.rttMs >= 0 ? member.rttMs : null,
    phi: Number.isFinite(member.phi) ? member.phi : 0,
    score: member.score,
    self: member.isSelf,
    problems,
  };
}

async function peers(ask: AdminAsk) {
  const [members, health] = await Promise.all([
    ask('membersRequest', {}),
    ask('healthRequest', {}),
  ]);
  const byId = new Map(health.nodes.map((node) => [node.id, node]));
  return members.members.map((member) => peerOf(member, byId));
}

function memberEventOf(event: MemberEventRecord) {
  return {
    seq: event.seq,
    eventType: event.type,
    nodeId: event.id,
    address: event.address,
    incarnation: event.incarnation,
    timestamp: new Date(event.atMs).toISOString(),
  };
}

function healthOf(reply: HealthReply) {
  return {
    status: reply.status,
    quorum: reply.quorum,
    nodes: reply.nodes.map((node) => ({
      ...node,
      phi: Number.isFinite(node.phi) ? node.phi : 0,
    })),
  };
}

function networkStatsOf(status: StatusReply, latencies: number[]) {
  const counter = (name: string) => status.counters[name] ?? 0;
  return {
    messagesSent: counter('frames.out'),
    messagesReceived: counter('frames.in'),
    bytesSent: counter('bytes.out'),
    bytesReceived: counter('bytes.in'),
    activeConnections: status.connections,
    avgLatencyMs:
      latencies.length === 0 ? null : latencies.reduce((a, b) => a + b, 0) / latencies.length,
    gossipProbes: counter('gossip.swim.probesSent'),
    gossipBytesSent: counter('gossip.udp.bytesSent'),
    gossipBytesReceived: counter('gossip.udp.bytesReceived'),
  };
}

type Args = Record<string, unknown>;

/** Root resolvers: graphql-js calls root fields as rootValue[field](args, context, info). */
export const rootValue = {
  node: (_: Args, { ask }: GraphqlContext) =>
    ask('statusRequest', {}).then((status) => ({ ...status, preset: status.preset ?? null })),
  peers: (_: Args, { ask }: GraphqlContext) => peers(ask),
  nodes: (_: Args, { ask }: GraphqlContext) => peers(ask),
  topology: async (_: Args, { ask }: GraphqlContext) => {
    const [members, cluster] = await Promise.all([
      ask('membersRequest', {}),
      ask('clusterStatusRequest', { localOnly: true }),
    ]);
    const raftRoles = new Map(
      cluster.members.map((member) => [member.id, member.voter ? 'voter' : 'learner']),
    );
    return {
      localNode: members.id,
      clusterSize: members.members.filter((m) => m.state === 'alive' || m.state === 'suspect')
        .length,
      clusterId: cluster.clusterId,
      leader: cluster.leader,
      term: cluster.term,
      members: members.members.map((member) => ({
        id: member.id,
        address: member.address,
        state: member.state,
        raftRole: raftRoles.get(member.id) ?? 'none',
      })),
    };
  },
  networkStats: async (_: Args, { ask }: GraphqlContext) => {
    const [status, lb] = await Promise.all([ask('statusRequest', {}), ask('lbStatusRequest', {})]);
    const latencies = lb.peers.map((peer) => peer.latencyEwmaMs).filter((ms) => ms >= 0);
    return networkStatsOf(status, latencies);
  },
  health: (_: Args, { ask }: GraphqlContext) => ask('healthRequest', {}).then(healthOf),
  membership: (_: Args, { ask }: GraphqlContext) => ({
    members: () => peers(ask),
    events: async ({ afterSeq }: { afterSeq: number }) => {
      if (!Number.isInteger(afterSeq) || afterSeq < 0) {
        throw new RdbnetError(ErrorCode.Usage, `afterSeq must be a non-negative integer`);
      }
      const reply = await ask('memberEventsRequest', { afterSeq });
      return reply.events.map(memberEventOf);
    },
  }),
  cluster: (_: Args, { ask }: GraphqlContext) => ask('clusterStatusRequest', { localOnly: false }),
  loadBalancer: (_: Args, { ask }: GraphqlContext) => ask('lbStatusRequest', {}),
  connections: async (_: Args, { ask }: GraphqlContext) => {
    const status = await ask('statusRequest', {});
    const counter = (name: string) => status.counters[name] ?? 0;
    const prefix = 'connections.rejected.';
    return {
      open: status.connections,
      authenticated: counter('connections.authenticated'),
      handshaking: counter('connections.preauth.open'),
      accepted: counter('connections.accepted'),
      refused: Object.entries(status.counters)
        .filter(([name]) => name.startsWith(prefix))
        .map(([name, count]) => ({ code: name.slice(prefix.length), count })),
    };
  },

  joinCluster: async (
    { seedNodes, waitMs }: { seedNodes: string[]; waitMs: number },
    { ask }: GraphqlContext,
  ) => {
    if (seedNodes.length === 0) {
      throw new RdbnetError(ErrorCode.Usage, 'seedNodes must name at least one host:port');
    }
    if (!Number.isInteger(waitMs) || waitMs < 1 || waitMs > JOIN_WAIT_MS_MAX) {
      throw new RdbnetError(ErrorCode.Usage, `waitMs must be from 1 to ${JOIN_WAIT_MS_MAX}`);
    }
    const reply = await ask('clusterJoinRequest', { seeds: seedNodes, waitMs });
    return {
      success: true,
      message: `joined cluster ${reply.clusterId}`,
      clusterId: reply.clusterId,
      clusterSize: reply.members.length,
    };
  },
  leaveCluster: async ({ force }: { force: boolean }, { ask }: GraphqlContext) => {
    const reply = await ask('leaveRequest', { force });
    return { success: reply.left, message: `${reply.id} left the cluster`, id: reply.id };
  },
  transferLeadership: ({ to }: { to: string }, { ask }: GraphqlContext) =>
    ask('transferLeaderRequest', { to, forwarded: false }),

  // Subscriptions: graphql-js resolves each event against { <field>: event }.
  peerEvents: (_: Args, context: GraphqlContext) =>
    mapped(context.subscribe('member'), (event) => ({ peerEvents: memberEventOf(event) })),
  healthChanges: (_: Args, context: GraphqlContext) =>
    mapped(context.subscribe('health'), (health) => ({ healthChanges: healthOf(health) })),
  leaderChanges: (_: Args, context: GraphqlContext) =>
    mapped(context.subscribe('leader'), (change: LeaderChange) => ({
      leaderChanges: { leader: change.leader, term: change.term, timestamp: change.at },
    })),
};

/** `source` with each event passed through `map`; return() ends the source too. */
async function mapped<T, U>(
  source: Promise<AsyncIterableIterator<T>>,
  map: (event: T) => U,
): Promise<AsyncIterableIterator<U>> {
  const events = await source;
  const iterator: AsyncIterableIterator<U> = {
    async next() {
      const result = await events.next();
      return result.done
        ? { value: undefined, done: true }
        : { value: map(result.value), done: false };
    },
    async return() {
      await events.return?.();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

/** Wraps the node's streams for one caller: `ask` checks the caller first. */
export function subscriberOf(ask: AdminAsk, streams: NodeStreams): GraphqlContext['subscribe'] {
  const check: Record<StreamKind, () => Promise<unknown>> = {
    member: () => ask('memberEventsRequest', { afterSeq: 0 }),
    leader: () => ask('clusterStatusRequest', { localOnly: true }),
    health: () => ask('healthRequest', {}),
  };
  return async (kind) => {
    await check[kind]();
    const subscriber = streams.subscribe(kind);
    if (subscriber === undefined) {
      throw new RdbnetError(
        ErrorCode.QueueFull,
        `too many subscribers of ${kind} events on this node; try again later`,
      );
    }
    return subscriber;
  };
}
