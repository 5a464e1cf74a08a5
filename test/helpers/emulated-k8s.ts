/**
 * An EMULATED Kubernetes API server: no real one can run on this machine. It serves the one
 * resource the k8s provider reads, discovery.k8s.io/v1 EndpointSlices, as the API documents
 * it: HTTPS with a test CA, a bearer token or a client certificate signed by that CA (else
 * 401 with a `Status` body), `labelSelector` (=, ==, !=), `limit`/`continue` paging, a
 * `resourceVersion` on lists and objects, and `watch=1` streaming newline-delimited
 * ADDED/MODIFIED/DELETED events from a resourceVersion (410 Gone as an ERROR event when the
 * version is older than the kept history).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  createCertificateAuthority,
  issueClientCertificate,
  issueNodeCertificate,
  type KeyPairPem,
} from '../../src/core/security/pki.ts';

export interface EmulatedSlice {
  metadata: { name: string; labels: Record<string, string>; resourceVersion?: string };
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints: Array<{
    addresses: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    nodeName?: string;
    zone?: string;
    targetRef?: { kind: string; name: string; namespace: string };
  }>;
  ports: Array<{ name?: string; port: number; protocol?: string }>;
}

interface WatchEvent {
  rv: number;
  namespace: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: EmulatedSlice;
}

export interface EmulatedK8s {
  url: string;
  port: number;
  ca: KeyPairPem;
  token: string;
  /** A client certificate the server accepts instead of the token. */
  client: KeyPairPem;
  /** GET requests seen, path and query, for assertions. */
  requests: string[];
  /** Adds or replaces a slice (an ADDED or MODIFIED event). */
  put(namespace: string, slice: EmulatedSlice): void;
  remove(namespace: string, name: string): void;
  /** Forgets the event history: watches from older versions get 410 Gone. */
  compact(): void;
  /** Ends every open watch (as an API server restart does); clients re-watch. */
  dropWatches(): void;
  /** While true, watch requests get 403 Forbidden (an RBAC role without `watch`). */
  refuseWatches: boolean;
  close(): Promise<void>;
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason,
      code,
    }),
  );
}

/** labelSelector terms: `k=v`, `k==v`, `k!=v`; anything else is a 400 in the real API too. */
function selectorMatches(selector: string, labels: Record<string, string>): boolean | undefined {
  for (const term of selector.split(',')) {
    const m = /^\s*([A-Za-z0-9._/-]+)\s*(!=|==|=)\s*([A-Za-z0-9._-]*)\s*$/.exec(term);
    if (m === null) return undefined;
    const [, key, op, value] = m as unknown as [string, string, string, string];
    const equal = labels[key] === value;
    if (op === '!=' ? equal : !equal) return false;
  }
  return true;
}

