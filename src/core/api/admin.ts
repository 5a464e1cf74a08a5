/**
 * Admin RPCs: what `rdbnet node status`, `rdbnet health`, `rdbnet certs …` and the protocol
 * benchmark ask a node, plus the cluster requests (Raft traffic, bootstrap, joins, `rdbnet
 * cluster …`), which go to the node's cluster service. Every request is authorized first, by
 * the table of authorization.ts, and only then dispatched; handlers check no roles of their
 * own. Handlers are synchronous where they can be, so a reply leaves in the same event-loop
 * turn as the request arrived.
 */
import { CLUSTER_KINDS } from '../cluster/service.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import type { RpcMetrics } from '../metrics/rpc.ts';
import type {
  AclReply,
  AclRequest,
  AuditReply,
  AuditRequest,
  CertInfoReply,
  CertInstallRequest,
  CertRotateReply,
  CertRotateRequest,
  DecodedEnvelope,
  EchoMessage,
  Envelope,
  FirewallReply,
  FirewallRequest,
  GossipStreamMessage,
  HealthReply,
  KeyringReply,
  KeyringRequest,
  LbStatusReply,
  LogTailReply,
  LogTailRequest,
  MemberEventsReply,
  MemberEventsRequest,
  MembersReply,
  PingReply,
  PingRequest,
  PoolStatsReply,
  ProveIdentityRequest,
  RevocationsRequest,
  StatusReply,
  TopicMessage,
  TopicReply,
  TrustBundleRequest,
} from '../protocol/messages.ts';
import type { PeerIdentity, PeerRequestHandler } from '../rpc/peer.ts';
import {
  authorize,
  isAdminChange,
  type Operation,
  operationOf,
  type Principal,
  principalOf,
} from './authorization.ts';

/** What the admin API needs from a node; the node facade implements it. */
export interface AdminSource {
  status(): StatusReply;
  health(): HealthReply;
  /** health() with members gossip calls suspect or dead also asked over TCP. */
  healthDiagnosed(): Promise<HealthReply>;
  /** Null on --insecure nodes, which have no certificates to manage. */
  certificates: CertificateAdmin | null;
  /** The cluster service; null until the node has opened its Raft storage. */
  cluster: ClusterRequests | null;
  /** Gossip membership; null until it runs. */
  membership: MembershipRequests | null;
  /** `rdbnet lb status`: the resilience state of the requests the node sends its peers. */
  lbStatus?(): LbStatusReply;
  /** `rdbnet monitor`: recent log lines; absent when the node's logger keeps none. */
  logTail?(request: LogTailRequest): LogTailReply;
  /** `rdbnet pool stats`: the data plane's connection pool of every peer. */
  poolStats?(): PoolStatsReply;
  /** Messages to topics and RTTs (src/core/dataplane); null until gossip runs. */
  dataPlane?: DataPlaneRequests | null;
  /** ACL and audit log; null until the node listens. */
  access?: AccessRequests | null;
}

/** The access control list and the audit log as the admin API reaches them. */
export interface AccessRequests {
  /** `rdbnet acl …`: list and test here; changes proposed to the cluster (via the leader). */
  handle(request: AclRequest, connection: PeerIdentity): Promise<AclReply>;
  /** `rdbnet audit tail`: records after `afterSeq`. */
  audit(afterSeq: number): AuditReply;
  /** `rdbnet firewall …`. */
  firewall(request: FirewallRequest, connection: PeerIdentity): FirewallReply;
}

function accessOf(source: AdminSource): AccessRequests {
  if (source.access === undefined || source.access === null) {
    throw new RdbnetError(ErrorCode.NotMember, 'the node is still starting');
  }
  return source.access;
}

/** The data plane as the admin API reaches it. */
export interface DataPlaneRequests {
  /** A message to a topic; `fromName` is the sender's certificate name. */
  handle(message: TopicMessage, fromName: string): Promise<TopicReply>;
  ping(request: PingRequest): Promise<PingReply>;
}

function dataPlaneOf(source: AdminSource): DataPlaneRequests {
  if (source.dataPlane === undefined || source.dataPlane === null) {
    throw new RdbnetError(ErrorCode.NotMember, 'the data plane is not running yet');
  }
  return source.dataPlane;
}

