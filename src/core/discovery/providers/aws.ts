/**
 * `provider=aws`: running EC2 instances carrying a tag, found with the EC2 Query API's
 * DescribeInstances (Version 2016-11-15) signed with SigV4, the XML answer read page by page
 * (NextToken). Credentials and region come from the standard chain (aws-credentials.ts).
 */

import type { Dispatcher } from 'undici';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { formatHostPort } from '../../transport/address.ts';
import { apiCall, apiFailed, createAgent, endpointOf } from '../http.ts';
import type {
  DiscoveredNode,
  DiscoveryProvider,
  ProviderContext,
  ProviderFactory,
} from '../provider.ts';
import { badValue, oneOfValue, urlValue, valueOr } from '../values.ts';
import { AwsCredentialChain } from './aws-credentials.ts';
import { PORT_KEY, portOf, TIMEOUT_KEY, timeoutMsOf } from './cloud/keys.ts';
import { signV4, uriEncode } from './cloud/sigv4.ts';
import { child, items, parseXml, textAt, type XmlElement, XmlError } from './cloud/xml.ts';

const NAME = 'aws';
export const EC2_API_VERSION = '2016-11-15';
/** Instances asked for per page (`MaxResults`, the API's maximum). */
export const PAGE_RESULTS_MAX = 1000;
/** Pages read per lookup at most (NextToken); past it the lookup fails rather than loops. */
export const PAGES_MAX = 20;

const ADDRESS_TYPES = ['private_v4', 'public_v4', 'private_v6'] as const;
type AddressType = (typeof ADDRESS_TYPES)[number];

interface AwsOptions {
  tagKey: string;
  tagValue: string;
  addressType: AddressType;
  port: number;
  endpoint: URL | undefined;
  timeoutMs: number;
}

/** The address of one `instancesSet/item` of the chosen kind, if it has one. */
function addressOf(instance: XmlElement, type: AddressType): string | undefined {
  if (type === 'private_v4') return textAt(instance, 'privateIpAddress');
  if (type === 'public_v4') return textAt(instance, 'ipAddress');
  for (const nic of items(instance, 'networkInterfaceSet')) {
    for (const v6 of items(nic, 'ipv6AddressesSet')) {
      const address = textAt(v6, 'ipv6Address');
      if (address !== undefined) return address;
    }
  }
  return undefined;
}

/** Nodes and the next page's token from one DescribeInstancesResponse document. */
export function parseDescribeInstances(
  document: XmlElement,
  opts: { addressType: AddressType; port: number; region: string },
): { nodes: DiscoveredNode[]; nextToken: string | undefined; skipped: number } {
  const nodes: DiscoveredNode[] = [];
  let skipped = 0;
  for (const reservation of items(document, 'reservationSet')) {
    for (const instance of items(reservation, 'instancesSet')) {
      const host = addressOf(instance, opts.addressType);
      const instanceId = textAt(instance, 'instanceId') ?? '';
      if (host === undefined) {
        skipped++;
        continue;
      }
      const meta: Record<string, string> = { instanceId, region: opts.region };
      const zone = textAt(instance, 'placement', 'availabilityZone');
      if (zone !== undefined) meta['zone'] = zone;
      const type = textAt(instance, 'instanceType');
      if (type !== undefined) meta['instanceType'] = type;
      for (const tag of items(instance, 'tagSet')) {
        if (textAt(tag, 'key') === 'Name') meta['name'] = textAt(tag, 'value') ?? '';
      }
      nodes.push({
        address: formatHostPort({ host, port: opts.port }),
        source: `aws:${opts.region}/${instanceId}`,
        meta,
      });
    }
  }
  return { nodes, nextToken: textAt(document, 'nextToken'), skipped };
}

/** `Code: Message` of an EC2 error document (`<Response><Errors><Error>…`). */
export function ec2ErrorMessage(body: string): string {
  try {
    const document = parseXml(body);
    const error = child(child(document, 'Errors'), 'Error') ?? child(document, 'Error');
    const code = textAt(error, 'Code');
    const message = textAt(error, 'Message');
    if (code !== undefined) return message === undefined ? code : `${code}: ${message}`;
  } catch {
    // not XML: the text itself
  }
  return body.split('\n')[0] ?? '';
}

class AwsProvider implements DiscoveryProvider {
  readonly name = NAME;
  private readonly opts: AwsOptions;
  private readonly ctx: ProviderContext;
  private readonly dispatcher: Dispatcher;
  private readonly chain: AwsCredentialChain;

  constructor(
    opts: AwsOptions,
    chain: (dispatcher: Dispatcher) => AwsCredentialChain,
    ctx: ProviderContext,
  ) {
    this.opts = opts;
    this.ctx = ctx;
    this.dispatcher = createAgent();
    this.chain = chain(this.dispatcher);
  }

  private endpoint(region: string): URL {
    if (this.opts.endpoint !== undefined) return this.opts.endpoint;
    const fromEnv = this.ctx.env['AWS_ENDPOINT_URL_EC2'];
    if (fromEnv !== undefined && fromEnv !== '')
      return urlValue(NAME, 'AWS_ENDPOINT_URL_EC2', fromEnv);
    return new URL(`https://ec2.${region}.amazonaws.com/`);
  }

