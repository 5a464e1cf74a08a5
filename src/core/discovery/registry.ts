/**
 * The providers this build knows, by name. Each provider lives in providers/NAME.ts and
 * exports one ProviderFactory; adding one is one import and one line here.
 */

import type { DiscoveryProvider, ProviderContext, ProviderFactory } from './provider.ts';
import { awsProvider } from './providers/aws.ts';
import { azureProvider } from './providers/azure.ts';
import { broadcastProvider } from './providers/broadcast.ts';
import { consulProvider } from './providers/consul.ts';
import { dnsProvider } from './providers/dns.ts';
import { etcdProvider } from './providers/etcd.ts';
import { gceProvider } from './providers/gce.ts';
import { k8sProvider } from './providers/k8s.ts';
import { mdnsProvider } from './providers/mdns.ts';
import { staticProvider } from './providers/static.ts';
import { type DiscoverySpec, parseSpec } from './spec.ts';

const FACTORIES: readonly ProviderFactory[] = [
  staticProvider,
  dnsProvider,
  etcdProvider,
  consulProvider,
  k8sProvider,
  awsProvider,
  gceProvider,
  azureProvider,
  mdnsProvider,
  broadcastProvider,
];

export const PROVIDERS: ReadonlyMap<string, ProviderFactory> = new Map(
  FACTORIES.map((factory) => [factory.name, factory]),
);

/** Parses, checks and builds: a bad spec throws RDB_DISCOVERY_SYNTAX before any I/O. */
export function openProvider(
  text: string,
  ctx: ProviderContext,
): { spec: DiscoverySpec; provider: DiscoveryProvider } {
  const { spec, factory } = parseSpec(text, PROVIDERS);
  return { spec, provider: factory.create(spec.args, ctx) };
}
