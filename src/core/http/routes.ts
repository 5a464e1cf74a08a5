/**
 * The REST routes of the HTTP face, one table: path, method, the JSON schemas that validate the
 * request (and that the OpenAPI document is generated from), and how the request becomes one
 * of the admin API's operations. A route never answers by itself: it names an Envelope request
 * and hands it to the node's adminHandler (src/core/api/admin.ts), which authorizes it for the
 * caller's principal and answers it exactly as it answers the CLI over the binary protocol.
 * Routes of the seeds' API whose capability rdbnet does not have are listed in ABSENT_ROUTES
 * and answer 501 naming it.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import {
  type MemberCandidate,
  STRATEGIES,
  type StrategyName,
  selectFromMembers,
} from '../lb/index.ts';
import {
  type EnvelopeBody,
  type EnvelopeKind,
  type NodeHealth,
  TopicKindCode,
} from '../protocol/messages.ts';

export const API_PREFIX = '/api/v1/network';

/** Sends one admin request as the caller and resolves with the reply's body. */
export type AskAdmin = <K extends EnvelopeKind>(kind: K, body: EnvelopeBody<K>) => Promise<unknown>;

export interface RouteRequest {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: Record<string, unknown>;
}

export type JsonSchema = Record<string, unknown>;

export interface HttpRoute {
  method: 'GET' | 'POST';
  /** Path below API_PREFIX, fastify syntax (`/peers/:node_id`). */
  path: string;
  summary: string;
  tag: string;
  /** The admin operation(s) it performs (authorization.ts names), for docs. */
  operation: string;
  schema: { body?: JsonSchema; params?: JsonSchema; querystring?: JsonSchema };
  /** The 200 answer's schema, where given: documented, and serialized by it (faster). */
  response?: JsonSchema;
  handle(ask: AskAdmin, request: RouteRequest): Promise<unknown>;
}

/** Longest data-plane deadline a caller may ask for (ms). */
export const HTTP_DEADLINE_MS_MAX = 60_000;
const DEADLINE_MS_DEFAULT = 5000;
/** How long join and bootstrap wait for the cluster by default (the CLI's --wait). */
const WAIT_MS_DEFAULT = 30_000;
/** The data plane's payloads arrive as UTF-8 text in JSON; 1 MiB at most. */
const PAYLOAD_CHARS_MAX = 1024 * 1024;
const ID_SCHEMA = {
  type: 'string',
  minLength: 1,
  maxLength: 63,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
};
const ADDRESS_SCHEMA = { type: 'string', minLength: 3, maxLength: 261 };
const NODE_PARAMS = {
  type: 'object',
  required: ['node_id'],
  properties: { node_id: ID_SCHEMA },
  additionalProperties: false,
};
/** HealthReply (protocol/messages.ts) as JSON: `rdbnet health --json`. */
const HEALTH_REPLY_SCHEMA = {
  type: 'object',
  required: ['status', 'quorum', 'nodes'],
  properties: {
    status: { type: 'string', enum: ['healthy', 'degraded', 'critical'] },
    quorum: { type: 'boolean' },
    nodes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'address', 'state', 'live', 'ready'],
        properties: {
          id: { type: 'string' },
          address: { type: 'string' },
          state: { type: 'string' },
          phi: { type: 'number' },
          lastHeartbeatMs: { type: 'number' },
          live: { type: 'boolean' },
          ready: { type: 'boolean' },
          problems: { type: 'array', items: { type: 'string' } },
          certDaysLeft: { type: 'number' },
          hasCertificate: { type: 'boolean' },
          score: { type: 'number' },
        },
      },
    },
  },
};
const TOPIC_SCHEMA = {
  type: 'string',
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9._:/-]+$',
};

function object(properties: Record<string, unknown>, required: string[] = []): JsonSchema {
  return { type: 'object', properties, required, additionalProperties: false };
}

function notFound(what: string): never {
  throw new RdbnetError(ErrorCode.TargetUnknown, what);
}

