/**
 * What the `rdbnet certs …` commands do, apart from printing: flags they share, the local
 * certificates directory (issue, list, inspect) and the certificate RPCs of running nodes
 * (rotation, trust bundles, revocations, proof of possession). Commands stay thin on top.
 */

import { createPublicKey, randomBytes, verify, X509Certificate } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Flags } from '@oclif/core';
import { authorize, clientPrincipal, type Operation } from '../core/api/authorization.ts';
import { NodeClient } from '../core/client/node-client.ts';
import { defaultCertsDir, defaultNodeAddress } from '../core/config/home.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../core/errors.ts';
import { gossipKeyringPath } from '../core/node/gossip.ts';
import {
  beginCaRotation,
  type CaState,
  finishCaRotation as finishLocalCaRotation,
  isSignedBy,
  leafFiles,
  readCaState,
  resignLeaf,
  signerIn,
} from '../core/security/ca-rotation.ts';
import {
  CERT_FILE_MODE,
  certsPaths,
  fileExists,
  KEY_FILE_MODE,
  readPem,
  writeFileAtomic,
} from '../core/security/certs-dir.ts';
import {
  type ClientRole,
  clientRoleOf,
  type Identity,
  identityUri,
  validateName,
} from '../core/security/identity.ts';
import { ensureKeyring } from '../core/security/keyring.ts';
import {
  type CertificateInfo,
  createCertificateAuthority,
  createCertificateRequest,
  describeCertificate,
  issueClientCertificate,
  issueNodeCertificate,
  type KeyBits,
  keyMatchesCertificate,
  signCertificateRequest,
  splitPemBundle,
} from '../core/security/pki.ts';
import {
  normalizeSerial,
  readRevocations,
  writeRevocations,
} from '../core/security/revocations.ts';
import type { TlsMaterial } from '../core/security/tls.ts';
import { parseHostPort } from '../core/transport/address.ts';
import { connectionOptions } from '../core/transport/options.ts';
import { SOFTWARE_VERSION } from '../core/version.ts';
import { readList } from './lists.ts';
import { FORBIDDEN_HINT, type NodeFlagValues, nodeFlags, withNode } from './node-client.ts';
import { interactive } from './output.ts';

const MS_PER_DAY = 24 * 60 * 60 * 1000;
const NONCE_BYTES = 32;
const PROOF_ALGORITHM = 'RSA-SHA256';

// ---- flags ------------------------------------------------------------------------------

export const certsDirFlag = { 'certs-dir': nodeFlags['certs-dir'] };

/** Flags of commands that talk to nodes about certificates; --insecure nodes have none. */
export const pkiNodeFlags = {
  node: nodeFlags.node,
  'certs-dir': nodeFlags['certs-dir'],
  client: nodeFlags.client,
  timeout: nodeFlags.timeout,
};

export type PkiNodeFlagValues = Omit<NodeFlagValues, 'insecure'>;

export function daysFlag(defaultDays: number, what: string) {
  return Flags.integer({
    description: `Validity of the ${what} in days.`,
    default: defaultDays,
    min: 1,
    max: 36_500,
    helpValue: 'days',
  });
}

export const keyBitsFlag = Flags.string({
  description: 'RSA key size in bits.',
  options: ['2048', '3072', '4096'],
  default: '2048',
});

export const overwriteFlag = Flags.boolean({
  description: 'Replace existing files instead of refusing.',
});

export function nodesFlag(dependsOn: string[] = []) {
  return Flags.string({
    description:
      'Nodes to act on, comma-separated host:port list; `-` reads them from stdin. [default: --node]',
    helpValue: 'a,b,c',
    ...(dependsOn.length > 0 ? { dependsOn } : {}),
  });
}

export function certsDirOf(flag: string | undefined): string {
  return flag ?? defaultCertsDir();
}

export function keyBitsOf(flag: string): KeyBits {
  return Number(flag) as KeyBits;
}

// ---- input ------------------------------------------------------------------------------

/** The nodes named by --nodes, or else the one of --node / RDBNET_NODE. */
export async function targetNodes(flags: {
  nodes?: string | undefined;
  node?: string | undefined;
}): Promise<string[]> {
  if (flags.nodes !== undefined) return readList(flags.nodes, '--nodes');
  return [flags.node ?? defaultNodeAddress()];
}

