/**
 * Flags and plumbing shared by every command that talks to a running node: which node,
 * which certificates, and one connection that is always closed afterwards.
 */
import { Flags } from '@oclif/core';
import { DEFAULT_CLIENT_NAME, defaultCertsDir, defaultNodeAddress } from '../core/config/home.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../core/errors.ts';
import { loadClientCredentials } from '../core/node/credentials.ts';
import type { LocalEndpoint } from '../core/protocol/handshake.ts';
import { validateName } from '../core/security/identity.ts';
import { parseHostPort } from '../core/transport/address.ts';
import type { Connection } from '../core/transport/connection.ts';
import { type DialInit, dial } from '../core/transport/dial.ts';
import { connectionOptions } from '../core/transport/options.ts';
import { SOFTWARE_VERSION } from '../core/version.ts';

export const nodeFlags = {
  node: Flags.string({
    description: 'Node to talk to, as host:port. [env: RDBNET_NODE; default: 127.0.0.1:7000]',
    helpValue: 'host:port',
  }),
  'certs-dir': Flags.string({
    description: 'Certificates directory. [env: RDBNET_CERTS_DIR; default: $RDBNET_HOME/certs]',
    helpValue: 'dir',
  }),
  client: Flags.string({
    description: 'Name of the client certificate in --certs-dir (client.<name>.crt/.key).',
    default: DEFAULT_CLIENT_NAME,
    helpValue: 'name',
  }),
  insecure: Flags.boolean({
    description: 'Plaintext, unauthenticated connection (node started with --insecure).',
  }),
  timeout: Flags.integer({
    description: 'Milliseconds to wait for the node (connect, TLS, handshake, reply).',
    default: 5000,
    min: 1,
    max: 600_000,
    helpValue: 'ms',
  }),
};

export interface NodeFlagValues {
  node?: string | undefined;
  'certs-dir'?: string | undefined;
  client: string;
  insecure: boolean;
  timeout: number;
}

/** How to reach the node named by the flags: address, client identity, TLS material. */
export async function nodeDialInit(flags: NodeFlagValues): Promise<DialInit> {
  const address = parseHostPort(flags.node ?? defaultNodeAddress(), '--node address');
  const clientName = validateName('client name', flags.client);
  const options = connectionOptions({
    handshakeTimeoutMs: flags.timeout,
    requestTimeoutMs: flags.timeout,
  });
  let local: LocalEndpoint = {
    id: clientName,
    clusterId: '',
    role: 'client',
    softwareVersion: SOFTWARE_VERSION,
  };
  let tls = null;
  if (!flags.insecure) {
    const credentials = await loadClientCredentials(
      flags['certs-dir'] ?? defaultCertsDir(),
      clientName,
    );
    local = { ...local, clusterId: credentials.identity.cluster };
    tls = credentials.tls;
  }
  return { address, local, tls, options };
}

/** What a person refused for their certificate's role (RDB_FORBIDDEN) can do about it. */
export const FORBIDDEN_HINT =
  'use --client with a certificate whose role allows it (`rdbnet certs list` shows roles); ' +
  'where the CA key is: rdbnet certs client --name NAME --role admin';

/** Connects to the node named by the flags, runs `work`, and always closes the connection. */
export async function withNode<T>(
  flags: NodeFlagValues,
  work: (connection: Connection) => Promise<T>,
): Promise<T> {
  const connection = await dial(await nodeDialInit(flags));
  try {
    return await withHints(work(connection), { [ErrorCode.Forbidden]: FORBIDDEN_HINT });
  } finally {
    connection.close();
  }
}

/**
 * Error frames from a node carry a code and a message but no hint; this adds the hint a
 * person needs for the codes a command expects (`hints` by error code).
 */
export async function withHints<T>(
  work: Promise<T>,
  hints: Partial<Record<string, string>>,
): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (isRdbnetError(error) && error.hint === undefined && hints[error.code] !== undefined) {
      throw new RdbnetError(error.code, error.message, { hint: hints[error.code]!, cause: error });
    }
    throw error;
  }
}