function oneNode(reply: { nodes: NodeHealth[] }, id: string): NodeHealth {
  return reply.nodes.find((node) => node.id === id) ?? notFound(`no node ${id} in the health view`);
}

type Members = EnvelopeBody<'membersReply'>;
type Health = EnvelopeBody<'healthReply'>;

/** The members view in the seeds' shape (their field names) plus rdbnet's own fields. */
function membershipView(reply: Members) {
  return {
    node: reply.id,
    members: reply.members.map((member) => ({ ...member, status: member.state })),
    total_members: reply.members.length,
  };
}

function deadlineOf(body: Record<string, unknown>): number {
  return (body['deadline_ms'] as number | undefined) ?? DEADLINE_MS_DEFAULT;
}

function topicMessage(
  body: Record<string, unknown>,
  kind: TopicKindCode,
): EnvelopeBody<'topicRequest'> {
  return {
    topic: body['topic'] as string,
    payload: new TextEncoder().encode((body['payload'] as string | undefined) ?? ''),
    deadlineMs: deadlineOf(body),
    id: '',
    kind,
    to: (body['target_node'] as string | undefined) ?? '',
    group: (body['group'] as string | undefined) ?? '',
    forwarded: false,
  };
}

/** A topic reply with its payload as text (the data plane's payloads are bytes). */
function topicAnswer(reply: EnvelopeBody<'topicReply'>) {
  return {
    from: reply.from,
    payload: Buffer.from(reply.payload).toString('utf8'),
    acked: reply.acked,
    missing: reply.missing,
  };
}

const TOPIC_BODY = (extra: Record<string, unknown>, required: string[]) =>
  object(
    {
      topic: TOPIC_SCHEMA,
      payload: { type: 'string', maxLength: PAYLOAD_CHARS_MAX },
      deadline_ms: { type: 'integer', minimum: 1, maximum: HTTP_DEADLINE_MS_MAX },
      ...extra,
    },
    ['topic', ...required],
  );

