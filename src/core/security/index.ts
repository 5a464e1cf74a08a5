export {
  CERT_FILE_MODE,
  type CertsPaths,
  certsPaths,
  ensureLocalCertificates,
  KEY_FILE_MODE,
  readPem,
  writeFileAtomic,
} from './certs-dir.ts';
export {
  CLIENT_ROLES,
  type ClientRole,
  clientRoleOf,
  type Identity,
  identityFromSubjectAltName,
  identityUri,
  identityUris,
  LEGACY_CLIENT_ROLE,
  parseClientRole,
  parseIdentityUri,
  parseSubjectAltName,
  type Role,
  roleUri,
  type SubjectAltNameEntry,
  validateName,
} from './identity.ts';
export * from './keyring.ts';
export {
  type CertificateInfo,
  clusterOfCertificateAuthority,
  createCertificateAuthority,
  createCertificateRequest,
  describeBundle,
  describeCertificate,
  generateRsaKey,
  issueClientCertificate,
  issueNodeCertificate,
  type KeyBits,
  type KeyPairPem,
  keyMatchesCertificate,
  signCertificateRequest,
  splitPemBundle,
} from './pki.ts';
export * from './revocations.ts';
export * from './tls.ts';