export async function startEmulatedK8s(): Promise<EmulatedK8s> {
  const ca = createCertificateAuthority({ cluster: 'k8s-emulated' });
  const serverCert = issueNodeCertificate({
    ca,
    cluster: 'k8s-emulated',
    nodeId: 'apiserver',
    hosts: ['127.0.0.1', 'localhost'],
  });
  const client = issueClientCertificate({ ca, cluster: 'k8s-emulated', name: 'rdbnet' });
  const token = `emulated-token-${Math.random().toString(36).slice(2)}`;
  const slices = new Map<string, Map<string, EmulatedSlice>>();
  let events: WatchEvent[] = [];
  let compactedRv = 0;
  let rv = 100;
  const watchers = new Set<(event: WatchEvent) => void>();
  const openResponses = new Set<ServerResponse>();
  const requests: string[] = [];
  const flags = { refuseWatches: false };

  const record = (namespace: string, type: WatchEvent['type'], object: EmulatedSlice): void => {
    const event = { rv, namespace, type, object };
    events.push(event);
    for (const watcher of watchers) watcher(event);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    requests.push(`${url.pathname}${url.search}`);
    const socket = req.socket as TLSSocket;
    const byCert = socket.authorized === true;
    const byToken = req.headers.authorization === `Bearer ${token}`;
    if (!byCert && !byToken) {
      status(res, 401, 'Unauthorized', 'Unauthorized');
      return;
    }
    const m = /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/.exec(
      url.pathname,
    );
    if (req.method !== 'GET' || m === null) {
      status(res, 404, 'NotFound', 'the server could not find the requested resource');
      return;
    }
    const namespace = decodeURIComponent(m[1] as string);
    const selector = url.searchParams.get('labelSelector') ?? '';
    const matches = (slice: EmulatedSlice): boolean | undefined =>
      selector === '' ? true : selectorMatches(selector, slice.metadata.labels);
    if (selector !== '' && selectorMatches(selector, {}) === undefined) {
      status(res, 400, 'BadRequest', `unable to parse requirement: "${selector}"`);
      return;
    }

    if (url.searchParams.get('watch') === '1' || url.searchParams.get('watch') === 'true') {
      if (flags.refuseWatches) {
        status(
          res,
          403,
          'Forbidden',
          `endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:db:rdbnet" cannot watch resource "endpointslices" in API group "discovery.k8s.io" in the namespace "${namespace}"`,
        );
        return;
      }
      const from = Number(url.searchParams.get('resourceVersion') ?? rv);
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      openResponses.add(res);
      if (from < compactedRv) {
        res.end(
          `${JSON.stringify({
            type: 'ERROR',
            object: {
              kind: 'Status',
              apiVersion: 'v1',
              status: 'Failure',
              message: `too old resource version: ${from} (${compactedRv})`,
              reason: 'Expired',
              code: 410,
            },
          })}\n`,
        );
        openResponses.delete(res);
        return;
      }
      const send = (event: WatchEvent): void => {
        if (event.namespace !== namespace || event.rv <= from || matches(event.object) !== true) {
          return;
        }
        res.write(`${JSON.stringify({ type: event.type, object: event.object })}\n`);
      };
      for (const event of events) send(event);
      watchers.add(send);
      const seconds = Number(url.searchParams.get('timeoutSeconds') ?? 1800);
      const timer = setTimeout(() => res.end(), seconds * 1000);
      res.on('close', () => {
        clearTimeout(timer);
        watchers.delete(send);
        openResponses.delete(res);
      });
      return;
    }

    const all = [...(slices.get(namespace)?.values() ?? [])]
      .filter((slice) => matches(slice) === true)
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const limit = Number(url.searchParams.get('limit') ?? 0);
    const start = Number(
      Buffer.from(url.searchParams.get('continue') ?? '', 'base64').toString() || 0,
    );
    const page = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
    const next = limit > 0 && start + limit < all.length ? start + limit : undefined;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: 'EndpointSliceList',
        apiVersion: 'discovery.k8s.io/v1',
        metadata: {
          resourceVersion: String(rv),
          ...(next === undefined ? {} : { continue: Buffer.from(String(next)).toString('base64') }),
        },
        items: page.map((slice) => ({
          kind: 'EndpointSlice',
          apiVersion: 'discovery.k8s.io/v1',
          ...slice,
        })),
      }),
    );
  };

  const server: Server = createServer(
    {
      cert: serverCert.certPem,
      key: serverCert.keyPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: false,
    },
    handle,
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `https://127.0.0.1:${port}`,
    port,
    ca,
    token,
    client,
    requests,
    put(namespace, slice) {
      rv++;
      const stored = structuredClone(slice);
      stored.metadata.resourceVersion = String(rv);
      const space = slices.get(namespace) ?? new Map<string, EmulatedSlice>();
      const existed = space.has(slice.metadata.name);
      space.set(slice.metadata.name, stored);
      slices.set(namespace, space);
      record(namespace, existed ? 'MODIFIED' : 'ADDED', stored);
    },
    remove(namespace, name) {
      const stored = slices.get(namespace)?.get(name);
      if (stored === undefined) return;
      rv++;
      slices.get(namespace)?.delete(name);
      record(namespace, 'DELETED', {
        ...stored,
        metadata: { ...stored.metadata, resourceVersion: String(rv) },
      });
    },
    compact() {
      compactedRv = rv + 1;
      events = [];
    },
    dropWatches() {
      for (const res of openResponses) res.end();
    },
    get refuseWatches() {
      return flags.refuseWatches;
    },
    set refuseWatches(refuse: boolean) {
      flags.refuseWatches = refuse;
    },
    async close() {
      for (const res of openResponses) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
