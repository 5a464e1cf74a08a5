/**
 * Accepts connections for a node: TLS 1.3 with client certificates by default,
 * plaintext only when the node runs --insecure. A failed TLS handshake, a bad first
 * frame or a protocol violation costs the offending connection only.
 *
 * Limits, each with its overflow behaviour:
 * - Unauthenticated connections (accepted, TLS handshake or Hello not done) are counted apart
 *   from authenticated ones, in total and per source address (UnauthenticatedTable): a new one
 *   past either cap makes the oldest of its source (or of all) close. Each must
 *   finish TLS and its Hello within handshakeTimeoutMs of the accept, or its socket is
 *   destroyed (RDB_HANDSHAKE_TIMEOUT).
 * - Authenticated connections: connectionsMax; one more is refused in the handshake with
 *   RDB_CONNECTION_LIMIT, except for exempt peers (members of the cluster).
 * - Idle authenticated connections are closed after idleTimeoutMs (RDB_IDLE_TIMEOUT), except
 *   exempt peers'.
 * - Buffered frames of every accepted connection share one MemoryBudget (RDB_MEMORY_BUDGET).
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
import { ConfigFieldError, ErrorCode, RdbnetError } from '../errors.ts';
import { Codec, encodeFrame, FrameKind, makeFlags } from '../protocol/frame.ts';
import type { LocalEndpoint, PeerInfo } from '../protocol/handshake.ts';
import { encodeEnvelope } from '../protocol/messages.ts';
import { type Clock, systemClock } from '../runtime/index.ts';
import type { Identity } from '../security/identity.ts';
import { peerIdentity, serverTlsOptions, type TlsMaterial } from '../security/tls.ts';
import { sourceKey, UnauthenticatedTable } from './admission.ts';
import {
  Connection,
  type ConnectionHooks,
  type RequestHandler,
  socketError,
} from './connection.ts';
import type { MemoryBudget } from './memory-budget.ts';
import type { ConnectionOptions } from './options.ts';

/** How long a rejected connection may take to read why before it is cut. */
const REJECT_LINGER_MS = 1000;
/** Default of TransportServerInit.unauthenticatedConnectionsMax. */
export const UNAUTHENTICATED_CONNECTIONS_MAX_DEFAULT = 1024;
/** Default of TransportServerInit.unauthenticatedConnectionsPerSourceMax. */
export const UNAUTHENTICATED_CONNECTIONS_PER_SOURCE_MAX_DEFAULT = 64;
/** Handshake deadlines and idle connections are checked this often at most… */
const SWEEP_INTERVAL_MAX_MS = 250;
/** A connection with no frame for this long gives its write buffer back (the sweep's check). */
const BUFFER_RELEASE_IDLE_MS = 1000;
/** …and at least this often per deadline, so none is overshot by more than a quarter. */
const SWEEPS_PER_DEADLINE = 4;

/** Counts kept by the server; the node shows them in `node status`. */
export interface TransportServerStats {
  /** Unauthenticated connections held now. */
  unauthenticated: number;
  /** Authenticated connections held now. */
  authenticated: number;
  /** Unauthenticated connections closed to make room for newer ones. */
  preauthEvicted: number;
  /** Unauthenticated connections destroyed at the handshake deadline. */
  preauthTimedOut: number;
  /** Peers refused in the handshake because connectionsMax authenticated connections are held. */
  connectionLimitRefused: number;
  /** Authenticated connections closed at the idle timeout. */
  idleClosed: number;
  /** Connections closed at accept by the gate (the ACL). */
  gateRefused: number;
}

export interface TransportServerEvents extends ConnectionHooks {
  /** A connection was refused before it could speak the protocol (TLS failure, bad certificate identity). */
  onRejected?(remoteAddress: string, error: RdbnetError): void;
}

/** The node's access control at the two points before a request: accept and handshake. */
export interface ConnectionGate {
  /** A TCP connection from `remoteIp` was accepted: a RdbnetError closes it at once, unanswered. */
  accept(remoteIp: string): RdbnetError | undefined;
  /** The peer's Hello checked out: throw a RdbnetError to refuse it (it gets the error frame). */
  handshake(remoteAddress: string, peer: PeerInfo): void;
  /** A connection `accept` admitted has closed. */
  closed?(remoteIp: string): void;
  /** A connection (`host:port`) failed its handshake (TLS, certificate, Hello, deadline). */
  failed?(remoteAddress: string, error: RdbnetError): void;
}

