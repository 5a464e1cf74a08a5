/**
 * `provider=k8s`: the ready endpoints of a Service, read from its EndpointSlices
 * (discovery.k8s.io/v1) through the API server, as kube-proxy and CoreDNS see them. Auth is
 * in-cluster (service-account token and CA) or a kubeconfig (see k8s-auth.ts). `watch()`
 * follows the slices with the API's watch (`?watch=1&resourceVersion=…`), relisting on
 * 410 Gone and falling back to polling when the server refuses watches.
 */

import { homedir } from 'node:os';
import type { Dispatcher } from 'undici';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { formatHostPort } from '../../transport/address.ts';
import {
  API_TIMEOUT_BOUNDS,
  abortablePause,
  apiCall,
  apiFailed,
  createAgent,
  endpointOf,
  type HttpStream,
  HttpUnreachable,
  httpStream,
  parseJsonBody,
  REQUEST_TIMEOUT_MS_DEFAULT,
} from '../http.ts';
import type {
  DiscoveredNode,
  DiscoveryProvider,
  ProviderContext,
  ProviderFactory,
} from '../provider.ts';
import { badValue, durationValue, nameValue, valueOr } from '../values.ts';
import { inClusterConnection, type K8sConnection, kubeconfigConnection } from './k8s-auth.ts';

const NAME = 'k8s';
/** Slices asked for per page (`limit=`); the API pages with `continue`. */
export const LIST_PAGE_LIMIT = 500;
/** Pages read per lookup at most: 20 × 500 slices is far beyond any one Service. */
export const LIST_PAGES_MAX = 20;
/** Endpoints kept per lookup at most; more fails rather than grows without bound. */
export const ENDPOINTS_MAX = 10_000;
/** Server-side length of one watch request (`timeoutSeconds=`); then it is re-opened. */
export const WATCH_SECONDS = 300;
/** One watch event line larger than this ends the watch (relist), it is not buffered. */
export const WATCH_EVENT_BYTES_MAX = 4 * 1024 * 1024;
/** Retry delay after a failed watch or list: doubles from the first to the cap. */
export const WATCH_RETRY_MS_FIRST = 1_000;
export const WATCH_RETRY_MS_MAX = 30_000;
/** Watch refusals (403, 405, ...) in a row before the provider polls instead. */
export const WATCH_REFUSALS_BEFORE_POLLING = 3;
/** Polling period once watches are refused. */
export const POLL_INTERVAL_MS = 10_000;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/;
const LABEL_SELECTOR = /^[A-Za-z0-9._/=!,()\- ]{1,1024}$/;

interface EndpointSliceJson {
  metadata?: { name?: string; resourceVersion?: string };
  addressType?: string;
  endpoints?: Array<{
    addresses?: string[];
    conditions?: { ready?: boolean | null };
    hostname?: string;
    nodeName?: string;
    zone?: string;
    targetRef?: { kind?: string; name?: string };
  }> | null;
  ports?: Array<{ name?: string; port?: number; protocol?: string }> | null;
}

interface K8sOptions {
  service: string;
  namespace: string | undefined;
  portName: string | undefined;
  labelSelector: string | undefined;
  kubeconfig: string | undefined;
  context: string | undefined;
  timeoutMs: number;
}

/** The port a slice serves under `portName`, or its only port, or its port named rdbnet. */
export function slicePort(
  slice: EndpointSliceJson,
  portName: string | undefined,
): number | undefined {
  const ports = (slice.ports ?? []).filter(
    (p) => typeof p.port === 'number' && (p.protocol ?? 'TCP') === 'TCP',
  );
  const chosen =
    portName !== undefined
      ? ports.find((p) => (p.name ?? '') === portName)
      : ports.length === 1
        ? ports[0]
        : ports.find((p) => p.name === 'rdbnet');
  return chosen?.port;
}

/**
 * The ready endpoints of some slices as nodes. `conditions.ready` unset counts as ready, as the
 * EndpointSlice API documents ("nil should be interpreted as true"); false is left out.
 */
