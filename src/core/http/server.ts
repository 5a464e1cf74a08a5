/**
 * The node's HTTP face (`node start --http ADDR`): the REST routes of routes.ts, the OpenAPI
 * document generated from their schemas, and the probes. Built on fastify because it validates
 * requests with JSON Schema (ajv) and @fastify/swagger turns the very same schemas into the
 * OpenAPI document, so the two cannot disagree.
 *
 * Every request is authenticated here (auth.ts: a client certificate of the cluster's CA, not
 * revoked, or a bearer token) and then answered by the node's adminHandler with that principal:
 * authorization and the operation itself are the binary protocol's, not reimplemented.
 *
 * Bounds: bodies over bodyBytesMax are 413; headers must arrive within headersTimeoutMs and the
 * whole request within requestTimeoutMs; at most connectionsMax sockets; each client address
 * gets a token bucket of ratePerSecond (burst rateBurst) in a table of RATE_CLIENTS_MAX, so a
 * flood is refused with 429 at the cost of a map lookup and never reaches the admin handler.
 */
import type { X509Certificate } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import { TokenBucket } from '../lb/rate-limit.ts';
import type { Envelope, EnvelopeKind } from '../protocol/messages.ts';
import type { PeerIdentity, PeerRequestHandler } from '../rpc/peer.ts';
import type { Clock, Logger } from '../runtime/index.ts';
import { certificateIdentity, TLS_VERSION, type TlsMaterial } from '../security/tls.ts';
import { formatHostPort, type HostPort } from '../transport/address.ts';
import { SOFTWARE_VERSION } from '../version.ts';
import { ABSENT_ROUTES, API_PREFIX, type AskAdmin, ROUTES } from './routes.ts';
import type { TokenVerifier } from './tokens.ts';

export interface HttpLimits {
  /** Largest request body accepted (bytes); larger is 413. Default 1 MiB. */
  bodyBytesMax: number;
  /** Time for a client to send its request headers (ms). Default 10000. */
  headersTimeoutMs: number;
  /** Time for a client to send its whole request (ms). Default 30000. */
  requestTimeoutMs: number;
  /** Sockets held at once; more are closed at accept. Default 1024. */
  connectionsMax: number;
  /** Requests per second one client address may make (token bucket). Default 500. */
  ratePerSecond: number;
  /** Burst of that bucket. Default 1000. */
  rateBurst: number;
}

export const HTTP_LIMITS_DEFAULT: Readonly<HttpLimits> = Object.freeze({
  bodyBytesMax: 1024 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  connectionsMax: 1024,
  ratePerSecond: 500,
  rateBurst: 1000,
});

/** A refused request is answered after the client's next token is due, within these (ms). */
const RATE_WAIT_MIN_MS = 50;
const RATE_WAIT_MAX_MS = 1000;
/** Client addresses whose buckets are kept; the oldest is dropped past it. */
export const RATE_CLIENTS_MAX = 4096;
/** An idle keep-alive socket is closed after this long (ms). */
const KEEP_ALIVE_TIMEOUT_MS = 5000;
/** How often Node looks for requests past their header or request deadline (ms). */
const TIMEOUT_CHECK_MS = 1000;

/**
 * Where the lead wires what other branches build: `/metrics` (Prometheus exposition, from
 * src/core/metrics) and `/api/v1/network/graphql` (GraphQL). Each gets the authenticated
 * request's principal; until wired, both answer 501 naming what is missing.
 */
/** What authentication reads of a request: its socket (TLS certificate) and headers (bearer
 * token) — a fastify request, or the node:http request of a WebSocket upgrade. */
export interface AuthenticatedRequest {
  socket: Socket;
  headers: IncomingHttpHeaders;
}

export interface HttpMounts {
  metrics?(): string | Promise<string>;
  graphql?(
    app: FastifyInstance,
    authenticate: (request: AuthenticatedRequest) => Promise<PeerIdentity>,
  ): Promise<void>;
}

