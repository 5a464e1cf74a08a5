/**
 * Access tokens for provider=gce, the two ways Google documents for a program: a service
 * account key file (the OAuth 2.0 JWT bearer grant: an RS256-signed assertion POSTed to the
 * key's `token_uri`), or the metadata server of the VM it runs on
 * (`/computeMetadata/v1/instance/service-accounts/default/token`, `Metadata-Flavor: Google`).
 * The metadata host is metadata.google.internal unless GCE_METADATA_HOST moves it (the
 * variable Google's client libraries read). Tokens are cached until shortly before expiry.
 */
import { createSign } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Dispatcher } from 'undici';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { apiCall, apiFailed, parseJsonBody } from '../http.ts';
import type { ProviderContext } from '../provider.ts';
import { TOKEN_REFRESH_MARGIN_MS } from './cloud/keys.ts';

/** The documented metadata server name (it resolves to a link-local address on GCE). */
export const METADATA_HOST_DEFAULT = 'metadata.google.internal';
/** Read-only access to Compute Engine is all discovery needs. */
export const COMPUTE_READONLY_SCOPE = 'https://www.googleapis.com/auth/compute.readonly';
/** Lifetime asked for in the JWT assertion (Google's maximum is one hour). */
export const ASSERTION_LIFETIME_SECONDS = 3600;
/** A key file larger than this is not one. */
export const KEY_FILE_BYTES_MAX = 64 * 1024;

const NAME = 'gce';

function failed(message: string): RdbnetError {
  return new RdbnetError(ErrorCode.DiscoveryFailed, `provider=gce: ${message}`);
}

export interface ServiceAccountKey {
  client_email: string;
  private_key: string;
  private_key_id?: string;
  token_uri: string;
  project_id?: string;
}

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

/** The signed JWT assertion of the JWT bearer grant (RFC 7523), RS256. */
export function signAssertion(key: ServiceAccountKey, scope: string, nowSeconds: number): string {
  const header = {
    alg: 'RS256',
    typ: 'JWT',
    ...(key.private_key_id ? { kid: key.private_key_id } : {}),
  };
  const claims = {
    iss: key.client_email,
    scope,
    aud: key.token_uri,
    iat: nowSeconds,
    exp: nowSeconds + ASSERTION_LIFETIME_SECONDS,
  };
  const unsigned = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(unsigned).sign(key.private_key);
  return `${unsigned}.${base64url(signature)}`;
}

/** Reads and checks a service account key file. */
export function readServiceAccountKey(path: string): ServiceAccountKey {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (error) {
    throw failed(`cannot read credentials file ${path}: ${(error as NodeJS.ErrnoException).code}`);
  }
  if (size > KEY_FILE_BYTES_MAX)
    throw failed(`credentials file ${path} is ${size} bytes; at most ${KEY_FILE_BYTES_MAX}`);
  let key: Record<string, unknown>;
  try {
    key = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw failed(`credentials file ${path} is not JSON`);
  }
  if (key['type'] !== 'service_account') {
    throw failed(
      `credentials file ${path} is not a service account key (type "${String(key['type'])}")`,
    );
  }
  for (const field of ['client_email', 'private_key', 'token_uri']) {
    if (typeof key[field] !== 'string' || key[field] === '') {
      throw failed(`credentials file ${path} has no ${field}`);
    }
  }
  return key as unknown as ServiceAccountKey;
}

/** The OAuth error of a token endpoint's answer: `invalid_grant: Invalid JWT Signature.` */
function oauthError(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown; error_description?: unknown };
    if (typeof parsed.error === 'string') {
      return typeof parsed.error_description === 'string'
        ? `${parsed.error}: ${parsed.error_description}`
        : parsed.error;
    }
  } catch {
    // not JSON
  }
  return body.split('\n')[0] ?? '';
}

export class GceTokenSource {
  private readonly keyFile: string | undefined;
  private readonly ctx: ProviderContext;
  private readonly dispatcher: Dispatcher;
  private readonly timeoutMs: number;
  private key: ServiceAccountKey | undefined;
  private cached: { token: string; renewAtWallMs: number } | undefined;

  constructor(
    keyFile: string | undefined,
    ctx: ProviderContext,
    dispatcher: Dispatcher,
    timeoutMs: number,
  ) {
    this.keyFile = keyFile ?? (ctx.env['GOOGLE_APPLICATION_CREDENTIALS'] || undefined);
    this.ctx = ctx;
    this.dispatcher = dispatcher;
    this.timeoutMs = timeoutMs;
  }

  private serviceAccount(): ServiceAccountKey | undefined {
    if (this.keyFile === undefined) return undefined;
    this.key ??= readServiceAccountKey(this.keyFile);
    return this.key;
  }

  private metadataUrl(path: string): URL {
    const host = this.ctx.env['GCE_METADATA_HOST'] || METADATA_HOST_DEFAULT;
    return new URL(`http://${host}/computeMetadata/v1/${path}`);
  }

  private async metadataGet(path: string, signal: AbortSignal): Promise<string> {
    const url = this.metadataUrl(path);
    const response = await apiCall({
      provider: NAME,
      url,
      headers: { 'metadata-flavor': 'Google' },
      timeoutMs: this.timeoutMs,
      clock: this.ctx.clock,
      signal,
      dispatcher: this.dispatcher,
      bodyBytesMax: 64 * 1024,
    });
    if (response.status !== 200)
      throw apiFailed(NAME, response.status, `metadata ${path}: ${response.body}`);
    return response.body;
  }

  /** The project: the key file's, else the metadata server's. */
  async project(signal: AbortSignal): Promise<string> {
    const fromKey = this.serviceAccount()?.project_id;
    if (fromKey !== undefined && fromKey !== '') return fromKey;
    return (await this.metadataGet('project/project-id', signal)).trim();
  }

  async token(signal: AbortSignal): Promise<string> {
    if (this.cached !== undefined && this.ctx.clock.wallMs() < this.cached.renewAtWallMs) {
      return this.cached.token;
    }
    const key = this.serviceAccount();
    let body: string;
    let url: URL;
    if (key !== undefined) {
      url = new URL(key.token_uri);
      const assertion = signAssertion(
        key,
        COMPUTE_READONLY_SCOPE,
        Math.floor(this.ctx.clock.wallMs() / 1000),
      );
      const response = await apiCall({
        provider: NAME,
        url,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
          assertion,
        }).toString(),
        timeoutMs: this.timeoutMs,
        clock: this.ctx.clock,
        signal,
        dispatcher: this.dispatcher,
        bodyBytesMax: 64 * 1024,
      });
      if (response.status !== 200)
        throw apiFailed(NAME, response.status, `token: ${oauthError(response.body)}`);
      body = response.body;
    } else {
      url = this.metadataUrl('instance/service-accounts/default/token');
      body = await this.metadataGet('instance/service-accounts/default/token', signal);
    }
    const parsed = parseJsonBody(NAME, url, body) as {
      access_token?: unknown;
      expires_in?: unknown;
    };
    if (typeof parsed.access_token !== 'string' || parsed.access_token === '') {
      throw failed('the token answer has no access_token');
    }
    const lifetimeMs = typeof parsed.expires_in === 'number' ? parsed.expires_in * 1000 : 0;
    this.cached = {
      token: parsed.access_token,
      renewAtWallMs: this.ctx.clock.wallMs() + Math.max(0, lifetimeMs - TOKEN_REFRESH_MARGIN_MS),
    };
    return parsed.access_token;
  }
}
