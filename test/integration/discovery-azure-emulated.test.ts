/**
 * provider=azure against EMULATED Azure endpoints (test/helpers/emulated-azure.ts; no real
 * Azure is reachable here): the client-credentials token, VMSS NICs, NICs by tag (in a
 * subscription or one resource group), nextLink pages, AADSTS and ARM errors, a nextLink
 * off the ARM origin refused, and an unreachable endpoint.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DiscoveredNode } from '../../src/core/discovery/provider.ts';
import { ErrorCode } from '../../src/core/errors.ts';
import { discoverOnce, rejection, specChecks, testContext } from '../helpers/discovery-context.ts';
import { type EmulatedAzure, startEmulatedAzure } from '../helpers/emulated-azure.ts';

let azure: EmulatedAzure;

function spec(
  selection: string,
  credentials?: { secret?: string; client?: string; tenant?: string },
): string {
  return [
    'provider=azure',
    `subscription_id=${azure.subscriptionId}`,
    selection,
    `tenant_id=${credentials?.tenant ?? azure.tenantId}`,
    `client_id=${credentials?.client ?? azure.clientId}`,
    `secret_access_key=${credentials?.secret ?? azure.clientSecret}`,
    `endpoint=${azure.url}/`,
    `login_endpoint=${azure.url}/`,
  ].join(' ');
}

function discover(text: string, ctx = testContext()): Promise<DiscoveredNode[]> {
  return discoverOnce(text, ctx);
}

before(async () => {
  azure = await startEmulatedAzure();
  azure.nics.push(
    {
      name: 'vmss-nic-0',
      resourceGroup: 'db-rg',
      scaleSet: 'rdbnet',
      vm: '0',
      privateIp: '127.0.0.61',
    },
    {
      name: 'vmss-nic-1',
      resourceGroup: 'db-rg',
      scaleSet: 'rdbnet',
      vm: '1',
      privateIp: '127.0.0.62',
    },
    {
      name: 'vmss-nic-2',
      resourceGroup: 'db-rg',
      scaleSet: 'web',
      vm: '0',
      privateIp: '127.0.0.63',
    },
    {
      name: 'tagged-a',
      resourceGroup: 'db-rg',
      vm: 'db-a',
      privateIp: '127.0.0.64',
      tags: { rdbnet: 'prod' },
    },
    {
      name: 'tagged-b',
      resourceGroup: 'other-rg',
      vm: 'db-b',
      privateIp: '::1',
      tags: { rdbnet: 'prod' },
    },
    {
      name: 'tagged-c',
      resourceGroup: 'other-rg',
      vm: 'db-c',
      privateIp: '127.0.0.66',
      tags: { rdbnet: 'test' },
    },
  );
});

after(async () => {
  await azure?.close();
});

describe('provider=azure (emulated identity platform and Resource Manager)', () => {
  test('VM scale set: the private IPs of its NICs', async () => {
    const nodes = await discover(spec('resource_group=db-rg vm_scale_set=rdbnet'));
    assert.deepEqual(
      nodes.map((n) => n.address),
      ['127.0.0.61:7400', '127.0.0.62:7400'],
    );
    assert.equal(nodes[0]!.meta['vm'], '0');
    assert.equal(nodes[0]!.meta['resourceGroup'], 'db-rg');
    assert.equal(nodes[0]!.source, 'azure:vmss/rdbnet');
    assert.match(
      azure.armRequests.at(-1)!,
      /virtualMachineScaleSets\/rdbnet\/networkInterfaces\?api-version=2018-10-01$/,
    );
  });

  test('NICs by tag across the subscription, or in one resource group; IPv6 bracketed', async () => {
    const all = await discover(spec('tag_name=rdbnet tag_value=prod port=7700'));
    assert.deepEqual(
      all.map((n) => n.address),
      ['127.0.0.64:7700', '[::1]:7700'],
    );
    const inGroup = await discover(spec('resource_group=other-rg tag_name=rdbnet tag_value=prod'));
    assert.deepEqual(
      inGroup.map((n) => n.address),
      ['[::1]:7400'],
    );
  });

  test('credentials from AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET', async () => {
    const nodes = await discover(
      `provider=azure subscription_id=${azure.subscriptionId} resource_group=db-rg vm_scale_set=rdbnet endpoint=${azure.url} login_endpoint=${azure.url}`,
      testContext({
        AZURE_TENANT_ID: azure.tenantId,
        AZURE_CLIENT_ID: azure.clientId,
        AZURE_CLIENT_SECRET: azure.clientSecret,
      }),
    );
    assert.equal(nodes.length, 2);
  });

  test('nextLink pages are followed (one token for all of them)', async () => {
    azure.pageSize = 2;
    const tokensBefore = azure.tokensIssued;
    const requestsBefore = azure.armRequests.length;
    try {
      const nodes = await discover(spec('tag_name=rdbnet tag_value=prod'));
      assert.equal(nodes.length, 2);
      assert.equal(azure.armRequests.length - requestsBefore, 3, '6 NICs, 2 a page');
      assert.equal(azure.tokensIssued - tokensBefore, 1);
    } finally {
      azure.pageSize = 1000;
    }
  });

  test('a nextLink off the Resource Manager origin is not followed (the token stays home)', async () => {
    azure.pageSize = 2;
    azure.nextLinkOrigin = 'http://127.0.0.2:9';
    try {
      const error = await rejection(() => discover(spec('tag_name=rdbnet tag_value=prod')));
      assert.equal(error.code, ErrorCode.DiscoveryFailed);
      assert.match(
        error.message,
        /nextLink points off http:\/\/127\.0\.0\.1:\d+ \(http:\/\/127\.0\.0\.2:9\); not followed/,
      );
    } finally {
      azure.pageSize = 1000;
      azure.nextLinkOrigin = undefined;
    }
  });

  test('a wrong client secret: the AADSTS error, RDB_DISCOVERY_FAILED', async () => {
    const error = await rejection(() =>
      discover(spec('resource_group=db-rg vm_scale_set=rdbnet', { secret: 'wrong' })),
    );
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(
      error.message,
      /^provider=azure: HTTP 401: token: invalid_client: AADSTS7000215: Invalid client secret provided\./,
    );
    assert.doesNotMatch(error.message, /Trace ID/);
  });

  test('an unknown scale set: the ARM error', async () => {
    const error = await rejection(() => discover(spec('resource_group=db-rg vm_scale_set=nope')));
    assert.equal(error.code, ErrorCode.DiscoveryFailed);
    assert.match(
      error.message,
      /^provider=azure: HTTP 404: ResourceNotFound: The Resource 'Microsoft\.Compute\/virtualMachineScaleSets\/nope'/,
    );
  });

  test('nothing listening at the login endpoint: RDB_DISCOVERY_UNREACHABLE', async () => {
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const error = await rejection(() =>
      discover(
        spec('resource_group=db-rg vm_scale_set=rdbnet').replace(
          /login_endpoint=\S+/,
          `login_endpoint=http://127.0.0.1:${port}`,
        ),
      ),
    );
    assert.equal(error.code, ErrorCode.DiscoveryUnreachable);
    assert.match(
      error.message,
      new RegExp(
        `^provider=azure: cannot reach http://127\\.0\\.0\\.1:${port}/${azure.tenantId}/oauth2/v2\\.0/token`,
      ),
    );
  });
});

const SPEC_SUB = '00000000-0000-0000-0000-000000000001';
const SPEC_CREDS = `tenant_id=${SPEC_SUB} client_id=${SPEC_SUB} secret_access_key=s`;
specChecks(
  'azure',
  [
    [
      `provider=azure subscription_id=not-a-guid vm_scale_set=x resource_group=g ${SPEC_CREDS}`,
      'subscription_id',
    ],
    [`provider=azure subscription_id=${SPEC_SUB} vm_scale_set=x ${SPEC_CREDS}`, 'resource_group'],
    [`provider=azure subscription_id=${SPEC_SUB} tag_name=x ${SPEC_CREDS}`, 'tag_value'],
    [`provider=azure subscription_id=${SPEC_SUB} ${SPEC_CREDS}`, 'vm_scale_set'],
    [
      `provider=azure subscription_id=${SPEC_SUB} vm_scale_set=x resource_group=g tag_name=a tag_value=b ${SPEC_CREDS}`,
      'vm_scale_set',
    ],
    [`provider=azure subscription_id=${SPEC_SUB} vm_scale_set=x resource_group=g`, 'tenant_id'],
    [
      `provider=azure subscription_id=${SPEC_SUB} vm_scale_set=x resource_group=g tenant_id=${SPEC_SUB} client_id=nope secret_access_key=s`,
      'client_id',
    ],
    [
      `provider=azure subscription_id=${SPEC_SUB} vm_scale_set=x resource_group=g ${SPEC_CREDS} endpoint=127.0.0.1`,
      'endpoint',
    ],
  ],
  (spec) => `${spec.slice(15, 90)}…`,
);