export interface HttpServerInit {
  listen: HostPort;
  /** The cluster's CA and this node's certificate; null: plain HTTP (an --insecure node). */
  tls: TlsMaterial | null;
  clusterId: string;
  /** Throws RDB_CERT_REVOKED for a revoked certificate (NodeCertificates.admit). */
  admit?(certificate: X509Certificate): void;
  /** The node's adminHandler: every operation goes through it. */
  admin: PeerRequestHandler;
  tokens: TokenVerifier;
  /** /livez and /readyz answer without credentials. */
  probesOpen: boolean;
  /** Whether this node is ready to serve (for /readyz). */
  ready(): boolean;
  limits: HttpLimits;
  clock: Clock;
  log: Logger;
  mounts?: HttpMounts;
}

/** The status of an RdbnetError answered over HTTP. */
export function httpStatusOf(code: string): number {
  switch (code) {
    case ErrorCode.Unauthenticated:
    case ErrorCode.CertificateRevoked:
    case ErrorCode.IdentityInvalid:
      return 401;
    case ErrorCode.Forbidden:
      return 403;
    case ErrorCode.RouteUnknown:
    case ErrorCode.TargetUnknown:
    case ErrorCode.TopicUnknown:
      return 404;
    case ErrorCode.BodyTooLarge:
      return 413;
    case ErrorCode.RateLimited:
      return 429;
    case ErrorCode.Usage:
    case ErrorCode.TopicInvalid:
    case ErrorCode.MessageTooLarge:
    case ErrorCode.ConfigInvalid:
      return 400;
    case ErrorCode.NotImplemented:
    case ErrorCode.MethodUnknown:
      return 501;
    case ErrorCode.NodeUnreachable:
    case ErrorCode.TargetDead:
    case ErrorCode.CircuitOpen:
      return 502;
    case ErrorCode.NotMember:
    case ErrorCode.NoLeader:
    case ErrorCode.NotLeader:
    case ErrorCode.QueueFull:
    case ErrorCode.InflightLimit:
      return 503;
    case ErrorCode.RequestTimeout:
    case ErrorCode.DeadlinePassed:
      return 504;
    case ErrorCode.Internal:
      return 500;
    default:
      // The operation was understood and refused (RDB_CLUSTER_EXISTS, RDB_QUORUM_AT_RISK, …).
      return 409;
  }
}

function tooLarge(limits: HttpLimits): string {
  return `request body over ${limits.bodyBytesMax} bytes`;
}

function errorBody(code: string, message: string, hint?: string) {
  return { error: { code, message, ...(hint === undefined ? {} : { hint }) } };
}

/** JSON of replies: byte fields as base64, 64-bit integers as numbers. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (typeof value === 'bigint') return Number(value);
  return value;
}

async function emptyBodyAsObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

/** The one body member of a reply Envelope. */
function replyBody(reply: Envelope): unknown {
  for (const key in reply) return (reply as Record<string, unknown>)[key];
  return undefined;
}

type Peer = NonNullable<PeerIdentity['peer']>;

/** Who a request speaks for: its client certificate, else its bearer token; else 401. */
class Authenticator {
  /** Per TLS socket: the certificate's peer, worked out once per connection. */
  private readonly certificatePeers = new WeakMap<
    object,
    { peer: Peer; serial: X509Certificate }
  >();
  /** Per token id: one peer object, so adminHandler's per-peer principal cache holds. */
  private readonly tokenPeers = new Map<string, Peer>();

  private readonly init: HttpServerInit;

  constructor(init: HttpServerInit) {
    this.init = init;
  }

  /** Per socket: who it is and where from, while it stays the same peer. */
  private readonly identities = new WeakMap<object, PeerIdentity>();

  async identify(request: AuthenticatedRequest): Promise<PeerIdentity> {
    const peer = await this.peerOf(request);
    const known = this.identities.get(request.socket);
    if (known?.peer === peer) return known;
    const identity: PeerIdentity = {
      peer,
      remoteAddress: formatHostPort({
        host: request.socket.remoteAddress ?? '',
        port: request.socket.remotePort ?? 0,
      }),
    };
    this.identities.set(request.socket, identity);
    return identity;
  }