/**
 * A value a person can be asked for: asked with inquirer on an interactive terminal (never
 * with --json), else `fallback`, else a usage error naming the flag.
 */
export async function askIfMissing(
  value: string | undefined,
  opts: { flag: string; message: string; json: boolean; fallback?: string; kind: string },
): Promise<string> {
  if (value !== undefined) return validateName(opts.kind, value);
  if (!opts.json && interactive()) {
    const { input } = await import('@inquirer/prompts');
    const answer = await input(
      {
        message: opts.message,
        ...(opts.fallback === undefined ? {} : { default: opts.fallback }),
        validate: (text: string) => {
          try {
            validateName(opts.kind, text);
            return true;
          } catch (error) {
            return (error as Error).message;
          }
        },
      },
      { output: process.stderr },
    );
    return validateName(opts.kind, answer);
  }
  if (opts.fallback !== undefined) return opts.fallback;
  throw new RdbnetError(ErrorCode.Usage, `missing required flag --${opts.flag}`, {
    hint: `pass --${opts.flag}; it is only asked for on an interactive terminal`,
  });
}

// ---- local directory: create ------------------------------------------------------------

export interface InitResult {
  created: string[];
  cluster: string;
  serial: string;
  notAfter: string;
  /** ca.previous.key of an unfinished rotation, removed by --overwrite. */
  removed: string[];
}

export async function initCa(opts: {
  dir: string;
  cluster: string;
  days: number;
  keyBits: KeyBits;
  overwrite: boolean;
}): Promise<InitResult> {
  const paths = certsPaths(opts.dir);
  await refuseExisting([paths.caCert, paths.caKey], opts.overwrite, {
    what: 'a CA',
    hint:
      'pass --overwrite to replace it; certificates it signed will no longer be trusted. ' +
      'To replace a CA without downtime use `rdbnet certs rotate --ca`.',
  });
  const ca = createCertificateAuthority({
    cluster: opts.cluster,
    validityDays: opts.days,
    keyBits: opts.keyBits,
  });
  // Key first: a crash in between leaves a state `node start` reports, never a lost key.
  await writeFileAtomic(paths.caKey, ca.keyPem, KEY_FILE_MODE);
  await writeFileAtomic(paths.caCert, ca.certPem, CERT_FILE_MODE);
  const removed: string[] = [];
  if (await fileExists(paths.previousCaKey)) {
    // It belonged to a rotation of the CA just replaced; left behind it would look like one.
    await rm(paths.previousCaKey, { force: true });
    removed.push(paths.previousCaKey);
  }
  // The gossip keyring goes with the CA (an existing one is kept): nodes started with this
  // --certs-dir read it and refuse to start without it.
  const keyringPath = gossipKeyringPath(opts.dir);
  const keyring = await ensureKeyring(keyringPath);
  const info = describeCertificate(ca.certPem);
  return {
    created: [paths.caCert, paths.caKey, ...(keyring.created ? [keyringPath] : [])],
    cluster: opts.cluster,
    serial: info.serial,
    notAfter: info.notAfter,
    removed,
  };
}

export interface IssueResult {
  file: string;
  keyFile: string;
  serial: string;
  notAfter: string;
  identity: string;
  /** `read` or `admin` for a client certificate, `node` for a node's (roleOf). */
  role: CertificateRole;
  cluster: string;
  hosts: string[];
}

/** What a certificate may do on nodes: a client's role, or `node`. */
export type CertificateRole = ClientRole | 'node';

/** The role a certificate's identity grants; null when it names no rdbnet identity. */
export function roleOf(identity: Identity | null): CertificateRole | null {
  if (identity === null) return null;
  return identity.role === 'node' ? 'node' : clientRoleOf(identity);
}

