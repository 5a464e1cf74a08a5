/**
 * The cluster CA as the certificates directory holds it, and the local half of a CA rotation.
 * A rotation has two phases (docs/CLI.md layout):
 *
 *   begin:  ca.previous.key = the old key, ca.crt = [new, old], ca.key = the new key
 *   finish: ca.crt = [new], ca.previous.key removed
 *
 * Every file is replaced atomically and in an order where each intermediate state still has
 * a ca.key matching a certificate in ca.crt, so a crash never leaves a CA that cannot sign.
 * Talking to nodes (pushing bundles, re-issuing their certificates) is the caller's job.
 */
import { X509Certificate } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { ErrorCode, RdbnetError } from '../errors.ts';
import {
  CERT_FILE_MODE,
  type CertsPaths,
  certsPaths,
  fileExists,
  KEY_FILE_MODE,
  readPem,
  writeFileAtomic,
} from './certs-dir.ts';
import {
  clusterOfCertificateAuthority,
  createCertificateAuthority,
  createCertificateRequest,
  describeCertificate,
  type KeyBits,
  type KeyPairPem,
  keyMatchesCertificate,
  signCertificateRequest,
  splitPemBundle,
} from './pki.ts';

export interface CaState {
  paths: CertsPaths;
  /** Every certificate of the ca.crt trust bundle, in file order. */
  bundle: string[];
  /** The CA that signs: ca.key and the bundle certificate it belongs to. */
  signing: KeyPairPem;
  /** The cluster the CA serves (the OU of its subject). */
  cluster: string;
  /** The CA a rotation in progress replaces (ca.previous.key and its certificate), or null. */
  previous: KeyPairPem | null;
}

export type LeafKind = 'node' | 'client';

export interface LeafFile {
  kind: LeafKind;
  /** Node id or client name, from the file name. */
  name: string;
  certFile: string;
  keyFile: string;
}

const LEAF_FILE = /^(node|client)\.([A-Za-z0-9][A-Za-z0-9._-]{0,62})\.crt$/;

/** Reads the CA of `dir`; fails with a hint when ca.crt or ca.key is missing or mismatched. */
export async function readCaState(dir: string): Promise<CaState> {
  const paths = certsPaths(dir);
  const bundlePem = await readPem(
    paths.caCert,
    'CA certificate',
    `create a CA with: rdbnet certs init --certs-dir ${dir}`,
  );
  const keyPem = await readPem(
    paths.caKey,
    'CA key',
    'run this where the CA key is (the --certs-dir that `rdbnet certs init` wrote)',
  );
  const bundle = splitPemBundle(bundlePem);
  const certPem = bundle.find((pem) => keyMatchesCertificate(pem, keyPem));
  if (certPem === undefined) {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      `CA key ${paths.caKey} does not match any certificate in ${paths.caCert}`,
    );
  }
  let previous: KeyPairPem | null = null;
  if (await fileExists(paths.previousCaKey)) {
    const previousKey = await readPem(paths.previousCaKey, 'previous CA key');
    const previousCert = bundle.find(
      (pem) => pem !== certPem && keyMatchesCertificate(pem, previousKey),
    );
    if (previousCert !== undefined) previous = { certPem: previousCert, keyPem: previousKey };
  }
  return { paths, bundle, signing: { certPem, keyPem }, cluster: clusterOfCa(certPem), previous };
}

/** The cluster named by a CA certificate's OU, as `createCertificateAuthority` writes it. */
export function clusterOfCa(caPem: string): string {
  const cluster = clusterOfCertificateAuthority(caPem);
  if (cluster === undefined) {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      'the CA certificate names no cluster (not exactly one valid OU in its subject)',
    );
  }
  return cluster;
}

/** True when `caPem` issued `leafPem` (names and AKI match, and its signature verifies). */
export function isSignedBy(leafPem: string, caPem: string): boolean {
  const leaf = new X509Certificate(leafPem);
  const ca = new X509Certificate(caPem);
  return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
}

/** The bundle certificate that signed `leafPem`, if any. */
export function signerIn(leafPem: string, bundle: string[]): string | undefined {
  return bundle.find((caPem) => isSignedBy(leafPem, caPem));
}