export function nodesFromSlices(
  slices: readonly EndpointSliceJson[],
  opts: { namespace: string; service: string; portName: string | undefined },
): DiscoveredNode[] {
  const nodes = new Map<string, DiscoveredNode>();
  for (const slice of slices) {
    const port = slicePort(slice, opts.portName);
    if (port === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      if (endpoint.conditions?.ready === false) continue;
      for (const host of endpoint.addresses ?? []) {
        const address = formatHostPort({ host, port });
        const meta: Record<string, string> = {
          namespace: opts.namespace,
          service: opts.service,
          slice: slice.metadata?.name ?? '',
        };
        if (endpoint.zone !== undefined) meta['zone'] = endpoint.zone;
        if (endpoint.nodeName !== undefined) meta['nodeName'] = endpoint.nodeName;
        if (endpoint.hostname !== undefined) meta['hostname'] = endpoint.hostname;
        if (endpoint.targetRef?.kind === 'Pod' && endpoint.targetRef.name !== undefined) {
          meta['pod'] = endpoint.targetRef.name;
        }
        nodes.set(address, {
          address,
          source: `k8s:${opts.namespace}/${opts.service}`,
          meta,
        });
        if (nodes.size > ENDPOINTS_MAX) {
          throw new RdbnetError(
            ErrorCode.DiscoveryFailed,
            `provider=k8s: service ${opts.namespace}/${opts.service} has more than ${ENDPOINTS_MAX} endpoints`,
          );
        }
      }
    }
  }
  return [...nodes.values()].sort((a, b) => a.address.localeCompare(b.address));
}

/** The message of a Kubernetes `Status` body, or the body's first line. */
function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown; reason?: unknown };
    if (typeof status.message === 'string') {
      return typeof status.reason === 'string'
        ? `${status.reason}: ${status.message}`
        : status.message;
    }
  } catch {
    // not JSON: the text itself
  }
  return body.split('\n')[0] ?? '';
}

class K8sProvider implements DiscoveryProvider {
  readonly name = NAME;
  private connection: K8sConnection | undefined;
  private dispatcher: Dispatcher | undefined;

  private readonly opts: K8sOptions;
  private readonly ctx: ProviderContext;

  constructor(opts: K8sOptions, ctx: ProviderContext) {
    this.opts = opts;
    this.ctx = ctx;
  }

  private connect(): { connection: K8sConnection; dispatcher: Dispatcher } {
    if (this.connection === undefined || this.dispatcher === undefined) {
      const env = this.ctx.env;
      let connection: K8sConnection;
      if (this.opts.kubeconfig !== undefined) {
        connection = kubeconfigConnection(this.opts.kubeconfig, this.opts.context);
      } else if ((env['KUBERNETES_SERVICE_HOST'] ?? '') !== '') {
        connection = inClusterConnection(env);
      } else {
        const fromEnv = (env['KUBECONFIG'] ?? '').split(':').find((p) => p !== '');
        const home = env['HOME'] ?? homedir();
        connection = kubeconfigConnection(fromEnv ?? `${home}/.kube/config`, this.opts.context);
      }
      this.connection = connection;
      this.dispatcher = createAgent(connection.tls);
    }
    return { connection: this.connection, dispatcher: this.dispatcher };
  }

  private namespace(connection: K8sConnection): string {
    return this.opts.namespace ?? connection.namespace ?? 'default';
  }

