/**
 * Reading a local certificates directory: every certificate of its layout with the problems a
 * person should know of (`certs list`), and one file or bundle in detail (`certs inspect`).
 * Problems are reported, never thrown: a broken directory is what these are run to look at.
 */
import { X509Certificate } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { isSignedBy, leafFiles, signerIn } from '../security/ca-rotation.ts';
import { certsPaths, fileExists, readPem } from '../security/certs-dir.ts';
import { clientRoleOf, identityUri } from '../security/identity.ts';
import {
  type CertificateInfo,
  describeCertificate,
  keyMatchesCertificate,
  splitPemBundle,
} from '../security/pki.ts';
import { normalizeSerial, readRevocations } from '../security/revocations.ts';
import { type CertificateRole, roleOf } from './local-create.ts';

const MS_PER_DAY = 24 * 60 * 60 * 1000;

export type CertificateKind = 'ca' | 'node' | 'client';

export interface CertificateEntry {
  file: string;
  kind: CertificateKind;
  subject: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  /** Days until notAfter, negative once expired. */
  daysLeft: number;
  /** The rdbnet:// identity URI, null for CAs. */
  identity: string | null;
  /** `read` or `admin` for clients, `node` for nodes, null for CAs. */
  role: CertificateRole | null;
  keyFile: string | null;
  /** Serial of the CA in ca.crt that signed it (its own for a CA), null when none did. */
  signedBy: string | null;
  problems: string[];
}

/** Every certificate of the directory's layout (ca.crt entries first), with its problems. */
export async function listCertificates(dir: string, now = Date.now()): Promise<CertificateEntry[]> {
  const paths = certsPaths(dir);
  const entries: CertificateEntry[] = [];
  const revoked = await readRevocations(paths.revoked);
  let bundle: string[] = [];
  if (await fileExists(paths.caCert)) {
    bundle = splitPemBundle(await readPem(paths.caCert, 'CA certificate'));
    const caKeys: { file: string; pem: string | null; problems: string[] }[] = [];
    for (const file of [paths.caKey, paths.previousCaKey]) {
      if (await fileExists(file)) caKeys.push({ file, ...(await readKey(file)) });
    }
    const matched = new Set<string>();
    for (const pem of bundle) {
      const key = caKeys.find((k) => k.pem !== null && safeMatch(pem, k.pem));
      if (key !== undefined) matched.add(key.file);
      const entry = describeEntry(pem, paths.caCert, 'ca', now);
      if (entry.problems.length === 0 && !new X509Certificate(pem).ca) {
        entry.problems.push('not a CA certificate (CA:false)');
      }
      entry.keyFile = key?.file ?? null;
      entry.signedBy = isSignedBy(pem, pem) ? entry.serial : null;
      if (key !== undefined) entry.problems.push(...key.problems);
      entries.push(entry);
    }
    const first = entries[0];
    for (const key of caKeys) {
      if (matched.has(key.file) || first === undefined) continue;
      first.problems.push(...key.problems);
      if (key.pem !== null) {
        first.problems.push(`key ${key.file} does not match any certificate in ${paths.caCert}`);
      }
    }
  }
  for (const leaf of await leafFiles(dir)) {
    const pem = await readPem(leaf.certFile, `${leaf.kind} certificate`);
    const entry = describeEntry(pem, leaf.certFile, leaf.kind, now);
    const identity = describeCertificate(pem).identity;
    if (identity === null || identity.role !== leaf.kind || identity.id !== leaf.name) {
      entry.problems.push(
        `names ${entry.identity ?? 'no rdbnet identity'}, but the file is for ${leaf.kind} '${leaf.name}'`,
      );
    } else if (identity.role === 'client' && identity.clientRole === undefined) {
      entry.problems.push(
        `names no role (made before roles existed): nodes treat it as ${clientRoleOf(identity)}`,
      );
    }
    const signer = signerIn(pem, bundle);
    entry.signedBy = signer === undefined ? null : new X509Certificate(signer).serialNumber;
    if (signer === undefined) entry.problems.push(`not signed by a CA in ${paths.caCert}`);
    if (revoked.has(normalizeSerial(entry.serial))) {
      entry.problems.push(`serial is revoked (${paths.revoked})`);
    }
    if (await fileExists(leaf.keyFile)) {
      entry.keyFile = leaf.keyFile;
      const key = await readKey(leaf.keyFile);
      entry.problems.push(...key.problems);
      if (key.pem !== null && !safeMatch(pem, key.pem)) {
        entry.problems.push(`key ${leaf.keyFile} does not match the certificate`);
      }
    } else {
      entry.problems.push(`key file missing: ${leaf.keyFile}`);
    }
    entries.push(entry);
  }
  return entries;
}

