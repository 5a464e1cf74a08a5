/**
 * An EMULATED EC2 Query API endpoint and an EMULATED instance metadata service (IMDSv2): no
 * real AWS can be reached from here. Built from AWS's documentation, with its own SigV4
 * verifier (written apart from src/…/sigv4.ts, so a mistake in one is not mirrored by the
 * other): the Authorization header is parsed, the access key looked up, the credential scope
 * (day, region, service "ec2") and X-Amz-Date freshness (±5 min) checked, the session token
 * required where the key has one, and the signature recomputed from the request as received
 * (method, path, query, the signed headers' raw values, the body). Failures answer with EC2's
 * error document (`<Response><Errors><Error><Code>…`) and its status codes.
 * DescribeInstances honours `tag:KEY` and `instance-state-name` filters, MaxResults and
 * NextToken.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EmulatedInstance {
  instanceId: string;
  state: 'pending' | 'running' | 'stopping' | 'stopped' | 'terminated';
  privateIp?: string;
  publicIp?: string;
  ipv6?: string;
  zone?: string;
  tags: Record<string, string>;
}

export interface EmulatedKey {
  secretAccessKey: string;
  sessionToken?: string;
}

export interface EmulatedEc2 {
  url: string;
  region: string;
  /** Access key id → secret (and session token, for temporary credentials). */
  keys: Map<string, EmulatedKey>;
  instances: EmulatedInstance[];
  /** Query strings of DescribeInstances requests that passed authentication. */
  accepted: string[];
  /** Error codes answered, in order. */
  refused: string[];
  close(): Promise<void>;
}

const FIVE_MINUTES_MS = 5 * 60_000;

