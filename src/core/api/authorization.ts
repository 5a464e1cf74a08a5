/**
 * Who may do what on a node, decided in one place. Every request the admin API answers is
 * first named as an operation (operationOf); the operation's rule in OPERATIONS says which
 * role it needs; authorize() compares that with the role of the peer's certificate
 * (principalOf). A request kind that names no operation is refused before any handler runs,
 * so nothing new is served until someone has written down who may send it.
 *
 * Roles: a client certificate is `read` (asks) or `admin` (asks and changes); a node
 * certificate is `node` and may do what members do with each other, plus the few reads they
 * ask of each other, and no operator's operation.
 */
import { assert, ErrorCode, RdbnetError } from '../errors.ts';
import type {
  AclRequest,
  ClusterRemoveRequest,
  DecodedEnvelope,
  FirewallRequest,
  KeyringRequest,
  TransferLeaderRequest,
} from '../protocol/messages.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import type { AclOperation } from '../security/acl.ts';
import type { ClientRole } from '../security/identity.ts';
import { LEGACY_CLIENT_ROLE } from '../security/identity.ts';

/** What a peer may do: its client certificate's role, or `node` for a node certificate. */
export type AccessRole = ClientRole | 'node';

export interface OperationRule {
  /** `read`: any client (admin includes read); `admin`: admin clients; `node`: nodes only. */
  needs: AccessRole;
  /** A `read` operation that members also ask of each other. */
  nodesToo?: boolean;
  /** What the operation is, for people (docs, `--help`, messages). */
  does: string;
}

export const OPERATIONS = {
  // Reads: any client certificate.
  'node.status': { needs: 'read', nodesToo: true, does: 'node status (members ask it too)' },
  health: { needs: 'read', does: 'health' },
  echo: {
    needs: 'read',
    nodesToo: true,
    does: 'echo (protocol benchmark; members may test a path)',
  },
  'cluster.members': { needs: 'read', does: 'cluster members' },
  'cluster.events': { needs: 'read', does: 'cluster events' },
  'cluster.status': {
    needs: 'read',
    nodesToo: true,
    does: 'cluster status (members ask the leader for its progress)',
  },
  'certs.info': { needs: 'read', does: "the node's certificate, trust bundle and revoked serials" },
  'certs.verify': { needs: 'read', does: 'certs verify: proof the node holds its key' },
  'keys.list': { needs: 'read', does: 'keys list' },
  'node.logs': { needs: 'read', does: "monitor: the node's recent log lines" },
  'lb.status': {
    needs: 'read',
    does: "lb status: the node's per-peer breakers, ejections, latency",
  },
  'pool.stats': {
    needs: 'read',
    does: "pool stats: the node's data-plane connection pool of every peer",
  },
  'acl.list': { needs: 'read', does: 'acl list: the access control list with its counters' },
  'acl.test': { needs: 'read', does: 'acl test: would a peer and operation be allowed' },
  'firewall.read': {
    needs: 'read',
    does: "firewall rules, firewall stats: the node's limits and bans",
  },
  'audit.tail': { needs: 'read', does: "audit tail: the node's recent refusals and admin changes" },
  'dataplane.ping': {
    needs: 'read',
    nodesToo: true,
    does: 'ping: RTTs the node measures to members (members ask each other for ping --all)',
  },
  // Changes: admin client certificates.
  'dataplane.message': {
    needs: 'admin',
    nodesToo: true,
    does: 'send, request, broadcast: a message to a topic handler (members forward them)',
  },
  'certs.rotate': { needs: 'admin', does: 'certs rotate: a new node key and its CSR' },
  'certs.install': { needs: 'admin', does: 'certs rotate: install the signed certificate' },
  'certs.trust-bundle': { needs: 'admin', does: 'certs rotate --ca: replace the trust bundle' },
  'certs.revoke': { needs: 'admin', does: 'certs revoke: replace the revocation list' },
  'keys.install': { needs: 'admin', does: 'keys install' },
  'keys.use': { needs: 'admin', does: 'keys use' },
  'keys.remove': { needs: 'admin', does: 'keys remove' },
  'cluster.bootstrap': { needs: 'admin', does: 'cluster bootstrap' },
  'cluster.join': { needs: 'admin', does: 'cluster join --seeds' },
  'cluster.leave': { needs: 'admin', does: 'cluster leave' },
  'cluster.transfer-leader': { needs: 'admin', does: 'cluster transfer-leader' },
  'cluster.remove': { needs: 'admin', does: 'cluster remove: take a member out by its id' },
  // Among members: node certificates only.
  'raft.batch': { needs: 'node', does: 'Raft messages' },
  'gossip.push-pull': { needs: 'node', does: 'gossip state exchange' },
  'cluster.peer-exchange': { needs: 'node', does: 'ids and addresses of nodes before a cluster' },
  'cluster.bootstrap-commit': { needs: 'node', does: 'the founding configuration' },
  'member.join': { needs: 'node', does: 'a node asking to join (or forwarded to the leader)' },
  'member.remove': { needs: 'node', does: 'a leaving member asking the leader to remove it' },
  'keys.forward': { needs: 'node', does: "a member passing an operator's keyring change on" },
  'acl.change': {
    needs: 'admin',
    does: 'acl add, acl remove, acl default: change the replicated access control list',
  },
  'firewall.change': { needs: 'admin', does: 'firewall ban, firewall unban' },
  'acl.forward': {
    needs: 'node',
    does: "a member passing an operator's ACL change on to the leader",
  },
  'cluster.transfer-leader.forward': {
    needs: 'node',
    does: "a member passing an operator's leadership transfer on to the leader",
  },
  'cluster.remove.forward': {
    needs: 'node',
    does: "a member passing an operator's removal of a member on to the leader",
  },
} as const satisfies Record<string, OperationRule>;

