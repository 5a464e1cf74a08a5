/**
 * The discovery seam: one interface every provider implements (static, dns, etcd, consul,
 * k8s, aws, gce, azure, mdns, broadcast), so `rdbnet discover`, `node start --retry-join` and
 * `--register` never know which one they hold. A provider is built from a parsed spec
 * (`provider=dns name=_rdbnet._tcp.db.internal server=127.0.0.1:5353`, see spec.ts) and a
 * context carrying what it may not take from the process itself (clock, environment, log),
 * so tests can inject them.
 */
import type { TimedClock } from '../runtime/timers.ts';

/** One candidate node a provider found. */
export interface DiscoveredNode {
  /** `host:port` of the node's rdbnet listener (IPv6 hosts in brackets: `[::1]:7400`). */
  address: string;
  /** The node id, when the source knows it (etcd/consul registrations, mDNS TXT). */
  id?: string;
  /** Where it came from, for a person: `dns:_rdbnet._tcp.db.internal`, `etcd:/rdbnet/c1/n2`. */
  source: string;
  /** Provider-specific labels (SRV priority/weight, tags, zone, cluster id...), strings only. */
  meta: Record<string, string>;
}

/** What a node tells a provider when it registers itself (`--register`). */
export interface SelfRegistration {
  id: string;
  address: string;
  meta: Record<string, string>;
}

/** A live registration: kept alive by the provider until `close()` deregisters it. */
export interface Registration {
  /** Deregisters (etcd: revokes the lease; consul: deregisters the service); idempotent. */
  close(): Promise<void>;
}

export interface ProviderContext {
  /** Process environment (AWS_*, KUBERNETES_SERVICE_HOST, ...), injected for tests. */
  env: Readonly<Record<string, string | undefined>>;
  /** Time and timers (TTL caches, lease keep-alives, watch re-connects). */
  clock: TimedClock;
  /** Log line sink; providers log at most what a person needs (one line per failure). */
  log: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
  /** The gossip key material (broadcast authenticates announcements with it); absent: none. */
  gossipKey?: Uint8Array;
}

export interface DiscoveryProvider {
  /** The provider's name as written after `provider=`. */
  readonly name: string;
  /**
   * One lookup. Rejects with RdbnetError: RDB_DISCOVERY_UNREACHABLE when the source cannot be
   * reached, RDB_DISCOVERY_FAILED when it answered with an error. An empty answer is not an
   * error here; callers decide.
   */
  discover(signal: AbortSignal): Promise<DiscoveredNode[]>;
  /**
   * Optional push updates: calls `onChange` with the whole current list each time it changes
   * (etcd watch, static file re-read, mDNS browse) until `signal` aborts. Providers without it
   * are polled by the caller.
   */
  watch?(onChange: (nodes: DiscoveredNode[]) => void, signal: AbortSignal): Promise<void>;
  /** Optional: register this node (etcd, consul). */
  register?(self: SelfRegistration, signal: AbortSignal): Promise<Registration>;
  /** Releases sockets and timers; idempotent. */
  close?(): Promise<void>;
}

/** One key a provider accepts, for validation, `--help` and the README. */
export interface ProviderKey {
  name: string;
  required: boolean;
  /** One line for a person, with the default when there is one. */
  doc: string;
}

export interface ProviderFactory {
  name: string;
  /** One line: what it finds and how. */
  summary: string;
  /** An example spec for the README and the man page. */
  example: string;
  keys: readonly ProviderKey[];
  /**
   * Builds the provider from already-checked keys (only known keys, required ones present).
   * Validates values and throws RDB_DISCOVERY_SYNTAX naming the key before any I/O.
   */
  create(args: ReadonlyMap<string, string>, ctx: ProviderContext): DiscoveryProvider;
}
