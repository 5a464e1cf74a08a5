/**
 * EMULATED Google endpoints for provider=gce (no real Google API is reachable here), built from
 * Google's documentation, on one loopback HTTP server:
 * - the OAuth 2.0 token endpoint of a service account key (`POST /token`, JWT bearer grant):
 *   verifies the RS256 assertion against the account's public key, its `aud` (this token
 *   URL), `iat`/`exp` (fresh, at most an hour) and `scope`; answers `invalid_grant` otherwise;
 * - the metadata server (`/computeMetadata/v1/...`), which demands `Metadata-Flavor: Google`;
 * - compute v1 `projects/P/aggregated/instances`, which demands a token it issued and honours
 *   `filter` (`(status = "RUNNING") (labels.k = "v")`), `maxResults` and `pageToken`, with
 *   Google's error body (`{"error": {"code", "message", "status"}}`).
 */
import { generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EmulatedGceInstance {
  name: string;
  zone: string;
  status: 'RUNNING' | 'TERMINATED' | 'STAGING';
  networkIP: string;
  natIP?: string;
  tags?: string[];
  labels?: Record<string, string>;
}

export interface EmulatedGce {
  url: string;
  /** `host:port`, as GCE_METADATA_HOST takes it. */
  metadataHost: string;
  tokenUrl: string;
  computeUrl: string;
  project: string;
  instances: EmulatedGceInstance[];
  zones: string[];
  /** A service account key file's JSON for an account this server knows. */
  serviceAccountKey(): Record<string, string>;
  /** Compute list requests that passed authentication (their query strings). */
  listed: string[];
  /** Token grants answered, by kind. */
  grants: string[];
  close(): Promise<void>;
}

function googleError(res: ServerResponse, code: number, status: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json; charset=UTF-8' });
  res.end(
    JSON.stringify({ error: { code, message, errors: [{ message, reason: status }], status } }),
  );
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** `(a = "b") (c = "d")` or `a = "b"` → pairs; undefined when it does not parse. */
function parseFilter(filter: string): Array<[string, string]> | undefined {
  const terms = filter.includes('(')
    ? [...filter.matchAll(/\(([^)]*)\)/g)].map((m) => m[1]!)
    : [filter];
  const pairs: Array<[string, string]> = [];
  for (const term of terms) {
    const m = /^\s*([a-zA-Z0-9_.-]+)\s*=\s*"?([^"]*)"?\s*$/.exec(term);
    if (m === null) return undefined;
    pairs.push([m[1]!, m[2]!]);
  }
  return pairs;
}

