/**
 * provider=aws against an EMULATED EC2 endpoint and instance metadata service
 * (test/helpers/emulated-aws.ts; no real AWS is reachable here). The emulated EC2 verifies
 * every SigV4 signature with its own code, so a request only succeeds when it is signed as AWS
 * requires. Every context turns IMDS off (AWS_EC2_METADATA_DISABLED) or points it at the
 * loopback emulator: the link-local default is never dialled.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { DiscoveredNode } from '../../src/core/discovery/provider.ts';
import { signV4 } from '../../src/core/discovery/providers/cloud/sigv4.ts';
import { ErrorCode } from '../../src/core/errors.ts';
import { discoverOnce, rejection, specChecks, testContext } from '../helpers/discovery-context.ts';
import {
  type EmulatedEc2,
  type EmulatedImds,
  startEmulatedEc2,
  startEmulatedImds,
} from '../helpers/emulated-aws.ts';

const KEY_ID = 'AKIDEMULATED0001';
const SECRET = 'emulated/secret+key0000000000000000000000';
let ec2: EmulatedEc2;
let imds: EmulatedImds;
let dir: string;

function envCreds(extra: Record<string, string> = {}) {
  return testContext({
    AWS_ACCESS_KEY_ID: KEY_ID,
    AWS_SECRET_ACCESS_KEY: SECRET,
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    ...extra,
  });
}

function discover(spec: string, ctx = envCreds()): Promise<DiscoveredNode[]> {
  return discoverOnce(spec, ctx);
}

const spec = (rest = '') =>
  `provider=aws tag_key=rdbnet-cluster tag_value="prod eu" endpoint=${ec2.url} ${rest}`;

before(async () => {
  ec2 = await startEmulatedEc2({ region: 'us-east-1' });
  imds = await startEmulatedImds({ region: 'us-east-1' });
  ec2.keys.set(KEY_ID, { secretAccessKey: SECRET });
  ec2.keys.set(imds.credentials.accessKeyId, {
    secretAccessKey: imds.credentials.secretAccessKey,
    sessionToken: imds.credentials.token,
  });
  ec2.instances.push(
    {
      instanceId: 'i-0000000000000001',
      state: 'running',
      privateIp: '127.0.0.31',
      publicIp: '127.0.1.31',
      ipv6: '::1',
      zone: 'us-east-1a',
      tags: { 'rdbnet-cluster': 'prod eu', Name: 'db-1' },
    },
    {
      instanceId: 'i-0000000000000002',
      state: 'running',
      privateIp: '127.0.0.32',
      zone: 'us-east-1b',
      tags: { 'rdbnet-cluster': 'prod eu' },
    },
    {
      instanceId: 'i-0000000000000003',
      state: 'stopped',
      privateIp: '127.0.0.33',
      tags: { 'rdbnet-cluster': 'prod eu' },
    },
    {
      instanceId: 'i-0000000000000004',
      state: 'running',
      privateIp: '127.0.0.34',
      tags: { 'rdbnet-cluster': 'staging' },
    },
  );
  dir = await mkdtemp(join(tmpdir(), 'rdbnet-aws-'));
});

after(async () => {
  await ec2?.close();
  await imds?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('provider=aws (emulated EC2 verifying SigV4)', () => {
  test('environment credentials: running instances with the tag, private IPv4 by default', async () => {
    const nodes = await discover(spec());
    assert.deepEqual(
      nodes.map((n) => n.address),
      ['127.0.0.31:7400', '127.0.0.32:7400'],
    );
    assert.equal(nodes[0]!.meta['instanceId'], 'i-0000000000000001');
    assert.equal(nodes[0]!.meta['zone'], 'us-east-1a');
    assert.equal(nodes[0]!.meta['name'], 'db-1');
    assert.equal(nodes[0]!.source, 'aws:us-east-1/i-0000000000000001');
    const query = new URLSearchParams(ec2.accepted.at(-1));
    assert.equal(query.get('Action'), 'DescribeInstances');
    assert.equal(query.get('Version'), '2016-11-15');
    assert.equal(query.get('Filter.1.Name'), 'tag:rdbnet-cluster');
    assert.equal(query.get('Filter.1.Value.1'), 'prod eu');
    assert.equal(query.get('Filter.2.Name'), 'instance-state-name');
    assert.equal(query.get('Filter.2.Value.1'), 'running');
  });

  test('addr_type public_v4 and private_v6 (bracketed), port=', async () => {
    assert.deepEqual(
      (await discover(spec('addr_type=public_v4 port=7500'))).map((n) => n.address),
      ['127.0.1.31:7500'],
    );
    assert.deepEqual(
      (await discover(spec('addr_type=private_v6'))).map((n) => n.address),
      ['[::1]:7400'],
    );
  });

  test('a wrong secret: SignatureDoesNotMatch from the API, RDB_DISCOVERY_FAILED', async () => {
    const error = await rejection(() =>
      discover(spec(), envCreds({ AWS_SECRET_ACCESS_KEY: 'not-the-secret' })),
    );
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(
      error.message,
      /^provider=aws: HTTP 403: SignatureDoesNotMatch: The request signature we calculated/,
    );
  });

  test('an unknown access key: AuthFailure (HTTP 401)', async () => {
    const error = await rejection(() =>
      discover(spec(), envCreds({ AWS_ACCESS_KEY_ID: 'AKIDUNKNOWN' })),
    );
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(
      error.message,
      /^provider=aws: HTTP 401: AuthFailure: AWS was not able to validate/,
    );
  });

  test('a request signed for another region is refused', async () => {
    const error = await rejection(() => discover(spec('region=eu-west-1')));
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(error.message, /SignatureDoesNotMatch: Credential should be scoped/);
  });

  test('the emulated EC2 rejects a request changed after signing (tampered filter value)', async () => {
    const url = new URL(ec2.url);
    url.search =
      'Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3Ardbnet-cluster&Filter.1.Value.1=prod';
    const signed = signV4(
      {
        method: 'GET',
        url,
        headers: {},
        body: '',
        region: 'us-east-1',
        service: 'ec2',
        nowMs: Date.now(),
      },
      { accessKeyId: KEY_ID, secretAccessKey: SECRET },
    );
    const honest = await request(url, { headers: signed.headers });
    assert.equal(honest.statusCode, 200);
    await honest.body.dump();
    const tampered = new URL(url);
    tampered.search = url.search.replace('Value.1=prod', 'Value.1=staging');
    const answer = await request(tampered, { headers: signed.headers });
    assert.equal(answer.statusCode, 403);
    assert.match(await answer.body.text(), /<Code>SignatureDoesNotMatch<\/Code>/);
  });

  test('a clock ten minutes off: RequestExpired (the signature carries the time)', async () => {
    const ctx = envCreds();
    const skewed = { ...ctx, clock: { ...ctx.clock, wallMs: () => Date.now() - 10 * 60_000 } };
    const error = await rejection(() => discover(spec(), skewed));
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(error.message, /^provider=aws: HTTP 400: RequestExpired: Request has expired\./);
  });

  test('NextToken pagination: 2500 matching instances in three pages', async () => {
    const big = await startEmulatedEc2({ region: 'us-east-1' });
    try {
      big.keys.set(KEY_ID, { secretAccessKey: SECRET });
      for (let i = 0; i < 2500; i++) {
        big.instances.push({
          instanceId: `i-${String(i).padStart(17, '0')}`,
          state: 'running',
          privateIp: `127.2.${i >> 8}.${i & 255}`,
          tags: { role: 'db' },
        });
      }
      const nodes = await discover(`provider=aws tag_key=role tag_value=db endpoint=${big.url}`);
      assert.equal(nodes.length, 2500);
      assert.equal(new Set(nodes.map((n) => n.address)).size, 2500);
      assert.equal(big.accepted.length, 3);
      assert.ok(new URLSearchParams(big.accepted[1]).get('NextToken'));
    } finally {
      await big.close();
    }
  });

  test('shared credentials file and config file for AWS_PROFILE (region from the profile)', async () => {
    const credentialsFile = join(dir, 'credentials');
    const configFile = join(dir, 'config');
    await writeFile(
      credentialsFile,
      `[default]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = wrong\n\n[ops]\naws_access_key_id = ${KEY_ID}\naws_secret_access_key = ${SECRET}\n`,
    );
    await writeFile(
      configFile,
      '[default]\nregion = eu-west-1\n\n[profile ops]\nregion = us-east-1\n',
    );
    const ctx = testContext({
      AWS_PROFILE: 'ops',
      AWS_SHARED_CREDENTIALS_FILE: credentialsFile,
      AWS_CONFIG_FILE: configFile,
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    assert.equal((await discover(spec(), ctx)).length, 2);
    const missing = await rejection(() =>
      discover(spec(), testContext({ ...ctx.env, AWS_PROFILE: 'absent', AWS_REGION: 'us-east-1' })),
    );
    assert.equal(missing.code, ErrorCode.DiscoveryFailed);
    assert.match(missing.message, /profile "absent" has no credentials/);
  });

  test('IMDSv2 instance role: region and temporary credentials from the (loopback) metadata service', async () => {
    const ctx = testContext({
      AWS_EC2_METADATA_DISABLED: 'false',
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
    });
    const nodes = await discover(spec(), ctx);
    assert.equal(nodes.length, 2);
    assert.ok(imds.requests.includes('PUT /latest/api/token'));
    assert.ok(
      imds.requests.includes(`GET /latest/meta-data/iam/security-credentials/${imds.role}`),
    );
  });

  test('temporary credentials without their session token are refused', async () => {
    const error = await rejection(() =>
      discover(
        spec(),
        envCreds({
          AWS_ACCESS_KEY_ID: imds.credentials.accessKeyId,
          AWS_SECRET_ACCESS_KEY: imds.credentials.secretAccessKey,
        }),
      ),
    );
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(error.message, /AuthFailure/);
    const nodes = await discover(
      spec(),
      envCreds({
        AWS_ACCESS_KEY_ID: imds.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: imds.credentials.secretAccessKey,
        AWS_SESSION_TOKEN: imds.credentials.token,
      }),
    );
    assert.equal(nodes.length, 2);
  });

  test('no credentials anywhere (IMDS off) fails saying where it looked', async () => {
    const error = await rejection(() =>
      discover(spec(), testContext({ AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' })),
    );
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(error.message, /^provider=aws: no credentials/);
  });

  test('an endpoint with nothing listening is RDB_DISCOVERY_UNREACHABLE', async () => {
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const error = await rejection(() =>
      discover(`provider=aws tag_key=a tag_value=b endpoint=http://127.0.0.1:${port}/`),
    );
    assert.equal(error.code, ErrorCode.DiscoveryUnreachable);
    assert.match(
      error.message,
      new RegExp(`^provider=aws: cannot reach http://127\\.0\\.0\\.1:${port}/`),
    );
  });
});

specChecks('aws', [
  ['provider=aws tag_key=a tag_value=b addr_type=elastic', 'addr_type'],
  ['provider=aws tag_key=a tag_value=b port=70000', 'port'],
  ['provider=aws tag_key=a tag_value=b region=EU_WEST', 'region'],
  ['provider=aws tag_key=a tag_value=b endpoint=ftp://127.0.0.1/', 'endpoint'],
  ['provider=aws tag_key=a tag_value=b access_key_id=AKID', 'secret_access_key'],
  ['provider=aws tag_key=a tag_value=b timeout=0', 'timeout'],
]);
