/**
 * A running node's certificates: what it presents, whom it trusts, whom it refuses. Every
 * change — rotation, a new trust bundle, a revocation list, a SIGHUP reload — is checked
 * before it is written, written atomically, and then swapped in for new connections without
 * touching the open ones. The node's private key is made here and never leaves the machine.
 */
import { sign, X509Certificate } from 'node:crypto';
import type { CertificateAdmin } from '../api/admin.ts';
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { CertInfoReply, CertRotateReply } from '../protocol/messages.ts';
import type { Counters, Logger } from '../runtime/index.ts';
import {
  CERT_FILE_MODE,
  certsPaths,
  KEY_FILE_MODE,
  writeFileAtomic,
} from '../security/certs-dir.ts';
import type { Identity } from '../security/identity.ts';
import {
  type CertificateInfo,
  createCertificateRequest,
  describeCertificate,
  generateRsaKey,
  type KeyBits,
  keyMatchesCertificate,
  splitPemBundle,
} from '../security/pki.ts';
import { isRevoked, readRevocations, writeRevocations } from '../security/revocations.ts';
import type { TlsMaterial } from '../security/tls.ts';
import { loadNodeCredentials } from './credentials.ts';

const MS_PER_DAY = 24 * 60 * 60 * 1000;
/** A nonce outside these bounds is refused: too short proves nothing, too long is abuse. */
const NONCE_BYTES_MIN = 16;
const NONCE_BYTES_MAX = 1024;

export interface NodeCertificatesInit {
  certsDir: string;
  nodeId: string;
  identity: Identity;
  tls: TlsMaterial;
  log: Logger;
  counters: Counters;
  /** Called with the new material whenever what the node presents or trusts changes. */
  onChange(tls: TlsMaterial): void;
}

export class NodeCertificates {
  private material: TlsMaterial;
  private info: CertificateInfo;
  private revoked = new Set<string>();
  /** Key made by beginRotation, waiting for its signed certificate. Only one at a time. */
  private pendingKeyPem: string | null = null;
  private readonly init: NodeCertificatesInit;
  private readonly paths: ReturnType<typeof certsPaths>;

  private constructor(init: NodeCertificatesInit) {
    this.init = init;
    this.material = init.tls;
    this.info = describeCertificate(init.tls.cert);
    this.paths = certsPaths(init.certsDir);
  }

  static async load(init: NodeCertificatesInit): Promise<NodeCertificates> {
    const certificates = new NodeCertificates(init);
    certificates.revoked = await readRevocations(certificates.paths.revoked);
    return certificates;
  }

  get tls(): TlsMaterial {
    return this.material;
  }

  get certificate(): CertificateInfo {
    return this.info;
  }

  get revokedSerials(): string[] {
    return [...this.revoked].sort();
  }

  daysLeft(nowMs = Date.now()): number {
    return (Date.parse(this.info.notAfter) - nowMs) / MS_PER_DAY;
  }

  /** Throws RDB_CERT_REVOKED for a peer certificate on the revocation list. */
  admit(peer: X509Certificate): void {
    if (isRevoked(this.revoked, peer.serialNumber)) {
      throw new RdbnetError(
        ErrorCode.CertificateRevoked,
        `certificate serial ${peer.serialNumber} is revoked`,
      );
    }
  }

  /** Phase 1 of rotation: a new key, kept here, and a CSR for the operator's CA to sign. */
  beginRotation(keyBits: KeyBits = 2048): {
    csrPem: string;
    hosts: string[];
    currentSerial: string;
  } {
    const { keyPem, publicKeyPem } = generateRsaKey(keyBits);
    this.pendingKeyPem = keyPem;
    this.init.log.info('certificate rotation started', { serial: this.info.serial });
    return {
      csrPem: createCertificateRequest({ keyPem, publicKeyPem, commonName: this.init.nodeId }),
      hosts: [...this.info.dnsNames, ...this.info.ipAddresses],
      currentSerial: this.info.serial,
    };
  }

  /** Phase 2: the signed certificate for the pending key; used for new connections at once. */
  async installCertificate(certPem: string): Promise<CertificateInfo> {
    const keyPem = this.pendingKeyPem;
    if (keyPem === null) {
      throw new RdbnetError(
        ErrorCode.CertificateInvalid,
        'no rotation in progress: ask for a CSR first',
      );
    }
    const info = this.check(certPem, keyPem, this.material.ca);
    // Key first: a crash between the two writes leaves a new key with the old certificate,
    // which start-up reports as a mismatch naming both files, instead of a silent mix.
    await writeFileAtomic(this.paths.nodeKey(this.init.nodeId), keyPem, KEY_FILE_MODE);
    await writeFileAtomic(this.paths.nodeCert(this.init.nodeId), certPem, CERT_FILE_MODE);
    this.pendingKeyPem = null;
    const previous = this.info.serial;
    this.swap({ ...this.material, cert: certPem, key: keyPem }, info);
    this.init.counters.increment('certs.rotations');
    this.init.log.info('certificate rotated', {
      previousSerial: previous,
      serial: info.serial,
      notAfter: info.notAfter,
    });
    return info;
  }

