/**
 * How an operator's tool talks to a running node: one typed client over one connection,
 * authenticated by a client certificate of a certificates directory. Commands, tests and
 * benchmarks all ask nodes through it, so every request is checked against REPLY_OF.
 */
import type { X509Certificate } from 'node:crypto';
import { loadClientCredentials } from '../node/credentials.ts';
import type { LocalEndpoint, PeerInfo } from '../protocol/handshake.ts';
import { type ReplyBody, type RequestBody, type RequestKind, request } from '../rpc/request.ts';
import type { TlsMaterial } from '../security/tls.ts';
import { formatHostPort, type HostPort } from '../transport/address.ts';
import type { Connection } from '../transport/connection.ts';
import { type DialInit, dial, presentedCertificate } from '../transport/dial.ts';
import { connectionOptions } from '../transport/options.ts';
import { SOFTWARE_VERSION } from '../version.ts';

/** What a person refused for their certificate's role (RDB_FORBIDDEN) can do about it. */
export const FORBIDDEN_HINT =
  'use --client with a certificate whose role allows it (`rdbnet certs list` shows roles); ' +
  'where the CA key is: rdbnet certs client --name NAME --role admin';

/** An operator's way to a node, as the `--node --certs-dir --client --insecure --timeout`
 * flags give it; names already checked (validateName) by whoever built it. */
export interface OperatorInit {
  address: HostPort;
  /** Directory holding ca.crt and client.<clientName>.crt/.key; unused when insecure. */
  certsDir: string;
  clientName: string;
  /** Plaintext, unauthenticated (a node started with --insecure). */
  insecure: boolean;
  /** Bounds the connect + TLS + handshake, and every request's reply by default. */
  timeoutMs: number;
  /** The client certificate's TLS material, when the caller made it (a CA rotation's
   * stand-in certificate); read from certsDir otherwise. */
  tls?: TlsMaterial;
  /** The cluster the stand-in certificate names (with `tls`). */
  cluster?: string;
  softwareVersion?: string;
}

/** The DialInit for an operator: the client certificate of the certs dir unless insecure. */
export async function operatorDialInit(init: OperatorInit): Promise<DialInit> {
  const options = connectionOptions({
    handshakeTimeoutMs: init.timeoutMs,
    requestTimeoutMs: init.timeoutMs,
  });
  const local: LocalEndpoint = {
    id: init.clientName,
    clusterId: '',
    role: 'client',
    softwareVersion: init.softwareVersion ?? SOFTWARE_VERSION,
  };
  if (init.insecure) return { address: init.address, local, tls: null, options };
  if (init.tls !== undefined) {
    return {
      address: init.address,
      local: { ...local, clusterId: init.cluster ?? '' },
      tls: init.tls,
      options,
    };
  }
  const credentials = await loadClientCredentials(init.certsDir, init.clientName);
  return {
    address: init.address,
    local: { ...local, clusterId: credentials.identity.cluster },
    tls: credentials.tls,
    options,
  };
}

/** One connection to a node and the typed way to ask it things. */
export class NodeClient {
  readonly connection: Connection;
  /** The node's address as dialed, host:port. */
  readonly target: string;

  private constructor(connection: Connection, target: string) {
    this.connection = connection;
    this.target = target;
  }

  /** Dials and completes the handshake; every failure is one typed error naming the node. */
  static async connect(init: DialInit): Promise<NodeClient> {
    return new NodeClient(await dial(init), formatHostPort(init.address));
  }

  /** Connects, runs `work`, and always closes the connection. */
  static async with<T>(init: DialInit, work: (client: NodeClient) => Promise<T>): Promise<T> {
    const client = await NodeClient.connect(init);
    try {
      return await work(client);
    } finally {
      client.close();
    }
  }

  /**
   * Sends a `kind` request and resolves with its reply's body; the reply kind comes from
   * REPLY_OF, and another kind in reply is RDB_MESSAGE_MALFORMED. `timeoutMs` defaults to
   * the connection's request timeout.
   */
  ask<K extends RequestKind>(
    kind: K,
    body: RequestBody<K>,
    timeoutMs?: number,
  ): Promise<ReplyBody<K>> {
    return request(this.connection, kind, body, timeoutMs);
  }

  /** Who answered, as the handshake established it. */
  get peer(): PeerInfo | null {
    return this.connection.peer;
  }

  /** The certificate the node presented in this TLS session; undefined on plaintext. */
  get presentedCertificate(): X509Certificate | undefined {
    return presentedCertificate(this.connection);
  }

  get isOpen(): boolean {
    return this.connection.state === 'open';
  }

  close(): void {
    this.connection.close();
  }
}