export type Operation = keyof typeof OPERATIONS;

/** The operation a request asks for; null for a kind that is not a request the API answers. */
export function operationOf(request: DecodedEnvelope): Operation | null {
  switch (request.kind) {
    case 'statusRequest':
      return 'node.status';
    case 'healthRequest':
      return 'health';
    case 'echoRequest':
      return 'echo';
    case 'membersRequest':
      return 'cluster.members';
    case 'memberEventsRequest':
      return 'cluster.events';
    case 'clusterStatusRequest':
      return 'cluster.status';
    case 'lbStatusRequest':
      return 'lb.status';
    case 'poolStatsRequest':
      return 'pool.stats';
    case 'certInfoRequest':
      return 'certs.info';
    case 'proveIdentityRequest':
      return 'certs.verify';
    case 'certRotateRequest':
      return 'certs.rotate';
    case 'certInstallRequest':
      return 'certs.install';
    case 'trustBundleRequest':
      return 'certs.trust-bundle';
    case 'revocationsRequest':
      return 'certs.revoke';
    case 'keyringRequest': {
      const body = request.body as KeyringRequest;
      if (body.forwarded) return 'keys.forward';
      if (body.op === 'list') return 'keys.list';
      if (body.op === 'use') return 'keys.use';
      if (body.op === 'remove') return 'keys.remove';
      // install, and any unknown op (refused by the handler): never less than a change.
      return 'keys.install';
    }
    case 'clusterBootstrapRequest':
      return 'cluster.bootstrap';
    case 'clusterJoinRequest':
      return 'cluster.join';
    case 'leaveRequest':
      return 'cluster.leave';
    case 'transferLeaderRequest':
      return (request.body as TransferLeaderRequest).forwarded
        ? 'cluster.transfer-leader.forward'
        : 'cluster.transfer-leader';
    case 'logTailRequest':
      return 'node.logs';
    case 'clusterRemoveRequest':
      return (request.body as ClusterRemoveRequest).forwarded
        ? 'cluster.remove.forward'
        : 'cluster.remove';
    case 'raftBatch':
      return 'raft.batch';
    case 'gossipStreamRequest':
      return 'gossip.push-pull';
    case 'peerExchangeRequest':
      return 'cluster.peer-exchange';
    case 'bootstrapCommitRequest':
      return 'cluster.bootstrap-commit';
    case 'joinRequest':
      return 'member.join';
    case 'removeMemberRequest':
      return 'member.remove';
    case 'topicRequest':
      return 'dataplane.message';
    case 'pingRequest':
      return 'dataplane.ping';
    case 'aclRequest': {
      const body = request.body as AclRequest;
      if (body.forwarded) return 'acl.forward';
      if (body.op === 'list') return 'acl.list';
      if (body.op === 'test') return 'acl.test';
      // add, remove, default, and any unknown op (refused by the handler): a change.
      return 'acl.change';
    }
    case 'auditRequest':
      return 'audit.tail';
    case 'firewallRequest': {
      const op = (request.body as FirewallRequest).op;
      return op === 'rules' || op === 'stats' ? 'firewall.read' : 'firewall.change';
    }
    default:
      return null;
  }
}

