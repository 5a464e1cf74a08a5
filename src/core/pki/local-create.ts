/**
 * Creating certificates in a local certificates directory: the cluster CA (`certs init`) and
 * node and client certificates signed by it (`certs issue`, `certs client`). Nothing is
 * replaced unless asked: an existing file is RDB_ALREADY_EXISTS before anything is written.
 */
import { rm } from 'node:fs/promises';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { gossipKeyringPath } from '../node/gossip.ts';
import { readCaState } from '../security/ca-rotation.ts';
import {
  CERT_FILE_MODE,
  certsPaths,
  fileExists,
  KEY_FILE_MODE,
  writeFileAtomic,
} from '../security/certs-dir.ts';
import { type ClientRole, clientRoleOf, type Identity, identityUri } from '../security/identity.ts';
import { ensureKeyring } from '../security/keyring.ts';
import {
  createCertificateAuthority,
  describeCertificate,
  issueClientCertificate,
  issueNodeCertificate,
  type KeyBits,
} from '../security/pki.ts';

/** What a certificate may do on nodes: a client's role, or `node`. */
export type CertificateRole = ClientRole | 'node';

/** The role a certificate's identity grants; null when it names no rdbnet identity. */
export function roleOf(identity: Identity | null): CertificateRole | null {
  if (identity === null) return null;
  return identity.role === 'node' ? 'node' : clientRoleOf(identity);
}

export interface InitCaInput {
  dir: string;
  cluster: string;
  days: number;
  keyBits: KeyBits;
  overwrite: boolean;
}

export interface InitResult {
  created: string[];
  cluster: string;
  serial: string;
  notAfter: string;
  /** ca.previous.key of an unfinished rotation, removed by --overwrite. */
  removed: string[];
}

/** Writes ca.key and ca.crt (and gossip.keyring when there is none). */
export async function initCa(opts: InitCaInput): Promise<InitResult> {
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

export interface IssueLeafInput {
  dir: string;
  kind: 'node' | 'client';
  /** Node id or client name, already checked (validateName). */
  name: string;
  /** Client certificates: `read` unless given. */
  role?: ClientRole;
  /** DNS names and IP addresses of a node certificate. */
  hosts: string[];
  days: number;
  keyBits: KeyBits;
  overwrite: boolean;
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

/** Writes node.<id>.crt/.key or client.<name>.crt/.key, signed by the directory's CA. */
export async function issueLeaf(opts: IssueLeafInput): Promise<IssueResult> {
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