/** The gossip layer as the admin API reaches it. */
export interface MembershipRequests {
  /** A push-pull request from a member; returns the sealed reply (empty: none). */
  onStream(fromAddress: string, payload: Uint8Array): Uint8Array;
  members(): MembersReply;
  events(afterSeq: number): MemberEventsReply;
  /**
   * `rdbnet keys …`: applied here and forwarded to every alive member (or, forwarded, here);
   * `fromId` is the asking peer's id (a forwarded change must come from a member).
   */
  keyring(request: KeyringRequest, fromId: string): Promise<KeyringReply>;
}

function membershipOf(source: AdminSource): MembershipRequests {
  if (source.membership === null) {
    throw new RdbnetError(ErrorCode.NotMember, 'gossip is not running yet');
  }
  return source.membership;
}

/**
 * Answers the cluster kinds of Envelope (CLUSTER_KINDS), once authorized here. It reads only
 * the sender's identity (a Connection is a PeerIdentity), so the simulator can call it.
 */
export interface ClusterRequests {
  handle(request: DecodedEnvelope, connection: PeerIdentity): Envelope | Promise<Envelope>;
}

export interface CertificateAdmin {
  beginRotation(keyBits: number): CertRotateReply;
  installCertificate(certPem: string): Promise<{ serial: string; notAfter: string }>;
  setTrustBundle(bundlePem: string): Promise<number>;
  setRevocations(serials: string[]): Promise<number>;
  info(): CertInfoReply;
  proveIdentity(nonce: Uint8Array): { signature: Uint8Array; algorithm: string };
}

function certificatesOf(source: AdminSource): CertificateAdmin {
  if (source.certificates === null) {
    throw new RdbnetError(ErrorCode.Forbidden, 'this node runs --insecure and has no certificates');
  }
  return source.certificates;
}

export interface AdminHooks {
  /** A request refused with RDB_FORBIDDEN (by the table, or by a handler): count and log it. */
  onForbidden?(operation: Operation, connection: PeerIdentity, error: RdbnetError): void;
  /** Requests by method, with their outcome and latency (the node's /metrics). */
  rpc?: RpcMetrics;
  /** The access control list's word on each request, before the role table: throw a
   * RdbnetError (RDB_ACL_DENIED) to refuse it. */
  admit?(operation: Operation, request: DecodedEnvelope, connection: PeerIdentity): void;
  /** An operator's change (isAdminChange) was answered: `error` undefined when it was applied. */
  onChange?(operation: Operation, connection: PeerIdentity, error: RdbnetError | undefined): void;
}

/**
 * The node's request entry point: authorizes each request (authorization.ts), then answers
 * it. It reads only the sender's identity, so it serves a real Connection and a simulated
 * peer alike.
 */
export function adminHandler(source: AdminSource, hooks: AdminHooks = {}): PeerRequestHandler {
  const answer = answerer(source);
  const forbidden = (operation: Operation, connection: PeerIdentity, error: unknown): never => {
    if (isRdbnetError(error, ErrorCode.Forbidden)) {
      hooks.onForbidden?.(operation, connection, error);
    }
    throw error;
  };
  // A connection's peer never changes after its handshake, so neither does its principal:
  // worked out once per peer rather than once per request (a string and an object each).
  const principals = new WeakMap<object, Principal>();
  const principalFor = (peer: PeerIdentity['peer']): Principal => {
    if (peer === null) return principalOf(peer);
    let principal = principals.get(peer);
    if (principal === undefined) {
      principal = principalOf(peer);
      principals.set(peer, principal);
    }
    return principal;
  };
  const rpc = hooks.rpc;
  return (request: DecodedEnvelope, connection: PeerIdentity): Envelope | Promise<Envelope> => {
    const operation = operationOf(request);
    if (operation === null) {
      throw new RdbnetError(ErrorCode.MethodUnknown, `no handler for ${request.kind}`);
    }
    hooks.admit?.(operation, request, connection);
    const audited = hooks.onChange !== undefined && isAdminChange(operation);
    const method = rpc?.method(operation);
    const startedMs = method === undefined ? 0 : method.started();
    const failed = (error: unknown): never => {
      method?.answered(startedMs, false);
      if (audited) hooks.onChange!(operation, connection, asRdbnetError(error));
      return forbidden(operation, connection, error);
    };
    try {
      authorize(operation, principalFor(connection.peer));
      const reply = answer(request, connection);
      if (!(reply instanceof Promise) && !audited) {
        method?.answered(startedMs, true);
        return reply;
      }
      return Promise.resolve(reply).then((envelope) => {
        method?.answered(startedMs, true);
        if (audited) hooks.onChange!(operation, connection, undefined);
        return envelope;
      }, failed);
    } catch (error) {
      return failed(error);
    }
  };
}

