/**
 * Where provider=aws gets its credentials and region, in the order the AWS SDKs' default chain
 * uses: the spec's keys, the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN), the shared credentials and config files for a profile (AWS_PROFILE,
 * AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, ~/.aws/…), then the instance's role from the
 * EC2 instance metadata service (IMDSv2). IMDS is link-local 169.254.169.254 unless
 * AWS_EC2_METADATA_SERVICE_ENDPOINT moves it; AWS_EC2_METADATA_DISABLED=true turns it off.
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { apiCall } from '../http.ts';
import type { ProviderContext } from '../provider.ts';
import type { AwsCredentials } from './cloud/sigv4.ts';

/** The instance metadata service's documented address (link-local; never dialled by tests). */
export const IMDS_ENDPOINT_DEFAULT = 'http://169.254.169.254';
/** IMDS answers locally and fast; the SDKs wait about a second. */
export const IMDS_TIMEOUT_MS = 1_000;
/** IMDSv2 session token lifetime asked for (the documented maximum is 21600 s). */
export const IMDS_TOKEN_TTL_SECONDS = 21_600;
/** Role credentials are refreshed this long before they expire. */
export const CREDENTIALS_REFRESH_MARGIN_MS = 5 * 60_000;
/** A credentials or config file larger than this is refused. */
export const AWS_FILE_BYTES_MAX = 1024 * 1024;

const NAME = 'aws';

function failed(message: string): RdbnetError {
  return new RdbnetError(ErrorCode.DiscoveryFailed, `provider=aws: ${message}`);
}

/** INI sections of an AWS shared file: `[default]`, `[profile x]` (config), `[x]` (credentials). */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (header !== null) {
      current = new Map();
      sections.set(header[1] as string, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq > 0 && current !== undefined) {
      current.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
    }
  }
  return sections;
}

function readIni(path: string): Map<string, Map<string, string>> | undefined {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return undefined; // no such file: the chain goes on
  }
  if (size > AWS_FILE_BYTES_MAX)
    throw failed(`${path} is ${size} bytes; at most ${AWS_FILE_BYTES_MAX}`);
  return parseIni(readFileSync(path, 'utf8'));
}

export interface AwsSettings {
  /** From the spec's keys, when given. */
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  profile: string | undefined;
  region: string | undefined;
}

interface Files {
  credentials: Map<string, Map<string, string>> | undefined;
  config: Map<string, Map<string, string>> | undefined;
  profile: string;
  credentialsPath: string;
}

/** Resolves credentials and region lazily, caching role credentials until near expiry. */
export class AwsCredentialChain {
  private readonly settings: AwsSettings;
  private readonly ctx: ProviderContext;
  private readonly dispatcher: Dispatcher;
  private cached: { credentials: AwsCredentials; expiresWallMs: number } | undefined;

  constructor(settings: AwsSettings, ctx: ProviderContext, dispatcher: Dispatcher) {
    this.settings = settings;
    this.ctx = ctx;
    this.dispatcher = dispatcher;
  }

  private files(): Files {
    const env = this.ctx.env;
    const home = env['HOME'] ?? homedir();
    const profile = this.settings.profile ?? env['AWS_PROFILE'] ?? 'default';
    const credentialsPath = env['AWS_SHARED_CREDENTIALS_FILE'] ?? join(home, '.aws', 'credentials');
    const configPath = env['AWS_CONFIG_FILE'] ?? join(home, '.aws', 'config');
    return {
      credentials: readIni(credentialsPath),
      config: readIni(configPath),
      profile,
      credentialsPath,
    };
  }

  private static configSection(files: Files): Map<string, string> | undefined {
    return (
      files.config?.get(files.profile === 'default' ? 'default' : `profile ${files.profile}`) ??
      files.config?.get(files.profile)
    );
  }

  private imdsEndpoint(): URL | undefined {
    const env = this.ctx.env;
    if ((env['AWS_EC2_METADATA_DISABLED'] ?? '').toLowerCase() === 'true') return undefined;
    return new URL(env['AWS_EC2_METADATA_SERVICE_ENDPOINT'] ?? IMDS_ENDPOINT_DEFAULT);
  }

  async region(signal: AbortSignal): Promise<string> {
    const env = this.ctx.env;
    const region =
      this.settings.region ??
      env['AWS_REGION'] ??
      env['AWS_DEFAULT_REGION'] ??
      AwsCredentialChain.configSection(this.files())?.get('region');
    if (region !== undefined && region !== '') return region;
    const imds = this.imdsEndpoint();
    if (imds !== undefined) {
      const fromImds = await this.imdsGet(imds, '/latest/meta-data/placement/region', signal).catch(
        () => undefined,
      );
      if (fromImds !== undefined && /^[a-z0-9-]{1,32}$/.test(fromImds)) return fromImds;
    }
    throw failed('no region: give region=, or set AWS_REGION or a region in ~/.aws/config');
  }

