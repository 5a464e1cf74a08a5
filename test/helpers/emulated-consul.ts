/**
 * An EMULATED Consul agent for provider=consul's tests: Consul is not packaged in Debian, so
 * nothing real can run here. It serves exactly the endpoints the provider uses, with the
 * requests and answers Consul documents:
 *
 * - `GET /v1/health/service/:service` — Health HTTP API, "List Service Instances for Service"
 *   (developer.hashicorp.com/consul/api-docs/health): query `passing` (only entries whose every
 *   check passes), `tag`, `dc` (another datacenter: 500 "No path to datacenter"), `index` and
 *   `wait`; answers a JSON list of `{Node, Service, Checks}` with the node's `serfHealth`
 *   check and the service's checks, and the `X-Consul-Index` header.
 * - Blocking queries (developer.hashicorp.com/consul/api-docs/features/blocking): with
 *   `index=N`, the answer waits until the state's index exceeds N or `wait` (default 5m, at most
 *   10m) passes. One index for the whole state here, which Consul allows: a return is no
 *   promise of a change. No wait/16 jitter is added.
 * - `PUT /v1/agent/service/register` — Service - Agent HTTP API
 *   (developer.hashicorp.com/consul/api-docs/agent/service): `ID`, `Name`, `Address`, `Port`,
 *   `Tags`, `Meta`, `Check: {CheckID, Name, TTL, DeregisterCriticalServiceAfter, Status}`; the
 *   check ID defaults to `service:ID`; a TTL check starts `critical` unless `Status` says.
 *   `PUT /v1/agent/service/deregister/:id` (404 when unknown).
 * - `PUT /v1/agent/check/pass/:check_id` — Check - Agent HTTP API
 *   (developer.hashicorp.com/consul/api-docs/agent/check): the check passes for its TTL, then
 *   turns critical ("TTL expired"); an unknown check is 404.
 * - DeregisterCriticalServiceAfter: a service whose check stayed critical that long is removed
 *   by a reaper; Consul raises the timeout to at least one minute and reaps every 30 s — both
 *   are options here (`deregisterMinimumMs`, `reapIntervalMs`) so a test need not wait minutes.
 * - ACLs: with `token` set, every request without that token in `X-Consul-Token` (or `?token=`)
 *   is 403 "ACL not found".
 *
 * Everything else is 404 (or 405 for a known path with the wrong method). Loopback only.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EmulatedConsulOptions {
  /** An ACL token every request must carry; none: ACLs off. */
  token?: string;
  datacenter?: string;
  nodeName?: string;
  /** Consul's floor for DeregisterCriticalServiceAfter: one minute. */
  deregisterMinimumMs?: number;
  /** How often the reaper looks for services critical past their limit: Consul's 30 s. */
  reapIntervalMs?: number;
}

interface EmulatedCheck {
  CheckID: string;
  Name: string;
  Status: 'passing' | 'warning' | 'critical';
  Output: string;
  ttlMs: number;
  deregisterAfterMs: number | undefined;
  criticalSinceMs: number | undefined;
  ttlTimer: NodeJS.Timeout | undefined;
}

interface EmulatedService {
  ID: string;
  Service: string;
  Tags: string[];
  Address: string;
  Port: number;
  Meta: Record<string, string>;
  check: EmulatedCheck | undefined;
  CreateIndex: number;
  ModifyIndex: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  token: string | undefined;
  body: unknown;
}

/** Consul's Go durations: "10s", "1m", "500ms", "1m30s". */
function goDurationMs(text: unknown): number | undefined {
  if (typeof text !== 'string' || text === '') return undefined;
  const units: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
  };
  let total = 0;
  let rest = text;
  while (rest !== '') {
    const match = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/.exec(rest);
    if (match === null) return undefined;
    total += Number(match[1]) * units[match[2]!]!;
    rest = rest.slice(match[0].length);
  }
  return total;
}

