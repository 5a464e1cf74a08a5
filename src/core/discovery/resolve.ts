/**
 * One discovery operation over several entries, each a spec (`provider=dns name=...`) or
 * plain addresses (`127.0.0.1:7001,127.0.0.1:7002`), as `rdbnet discover` and
 * `node start --retry-join` take them: every entry checked before any lookup, every lookup
 * bounded, and the answers merged (de-duplicated by address, first one wins).
 */
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import type { DiscoveredNode, DiscoveryProvider, ProviderContext } from './provider.ts';
import { openProvider } from './registry.ts';
import { isSpec } from './spec.ts';
import { addressListValue, DISCOVERED_NODES_MAX } from './values.ts';

/** Entries one command or node takes (specs and address lists together). */
export const DISCOVERY_ENTRIES_MAX = 32;
/** One lookup of one entry may take at most this long, whatever the provider's own timeout. */
export const DISCOVERY_LOOKUP_DEADLINE_MS = 30_000;

/** One entry, ready to ask. */
export interface DiscoverySource {
  /** The provider name, or `addresses` for plain addresses. */
  provider: string;
  /** The entry as given, for logs. */
  text: string;
  instance: DiscoveryProvider;
}

/** Plain addresses as a source, so the rest of the code sees one kind of thing. */
function addressesSource(text: string): DiscoverySource {
  const addresses = addressListValue('addresses', 'entry', text.replaceAll(/\s+/g, ','));
  const nodes = addresses.map((address) => ({ address, source: 'address', meta: {} }));
  return {
    provider: 'addresses',
    text,
    instance: {
      name: 'addresses',
      discover: async () => nodes.map((node) => ({ ...node, meta: {} })),
    },
  };
}

/**
 * Checks and builds every entry: RDB_DISCOVERY_SYNTAX (exit 64) for the first bad one,
 * before any lookup.
 */
export function openSources(entries: readonly string[], ctx: ProviderContext): DiscoverySource[] {
  if (entries.length === 0) {
    throw new RdbnetError(ErrorCode.DiscoverySyntax, 'no discovery spec or address given', {
      hint: 'for example "provider=dns name=_rdbnet._tcp.db.internal"',
    });
  }
  if (entries.length > DISCOVERY_ENTRIES_MAX) {
    throw new RdbnetError(
      ErrorCode.DiscoverySyntax,
      `${entries.length} discovery entries; at most ${DISCOVERY_ENTRIES_MAX}`,
    );
  }
  return entries.map((text) => {
    if (!isSpec(text)) {
      if (/=/.test(text)) {
        // `name=... provider=dns`: a spec whose provider is not first, or a typo of one.
        throw new RdbnetError(
          ErrorCode.DiscoverySyntax,
          `discovery spec "${text}" must start with provider=NAME`,
          { hint: 'write provider=NAME key=value ...' },
        );
      }
      return addressesSource(text);
    }
    const { spec, provider } = openProvider(text, ctx);
    return { provider: spec.provider, text, instance: provider };
  });
}

/** One lookup of one source, bounded by DISCOVERY_LOOKUP_DEADLINE_MS and the caller's signal. */
export async function lookup(
  source: DiscoverySource,
  signal: AbortSignal,
): Promise<DiscoveredNode[]> {
  const deadline = AbortSignal.timeout(DISCOVERY_LOOKUP_DEADLINE_MS);
  const both = AbortSignal.any([signal, deadline]);
  try {
    return (await source.instance.discover(both)).slice(0, DISCOVERED_NODES_MAX);
  } catch (error) {
    if (deadline.aborted && !signal.aborted) {
      throw new RdbnetError(
        ErrorCode.DiscoveryUnreachable,
        `provider=${source.provider}: no answer within ${DISCOVERY_LOOKUP_DEADLINE_MS} ms`,
      );
    }
    throw error;
  }
}

export interface ResolveOutcome {
  /** Every node found, de-duplicated by address (the first source's wins). */
  nodes: DiscoveredNode[];
  /** The entries that failed, with their typed errors, in entry order. */
  failures: { source: DiscoverySource; error: RdbnetError }[];
}

/** Merges lists of nodes: de-duplicated by address, first wins, bounded. */
export function mergeNodes(lists: readonly DiscoveredNode[][]): DiscoveredNode[] {
  const seen = new Set<string>();
  const out: DiscoveredNode[] = [];
  for (const list of lists) {
    for (const node of list) {
      if (seen.has(node.address) || out.length >= DISCOVERED_NODES_MAX) continue;
      seen.add(node.address);
      out.push(node);
    }
  }
  return out;
}

