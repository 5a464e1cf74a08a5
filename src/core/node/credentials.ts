/**
 * Finds (and on a zero-config start, creates) the certificates a node or a client uses,
 * and checks them before anything listens: a node must not start with a key that does
 * not match its certificate, an expired certificate, or someone else's identity.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import { certsPaths, ensureLocalCertificates, readPem } from '../security/certs-dir.ts';
import type { Identity, Role } from '../security/identity.ts';
import {
  clusterOfCertificateAuthority,
  describeCertificate,
  keyMatchesCertificate,
} from '../security/pki.ts';
import type { TlsMaterial } from '../security/tls.ts';

export interface LoadedCredentials {
  tls: TlsMaterial;
  identity: Identity;
  certFile: string;
  keyFile: string;
  /** Files written by a zero-config start. */
  created: string[];
}

export async function loadNodeCredentials(opts: {
  certsDir: string;
  nodeId: string;
  /** Create a missing CA / node certificate / admin client certificate (zero-config). */
  createMissing: boolean;
  defaultCluster: string;
  hosts: string[];
}): Promise<LoadedCredentials> {
  const paths = certsPaths(opts.certsDir);
  let created: string[] = [];
  if (opts.createMissing) {
    const caPem = await readPem(paths.caCert, 'CA certificate').catch(() => undefined);
    // An existing CA decides the cluster (`certs init --cluster probe`, then a plain start).
    const cluster =
      (caPem === undefined ? undefined : clusterOfCertificateAuthority(caPem)) ??
      opts.defaultCluster;
    ({ created } = await ensureLocalCertificates({
      dir: opts.certsDir,
      cluster,
      nodeId: opts.nodeId,
      hosts: opts.hosts,
    }));
  }
  const loaded = await loadPair(
    opts.certsDir,
    paths.nodeCert(opts.nodeId),
    paths.nodeKey(opts.nodeId),
    'node',
    opts.nodeId,
  );
  return { ...loaded, created };
}

export async function loadClientCredentials(
  certsDir: string,
  clientName: string,
): Promise<LoadedCredentials> {
  const paths = certsPaths(certsDir);
  return {
    ...(await loadPair(
      certsDir,
      paths.clientCert(clientName),
      paths.clientKey(clientName),
      'client',
      clientName,
    )),
    created: [],
  };
}

async function loadPair(
  certsDir: string,
  certFile: string,
  keyFile: string,
  role: Role,
  id: string,
): Promise<Omit<LoadedCredentials, 'created'>> {
  const hint =
    role === 'node'
      ? `issue one with: rdbnet certs issue --node-id ${id} --certs-dir ${certsDir}`
      : `issue one with: rdbnet certs client --name ${id} --certs-dir ${certsDir}`;
  const ca = await readPem(
    certsPaths(certsDir).caCert,
    'CA certificate',
    "point --certs-dir (or RDBNET_CERTS_DIR) at the directory holding the cluster's ca.crt; " +
      '`rdbnet node start` without flags creates one in $RDBNET_HOME/certs',
  );
  const cert = await readPem(certFile, `${role} certificate`, hint);
  const key = await readPem(keyFile, `${role} private key`, hint);
  if (!keyMatchesCertificate(cert, key)) {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      `private key ${keyFile} does not match certificate ${certFile}`,
    );
  }
  const info = describeCertificate(cert);
  const now = Date.now();
  if (Date.parse(info.notAfter) <= now) {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      `certificate ${certFile} expired on ${info.notAfter}`,
      { hint },
    );
  }
  if (Date.parse(info.notBefore) > now) {
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      `certificate ${certFile} is not valid before ${info.notBefore}`,
    );
  }
  const identity = info.identity;
  if (identity === null || identity.role !== role || identity.id !== id) {
    const found = identity === null ? 'no rdbnet identity' : `${identity.role} '${identity.id}'`;
    throw new RdbnetError(
      ErrorCode.CertificateInvalid,
      `certificate ${certFile} names ${found}, expected ${role} '${id}'`,
    );
  }
  return { tls: { ca, cert, key }, identity, certFile, keyFile };
}