export async function issueLeaf(opts: {
  dir: string;
  kind: 'node' | 'client';
  name: string;
  /** Client certificates: `read` unless given. */
  role?: ClientRole;
  hosts: string[];
  days: number;
  keyBits: KeyBits;
  overwrite: boolean;
}): Promise<IssueResult> {
  const state = await readCaState(opts.dir);
  const { paths, cluster } = state;
  const file = opts.kind === 'node' ? paths.nodeCert(opts.name) : paths.clientCert(opts.name);
  const keyFile = opts.kind === 'node' ? paths.nodeKey(opts.name) : paths.clientKey(opts.name);
  await refuseExisting([file, keyFile], opts.overwrite, {
    what: `a certificate for ${opts.kind} '${opts.name}'`,
    hint: 'pass --overwrite to replace it (a running node keeps the old one until it restarts)',
  });
  const common = { ca: state.signing, cluster, validityDays: opts.days, keyBits: opts.keyBits };
  const pair =
    opts.kind === 'node'
      ? issueNodeCertificate({ ...common, nodeId: opts.name, hosts: opts.hosts })
      : issueClientCertificate({ ...common, name: opts.name, role: opts.role ?? 'read' });
  await writeFileAtomic(keyFile, pair.keyPem, KEY_FILE_MODE);
  await writeFileAtomic(file, pair.certPem, CERT_FILE_MODE);
  const info = describeCertificate(pair.certPem);
  return {
    file,
    keyFile,
    serial: info.serial,
    notAfter: info.notAfter,
    identity: identityUri({ cluster, role: opts.kind, id: opts.name }),
    role: roleOf(info.identity)!,
    cluster,
    hosts: [...info.dnsNames, ...info.ipAddresses],
  };
}

async function refuseExisting(
  files: string[],
  overwrite: boolean,
  opts: { what: string; hint: string },
): Promise<void> {
  if (overwrite) return;
  const found: string[] = [];
  for (const file of files) if (await fileExists(file)) found.push(file);
  if (found.length > 0) {
    throw new RdbnetError(
      ErrorCode.AlreadyExists,
      `${opts.what} already exists: ${found.join(', ')}`,
      { hint: opts.hint },
    );
  }
}

// ---- local directory: list and inspect --------------------------------------------------

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
export async function inspectFile(file: string, dir: string, now = Date.now()) {
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
  return { file: path, certificates, key } satisfies InspectResult;
}

// ---- running nodes ----------------------------------------------------------------------

/**
 * Refuses (RDB_FORBIDDEN, as a node would) before anything is written locally when the
 * client certificate of the flags may not do `operation`: `certs revoke` and `certs rotate
 * --ca` change files here before they ask any node, and a refused command changes nothing.
 */
export async function requireClientRole(
  flags: PkiNodeFlagValues,
  operation: Operation,
): Promise<void> {
  const name = validateName('client name', flags.client);
  const dir = certsDirOf(flags['certs-dir']);
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
    throw new RdbnetError(ErrorCode.Forbidden, (error as Error).message, {
      hint: FORBIDDEN_HINT,
    });
  }
}

function nodeTarget(flags: PkiNodeFlagValues, address: string): NodeFlagValues {
  return { ...flags, node: address, insecure: false };
}

/** Runs `work` on a fresh connection to `address` and always closes it. */
export type NodeLink = <T>(address: string, work: (client: NodeClient) => Promise<T>) => Promise<T>;

/** Connections as the flags say: client.<name>.crt/.key and ca.crt of --certs-dir. */
export function linkFromFlags(flags: PkiNodeFlagValues): NodeLink {
  return (address, work) => withNode(nodeTarget(flags, address), work);
}

/**
 * Connections for a CA rotation in progress. The local client certificates are re-signed by
 * the new CA in phase 1, which a node not yet given the new trust bundle refuses; so nodes
 * are asked with a certificate for the same client key signed by the old CA (made in memory,
 * valid one day, never written), which every node trusts until the rotation finishes.
 */
async function rotationLink(flags: PkiNodeFlagValues, state: CaState): Promise<NodeLink> {
  if (state.previous === null) return linkFromFlags(flags);
  const name = validateName('client name', flags.client);
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
  const tls: TlsMaterial = { ca: state.bundle.join(''), cert, key: keyPem };
  const options = connectionOptions({
    handshakeTimeoutMs: flags.timeout,
    requestTimeoutMs: flags.timeout,
  });
  return async (address, work) => {
    return NodeClient.with(
      {
        address: parseHostPort(address, 'node address'),
        local: {
          id: name,
          clusterId: state.cluster,
          role: 'client',
          softwareVersion: SOFTWARE_VERSION,
        },
        tls,
        options,
      },
      work,
    );
  };
}

