/**
 * `provider=gce`: running Compute Engine instances with a network tag and/or a label, in
 * zones matching a pattern, from compute v1 `instances.aggregatedList` (one paged call over
 * every zone, `filter` done by the API for status and label, re-checked here with the tag and
 * zone). Tokens come from a service account key or the metadata server (gce-auth.ts).
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
import { badValue, nameValue, oneOfValue, urlValue, valueOr } from '../values.ts';
import { PORT_KEY, portOf, TIMEOUT_KEY, timeoutMsOf } from './cloud/keys.ts';
import { GceTokenSource } from './gce-auth.ts';

const NAME = 'gce';
export const COMPUTE_ENDPOINT_DEFAULT = 'https://compute.googleapis.com/compute/v1/';
/** Instances asked for per page (`maxResults`, the API's maximum). */
export const PAGE_RESULTS_MAX = 500;
/** Pages read per lookup at most (pageToken); past it the lookup fails rather than loops. */
export const PAGES_MAX = 20;

const ADDRESS_TYPES = ['private_v4', 'public_v4'] as const;
type AddressType = (typeof ADDRESS_TYPES)[number];
const PROJECT = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[a-z0-9.-]+:[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;
const NETWORK_TAG = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface GceInstanceJson {
  name?: string;
  zone?: string;
  status?: string;
  tags?: { items?: string[] };
  labels?: Record<string, string>;
  networkInterfaces?: Array<{ networkIP?: string; accessConfigs?: Array<{ natIP?: string }> }>;
}

interface GceOptions {
  project: string | undefined;
  zonePattern: RegExp | undefined;
  tagValue: string | undefined;
  label: { key: string; value: string } | undefined;
  addressType: AddressType;
  port: number;
  endpoint: URL;
  credentialsFile: string | undefined;
  timeoutMs: number;
}

/** The API's `filter`: running instances, and the label when one is asked for. */
export function listFilter(label: { key: string; value: string } | undefined): string {
  const terms = ['status = "RUNNING"'];
  if (label !== undefined) terms.push(`labels.${label.key} = "${label.value}"`);
  return terms.map((t) => `(${t})`).join(' ');
}

/** Nodes from one aggregatedList page, checking status, tag, label and zone again here. */
export function nodesFromAggregated(
  page: { items?: Record<string, { instances?: GceInstanceJson[] }> },
  opts: Pick<GceOptions, 'zonePattern' | 'tagValue' | 'label' | 'addressType' | 'port'> & {
    project: string;
  },
): DiscoveredNode[] {
  const nodes: DiscoveredNode[] = [];
  for (const [scope, scoped] of Object.entries(page.items ?? {})) {
    const zone = scope.startsWith('zones/') ? scope.slice('zones/'.length) : scope;
    if (opts.zonePattern !== undefined && !opts.zonePattern.test(zone)) continue;
    for (const instance of scoped.instances ?? []) {
      if (instance.status !== 'RUNNING') continue;
      if (opts.tagValue !== undefined && !(instance.tags?.items ?? []).includes(opts.tagValue))
        continue;
      if (opts.label !== undefined && instance.labels?.[opts.label.key] !== opts.label.value)
        continue;
      const nic = instance.networkInterfaces?.[0];
      const host =
        opts.addressType === 'private_v4'
          ? nic?.networkIP
          : nic?.accessConfigs?.find((c) => c.natIP)?.natIP;
      if (host === undefined) continue;
      nodes.push({
        address: formatHostPort({ host, port: opts.port }),
        source: `gce:${opts.project}/${zone}/${instance.name ?? ''}`,
        meta: { project: opts.project, zone, instance: instance.name ?? '' },
      });
    }
  }
  return nodes;
}

/** `STATUS: message` of a Google API error body. */
function googleError(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown; status?: unknown } };
    if (typeof parsed.error?.message === 'string') {
      return typeof parsed.error.status === 'string'
        ? `${parsed.error.status}: ${parsed.error.message}`
        : parsed.error.message;
    }
  } catch {
    // not JSON
  }
  return body.split('\n')[0] ?? '';
}

class GceProvider implements DiscoveryProvider {
  readonly name = NAME;
  private readonly opts: GceOptions;
  private readonly ctx: ProviderContext;
  private readonly dispatcher: Dispatcher;
  private readonly tokens: GceTokenSource;

  constructor(opts: GceOptions, ctx: ProviderContext) {
    this.opts = opts;
    this.ctx = ctx;
    this.dispatcher = createAgent();
    this.tokens = new GceTokenSource(opts.credentialsFile, ctx, this.dispatcher, opts.timeoutMs);
  }