function asRdbnetError(error: unknown): RdbnetError {
  return isRdbnetError(error)
    ? error
    : new RdbnetError(ErrorCode.Internal, (error as Error)?.message ?? String(error));
}

function answerer(source: AdminSource): PeerRequestHandler {
  return (request: DecodedEnvelope, connection: PeerIdentity): Envelope | Promise<Envelope> => {
    switch (request.kind) {
      case 'statusRequest':
        return { statusReply: source.status() };
      case 'healthRequest':
        return source.healthDiagnosed().then((healthReply) => ({ healthReply }));
      case 'gossipStreamRequest':
        return {
          gossipStreamReply: {
            payload: membershipOf(source).onStream(
              connection.remoteAddress,
              (request.body as GossipStreamMessage).payload,
            ),
          },
        };
      case 'membersRequest':
        return { membersReply: membershipOf(source).members() };
      case 'memberEventsRequest':
        return {
          memberEventsReply: membershipOf(source).events(
            (request.body as MemberEventsRequest).afterSeq,
          ),
        };
      case 'keyringRequest':
        // An operator asks for the cluster-wide change; a member forwards it to be applied here.
        return membershipOf(source)
          .keyring(request.body as KeyringRequest, connection.peer!.id)
          .then((reply) => ({ keyringReply: reply }));
      case 'lbStatusRequest':
        if (source.lbStatus === undefined) {
          throw new RdbnetError(ErrorCode.MethodUnknown, 'this node keeps no load-balancing state');
        }
        return { lbStatusReply: source.lbStatus() };
      case 'poolStatsRequest':
        if (source.poolStats === undefined) {
          throw new RdbnetError(ErrorCode.MethodUnknown, 'this node keeps no connection pools');
        }
        return { poolStatsReply: source.poolStats() };
      case 'topicRequest': {
        const from = connection.peer === null ? connection.remoteAddress : connection.peer.id;
        return dataPlaneOf(source)
          .handle(request.body as TopicMessage, from)
          .then((topicReply) => ({ topicReply }));
      }
      case 'pingRequest':
        return dataPlaneOf(source)
          .ping(request.body as PingRequest)
          .then((pingReply) => ({ pingReply }));
      case 'logTailRequest':
        if (source.logTail === undefined) {
          throw new RdbnetError(ErrorCode.MethodUnknown, 'this node keeps no log lines to tail');
        }
        return { logTailReply: source.logTail(request.body as LogTailRequest) };
      case 'aclRequest':
        return accessOf(source)
          .handle(request.body as AclRequest, connection)
          .then((aclReply) => ({ aclReply }));
      case 'auditRequest':
        return { auditReply: accessOf(source).audit((request.body as AuditRequest).afterSeq) };
      case 'firewallRequest':
        return {
          firewallReply: accessOf(source).firewall(request.body as FirewallRequest, connection),
        };
      case 'echoRequest':
        return { echoReply: { data: (request.body as EchoMessage).data } };
      case 'certRotateRequest': {
        const keyBits = (request.body as CertRotateRequest).keyBits || 2048;
        return { certRotateReply: certificatesOf(source).beginRotation(keyBits) };
      }
      case 'certInstallRequest':
        return certificatesOf(source)
          .installCertificate((request.body as CertInstallRequest).certPem)
          .then((installed) => ({ certInstallReply: installed }));
      case 'trustBundleRequest':
        return certificatesOf(source)
          .setTrustBundle((request.body as TrustBundleRequest).bundlePem)
          .then((certificates) => ({ trustBundleReply: { certificates } }));
      case 'revocationsRequest':
        return certificatesOf(source)
          .setRevocations([...(request.body as RevocationsRequest).serials])
          .then((revoked) => ({ revocationsReply: { revoked } }));
      case 'certInfoRequest':
        return { certInfoReply: certificatesOf(source).info() };
      case 'proveIdentityRequest':
        if (source.certificates === null) {
          throw new RdbnetError(
            ErrorCode.Forbidden,
            'this node runs --insecure and has no key to prove',
          );
        }
        return {
          proveIdentityReply: source.certificates.proveIdentity(
            (request.body as ProveIdentityRequest).nonce,
          ),
        };
      default: {
        if (CLUSTER_KINDS.has(request.kind)) {
          const cluster = source.cluster;
          if (cluster === null) {
            throw new RdbnetError(ErrorCode.NotMember, 'the node is still starting');
          }
          return cluster.handle(request, connection);
        }
        throw new RdbnetError(ErrorCode.MethodUnknown, `no handler for ${request.kind}`);
      }
    }
  };
}
