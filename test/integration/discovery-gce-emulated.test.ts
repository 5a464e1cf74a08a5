/**
 * provider=gce against EMULATED Google endpoints (test/helpers/emulated-gce.ts; no real Google
 * API is reachable here): a service account key's JWT grant (RS256 verified by the emulated
 * token endpoint), the metadata server's token, aggregatedList with filter and pages, auth
 * failures and an unreachable endpoint. The metadata host is always the loopback emulator.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DiscoveredNode } from '../../src/core/discovery/provider.ts';
import { ErrorCode } from '../../src/core/errors.ts';
import { discoverOnce, rejection, specChecks, testContext } from '../helpers/discovery-context.ts';
import { type EmulatedGce, startEmulatedGce } from '../helpers/emulated-gce.ts';

let gce: EmulatedGce;
let dir: string;
let keyFile: string;

function discover(
  spec: string,
  ctx = testContext({ GCE_METADATA_HOST: gce.metadataHost }),
): Promise<DiscoveredNode[]> {
  return discoverOnce(spec, ctx);
}

before(async () => {
  gce = await startEmulatedGce();
  gce.instances.push(
    {
      name: 'db-1',
      zone: 'europe-west1-b',
      status: 'RUNNING',
      networkIP: '127.0.0.51',
      natIP: '127.0.1.51',
      tags: ['rdbnet'],
      labels: { cluster: 'prod' },
    },
    {
      name: 'db-2',
      zone: 'europe-west1-c',
      status: 'RUNNING',
      networkIP: '127.0.0.52',
      tags: ['rdbnet'],
      labels: { cluster: 'prod' },
    },
    {
      name: 'db-3',
      zone: 'us-central1-a',
      status: 'RUNNING',
      networkIP: '127.0.0.53',
      tags: ['rdbnet'],
      labels: { cluster: 'prod' },
    },
    {
      name: 'db-4',
      zone: 'europe-west1-b',
      status: 'TERMINATED',
      networkIP: '127.0.0.54',
      tags: ['rdbnet'],
      labels: { cluster: 'prod' },
    },
    {
      name: 'web-1',
      zone: 'europe-west1-b',
      status: 'RUNNING',
      networkIP: '127.0.0.55',
      tags: ['http'],
      labels: { cluster: 'staging' },
    },
  );
  dir = await mkdtemp(join(tmpdir(), 'rdbnet-gce-'));
  keyFile = join(dir, 'key.json');
  await writeFile(keyFile, JSON.stringify(gce.serviceAccountKey()));
});

after(async () => {
  await gce?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('provider=gce (emulated token, metadata and compute endpoints)', () => {
  test('service account key: JWT grant, running instances with the tag in matching zones', async () => {
    const nodes = await discover(
      `provider=gce project_name=${gce.project} zone_pattern=^europe-west1- tag_value=rdbnet credentials_file=${keyFile} endpoint=${gce.computeUrl}`,
    );
    assert.deepEqual(nodes.map((n) => n.address).sort(), ['127.0.0.51:7400', '127.0.0.52:7400']);
    const first = nodes.find((n) => n.meta['instance'] === 'db-1')!;
    assert.equal(first.meta['zone'], 'europe-west1-b');
    assert.equal(first.source, `gce:${gce.project}/europe-west1-b/db-1`);
    assert.deepEqual(gce.grants.slice(-1), ['jwt-bearer']);
    assert.equal(new URLSearchParams(gce.listed.at(-1)).get('filter'), '(status = "RUNNING")');
  });

  test('label filter (sent to the API), public_v4, project from the key file', async () => {
    const nodes = await discover(
      `provider=gce label=cluster=prod addr_type=public_v4 port=7600 credentials_file=${keyFile} endpoint=${gce.computeUrl}`,
    );
    assert.deepEqual(
      nodes.map((n) => n.address),
      ['127.0.1.51:7600'],
    );
    const filter = new URLSearchParams(gce.listed.at(-1)).get('filter');
    assert.equal(filter, '(status = "RUNNING") (labels.cluster = "prod")');
  });

  test('GOOGLE_APPLICATION_CREDENTIALS names the key file', async () => {
    const nodes = await discover(
      `provider=gce tag_value=rdbnet endpoint=${gce.computeUrl}`,
      testContext({ GOOGLE_APPLICATION_CREDENTIALS: keyFile, GCE_METADATA_HOST: '127.0.0.1:9' }),
    );
    assert.equal(nodes.length, 3);
  });

  test('metadata server: project and token from it (Metadata-Flavor: Google)', async () => {
    const before = gce.grants.length;
    const nodes = await discover(`provider=gce tag_value=rdbnet endpoint=${gce.computeUrl}`);
    assert.equal(nodes.length, 3);
    assert.deepEqual(gce.grants.slice(before), ['metadata']);
  });

  test('a key whose private key the token endpoint does not know: invalid_grant, RDB_DISCOVERY_FAILED', async () => {
    const forged = join(dir, 'forged.json');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(
      forged,
      JSON.stringify({
        ...gce.serviceAccountKey(),
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      }),
    );
    const error = await rejection(() =>
      discover(
        `provider=gce tag_value=rdbnet credentials_file=${forged} endpoint=${gce.computeUrl}`,
      ),
    );
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(
      error.message,
      /^provider=gce: HTTP 400: token: invalid_grant: Invalid JWT Signature\./,
    );
  });

  test('a project the credentials cannot see: the API message', async () => {
    const error = await rejection(() =>
      discover(
        `provider=gce project_name=other-project tag_value=rdbnet credentials_file=${keyFile} endpoint=${gce.computeUrl}`,
      ),
    );
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(
      error.message,
      /HTTP 404: NOT_FOUND: The resource 'projects\/other-project' was not found/,
    );
  });

  test('pages: 1200 instances over three pages of 500', async () => {
    const big = await startEmulatedGce({ project: 'rdbnet-big' });
    try {
      for (let i = 0; i < 1200; i++) {
        big.instances.push({
          name: `n-${i}`,
          zone: big.zones[i % 3]!,
          status: 'RUNNING',
          networkIP: `127.3.${i >> 8}.${i & 255}`,
          tags: ['rdbnet'],
        });
      }
      const bigKey = join(dir, 'big.json');
      await writeFile(bigKey, JSON.stringify(big.serviceAccountKey()));
      const nodes = await discover(
        `provider=gce tag_value=rdbnet credentials_file=${bigKey} endpoint=${big.computeUrl}`,
      );
      assert.equal(nodes.length, 1200);
      assert.equal(big.listed.length, 3);
      assert.equal(big.grants.length, 1, 'one token for all pages');
    } finally {
      await big.close();
    }
  });

  test('nothing listening at the compute endpoint: RDB_DISCOVERY_UNREACHABLE', async () => {
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const error = await rejection(() =>
      discover(
        `provider=gce project_name=${gce.project} tag_value=rdbnet endpoint=http://127.0.0.1:${port}/compute/v1`,
      ),
    );
    assert.equal(error.code, ErrorCode.DiscoveryUnreachable);
    assert.match(
      error.message,
      new RegExp(`^provider=gce: cannot reach http://127\\.0\\.0\\.1:${port}/compute/v1/projects/`),
    );
  });
});

specChecks('gce', [
  ['provider=gce project_name=my-project', 'tag_value'],
  ['provider=gce tag_value=Bad_Tag', 'tag_value'],
  ['provider=gce tag_value=rdbnet zone_pattern=(', 'zone_pattern'],
  ['provider=gce label=novalue', 'label'],
  ['provider=gce tag_value=rdbnet project_name=UPPER', 'project_name'],
  ['provider=gce tag_value=rdbnet addr_type=private_v6', 'addr_type'],
]);