function enc(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function errorXml(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  refused: string[],
): void {
  refused.push(code);
  res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error></Errors><RequestID>${randomBytes(8).toString('hex')}</RequestID></Response>`,
  );
}

/** Recomputes a SigV4 signature from a received request; returns an EC2 error or undefined. */
function verify(
  req: IncomingMessage,
  body: string,
  region: string,
  keys: Map<string, EmulatedKey>,
): { status: number; code: string; message: string } | undefined {
  const auth = req.headers.authorization;
  if (auth === undefined) {
    return {
      status: 401,
      code: 'MissingAuthenticationToken',
      message: 'Request is missing Authentication Token',
    };
  }
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/,]+)\/(\d{8})\/([^/,]+)\/([^/,]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
  if (m === null) {
    return {
      status: 400,
      code: 'IncompleteSignature',
      message: `Authorization header is malformed: ${auth}`,
    };
  }
  const [, accessKeyId, day, scopeRegion, service, signedHeaders, signature] =
    m as unknown as string[];
  const key = keys.get(accessKeyId!);
  if (key === undefined) {
    return {
      status: 401,
      code: 'AuthFailure',
      message: 'AWS was not able to validate the provided access credentials',
    };
  }
  if (scopeRegion !== region || service !== 'ec2') {
    return {
      status: 403,
      code: 'SignatureDoesNotMatch',
      message: `Credential should be scoped to a valid region and service, not '${scopeRegion}/${service}'.`,
    };
  }
  const names = signedHeaders!.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) {
    return {
      status: 403,
      code: 'SignatureDoesNotMatch',
      message: 'host and x-amz-date must be signed',
    };
  }
  const stamp = String(req.headers['x-amz-date'] ?? '');
  const parsed = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(stamp);
  if (parsed === null || stamp.slice(0, 8) !== day) {
    return {
      status: 400,
      code: 'IncompleteSignature',
      message: 'X-Amz-Date is missing or does not match the scope',
    };
  }
  const [, y, mo, d, h, mi, s] = parsed.map(Number) as number[];
  const at = Date.UTC(y!, mo! - 1, d!, h!, mi!, s!);
  if (Math.abs(Date.now() - at) > FIVE_MINUTES_MS) {
    return { status: 400, code: 'RequestExpired', message: 'Request has expired.' };
  }
  if (key.sessionToken !== undefined) {
    if (
      req.headers['x-amz-security-token'] !== key.sessionToken ||
      !names.includes('x-amz-security-token')
    ) {
      return {
        status: 401,
        code: 'AuthFailure',
        message: 'AWS was not able to validate the provided access credentials',
      };
    }
  }
  // The canonical request, from the request as it arrived.
  const target = req.url ?? '/';
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const rawQuery = q < 0 ? '' : target.slice(q + 1);
  const canonicalPath = path.split('/').map(enc).join('/');
  const query = rawQuery
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      const k = decodeURIComponent(eq < 0 ? p : p.slice(0, eq));
      const v = decodeURIComponent(eq < 0 ? '' : p.slice(eq + 1));
      return `${enc(k)}=${enc(v)}`;
    })
    .sort()
    .join('&');
  const raw = req.rawHeaders;
  const headerLines = names.map((name) => {
    const values: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!.trim().replace(/\s+/g, ' '));
    }
    return `${name}:${values.join(',')}\n`;
  });
  const canonical = [
    req.method,
    canonicalPath,
    query,
    headerLines.join(''),
    signedHeaders,
    createHash('sha256').update(body).digest('hex'),
  ].join('\n');
  const scope = `${day}/${region}/ec2/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${stamp}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
  let signingKey: Buffer = createHmac('sha256', `AWS4${key.secretAccessKey}`).update(day!).digest();
  for (const part of [region, 'ec2', 'aws4_request']) {
    signingKey = createHmac('sha256', signingKey).update(part).digest();
  }
  const expected = createHmac('sha256', signingKey).update(toSign).digest();
  if (!timingSafeEqual(expected, Buffer.from(signature!, 'hex'))) {
    return {
      status: 403,
      code: 'SignatureDoesNotMatch',
      message:
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
    };
  }
  return undefined;
}

function instanceXml(i: EmulatedInstance): string {
  const code = { pending: 0, running: 16, stopping: 64, stopped: 80, terminated: 48 }[i.state];
  const tags = Object.entries(i.tags)
    .map(([k, v]) => `<item><key>${xmlEscape(k)}</key><value>${xmlEscape(v)}</value></item>`)
    .join('');
  const v6 =
    i.ipv6 === undefined
      ? ''
      : `<ipv6AddressesSet><item><ipv6Address>${i.ipv6}</ipv6Address></item></ipv6AddressesSet>`;
  return [
    '<item>',
    `<instanceId>${i.instanceId}</instanceId>`,
    '<imageId>ami-0123456789abcdef0</imageId>',
    `<instanceState><code>${code}</code><name>${i.state}</name></instanceState>`,
    i.privateIp === undefined ? '' : `<privateIpAddress>${i.privateIp}</privateIpAddress>`,
    i.publicIp === undefined ? '' : `<ipAddress>${i.publicIp}</ipAddress>`,
    '<instanceType>t3.micro</instanceType>',
    `<placement><availabilityZone>${i.zone ?? 'us-east-1a'}</availabilityZone><tenancy>default</tenancy></placement>`,
    `<networkInterfaceSet><item><networkInterfaceId>eni-${i.instanceId.slice(2)}</networkInterfaceId>`,
    i.privateIp === undefined ? '' : `<privateIpAddress>${i.privateIp}</privateIpAddress>`,
    `${v6}</item></networkInterfaceSet>`,
    `<tagSet>${tags}</tagSet>`,
    '</item>',
  ].join('');
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startEmulatedEc2(opts: { region?: string } = {}): Promise<EmulatedEc2> {
  const region = opts.region ?? 'us-east-1';
  const keys = new Map<string, EmulatedKey>();
  const instances: EmulatedInstance[] = [];
  const accepted: string[] = [];
  const refused: string[] = [];

  const server: Server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const failure = verify(req, body, region, keys);
      if (failure !== undefined) {
        errorXml(res, failure.status, failure.code, failure.message, refused);
        return;
      }
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const params = url.searchParams;
      const action = params.get('Action');
      if (action !== 'DescribeInstances') {
        errorXml(
          res,
          400,
          'InvalidAction',
          `The action ${action} is not valid for this web service.`,
          refused,
        );
        return;
      }
      if (params.get('Version') === null) {
        errorXml(
          res,
          400,
          'MissingParameter',
          'The request must contain the parameter Version',
          refused,
        );
        return;
      }
      const filters: Array<{ name: string; values: string[] }> = [];
      for (let n = 1; params.has(`Filter.${n}.Name`); n++) {
        const values: string[] = [];
        for (let v = 1; params.has(`Filter.${n}.Value.${v}`); v++)
          values.push(params.get(`Filter.${n}.Value.${v}`)!);
        filters.push({ name: params.get(`Filter.${n}.Name`)!, values });
      }
      for (const f of filters) {
        if (!f.name.startsWith('tag:') && f.name !== 'instance-state-name') {
          errorXml(res, 400, 'InvalidParameterValue', `The filter '${f.name}' is invalid`, refused);
          return;
        }
      }
      const max = Number(params.get('MaxResults') ?? 1000);
      if (!(max >= 5 && max <= 1000)) {
        errorXml(
          res,
          400,
          'InvalidParameterValue',
          `Value ( ${max} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`,
          refused,
        );
        return;
      }
      accepted.push(url.search);
      const matching = instances.filter((i) =>
        filters.every((f) =>
          f.name === 'instance-state-name'
            ? f.values.includes(i.state)
            : f.values.includes(i.tags[f.name.slice(4)] ?? '\u0000'),
        ),
      );
      const start = Number(Buffer.from(params.get('NextToken') ?? '', 'base64').toString() || 0);
      const page = matching.slice(start, start + max);
      const next =
        start + max < matching.length
          ? Buffer.from(String(start + max)).toString('base64')
          : undefined;
      // Two instances per reservation, as a launch of several instances makes.
      const reservations: string[] = [];
      for (let r = 0; r < page.length; r += 2) {
        reservations.push(
          `<item><reservationId>r-${String(start + r).padStart(8, '0')}</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet>${page
            .slice(r, r + 2)
            .map(instanceXml)
            .join('')}</instancesSet></item>`,
        );
      }
      res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${randomBytes(8).toString('hex')}</requestId><reservationSet>${reservations.join('')}</reservationSet>${next === undefined ? '' : `<nextToken>${next}</nextToken>`}</DescribeInstancesResponse>`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    region,
    keys,
    instances,
    accepted,
    refused,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface EmulatedImds {
  url: string;
  role: string;
  credentials: { accessKeyId: string; secretAccessKey: string; token: string };
  /** Paths asked for, with the method. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * IMDSv2 as documented: `PUT /latest/api/token` with X-aws-ec2-metadata-token-ttl-seconds
 * (1..21600) gives a session token, every GET must carry it (401 otherwise).
 */
export async function startEmulatedImds(opts: {
  region: string;
  role?: string;
}): Promise<EmulatedImds> {
  const role = opts.role ?? 'rdbnet-node';
  const session = randomBytes(16).toString('base64');
  const credentials = {
    accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(20).toString('base64'),
    token: randomBytes(32).toString('base64'),
  };
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!(ttl >= 1 && ttl <= 21600)) {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(session);
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== session) {
      res.writeHead(401).end();
      return;
    }
    const body: Record<string, string> = {
      '/latest/meta-data/placement/region': opts.region,
      '/latest/meta-data/iam/security-credentials/': role,
      [`/latest/meta-data/iam/security-credentials/${role}`]: JSON.stringify({
        Code: 'Success',
        LastUpdated: new Date().toISOString(),
        Type: 'AWS-HMAC',
        AccessKeyId: credentials.accessKeyId,
        SecretAccessKey: credentials.secretAccessKey,
        Token: credentials.token,
        Expiration: new Date(Date.now() + 6 * 3600_000).toISOString(),
      }),
    };
    const answer = body[req.url ?? ''];
    if (answer === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    role,
    credentials,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