export const ROUTES: readonly HttpRoute[] = [
  {
    method: 'GET',
    path: '/health',
    summary: "The cluster's health as this node sees it (members asked over TCP when suspect)",
    tag: 'health',
    operation: 'health',
    schema: {},
    response: HEALTH_REPLY_SCHEMA,
    handle: (ask) => ask('healthRequest', {}),
  },
  {
    method: 'GET',
    path: '/health/aggregate',
    summary: 'The overall health status, quorum and counts of nodes live and ready',
    tag: 'health',
    operation: 'health',
    schema: {},
    handle: async (ask) => {
      const reply = (await ask('healthRequest', {})) as Health;
      return {
        status: reply.status,
        quorum: reply.quorum,
        total_nodes: reply.nodes.length,
        live_nodes: reply.nodes.filter((node) => node.live).length,
        ready_nodes: reply.nodes.filter((node) => node.ready).length,
      };
    },
  },
  {
    method: 'GET',
    path: '/node/:node_id/health',
    summary: "One member's health",
    tag: 'health',
    operation: 'health',
    schema: { params: NODE_PARAMS },
    handle: async (ask, { params }) =>
      oneNode((await ask('healthRequest', {})) as Health, params['node_id']!),
  },
  {
    method: 'GET',
    path: '/health/liveness/:node_id',
    summary: 'Whether a member is live',
    tag: 'health',
    operation: 'health',
    schema: { params: NODE_PARAMS },
    handle: async (ask, { params }) => {
      const node = oneNode((await ask('healthRequest', {})) as Health, params['node_id']!);
      return { node_id: node.id, live: node.live, state: node.state };
    },
  },
  {
    method: 'GET',
    path: '/health/readiness/:node_id',
    summary: 'Whether a member is ready (live, in the cluster, no blocking problem)',
    tag: 'health',
    operation: 'health',
    schema: { params: NODE_PARAMS },
    handle: async (ask, { params }) => {
      const node = oneNode((await ask('healthRequest', {})) as Health, params['node_id']!);
      return { node_id: node.id, ready: node.ready, problems: node.problems };
    },
  },
  {
    method: 'GET',
    path: '/health/failure-detector/phi-values',
    summary: "Gossip's phi (suspicion) value of every member",
    tag: 'health',
    operation: 'cluster.members',
    schema: {},
    handle: async (ask) => {
      const reply = (await ask('membersRequest', {})) as Members;
      return {
        node: reply.id,
        phi_values: Object.fromEntries(reply.members.map((member) => [member.id, member.phi])),
      };
    },
  },
  {
    method: 'GET',
    path: '/stats',
    summary: "This node's status and counters (frames, bytes, connections, gossip, Raft)",
    tag: 'statistics',
    operation: 'node.status',
    schema: {},
    handle: (ask) => ask('statusRequest', {}),
  },
  {
    method: 'GET',
    path: '/peers',
    summary: "Every member in this node's gossip view",
    tag: 'membership',
    operation: 'cluster.members',
    schema: {},
    handle: async (ask) => {
      const reply = (await ask('membersRequest', {})) as Members;
      return { node: reply.id, peers: reply.members };
    },
  },
  {
    method: 'GET',
    path: '/peers/:node_id',
    summary: 'One member of the gossip view',
    tag: 'membership',
    operation: 'cluster.members',
    schema: { params: NODE_PARAMS },
    handle: async (ask, { params }) => {
      const reply = (await ask('membersRequest', {})) as Members;
      return (
        reply.members.find((member) => member.id === params['node_id']) ??
        notFound(`no member ${params['node_id']} in the gossip view of ${reply.id}`)
      );
    },
  },
  {
    method: 'GET',
    path: '/membership/view',
    summary: "The gossip membership view (the seeds' members and total_members)",
    tag: 'membership',
    operation: 'cluster.members',
    schema: {},
    handle: async (ask) => membershipView((await ask('membersRequest', {})) as Members),
  },
  {
    method: 'GET',
    path: '/membership/swim/status',
    summary: 'SWIM gossip: every member with its state, incarnation, RTT and phi',
    tag: 'membership',
    operation: 'cluster.members',
    schema: {},
    handle: async (ask) => membershipView((await ask('membersRequest', {})) as Members),
  },
  {
    method: 'GET',
    path: '/membership/events',
    summary: 'Gossip membership events after a sequence number (cluster events)',
    tag: 'membership',
    operation: 'cluster.events',
    schema: {
      // Query values are text; types are not coerced, so the digits are the schema.
      querystring: object({ after_seq: { type: 'string', pattern: '^[0-9]{1,15}$' } }),
    },
    handle: (ask, { query }) =>
      ask('memberEventsRequest', { afterSeq: Number(query['after_seq'] ?? 0) }),
  },
  {
    method: 'GET',
    path: '/topology',
    summary: 'The Raft configuration: members, voters, leader, term and indexes',
    tag: 'membership',
    operation: 'cluster.status',
    schema: {},
    handle: (ask) => ask('clusterStatusRequest', { localOnly: false }),
  },
  {
    method: 'GET',
    path: '/membership/raft/status',
    summary: 'Raft: leader, term, commit and applied index, members and their lag',
    tag: 'membership',
    operation: 'cluster.status',
    schema: {},
    handle: (ask) => ask('clusterStatusRequest', { localOnly: false }),
  },
  {
    method: 'GET',
    path: '/cluster/status',
    summary: 'Cluster status (as `rdbnet cluster status`)',
    tag: 'membership',
    operation: 'cluster.status',
    schema: {},
    handle: (ask) => ask('clusterStatusRequest', { localOnly: false }),
  },
  ...(['/membership/join', '/join'] as const).map(
    (path): HttpRoute => ({
      method: 'POST',
      path,
      summary: 'Make this node join the cluster of the seed nodes (as `rdbnet cluster join`)',
      tag: 'membership',
      operation: 'cluster.join',
      schema: {
        body: object(
          {
            seed_nodes: { type: 'array', minItems: 1, maxItems: 64, items: ADDRESS_SCHEMA },
            wait_ms: { type: 'integer', minimum: 1, maximum: HTTP_DEADLINE_MS_MAX },
          },
          ['seed_nodes'],
        ),
      },
      handle: (ask, { body }) =>
        ask('clusterJoinRequest', {
          seeds: body['seed_nodes'] as string[],
          waitMs: (body['wait_ms'] as number | undefined) ?? WAIT_MS_DEFAULT,
        }),
    }),
  ),
  ...(['/membership/leave', '/leave'] as const).map(
    (path): HttpRoute => ({
      method: 'POST',
      path,
      summary: 'Make this node leave the cluster gracefully (as `rdbnet cluster leave`)',
      tag: 'membership',
      operation: 'cluster.leave',
      schema: {
        body: object({ force: { type: 'boolean' }, reason: { type: 'string', maxLength: 256 } }),
      },
      handle: (ask, { body }) => ask('leaveRequest', { force: body['force'] === true }),
    }),
  ),
  {
    method: 'POST',
    path: '/membership/bootstrap',
    summary: 'Found a cluster from the nodes this one knows (as `rdbnet cluster bootstrap`)',
    tag: 'membership',
    operation: 'cluster.bootstrap',
    schema: {
      body: object(
        {
          expect: { type: 'integer', minimum: 1, maximum: 64 },
          wait_ms: { type: 'integer', minimum: 1, maximum: HTTP_DEADLINE_MS_MAX },
        },
        ['expect'],
      ),
    },
    handle: (ask, { body }) =>
      ask('clusterBootstrapRequest', {
        expect: body['expect'] as number,
        waitMs: (body['wait_ms'] as number | undefined) ?? WAIT_MS_DEFAULT,
      }),
  },
  {
    method: 'POST',
    path: '/membership/raft/transfer-leader',
    summary: 'Hand Raft leadership to a voter (as `rdbnet cluster transfer-leader`)',
    tag: 'membership',
    operation: 'cluster.transfer-leader',
    schema: { body: object({ to: { type: 'string', maxLength: 63 } }) },
    handle: (ask, { body }) =>
      ask('transferLeaderRequest', {
        to: (body['to'] as string | undefined) ?? '',
        forwarded: false,
      }),
  },
  {
    method: 'POST',
    path: '/loadbalancer/select',
    summary: 'Pick alive members by a balancing strategy (as `rdbnet lb select --node`)',
    tag: 'loadbalancer',
    operation: 'cluster.members',
    schema: {
      body: object(
        {
          strategy: { type: 'string', enum: [...STRATEGIES] },
          key: { type: 'string', minLength: 1, maxLength: 1024 },
          count: { type: 'integer', minimum: 1, maximum: 10_000 },
        },
        ['strategy'],
      ),
    },
    handle: async (ask, { body }) => {
      const reply = (await ask('membersRequest', {})) as Members;
      const members: MemberCandidate[] = reply.members.map((member) => ({
        id: member.id,
        address: member.address,
        state: member.state,
        score: member.score,
        rttMs: member.rttMs < 0 ? null : member.rttMs,
      }));
      const result = selectFromMembers(members, {
        strategy: body['strategy'] as StrategyName,
        key: (body['key'] as string | undefined) ?? null,
        count: (body['count'] as number | undefined) ?? 1,
      });
      return { ...result, selected_node: result.selected, node: reply.id };
    },
  },
  ...(['/loadbalancer/status', '/loadbalancer/circuit-breaker/status'] as const).map(
    (path): HttpRoute => ({
      method: 'GET',
      path,
      summary: "This node's per-peer circuit breakers, ejections and latency (`rdbnet lb status`)",
      tag: 'loadbalancer',
      operation: 'lb.status',
      schema: {},
      handle: (ask) => ask('lbStatusRequest', {}),
    }),
  ),
  {
    method: 'POST',
    path: '/send',
    summary: 'A one-way message to a topic on a member, acknowledged at its queue (`rdbnet send`)',
    tag: 'dataplane',
    operation: 'dataplane.message',
    schema: { body: TOPIC_BODY({ target_node: ID_SCHEMA }, ['target_node']) },
    handle: async (ask, { body }) => {
      const reply = (await ask(
        'topicRequest',
        topicMessage(body, TopicKindCode.Send),
      )) as EnvelopeBody<'topicReply'>;
      return { sent: true, target_node: reply.from || body['target_node'], topic: body['topic'] };
    },
  },
  {
    method: 'POST',
    path: '/request',
    summary: 'A request to a topic handler on a member and its answer (`rdbnet request`)',
    tag: 'dataplane',
    operation: 'dataplane.message',
    schema: { body: TOPIC_BODY({ target_node: ID_SCHEMA }, ['target_node']) },
    handle: async (ask, { body }) =>
      topicAnswer(
        (await ask(
          'topicRequest',
          topicMessage(body, TopicKindCode.Request),
        )) as EnvelopeBody<'topicReply'>,
      ),
  },
  {
    method: 'POST',
    path: '/broadcast',
    summary: 'A message to a topic on every live member, or on a group (`rdbnet broadcast`)',
    tag: 'dataplane',
    operation: 'dataplane.message',
    schema: { body: TOPIC_BODY({ group: { type: 'string', minLength: 1, maxLength: 32 } }, []) },
    handle: async (ask, { body }) => {
      const kind = body['group'] === undefined ? TopicKindCode.Broadcast : TopicKindCode.Multicast;
      const reply = (await ask(
        'topicRequest',
        topicMessage(body, kind),
      )) as EnvelopeBody<'topicReply'>;
      return {
        sent_to: reply.acked.length,
        failed: reply.missing.length,
        acked: reply.acked,
        missing: reply.missing,
      };
    },
  },
  {
    method: 'POST',
    path: '/ping',
    summary: 'RTTs this node measures to one member or to all (`rdbnet ping`)',
    tag: 'dataplane',
    operation: 'dataplane.ping',
    schema: { body: object({ target_node: ID_SCHEMA, all: { type: 'boolean' } }) },
    handle: (ask, { body }) =>
      ask('pingRequest', {
        to: (body['target_node'] as string | undefined) ?? '',
        all: body['all'] === true || body['target_node'] === undefined,
        forwarded: false,
      }),
  },
  {
    method: 'GET',
    path: '/security/certificates',
    summary:
      "The node's certificate, trust bundle and revoked serials (`rdbnet certs inspect --node`)",
    tag: 'security',
    operation: 'certs.info',
    schema: {},
    handle: (ask) => ask('certInfoRequest', {}),
  },
  {
    method: 'POST',
    path: '/security/certificates/rotate',
    summary:
      'Rotation phase 1: a new node key kept by the node and its CSR to sign (`rdbnet certs rotate`)',
    tag: 'security',
    operation: 'certs.rotate',
    schema: { body: object({ key_bits: { type: 'integer', enum: [2048, 3072, 4096] } }) },
    handle: (ask, { body }) =>
      ask('certRotateRequest', { keyBits: (body['key_bits'] as number | undefined) ?? 2048 }),
  },
  {
    method: 'GET',
    path: '/security/keyring',
    summary: 'The gossip keys of every alive member (`rdbnet keys list`)',
    tag: 'security',
    operation: 'keys.list',
    schema: {},
    handle: (ask) => ask('keyringRequest', { op: 'list', key: '', forwarded: false }),
  },
  {
    method: 'POST',
    path: '/security/keyring',
    summary: 'Install, use or remove a gossip key cluster-wide (`rdbnet keys install|use|remove`)',
    tag: 'security',
    operation: 'keys.install, keys.use, keys.remove',
    schema: {
      body: object(
        {
          op: { type: 'string', enum: ['install', 'use', 'remove'] },
          key: { type: 'string', minLength: 1, maxLength: 64 },
        },
        ['op', 'key'],
      ),
    },
    handle: (ask, { body }) =>
      ask('keyringRequest', {
        op: body['op'] as string,
        key: body['key'] as string,
        forwarded: false,
      }),
  },
];

