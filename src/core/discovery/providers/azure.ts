/**
 * `provider=azure`: the private IPs of network interfaces, either those of a VM scale set
 * (Microsoft.Compute `virtualMachineScaleSets/NAME/networkInterfaces`) or every NIC of the
 * subscription (or one resource group) carrying a tag (Microsoft.Network
 * `networkInterfaces`), through Azure Resource Manager with a token from the Microsoft
 * identity platform's client-credentials grant (tenant, client id, client secret). Pages
 * follow `nextLink`, only on the ARM endpoint's own origin, so the token never leaves it.
 */

import type { Dispatcher } from 'undici';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { formatHostPort } from '../../transport/address.ts';
import { apiCall, apiFailed, createAgent, endpointOf, parseJsonBody } from '../http.ts';
import type {
  DiscoveredNode,
  DiscoveryProvider,
  ProviderContext,
  ProviderFactory,
} from '../provider.ts';
import { badValue, nameValue, urlValue } from '../values.ts';
import {
  PORT_KEY,
  portOf,
  TIMEOUT_KEY,
  TOKEN_REFRESH_MARGIN_MS,
  timeoutMsOf,
} from './cloud/keys.ts';

const NAME = 'azure';
export const ARM_ENDPOINT_DEFAULT = 'https://management.azure.com/';
export const LOGIN_ENDPOINT_DEFAULT = 'https://login.microsoftonline.com/';
/** The ARM scope of the client-credentials grant. */
export const ARM_SCOPE = 'https://management.azure.com/.default';
/** api-version of Microsoft.Compute VMSS network interfaces (the newest the API lists for it). */
export const VMSS_NIC_API_VERSION = '2018-10-01';
/** api-version of Microsoft.Network network interfaces. */
export const NETWORK_API_VERSION = '2023-09-01';
/** Pages read per lookup at most (nextLink); past it the lookup fails rather than loops. */
export const PAGES_MAX = 50;

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const TENANT = /^([0-9a-fA-F-]{36}|[A-Za-z0-9][A-Za-z0-9.-]{0,252})$/;
const RESOURCE_GROUP = /^[-\w.()]{0,89}[-\w()]$/;
const SCALE_SET = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface NicJson {
  name?: string;
  id?: string;
  tags?: Record<string, string>;
  properties?: {
    primary?: boolean;
    virtualMachine?: { id?: string };
    ipConfigurations?: Array<{
      name?: string;
      properties?: { privateIPAddress?: string; primary?: boolean };
    }>;
  };
}

type Selection =
  | { kind: 'scale-set'; resourceGroup: string; scaleSet: string }
  | { kind: 'tag'; resourceGroup: string | undefined; tagName: string; tagValue: string };

interface AzureOptions {
  subscriptionId: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  selection: Selection;
  port: number;
  armEndpoint: URL;
  loginEndpoint: URL;
  timeoutMs: number;
}

/** The list URL of the selection's first page. */
export function firstPageUrl(arm: URL, subscriptionId: string, selection: Selection): URL {
  const sub = `subscriptions/${subscriptionId}`;
  const url =
    selection.kind === 'scale-set'
      ? new URL(
          `${sub}/resourceGroups/${selection.resourceGroup}/providers/Microsoft.Compute/virtualMachineScaleSets/${selection.scaleSet}/networkInterfaces`,
          arm,
        )
      : new URL(
          `${sub}${selection.resourceGroup === undefined ? '' : `/resourceGroups/${selection.resourceGroup}`}/providers/Microsoft.Network/networkInterfaces`,
          arm,
        );
  url.searchParams.set(
    'api-version',
    selection.kind === 'scale-set' ? VMSS_NIC_API_VERSION : NETWORK_API_VERSION,
  );
  return url;
}

/** Nodes from NICs: the primary IP configuration's private address (tag checked here). */
export function nodesFromNics(
  nics: readonly NicJson[],
  selection: Selection,
  port: number,
): DiscoveredNode[] {
  const nodes: DiscoveredNode[] = [];
  for (const nic of nics) {
    if (selection.kind === 'tag' && nic.tags?.[selection.tagName] !== selection.tagValue) continue;
    const configs = nic.properties?.ipConfigurations ?? [];
    const config = configs.find((c) => c.properties?.primary === true) ?? configs[0];
    const host = config?.properties?.privateIPAddress;
    if (host === undefined || host === '') continue;
    const meta: Record<string, string> = { nic: nic.name ?? '' };
    const vm = nic.properties?.virtualMachine?.id;
    if (vm !== undefined) meta['vm'] = vm.slice(vm.lastIndexOf('/') + 1);
    const group = /\/resourceGroups\/([^/]+)\//i.exec(nic.id ?? '')?.[1];
    if (group !== undefined) meta['resourceGroup'] = group;
    nodes.push({
      address: formatHostPort({ host, port }),
      source: `azure:${selection.kind === 'scale-set' ? `vmss/${selection.scaleSet}` : `tag/${selection.tagName}=${selection.tagValue}`}`,
      meta,
    });
  }
  return nodes;
}