  async discover(signal: AbortSignal): Promise<DiscoveredNode[]> {
    const region = await this.chain.region(signal);
    if (!/^[a-z0-9-]{1,32}$/.test(region))
      throw badValue(NAME, 'region', `"${region}" is not a region`);
    const credentials = await this.chain.credentials(signal);
    const base = this.endpoint(region);
    const nodes: DiscoveredNode[] = [];
    let skipped = 0;
    let nextToken: string | undefined;
    for (let page = 0; page < PAGES_MAX; page++) {
      const params: Array<[string, string]> = [
        ['Action', 'DescribeInstances'],
        ['Version', EC2_API_VERSION],
        ['Filter.1.Name', `tag:${this.opts.tagKey}`],
        ['Filter.1.Value.1', this.opts.tagValue],
        ['Filter.2.Name', 'instance-state-name'],
        ['Filter.2.Value.1', 'running'],
        ['MaxResults', String(PAGE_RESULTS_MAX)],
      ];
      if (nextToken !== undefined) params.push(['NextToken', nextToken]);
      // Encoded as SigV4 canonicalises (RFC 3986, %20 for a space), so the wire form is the
      // signed form whatever the server's reading of `+`.
      const url = new URL(base);
      url.search = params.map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`).join('&');
      const signed = signV4(
        {
          method: 'GET',
          url,
          headers: {},
          body: '',
          region,
          service: 'ec2',
          nowMs: this.ctx.clock.wallMs(),
        },
        credentials,
      );
      const response = await apiCall({
        provider: NAME,
        url,
        headers: signed.headers,
        timeoutMs: this.opts.timeoutMs,
        clock: this.ctx.clock,
        signal,
        dispatcher: this.dispatcher,
      });
      if (response.status !== 200) {
        throw apiFailed(NAME, response.status, ec2ErrorMessage(response.body));
      }
      let document: XmlElement;
      try {
        document = parseXml(response.body);
      } catch (error) {
        if (!(error instanceof XmlError)) throw error;
        throw new RdbnetError(
          ErrorCode.DiscoveryFailed,
          `provider=aws: ${endpointOf(url)} answered XML that does not parse: ${error.message}`,
        );
      }
      const parsed = parseDescribeInstances(document, {
        addressType: this.opts.addressType,
        port: this.opts.port,
        region,
      });
      nodes.push(...parsed.nodes);
      skipped += parsed.skipped;
      nextToken = parsed.nextToken;
      if (nextToken === undefined) {
        if (skipped > 0) {
          this.ctx.log(
            'info',
            `provider=aws: ${skipped} tagged instance(s) have no ${this.opts.addressType} address`,
          );
        }
        return nodes;
      }
    }
    throw new RdbnetError(
      ErrorCode.DiscoveryFailed,
      `provider=aws: more than ${PAGES_MAX} pages of ${PAGE_RESULTS_MAX} instances from ${endpointOf(base)}`,
    );
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

export const awsProvider: ProviderFactory = {
  name: NAME,
  summary: 'running EC2 instances with a tag, via DescribeInstances signed with SigV4',
  example: 'provider=aws region=eu-west-1 tag_key=rdbnet-cluster tag_value=prod',
  keys: [
    { name: 'tag_key', required: true, doc: 'the EC2 tag key the instances carry' },
    { name: 'tag_value', required: true, doc: 'the value of that tag' },
    {
      name: 'region',
      required: false,
      doc: 'AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile, instance metadata)',
    },
    {
      name: 'addr_type',
      required: false,
      doc: 'which address: private_v4 (default), public_v4 or private_v6',
    },
    PORT_KEY,
    {
      name: 'profile',
      required: false,
      doc: 'shared credentials/config profile (default: AWS_PROFILE, else default)',
    },
    {
      name: 'access_key_id',
      required: false,
      doc: 'static credentials (prefer the environment or a profile: a spec is often logged)',
    },
    { name: 'secret_access_key', required: false, doc: 'the secret of access_key_id' },
    {
      name: 'endpoint',
      required: false,
      doc: 'EC2 endpoint URL (default: AWS_ENDPOINT_URL_EC2, else https://ec2.REGION.amazonaws.com/)',
    },
    TIMEOUT_KEY,
  ],
  create(args, ctx) {
    const tagKey = args.get('tag_key')!;
    const tagValue = args.get('tag_value')!;
    if (tagKey.length > 128) throw badValue(NAME, 'tag_key', 'is longer than 128 characters');
    if (tagValue.length > 256) throw badValue(NAME, 'tag_value', 'is longer than 256 characters');
    const region = args.get('region');
    if (region !== undefined && !/^[a-z0-9-]{1,32}$/.test(region)) {
      throw badValue(NAME, 'region', `must look like eu-west-1, got "${region}"`);
    }
    const accessKeyId = args.get('access_key_id');
    const secretAccessKey = args.get('secret_access_key');
    if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
      throw badValue(
        NAME,
        accessKeyId === undefined ? 'access_key_id' : 'secret_access_key',
        'is required with the other (give both or neither)',
      );
    }
    const endpointText = args.get('endpoint');
    const opts: AwsOptions = {
      tagKey,
      tagValue,
      addressType: valueOr(args.get('addr_type'), 'private_v4', (text) =>
        oneOfValue(NAME, 'addr_type', text, ADDRESS_TYPES),
      ),
      port: portOf(NAME, args),
      endpoint: endpointText === undefined ? undefined : urlValue(NAME, 'endpoint', endpointText),
      timeoutMs: timeoutMsOf(NAME, args),
    };
    const settings = { accessKeyId, secretAccessKey, profile: args.get('profile'), region };
    return new AwsProvider(
      opts,
      (dispatcher) => new AwsCredentialChain(settings, ctx, dispatcher),
      ctx,
    );
  },
};