/**
 * The seeds' endpoints whose capability rdbnet does not have: each answers 501 naming it
 * (README lists them). Paths below API_PREFIX.
 */
export const ABSENT_ROUTES: readonly {
  method: 'GET' | 'POST';
  path: string;
  capability: string;
}[] = [
  {
    method: 'POST',
    path: '/transport/tcp/connect',
    capability: 'opening transport connections on request',
  },
  { method: 'POST', path: '/transport/quic/connect', capability: 'a QUIC transport' },
  {
    method: 'GET',
    path: '/pool/statistics',
    capability: 'a connection pool with its own statistics',
  },
  { method: 'GET', path: '/pool/multiplexing/streams', capability: 'multiplexed streams' },
  { method: 'POST', path: '/pool/warmup', capability: 'connection pool warm-up' },
  { method: 'POST', path: '/pool/eviction/configure', capability: 'configurable pool eviction' },
  { method: 'POST', path: '/protocol/encode', capability: 'encoding messages on request' },
  { method: 'POST', path: '/protocol/handshake', capability: 'handshakes on request' },
  { method: 'POST', path: '/routing/send', capability: 'the routing layer (use POST /send)' },
  {
    method: 'POST',
    path: '/routing/broadcast',
    capability: 'the routing layer (use POST /broadcast)',
  },
  { method: 'POST', path: '/routing/scatter-gather', capability: 'scatter-gather requests' },
  { method: 'POST', path: '/routing/quorum', capability: 'quorum reads and writes' },
  {
    method: 'GET',
    path: '/health/heartbeat/status',
    capability: 'a heartbeat service apart from gossip',
  },
  { method: 'POST', path: '/health/checks/add', capability: 'user-defined health checks' },
  { method: 'POST', path: '/health/recovery/trigger', capability: 'triggered recovery' },
  {
    method: 'GET',
    path: '/discovery/dns/nodes',
    capability: 'discovery lookups run by the node (use `rdbnet discover`)',
  },
  {
    method: 'GET',
    path: '/discovery/kubernetes/nodes',
    capability: 'discovery lookups run by the node (use `rdbnet discover`)',
  },
  {
    method: 'POST',
    path: '/discovery/consul/register',
    capability: 'registration on request (use `node start --register`)',
  },
  {
    method: 'GET',
    path: '/discovery/etcd/nodes',
    capability: 'discovery lookups run by the node (use `rdbnet discover`)',
  },
  {
    method: 'GET',
    path: '/discovery/cloud/aws/nodes',
    capability: 'discovery lookups run by the node (use `rdbnet discover`)',
  },
  { method: 'GET', path: '/autodiscovery/gossip/state', capability: 'a gossip state dump' },
  {
    method: 'GET',
    path: '/autodiscovery/mdns/discovered',
    capability: 'a record of mDNS answers kept by the node',
  },
  {
    method: 'POST',
    path: '/autodiscovery/broadcast/announce',
    capability: 'announcements on request',
  },
  {
    method: 'POST',
    path: '/autodiscovery/anti-entropy/sync',
    capability: 'anti-entropy sync on request',
  },
  {
    method: 'POST',
    path: '/loadbalancer/retry/configure',
    capability: 'retry settings changed at run time',
  },
  {
    method: 'POST',
    path: '/loadbalancer/rate-limit/set',
    capability: 'rate limits changed at run time',
  },
  { method: 'GET', path: '/security/tls/config', capability: 'a TLS configuration endpoint' },
  {
    method: 'POST',
    path: '/security/mtls/verify',
    capability: 'certificate verification on request (use `rdbnet certs verify`)',
  },
  { method: 'POST', path: '/security/encryption/encrypt', capability: 'encryption as a service' },
  { method: 'POST', path: '/security/acl/add', capability: 'ACLs' },
  { method: 'GET', path: '/security/firewall/rules', capability: 'firewall rules' },
  {
    method: 'POST',
    path: '/security/identity/verify',
    capability: 'identity verification on request',
  },
  {
    method: 'POST',
    path: '/manager/initialize',
    capability: 'a network manager initialized at run time',
  },
];
