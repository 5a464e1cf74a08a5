/**
 * The handshake is the first exchange on every connection: the dialing side sends
 * Hello, the accepting side answers HelloAck or an error frame naming the reason and
 * closes. These functions are pure: the transport feeds them the decoded messages and
 * the identity proven by the peer's TLS certificate (null on --insecure connections).
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { ClientRole, Identity, Role } from '../security/identity.ts';
import { negotiateCodec, SUPPORTED_CODECS } from './compression.ts';
import { Codec } from './frame.ts';
import { type Hello, type HelloAck, RoleCode } from './messages.ts';

export const PROTOCOL_VERSION = 1;
export const MIN_PROTOCOL_VERSION = 1;

export interface LocalEndpoint {
  /** Node id, or client name for operators and tools. */
  id: string;
  /** Empty for a client that does not know the cluster yet (only on --insecure). */
  clusterId: string;
  role: Role;
  softwareVersion: string;
  codecs?: readonly Codec[];
}

/** What each side knows of the other once the handshake is done. */
export interface PeerInfo {
  id: string;
  clusterId: string;
  role: Role;
  protocolVersion: number;
  codec: Codec;
  softwareVersion: string;
  /** True when id and role were proven by a certificate, false on --insecure. */
  authenticated: boolean;
  /** The role a client's certificate names; absent for nodes, --insecure peers and
   * certificates made before roles existed (authorization.ts decides what absence means). */
  clientRole?: ClientRole;
}

export function roleToCode(role: Role): RoleCode {
  return role === 'node' ? RoleCode.Node : RoleCode.Client;
}

function roleFromCode(code: number): Role | null {
  if (code === RoleCode.Node) return 'node';
  if (code === RoleCode.Client) return 'client';
  return null;
}

export function makeHello(local: LocalEndpoint): Hello {
  return {
    protocolVersion: PROTOCOL_VERSION,
    minProtocolVersion: MIN_PROTOCOL_VERSION,
    peerId: local.id,
    clusterId: local.clusterId,
    role: roleToCode(local.role),
    codecs: [...(local.codecs ?? SUPPORTED_CODECS)],
    softwareVersion: local.softwareVersion,
  };
}

function reject(code: (typeof ErrorCode)[keyof typeof ErrorCode], message: string): never {
  throw new RdbnetError(code, message);
}

/**
 * The accepting side's decision. Throws a RdbnetError whose code and message are sent
 * to the peer in an error frame before the connection closes.
 */
export function acceptHello(
  hello: Hello,
  local: LocalEndpoint,
  certified: Identity | null,
): { ack: HelloAck; peer: PeerInfo } {
  const version = Math.min(hello.protocolVersion, PROTOCOL_VERSION);
  if (version < MIN_PROTOCOL_VERSION || version < hello.minProtocolVersion) {
    reject(
      ErrorCode.VersionIncompatible,
      `protocol version ${hello.minProtocolVersion}..${hello.protocolVersion} offered, ` +
        `this node speaks ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION}`,
    );
  }
  const role = roleFromCode(hello.role);
  if (role === null) reject(ErrorCode.HandshakeRejected, `unknown role ${hello.role} in hello`);
  if (!hello.peerId) reject(ErrorCode.HandshakeRejected, 'hello carries no peer id');
  const clusterOptional = role === 'client' && hello.clusterId === '';
  if (!clusterOptional && hello.clusterId !== local.clusterId) {
    reject(
      ErrorCode.ClusterMismatch,
      `peer belongs to cluster '${hello.clusterId}', this node to '${local.clusterId}'`,
    );
  }
  if (certified !== null) {
    if (certified.cluster !== local.clusterId) {
      reject(
        ErrorCode.ClusterMismatch,
        `peer certificate is for cluster '${certified.cluster}', this node is in '${local.clusterId}'`,
      );
    }
    if (certified.role !== role || certified.id !== hello.peerId) {
      reject(
        ErrorCode.IdentityInvalid,
        `peer certificate identifies ${certified.role} '${certified.id}' but hello claims ` +
          `${role} '${hello.peerId}'`,
      );
    }
  }
  const codec = negotiateCodec(hello.codecs, local.codecs ?? SUPPORTED_CODECS);
  return {
    ack: {
      protocolVersion: version,
      peerId: local.id,
      clusterId: local.clusterId,
      codec,
      softwareVersion: local.softwareVersion,
    },
    peer: {
      id: hello.peerId,
      clusterId: local.clusterId,
      role,
      protocolVersion: version,
      codec,
      softwareVersion: hello.softwareVersion,
      authenticated: certified !== null,
      ...(certified?.clientRole === undefined ? {} : { clientRole: certified.clientRole }),
    },
  };
}

/** The dialing side's check of the answer it got; the accepting side is always a node. */
export function checkHelloAck(
  ack: HelloAck,
  local: LocalEndpoint,
  certified: Identity | null,
): PeerInfo {
  if (ack.protocolVersion < MIN_PROTOCOL_VERSION || ack.protocolVersion > PROTOCOL_VERSION) {
    reject(
      ErrorCode.VersionIncompatible,
      `node chose protocol version ${ack.protocolVersion}, this build speaks ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION}`,
    );
  }
  if (local.clusterId !== '' && ack.clusterId !== local.clusterId) {
    reject(
      ErrorCode.ClusterMismatch,
      `node belongs to cluster '${ack.clusterId}', expected '${local.clusterId}'`,
    );
  }
  if (certified !== null) {
    if (certified.role !== 'node' || certified.id !== ack.peerId) {
      reject(
        ErrorCode.IdentityInvalid,
        `node certificate identifies ${certified.role} '${certified.id}' but the node calls itself '${ack.peerId}'`,
      );
    }
    if (certified.cluster !== ack.clusterId) {
      reject(
        ErrorCode.ClusterMismatch,
        `node certificate is for cluster '${certified.cluster}', the node says '${ack.clusterId}'`,
      );
    }
  }
  const codecs = local.codecs ?? SUPPORTED_CODECS;
  // None is always acceptable: it is what a node falls back to when no codec is shared.
  if (ack.codec !== Codec.None && !codecs.includes(ack.codec)) {
    reject(ErrorCode.CodecUnsupported, `node chose codec ${ack.codec}, which was not offered`);
  }
  return {
    id: ack.peerId,
    clusterId: ack.clusterId,
    role: 'node',
    protocolVersion: ack.protocolVersion,
    codec: ack.codec,
    softwareVersion: ack.softwareVersion,
    authenticated: certified !== null,
  };
}
