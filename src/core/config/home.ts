import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$RDBNET_HOME`, default ~/.rdbnet: where a node keeps its data and certificates by default. */
export function rdbnetHome(env: NodeJS.ProcessEnv = process.env): string {
  return env['RDBNET_HOME'] || join(homedir(), '.rdbnet');
}

/** `$RDBNET_CERTS_DIR`, default `$RDBNET_HOME/certs`. */
export function defaultCertsDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['RDBNET_CERTS_DIR'] || join(rdbnetHome(env), 'certs');
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(rdbnetHome(env), 'node');
}

/** `$RDBNET_NODE`, default 127.0.0.1:7000: the node a client command talks to. */
export function defaultNodeAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env['RDBNET_NODE'] || '127.0.0.1:7000';
}

export const DEFAULT_LISTEN = '127.0.0.1:7000';
export const DEFAULT_CLUSTER = 'rdbnet';
export const DEFAULT_CLIENT_NAME = 'admin';