export async function startEmulatedGce(opts: { project?: string } = {}): Promise<EmulatedGce> {
  const project = opts.project ?? 'rdbnet-emulated';
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const clientEmail = `discovery@${project}.iam.gserviceaccount.com`;
  const keyId = randomBytes(8).toString('hex');
  const accounts = new Map([[clientEmail, publicKey]]);
  const issued = new Set<string>();
  const instances: EmulatedGceInstance[] = [];
  const zones = ['europe-west1-b', 'europe-west1-c', 'us-central1-a'];
  const listed: string[] = [];
  const grants: string[] = [];
  let base = '';

  const issue = (res: ServerResponse, kind: string): void => {
    const token = `ya29.emulated-${randomBytes(12).toString('hex')}`;
    issued.add(token);
    grants.push(kind);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ access_token: token, expires_in: 3599, token_type: 'Bearer' }));
  };

  const invalidGrant = (res: ServerResponse, description: string): void => {
    grants.push(`refused: ${description}`);
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'invalid_grant', error_description: description }));
  };

  const tokenGrant = (res: ServerResponse, body: string) => {
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: 'unsupported_grant_type',
          error_description: 'Invalid grant_type.',
        }),
      );
      return;
    }
    const parts = (form.get('assertion') ?? '').split('.');
    if (parts.length !== 3)
      return invalidGrant(
        res,
        'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.',
      );
    const [h, c, sig] = parts as [string, string, string];
    let header: { alg?: string };
    let claims: { iss?: string; aud?: string; scope?: string; iat?: number; exp?: number };
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString());
      claims = JSON.parse(Buffer.from(c, 'base64url').toString());
    } catch {
      return invalidGrant(res, 'Invalid JWT: not JSON.');
    }
    const key = accounts.get(claims.iss ?? '');
    if (header.alg !== 'RS256' || key === undefined)
      return invalidGrant(res, 'Invalid grant: account not found');
    if (!verify('RSA-SHA256', Buffer.from(`${h}.${c}`), key, Buffer.from(sig, 'base64url'))) {
      return invalidGrant(res, 'Invalid JWT Signature.');
    }
    const now = Date.now() / 1000;
    if (claims.aud !== `${base}/token`)
      return invalidGrant(res, 'Invalid JWT: audience is not the token URL.');
    if (
      typeof claims.iat !== 'number' ||
      typeof claims.exp !== 'number' ||
      Math.abs(claims.iat - now) > 300 ||
      claims.exp - claims.iat > 3600 ||
      claims.exp < now
    ) {
      return invalidGrant(
        res,
        'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.',
      );
    }
    const scopes = (claims.scope ?? '').split(' ');
    if (
      !scopes.some(
        (s) => s.endsWith('/auth/compute.readonly') || s.endsWith('/auth/cloud-platform'),
      )
    ) {
      return invalidGrant(res, 'Invalid OAuth scope or ID token audience provided.');
    }
    issue(res, 'jwt-bearer');
  };

  const server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (req.method === 'POST' && url.pathname === '/token') return tokenGrant(res, body);
      if (url.pathname.startsWith('/computeMetadata/v1/')) {
        if (req.headers['metadata-flavor'] !== 'Google') {
          res.writeHead(403, { 'content-type': 'text/html' });
          res.end('Missing Metadata-Flavor:Google header.');
          return;
        }
        const path = url.pathname.slice('/computeMetadata/v1/'.length);
        if (path === 'instance/service-accounts/default/token') return issue(res, 'metadata');
        if (path === 'project/project-id') {
          res.writeHead(200, { 'content-type': 'application/text' });
          res.end(project);
          return;
        }
        res.writeHead(404).end();
        return;
      }
      const m = /^\/compute\/v1\/projects\/([^/]+)\/aggregated\/instances$/.exec(url.pathname);
      if (req.method !== 'GET' || m === null)
        return googleError(res, 404, 'NOT_FOUND', 'Not Found');
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (bearer === undefined || !issued.has(bearer)) {
        return googleError(
          res,
          401,
          'UNAUTHENTICATED',
          'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
        );
      }
      if (m[1] !== project) {
        return googleError(res, 404, 'NOT_FOUND', `The resource 'projects/${m[1]}' was not found`);
      }
      const filter = parseFilter(url.searchParams.get('filter') ?? '');
      if (filter === undefined) {
        return googleError(
          res,
          400,
          'INVALID_ARGUMENT',
          `Invalid value for field 'filter': '${url.searchParams.get('filter')}'.`,
        );
      }
      listed.push(url.search);
      const matches = instances.filter((i) =>
        filter.every(([field, value]) =>
          field === 'status'
            ? i.status === value
            : field.startsWith('labels.')
              ? i.labels?.[field.slice(7)] === value
              : field === 'name'
                ? i.name === value
                : false,
        ),
      );
      const max = Math.min(Number(url.searchParams.get('maxResults') ?? 500), 500);
      const start = Number(url.searchParams.get('pageToken') ?? 0);
      const page = matches.slice(start, start + max);
      const items: Record<string, unknown> = {};
      for (const zone of zones) {
        const inZone = page.filter((i) => i.zone === zone);
        items[`zones/${zone}`] =
          inZone.length === 0
            ? { warning: { code: 'NO_RESULTS_ON_PAGE', message: 'There are no results for scope' } }
            : {
                instances: inZone.map((i) => ({
                  kind: 'compute#instance',
                  id: String(100000 + instances.indexOf(i)),
                  name: i.name,
                  zone: `${base}/compute/v1/projects/${project}/zones/${i.zone}`,
                  status: i.status,
                  tags: { items: i.tags ?? [], fingerprint: 'x' },
                  labels: i.labels ?? {},
                  networkInterfaces: [
                    {
                      name: 'nic0',
                      networkIP: i.networkIP,
                      accessConfigs:
                        i.natIP === undefined ? [] : [{ type: 'ONE_TO_ONE_NAT', natIP: i.natIP }],
                    },
                  ],
                })),
              };
      }
      res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(
        JSON.stringify({
          kind: 'compute#instanceAggregatedList',
          items,
          ...(start + max < matches.length ? { nextPageToken: String(start + max) } : {}),
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  return {
    url: base,
    metadataHost: `127.0.0.1:${port}`,
    tokenUrl: `${base}/token`,
    computeUrl: `${base}/compute/v1/`,
    project,
    instances,
    zones,
    serviceAccountKey: () => ({
      type: 'service_account',
      project_id: project,
      private_key_id: keyId,
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      client_email: clientEmail,
      client_id: '1234567890',
      token_uri: `${base}/token`,
    }),
    listed,
    grants,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