  private async peerOf(request: AuthenticatedRequest): Promise<Peer> {
    const socket = request.socket as TLSSocket;
    if (this.init.tls !== null && socket.encrypted === true) {
      const known = this.certificatePeers.get(socket);
      if (known !== undefined) {
        // Revocations change while a connection stays open: checked on every request.
        this.init.admit?.(known.serial);
        return known.peer;
      }
      const certificate = socket.getPeerX509Certificate();
      if (certificate !== undefined) {
        if (!socket.authorized) {
          throw new RdbnetError(
            ErrorCode.Unauthenticated,
            `client certificate refused: ${String(socket.authorizationError)}`,
          );
        }
        this.init.admit?.(certificate);
        const identity = certificateIdentity(certificate);
        if (identity.cluster !== this.init.clusterId) {
          throw new RdbnetError(
            ErrorCode.Unauthenticated,
            `certificate of cluster ${identity.cluster}, not ${this.init.clusterId}`,
          );
        }
        const peer: Peer = {
          id: identity.id,
          role: identity.role,
          authenticated: true,
          ...(identity.clientRole === undefined ? {} : { clientRole: identity.clientRole }),
        };
        this.certificatePeers.set(socket, { peer, serial: certificate });
        return peer;
      }
    }
    const header = request.headers.authorization;
    if (header === undefined) {
      throw new RdbnetError(
        ErrorCode.Unauthenticated,
        'no client certificate and no bearer token',
        {
          hint: 'curl --cert client.crt --key client.key --cacert ca.crt, or -H "Authorization: Bearer <token from rdbnet tokens create>"',
        },
      );
    }
    const match = /^Bearer (\S+)$/i.exec(header);
    const token = match === null ? null : await this.init.tokens.verify(match[1]!);
    if (token === null) {
      throw new RdbnetError(ErrorCode.Unauthenticated, 'bearer token unknown, revoked or expired');
    }
    let peer = this.tokenPeers.get(token.id);
    if (peer === undefined || peer.clientRole !== token.role) {
      peer = {
        id: `token.${token.name}.${token.id}`,
        role: 'client',
        authenticated: true,
        clientRole: token.role,
      };
      if (this.tokenPeers.size >= RATE_CLIENTS_MAX) this.tokenPeers.clear();
      this.tokenPeers.set(token.id, peer);
    }
    return peer;
  }
}

/** One token bucket per client address, in a table bounded by RATE_CLIENTS_MAX. */
class ClientRates {
  private readonly buckets = new Map<string, TokenBucket>();
  refused = 0;
  private readonly clock: Clock;
  private readonly limits: HttpLimits;

  constructor(clock: Clock, limits: HttpLimits) {
    this.clock = clock;
    this.limits = limits;
  }

  admit(client: string): boolean {
    let bucket = this.buckets.get(client);
    if (bucket === undefined) {
      if (this.buckets.size >= RATE_CLIENTS_MAX) {
        const oldest = this.buckets.keys().next().value as string;
        this.buckets.delete(oldest);
      }
      bucket = new TokenBucket(this.clock, this.limits.ratePerSecond, this.limits.rateBurst);
      this.buckets.set(client, bucket);
    }
    if (bucket.tryTake()) return true;
    this.refused++;
    return false;
  }

  /** How long until `client` has a token again, within [RATE_WAIT_MIN_MS, RATE_WAIT_MAX_MS]. */
  waitMs(client: string): number {
    const available = this.buckets.get(client)?.available ?? 0;
    const untilToken = ((1 - available) * 1000) / this.limits.ratePerSecond;
    return Math.min(RATE_WAIT_MAX_MS, Math.max(RATE_WAIT_MIN_MS, untilToken));
  }
}

export interface NodeHttpServer {
  /** host:port actually bound. */
  readonly boundAddress: string;
  readonly app: FastifyInstance;
  /** New certificate or trust material for connections from now on. */
  updateTls(material: TlsMaterial): void;
  counters(): Record<string, number>;
  close(): Promise<void>;
}

