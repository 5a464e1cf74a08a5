/**
 * How the k8s provider reaches the API server: in-cluster (the service-account token, CA and
 * namespace Kubernetes mounts into every pod, and KUBERNETES_SERVICE_HOST/PORT) or a
 * kubeconfig (server, CA data or file, a bearer token or client certificate, current-context),
 * the two ways client-go's `rest.InClusterConfig` and `clientcmd` offer. Exec and
 * auth-provider plugins are not run: they are refused with a message saying so.
 */

import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { formatHostPort } from '../../transport/address.ts';

/** yaml (about seventy modules) only when a kubeconfig is read: the config parser imports this
 * provider to check specs, and most commands never read a kubeconfig. */
function parseYaml(text: string, options: { maxAliasCount: number }): unknown {
  return (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text, options);
}

/** Where Kubernetes mounts the service account into a pod. */
export const SERVICE_ACCOUNT_DIR_DEFAULT = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Environment variable that moves the service-account dir (tests, unusual mounts). */
export const SERVICE_ACCOUNT_DIR_ENV = 'RDBNET_K8S_SERVICE_ACCOUNT_DIR';
/** A kubeconfig, token, CA or key file larger than this is refused: it is not one. */
export const CREDENTIAL_FILE_BYTES_MAX = 1024 * 1024;

export interface K8sConnection {
  /** `https://host:port` of the API server. */
  server: URL;
  /** Returns the bearer token for the next request (re-read: projected tokens rotate). */
  token: (() => string) | undefined;
  tls: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean };
  /** The namespace the credentials name (pod's namespace, context's namespace), if any. */
  namespace: string | undefined;
  /** For messages: `in-cluster` or `kubeconfig PATH (context NAME)`. */
  origin: string;
}

function failed(message: string): RdbnetError {
  return new RdbnetError(ErrorCode.DiscoveryFailed, `provider=k8s: ${message}`);
}

/** Reads a small credential file; a missing or oversized one fails naming it. */
export function readCredentialFile(path: string, what: string): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (error) {
    throw failed(`cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code}`);
  }
  if (size > CREDENTIAL_FILE_BYTES_MAX) {
    throw failed(`${what} ${path} is ${size} bytes; at most ${CREDENTIAL_FILE_BYTES_MAX}`);
  }
  return readFileSync(path, 'utf8');
}

/** In-cluster: KUBERNETES_SERVICE_HOST/PORT plus the mounted token, CA and namespace. */
export function inClusterConnection(
  env: Readonly<Record<string, string | undefined>>,
): K8sConnection {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  if (host === undefined || host === '') {
    throw failed('not in a cluster (KUBERNETES_SERVICE_HOST is not set); give kubeconfig=PATH');
  }
  if (!/^\d{1,5}$/.test(port)) throw failed(`KUBERNETES_SERVICE_PORT "${port}" is not a port`);
  const dir = env[SERVICE_ACCOUNT_DIR_ENV] ?? SERVICE_ACCOUNT_DIR_DEFAULT;
  const tokenPath = join(dir, 'token');
  const ca = readCredentialFile(join(dir, 'ca.crt'), 'service-account CA');
  readCredentialFile(tokenPath, 'service-account token'); // fail now, not on the first call
  let namespace: string | undefined;
  try {
    namespace = readFileSync(join(dir, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    namespace = undefined;
  }
  return {
    server: new URL(`https://${formatHostPort({ host, port: Number(port) })}`),
    token: () => readCredentialFile(tokenPath, 'service-account token').trim(),
    tls: { ca },
    namespace,
    origin: 'in-cluster service account',
  };
}

interface NamedEntry<T> {
  name?: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

function findNamed<T>(list: unknown, name: string, field: 'cluster' | 'user' | 'context'): T {
  const entries = Array.isArray(list) ? (list as NamedEntry<T>[]) : [];
  const entry = entries.find((e) => e?.name === name);
  const value = entry?.[field];
  if (value === undefined || value === null || typeof value !== 'object') {
    throw failed(`kubeconfig has no ${field} named "${name}"`);
  }
  return value;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** A kubeconfig's context (the given one, else current-context) turned into a connection. */
export function kubeconfigConnection(path: string, contextName?: string): K8sConnection {
  const text = readCredentialFile(path, 'kubeconfig');
  let config: Record<string, unknown>;
  try {
    config = parseYaml(text, { maxAliasCount: 100 }) as Record<string, unknown>;
  } catch (error) {
    throw failed(`kubeconfig ${path} is not YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  if (config === null || typeof config !== 'object') throw failed(`kubeconfig ${path} is empty`);
  const name = contextName ?? str(config['current-context']);
  if (name === undefined) throw failed(`kubeconfig ${path} has no current-context; give context=`);
  const context = findNamed<Record<string, unknown>>(config['contexts'], name, 'context');
  const clusterName = str(context['cluster']);
  if (clusterName === undefined) throw failed(`kubeconfig context "${name}" names no cluster`);
  const cluster = findNamed<Record<string, unknown>>(config['clusters'], clusterName, 'cluster');
  const userName = str(context['user']);
  const user =
    userName === undefined
      ? {}
      : findNamed<Record<string, unknown>>(config['users'], userName, 'user');
  const base = dirname(path);
  const resolve = (p: string): string => (isAbsolute(p) ? p : join(base, p));
  const decode = (b64: string): string => Buffer.from(b64, 'base64').toString('utf8');

  const serverText = str(cluster['server']);
  if (serverText === undefined) throw failed(`kubeconfig cluster "${clusterName}" has no server`);
  let server: URL;
  try {
    server = new URL(serverText);
  } catch {
    throw failed(`kubeconfig cluster "${clusterName}" server "${serverText}" is not a URL`);
  }
  const tls: K8sConnection['tls'] = {};
  const caData = str(cluster['certificate-authority-data']);
  const caFile = str(cluster['certificate-authority']);
  if (caData !== undefined) tls.ca = decode(caData);
  else if (caFile !== undefined) tls.ca = readCredentialFile(resolve(caFile), 'cluster CA');
  if (cluster['insecure-skip-tls-verify'] === true) tls.rejectUnauthorized = false;

  if (user['exec'] !== undefined || user['auth-provider'] !== undefined) {
    throw failed(
      `kubeconfig user "${userName}" uses an exec or auth-provider plugin, which rdbnet does not run; use a token or client certificate`,
    );
  }
  const certData = str(user['client-certificate-data']);
  const certFile = str(user['client-certificate']);
  const keyData = str(user['client-key-data']);
  const keyFile = str(user['client-key']);
  if (certData !== undefined) tls.cert = decode(certData);
  else if (certFile !== undefined) tls.cert = readCredentialFile(resolve(certFile), 'client cert');
  if (keyData !== undefined) tls.key = decode(keyData);
  else if (keyFile !== undefined) tls.key = readCredentialFile(resolve(keyFile), 'client key');
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw failed(`kubeconfig user "${userName}" has a client certificate without its key`);
  }
  const tokenData = str(user['token']);
  const tokenFile = str(user['tokenFile']);
  let token: (() => string) | undefined;
  if (tokenData !== undefined) token = () => tokenData;
  else if (tokenFile !== undefined) {
    const tokenPath = resolve(tokenFile);
    token = () => readCredentialFile(tokenPath, 'token file').trim();
  }
  return {
    server,
    token,
    tls,
    namespace: str(context['namespace']),
    origin: `kubeconfig ${path} (context ${name})`,
  };
}
