/**
 * Rotating one node's certificate (`certs rotate`): the node makes a new key and a CSR, the
 * CA of the operator's directory signs it (same identity and hosts), the node installs it for
 * new connections, and a fresh connection must then present the new serial.
 */
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import { type CaState, readCaState } from '../security/ca-rotation.ts';
import { type KeyBits, signCertificateRequest } from '../security/pki.ts';
import { normalizeSerial } from '../security/revocations.ts';
import {
  type NodeLink,
  type NodeTarget,
  operatorLink,
  type PkiOperator,
  presentedCertificate,
} from './operator.ts';

export interface NodeRotationInput {
  /** Validity of the new certificate. */
  days: number;
  /** RSA size of the key the node makes. */
  keyBits: KeyBits;
}

export interface NodeRotation {
  rotated: true;
  node: string;
  nodeId: string;
  serial: string;
  previousSerial: string;
  notAfter: string;
}

/** `certs rotate`: the node at `target`, signed by the CA of the operator's directory. */
export async function rotateNodeCertificate(
  operator: PkiOperator,
  target: NodeTarget,
  opts: NodeRotationInput,
): Promise<NodeRotation> {
  const state = await readCaState(operator.certsDir);
  return rotateNode(operatorLink(operator), target, state, opts);
}

/** One node's rotation over `link`, signed by `state.signing` (also phase 1 of a CA rotation). */
export async function rotateNode(
  link: NodeLink,
  target: NodeTarget,
  state: CaState,
  opts: NodeRotationInput,
): Promise<NodeRotation> {
  const address = target.node;
  const installed = await link(target, async (client) => {
    const request = await client.ask('certRotateRequest', { keyBits: opts.keyBits });
    if (request.clusterId !== state.cluster) {
      throw new RdbnetError(
        ErrorCode.ClusterMismatch,
        `node at ${address} is in cluster '${request.clusterId}', the CA in ` +
          `${state.paths.dir} signs for '${state.cluster}'`,
      );
    }
    if (client.peer !== null && request.nodeId !== client.peer.id) {
      throw new RdbnetError(
        ErrorCode.IdentityInvalid,
        `node at ${address} asks for id '${request.nodeId}' but its certificate says ` +
          `'${client.peer.id}'`,
      );
    }
    const certPem = signCertificateRequest({
      ca: state.signing,
      csrPem: request.csrPem,
      cluster: state.cluster,
      identity: { cluster: state.cluster, role: 'node', id: request.nodeId },
      hosts: request.hosts,
      validityDays: opts.days,
    });
    const reply = await client.ask('certInstallRequest', { certPem }).catch((error: unknown) => {
      // The node does not trust the CA signing here: a CA rotation whose new trust bundle
      // this node has not been given yet.
      if (isRdbnetError(error, ErrorCode.CertificateUntrusted)) {
        throw new RdbnetError(error.code, `node at ${address}: ${error.message}`, {
          hint:
            'a CA rotation is in progress: `rdbnet certs rotate --ca --nodes <node>` pushes ' +
            'the new trust bundle and rotates the certificate',
          cause: error,
        });
      }
      throw error;
    });
    return { nodeId: request.nodeId, previousSerial: request.currentSerial, ...reply };
  });
  const presented = await link(target, async (client) => presentedCertificate(client));
  if (normalizeSerial(presented.serialNumber) !== normalizeSerial(installed.serial)) {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      `node at ${address} installed serial ${installed.serial} but a new connection was ` +
        `presented ${presented.serialNumber}`,
    );
  }
  return {
    rotated: true,
    node: address,
    nodeId: installed.nodeId,
    serial: installed.serial,
    previousSerial: installed.previousSerial,
    notAfter: installed.notAfter,
  };
}