export async function startHttpServer(init: HttpServerInit): Promise<NodeHttpServer> {
  const { limits, log } = init;
  const tlsOptions =
    init.tls === null
      ? null
      : {
          ca: init.tls.ca,
          cert: init.tls.cert,
          key: init.tls.key,
          minVersion: TLS_VERSION,
          maxVersion: TLS_VERSION,
          // Asked for, verified against the cluster's CA, but optional: a bearer token
          // authenticates a client without one.
          requestCert: true,
          rejectUnauthorized: false,
        };
  // Node checks headersTimeout and requestTimeout on this interval (30 s by default), so a
  // slow client is cut within about a second of its deadline.
  const timeouts = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: TIMEOUT_CHECK_MS,
  };
  const fastifyOptions = {
    logger: false,
    // A socket that sends nothing for this long is closed (a stalled client).
    connectionTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    requestTimeout: limits.requestTimeoutMs,
    bodyLimit: limits.bodyBytesMax,
    // Strict: a wrong type or an unknown field is a 400 naming it, never coerced or dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  };
  const app = (tlsOptions === null
    ? Fastify({ ...fastifyOptions, http: timeouts })
    : Fastify({
        ...fastifyOptions,
        https: { ...tlsOptions, ...timeouts },
      })) as unknown as FastifyInstance;
  app.server.maxConnections = limits.connectionsMax;
  // A client that asks before sending its body (`Expect: 100-continue`, as curl does for
  // larger bodies) hears 413 at once rather than having its upload cut off.
  app.server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    const length = Number(request.headers['content-length'] ?? 0);
    if (length > limits.bodyBytesMax) {
      response.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
      response.end(JSON.stringify(errorBody(ErrorCode.BodyTooLarge, tooLarge(limits))));
      return;
    }
    response.writeContinue();
    app.server.emit('request', request, response);
  });
  const authenticator = new Authenticator(init);
  const rates = new ClientRates(init.clock, limits);
  const counts = { requests: 0, unauthenticated: 0, rateLimited: 0, errors: 0 };

  // A callback hook, not an async one: no promise per request on the path every request takes.
  app.addHook('onRequest', (request, reply, done) => {
    counts.requests++;
    if (rates.admit(request.ip)) {
      done();
      return;
    }
    counts.rateLimited++;
    // Tarpit: the refusal waits until the client's bucket has a token again, so a client
    // that does not back off gets one answer per connection per wait instead of as many as
    // the node can parse — what it costs the node stays bounded whatever it sends.
    setTimeout(() => {
      reply
        .code(429)
        .header('retry-after', '1')
        .send(
          errorBody(
            ErrorCode.RateLimited,
            `more than ${limits.ratePerSecond} requests per second from ${request.ip}`,
          ),
        );
    }, rates.waitMs(request.ip));
  });

  app.setReplySerializer((payload) => JSON.stringify(payload, jsonReplacer));

  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .send(
        errorBody(
          ErrorCode.RouteUnknown,
          `no route ${request.method} ${request.url.split('?')[0]}`,
        ),
      );
  });

  app.setErrorHandler(
    (
      error: Error & { code?: string; statusCode?: number; validation?: unknown },
      _request,
      reply,
    ) => {
      if (isRdbnetError(error)) {
        const status = httpStatusOf(error.code);
        if (status === 401) counts.unauthenticated++;
        return reply.code(status).send(errorBody(error.code, error.message, error.hint));
      }
      if (error.validation !== undefined) {
        return reply.code(400).send(errorBody(ErrorCode.Usage, error.message));
      }
      if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        return reply.code(413).send(errorBody(ErrorCode.BodyTooLarge, tooLarge(limits)));
      }
      if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
        return reply
          .code(415)
          .send(errorBody(ErrorCode.Usage, 'send the body as application/json'));
      }
      if (
        error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
        error.name === 'SyntaxError' ||
        error.code === 'FST_ERR_CTP_INVALID_JSON_BODY'
      ) {
        return reply
          .code(400)
          .send(errorBody(ErrorCode.Usage, `malformed JSON body: ${error.message}`));
      }
      if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
        return reply.code(error.statusCode).send(errorBody(ErrorCode.Usage, error.message));
      }
      counts.errors++;
      log.warn('http request failed', { reason: error.message });
      return reply.code(500).send(errorBody(ErrorCode.Internal, error.message));
    },
  );

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'rdbnet node HTTP API',
        version: SOFTWARE_VERSION,
        description:
          'REST face of one rdbnet node. Authenticate with a client certificate of the ' +
          "cluster's CA (role from its URI SAN) or a bearer token from `rdbnet tokens create`.",
      },
      components: {
        securitySchemes: {
          bearerToken: { type: 'http', scheme: 'bearer' },
          // OpenAPI 3.1's mutualTLS, which the plugin's (3.0) types do not know.
          clientCertificate: { type: 'mutualTLS' } as unknown as { type: 'http'; scheme: string },
        },
      },
      security: [{ bearerToken: [] }, { clientCertificate: [] }],
    },
  });

  const ask = (identity: PeerIdentity): AskAdmin =>
    (async (kind: EnvelopeKind, body: unknown) => {
      const reply = await init.admin({ kind, body }, identity);
      return replyBody(reply);
    }) as AskAdmin;

  for (const route of ROUTES) {
    app.route({
      method: route.method,
      url: `${API_PREFIX}${route.path}`,
      bodyLimit: limits.bodyBytesMax,
      // A POST without a body is an empty object (all of its fields optional or refused).
      ...(route.method === 'POST' ? { preValidation: emptyBodyAsObject } : {}),
      schema: {
        summary: route.summary,
        description: `Operation: ${route.operation}.`,
        tags: [route.tag],
        ...route.schema,
        ...(route.response === undefined ? {} : { response: { 200: route.response } }),
      },
      handler: async (request) => {
        const identity = await authenticator.identify(request);
        return route.handle(ask(identity), {
          params: (request.params ?? {}) as Record<string, string>,
          query: (request.query ?? {}) as Record<string, unknown>,
          body: (request.body ?? {}) as Record<string, unknown>,
        });
      },
    });
  }

  for (const absent of ABSENT_ROUTES) {
    app.route({
      method: absent.method,
      url: `${API_PREFIX}${absent.path}`,
      bodyLimit: limits.bodyBytesMax,
      schema: { summary: `Absent: ${absent.capability} (501)`, tags: ['absent'] },
      handler: async (request) => {
        await authenticator.identify(request);
        throw new RdbnetError(
          ErrorCode.NotImplemented,
          `${absent.method} ${API_PREFIX}${absent.path} is absent from rdbnet: ${absent.capability}`,
        );
      },
    });
  }

  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async (request) => {
    await authenticator.identify(request);
    return app.swagger();
  });

  const probe = async (request: FastifyRequest, reply: FastifyReply, ready: boolean) => {
    if (!init.probesOpen) await authenticator.identify(request);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'not ready' });
  };
  app.get('/livez', { schema: { hide: true } }, (request, reply) => probe(request, reply, true));
  app.get('/readyz', { schema: { hide: true } }, (request, reply) =>
    probe(request, reply, init.ready()),
  );

  // Mount points for the metrics and GraphQL branches.
  const metrics = init.mounts?.metrics;
  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    await authenticator.identify(request);
    if (metrics === undefined) {
      throw new RdbnetError(
        ErrorCode.NotImplemented,
        'GET /metrics: the metrics registry is not wired in',
      );
    }
    return reply.type('text/plain; version=0.0.4').send(await metrics());
  });
  if (init.mounts?.graphql === undefined) {
    app.all(`${API_PREFIX}/graphql`, { schema: { hide: true } }, async (request) => {
      await authenticator.identify(request);
      throw new RdbnetError(
        ErrorCode.NotImplemented,
        `${API_PREFIX}/graphql: GraphQL is not wired in`,
      );
    });
  } else {
    await init.mounts.graphql(app, (request) => authenticator.identify(request));
  }

  await app.listen({ host: init.listen.host, port: init.listen.port });
  const address = app.server.address();
  const boundAddress =
    address !== null && typeof address === 'object'
      ? formatHostPort({ host: init.listen.host, port: address.port })
      : formatHostPort(init.listen);
  log.info('http listening', { listen: boundAddress, tls: init.tls !== null });
  return {
    boundAddress,
    app,
    updateTls(material) {
      if (tlsOptions === null) return;
      (app.server as unknown as { setSecureContext(options: object): void }).setSecureContext({
        ...tlsOptions,
        ca: material.ca,
        cert: material.cert,
        key: material.key,
      });
    },
    counters: () => ({
      'http.requests': counts.requests,
      'http.unauthenticated': counts.unauthenticated,
      'http.rate_limited': counts.rateLimited,
      'http.errors': counts.errors,
    }),
    close: () => app.close(),
  };
}