function armError(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    if (typeof parsed.error?.code === 'string') {
      return typeof parsed.error.message === 'string'
        ? `${parsed.error.code}: ${parsed.error.message}`
        : parsed.error.code;
    }
  } catch {
    // not JSON
  }
  return body.split('\n')[0] ?? '';
}

function oauthError(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown; error_description?: unknown };
    if (typeof parsed.error === 'string') {
      const description =
        typeof parsed.error_description === 'string'
          ? parsed.error_description.split(/\r?\n/)[0]
          : undefined;
      return description === undefined ? parsed.error : `${parsed.error}: ${description}`;
    }
  } catch {
    // not JSON
  }
  return body.split('\n')[0] ?? '';
}

class AzureProvider implements DiscoveryProvider {
  readonly name = NAME;
  private readonly opts: AzureOptions;
  private readonly ctx: ProviderContext;
  private readonly dispatcher: Dispatcher;
  private cached: { token: string; renewAtWallMs: number } | undefined;

  constructor(opts: AzureOptions, ctx: ProviderContext) {
    this.opts = opts;
    this.ctx = ctx;
    this.dispatcher = createAgent();
  }

  private async token(signal: AbortSignal): Promise<string> {
    if (this.cached !== undefined && this.ctx.clock.wallMs() < this.cached.renewAtWallMs) {
      return this.cached.token;
    }
    const url = new URL(`${this.opts.tenantId}/oauth2/v2.0/token`, this.opts.loginEndpoint);
    const response = await apiCall({
      provider: NAME,
      url,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: this.opts.clientId,
        client_secret: this.opts.clientSecret,
        scope: ARM_SCOPE,
      }).toString(),
      timeoutMs: this.opts.timeoutMs,
      clock: this.ctx.clock,
      signal,
      dispatcher: this.dispatcher,
      bodyBytesMax: 64 * 1024,
    });
    if (response.status !== 200) {
      throw apiFailed(NAME, response.status, `token: ${oauthError(response.body)}`);
    }
    const parsed = parseJsonBody(NAME, url, response.body) as {
      access_token?: unknown;
      expires_in?: unknown;
    };
    if (typeof parsed.access_token !== 'string' || parsed.access_token === '') {
      throw new RdbnetError(
        ErrorCode.DiscoveryFailed,
        'provider=azure: the token answer has no access_token',
      );
    }
    const seconds = Number(parsed.expires_in);
    this.cached = {
      token: parsed.access_token,
      renewAtWallMs:
        this.ctx.clock.wallMs() +
        Math.max(0, (Number.isFinite(seconds) ? seconds * 1000 : 0) - TOKEN_REFRESH_MARGIN_MS),
    };
    return parsed.access_token;
  }

  async discover(signal: AbortSignal): Promise<DiscoveredNode[]> {
    const token = await this.token(signal);
    const nodes: DiscoveredNode[] = [];
    let url: URL | undefined = firstPageUrl(
      this.opts.armEndpoint,
      this.opts.subscriptionId,
      this.opts.selection,
    );
    for (let page = 0; page < PAGES_MAX && url !== undefined; page++) {
      const response = await apiCall({
        provider: NAME,
        url,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        timeoutMs: this.opts.timeoutMs,
        clock: this.ctx.clock,
        signal,
        dispatcher: this.dispatcher,
      });
      if (response.status !== 200) throw apiFailed(NAME, response.status, armError(response.body));
      const parsed = parseJsonBody(NAME, url, response.body) as {
        value?: NicJson[];
        nextLink?: string | null;
      };
      nodes.push(...nodesFromNics(parsed.value ?? [], this.opts.selection, this.opts.port));
      url = this.nextPage(parsed.nextLink);
    }
    if (url !== undefined) {
      throw new RdbnetError(
        ErrorCode.DiscoveryFailed,
        `provider=azure: more than ${PAGES_MAX} pages from ${endpointOf(url)}`,
      );
    }
    return nodes;
  }

  /** The next page, refusing a link off the ARM endpoint's origin (it would get our token). */
  private nextPage(link: string | null | undefined): URL | undefined {
    if (link === undefined || link === null || link === '') return undefined;
    let next: URL;
    try {
      next = new URL(link);
    } catch {
      throw new RdbnetError(
        ErrorCode.DiscoveryFailed,
        `provider=azure: nextLink "${link.slice(0, 200)}" is not a URL`,
      );
    }
    if (next.origin !== this.opts.armEndpoint.origin) {
      throw new RdbnetError(
        ErrorCode.DiscoveryFailed,
        `provider=azure: nextLink points off ${this.opts.armEndpoint.origin} (${next.origin}); not followed`,
      );
    }
    return next;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

function endpointKey(args: ReadonlyMap<string, string>, key: string, fallback: string): URL {
  const url = urlValue(NAME, key, args.get(key) ?? fallback);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

export const azureProvider: ProviderFactory = {
  name: NAME,
  summary:
    "private IPs of a VM scale set's NICs, or of NICs with a tag, via Azure Resource Manager",
  example:
    'provider=azure subscription_id=SUB resource_group=db vm_scale_set=rdbnet tenant_id=TENANT client_id=APP secret_access_key=SECRET',
  keys: [
    { name: 'subscription_id', required: true, doc: 'the subscription (a GUID)' },
    {
      name: 'resource_group',
      required: false,
      doc: "the scale set's resource group; with tags, limits the search to it",
    },
    { name: 'vm_scale_set', required: false, doc: 'the VM scale set whose NICs are the nodes' },
    { name: 'tag_name', required: false, doc: 'a tag the NICs carry (instead of vm_scale_set)' },
    { name: 'tag_value', required: false, doc: 'the value of tag_name' },
    {
      name: 'tenant_id',
      required: false,
      doc: 'the directory (tenant) id (default: AZURE_TENANT_ID)',
    },
    {
      name: 'client_id',
      required: false,
      doc: 'the application (client) id (default: AZURE_CLIENT_ID)',
    },
    {
      name: 'secret_access_key',
      required: false,
      doc: 'the client secret (default: AZURE_CLIENT_SECRET; prefer it: a spec is often logged)',
    },
    PORT_KEY,
    {
      name: 'endpoint',
      required: false,
      doc: `Resource Manager URL (default ${ARM_ENDPOINT_DEFAULT})`,
    },
    {
      name: 'login_endpoint',
      required: false,
      doc: `identity platform URL (default ${LOGIN_ENDPOINT_DEFAULT})`,
    },
    TIMEOUT_KEY,
  ],
  create(args, ctx) {
    const subscriptionId = nameValue(
      NAME,
      'subscription_id',
      args.get('subscription_id')!,
      GUID,
      'a GUID',
    );
    const fromEnv = (key: string, env: string): string | undefined => {
      const value = args.get(key) ?? ctx.env[env];
      return value === '' ? undefined : value;
    };
    const tenantId = fromEnv('tenant_id', 'AZURE_TENANT_ID');
    const clientId = fromEnv('client_id', 'AZURE_CLIENT_ID');
    const clientSecret = fromEnv('secret_access_key', 'AZURE_CLIENT_SECRET');
    if (tenantId === undefined)
      throw badValue(NAME, 'tenant_id', 'is required (or AZURE_TENANT_ID)');
    if (clientId === undefined)
      throw badValue(NAME, 'client_id', 'is required (or AZURE_CLIENT_ID)');
    if (clientSecret === undefined) {
      throw badValue(NAME, 'secret_access_key', 'is required (or AZURE_CLIENT_SECRET)');
    }
    nameValue(NAME, 'tenant_id', tenantId, TENANT, 'a tenant GUID or domain');
    nameValue(NAME, 'client_id', clientId, GUID, 'a GUID');
    const resourceGroup = args.get('resource_group');
    if (resourceGroup !== undefined) {
      nameValue(NAME, 'resource_group', resourceGroup, RESOURCE_GROUP, 'a resource group name');
    }
    const scaleSet = args.get('vm_scale_set');
    const tagName = args.get('tag_name');
    const tagValue = args.get('tag_value');
    let selection: Selection;
    if (scaleSet !== undefined) {
      if (tagName !== undefined || tagValue !== undefined) {
        throw badValue(NAME, 'vm_scale_set', 'and tag_name/tag_value exclude each other');
      }
      if (resourceGroup === undefined) {
        throw badValue(NAME, 'resource_group', 'is required with vm_scale_set');
      }
      nameValue(NAME, 'vm_scale_set', scaleSet, SCALE_SET, 'a scale set name');
      selection = { kind: 'scale-set', resourceGroup, scaleSet };
    } else if (tagName !== undefined || tagValue !== undefined) {
      if (tagName === undefined) throw badValue(NAME, 'tag_name', 'is required with tag_value');
      if (tagValue === undefined) throw badValue(NAME, 'tag_value', 'is required with tag_name');
      if (tagName.length > 512) throw badValue(NAME, 'tag_name', 'is longer than 512 characters');
      if (tagValue.length > 256) throw badValue(NAME, 'tag_value', 'is longer than 256 characters');
      selection = { kind: 'tag', resourceGroup, tagName, tagValue };
    } else {
      throw badValue(NAME, 'vm_scale_set', 'or tag_name and tag_value are required (which NICs?)');
    }
    return new AzureProvider(
      {
        subscriptionId,
        tenantId,
        clientId,
        clientSecret,
        selection,
        port: portOf(NAME, args),
        armEndpoint: endpointKey(args, 'endpoint', ARM_ENDPOINT_DEFAULT),
        loginEndpoint: endpointKey(args, 'login_endpoint', LOGIN_ENDPOINT_DEFAULT),
        timeoutMs: timeoutMsOf(NAME, args),
      },
      ctx,
    );
  },
};
