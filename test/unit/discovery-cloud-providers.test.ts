/**
 * Pure parts of provider=k8s, gce and azure: turning API objects into nodes (readiness,
 * ports, tags, labels, zones, primary IP configurations), the requests they build, and the
 * gce JWT assertion checked with the public key and the claims Google's token endpoint reads.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, verify } from 'node:crypto';
import { describe, test } from 'node:test';
import { firstPageUrl, nodesFromNics } from '../../src/core/discovery/providers/azure.ts';
import { listFilter, nodesFromAggregated } from '../../src/core/discovery/providers/gce.ts';
import { signAssertion } from '../../src/core/discovery/providers/gce-auth.ts';
import { nodesFromSlices, slicePort } from '../../src/core/discovery/providers/k8s.ts';

describe('k8s EndpointSlices → nodes', () => {
  test('ready true and unset count, false does not; duplicates across slices collapse', () => {
    const slice = (name: string, ready: Array<boolean | undefined>, base: number) => ({
      metadata: { name },
      ports: [{ name: 'rdbnet', port: 7400, protocol: 'TCP' }],
      endpoints: ready.map((r, i) => ({
        addresses: [`127.0.0.${base + i}`],
        ...(r === undefined ? {} : { conditions: { ready: r } }),
      })),
    });
    const nodes = nodesFromSlices(
      [slice('a', [true, false, undefined], 1), slice('b', [true], 1)],
      {
        namespace: 'ns',
        service: 'svc',
        portName: undefined,
      },
    );
    assert.deepEqual(
      nodes.map((n) => n.address),
      ['127.0.0.1:7400', '127.0.0.3:7400'],
    );
  });

  test('port choice: named, only, the one named rdbnet, UDP ignored', () => {
    const ports = (list: Array<{ name?: string; port: number; protocol?: string }>) => ({
      ports: list,
    });
    assert.equal(
      slicePort(
        ports([
          { name: 'a', port: 1 },
          { name: 'b', port: 2 },
        ]),
        'b',
      ),
      2,
    );
    assert.equal(slicePort(ports([{ port: 9 }]), undefined), 9);
    assert.equal(
      slicePort(
        ports([
          { name: 'x', port: 1 },
          { name: 'rdbnet', port: 2 },
        ]),
        undefined,
      ),
      2,
    );
    assert.equal(
      slicePort(
        ports([
          { name: 'x', port: 1 },
          { name: 'y', port: 2 },
        ]),
        undefined,
      ),
      undefined,
    );
    assert.equal(
      slicePort(ports([{ name: 'rdbnet', port: 5, protocol: 'UDP' }]), 'rdbnet'),
      undefined,
    );
  });
});

describe('gce', () => {
  test('filter: running, and the label when asked', () => {
    assert.equal(listFilter(undefined), '(status = "RUNNING")');
    assert.equal(
      listFilter({ key: 'env', value: 'prod' }),
      '(status = "RUNNING") (labels.env = "prod")',
    );
  });

  test('aggregated page: zone pattern, status, tag, label, address kind; warnings skipped', () => {
    const page = {
      items: {
        'zones/europe-west1-b': {
          instances: [
            {
              name: 'a',
              status: 'RUNNING',
              tags: { items: ['rdbnet'] },
              networkInterfaces: [
                { networkIP: '127.0.0.1', accessConfigs: [{ natIP: '127.0.1.1' }] },
              ],
            },
            {
              name: 'b',
              status: 'STOPPING',
              tags: { items: ['rdbnet'] },
              networkInterfaces: [{ networkIP: '127.0.0.2' }],
            },
            {
              name: 'c',
              status: 'RUNNING',
              tags: { items: ['web'] },
              networkInterfaces: [{ networkIP: '127.0.0.3' }],
            },
            {
              name: 'd',
              status: 'RUNNING',
              tags: { items: ['rdbnet'] },
              networkInterfaces: [{ networkIP: '127.0.0.4' }],
            },
          ],
        },
        'zones/us-east1-b': {
          instances: [
            {
              name: 'e',
              status: 'RUNNING',
              tags: { items: ['rdbnet'] },
              networkInterfaces: [{ networkIP: '127.0.0.5' }],
            },
          ],
        },
        'zones/asia-east1-a': { warning: { code: 'NO_RESULTS_ON_PAGE' } } as { instances?: never },
      },
    };
    const base = {
      zonePattern: /^europe-/,
      tagValue: 'rdbnet',
      label: undefined,
      port: 7400,
      project: 'p',
    };
    assert.deepEqual(
      nodesFromAggregated(page, { ...base, addressType: 'private_v4' }).map((n) => n.address),
      ['127.0.0.1:7400', '127.0.0.4:7400'],
    );
    assert.deepEqual(
      nodesFromAggregated(page, { ...base, addressType: 'public_v4' }).map((n) => n.address),
      ['127.0.1.1:7400'],
    );
  });

  test('JWT assertion: RS256 over header.claims, verifiable with the public key, claims as Google reads them', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwt = signAssertion(
      {
        client_email: 'sa@p.iam.gserviceaccount.com',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        private_key_id: 'kid-1',
        token_uri: 'https://oauth2.googleapis.com/token',
      },
      'https://www.googleapis.com/auth/compute.readonly',
      1_700_000_000,
    );
    const [h, c, s] = jwt.split('.') as [string, string, string];
    assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url').toString()), {
      alg: 'RS256',
      typ: 'JWT',
      kid: 'kid-1',
    });
    assert.deepEqual(JSON.parse(Buffer.from(c, 'base64url').toString()), {
      iss: 'sa@p.iam.gserviceaccount.com',
      scope: 'https://www.googleapis.com/auth/compute.readonly',
      aud: 'https://oauth2.googleapis.com/token',
      iat: 1_700_000_000,
      exp: 1_700_003_600,
    });
    assert.ok(
      verify('RSA-SHA256', Buffer.from(`${h}.${c}`), publicKey, Buffer.from(s, 'base64url')),
    );
    assert.ok(
      !verify('RSA-SHA256', Buffer.from(`${h}.${c}x`), publicKey, Buffer.from(s, 'base64url')),
    );
  });
});

describe('azure', () => {
  test('list URLs: VMSS NICs (Microsoft.Compute) and NICs of a subscription or group', () => {
    const arm = new URL('https://management.azure.com/');
    assert.equal(
      firstPageUrl(arm, 'SUB', {
        kind: 'scale-set',
        resourceGroup: 'rg',
        scaleSet: 'ss',
      }).toString(),
      'https://management.azure.com/subscriptions/SUB/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/networkInterfaces?api-version=2018-10-01',
    );
    assert.equal(
      firstPageUrl(arm, 'SUB', {
        kind: 'tag',
        resourceGroup: undefined,
        tagName: 't',
        tagValue: 'v',
      }).toString(),
      'https://management.azure.com/subscriptions/SUB/providers/Microsoft.Network/networkInterfaces?api-version=2023-09-01',
    );
  });

  test('NICs: the primary IP configuration, tag checked, NICs without an address skipped', () => {
    const nic = (
      name: string,
      tags: Record<string, string>,
      configs: Array<[string, boolean]>,
    ) => ({
      name,
      id: `/subscriptions/S/resourceGroups/rg-1/providers/Microsoft.Network/networkInterfaces/${name}`,
      tags,
      properties: {
        ipConfigurations: configs.map(([ip, primary]) => ({
          properties: { privateIPAddress: ip, primary },
        })),
      },
    });
    const nodes = nodesFromNics(
      [
        nic('a', { role: 'db' }, [
          ['127.0.0.8', false],
          ['127.0.0.9', true],
        ]),
        nic('b', { role: 'web' }, [['127.0.0.10', true]]),
        nic('c', { role: 'db' }, []),
      ],
      { kind: 'tag', resourceGroup: undefined, tagName: 'role', tagValue: 'db' },
      7400,
    );
    assert.deepEqual(
      nodes.map((n) => n.address),
      ['127.0.0.9:7400'],
    );
    assert.equal(nodes[0]!.meta['resourceGroup'], 'rg-1');
  });
});

test('every cloud provider is registered and its README example parses with its own keys', async () => {
  const { PROVIDERS } = await import('../../src/core/discovery/registry.ts');
  const { parseSpec } = await import('../../src/core/discovery/spec.ts');
  for (const name of ['k8s', 'aws', 'gce', 'azure']) {
    const factory = PROVIDERS.get(name);
    assert.ok(factory !== undefined, `${name} is registered`);
    assert.equal(parseSpec(factory.example, PROVIDERS).spec.provider, name);
  }
});
