/**
 * Accepts connections for a node: TLS 1.3 with client certificates by default,
 * plaintext only when the node runs --insecure. A failed TLS handshake, a bad first
 * frame or a protocol violation costs the offending connection only.
 */

import type { X509Certificate } from 'node:crypto';
import {
  type AddressInfo,
  createServer as createTcpServer,
  type Server,
  type Socket,
} from 'node:net';
import {
  createServer as createTlsServer,
  type TLSSocket,
  type Server as TlsServer,
} from 'node:tls';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { Codec, encodeFrame, FrameKind, makeFlags } from '../protocol/frame.ts';
import type { LocalEndpoint } from '../protocol/handshake.ts';
import { encodeEnvelope } from '../protocol/messages.ts';
import type { Identity } from '../security/identity.ts';
import { peerIdentity, serverTlsOptions, type TlsMaterial } from '../security/tls.ts';
import {
  Connection,
  type ConnectionHooks,
  type RequestHandler,
  socketError,
} from './connection.ts';
import type { ConnectionOptions } from './options.ts';

/** How long a rejected connection may take to read why before it is cut. */
const REJECT_LINGER_MS = 1000;

export interface TransportServerEvents extends ConnectionHooks {
  /** A connection was refused before it could speak the protocol (TLS failure, bad certificate identity). */
  onRejected?(remoteAddress: string, error: RdbnetError): void;
}

export interface TransportServerInit {
  local: LocalEndpoint;
  /** null: plaintext (--insecure). */
  tls: TlsMaterial | null;
  options: ConnectionOptions;
  handler: RequestHandler;
  events?: TransportServerEvents;
  /** Connections accepted at once; more are refused by the kernel-level accept path. */
  connectionsMax: number;
  /** Last word on a verified peer certificate (revocation); throw a RdbnetError to refuse it. */
  admit?(certificate: X509Certificate, identity: Identity): void;
}

export class TransportServer {
  readonly connections = new Set<Connection>();
  /** Every accepted socket, including those still in the TLS handshake, so a stop can end them. */
  private readonly sockets = new Set<Socket>();
  private readonly remotes = new WeakMap<object, string>();
  private readonly init: TransportServerInit;
  private readonly server: Server;
  private tlsMaterial: TlsMaterial | null;

  constructor(init: TransportServerInit) {
    this.init = init;
    this.tlsMaterial = init.tls;
    if (init.tls === null) {
      this.server = createTcpServer((socket) => this.adopt(socket, null));
    } else {
      const server = createTlsServer(
        { ...serverTlsOptions(init.tls), handshakeTimeout: init.options.handshakeTimeoutMs },
        (socket) => {
          let identity: Identity;
          try {
            identity = peerIdentity(socket);
            init.admit?.(socket.getPeerX509Certificate()!, identity);
          } catch (error) {
            this.reject(socket, error as RdbnetError);
            return;
          }
          this.adopt(socket, identity);
        },
      );
      server.on('tlsClientError', (error, socket: TLSSocket) => {
        // An untrusted client certificate surfaces as a bare reset; the real reason is here.
        const reason = socket.authorizationError;
        const typed = reason
          ? new RdbnetError(ErrorCode.TlsFailed, `client certificate rejected: ${String(reason)}`, {
              cause: error,
            })
          : socketError(error);
        init.events?.onRejected?.(this.remoteOf(socket), typed);
      });
      this.server = server;
    }
    this.server.maxConnections = init.connectionsMax;
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      // Remembered now: once TLS has torn a socket down its address is gone.
      this.remotes.set(socket, `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  get tls(): boolean {
    return this.tlsMaterial !== null;
  }

  /** New certificate, key or trust bundle: used by every connection accepted from now on. */
  updateTls(material: TlsMaterial): void {
    if (this.tlsMaterial === null)
      throw new Error('invariant violated: updateTls on a plaintext server');
    (this.server as TlsServer).setSecureContext(serverTlsOptions(material));
    this.tlsMaterial = material;
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error & { code?: string }) => {
        const hint =
          error.code === 'EADDRINUSE'
            ? 'another process listens there; pick another --listen port'
            : undefined;
        reject(
          new RdbnetError(
            ErrorCode.ConfigInvalid,
            `cannot listen on ${host}:${port}: ${error.message}`,
            {
              ...(hint === undefined ? {} : { hint }),
              cause: error,
            },
          ),
        );
      };
      this.server.once('error', onError);
      this.server.listen({ host, port, exclusive: true }, () => {
        this.server.off('error', onError);
        this.server.on('error', () => {
          // Accept errors (EMFILE and the like) are transient; the server keeps serving.
        });
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting, asks open connections to finish, and waits at most graceMs. */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const connection of this.connections) connection.close();
    const timer = setTimeout(() => {
      for (const socket of this.sockets) socket.destroy();
    }, graceMs);
    await closed;
    clearTimeout(timer);
  }

  private adopt(socket: Socket, identity: Identity | null): void {
    const events = this.init.events;
    const connection = new Connection({
      socket,
      side: 'acceptor',
      local: this.init.local,
      options: this.init.options,
      certified: identity,
      handler: this.init.handler,
      hooks: {
        onOpen: (c) => events?.onOpen?.(c),
        onProtocolError: (c, error) => events?.onProtocolError?.(c, error),
        onClose: (c, error) => {
          this.connections.delete(c);
          events?.onClose?.(c, error);
        },
      },
    });
    this.connections.add(connection);
    // A peer that connects and then says nothing must not hold a slot forever.
    const timer = setTimeout(() => {
      if (connection.state === 'handshaking') {
        connection.close(
          new RdbnetError(ErrorCode.HandshakeTimeout, 'no Hello within the handshake timeout'),
        );
      }
    }, this.init.options.handshakeTimeoutMs);
    timer.unref();
  }

  private remoteOf(socket: Socket): string {
    const parent = (socket as { _parent?: Socket })._parent;
    return (
      this.remotes.get(socket) ??
      (parent === undefined ? undefined : this.remotes.get(parent)) ??
      `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    );
  }

  private reject(socket: Socket, error: RdbnetError): void {
    this.init.events?.onRejected?.(this.remoteOf(socket), error);
    // Past TLS the peer can read one frame: tell it why (a revoked certificate, say) instead
    // of a bare reset. Reading on until it closes keeps unread input from turning our close
    // into a reset that would discard the frame.
    const reason = { error: { code: error.code, message: error.message } };
    socket.on('error', () => {});
    socket.resume();
    socket.end(
      encodeFrame(makeFlags(FrameKind.Error, Codec.None, false), 0, encodeEnvelope(reason)),
    );
    setTimeout(() => socket.destroy(), REJECT_LINGER_MS).unref();
  }
}
