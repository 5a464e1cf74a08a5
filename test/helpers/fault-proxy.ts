/**
 * A TCP proxy between two real processes on loopback that injects connection faults: every
 * connection accepted on its port is relayed, byte for byte, to the target address, and the
 * test can at any moment
 *   - reset(): end every relayed connection with a TCP reset (both sides see ECONNRESET),
 *   - stall(ms): stop relaying in both directions for `ms` (nothing is read, so the senders'
 *     own backpressure holds the bytes; they move on afterwards, none lost, none reordered),
 *   - cut() / heal(): refuse (reset) every connection, relayed or new, until healed.
 * It never drops, duplicates or reorders bytes inside a live connection: TCP would not, and
 * those faults are the simulated network's (test/sim). Loopback only.
 */
import { connect as connectTcp, createServer, type Server, type Socket } from 'node:net';

export interface FaultProxyStats {
  accepted: number;
  resets: number;
  stalls: number;
  refused: number;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

/** Longest stall one call may ask for: a wait in a test is always bounded. */
export const FAULT_PROXY_STALL_MS_MAX = 30_000;

/** Relays both ways. pipe(): a full destination pauses its source, so a slow side holds bytes
 * in the senders' socket buffers, never in an unbounded queue here. */
function relay(pair: Pair): void {
  pair.client.pipe(pair.upstream);
  pair.upstream.pipe(pair.client);
}

/** Stops relaying: unpiped and paused, so not even a 'drain' starts a side reading again. */
function hold(pair: Pair): void {
  pair.client.unpipe(pair.upstream);
  pair.upstream.unpipe(pair.client);
  pair.client.pause();
  pair.upstream.pause();
}

export class FaultProxy {
  readonly stats: FaultProxyStats = { accepted: 0, resets: 0, stalls: 0, refused: 0 };
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private readonly targetPort: number;
  private readonly targetHost: string;
  private cutOff = false;
  private stalledUntil = 0;
  private stallTimer: NodeJS.Timeout | null = null;

  private constructor(target: { host: string; port: number }) {
    this.targetHost = target.host;
    this.targetPort = target.port;
    this.server = createServer((client) => this.accept(client));
  }

  /** A proxy on a free loopback port relaying to `target`. */
  static async start(target: { host: string; port: number }): Promise<FaultProxy> {
    const proxy = new FaultProxy(target);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Connections being relayed now. */
  get open(): number {
    return this.pairs.size;
  }

  /** Resets every relayed connection (RST both ways). */
  reset(): void {
    for (const pair of this.pairs) this.resetPair(pair);
  }

  /** No byte moves either way for `ms`; then everything held moves on in order. */
  stall(ms: number): void {
    if (!(ms > 0 && ms <= FAULT_PROXY_STALL_MS_MAX)) {
      throw new RangeError(`stall must be 1..${FAULT_PROXY_STALL_MS_MAX} ms, got ${ms}`);
    }
    this.stats.stalls++;
    this.stalledUntil = Math.max(this.stalledUntil, Date.now() + ms);
    for (const pair of this.pairs) hold(pair);
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      this.stalledUntil = 0;
      for (const pair of this.pairs) relay(pair);
    }, this.stalledUntil - Date.now());
  }

  /** Resets every connection and refuses new ones until heal(). */
  cut(): void {
    this.cutOff = true;
    this.reset();
  }

  heal(): void {
    this.cutOff = false;
  }

  async close(): Promise<void> {
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.reset();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    client.on('error', () => {});
    if (this.cutOff) {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    this.stats.accepted++;
    const upstream = connectTcp({ host: this.targetHost, port: this.targetPort });
    upstream.on('error', () => {});
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    if (this.stalledUntil > Date.now()) hold(pair);
    else relay(pair);
    const gone = () => {
      if (!this.pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    client.once('close', gone);
    upstream.once('close', gone);
  }

  private resetPair(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    this.stats.resets++;
    pair.client.resetAndDestroy();
    // A socket still connecting cannot send a reset; it is destroyed instead.
    if (pair.upstream.connecting) pair.upstream.destroy();
    else pair.upstream.resetAndDestroy();
  }
}
