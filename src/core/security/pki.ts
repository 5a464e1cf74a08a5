import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  X509Certificate,
} from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { ErrorCode, RdbnetError } from '../errors.ts';
import {
  type ClientRole,
  type Identity,
  identityFromSubjectAltName,
  identityUris,
  parseSubjectAltName,
  validateName,
} from './identity.ts';

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export type KeyBits = 2048 | 3072 | 4096;

export interface CertificateInfo {
  subject: string;
  issuer: string;
  serial: string;
  /** ISO 8601. */
  notBefore: string;
  /** ISO 8601. */
  notAfter: string;
  isCa: boolean;
  identity: Identity | null;
  dnsNames: string[];
  ipAddresses: string[];
  /** Colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprintSha256: string;
}

const DEFAULT_CA_VALIDITY_DAYS = 3650;
const DEFAULT_LEAF_VALIDITY_DAYS = 365;
const DEFAULT_KEY_BITS: KeyBits = 2048;
const MIN_CSR_KEY_BITS = 2048;
// Backdating notBefore keeps a freshly issued certificate valid on peers whose clocks lag ours.
const CLOCK_SKEW_MS = 5 * 60 * 1000;
const MS_PER_DAY = 24 * 60 * 60 * 1000;
const SERIAL_BYTES = 16;
const ORGANIZATION = 'rdbnet';
const PEM_CERT_END = '-----END CERTIFICATE-----';

export function generateRsaKey(keyBits: KeyBits = DEFAULT_KEY_BITS): {
  keyPem: string;
  publicKeyPem: string;
} {
  checkKeyBits(keyBits);
  // node:crypto uses OpenSSL; forge's pure-JS prime search takes seconds per key.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: keyBits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { keyPem: privateKey, publicKeyPem: publicKey };
}

export function createCertificateAuthority(opts: {
  cluster: string;
  validityDays?: number;
  keyBits?: KeyBits;
  now?: Date;
}): KeyPairPem {
  const cluster = validateName('cluster name', opts.cluster);
  const validityDays = checkValidityDays(opts.validityDays ?? DEFAULT_CA_VALIDITY_DAYS);
  const now = opts.now ?? new Date();
  const { keyPem, publicKeyPem } = generateRsaKey(opts.keyBits ?? DEFAULT_KEY_BITS);

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(now.getTime() + validityDays * MS_PER_DAY);
  const subject = [
    { name: 'commonName', value: `rdbnet CA ${cluster}` },
    { name: 'organizationName', value: ORGANIZATION },
    { shortName: 'OU', value: cluster },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    // pathLen 0: the cluster CA signs leaves only, never another CA.
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

export function issueNodeCertificate(opts: {
  ca: KeyPairPem;
  cluster: string;
  nodeId: string;
  hosts: string[];
  validityDays?: number;
  keyBits?: KeyBits;
  now?: Date;
}): KeyPairPem {
  const identity: Identity = { cluster: opts.cluster, role: 'node', id: opts.nodeId };
  return issueWithNewKey({ ...opts, identity, hosts: opts.hosts });
}

export function issueClientCertificate(opts: {
  ca: KeyPairPem;
  cluster: string;
  name: string;
  /** What the certificate may do on nodes; `read` unless asked (least privilege). */
  role?: ClientRole;
  validityDays?: number;
  keyBits?: KeyBits;
  now?: Date;
}): KeyPairPem {
  const identity: Identity = {
    cluster: opts.cluster,
    role: 'client',
    id: opts.name,
    clientRole: opts.role ?? 'read',
  };
  return issueWithNewKey({ ...opts, identity, hosts: [] });
}

/**
 * A CSR lets a node rotate its certificate without its private key ever leaving the node.
 * `publicKeyPem` must be the public half of `keyPem`.
 */