function describeEntry(
  pem: string,
  file: string,
  kind: CertificateKind,
  now: number,
): CertificateEntry {
  const info = describeCertificate(pem);
  const problems: string[] = [];
  if (Date.parse(info.notAfter) <= now) problems.push(`expired on ${info.notAfter}`);
  if (Date.parse(info.notBefore) > now) problems.push(`not valid before ${info.notBefore}`);
  return {
    file,
    kind,
    subject: info.subject,
    issuer: info.issuer,
    serial: info.serial,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    daysLeft: daysLeft(info, now),
    identity: info.identity === null ? null : identityUri(info.identity),
    role: kind === 'ca' ? null : roleOf(info.identity),
    keyFile: null,
    signedBy: null,
    problems,
  };
}

async function readKey(file: string): Promise<{ pem: string | null; problems: string[] }> {
  const problems: string[] = [];
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    problems.push(`key ${file} has mode 0${mode.toString(8)}, wider than 0600`);
  }
  const pem = await readPem(file, 'private key').catch((error: Error) => {
    problems.push(error.message);
    return null;
  });
  return { pem, problems };
}

function safeMatch(certPem: string, keyPem: string): boolean {
  try {
    return keyMatchesCertificate(certPem, keyPem);
  } catch {
    return false;
  }
}

function daysLeft(info: CertificateInfo, now: number): number {
  return Number(((Date.parse(info.notAfter) - now) / MS_PER_DAY).toFixed(2));
}

export interface InspectedCertificate extends CertificateInfo {
  kind: CertificateKind | 'unknown';
  daysLeft: number;
  identityUri: string | null;
  /** `read` or `admin` for clients, `node` for nodes, null for CAs and others. */
  role: CertificateRole | null;
  /** Serial of the CA in the directory's ca.crt that signed it, null when none did. */
  signedBy: string | null;
}

export interface InspectResult {
  file: string;
  certificates: InspectedCertificate[];
  /** The private key next to the file (X.crt → X.key), when there is one. */
  key: { file: string; mode: string; matches: boolean } | null;
}

/** FILE as given, or else relative to the certificates directory (`certs inspect ca.crt`). */
export async function inspectFile(
  file: string,
  dir: string,
  now = Date.now(),
): Promise<InspectResult> {
  const path = (await fileExists(file)) || file.includes('/') ? file : join(dir, file);
  const certs = splitPemBundle(await readPem(path, 'certificate'));
  if (certs.length === 0) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, `no certificate in ${path}`);
  }
  const caPath = certsPaths(dir).caCert;
  const bundle = (await fileExists(caPath))
    ? splitPemBundle(await readPem(caPath, 'CA bundle'))
    : [];
  const certificates = certs.map((pem): InspectedCertificate => {
    const info = describeCertificate(pem);
    const signer = info.isCa && isSignedBy(pem, pem) ? pem : signerIn(pem, bundle);
    return {
      ...info,
      kind: info.isCa ? 'ca' : (info.identity?.role ?? 'unknown'),
      daysLeft: daysLeft(info, now),
      identityUri: info.identity === null ? null : identityUri(info.identity),
      role: info.isCa ? null : roleOf(info.identity),
      signedBy: signer === undefined ? null : new X509Certificate(signer).serialNumber,
    };
  });
  const keyFile = path.endsWith('.crt') ? `${path.slice(0, -4)}.key` : null;
  let key: InspectResult['key'] = null;
  if (keyFile !== null && (await fileExists(keyFile))) {
    const { pem } = await readKey(keyFile);
    key = {
      file: keyFile,
      mode: `0${((await stat(keyFile)).mode & 0o777).toString(8)}`,
      matches: pem !== null && certs.some((cert) => safeMatch(cert, pem)),
    };
  }
  return { file: path, certificates, key };
}
