/**
 * Flags and plumbing shared by every command that talks to a running node: which node,
 * which certificates, and one connection that is always closed afterwards.
 */
import { Flags } from '@oclif/core';
import {
  FORBIDDEN_HINT,
  NodeClient,
  type OperatorInit,
  operatorDialInit,
} from '../core/client/node-client.ts';
import { DEFAULT_CLIENT_NAME, defaultCertsDir, defaultNodeAddress } from '../core/config/home.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../core/errors.ts';
import { validateName } from '../core/security/identity.ts';
import { parseHostPort } from '../core/transport/address.ts';
import type { DialInit } from '../core/transport/dial.ts';

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
    description:
      'Name of the client certificate in --certs-dir (client.<name>.crt/.key). [env: RDBNET_CLIENT]',
    default: DEFAULT_CLIENT_NAME,
    env: 'RDBNET_CLIENT',
    helpValue: 'name',
  }),
  insecure: Flags.boolean({
    description:
      'Plaintext, unauthenticated connection (node started with --insecure). [env: RDBNET_INSECURE]',
    env: 'RDBNET_INSECURE',
  }),
  timeout: Flags.integer({
    description:
      'Milliseconds to wait for the node (connect, TLS, handshake, reply). [env: RDBNET_TIMEOUT]',
    default: 5000,
    env: 'RDBNET_TIMEOUT',
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

/** The operator's way to the node named by the flags (names checked here, before any dial). */
export function operatorInit(flags: NodeFlagValues): OperatorInit {
  const address = parseHostPort(flags.node ?? defaultNodeAddress(), '--node address');
  return {
    address,
    clientName: validateName('client name', flags.client),
    certsDir: flags['certs-dir'] ?? defaultCertsDir(),
    insecure: flags.insecure,
    timeoutMs: flags.timeout,
  };
}

/** How to reach the node named by the flags: address, client identity, TLS material. */
export async function nodeDialInit(flags: NodeFlagValues): Promise<DialInit> {
  return operatorDialInit(operatorInit(flags));
}

/** Connects to the node named by the flags, runs `work`, and always closes the connection. */
export async function withNode<T>(
  flags: NodeFlagValues,
  work: (client: NodeClient) => Promise<T>,
): Promise<T> {
  const client = await NodeClient.connect(await nodeDialInit(flags));
  try {
    return await withHints(work(client), { [ErrorCode.Forbidden]: FORBIDDEN_HINT });
  } finally {
    client.close();
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