export function createCertificateRequest(opts: {
  keyPem: string;
  publicKeyPem: string;
  commonName: string;
}): string {
  const derived = exportSpki(createPublicKey(parsePrivateKey(opts.keyPem)));
  if (derived !== exportSpki(parsePublicKey(opts.publicKeyPem))) {
    throw new RdbnetError(ErrorCode.Usage, 'publicKeyPem is not the public half of keyPem');
  }
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(opts.publicKeyPem);
  csr.setSubject([{ name: 'commonName', value: opts.commonName }]);
  csr.sign(forge.pki.privateKeyFromPem(opts.keyPem), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/**
 * Signs a CSR after checking its proof of possession. Only the public key is taken from the
 * CSR: identity, SANs and usages come from `opts`, because a CSR's requested extensions are
 * whatever its author wanted them to be.
 */
export function signCertificateRequest(opts: {
  ca: KeyPairPem;
  csrPem: string;
  cluster: string;
  identity: Identity;
  hosts: string[];
  validityDays?: number;
  now?: Date;
}): string {
  if (opts.identity.cluster !== opts.cluster) {
    throw new RdbnetError(
      ErrorCode.ClusterMismatch,
      `identity belongs to cluster "${opts.identity.cluster}", not "${opts.cluster}"`,
    );
  }
  let csr: forge.pki.CertificateSigningRequest;
  let verified: boolean;
  try {
    csr = forge.pki.certificationRequestFromPem(opts.csrPem);
    verified = csr.verify();
  } catch (error) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'certificate request cannot be parsed', {
      cause: error,
    });
  }
  if (!verified || csr.publicKey === null) {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      'certificate request signature does not verify',
    );
  }
  const publicKey = csr.publicKey as forge.pki.rsa.PublicKey;
  if (publicKey.n.bitLength() < MIN_CSR_KEY_BITS) {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      `certificate request key has ${publicKey.n.bitLength()} bits; at least ` +
        `${MIN_CSR_KEY_BITS} are required`,
    );
  }
  return signLeaf({
    ca: loadSigningCa(opts.ca),
    publicKey,
    identity: opts.identity,
    hostNames: hostAltNames(opts.hosts),
    validityDays: checkValidityDays(opts.validityDays ?? DEFAULT_LEAF_VALIDITY_DAYS),
    now: opts.now ?? new Date(),
  });
}

export function describeCertificate(pem: string): CertificateInfo {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (error) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'not a valid PEM certificate', {
      cause: error,
    });
  }
  const san = parseSubjectAltName(cert.subjectAltName);
  return {
    subject: distinguishedName(cert.subject),
    issuer: distinguishedName(cert.issuer),
    serial: cert.serialNumber,
    notBefore: cert.validFromDate.toISOString(),
    notAfter: cert.validToDate.toISOString(),
    isCa: cert.ca,
    identity: identityFromSubjectAltName(cert.subjectAltName),
    dnsNames: san.filter((entry) => entry.type === 'DNS').map((entry) => entry.value),
    ipAddresses: san
      .filter((entry) => entry.type === 'IP Address')
      .map((entry) => canonicalIp(entry.value)),
    fingerprintSha256: cert.fingerprint256,
  };
}

/**
 * The cluster a CA certificate serves: the single OU of its subject, as
 * createCertificateAuthority writes it. Read from the parsed subject (its ASN.1 attributes),
 * never by matching text, so no formatting of the subject can hide or fake it. Undefined when
 * the subject has no OU, several, or one that is not a valid cluster name.
 */
export function clusterOfCertificateAuthority(caPem: string): string | undefined {
  let der: Buffer;
  try {
    der = new X509Certificate(caPem).raw;
  } catch (error) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'not a valid PEM certificate', {
      cause: error,
    });
  }
  const units = subjectAttributes(der).filter((attribute) => attribute.type === OID_OU);
  const value = units.length === 1 ? units[0]!.value : undefined;
  if (typeof value !== 'string') return undefined;
  try {
    return validateName('cluster name', value);
  } catch {
    return undefined;
  }
}

/** organizationalUnitName (X.520). */
const OID_OU = '2.5.4.11';

/**
 * The subject's attributes from the DER certificate. Only the TBSCertificate structure is
 * walked, not the key, so any key type works (forge's certificate parser takes RSA only).
 */
function subjectAttributes(der: Buffer): { type: string; value: unknown }[] {
  const certificate = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
  const tbs = (certificate.value as forge.asn1.Asn1[])[0];
  const fields = (tbs?.value ?? []) as forge.asn1.Asn1[];
  // TBSCertificate: [0] version (optional), serial, signature, issuer, validity, subject.
  const versioned = fields[0]?.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC ? 1 : 0;
  const subject = fields[versioned + 4];
  if (subject === undefined) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'certificate has no subject');
  }
  const attributes = (
    forge.pki as unknown as {
      RDNAttributesAsArray(rdn: forge.asn1.Asn1): { type: string; value: unknown }[];
    }
  ).RDNAttributesAsArray(subject);
  return attributes;
}