  async discover(signal: AbortSignal): Promise<DiscoveredNode[]> {
    const project = this.opts.project ?? (await this.tokens.project(signal));
    if (!PROJECT.test(project))
      throw badValue(NAME, 'project_name', `"${project}" is not a project id`);
    const token = await this.tokens.token(signal);
    const nodes: DiscoveredNode[] = [];
    let pageToken: string | undefined;
    const base = new URL(`projects/${project}/aggregated/instances`, this.opts.endpoint);
    for (let page = 0; page < PAGES_MAX; page++) {
      const url = new URL(base);
      url.searchParams.set('filter', listFilter(this.opts.label));
      url.searchParams.set('maxResults', String(PAGE_RESULTS_MAX));
      url.searchParams.set('returnPartialSuccess', 'true');
      if (pageToken !== undefined) url.searchParams.set('pageToken', pageToken);
      const response = await apiCall({
        provider: NAME,
        url,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        timeoutMs: this.opts.timeoutMs,
        clock: this.ctx.clock,
        signal,
        dispatcher: this.dispatcher,
      });
      if (response.status !== 200)
        throw apiFailed(NAME, response.status, googleError(response.body));
      const parsed = parseJsonBody(NAME, url, response.body) as {
        items?: Record<string, { instances?: GceInstanceJson[] }>;
        nextPageToken?: string;
        unreachables?: string[];
      };
      nodes.push(...nodesFromAggregated(parsed, { ...this.opts, project }));
      if ((parsed.unreachables ?? []).length > 0) {
        this.ctx.log(
          'warn',
          `provider=gce: zones not answering: ${parsed.unreachables!.join(', ')}`,
        );
      }
      pageToken = parsed.nextPageToken;
      if (pageToken === undefined || pageToken === '') return nodes;
    }
    throw new RdbnetError(
      ErrorCode.DiscoveryFailed,
      `provider=gce: more than ${PAGES_MAX} pages of ${PAGE_RESULTS_MAX} instances from ${endpointOf(base)}`,
    );
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

export const gceProvider: ProviderFactory = {
  name: NAME,
  summary: 'running Compute Engine instances by network tag or label, via instances.aggregatedList',
  example: 'provider=gce project_name=my-project zone_pattern=europe-west1-.* tag_value=rdbnet',
  keys: [
    {
      name: 'project_name',
      required: false,
      doc: "the project (default: the key file's project_id, else the metadata server's)",
    },
    {
      name: 'zone_pattern',
      required: false,
      doc: 'a regular expression the zone name must match (default: every zone)',
    },
    { name: 'tag_value', required: false, doc: 'a network tag the instances carry' },
    { name: 'label', required: false, doc: 'a label the instances carry, as key=value' },
    { name: 'addr_type', required: false, doc: 'private_v4 (default) or public_v4' },
    PORT_KEY,
    {
      name: 'credentials_file',
      required: false,
      doc: 'service account key JSON (default: GOOGLE_APPLICATION_CREDENTIALS, else the metadata server)',
    },
    {
      name: 'endpoint',
      required: false,
      doc: `compute API base URL (default ${COMPUTE_ENDPOINT_DEFAULT})`,
    },
    TIMEOUT_KEY,
  ],
  create(args, ctx) {
    const project = args.get('project_name');
    if (project !== undefined) nameValue(NAME, 'project_name', project, PROJECT, 'a project id');
    const tagValue = args.get('tag_value');
    if (tagValue !== undefined)
      nameValue(NAME, 'tag_value', tagValue, NETWORK_TAG, 'a network tag');
    const labelText = args.get('label');
    let label: GceOptions['label'];
    if (labelText !== undefined) {
      const eq = labelText.indexOf('=');
      const key = eq < 0 ? labelText : labelText.slice(0, eq);
      const value = eq < 0 ? '' : labelText.slice(eq + 1);
      if (eq < 0 || !LABEL_KEY.test(key) || !LABEL_VALUE.test(value)) {
        throw badValue(
          NAME,
          'label',
          `must be key=value with a label's characters, got "${labelText}"`,
        );
      }
      label = { key, value };
    }
    if (tagValue === undefined && label === undefined) {
      throw badValue(NAME, 'tag_value', 'or label is required (which instances are the nodes?)');
    }
    const patternText = args.get('zone_pattern');
    let zonePattern: RegExp | undefined;
    if (patternText !== undefined) {
      if (patternText.length > 256)
        throw badValue(NAME, 'zone_pattern', 'is longer than 256 characters');
      try {
        zonePattern = new RegExp(patternText);
      } catch (error) {
        throw badValue(
          NAME,
          'zone_pattern',
          `is not a regular expression: ${(error as Error).message}`,
        );
      }
    }
    const endpoint = urlValue(NAME, 'endpoint', args.get('endpoint') ?? COMPUTE_ENDPOINT_DEFAULT);
    // Paths resolve under the base: `.../compute/v1` means `.../compute/v1/`.
    if (!endpoint.pathname.endsWith('/')) endpoint.pathname += '/';
    return new GceProvider(
      {
        project,
        zonePattern,
        tagValue,
        label,
        addressType: valueOr(args.get('addr_type'), 'private_v4', (text) =>
          oneOfValue(NAME, 'addr_type', text, ADDRESS_TYPES),
        ),
        port: portOf(NAME, args),
        endpoint,
        credentialsFile: args.get('credentials_file'),
        timeoutMs: timeoutMsOf(NAME, args),
      },
      ctx,
    );
  },
};