export interface TransportServerInit {
  local: LocalEndpoint;
  /** null: plaintext (--insecure). */
  tls: TlsMaterial | null;
  options: ConnectionOptions;
  handler: RequestHandler;
  events?: TransportServerEvents;
  /** Authenticated connections (Hello accepted) held at once; one more peer is refused in the
   * handshake with RDB_CONNECTION_LIMIT, unless `exempt` says it is a member of the cluster. */
  connectionsMax: number;
  /** Unauthenticated connections (TLS or Hello not done) held at once; a new one past it closes
   * the oldest of them. Default UNAUTHENTICATED_CONNECTIONS_MAX_DEFAULT. */
  unauthenticatedConnectionsMax?: number;
  /** Unauthenticated connections held at once from one address (IPv6: one /64); a new one past
   * it closes that source's oldest. Default UNAUTHENTICATED_CONNECTIONS_PER_SOURCE_MAX_DEFAULT. */
  unauthenticatedConnectionsPerSourceMax?: number;
  /** Authenticated connections that received no frame (and have no request outstanding) for
   * this long are closed with RDB_IDLE_TIMEOUT, except exempt peers'. Default: never. */
  idleTimeoutMs?: number;
  /** Budget shared by the buffered frames of every accepted connection. Default: none. */
  budget?: MemoryBudget;
  /** Peers exempt from idleTimeoutMs and connectionsMax: members of the cluster configuration. */
  exempt?(peer: PeerInfo): boolean;
  /** Last word on a verified peer certificate (revocation); throw a RdbnetError to refuse it. */
  admit?(certificate: X509Certificate, identity: Identity): void;
  /** Access control at accept and handshake (the node's ACL). Default: none. */
  gate?: ConnectionGate;
  clock?: Clock;
}

export class TransportServer {
  readonly connections = new Set<Connection>();
  /** Every accepted socket, including those still in the TLS handshake, so a stop can end them. */
  private readonly sockets = new Set<Socket>();
  private readonly remotes = new WeakMap<object, string>();
  private readonly init: TransportServerInit;
  private readonly server: Server;
  private readonly clock: Clock;
  /** Accepted TCP sockets whose peer is not authenticated yet. */
  private readonly unauthenticated: UnauthenticatedTable<Socket>;
  /** Connections (TLS done, or plaintext) still waiting for their Hello, by TCP socket. */
  private readonly handshaking = new Map<Socket, Connection>();
  /** Connections whose peer passed the handshake; counted against connectionsMax. */
  private readonly authenticated = new Set<Connection>();
  /** TCP sockets this server destroyed itself: the TLS errors that follow are not news. */
  private readonly dropped = new WeakSet<Socket>();
  private readonly counts = {
    preauthEvicted: 0,
    preauthTimedOut: 0,
    connectionLimitRefused: 0,
    idleClosed: 0,
    gateRefused: 0,
  };
  private sweepTimer: NodeJS.Timeout | null = null;
  private tlsMaterial: TlsMaterial | null;

