/**
 * Proof of possession (`certs verify`): the node signs a fresh random nonce, which must
 * verify with the public key of the certificate it presented in this very TLS session; that
 * certificate must chain to a CA of the local ca.crt, be valid now and name the node.
 */
import { randomBytes, verify, X509Certificate } from 'node:crypto';
import type { NodeClient } from '../client/node-client.ts';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { certsPaths, readPem } from '../security/certs-dir.ts';
import { describeCertificate, splitPemBundle } from '../security/pki.ts';
import {
  type NodeTarget,
  operatorLink,
  type PkiOperator,
  presentedCertificate,
} from './operator.ts';

const NONCE_BYTES = 32;
const PROOF_ALGORITHM = 'RSA-SHA256';

export interface IdentityProof {
  verified: true;
  node: string;
  nodeId: string;
  serial: string;
  algorithm: string;
  issuer: string;
  notAfter: string;
}

/** `certs verify`: asks the node at `target` over a fresh connection. */
export async function verifyNode(
  operator: PkiOperator,
  target: NodeTarget,
): Promise<IdentityProof> {
  const bundlePem = await readPem(certsPaths(operator.certsDir).caCert, 'CA bundle');
  return operatorLink(operator)(target, (client) =>
    proveNodeIdentity(client, target.node, bundlePem),
  );
}

/** The proof over an open connection; `address` names the node in errors and the result. */
export async function proveNodeIdentity(
  client: NodeClient,
  address: string,
  bundlePem: string,
  now = Date.now(),
): Promise<IdentityProof> {
  const certificate = presentedCertificate(client);
  const serial = certificate.serialNumber;
  const fail = (why: string): never => {
    throw new RdbnetError(
      ErrorCode.IdentityInvalid,
      `node at ${address} failed verification (certificate serial ${serial}): ${why}`,
    );
  };
  const nonce = randomBytes(NONCE_BYTES);
  const proof = await client.ask('proveIdentityRequest', { nonce });
  if (proof.algorithm !== PROOF_ALGORITHM) {
    fail(`unsupported proof algorithm '${proof.algorithm}' (expected ${PROOF_ALGORITHM})`);
  }
  let signed = false;
  try {
    signed = verify('sha256', nonce, certificate.publicKey, proof.signature);
  } catch {
    signed = false;
  }
  if (!signed) {
    fail("the nonce signature does not verify with the presented certificate's public key");
  }
  const bundle = splitPemBundle(bundlePem).map((pem) => new X509Certificate(pem));
  const issuer = bundle.find(
    (ca) => certificate.checkIssued(ca) && certificate.verify(ca.publicKey),
  );
  if (issuer === undefined) fail('the certificate is not signed by a CA in the local ca.crt');
  if (certificate.validToDate.getTime() <= now || certificate.validFromDate.getTime() > now) {
    fail(`the certificate is not valid now (${certificate.validFrom} .. ${certificate.validTo})`);
  }
  const identity = describeCertificate(certificate.toString()).identity;
  if (identity === null || identity.role !== 'node') {
    fail('the certificate names no rdbnet node');
  }
  if (client.peer !== null && identity!.id !== client.peer.id) {
    fail(`the certificate names node '${identity!.id}', the node calls itself '${client.peer.id}'`);
  }
  return {
    verified: true,
    node: address,
    nodeId: identity!.id,
    serial,
    algorithm: proof.algorithm,
    issuer: issuer!.subject.split('\n').join(', '),
    notAfter: certificate.validToDate.toISOString(),
  };
}
