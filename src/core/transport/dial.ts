/**
 * Opens a connection to a node: TCP (or TLS 1.3 with our client certificate), then the
 * protocol handshake. The whole attempt is bounded by handshakeTimeoutMs, and every
 * failure comes back as one typed error a person can act on.
 */
import type { X509Certificate } from 'node:crypto';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { LocalEndpoint } from '../protocol/handshake.ts';
import { certificateIdentity, clientTlsOptions, type TlsMaterial } from '../security/tls.ts';
import { formatHostPort, type HostPort } from './address.ts';
import {
  Connection,
  type ConnectionHooks,
  type RequestHandler,
  socketError,
} from './connection.ts';
import type { ConnectionOptions } from './options.ts';

export interface DialInit {
  address: HostPort;
  local: LocalEndpoint;
  /** null: plaintext (--insecure). */
  tls: TlsMaterial | null;
  options: ConnectionOptions;
  handler?: RequestHandler;
  hooks?: ConnectionHooks;
}

/**
 * The certificate each dialed node presented, kept from the TLS handshake: on a client socket
 * Node 24 hands it out once (see certificateIdentity), so asking the socket again later gives
 * undefined.
 */
const presentedCertificates = new WeakMap<Connection, X509Certificate>();

/** The certificate the node presented in this connection's TLS session; undefined on plaintext. */
export function presentedCertificate(connection: Connection): X509Certificate | undefined {
  return presentedCertificates.get(connection);
}

export async function dial(init: DialInit): Promise<Connection> {
  const target = formatHostPort(init.address);
  const startedAtMs = performance.now();
  const deadline = AbortSignal.timeout(init.options.handshakeTimeoutMs);
  const socket = await openSocket(init, target, deadline);
  const certificate =
    init.tls === null ? undefined : (socket as TLSSocket).getPeerX509Certificate();
  let connection: Connection;
  try {
    connection = new Connection({
      socket,
      side: 'dialer',
      local: init.local,
      options: init.options,
      certified: init.tls === null ? null : certificateIdentity(certificate),
      ...(init.handler === undefined ? {} : { handler: init.handler }),
      ...(init.hooks === undefined ? {} : { hooks: init.hooks }),
    });
  } catch (error) {
    socket.destroy();
    throw explain(error as RdbnetError, target, init.tls !== null);
  }
  if (certificate !== undefined) presentedCertificates.set(connection, certificate);
  try {
    // One budget for the whole attempt: the handshake gets what connecting left over.
    const remainingMs = init.options.handshakeTimeoutMs - (performance.now() - startedAtMs);
    await connection.startHandshake(Math.max(1, remainingMs));
  } catch (error) {
    connection.close();
    socket.destroy();
    throw explain(error as RdbnetError, target, init.tls !== null);
  }
  return connection;
}

function openSocket(init: DialInit, target: string, deadline: AbortSignal): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const { host, port } = init.address;
    const socket: Socket =
      init.tls === null
        ? connectTcp({ host, port })
        : connectTls({ host, port, servername: undefined, ...clientTlsOptions(init.tls) });
    const readyEvent = init.tls === null ? 'connect' : 'secureConnect';
    const cleanup = () => {
      socket.off('error', onError);
      socket.off(readyEvent, onReady);
      deadline.removeEventListener('abort', onTimeout);
    };
    const onReady = () => {
      cleanup();
      resolve(socket);
    };
    const onError = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(explain(socketError(error), target, init.tls !== null));
    };
    const onTimeout = () => {
      cleanup();
      socket.destroy();
      reject(
        new RdbnetError(
          ErrorCode.NodeUnreachable,
          `no answer from ${target} within ${init.options.handshakeTimeoutMs} ms`,
          {
            hint: 'is the node running, and is this its --listen address?',
          },
        ),
      );
    };
    socket.once('error', onError);
    socket.once(readyEvent, onReady);
    deadline.addEventListener('abort', onTimeout, { once: true });
  });
}

/** Rewords low-level failures into one line that names the target and what to try. */
function explain(error: RdbnetError, target: string, tls: boolean): RdbnetError {
  const cause = error.cause as (Error & { code?: string }) | undefined;
  switch (error.code) {
    case ErrorCode.NodeUnreachable: {
      // A name that does not resolve is a typo or DNS, not a stopped node (defect 10).
      if (cause?.code === 'ENOTFOUND' || cause?.code === 'EAI_AGAIN') {
        const host = (cause as { hostname?: string }).hostname ?? target;
        return new RdbnetError(
          ErrorCode.NodeUnreachable,
          `cannot resolve host ${host} (${target}): ${cause.code}`,
          { hint: 'check the host name in --node or RDBNET_NODE, or use an IP address', cause },
        );
      }
      const why =
        cause?.code === 'ECONNREFUSED' ? 'connection refused' : (cause?.code ?? error.message);
      return new RdbnetError(ErrorCode.NodeUnreachable, `cannot reach node at ${target}: ${why}`, {
        hint: error.hint ?? 'is the node running? set --node or RDBNET_NODE to its address',
        cause,
      });
    }
    case ErrorCode.TlsFailed:
      return new RdbnetError(ErrorCode.TlsFailed, `TLS with ${target} failed: ${error.message}`, {
        hint: "check that --certs-dir holds this cluster's ca.crt and your client certificate",
        cause,
      });
    default: {
      const hint = error.hint ?? (tls ? refusalHint(error) : undefined);
      if (error.message.includes(target) && hint === error.hint) return error;
      const message = error.message.includes(target)
        ? error.message
        : `${target}: ${error.message}`;
      return new RdbnetError(error.code, message, {
        ...(hint === undefined ? {} : { hint }),
        cause: error.cause,
      });
    }
  }
}

/**
 * A node that refuses our certificate (expired, revoked, from another CA) closes the
 * connection, often before its TLS alert or error frame can be read; say where to look.
 */
function refusalHint(error: RdbnetError): string | undefined {
  if (error.code !== ErrorCode.ConnectionClosed && error.code !== ErrorCode.HandshakeRejected) {
    return undefined;
  }
  return (
    'the node may refuse this client certificate (expired, revoked or from another CA): ' +
    'its log says why, and `rdbnet node status` counts it under connections.rejected.*'
  );
}
