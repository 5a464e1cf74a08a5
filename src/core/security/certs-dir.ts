import { randomBytes } from 'node:crypto';
import { access, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { onFile } from '../fs-errors.ts';
import { validateName } from './identity.ts';
import {
  createCertificateAuthority,
  issueClientCertificate,
  issueNodeCertificate,
  type KeyPairPem,
} from './pki.ts';

/**
 * The certificates directory is a contract shared with operators and other tools:
 * ca.crt (trust bundle), ca.key, node.<id>.crt/.key and client.<name>.crt/.key.
 */
export interface CertsPaths {
  dir: string;
  caCert: string;
  caKey: string;
  nodeCert(id: string): string;
  nodeKey(id: string): string;
  clientCert(name: string): string;
  clientKey(name: string): string;
  /** Revoked certificate serials, one per line (upper-case hex), enforced by nodes at handshake. */
  revoked: string;
  /** The CA key a `certs rotate --ca` replaced, kept (0600) so a rotation can be rolled back. */
  previousCaKey: string;
}

export const KEY_FILE_MODE = 0o600;
export const CERT_FILE_MODE = 0o644;
const DIR_MODE = 0o700;
const DEFAULT_CLIENT_NAME = 'admin';
const LOCK_FILE = '.rdbnet-certs.lock';
const LOCK_RETRY_MS = 25;
// Creating a CA and two leaves takes well under a second, so an older lock is a crashed holder.
const LOCK_STALE_MS = 20_000;
const LOCK_TIMEOUT_MS = 30_000;
const ISSUE_HINT =
  'Issue it with `rdbnet certs issue` on the machine that holds the CA key and copy it here.';

export function certsPaths(dir: string): CertsPaths {
  // Names become file names, so validating them also rules out path traversal.
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    revoked: join(dir, 'revoked.txt'),
    previousCaKey: join(dir, 'ca.previous.key'),
    nodeCert: (id) => join(dir, `node.${validateName('node id', id)}.crt`),
    nodeKey: (id) => join(dir, `node.${validateName('node id', id)}.key`),
    clientCert: (name) => join(dir, `client.${validateName('client name', name)}.crt`),
    clientKey: (name) => join(dir, `client.${validateName('client name', name)}.key`),
  };
}

/**
 * Readers see either the old file or the complete new one, never a torn write; the mode is
 * set on the temp file before the rename so a key is never briefly world-readable.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Buffer,
  mode: number,
): Promise<void> {
  // A full or read-only disk names the file being written, not just "ENOSPC … write".
  await onFile(path, 'write', () => writeFileAtomicUnnamed(path, data, mode));
}

async function writeFileAtomicUnnamed(
  path: string,
  data: string | Buffer,
  mode: number,
): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let renamed = false;
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      // open() applies the umask; chmod makes the mode exactly what the contract says.
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    renamed = true;
  } finally {
    if (!renamed) await rm(temp, { force: true });
  }
  await syncDirectory(dir);
}

/** Reads a PEM file, turning a missing file into a typed error that tells a person what to do. */
/**
 * Reads a PEM file. `hint` replaces the generic advice when the file is missing, so the error
 * can name the exact command that makes it.
 */
export async function readPem(path: string, what: string, hint = ISSUE_HINT): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ENOENT') {
      throw new RdbnetError(ErrorCode.CertificatesMissing, `${what} not found: ${path}`, {
        hint,
        cause: error,
      });
    }
    throw new RdbnetError(ErrorCode.CertificatesMissing, `cannot read ${what}: ${path} (${code})`, {
      cause: error,
    });
  }
  if (!text.includes('-----BEGIN ')) {
    throw new RdbnetError(ErrorCode.CertificateInvalid, `${what} is not in PEM format: ${path}`);
  }
  return text;
}

/**
 * Zero-config setup: creates whatever of the CA, this node's pair and the client pair (role
 * admin) is missing. Existing files are never replaced, and a directory that already has everything is
 * not written to at all (it may be read-only). Returns the paths written, never key material.
 */
export async function ensureLocalCertificates(opts: {
  dir: string;
  cluster: string;
  nodeId?: string;
  hosts: string[];
  clientName?: string;
}): Promise<{ created: string[] }> {
  const request: EnsureRequest = {
    paths: certsPaths(opts.dir),
    cluster: validateName('cluster name', opts.cluster),
    nodeId: opts.nodeId === undefined ? undefined : validateName('node id', opts.nodeId),
    clientName: validateName('client name', opts.clientName ?? DEFAULT_CLIENT_NAME),
    hosts: opts.hosts,
  };
  if (!(await planEnsure(request)).anything) return { created: [] };
  // Several local nodes started together often share one directory; without the lock each
  // would create its own CA and they could never trust each other.
  return withDirectoryLock(request.paths.dir, () => createMissing(request));
}

interface EnsureRequest {
  paths: CertsPaths;
  cluster: string;
  nodeId: string | undefined;
  clientName: string;
  hosts: string[];
}