  private slicesUrl(connection: K8sConnection, params: Record<string, string>): URL {
    const ns = this.namespace(connection);
    const url = new URL(
      `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
      connection.server,
    );
    const selector = [`kubernetes.io/service-name=${this.opts.service}`];
    if (this.opts.labelSelector !== undefined) selector.push(this.opts.labelSelector);
    url.searchParams.set('labelSelector', selector.join(','));
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    return url;
  }

  private headers(connection: K8sConnection): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (connection.token !== undefined) headers['authorization'] = `Bearer ${connection.token()}`;
    return headers;
  }

  /** Lists every slice of the Service (paged), with the list's resourceVersion. */
  private async list(
    signal: AbortSignal,
  ): Promise<{ slices: EndpointSliceJson[]; resourceVersion: string | undefined }> {
    const { connection, dispatcher } = this.connect();
    const slices: EndpointSliceJson[] = [];
    let cont: string | undefined;
    let resourceVersion: string | undefined;
    for (let page = 0; page < LIST_PAGES_MAX; page++) {
      const params: Record<string, string> = { limit: String(LIST_PAGE_LIMIT) };
      if (cont !== undefined) params['continue'] = cont;
      const url = this.slicesUrl(connection, params);
      const response = await apiCall({
        provider: NAME,
        url,
        headers: this.headers(connection),
        timeoutMs: this.opts.timeoutMs,
        clock: this.ctx.clock,
        signal,
        dispatcher,
      });
      if (response.status !== 200) {
        throw apiFailed(NAME, response.status, statusMessage(response.body));
      }
      const list = parseJsonBody(NAME, url, response.body) as {
        items?: EndpointSliceJson[] | null;
        metadata?: { resourceVersion?: string; continue?: string };
      };
      slices.push(...(list.items ?? []));
      resourceVersion = list.metadata?.resourceVersion;
      cont = list.metadata?.continue;
      if (cont === undefined || cont === '') return { slices, resourceVersion };
    }
    throw new RdbnetError(
      ErrorCode.DiscoveryFailed,
      `provider=k8s: ${endpointOf(this.slicesUrl(connection, {}))} has more than ${LIST_PAGES_MAX} pages of ${LIST_PAGE_LIMIT} slices`,
    );
  }

  private toNodes(slices: EndpointSliceJson[]): DiscoveredNode[] {
    const { connection } = this.connect();
    return nodesFromSlices(slices, {
      namespace: this.namespace(connection),
      service: this.opts.service,
      portName: this.opts.portName,
    });
  }

  async discover(signal: AbortSignal): Promise<DiscoveredNode[]> {
    const { slices } = await this.list(signal);
    return this.toNodes(slices);
  }

  async watch(onChange: (nodes: DiscoveredNode[]) => void, signal: AbortSignal): Promise<void> {
    let last = '';
    const emit = (slices: Map<string, EndpointSliceJson>): void => {
      const nodes = this.toNodes([...slices.values()]);
      const key = JSON.stringify(nodes);
      if (key !== last) {
        last = key;
        onChange(nodes);
      }
    };
    let retryMs = WATCH_RETRY_MS_FIRST;
    let refusals = 0;
    while (!signal.aborted) {
      try {
        const listed = await this.list(signal);
        const slices = new Map(listed.slices.map((s) => [s.metadata?.name ?? '', s]));
        emit(slices);
        retryMs = WATCH_RETRY_MS_FIRST;
        if (refusals >= WATCH_REFUSALS_BEFORE_POLLING) {
          await abortablePause(this.ctx.clock, POLL_INTERVAL_MS, signal);
          continue;
        }
        let resourceVersion = listed.resourceVersion;
        // Follow from the list's version until the server says it is too old (relist).
        while (!signal.aborted && resourceVersion !== undefined) {
          const outcome = await this.watchOnce(resourceVersion, slices, emit, signal);
          if (outcome.kind === 'refused') {
            refusals++;
            this.ctx.log('warn', `provider=k8s: watch refused (${outcome.reason}); relisting`);
            break;
          }
          refusals = 0;
          if (outcome.kind === 'gone') break;
          resourceVersion = outcome.resourceVersion;
        }
      } catch (error) {
        if (signal.aborted) break;
        this.ctx.log('warn', (error as Error).message);
        await abortablePause(this.ctx.clock, retryMs, signal);
        retryMs = Math.min(retryMs * 2, WATCH_RETRY_MS_MAX);
      }
    }
  }

  /** One watch request: applies events to `slices` until the server ends it. */
  private async watchOnce(
    resourceVersion: string,
    slices: Map<string, EndpointSliceJson>,
    emit: (slices: Map<string, EndpointSliceJson>) => void,
    signal: AbortSignal,
  ): Promise<
    | { kind: 'ended'; resourceVersion: string }
    | { kind: 'gone' }
    | { kind: 'refused'; reason: string }
  > {
    const { connection, dispatcher } = this.connect();
    const url = this.slicesUrl(connection, {
      watch: '1',
      resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(WATCH_SECONDS),
    });
    // The server closes after timeoutSeconds; this is the backstop if it does not.
    const deadline = new AbortController();
    const timer = this.ctx.clock.setTimer((WATCH_SECONDS + 30) * 1000, () => deadline.abort());
    try {
      let stream: HttpStream;
      try {
        // The answer's head must come within timeout=; the body is a stream quiet between events.
        stream = await httpStream({
          provider: NAME,
          endpoint: endpointOf(url),
          url,
          method: 'GET',
          headers: this.headers(connection),
          timeoutMs: this.opts.timeoutMs,
          bytesMax: WATCH_EVENT_BYTES_MAX,
          signal: AbortSignal.any([signal, deadline.signal]),
          dispatcher,
          timers: this.ctx.clock,
        });
      } catch (error) {
        if (signal.aborted) return { kind: 'ended', resourceVersion };
        if (!(error instanceof HttpUnreachable)) throw error;
        throw new RdbnetError(
          ErrorCode.DiscoveryUnreachable,
          `provider=k8s: cannot reach ${error.endpoint}: ${error.reason}`,
        );
      }
      if (stream.status === 410) {
        await stream.text();
        return { kind: 'gone' };
      }
      if (stream.status !== 200) {
        const text = await stream.text();
        return { kind: 'refused', reason: `HTTP ${stream.status} ${statusMessage(text)}` };
      }
      try {
        for await (const line of stream.lines) {
          const event = JSON.parse(line) as {
            type?: string;
            object?: EndpointSliceJson & { code?: number; message?: string };
          };
          const object = event.object ?? {};
          if (event.type === 'ERROR') {
            if (object.code === 410) return { kind: 'gone' };
            return { kind: 'refused', reason: object.message ?? 'watch error' };
          }
          const name = object.metadata?.name ?? '';
          if (object.metadata?.resourceVersion !== undefined) {
            resourceVersion = object.metadata.resourceVersion;
          }
          if (event.type === 'ADDED' || event.type === 'MODIFIED') slices.set(name, object);
          else if (event.type === 'DELETED') slices.delete(name);
          else continue; // BOOKMARK: only the version moves
          emit(slices);
        }
      } catch (error) {
        if (signal.aborted) return { kind: 'ended', resourceVersion };
        if (error instanceof RdbnetError) throw error;
        const reason = error instanceof HttpUnreachable ? error.reason : (error as Error).message;
        throw new RdbnetError(
          ErrorCode.DiscoveryUnreachable,
          `provider=k8s: watch on ${endpointOf(url)} broke: ${reason}`,
        );
      }
      return { kind: 'ended', resourceVersion };
    } finally {
      this.ctx.clock.clearTimer(timer);
    }
  }

  async close(): Promise<void> {
    const dispatcher = this.dispatcher;
    this.dispatcher = undefined;
    this.connection = undefined;
    if (dispatcher !== undefined) await dispatcher.close();
  }
}

export const k8sProvider: ProviderFactory = {
  name: NAME,
  summary: 'ready endpoints of a Kubernetes Service, from its EndpointSlices via the API server',
  example: 'provider=k8s namespace=default service=rdbnet port_name=rdbnet',
  keys: [
    { name: 'service', required: true, doc: 'the Service whose EndpointSlices list the nodes' },
    {
      name: 'namespace',
      required: false,
      doc: "the Service's namespace (default: the pod's or the kubeconfig context's, else default)",
    },
    {
      name: 'port_name',
      required: false,
      doc: "the slice port to use (default: the slice's only port, else the one named rdbnet)",
    },
    {
      name: 'label_selector',
      required: false,
      doc: 'more labels the slices must match, Kubernetes selector syntax (app=db,tier!=cache)',
    },
    {
      name: 'kubeconfig',
      required: false,
      doc: 'kubeconfig file (default: in-cluster service account, else $KUBECONFIG, else ~/.kube/config)',
    },
    { name: 'context', required: false, doc: 'kubeconfig context (default: current-context)' },
    {
      name: 'timeout',
      required: false,
      doc: 'per-request deadline, like 5s or 500ms (default 5s)',
    },
  ],
  create(args, ctx) {
    const service = nameValue(NAME, 'service', args.get('service')!, DNS_LABEL, 'a DNS label');
    const namespace = args.get('namespace');
    if (namespace !== undefined) nameValue(NAME, 'namespace', namespace, DNS_LABEL, 'a DNS label');
    const portName = args.get('port_name');
    if (portName !== undefined) {
      nameValue(NAME, 'port_name', portName, PORT_NAME, 'a port name (lower-case, at most 15)');
    }
    const labelSelector = args.get('label_selector');
    if (labelSelector !== undefined && !LABEL_SELECTOR.test(labelSelector)) {
      throw badValue(NAME, 'label_selector', `is not a label selector: "${labelSelector}"`);
    }
    const context = args.get('context');
    if (context !== undefined && context.length > 253) {
      throw badValue(NAME, 'context', 'is longer than 253 characters');
    }
    return new K8sProvider(
      {
        service,
        namespace,
        portName,
        labelSelector,
        kubeconfig: args.get('kubeconfig'),
        context,
        timeoutMs: valueOr(args.get('timeout'), REQUEST_TIMEOUT_MS_DEFAULT, (text) =>
          durationValue(NAME, 'timeout', text, API_TIMEOUT_BOUNDS),
        ),
      },
      ctx,
    );
  },
};
