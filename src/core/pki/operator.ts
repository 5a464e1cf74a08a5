/**
 * The operator's side of every certificate RPC: who asks (a client certificate of the local
 * certificates directory), which nodes (targets parsed before anything is done), a fresh
 * connection per step, and the per-node results of operations on several nodes.
 */
import { createPublicKey, type X509Certificate } from 'node:crypto';
import { authorize, clientPrincipal, type Operation } from '../api/authorization.ts';
import { FORBIDDEN_HINT, NodeClient, operatorDialInit } from '../client/node-client.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import type { CaState } from '../security/ca-rotation.ts';
import { certsPaths, readPem } from '../security/certs-dir.ts';
import { validateName } from '../security/identity.ts';
import {
  createCertificateRequest,
  describeCertificate,
  signCertificateRequest,
} from '../security/pki.ts';
import { type HostPort, parseHostPort } from '../transport/address.ts';

/** Who asks the nodes, from where, and how long to wait. */
export interface PkiOperator {
  /** The certificates directory: ca.crt, ca.key, client.<clientName>.crt/.key, revoked.txt. */
  certsDir: string;
  /** The client certificate to ask with (validateName). */
  clientName: string;
  /** Bounds connect + TLS + handshake, and each reply. */
  timeoutMs: number;
}

/** A node to act on: the address as the operator wrote it (results name it so), parsed. */
export interface NodeTarget {
  node: string;
  address: HostPort;
}

/** Parses node addresses before anything is done; `what` names their source in the error
 * (RDB_USAGE), e.g. '--node address'. */
export function nodeTargets(addresses: string[], what: string): NodeTarget[] {
  return addresses.map((node) => ({ node, address: parseHostPort(node, what) }));
}

/** Runs `work` on a fresh connection to the node and always closes it. */
export type NodeLink = <T>(
  target: NodeTarget,
  work: (client: NodeClient) => Promise<T>,
) => Promise<T>;

/** Connections with client.<name>.crt/.key and ca.crt of the operator's directory. */
export function operatorLink(operator: PkiOperator): NodeLink {
  return async (target, work) =>
    NodeClient.with(
      await operatorDialInit({
        address: target.address,
        certsDir: operator.certsDir,
        clientName: validateName('client name', operator.clientName),
        insecure: false,
        timeoutMs: operator.timeoutMs,
      }),
      work,
    );
}

/**
 * Connections for a CA rotation in progress. The local client certificates are re-signed by
 * the new CA in phase 1, which a node not yet given the new trust bundle refuses; so nodes
 * are asked with a certificate for the same client key signed by the old CA (made in memory,
 * valid one day, never written), which every node trusts until the rotation finishes.
 */
export async function rotationLink(operator: PkiOperator, state: CaState): Promise<NodeLink> {
  if (state.previous === null) return operatorLink(operator);
  const name = validateName('client name', operator.clientName);
  const { clientKey, clientCert } = state.paths;
  const keyPem = await readPem(clientKey(name), 'client private key');
  // The stand-in grants what the client's own certificate grants, no more.
  const clientRole = describeCertificate(await readPem(clientCert(name), 'client certificate'))
    .identity?.clientRole;
  const publicKeyPem = createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }).toString();
  const cert = signCertificateRequest({
    ca: state.previous,
    csrPem: createCertificateRequest({ keyPem, publicKeyPem, commonName: name }),
    cluster: state.cluster,
    identity: {
      cluster: state.cluster,
      role: 'client',
      id: name,
      ...(clientRole === undefined ? {} : { clientRole }),
    },
    hosts: [],
    validityDays: 1,
  });
  const tls = { ca: state.bundle.join(''), cert, key: keyPem };
  return async (target, work) =>
    NodeClient.with(
      await operatorDialInit({
        address: target.address,
        certsDir: operator.certsDir,
        clientName: name,
        insecure: false,
        timeoutMs: operator.timeoutMs,
        tls,
        cluster: state.cluster,
      }),
      work,
    );
}

/**
 * Refuses (RDB_FORBIDDEN, as a node would) before anything is written locally when the
 * operator's client certificate may not do `operation`: `certs revoke` and `certs rotate
 * --ca` change files here before they ask any node, and a refused command changes nothing.
 */
export async function requireClientRole(
  operator: PkiOperator,
  operation: Operation,
): Promise<void> {
  const name = validateName('client name', operator.clientName);
  const dir = operator.certsDir;
  const certPem = await readPem(
    certsPaths(dir).clientCert(name),
    'client certificate',
    `issue one with: rdbnet certs client --name ${name} --role admin --certs-dir ${dir}`,
  );
  const identity = describeCertificate(certPem).identity;
  if (identity === null || identity.role !== 'client') {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      `${certsPaths(dir).clientCert(name)} names no rdbnet client`,
    );
  }
  try {
    authorize(operation, clientPrincipal(name, identity.clientRole));
  } catch (error) {
    if (!isRdbnetError(error)) throw error;
    throw new RdbnetError(ErrorCode.Forbidden, error.message, { hint: FORBIDDEN_HINT });
  }
}

/** The certificate the node presented in this connection's TLS session. */
export function presentedCertificate(client: NodeClient): X509Certificate {
  const certificate = client.presentedCertificate;
  if (certificate === undefined) {
    throw new RdbnetError(ErrorCode.IdentityInvalid, 'the node presented no certificate');
  }
  return certificate;
}

/** One node's part in a multi-node operation. */
export interface NodeStep {
  node: string;
  ok: boolean;
  nodeId?: string;
  /** Certificates in the trust bundle the node now holds. */
  bundle?: number;
  /** Serial of the certificate the node presents, and the CA that signed it. */
  serial?: string;
  signedBy?: string | null;
  rotated?: { serial: string; previousSerial: string; notAfter: string };
  /** Why no rotation was needed (already on the new CA). */
  skipped?: string;
  revoked?: number;
  error?: string;
  code?: string;
}

/** Runs `work` on every node at once; a node that fails is a step with its error, not a throw. */
export async function eachNode(
  targets: NodeTarget[],
  work: (target: NodeTarget) => Promise<Omit<NodeStep, 'node' | 'ok'>>,
): Promise<NodeStep[]> {
  return Promise.all(
    targets.map(async (target): Promise<NodeStep> => {
      try {
        return { node: target.node, ok: true, ...(await work(target)) };
      } catch (error) {
        return { node: target.node, ok: false, ...errorFields(error) };
      }
    }),
  );
}

/** A failed step's error and code; anything untyped is a bug here (RDB_INTERNAL). */
export function errorFields(error: unknown): { error: string; code: string } {
  return isRdbnetError(error)
    ? { error: error.message, code: error.code }
    : { error: String((error as Error)?.message ?? error), code: ErrorCode.Internal };
}