  async credentials(signal: AbortSignal): Promise<AwsCredentials> {
    const { accessKeyId, secretAccessKey } = this.settings;
    if (accessKeyId !== undefined && secretAccessKey !== undefined) {
      return { accessKeyId, secretAccessKey };
    }
    const env = this.ctx.env;
    const envKey = env['AWS_ACCESS_KEY_ID'];
    const envSecret = env['AWS_SECRET_ACCESS_KEY'];
    if (envKey !== undefined && envKey !== '' && envSecret !== undefined && envSecret !== '') {
      const sessionToken = env['AWS_SESSION_TOKEN'];
      return {
        accessKeyId: envKey,
        secretAccessKey: envSecret,
        sessionToken: sessionToken === '' ? undefined : sessionToken,
      };
    }
    const files = this.files();
    for (const section of [
      files.credentials?.get(files.profile),
      AwsCredentialChain.configSection(files),
    ]) {
      const key = section?.get('aws_access_key_id');
      const secret = section?.get('aws_secret_access_key');
      if (key !== undefined && secret !== undefined) {
        return {
          accessKeyId: key,
          secretAccessKey: secret,
          sessionToken: section?.get('aws_session_token'),
        };
      }
    }
    const explicitProfile = this.settings.profile ?? env['AWS_PROFILE'];
    if (explicitProfile !== undefined) {
      throw failed(
        `profile "${explicitProfile}" has no credentials in ${files.credentialsPath} or the config file`,
      );
    }
    const imds = this.imdsEndpoint();
    if (imds === undefined) {
      throw failed(
        'no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials',
      );
    }
    if (this.cached !== undefined && this.ctx.clock.wallMs() < this.cached.expiresWallMs) {
      return this.cached.credentials;
    }
    return this.fromInstanceRole(imds, signal);
  }

  private async imdsToken(imds: URL, signal: AbortSignal): Promise<string> {
    const url = new URL('/latest/api/token', imds);
    const response = await apiCall({
      provider: NAME,
      url,
      method: 'PUT',
      headers: { 'x-aws-ec2-metadata-token-ttl-seconds': String(IMDS_TOKEN_TTL_SECONDS) },
      timeoutMs: IMDS_TIMEOUT_MS,
      clock: this.ctx.clock,
      signal,
      dispatcher: this.dispatcher,
      bodyBytesMax: 4096,
    });
    if (response.status !== 200) throw failed(`instance metadata token: HTTP ${response.status}`);
    return response.body.trim();
  }

  private async imdsGet(imds: URL, path: string, signal: AbortSignal): Promise<string> {
    const token = await this.imdsToken(imds, signal);
    const url = new URL(path, imds);
    const response = await apiCall({
      provider: NAME,
      url,
      headers: { 'x-aws-ec2-metadata-token': token },
      timeoutMs: IMDS_TIMEOUT_MS,
      clock: this.ctx.clock,
      signal,
      dispatcher: this.dispatcher,
      bodyBytesMax: 64 * 1024,
    });
    if (response.status !== 200) {
      throw failed(`instance metadata ${path}: HTTP ${response.status}`);
    }
    return response.body.trim();
  }

  private async fromInstanceRole(imds: URL, signal: AbortSignal): Promise<AwsCredentials> {
    let role: string;
    try {
      const roles = await this.imdsGet(imds, '/latest/meta-data/iam/security-credentials/', signal);
      role = roles.split('\n')[0]?.trim() ?? '';
    } catch (error) {
      if (signal.aborted) throw error;
      throw failed(
        `no credentials: none in the environment or ~/.aws, and the instance metadata service (${imds.origin}) gave no role: ${(error as Error).message}`,
      );
    }
    if (!/^[\w+=,.@-]{1,128}$/.test(role)) throw failed('instance metadata: no IAM role attached');
    const body = await this.imdsGet(
      imds,
      `/latest/meta-data/iam/security-credentials/${role}`,
      signal,
    );
    let parsed: {
      Code?: string;
      AccessKeyId?: string;
      SecretAccessKey?: string;
      Token?: string;
      Expiration?: string;
    };
    try {
      parsed = JSON.parse(body);
    } catch {
      throw failed(`instance metadata: role ${role} credentials are not JSON`);
    }
    if (
      parsed.Code !== 'Success' ||
      parsed.AccessKeyId === undefined ||
      parsed.SecretAccessKey === undefined
    ) {
      throw failed(`instance metadata: role ${role}: ${parsed.Code ?? 'no credentials'}`);
    }
    const credentials = {
      accessKeyId: parsed.AccessKeyId,
      secretAccessKey: parsed.SecretAccessKey,
      sessionToken: parsed.Token,
    };
    const expires = Date.parse(parsed.Expiration ?? '');
    this.cached = {
      credentials,
      expiresWallMs: Number.isFinite(expires)
        ? expires - CREDENTIALS_REFRESH_MARGIN_MS
        : this.ctx.clock.wallMs() + CREDENTIALS_REFRESH_MARGIN_MS,
    };
    return credentials;
  }
}