const WAIT_DEFAULT_MS = 5 * 60_000;
const WAIT_MAX_MS = 10 * 60_000;
const BODY_BYTES_MAX = 1024 * 1024;

export class EmulatedConsul {
  readonly options: Required<Omit<EmulatedConsulOptions, 'token'>> & { token?: string };
  readonly requests: RecordedRequest[] = [];
  private readonly services = new Map<string, EmulatedService>();
  private readonly waiters = new Set<() => void>();
  private index = 10;
  private server: Server | undefined;
  private reaper: NodeJS.Timeout | undefined;
  /** `127.0.0.1:PORT` once started. */
  address = '';

  constructor(options: EmulatedConsulOptions = {}) {
    this.options = {
      datacenter: options.datacenter ?? 'dc1',
      nodeName: options.nodeName ?? 'emulated-consul-node',
      deregisterMinimumMs: options.deregisterMinimumMs ?? 60_000,
      reapIntervalMs: options.reapIntervalMs ?? 30_000,
      ...(options.token === undefined ? {} : { token: options.token }),
    };
  }

  /** Listens on 127.0.0.1:`port` (0: one from the kernel); resolves with `host:port`. */
  async start(port = 0): Promise<string> {
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error) => {
        response.statusCode = 500;
        response.end(String(error));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.address = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    this.reaper = setInterval(() => this.reap(), this.options.reapIntervalMs);
    return this.address;
  }