/** Describes every certificate in a PEM bundle such as the ca.crt trust bundle. */
export function describeBundle(pem: string): CertificateInfo[] {
  return splitPemBundle(pem).map(describeCertificate);
}

/** Throws CertificateInvalid when either PEM cannot be parsed, so `false` always means "other key". */
export function keyMatchesCertificate(certPem: string, keyPem: string): boolean {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (error) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'not a valid PEM certificate', {
      cause: error,
    });
  }
  const key = parsePrivateKey(keyPem);
  return cert.publicKey.asymmetricKeyType === key.asymmetricKeyType && cert.checkPrivateKey(key);
}

export function splitPemBundle(pem: string): string[] {
  return pem
    .split(PEM_CERT_END)
    .map((chunk) => chunk.trim())
    .filter((chunk) => chunk.includes('-----BEGIN CERTIFICATE-----'))
    .map(
      (chunk) => `${chunk.slice(chunk.indexOf('-----BEGIN CERTIFICATE-----'))}\n${PEM_CERT_END}\n`,
    );
}

interface SigningCa {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
  keyIdentifier: string;
}

function issueWithNewKey(opts: {
  ca: KeyPairPem;
  identity: Identity;
  hosts: string[];
  validityDays?: number;
  keyBits?: KeyBits;
  now?: Date;
}): KeyPairPem {
  // Validate everything cheap before paying for key generation.
  identityUris(opts.identity);
  const validityDays = checkValidityDays(opts.validityDays ?? DEFAULT_LEAF_VALIDITY_DAYS);
  const hostNames = hostAltNames(opts.hosts);
  const ca = loadSigningCa(opts.ca);
  const { keyPem, publicKeyPem } = generateRsaKey(opts.keyBits ?? DEFAULT_KEY_BITS);
  const certPem = signLeaf({
    ca,
    publicKey: forge.pki.publicKeyFromPem(publicKeyPem),
    identity: opts.identity,
    hostNames,
    validityDays,
    now: opts.now ?? new Date(),
  });
  return { certPem, keyPem };
}

function signLeaf(spec: {
  ca: SigningCa;
  publicKey: forge.pki.rsa.PublicKey;
  identity: Identity;
  hostNames: AltName[];
  validityDays: number;
  now: Date;
}): string {
  const uris = identityUris(spec.identity);
  const caNotAfter = spec.ca.cert.validity.notAfter;
  if (caNotAfter.getTime() <= spec.now.getTime()) {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      `CA certificate expired on ${caNotAfter.toISOString()}`,
      { hint: 'Create a new CA and add it to the ca.crt trust bundle before issuing.' },
    );
  }
  const requestedNotAfter = spec.now.getTime() + spec.validityDays * MS_PER_DAY;

  const cert = forge.pki.createCertificate();
  cert.publicKey = spec.publicKey;
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = new Date(spec.now.getTime() - CLOCK_SKEW_MS);
  // A leaf outliving its CA would fail verification anyway; say so in the certificate itself.
  cert.validity.notAfter = new Date(Math.min(requestedNotAfter, caNotAfter.getTime()));
  cert.setSubject([
    { name: 'commonName', value: spec.identity.id },
    { name: 'organizationName', value: ORGANIZATION },
    { shortName: 'OU', value: spec.identity.cluster },
  ]);
  cert.setIssuer(spec.ca.cert.subject.attributes);
  const isNode = spec.identity.role === 'node';
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: isNode, clientAuth: true },
    {
      name: 'subjectAltName',
      altNames: [...uris.map((value) => ({ type: 6, value })), ...spec.hostNames],
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: spec.ca.keyIdentifier },
  ]);
  cert.sign(spec.ca.key, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/**
 * Picks the certificate in `ca.certPem` that belongs to `ca.keyPem`, so a trust bundle holding
 * an old and a new CA during rotation can be passed as is.
 */
function loadSigningCa(ca: KeyPairPem): SigningCa {
  const certs = splitPemBundle(ca.certPem);
  if (certs.length === 0) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'CA certificate PEM holds no certificate');
  }
  const certPem = certs.find((pem) => keyMatchesCertificate(pem, ca.keyPem));
  if (certPem === undefined) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'CA key does not match the CA certificate');
  }
  if (!new X509Certificate(certPem).ca) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'CA certificate is not marked CA:true');
  }
  let cert: forge.pki.Certificate;
  let key: forge.pki.rsa.PrivateKey;
  try {
    cert = forge.pki.certificateFromPem(certPem);
    key = forge.pki.privateKeyFromPem(ca.keyPem);
  } catch (error) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'CA must be an RSA certificate and key', {
      cause: error,
    });
  }
  const ski = cert.getExtension('subjectKeyIdentifier') as
    | { subjectKeyIdentifier?: string }
    | undefined;
  // The AKI must equal the CA's own SKI as written, or path building by key id fails.
  const keyIdentifier =
    ski?.subjectKeyIdentifier !== undefined
      ? forge.util.hexToBytes(ski.subjectKeyIdentifier)
      : cert.generateSubjectKeyIdentifier().getBytes();
  return { cert, key, keyIdentifier };
}

