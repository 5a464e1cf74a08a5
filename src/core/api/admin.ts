/**
 * Admin RPCs: what `rdbnet node status`, `rdbnet health`, `rdbnet certs …` and the protocol
 * benchmark ask a node, plus the cluster requests (Raft traffic, bootstrap, joins, `rdbnet
 * cluster …`), which go to the node's cluster service. Handlers are synchronous where they
 * can be, so a reply leaves in the same event-loop turn as the request arrived.
 */
import { CLUSTER_KINDS } from '../cluster/cluster.ts';
import { ErrorCode, RdbnetError } from '../errors.ts';
import type {
  CertInfoReply,
  CertInstallRequest,
  CertRotateReply,
  CertRotateRequest,
  DecodedEnvelope,
  EchoMessage,
  Envelope,
  GossipStreamMessage,
  HealthReply,
  KeyringReply,
  KeyringRequest,
  MemberEventsReply,
  MemberEventsRequest,
  MembersReply,
  ProveIdentityRequest,
  RevocationsRequest,
  StatusReply,
  TrustBundleRequest,
} from '../protocol/messages.ts';
import type { PeerIdentity, PeerRequestHandler } from '../rpc/peer.ts';

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
}

/** The gossip layer as the admin API reaches it. */
export interface MembershipRequests {
  /** A push-pull request from a member; returns the sealed reply (empty: none). */
  onStream(fromAddress: string, payload: Uint8Array): Uint8Array;
  members(): MembersReply;
  events(afterSeq: number): MemberEventsReply;
  /** `rdbnet keys …`: applied here and forwarded to every alive member (or, forwarded, here). */
  keyring(request: KeyringRequest): Promise<KeyringReply>;
}

function membershipOf(source: AdminSource): MembershipRequests {
  if (source.membership === null) {
    throw new RdbnetError(ErrorCode.NotMember, 'gossip is not running yet');
  }
  return source.membership;
}

/**
 * Answers the cluster kinds of Envelope (CLUSTER_KINDS); roles are checked there, from the
 * sender's identity only (a Connection is a PeerIdentity), so the simulator can call it.
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

/** Changing a node's certificates is an operator's act: a client certificate, never a node's. */
function operatorOnly(connection: PeerIdentity, source: AdminSource): CertificateAdmin {
  if (connection.peer?.role !== 'client') {
    throw new RdbnetError(
      ErrorCode.Forbidden,
      'certificate operations need an operator (client) certificate',
    );
  }
  if (source.certificates === null) {
    throw new RdbnetError(ErrorCode.Forbidden, 'this node runs --insecure and has no certificates');
  }
  return source.certificates;
}

/**
 * The node's request entry point. It reads only the sender's identity, so it serves a real
 * Connection (a RequestHandler) and a simulated peer alike.
 */
export function adminHandler(source: AdminSource): PeerRequestHandler {
  return (request: DecodedEnvelope, connection: PeerIdentity): Envelope | Promise<Envelope> => {
    switch (request.kind) {
      case 'statusRequest':
        return { statusReply: source.status() };
      case 'healthRequest':
        return source.healthDiagnosed().then((healthReply) => ({ healthReply }));
      case 'gossipStreamRequest':
        if (connection.peer?.role !== 'node') {
          throw new RdbnetError(
            ErrorCode.Forbidden,
            'gossip is for nodes (node certificates) only',
          );
        }
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
      case 'keyringRequest': {
        // An operator asks for the cluster-wide change; a member forwards it to be applied here.
        const body = request.body as KeyringRequest;
        const role = connection.peer?.role;
        if (body.forwarded ? role !== 'node' : role !== 'client') {
          throw new RdbnetError(
            ErrorCode.Forbidden,
            body.forwarded
              ? 'forwarded keyring operations come from members (node certificates) only'
              : 'keyring operations need an operator (client) certificate',
          );
        }
        return membershipOf(source)
          .keyring(body)
          .then((reply) => ({ keyringReply: reply }));
      }
      case 'echoRequest':
        return { echoReply: { data: (request.body as EchoMessage).data } };
      case 'certRotateRequest': {
        const keyBits = (request.body as CertRotateRequest).keyBits || 2048;
        return { certRotateReply: operatorOnly(connection, source).beginRotation(keyBits) };
      }
      case 'certInstallRequest':
        return operatorOnly(connection, source)
          .installCertificate((request.body as CertInstallRequest).certPem)
          .then((installed) => ({ certInstallReply: installed }));
      case 'trustBundleRequest':
        return operatorOnly(connection, source)
          .setTrustBundle((request.body as TrustBundleRequest).bundlePem)
          .then((certificates) => ({ trustBundleReply: { certificates } }));
      case 'revocationsRequest':
        return operatorOnly(connection, source)
          .setRevocations([...(request.body as RevocationsRequest).serials])
          .then((revoked) => ({ revocationsReply: { revoked } }));
      case 'certInfoRequest':
        return { certInfoReply: operatorOnly(connection, source).info() };
      case 'proveIdentityRequest':
        // Anyone who can connect may ask: the proof protects the asker, not the node.
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