interface EnsurePlan {
  anything: boolean;
  caCertExists: boolean;
  caKeyExists: boolean;
  needNode: boolean;
  needClient: boolean;
}

async function planEnsure(request: EnsureRequest): Promise<EnsurePlan> {
  const { paths, nodeId, clientName } = request;
  const caCertExists = await fileExists(paths.caCert);
  const caKeyExists = await fileExists(paths.caKey);
  // Half a pair is useless (a cert without its key) or untrusted (a key without a cert).
  const needNode =
    nodeId !== undefined &&
    !((await fileExists(paths.nodeCert(nodeId))) && (await fileExists(paths.nodeKey(nodeId))));
  const needClient = !(
    (await fileExists(paths.clientCert(clientName))) &&
    (await fileExists(paths.clientKey(clientName)))
  );
  const anything = !caCertExists || needNode || needClient;
  return { anything, caCertExists, caKeyExists, needNode, needClient };
}

async function createMissing(request: EnsureRequest): Promise<{ created: string[] }> {
  const { paths, cluster, nodeId, clientName, hosts } = request;
  // Re-plan under the lock: another process may have created files while we waited.
  const plan = await planEnsure(request);
  const created: string[] = [];
  const write = async (path: string, data: string, mode: number): Promise<void> => {
    await writeFileAtomic(path, data, mode);
    created.push(path);
  };

  if (!plan.caCertExists && plan.caKeyExists) {
    throw new RdbnetError(
      ErrorCode.CertificatesMissing,
      `CA certificate not found: ${paths.caCert}`,
      {
        hint:
          `${paths.caKey} exists without it. Restore ca.crt, or delete ca.key to start a new CA ` +
          '(certificates signed by the old one will no longer be trusted).',
      },
    );
  }

  let ca: KeyPairPem | undefined;
  if (!plan.caCertExists) {
    ca = createCertificateAuthority({ cluster });
    // Key first: a crash in between leaves a state that is reported above, not a CA cert
    // whose key is gone for good.
    await write(paths.caKey, ca.keyPem, KEY_FILE_MODE);
    await write(paths.caCert, ca.certPem, CERT_FILE_MODE);
  }
  if (!plan.needNode && !plan.needClient) return { created };

  if (ca === undefined) {
    if (!plan.caKeyExists) {
      const missing =
        plan.needNode && nodeId !== undefined
          ? paths.nodeCert(nodeId)
          : paths.clientCert(clientName);
      throw new RdbnetError(
        ErrorCode.CertificatesMissing,
        `${missing} not found, and it cannot be issued here because the CA key is not ` +
          `present: ${paths.caKey}`,
        { hint: ISSUE_HINT },
      );
    }
    ca = {
      certPem: await readPem(paths.caCert, 'CA certificate'),
      keyPem: await readPem(paths.caKey, 'CA key'),
    };
  }

  // Each pair is written key first so a crash leaves the cert missing and the pair is reissued.
  if (plan.needNode && nodeId !== undefined) {
    const pair = issueNodeCertificate({ ca, cluster, nodeId, hosts });
    await write(paths.nodeKey(nodeId), pair.keyPem, KEY_FILE_MODE);
    await write(paths.nodeCert(nodeId), pair.certPem, CERT_FILE_MODE);
  }
  if (plan.needClient) {
    // The operator of a zero-config node is its administrator: the client may change things.
    const pair = issueClientCertificate({ ca, cluster, name: clientName, role: 'admin' });
    await write(paths.clientKey(clientName), pair.keyPem, KEY_FILE_MODE);
    await write(paths.clientCert(clientName), pair.certPem, CERT_FILE_MODE);
  }
  return { created };
}

async function withDirectoryLock<T>(dir: string, action: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  const lockPath = join(dir, LOCK_FILE);
  const deadlineMs = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx', KEY_FILE_MODE);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      break;
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error;
    }
    const ageMs = await fileAgeMs(lockPath);
    if (ageMs !== undefined && ageMs > LOCK_STALE_MS) {
      // Two waiters may both judge it stale; the loser just retries the exclusive create.
      await rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() > deadlineMs) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `certificates directory is locked by another process: ${lockPath}`,
        { hint: 'Remove the lock file if no rdbnet process is creating certificates.' },
      );
    }
    await sleep(LOCK_RETRY_MS);
  }
  try {
    return await action();
  } finally {
    await rm(lockPath, { force: true });
  }
}

async function syncDirectory(dir: string): Promise<void> {
  // fsync of the directory makes the rename itself durable; some platforms cannot open a
  // directory for it, and there the rename is as durable as it gets.
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    const code = errorCode(error);
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES') {
      throw error;
    }
  } finally {
    await handle?.close();
  }
}

/** False only when the file is absent; any other error (permissions, I/O) is thrown. */
export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  }
}

async function fileAgeMs(path: string): Promise<number | undefined> {
  try {
    return Date.now() - (await stat(path)).mtimeMs;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}