type AltName = { type: 2; value: string } | { type: 7; value: string };

// Letters, digits, '-' and '_' per label, optional leading '*.' wildcard, optional trailing dot.
const DNS_NAME_PATTERN =
  /^(\*\.)?[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const MAX_DNS_NAME_CHARS = 253;

function hostAltNames(hosts: string[]): AltName[] {
  return [...new Set(hosts)].map(hostAltName);
}

function hostAltName(host: string): AltName {
  const family = isIP(host);
  if (family === 4) return { type: 7, value: bytesToBinary(ipv4Bytes(host)) };
  if (family === 6) {
    if (host.includes('%')) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `host ${JSON.stringify(host)}: a zone index cannot appear in a certificate`,
      );
    }
    // Own conversion: forge's bytesFromIP rejects IPv4-mapped forms such as ::ffff:127.0.0.1.
    return { type: 7, value: bytesToBinary(ipv6Bytes(host)) };
  }
  if (host.length > MAX_DNS_NAME_CHARS || !DNS_NAME_PATTERN.test(host)) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `host ${JSON.stringify(host.slice(0, 80))} is neither an IP address nor a DNS name`,
    );
  }
  return { type: 2, value: host };
}

function ipv4Bytes(ip: string): number[] {
  return ip.split('.').map((part) => Number.parseInt(part, 10));
}

/** Expects a literal that `isIP` already accepted as IPv6. */
function ipv6Bytes(ip: string): number[] {
  let text = ip;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a, b, c, d] = ipv4Bytes(tail) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros =
    rest === undefined ? [] : Array(8 - headGroups.length - restGroups.length).fill('0');
  const groups = [...headGroups, ...zeros, ...restGroups];
  return groups.flatMap((group) => {
    const value = Number.parseInt(group, 16);
    return [value >> 8, value & 0xff];
  });
}

function bytesToBinary(bytes: number[]): string {
  return String.fromCharCode(...bytes);
}

/** Node prints IPv6 SANs fully expanded; compress them the way people write them. */
function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

function distinguishedName(text: string): string {
  return text.split('\n').filter(Boolean).join(', ');
}

function randomSerialHex(): string {
  const bytes = randomBytes(SERIAL_BYTES);
  // Clearing the top bit keeps the DER INTEGER positive; a zero first byte would be a
  // non-minimal encoding that strict parsers (OpenSSL 3) reject.
  const first = bytes[0]! & 0x7f;
  bytes[0] = first === 0 ? 0x01 : first;
  return bytes.toString('hex');
}

function checkKeyBits(keyBits: number): void {
  if (keyBits !== 2048 && keyBits !== 3072 && keyBits !== 4096) {
    throw new RdbnetError(ErrorCode.Usage, `key size ${keyBits} bits: use 2048, 3072 or 4096`);
  }
}

function checkValidityDays(validityDays: number): number {
  if (!Number.isFinite(validityDays) || validityDays <= 0) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `validity ${validityDays} days: must be a positive number`,
    );
  }
  return validityDays;
}

function parsePrivateKey(keyPem: string): KeyObject {
  try {
    return createPrivateKey(keyPem);
  } catch (error) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'not a valid PEM private key', {
      cause: error,
    });
  }
}

function parsePublicKey(publicKeyPem: string): KeyObject {
  try {
    return createPublicKey(publicKeyPem);
  } catch (error) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, 'not a valid PEM public key', {
      cause: error,
    });
  }
}

function exportSpki(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}