/** The certificate the node presented in this connection's TLS session. */
export function presentedCertificate(client: NodeClient): X509Certificate {
  const certificate = client.presentedCertificate;
  if (certificate === undefined) {
    throw new RdbnetError(ErrorCode.IdentityInvalid, 'the node presented no certificate');
  }
  return certificate;
}

export interface NodeRotation {
  rotated: true;
  node: string;
  nodeId: string;
  serial: string;
  previousSerial: string;
  notAfter: string;
}

/**
 * Rotates a node's certificate: the node makes a key and a CSR, we sign it with the CA of
 * --certs-dir, the node installs it for new connections; then a fresh connection must
 * present the new serial.
 */
export async function rotateNode(
  link: NodeLink,
  address: string,
  state: CaState,
  opts: { days: number; keyBits: KeyBits },
): Promise<NodeRotation> {
  const installed = await link(address, async (client) => {
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
      if (isRdbnetError(error) && /trust bundle/.test(error.message)) {
        throw new RdbnetError(error.code, `node at ${address}: ${error.message}`, {
          hint:
            'a CA rotation is in progress: `rdbnet certs rotate --ca --nodes <node>` pushes ' +
            'the new trust bundle and rotates the certificate',
        });
      }
      throw error;
    });
    return { nodeId: request.nodeId, previousSerial: request.currentSerial, ...reply };
  });
  const presented = await link(address, async (client) => presentedCertificate(client));
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

export interface IdentityProof {
  verified: true;
  node: string;
  nodeId: string;
  serial: string;
  algorithm: string;
  issuer: string;
  notAfter: string;
}

/**
 * Proof of possession over an open connection: the node signs a fresh random nonce, which
 * must verify with the public key of the certificate presented in this very TLS session,
 * and that certificate must chain to a CA of `bundlePem`.
 */
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

export async function verifyNode(flags: PkiNodeFlagValues, address: string) {
  const bundlePem = await readPem(certsPaths(certsDirOf(flags['certs-dir'])).caCert, 'CA bundle');
  return withNode(nodeTarget(flags, address), (client) =>
    proveNodeIdentity(client, address, bundlePem),
  );
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
  rotated?: Omit<NodeRotation, 'rotated' | 'node' | 'nodeId'>;
  /** Why no rotation was needed (already on the new CA). */
  skipped?: string;
  revoked?: number;
  error?: string;
  code?: string;
}

async function eachNode(
  nodes: string[],
  work: (address: string) => Promise<Omit<NodeStep, 'node' | 'ok'>>,
): Promise<NodeStep[]> {
  return Promise.all(
    nodes.map(async (node): Promise<NodeStep> => {
      try {
        return { node, ok: true, ...(await work(node)) };
      } catch (error) {
        return { node, ok: false, ...errorFields(error) };
      }
    }),
  );
}

function errorFields(error: unknown): { error: string; code: string } {
  return isRdbnetError(error)
    ? { error: error.message, code: error.code }
    : { error: String((error as Error)?.message ?? error), code: ErrorCode.Internal };
}

export interface RevokeResult {
  /** The whole list now in revoked.txt and pushed to the nodes. */
  revoked: string[];
  added: string[];
  file: string;
  nodes: NodeStep[];
}

/** Adds serials to revoked.txt and pushes the whole list to every node. */
export async function revokeSerials(
  flags: PkiNodeFlagValues,
  nodes: string[],
  serials: string[],
): Promise<RevokeResult> {
  const paths = certsPaths(certsDirOf(flags['certs-dir']));
  const wanted = serials.map(normalizeSerial);
  await requireClientRole(flags, 'certs.revoke');
  const before = await readRevocations(paths.revoked);
  const all = await writeRevocations(paths.revoked, [...before, ...wanted]);
  const list = [...all].sort();
  const steps = await eachNode(nodes, async (address) => {
    const reply = await withNode(nodeTarget(flags, address), (client) =>
      client.ask('revocationsRequest', { serials: list }),
    );
    return { revoked: reply.revoked };
  });
  return {
    revoked: list,
    added: wanted.filter((serial) => !before.has(serial)),
    file: paths.revoked,
    nodes: steps,
  };
}

