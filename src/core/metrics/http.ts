/**
 * Serving a registry over HTTP: `metricsRequestListener(registry)` answers GET (and HEAD)
 * /metrics and nothing else, so it can be mounted on any node:http server (the HTTPS face
 * mounts it at /metrics); `listenMetrics()` is the separate plain-HTTP, read-only listener of
 * `node start --metrics ADDR`, after etcd's --listen-metrics-urls: it serves only the metrics,
 * so it can be opened to a Prometheus server without opening anything that changes the node.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { formatHostPort, type HostPort } from '../transport/address.ts';
import { EXPOSITION_CONTENT_TYPE, exposition } from './exposition.ts';
import type { MetricsRegistry } from './registry.ts';

export const METRICS_PATH = '/metrics';

/** Bounds of the metrics listener: a scraper needs one or two connections, not hundreds. */
export const METRICS_CONNECTIONS_MAX = 32;
/** A request's headers must arrive within this; a whole request within METRICS_REQUEST_TIMEOUT_MS. */
export const METRICS_HEADERS_TIMEOUT_MS = 5_000;
export const METRICS_REQUEST_TIMEOUT_MS = 10_000;
/** An idle keep-alive connection is closed after this. */
export const METRICS_KEEP_ALIVE_TIMEOUT_MS = 30_000;

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function sendError(
  response: Parameters<RequestListener>[1],
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  const body = `${JSON.stringify({ error: { code, message } })}\n`;
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  response.end(body);
}

/** A node:http listener serving `registry` at GET /metrics; 404 and 405 (JSON) otherwise. */
export function metricsRequestListener(registry: MetricsRegistry): RequestListener {
  return (request, response) => {
    if (pathOf(request) !== METRICS_PATH) {
      sendError(
        response,
        404,
        ErrorCode.MethodUnknown,
        `no such path; metrics are at ${METRICS_PATH}`,
      );
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      sendError(
        response,
        405,
        ErrorCode.Usage,
        `${request.method} is not allowed on ${METRICS_PATH}: it is read-only`,
        { allow: 'GET, HEAD' },
      );
      return;
    }
    // Nothing is read from a request body: it is discarded.
    request.resume();
    const body = exposition(registry);
    response.writeHead(200, {
      'content-type': EXPOSITION_CONTENT_TYPE,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    response.end(request.method === 'HEAD' ? undefined : body);
  };
}

export interface MetricsListener {
  /** host:port actually bound. */
  readonly address: string;
  close(): Promise<void>;
}

/** The plain-HTTP metrics listener on `address`; a port it cannot take is RDB_CONFIG_INVALID
 * naming the address, as for --listen. */
export async function listenMetrics(
  address: HostPort,
  registry: MetricsRegistry,
): Promise<MetricsListener> {
  const server: Server = createServer(
    {
      headersTimeout: METRICS_HEADERS_TIMEOUT_MS,
      requestTimeout: METRICS_REQUEST_TIMEOUT_MS,
      keepAliveTimeout: METRICS_KEEP_ALIVE_TIMEOUT_MS,
    },
    metricsRequestListener(registry),
  );
  server.maxConnections = METRICS_CONNECTIONS_MAX;
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const hint =
        error.code === 'EADDRINUSE'
          ? 'another process listens there; pick another --metrics port'
          : undefined;
      reject(
        new RdbnetError(
          ErrorCode.ConfigInvalid,
          `cannot listen for metrics on ${formatHostPort(address)}: ${error.message}`,
          { ...(hint === undefined ? {} : { hint }), cause: error },
        ),
      );
    };
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = server.address();
  const boundAddress =
    bound !== null && typeof bound === 'object'
      ? formatHostPort({ host: bound.address, port: bound.port })
      : formatHostPort(address);
  return {
    address: boundAddress,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