  async stop(): Promise<void> {
    clearInterval(this.reaper);
    for (const service of this.services.values()) clearTimeout(service.check?.ttlTimer);
    for (const wake of this.waiters) wake();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  /** The registered services, as the agent holds them (for assertions). */
  catalog(): Array<{
    id: string;
    name: string;
    status: string | undefined;
    ttl: number | undefined;
    deregisterAfterMs: number | undefined;
  }> {
    return [...this.services.values()].map((service) => ({
      id: service.ID,
      name: service.Service,
      status: service.check?.Status,
      ttl: service.check?.ttlMs,
      deregisterAfterMs: service.check?.deregisterAfterMs,
    }));
  }

  /** Forgets a service without a deregistration, as an agent that lost its state would. */
  forget(id: string): void {
    clearTimeout(this.services.get(id)?.check?.ttlTimer);
    if (this.services.delete(id)) this.changed();
  }

  private changed(): void {
    this.index++;
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  private reap(): void {
    const now = performance.now();
    for (const service of [...this.services.values()]) {
      const check = service.check;
      if (check?.deregisterAfterMs === undefined || check.criticalSinceMs === undefined) continue;
      const after = Math.max(check.deregisterAfterMs, this.options.deregisterMinimumMs);
      if (now - check.criticalSinceMs >= after) this.forget(service.ID);
    }
  }

  private setStatus(
    service: EmulatedService,
    status: EmulatedCheck['Status'],
    output: string,
  ): void {
    const check = service.check!;
    if (check.Status !== status || check.Output !== output) {
      check.Status = status;
      check.Output = output;
      check.criticalSinceMs = status === 'critical' ? performance.now() : undefined;
      service.ModifyIndex = this.index + 1;
      this.changed();
    }
  }

  private armTtl(service: EmulatedService): void {
    const check = service.check!;
    clearTimeout(check.ttlTimer);
    check.ttlTimer = setTimeout(() => {
      if (this.services.get(service.ID) === service)
        this.setStatus(service, 'critical', 'TTL expired');
    }, check.ttlMs);
  }

  private async readBody(request: IncomingMessage): Promise<unknown> {
    let text = '';
    for await (const chunk of request) {
      text += chunk;
      if (text.length > BODY_BYTES_MAX) throw new Error('request body too large');
    }
    return text === '' ? undefined : JSON.parse(text);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://emulated-consul');
    const token =
      (request.headers['x-consul-token'] as string | undefined) ??
      url.searchParams.get('token') ??
      undefined;
    let body: unknown;
    try {
      body = await this.readBody(request);
    } catch {
      return this.reply(response, 400, 'Request decode failed');
    }
    this.requests.push({
      method: request.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      token,
      body,
    });
    if (this.options.token !== undefined && token !== this.options.token) {
      return this.reply(response, 403, 'ACL not found');
    }
    const routes: Array<{
      method: string;
      pattern: RegExp;
      run: (match: RegExpExecArray) => unknown;
    }> = [
      {
        method: 'GET',
        pattern: /^\/v1\/health\/service\/([^/]+)$/,
        run: (match) => this.health(decodeURIComponent(match[1]!), url.searchParams, response),
      },
      {
        method: 'PUT',
        pattern: /^\/v1\/agent\/service\/register$/,
        run: () => {
          const problem = this.register(body);
          this.reply(response, problem === undefined ? 200 : 400, problem ?? '');
        },
      },
      {
        method: 'PUT',
        pattern: /^\/v1\/agent\/service\/deregister\/([^/]+)$/,
        run: (match) => this.deregister(decodeURIComponent(match[1]!), response),
      },
      {
        method: 'PUT',
        pattern: /^\/v1\/agent\/check\/pass\/([^/]+)$/,
        run: (match) =>
          this.pass(decodeURIComponent(match[1]!), url.searchParams.get('note') ?? '', response),
      },
    ];
    for (const route of routes) {
      const match = route.pattern.exec(url.pathname);
      if (match === null) continue;
      if (request.method !== route.method) {
        this.reply(response, 405, `method ${request.method} not allowed`);
      } else {
        await route.run(match);
      }
      return;
    }
    this.reply(response, 404, 'Not Found');
  }

  private deregister(id: string, response: ServerResponse): void {
    if (!this.services.has(id)) {
      this.reply(response, 404, `Unknown service ID "${id}"`);
      return;
    }
    this.forget(id);
    this.reply(response, 200, '');
  }

  private pass(checkId: string, note: string, response: ServerResponse): void {
    const service = [...this.services.values()].find((s) => s.check?.CheckID === checkId);
    if (service === undefined) {
      this.reply(response, 404, `Unknown check ID "${checkId}"`);
      return;
    }
    this.setStatus(service, 'passing', note);
    this.armTtl(service);
    this.reply(response, 200, '');
  }

  private reply(response: ServerResponse, status: number, text: string): void {
    if (response.writableEnded) return;
    response.statusCode = status;
    response.setHeader('content-type', 'text/plain; charset=utf-8');
    response.end(text);
  }

  /** Registers, or says why the request is refused (400). */
  private register(body: unknown): string | undefined {
    const doc = (body ?? {}) as Record<string, unknown>;
    const name = doc['Name'];
    if (typeof name !== 'string' || name === '') return 'Missing service name';
    const id = typeof doc['ID'] === 'string' && doc['ID'] !== '' ? doc['ID'] : name;
    const port = doc['Port'] ?? 0;
    if (typeof port !== 'number' || !Number.isInteger(port)) return 'Invalid Port';
    const previous = this.services.get(id);
    clearTimeout(previous?.check?.ttlTimer);
    const service: EmulatedService = {
      ID: id,
      Service: name,
      Tags: Array.isArray(doc['Tags']) ? (doc['Tags'] as string[]) : [],
      Address: typeof doc['Address'] === 'string' ? doc['Address'] : '',
      Port: port,
      Meta: (doc['Meta'] as Record<string, string> | undefined) ?? {},
      check: undefined,
      CreateIndex: previous?.CreateIndex ?? this.index + 1,
      ModifyIndex: this.index + 1,
    };
    const checkDoc = doc['Check'] as Record<string, unknown> | undefined;
    if (checkDoc !== undefined) {
      const ttlMs = goDurationMs(checkDoc['TTL']);
      if (ttlMs === undefined) return 'Invalid check: only TTL checks are emulated';
      const deregisterText = checkDoc['DeregisterCriticalServiceAfter'];
      const deregisterAfterMs =
        deregisterText === undefined ? undefined : goDurationMs(deregisterText);
      if (deregisterText !== undefined && deregisterAfterMs === undefined) {
        return 'Invalid DeregisterCriticalServiceAfter';
      }
      const status = checkDoc['Status'];
      service.check = {
        CheckID:
          typeof checkDoc['CheckID'] === 'string' && checkDoc['CheckID'] !== ''
            ? checkDoc['CheckID']
            : `service:${id}`,
        Name: typeof checkDoc['Name'] === 'string' ? checkDoc['Name'] : `Service '${name}' check`,
        Status: status === 'passing' || status === 'warning' ? status : 'critical',
        Output: '',
        ttlMs,
        deregisterAfterMs,
        criticalSinceMs: undefined,
        ttlTimer: undefined,
      };
      if (service.check.Status === 'critical') service.check.criticalSinceMs = performance.now();
      else this.armTtl(service);
    }
    this.services.set(id, service);
    this.changed();
    return undefined;
  }

  private async health(
    name: string,
    query: URLSearchParams,
    response: ServerResponse,
  ): Promise<void> {
    const dc = query.get('dc');
    if (dc !== null && dc !== this.options.datacenter) {
      return this.reply(response, 500, 'No path to datacenter');
    }
    const indexText = query.get('index');
    if (indexText !== null) {
      const wanted = Number(indexText);
      const waitMs = Math.min(goDurationMs(query.get('wait')) ?? WAIT_DEFAULT_MS, WAIT_MAX_MS);
      if (Number.isFinite(wanted) && wanted >= this.index) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, waitMs);
          function done() {
            clearTimeout(timer);
            resolve();
          }
          this.waiters.add(done);
          response.once('close', done);
        });
      }
    }
    const passingOnly = query.has('passing') && query.get('passing') !== 'false';
    const tag = query.get('tag');
    const node = this.options.nodeName;
    const serfHealth = {
      Node: node,
      CheckID: 'serfHealth',
      Name: 'Serf Health Status',
      Status: 'passing',
      Notes: '',
      Output: 'Agent alive and reachable',
      ServiceID: '',
      ServiceName: '',
      ServiceTags: [],
    };
    const entries = [...this.services.values()]
      .filter((service) => service.Service === name)
      .filter((service) => tag === null || service.Tags.includes(tag))
      .filter(
        (service) =>
          !passingOnly || service.check === undefined || service.check.Status === 'passing',
      )
      .map((service) => ({
        Node: {
          ID: '7b9c0d4e-0000-4000-8000-000000000001',
          Node: node,
          Address: '127.0.0.1',
          Datacenter: this.options.datacenter,
          TaggedAddresses: { lan: '127.0.0.1', wan: '127.0.0.1' },
          Meta: {},
          CreateIndex: 5,
          ModifyIndex: 5,
        },
        Service: {
          ID: service.ID,
          Service: service.Service,
          Tags: service.Tags,
          Address: service.Address,
          Meta: service.Meta,
          Port: service.Port,
          Weights: { Passing: 1, Warning: 1 },
          EnableTagOverride: false,
          CreateIndex: service.CreateIndex,
          ModifyIndex: service.ModifyIndex,
        },
        Checks: [
          serfHealth,
          ...(service.check === undefined
            ? []
            : [
                {
                  Node: node,
                  CheckID: service.check.CheckID,
                  Name: service.check.Name,
                  Status: service.check.Status,
                  Notes: '',
                  Output: service.check.Output,
                  ServiceID: service.ID,
                  ServiceName: service.Service,
                  ServiceTags: service.Tags,
                },
              ]),
        ],
      }));
    if (response.writableEnded || response.destroyed) return;
    response.statusCode = 200;
    response.setHeader('content-type', 'application/json');
    response.setHeader('x-consul-index', String(this.index));
    response.setHeader('x-consul-knownleader', 'true');
    response.setHeader('x-consul-lastcontact', '0');
    response.end(JSON.stringify(entries));
  }
}
