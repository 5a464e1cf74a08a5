/**
 * AWS Signature Version 4 (header form), as AWS documents it ("Create a signed AWS API
 * request"): canonical request → string to sign → HMAC-SHA256 chain from the secret → the
 * Authorization header. Pure: the time is a parameter, so the published test-suite vectors
 * (aws-sig-v4-test-suite, 2015-08-30T12:36:00Z) check it exactly.
 */
import { createHash, createHmac } from 'node:crypto';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials (STS, IMDS, SSO) carry one; sent as X-Amz-Security-Token. */
  sessionToken?: string | undefined;
}

export interface SignInput {
  method: string;
  url: URL;
  /** Headers to send and sign (any case); `host` and `x-amz-date` are added here. */
  headers: Record<string, string>;
  body: string;
  region: string;
  service: string;
  /** Wall-clock milliseconds of the signature. */
  nowMs: number;
}

export interface Signed {
  /** Every header to send: the input's plus host, x-amz-date, [x-amz-security-token], authorization. */
  headers: Record<string, string>;
  canonicalRequest: string;
  stringToSign: string;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** RFC 3986 encoding: everything but A-Z a-z 0-9 - _ . ~ is %XX (upper-case hex). */
export function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** `20150830T123600Z` */
export function amzDate(nowMs: number): string {
  return new Date(nowMs)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

/**
 * The path with each segment encoded (again, for every service but S3: AWS's rule for
 * non-S3 services; a path of unreserved characters, like EC2's `/`, is unchanged by it).
 */
function canonicalUri(url: URL): string {
  const path = url.pathname === '' ? '/' : url.pathname;
  return path
    .split('/')
    .map((segment) => uriEncode(segment))
    .join('/');
}

/** Query pairs decoded, re-encoded per RFC 3986, sorted by key then value. */
export function canonicalQuery(url: URL): string {
  const raw = url.search.startsWith('?') ? url.search.slice(1) : url.search;
  if (raw === '') return '';
  const pairs = raw
    .split('&')
    .filter((part) => part !== '')
    .map((part) => {
      const eq = part.indexOf('=');
      const key = eq < 0 ? part : part.slice(0, eq);
      const value = eq < 0 ? '' : part.slice(eq + 1);
      const decode = (s: string): string => decodeURIComponent(s.replace(/\+/g, '%20'));
      return [uriEncode(decode(key)), uriEncode(decode(value))] as const;
    });
  pairs.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function trimValue(value: string): string {
  return value.trim().replace(/\s+/g, ' ');
}

/** Signs a request: returns the headers to send (the input's, plus AWS's) and the steps. */
export function signV4(input: SignInput, credentials: AwsCredentials): Signed {
  const date = amzDate(input.nowMs);
  const day = date.slice(0, 8);
  const headers: Record<string, string> = { ...input.headers };
  const has = (name: string): boolean =>
    Object.keys(headers).some((key) => key.toLowerCase() === name);
  if (!has('host')) headers['host'] = input.url.host;
  headers['x-amz-date'] = date;
  if (credentials.sessionToken !== undefined && !has('x-amz-security-token')) {
    headers['x-amz-security-token'] = credentials.sessionToken;
  }
  const byName = new Map<string, string[]>();
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    byName.set(lower, [...(byName.get(lower) ?? []), trimValue(value)]);
  }
  const names = [...byName.keys()].sort();
  const canonicalHeaders = names.map((n) => `${n}:${byName.get(n)!.join(',')}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = [
    input.method.toUpperCase(),
    canonicalUri(input.url),
    canonicalQuery(input.url),
    canonicalHeaders,
    signedHeaders,
    sha256Hex(input.body),
  ].join('\n');
  const scope = `${day}/${input.region}/${input.service}/aws4_request`;
  const stringToSign = [ALGORITHM, date, scope, sha256Hex(canonicalRequest)].join('\n');
  const key = hmac(
    hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), input.region), input.service),
    'aws4_request',
  );
  const signature = createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
  headers['authorization'] =
    `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return { headers, canonicalRequest, stringToSign };
}
