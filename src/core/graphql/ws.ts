/**
 * GraphQL subscriptions (and queries) over WebSocket with the graphql-ws protocol
 * (`graphql-transport-ws`), on a node:http or node:https server the caller owns: the HTTPS
 * face mounts it at /api/v1/network/graphql/ws. The caller authenticates the upgrade request
 * (its client certificate or bearer token); a request it does not accept is answered 401 and
 * closed before any WebSocket exists. Operations are bounded as over HTTP (limits.ts), and by
 * the connections and subscriptions below.
 */
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { type ExecutionArgs, GraphQLError } from 'graphql';
import { makeServer } from 'graphql-ws';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Principal } from '../api/authorization.ts';
import { ErrorCode } from '../errors.ts';
import type { GraphqlSource } from './admin-requests.ts';
import { contextOf, formatResult, prepare } from './execute.ts';
import { GRAPHQL_LIMITS_DEFAULT, type GraphqlLimits } from './limits.ts';
import { rootValue, schema } from './schema.ts';

export const GRAPHQL_WS_PATH = '/api/v1/network/graphql/ws';
/** WebSocket connections open at once; one more is answered 503. */
export const WS_CONNECTIONS_MAX = 2048;
/** Subscriptions (and operations) running at once on one connection. */
export const WS_OPERATIONS_PER_CONNECTION_MAX = 64;
/** Largest message a client may send. */
export const WS_MESSAGE_BYTES_MAX = 65_536;
/** Time a client has to send connection_init after the upgrade. */
export const WS_CONNECTION_INIT_WAIT_MS = 5_000;

export interface GraphqlWsOptions {
  source: GraphqlSource;
  /** The caller of an upgrade request, or null to refuse it with 401. */
  authenticate(request: IncomingMessage): Principal | null | Promise<Principal | null>;
  limits?: GraphqlLimits;
}

export interface GraphqlWsHandle {
  /** Connections open now. */
  connections(): number;
  /** Stops taking upgrades and closes every connection. */
  close(): Promise<void>;
}

function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = `${JSON.stringify({ error: { code, message } })}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Service Unavailable'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** Serves graphql-ws at `path` of `server`; other upgrade paths are left to other listeners. */
export function attachGraphqlWs(
  server: HttpServer | HttpsServer,
  path: string,
  options: GraphqlWsOptions,
): GraphqlWsHandle {
  const limits = options.limits ?? GRAPHQL_LIMITS_DEFAULT;
  const sockets = new WebSocketServer({ noServer: true, maxPayload: WS_MESSAGE_BYTES_MAX });
  const graphqlWs = makeServer<undefined, { principal: Principal; operations: number }>({
    schema,
    connectionInitWaitTimeout: WS_CONNECTION_INIT_WAIT_MS,
    onSubscribe: (ctx, _id, payload) => {
      if (ctx.extra.operations >= WS_OPERATIONS_PER_CONNECTION_MAX) {
        return [
          new GraphQLError(
            `${WS_OPERATIONS_PER_CONNECTION_MAX} operations already run on this connection`,
            { extensions: { code: ErrorCode.QueueFull } },
          ),
        ];
      }
      const prepared = prepare(payload.query, payload.operationName, limits);
      if ('errors' in prepared) return prepared.errors;
      ctx.extra.operations++;
      const args: ExecutionArgs = {
        schema,
        document: prepared.document,
        rootValue,
        contextValue: contextOf(options.source, ctx.extra.principal),
        variableValues: payload.variables ?? null,
        operationName: payload.operationName ?? null,
      };
      return args;
    },
    onNext: (_ctx, _id, _payload, _args, result) => formatResult(result),
    onComplete: (ctx) => {
      ctx.extra.operations = Math.max(0, ctx.extra.operations - 1);
    },
  });

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (pathOf(request) !== path) return;
    if (sockets.clients.size >= WS_CONNECTIONS_MAX) {
      refuse(
        socket,
        503,
        ErrorCode.QueueFull,
        `${WS_CONNECTIONS_MAX} WebSocket connections are open`,
      );
      return;
    }
    Promise.resolve()
      .then(() => options.authenticate(request))
      .then(
        (principal) => {
          if (principal === null) {
            refuse(socket, 401, ErrorCode.Forbidden, 'authentication required');
            return;
          }
          sockets.handleUpgrade(request, socket, head, (ws) => serve(ws, principal));
        },
        () => refuse(socket, 401, ErrorCode.Forbidden, 'authentication failed'),
      );
  };

  const serve = (ws: WebSocket, principal: Principal) => {
    const extra = { principal, operations: 0 };
    const closed = graphqlWs.opened(
      {
        protocol: ws.protocol,
        send: (data) =>
          new Promise<void>((resolve, reject) => {
            ws.send(data, (error) => (error ? reject(error) : resolve()));
          }),
        close: (code, reason) => ws.close(code, reason),
        onMessage: (callback) => {
          ws.on('message', (data) => {
            callback(String(data)).catch(() => ws.close(1011, 'internal error'));
          });
        },
      },
      extra,
    );
    ws.once('close', (code, reason) => {
      void closed(code, String(reason));
    });
  };

  server.on('upgrade', onUpgrade);
  return {
    connections: () => sockets.clients.size,
    close: () =>
      new Promise<void>((resolve) => {
        server.off('upgrade', onUpgrade);
        for (const client of sockets.clients) client.terminate();
        sockets.close(() => resolve());
      }),
  };
}
