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
  type Identity,
  identityFromSubjectAltName,
  identityUri,
  parseIdentityUri,
  parseSubjectAltName,
  type Role,
  type SubjectAltNameEntry,
  validateName,
} from './identity.ts';
export * from './keyring.ts';
export {
  type CertificateInfo,
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
