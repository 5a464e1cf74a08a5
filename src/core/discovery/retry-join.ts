/**
 * `node start --retry-join`: a node looks its seeds up through discovery (specs and plain
 * addresses), hands what it found to the cluster's peer exchange, and looks again with
 * exponential backoff and full jitter until it is a member — each attempt logged with what it
 * found or why it found nothing. It never spins: every wait is at least RETRY_JOIN_FLOOR_MS,
 * at most RETRY_JOIN_CAP_MS; a lookup is bounded by the provider's timeout and
 * DISCOVERY_LOOKUP_DEADLINE_MS. Like --join, the node waits for its cluster for as long as it
 * runs: the attempts are unbounded in number, not in rate.
 */
import { backoffDelayMs, type Logger, type Random } from '../runtime/index.ts';
import { sleep, type TimedClock } from '../runtime/timers.ts';
import { type DiscoverySource, resolveSources } from './resolve.ts';

/** First ceiling of the jittered wait between two lookups; it doubles each attempt. */
export const RETRY_JOIN_BASE_MS = 500;
/** The ceiling stops doubling here. */
export const RETRY_JOIN_CAP_MS = 30_000;
/** Shortest wait between two lookups, whatever the jitter drew. */
export const RETRY_JOIN_FLOOR_MS = 100;
/** Addresses named in one log line (the count is always given). */
const LOGGED_ADDRESSES_MAX = 8;

export interface RetryJoinInit {
  sources: readonly DiscoverySource[];
  clock: TimedClock;
  random: Random;
  log: Logger;
  /** This node's own advertised address, left out of the seeds. */
  self: string;
  /** True once the node is a member (or left): the lookups stop. */
  isMember(): boolean;
  /** The seeds found changed: the cluster's peer exchange and gossip use these. */
  onSeeds(addresses: string[]): void;
}

export class RetryJoin {
  private readonly init: RetryJoinInit;
  private readonly controller = new AbortController();
  private running: Promise<void> | null = null;
  /** Lookups made so far. */
  attempts = 0;

  constructor(init: RetryJoinInit) {
    this.init = init;
  }

  start(): void {
    if (this.running !== null) return;
    this.running = this.loop().catch((error: unknown) => {
      if (!this.controller.signal.aborted) {
        this.init.log.error('retry-join stopped', { reason: (error as Error).message });
      }
    });
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.running;
  }

  private async loop(): Promise<void> {
    const { init } = this;
    const signal = this.controller.signal;
    let last = '';
    while (!signal.aborted && !init.isMember()) {
      const attempt = this.attempts++;
      const { nodes, failures } = await resolveSources(init.sources, signal);
      if (signal.aborted) return;
      const addresses = nodes
        .map((node) => node.address)
        .filter((address) => address !== init.self);
      const key = [...addresses].sort().join(',');
      if (addresses.length > 0 && key !== last) {
        last = key;
        init.onSeeds(addresses);
      }
      if (init.isMember()) break;
      const waitMs = Math.max(
        RETRY_JOIN_FLOOR_MS,
        backoffDelayMs(attempt, RETRY_JOIN_BASE_MS, RETRY_JOIN_CAP_MS, init.random),
      );
      const fields = {
        attempt: attempt + 1,
        found: addresses.length,
        addresses: addresses.slice(0, LOGGED_ADDRESSES_MAX),
        ...(failures.length === 0
          ? {}
          : {
              failures: failures.map(({ source, error }) => ({
                entry: source.text,
                code: error.code,
                reason: error.message,
              })),
            }),
        nextAttemptMs: waitMs,
      };
      if (addresses.length === 0) {
        init.log.warn(
          failures.length === 0 ? 'retry-join: no other node found' : 'retry-join: lookup failed',
          fields,
        );
      } else {
        init.log.info('retry-join: seeds found', fields);
      }
      await Promise.race([
        sleep(init.clock, waitMs, { unref: true }),
        new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => resolve(), { once: true }),
        ),
      ]);
    }
    if (!signal.aborted)
      init.log.info('retry-join: member; lookups stop', { attempts: this.attempts });
  }
}