  /** Replaces the trust bundle; it must still trust this node's own certificate. */
  async setTrustBundle(bundlePem: string): Promise<number> {
    const cas = splitPemBundle(bundlePem).map((pem) => new X509Certificate(pem));
    if (cas.length === 0)
      throw new RdbnetError(ErrorCode.CertificateInvalid, 'trust bundle holds no certificate');
    for (const ca of cas) {
      if (!ca.ca)
        throw new RdbnetError(
          ErrorCode.CertificateInvalid,
          `bundle entry ${ca.subject} is not a CA`,
        );
    }
    if (issuerIn(this.material.cert, cas) === undefined) {
      throw new RdbnetError(
        ErrorCode.CertificateInvalid,
        `the new bundle does not trust this node's certificate (serial ${this.info.serial})`,
        { hint: 'rotate the node certificate to the new CA before removing the old one' },
      );
    }
    await writeFileAtomic(this.paths.caCert, bundlePem, CERT_FILE_MODE);
    this.swap({ ...this.material, ca: bundlePem }, this.info);
    this.init.counters.increment('certs.bundle_updates');
    this.init.log.info('trust bundle replaced', { certificates: cas.length });
    return cas.length;
  }

  async setRevocations(serials: string[]): Promise<number> {
    this.revoked = await writeRevocations(this.paths.revoked, serials);
    this.init.log.info('revocation list replaced', { revoked: this.revoked.size });
    return this.revoked.size;
  }

  /** Signs a fresh nonce with the node's key: proof it holds the key of what it presents. */
  proveIdentity(nonce: Uint8Array): { signature: Buffer; algorithm: string } {
    if (nonce.length < NONCE_BYTES_MIN || nonce.length > NONCE_BYTES_MAX) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `nonce must be ${NONCE_BYTES_MIN}..${NONCE_BYTES_MAX} bytes`,
      );
    }
    return { signature: sign('sha256', nonce, this.material.key), algorithm: 'RSA-SHA256' };
  }

  /** SIGHUP: re-read certificate, key, bundle and revocations; keep the old ones on any error. */
  async reload(): Promise<void> {
    try {
      const loaded = await loadNodeCredentials({
        certsDir: this.init.certsDir,
        nodeId: this.init.nodeId,
        createMissing: false,
        defaultCluster: this.init.identity.cluster,
        hosts: [],
      });
      if (loaded.identity.cluster !== this.init.identity.cluster) {
        throw new RdbnetError(
          ErrorCode.ClusterMismatch,
          `certificate is for cluster '${loaded.identity.cluster}'`,
        );
      }
      const revoked = await readRevocations(this.paths.revoked);
      this.revoked = revoked;
      this.swap(loaded.tls, describeCertificate(loaded.tls.cert));
      this.init.counters.increment('certs.reloads');
      this.init.log.info('certificates reloaded', {
        serial: this.info.serial,
        revoked: revoked.size,
      });
    } catch (error) {
      this.init.counters.increment('certs.reload_failures');
      this.init.log.error('certificate reload failed; keeping the current ones', {
        reason: error instanceof Error ? error.message : String(error),
      });
      throw error;
    }
  }

  private check(certPem: string, keyPem: string, bundlePem: string): CertificateInfo {
    let info: CertificateInfo;
    try {
      info = describeCertificate(certPem);
    } catch (cause) {
      throw new RdbnetError(ErrorCode.CertificateInvalid, 'not a PEM certificate', { cause });
    }
    if (!keyMatchesCertificate(certPem, keyPem)) {
      throw new RdbnetError(
        ErrorCode.CertificateInvalid,
        'certificate is not for the key this node made',
      );
    }
    const identity = info.identity;
    const own = this.init.identity;
    if (
      identity === null ||
      identity.role !== 'node' ||
      identity.id !== own.id ||
      identity.cluster !== own.cluster
    ) {
      throw new RdbnetError(
        ErrorCode.IdentityInvalid,
        `certificate does not name node '${own.id}' in cluster '${own.cluster}'`,
      );
    }
    const now = Date.now();
    if (Date.parse(info.notAfter) <= now || Date.parse(info.notBefore) > now) {
      throw new RdbnetError(
        ErrorCode.CertificateInvalid,
        `certificate is not valid now (${info.notBefore} .. ${info.notAfter})`,
      );
    }
    if (
      issuerIn(
        certPem,
        splitPemBundle(bundlePem).map((pem) => new X509Certificate(pem)),
      ) === undefined
    ) {
      throw new RdbnetError(
        ErrorCode.CertificateUntrusted,
        "certificate is not signed by a CA in this node's trust bundle",
      );
    }
    return info;
  }

  private swap(material: TlsMaterial, info: CertificateInfo): void {
    this.material = material;
    this.info = info;
    this.init.onChange(material);
  }
}

function issuerIn(certPem: string, cas: X509Certificate[]): X509Certificate | undefined {
  const leaf = new X509Certificate(certPem);
  return cas.find((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
}

/** A node's certificates as the admin API operates them (`rdbnet certs rotate`, trust
 * bundle and revocation pushes, `certs info`, identity proofs). */
export function certificateAdmin(
  certificates: NodeCertificates,
  nodeId: string,
  clusterId: string,
): CertificateAdmin {
  return {
    beginRotation: (keyBits: number): CertRotateReply => {
      if (keyBits !== 2048 && keyBits !== 3072 && keyBits !== 4096) {
        throw new RdbnetError(
          ErrorCode.Usage,
          `key bits must be 2048, 3072 or 4096, not ${keyBits}`,
        );
      }
      const begun = certificates.beginRotation(keyBits as KeyBits);
      return { ...begun, nodeId, clusterId };
    },
    installCertificate: async (certPem: string) => {
      const info = await certificates.installCertificate(certPem);
      return { serial: info.serial, notAfter: info.notAfter };
    },
    setTrustBundle: (bundlePem: string) => certificates.setTrustBundle(bundlePem),
    setRevocations: (serials: string[]) => certificates.setRevocations(serials),
    info: (): CertInfoReply => ({
      certPem: certificates.tls.cert,
      bundlePem: certificates.tls.ca,
      revokedSerials: certificates.revokedSerials,
    }),
    proveIdentity: (nonce: Uint8Array) => certificates.proveIdentity(nonce),
  };
}