/**
 * Phase 1, locally: a new CA for the same cluster becomes the signing CA, the old one stays
 * trusted. Order: old key saved, widened bundle, then the new key (see the module comment).
 */
export async function beginCaRotation(
  state: CaState,
  opts: { validityDays?: number; keyBits?: KeyBits } = {},
): Promise<CaState> {
  const created = createCertificateAuthority({
    cluster: state.cluster,
    ...(opts.validityDays === undefined ? {} : { validityDays: opts.validityDays }),
    ...(opts.keyBits === undefined ? {} : { keyBits: opts.keyBits }),
  });
  const { paths } = state;
  const bundle = [created.certPem, ...state.bundle];
  await writeFileAtomic(paths.previousCaKey, state.signing.keyPem, KEY_FILE_MODE);
  await writeFileAtomic(paths.caCert, bundle.join(''), CERT_FILE_MODE);
  await writeFileAtomic(paths.caKey, created.keyPem, KEY_FILE_MODE);
  return { ...state, bundle, signing: created, previous: state.signing };
}

/** Phase 2, locally: the bundle shrinks to the signing CA, ca.previous.key goes. */
export async function finishCaRotation(state: CaState): Promise<{ removed: string[] }> {
  const { paths } = state;
  await writeFileAtomic(paths.caCert, state.signing.certPem, CERT_FILE_MODE);
  const removed: string[] = [];
  if (await fileExists(paths.previousCaKey)) {
    await rm(paths.previousCaKey, { force: true });
    removed.push(paths.previousCaKey);
  }
  return { removed };
}

/** node.<id>.crt and client.<name>.crt files of the directory, sorted by file name. */
export async function leafFiles(dir: string): Promise<LeafFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const paths = certsPaths(dir);
  return names
    .sort()
    .map((file) => LEAF_FILE.exec(file))
    .filter((match) => match !== null)
    .map((match) => {
      const kind = match[1] as LeafKind;
      const name = match[2]!;
      return kind === 'node'
        ? { kind, name, certFile: paths.nodeCert(name), keyFile: paths.nodeKey(name) }
        : { kind, name, certFile: paths.clientCert(name), keyFile: paths.clientKey(name) };
    });
}

/**
 * Re-signs a local certificate with the signing CA for the key it already has, keeping its
 * identity and SANs. Only the certificate file changes, so a reader never sees a certificate
 * and a key that do not belong together.
 */
export async function resignLeaf(
  state: CaState,
  leaf: LeafFile,
  opts: { validityDays?: number } = {},
): Promise<{ serial: string; previousSerial: string; notAfter: string }> {
  const certPem = await readPem(leaf.certFile, `${leaf.kind} certificate`);
  const keyPem = await readPem(leaf.keyFile, `${leaf.kind} private key`);
  if (!keyMatchesCertificate(certPem, keyPem)) {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      `private key ${leaf.keyFile} does not match certificate ${leaf.certFile}`,
    );
  }
  const current = new X509Certificate(certPem);
  const publicKeyPem = current.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const csrPem = createCertificateRequest({ keyPem, publicKeyPem, commonName: leaf.name });
  const { dnsNames, ipAddresses, identity } = describeCertificate(certPem);
  // A client keeps its role; one from before roles gets `read`, the role it had in effect.
  const clientRole = leaf.kind === 'client' ? identity?.clientRole : undefined;
  const signed = signCertificateRequest({
    ca: state.signing,
    csrPem,
    cluster: state.cluster,
    identity: {
      cluster: state.cluster,
      role: leaf.kind,
      id: leaf.name,
      ...(clientRole === undefined ? {} : { clientRole }),
    },
    hosts: [...dnsNames, ...ipAddresses],
    ...(opts.validityDays === undefined ? {} : { validityDays: opts.validityDays }),
  });
  await writeFileAtomic(leaf.certFile, signed, CERT_FILE_MODE);
  const issued = new X509Certificate(signed);
  return {
    serial: issued.serialNumber,
    previousSerial: current.serialNumber,
    notAfter: issued.validToDate.toISOString(),
  };
}