  constructor(init: TransportServerInit) {
    this.init = init;
    this.clock = init.clock ?? systemClock;
    this.unauthenticated = new UnauthenticatedTable({
      totalMax: init.unauthenticatedConnectionsMax ?? UNAUTHENTICATED_CONNECTIONS_MAX_DEFAULT,
      perSourceMax:
        init.unauthenticatedConnectionsPerSourceMax ??
        UNAUTHENTICATED_CONNECTIONS_PER_SOURCE_MAX_DEFAULT,
    });
    if (init.idleTimeoutMs !== undefined && !(init.idleTimeoutMs > 0)) {
      throw new ConfigFieldError('idleTimeoutMs', `must be positive, got ${init.idleTimeoutMs}`);
    }
    this.tlsMaterial = init.tls;
    if (init.tls === null) {
      this.server = createTcpServer();
    } else {
      const server = createTlsServer(
        {
          ...serverTlsOptions(init.tls),
          // Only a backstop: the sweep destroys a socket that has not finished TLS and its
          // Hello at handshakeTimeoutMs after the accept, before this fires.
          handshakeTimeout: 2 * init.options.handshakeTimeoutMs,
        },
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
        // With a listener here, node:tls leaves the socket open (a handshake timeout, say).
        socket.destroy();
        if (this.dropped.has(tcpSocketOf(socket))) return;
        // An untrusted client certificate surfaces as a bare reset; the real reason is here.
        const reason = socket.authorizationError;
        const typed = reason
          ? new RdbnetError(ErrorCode.TlsFailed, `client certificate rejected: ${String(reason)}`, {
              cause: error,
            })
          : socketError(error);
        init.gate?.failed?.(this.remoteOf(socket), typed);
        init.events?.onRejected?.(this.remoteOf(socket), typed);
      });
      this.server = server;
    }
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      // Remembered now: once TLS has torn a socket down its address is gone.
      this.remotes.set(socket, `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`);
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.unauthenticated.remove(socket);
        this.handshaking.delete(socket);
      });
      // Before TLS: a source the ACL refuses costs no handshake and no pre-auth slot.
      const refusal = init.gate?.accept(socket.remoteAddress ?? '');
      if (refusal !== undefined) {
        this.counts.gateRefused++;
        this.dropped.add(socket);
        init.events?.onRejected?.(this.remoteOf(socket), refusal);
        socket.destroy();
        return;
      }
      if (init.gate?.closed !== undefined) {
        const closed = init.gate.closed.bind(init.gate);
        const ip = socket.remoteAddress ?? '';
        socket.once('close', () => closed(ip));
      }
      const victim = this.unauthenticated.admit(
        socket,
        sourceKey(socket.remoteAddress),
        this.clock.nowMs(),
      );
      if (victim !== undefined) {
        this.counts.preauthEvicted++;
        this.drop(
          victim,
          new RdbnetError(
            ErrorCode.PreauthLimit,
            'unauthenticated connection closed to make room: its address or the node holds the most allowed',
          ),
        );
      }
      if (init.tls === null) this.adopt(socket, null);
    });
  }

  stats(): TransportServerStats {
    return {
      unauthenticated: this.unauthenticated.size,
      authenticated: this.authenticated.size,
      ...this.counts,
    };
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
    this.startSweeping();
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
    this.stopSweeping();
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
    const tcpSocket = tcpSocketOf(socket);
    const connection = new Connection({
      socket,
      side: 'acceptor',
      local: this.init.local,
      options: this.init.options,
      certified: identity,
      handler: this.init.handler,
      clock: this.clock,
      ...(this.init.budget === undefined ? {} : { budget: this.init.budget }),
      hooks: {
        admitPeer: (c, peer) => {
          this.init.gate?.handshake(c.remoteAddress, peer);
          this.admitPeer(peer);
        },
        onOpen: (c) => {
          this.unauthenticated.remove(tcpSocket);
          this.handshaking.delete(tcpSocket);
          this.authenticated.add(c);
          events?.onOpen?.(c);
        },
        onProtocolError: (c, error) => events?.onProtocolError?.(c, error),
        onClose: (c, error) => {
          this.connections.delete(c);
          this.authenticated.delete(c);
          this.handshaking.delete(tcpSocket);
          events?.onClose?.(c, error);
        },
      },
    });
    this.connections.add(connection);
    // Its deadline (handshakeTimeoutMs from the accept) is the sweep's to enforce. A socket
    // no longer in the table was dropped (destroyed) already and closes on its own.
    if (this.unauthenticated.has(tcpSocket)) this.handshaking.set(tcpSocket, connection);
  }

  private admitPeer(peer: PeerInfo): void {
    if (this.authenticated.size < this.init.connectionsMax) return;
    if (this.init.exempt?.(peer) === true) return;
    this.counts.connectionLimitRefused++;
    throw new RdbnetError(
      ErrorCode.ConnectionLimit,
      `node holds ${this.authenticated.size} authenticated connections (connectionsMax ${this.init.connectionsMax})`,
      { hint: 'close idle connections to the node, or raise connectionsMax' },
    );
  }

  /**
   * Closes an unauthenticated connection at once, saying nothing: it is a stranger as far as
   * we know. With a Connection (TLS done) its onClose reports `error`; before that, onRejected.
   */
  private drop(tcpSocket: Socket, error: RdbnetError): void {
    this.unauthenticated.remove(tcpSocket);
    this.dropped.add(tcpSocket);
    const connection = this.handshaking.get(tcpSocket);
    this.handshaking.delete(tcpSocket);
    if (connection !== undefined) connection.destroy(error);
    else this.init.events?.onRejected?.(this.remoteOf(tcpSocket), error);
    tcpSocket.destroy();
  }

  private startSweeping(): void {
    if (this.sweepTimer !== null) return;
    const shortestMs = Math.min(
      this.init.options.handshakeTimeoutMs,
      this.init.idleTimeoutMs ?? Number.POSITIVE_INFINITY,
    );
    const everyMs = Math.max(1, Math.min(SWEEP_INTERVAL_MAX_MS, shortestMs / SWEEPS_PER_DEADLINE));
    this.sweepTimer = setInterval(() => this.sweep(), everyMs);
    this.sweepTimer.unref();
  }

  private stopSweeping(): void {
    if (this.sweepTimer === null) return;
    clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  /** Destroys sockets past their handshake deadline and closes idle authenticated connections. */
  private sweep(): void {
    const nowMs = this.clock.nowMs();
    const handshakeTimeoutMs = this.init.options.handshakeTimeoutMs;
    for (const tcpSocket of this.unauthenticated.admittedBy(nowMs - handshakeTimeoutMs)) {
      this.counts.preauthTimedOut++;
      this.init.gate?.failed?.(
        this.remoteOf(tcpSocket),
        new RdbnetError(ErrorCode.HandshakeTimeout, 'handshake not finished in time'),
      );
      const tlsDone = this.handshaking.has(tcpSocket) || this.tlsMaterial === null;
      this.drop(
        tcpSocket,
        new RdbnetError(
          ErrorCode.HandshakeTimeout,
          tlsDone
            ? `no Hello within the handshake timeout (${handshakeTimeoutMs} ms)`
            : `TLS handshake not finished within the handshake timeout (${handshakeTimeoutMs} ms)`,
        ),
      );
    }
    for (const connection of this.authenticated) {
      if (connection.state === 'open' && connection.idleMs(nowMs) >= BUFFER_RELEASE_IDLE_MS) {
        connection.releaseIdleBuffers();
      }
    }
    const idleTimeoutMs = this.init.idleTimeoutMs;
    if (idleTimeoutMs === undefined) return;
    for (const connection of this.authenticated) {
      if (connection.state !== 'open' || connection.idleMs(nowMs) < idleTimeoutMs) continue;
      if (connection.peer !== null && this.init.exempt?.(connection.peer) === true) continue;
      this.counts.idleClosed++;
      connection.closeWithError(
        new RdbnetError(
          ErrorCode.IdleTimeout,
          `no frame from ${connection.peer?.id ?? connection.remoteAddress} for ${idleTimeoutMs} ms`,
        ),
      );
    }
  }

  private remoteOf(socket: Socket): string {
    const parent = parentOf(socket);
    return (
      this.remotes.get(socket) ??
      (parent === undefined ? undefined : this.remotes.get(parent)) ??
      `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    );
  }

  private reject(socket: Socket, error: RdbnetError): void {
    this.init.gate?.failed?.(this.remoteOf(socket), error);
    // Refused already, with REJECT_LINGER_MS to read why: no second verdict at its deadline.
    this.unauthenticated.remove(tcpSocketOf(socket));
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

/** node:tls keeps the accepted TCP socket a server-side TLS socket wraps as `_parent`. */
function parentOf(socket: Socket): Socket | undefined {
  return (socket as { _parent?: Socket })._parent ?? undefined;
}

/** The accepted TCP socket under `socket` (itself on plaintext connections). */
function tcpSocketOf(socket: Socket): Socket {
  return parentOf(socket) ?? socket;
}