// ---- CA rotation -----------------------------------------------------------------------

interface CaSummary {
  serial: string;
  notAfter: string;
}

export interface CaRotationResult {
  phase: 'start' | 'finish';
  /** False when some node step failed; the command exits 1 and can be re-run. */
  ok: boolean;
  /** start: true when a rotation already in progress was continued, not begun. */
  resumed: boolean;
  cluster: string;
  ca: CaSummary;
  previousCa: CaSummary | null;
  /** Serials of the trust bundle (ca.crt) after this step. */
  bundle: string[];
  nodes: NodeStep[];
  /** Local client certificates re-signed by the new CA (start). */
  clients: { name: string; file: string; serial: string; previousSerial: string }[];
  /** Local certificates left alone: revoked ones are never re-signed, nor wait for. */
  skipped: { file: string; serial: string; reason: string }[];
  /** Files removed (finish: ca.previous.key). */
  removed: string[];
}

function summary(pem: string): CaSummary {
  const cert = new X509Certificate(pem);
  return { serial: cert.serialNumber, notAfter: cert.validToDate.toISOString() };
}

function bundleSerials(bundle: string[]): string[] {
  return bundle.map((pem) => new X509Certificate(pem).serialNumber);
}

async function nodeCertificate(link: NodeLink, address: string) {
  return link(address, (client) => client.ask('certInfoRequest', {}));
}

/**
 * Phase 1. Begins a rotation (or resumes the one in progress), widens every named node's
 * trust bundle to [new, old] before any certificate changes, then moves each named node and
 * every local client certificate to the new CA. No node ever meets a certificate it does not
 * trust, so requests keep flowing.
 */
export async function startCaRotation(
  flags: PkiNodeFlagValues,
  nodes: string[],
  opts: { caDays: number; days: number; keyBits: KeyBits },
): Promise<CaRotationResult> {
  let state = await readCaState(certsDirOf(flags['certs-dir']));
  await requireClientRole(flags, 'certs.trust-bundle');
  const resumed = state.previous !== null;
  if (!resumed)
    state = await beginCaRotation(state, { validityDays: opts.caDays, keyBits: opts.keyBits });
  const bundlePem = state.bundle.join('');
  const result: CaRotationResult = {
    phase: 'start',
    ok: false,
    resumed,
    cluster: state.cluster,
    ca: summary(state.signing.certPem),
    previousCa: state.previous === null ? null : summary(state.previous.certPem),
    bundle: bundleSerials(state.bundle),
    nodes: [],
    clients: [],
    skipped: [],
    removed: [],
  };

  const link = await rotationLink(flags, state);
  // 1. Every node trusts both CAs before anything is signed by the new one.
  result.nodes = await eachNode(nodes, async (address) => {
    const reply = await link(address, (client) => client.ask('trustBundleRequest', { bundlePem }));
    return { bundle: reply.certificates };
  });
  if (result.nodes.some((step) => !step.ok)) return result;

  // 2. Node certificates, one node at a time.
  for (const step of result.nodes) {
    try {
      const info = await nodeCertificate(link, step.node);
      if (isSignedBy(info.certPem, state.signing.certPem)) {
        step.serial = new X509Certificate(info.certPem).serialNumber;
        step.signedBy = result.ca.serial;
        step.skipped = 'already signed by the new CA';
        continue;
      }
      const rotation = await rotateNode(link, step.node, state, opts);
      step.nodeId = rotation.nodeId;
      step.serial = rotation.serial;
      step.signedBy = result.ca.serial;
      step.rotated = {
        serial: rotation.serial,
        previousSerial: rotation.previousSerial,
        notAfter: rotation.notAfter,
      };
    } catch (error) {
      Object.assign(step, { ok: false, ...errorFields(error) });
    }
  }

  // 3. Local client certificates, same key, new signature; a revoked one stays revoked.
  const revoked = await readRevocations(state.paths.revoked);
  for (const leaf of await leafFiles(state.paths.dir)) {
    if (leaf.kind !== 'client') continue;
    const certPem = await readPem(leaf.certFile, 'client certificate');
    if (isSignedBy(certPem, state.signing.certPem)) continue;
    const serial = new X509Certificate(certPem).serialNumber;
    if (revoked.has(normalizeSerial(serial))) {
      result.skipped.push({ file: leaf.certFile, serial, reason: 'revoked' });
      continue;
    }
    const resigned = await resignLeaf(state, leaf, { validityDays: opts.days });
    result.clients.push({ name: leaf.name, file: leaf.certFile, ...resigned });
  }
  result.ok = result.nodes.every((step) => step.ok);
  return result;
}