/** Asks every source at once; one failing does not hide what the others found. */
export async function resolveSources(
  sources: readonly DiscoverySource[],
  signal: AbortSignal,
): Promise<ResolveOutcome> {
  const settled = await Promise.allSettled(sources.map((source) => lookup(source, signal)));
  const lists: DiscoveredNode[][] = [];
  const failures: ResolveOutcome['failures'] = [];
  settled.forEach((result, index) => {
    const source = sources[index]!;
    if (result.status === 'fulfilled') lists.push(result.value);
    else {
      const error = result.reason as unknown;
      failures.push({
        source,
        error: isRdbnetError(error)
          ? error
          : new RdbnetError(
              ErrorCode.DiscoveryFailed,
              `provider=${source.provider}: ${(error as Error)?.message ?? String(error)}`,
            ),
      });
    }
  });
  return { nodes: mergeNodes(lists), failures };
}

/** Releases every source's sockets and timers. */
export async function closeSources(sources: readonly DiscoverySource[]): Promise<void> {
  await Promise.allSettled(sources.map((source) => source.instance.close?.()));
}

/** What `rdbnet discover --watch` prints: one event per node that came or went. */
export interface DiscoveryEvent {
  event: 'added' | 'removed';
  node: DiscoveredNode;
}

/** The events that turn list `before` into list `after` (by address): removals first. */
export function diffNodes(
  before: readonly DiscoveredNode[],
  after: readonly DiscoveredNode[],
): DiscoveryEvent[] {
  const was = new Map(before.map((node) => [node.address, node]));
  const is = new Map(after.map((node) => [node.address, node]));
  const events: DiscoveryEvent[] = [];
  for (const [address, node] of was) if (!is.has(address)) events.push({ event: 'removed', node });
  for (const [address, node] of is) if (!was.has(address)) events.push({ event: 'added', node });
  return events;
}

/** `--watch` polls sources without a watch() this often by default. */
export const WATCH_INTERVAL_MS_DEFAULT = 5000;
/** Bounds of the polling interval: no tighter (a DNS server is not a busy loop), no looser. */
export const WATCH_INTERVAL_MS_MIN = 500;
export const WATCH_INTERVAL_MS_MAX = 3_600_000;

/**
 * Follows every source until `signal` aborts: a provider's own watch() where it has one,
 * else a lookup every intervalMs. Calls `onEvents` with the changes to the merged list (the
 * first call adds everything found); a failing source is reported through `onFailure` (once
 * per distinct message) and keeps its last list.
 */
export async function watchSources(
  sources: readonly DiscoverySource[],
  intervalMs: number,
  ctx: ProviderContext,
  onEvents: (events: DiscoveryEvent[]) => void,
  onFailure: (error: RdbnetError, source: DiscoverySource) => void,
  signal: AbortSignal,
): Promise<void> {
  const lists: DiscoveredNode[][] = sources.map(() => []);
  let merged: DiscoveredNode[] = [];
  const update = (index: number, nodes: DiscoveredNode[]) => {
    lists[index] = nodes;
    const next = mergeNodes(lists);
    const events = diffNodes(merged, next);
    merged = next;
    if (events.length > 0) onEvents(events);
  };
  const lastFailure = new Map<number, string>();
  const failure = (index: number, error: unknown) => {
    if (signal.aborted) return;
    const source = sources[index]!;
    const typed = isRdbnetError(error)
      ? error
      : new RdbnetError(ErrorCode.DiscoveryFailed, `provider=${source.provider}: ${String(error)}`);
    if (lastFailure.get(index) === typed.message) return;
    lastFailure.set(index, typed.message);
    onFailure(typed, source);
  };
  const until = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await Promise.all(
    sources.map(async (source, index) => {
      const watch = source.instance.watch?.bind(source.instance);
      if (watch !== undefined) {
        try {
          await watch((nodes) => {
            lastFailure.delete(index);
            update(index, nodes.slice(0, DISCOVERED_NODES_MAX));
          }, signal);
        } catch (error) {
          failure(index, error);
        }
        return;
      }
      while (!signal.aborted) {
        try {
          update(index, await lookup(source, signal));
          lastFailure.delete(index);
        } catch (error) {
          failure(index, error);
        }
        await Promise.race([
          until,
          new Promise((resolve) => {
            const timer = ctx.clock.setTimer(intervalMs, () => resolve(undefined), { unref: true });
            signal.addEventListener('abort', () => ctx.clock.clearTimer(timer), { once: true });
          }),
        ]);
      }
    }),
  );
}
