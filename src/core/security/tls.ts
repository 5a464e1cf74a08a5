/**
 * TLS settings shared by every rdbnet endpoint: TLS 1.3 only, mutual authentication,
 * and identity taken from the certificate's rdbnet:// URI SAN, checked by us on every
 * connection (Node skips checkServerIdentity on resumed TLS 1.3 sessions, so hostname
 * checks are not relied upon for identity).
 */
import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { type Identity, identityFromSubjectAltName } from './identity.ts';

/** PEM text of what one endpoint presents and trusts. */
export interface TlsMaterial {
  /** Trust bundle: one or more CA certificates. */
  ca: string;
  cert: string;
  key: string;
}

export const TLS_VERSION = 'TLSv1.3' as const;

export function serverTlsOptions(material: TlsMaterial) {
  return {
    ca: material.ca,
    cert: material.cert,
    key: material.key,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    requestCert: true,
    rejectUnauthorized: true,
  };
}

export function clientTlsOptions(material: TlsMaterial) {
  return {
    ca: material.ca,
    cert: material.cert,
    key: material.key,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    rejectUnauthorized: true,
    // Identity is the URI SAN, checked in peerIdentity(); addresses are not identities.
    checkServerIdentity: () => undefined,
  };
}

/** The identity proven by the peer's (already chain-verified) certificate. */
export function peerIdentity(socket: TLSSocket): Identity {
  return certificateIdentity(socket.getPeerX509Certificate());
}

/**
 * The identity named by a peer certificate. For callers that keep the certificate too: on a
 * client socket Node 24 returns the peer certificate from `getPeerX509Certificate()` only
 * once (later calls, and any call after TLS 1.3 session tickets arrive, give undefined).
 */
export function certificateIdentity(certificate: X509Certificate | undefined): Identity {
  if (certificate === undefined) {
    throw new RdbnetError(ErrorCode.IdentityInvalid, 'peer presented no certificate');
  }
  const identity = identityFromSubjectAltName(certificate.subjectAltName);
  if (identity === null) {
    throw new RdbnetError(
      ErrorCode.IdentityInvalid,
      `peer certificate (serial ${certificate.serialNumber}) carries no rdbnet:// identity`,
    );
  }
  return identity;
}