/**
 * Phase 2. Refuses (RDB_CA_STILL_IN_USE) while a named node or a local certificate is still
 * signed by another CA than the new one; otherwise narrows every named node's trust bundle
 * to the new CA, then the local one, and removes ca.previous.key.
 */
export async function finishCaRotation(
  flags: PkiNodeFlagValues,
  nodes: string[],
): Promise<CaRotationResult> {
  const state = await readCaState(certsDirOf(flags['certs-dir']));
  await requireClientRole(flags, 'certs.trust-bundle');
  const ca = state.signing.certPem;
  const result: CaRotationResult = {
    phase: 'finish',
    ok: false,
    resumed: false,
    cluster: state.cluster,
    ca: summary(ca),
    previousCa: state.previous === null ? null : summary(state.previous.certPem),
    bundle: bundleSerials([ca]),
    nodes: [],
    clients: [],
    skipped: [],
    removed: [],
  };

  const link = await rotationLink(flags, state);
  const asked = await eachNode(nodes, async (address) => {
    const info = await nodeCertificate(link, address);
    const certificate = new X509Certificate(info.certPem);
    const signer = signerIn(info.certPem, state.bundle);
    return {
      nodeId: describeCertificate(info.certPem).identity?.id ?? '?',
      serial: certificate.serialNumber,
      signedBy: signer === undefined ? null : new X509Certificate(signer).serialNumber,
    };
  });
  const blocking: string[] = [];
  for (const step of asked) {
    if (step.ok && step.signedBy !== result.ca.serial) {
      blocking.push(`node '${step.nodeId}' at ${step.node} (serial ${step.serial})`);
    }
  }
  const revoked = await readRevocations(state.paths.revoked);
  for (const leaf of await leafFiles(state.paths.dir)) {
    const pem = await readPem(leaf.certFile, `${leaf.kind} certificate`);
    if (isSignedBy(pem, ca)) continue;
    const serial = new X509Certificate(pem).serialNumber;
    if (revoked.has(normalizeSerial(serial))) {
      result.skipped.push({ file: leaf.certFile, serial, reason: 'revoked' });
    } else {
      blocking.push(`${basename(leaf.certFile)} (serial ${serial})`);
    }
  }
  const unasked = asked.filter((step) => !step.ok);
  if (blocking.length === 0 && unasked.length > 0) {
    throw new RdbnetError(
      (unasked[0]!.code as ErrorCode | undefined) ?? ErrorCode.Internal,
      `cannot finish the CA rotation: could not ask ${unasked
        .map((step) => `${step.node} (${step.error})`)
        .join('; ')}`,
    );
  }
  for (const step of unasked) blocking.push(`${step.node} (could not ask: ${step.error})`);
  if (blocking.length > 0) {
    throw new RdbnetError(
      ErrorCode.CaStillInUse,
      `cannot finish the CA rotation: still signed by the old CA: ${blocking.join(', ')}`,
      {
        hint:
          'move them to the new CA with `rdbnet certs rotate --ca --nodes <host:port,...>` ' +
          '(it resumes the rotation in progress), or remove certificate files no longer in use',
      },
    );
  }

  result.nodes = await eachNode(nodes, async (address) => {
    const reply = await link(address, (client) =>
      client.ask('trustBundleRequest', { bundlePem: ca }),
    );
    const before = asked.find((step) => step.node === address);
    return {
      bundle: reply.certificates,
      ...(before?.nodeId === undefined ? {} : { nodeId: before.nodeId }),
      ...(before?.serial === undefined ? {} : { serial: before.serial }),
      signedBy: before?.signedBy ?? null,
    };
  });
  if (result.nodes.some((step) => !step.ok)) return result;
  ({ removed: result.removed } = await finishLocalCaRotation(state));
  result.ok = true;
  return result;
}