/** Who is asking, as authorization sees them. */
export interface Principal {
  role: AccessRole;
  /** `client/<name>` or `node/<id>`. */
  name: string;
  /**
   * `certificate`: the role its certificate names; `legacy`: a client certificate made before
   * roles existed (LEGACY_CLIENT_ROLE); `insecure`: no certificate at all (--insecure), where
   * the hello is taken at its word and a client is `admin`, as before roles existed.
   */
  source: 'certificate' | 'legacy' | 'insecure';
}

export function principalOf(peer: PeerIdentity['peer']): Principal {
  assert(peer !== null, 'a request is answered only after the handshake');
  const name = `${peer.role}/${peer.id}`;
  if (peer.role === 'node') {
    return { role: 'node', name, source: peer.authenticated ? 'certificate' : 'insecure' };
  }
  if (!peer.authenticated) return { role: 'admin', name, source: 'insecure' };
  if (peer.clientRole === undefined) return { role: LEGACY_CLIENT_ROLE, name, source: 'legacy' };
  return { role: peer.clientRole, name, source: 'certificate' };
}

/** The principal a local client certificate would be on a node (for checks before acting). */
export function clientPrincipal(name: string, clientRole: ClientRole | undefined): Principal {
  return clientRole === undefined
    ? { role: LEGACY_CLIENT_ROLE, name: `client/${name}`, source: 'legacy' }
    : { role: clientRole, name: `client/${name}`, source: 'certificate' };
}

export function permits(rule: OperationRule, role: AccessRole): boolean {
  switch (role) {
    case 'node':
      return rule.needs === 'node' || rule.nodesToo === true;
    case 'admin':
      return rule.needs === 'read' || rule.needs === 'admin';
    case 'read':
      return rule.needs === 'read';
  }
}

/**
 * Throws RDB_FORBIDDEN when `principal` may not do `operation`, naming both roles:
 * "operation certs.revoke needs role admin; certificate client/viewer has role read".
 */
export function authorize(operation: Operation, principal: Principal): void {
  const rule: OperationRule = OPERATIONS[operation];
  if (permits(rule, principal.role)) return;
  const who = principal.source === 'insecure' ? 'unauthenticated peer' : 'certificate';
  const why = principal.source === 'legacy' ? ' (it names no role: made before roles existed)' : '';
  throw new RdbnetError(
    ErrorCode.Forbidden,
    `operation ${operation} needs role ${rule.needs}; ${who} ${principal.name} has role ` +
      `${principal.role}${why}`,
  );
}

const GOSSIP_OPERATION: AclOperation = { cls: 'gossip' };
const RAFT_OPERATION: AclOperation = { cls: 'raft' };
const ADMIN_READ_OPERATION: AclOperation = { cls: 'admin-read' };
const ADMIN_WRITE_OPERATION: AclOperation = { cls: 'admin-write' };

/**
 * The ACL operation class of a request (security/acl.ts): gossip push-pull is `gossip`, every
 * other member-to-member request `raft`, operators' reads `admin-read`, their changes
 * `admin-write`, and a message to a topic `data` with its topic.
 */
export function aclOperationOf(operation: Operation, request: DecodedEnvelope): AclOperation {
  if (operation === 'dataplane.message') {
    return { cls: 'data', topic: (request.body as { topic?: string }).topic ?? '' };
  }
  if (operation === 'gossip.push-pull') return GOSSIP_OPERATION;
  const rule: OperationRule = OPERATIONS[operation];
  if (rule.needs === 'node') return RAFT_OPERATION;
  return rule.needs === 'admin' ? ADMIN_WRITE_OPERATION : ADMIN_READ_OPERATION;
}

/** Whether the operation changes something (its requests are audited). */
export function isAdminChange(operation: Operation): boolean {
  return OPERATIONS[operation].needs === 'admin' && operation !== 'dataplane.message';
}
