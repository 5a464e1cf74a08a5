import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { table, withSpinner } from '../../cli/output.ts';

export interface LbStatusPeer {
  id: string | null;
  address: string;
  /** Gossip state of the peer; null when no member has this address. */
  memberState: string | null;
  /** closed, open or half-open. */
  breaker: string;
  breakerOpened: number;
  breakerRejected: number;
  consecutiveFailures: number;
  openRemainingMs: number;
  ejected: boolean;
  ejections: number;
  ejectedRemainingMs: number;
  inflight: number;
  /** Null before the first answer. */
  latencyEwmaMs: number | null;
  errorRate: number;
  requests: number;
  failures: number;
  /** Of the requests, those sent through the breaker, retry budget and limits (forwards to
   * the leader, the status hop, joins, keyring forwards, link upkeep); the others (gossip
   * push-pull, Raft batches, discovery) are measured only. */
  calls: number;
  retries: number;
  retriesRefused: number;
  retryBalance: number;
  rateLimited: number;
  concurrencyRejected: number;
  lastError: string | null;
  /** Null when nothing was ever sent to it. */
  idleMs: number | null;
}

export interface LbStatusResult {
  /** The node that answered. */
  node: string;
  peers: LbStatusPeer[];
}

export default class LbStatus extends RdbnetCommand<LbStatusResult> {
  static override summary =
    "The node's view of its peers: circuit breakers, ejections, in-flight, latency, drops.";
  static override description =
    'For every peer the node sends requests to (gossip push-pull, Raft batches, forwards to the ' +
    'leader, the status hop, joins, forwarded keyring changes) and ' +
    'every other gossip member: the circuit breaker (closed, open, half-open; times opened, calls ' +
    'refused), outlier ejections, requests in flight, peak-EWMA latency, error rate, requests, ' +
    'failures, retries (and those the retry budget refused), and requests the rate limit dropped.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> --json | jq \'.peers[] | select(.breaker != "closed")\'',
  ];
  static override flags = { ...nodeFlags };

  protected override async execute(): Promise<LbStatusResult> {
    const { flags } = await this.parse(LbStatus);
    const reply = await withSpinner('asking the node', this.json, () =>
      withNode(flags, (node) => node.ask('lbStatusRequest', {})),
    );
    return {
      node: reply.id,
      peers: (reply.peers ?? []).map((peer) => ({
        id: peer.id || null,
        address: peer.address,
        memberState: peer.memberState || null,
        breaker: peer.breakerState,
        breakerOpened: peer.breakerOpened,
        breakerRejected: peer.breakerRejected,
        consecutiveFailures: peer.consecutiveFailures,
        openRemainingMs: peer.openRemainingMs,
        ejected: peer.ejected,
        ejections: peer.ejections,
        ejectedRemainingMs: peer.ejectedRemainingMs,
        inflight: peer.inflight,
        latencyEwmaMs: peer.latencyEwmaMs < 0 ? null : peer.latencyEwmaMs,
        errorRate: peer.errorRate,
        requests: peer.requests,
        failures: peer.failures,
        calls: peer.calls,
        retries: peer.retries,
        retriesRefused: peer.retriesRefused,
        retryBalance: peer.retryBalance,
        rateLimited: peer.rateLimited,
        concurrencyRejected: peer.concurrencyRejected,
        lastError: peer.lastError || null,
        idleMs: peer.idleMs < 0 ? null : Math.round(peer.idleMs),
      })),
    };
  }

  protected override render(result: LbStatusResult): void {
    if (result.peers.length === 0) {
      this.log(`${result.node} has no peers yet`);
      return;
    }
    this.log(
      table(
        [
          'peer',
          'address',
          'breaker',
          'ejected',
          'in flight',
          'latency',
          'errors',
          'requests',
          'guarded',
          'failures',
          'retries',
          'rate-limited',
        ],
        result.peers.map((peer) => [
          peer.id === null ? '-' : `${peer.id} (${peer.memberState})`,
          peer.address,
          peer.breaker === 'open'
            ? `open ${Math.ceil(peer.openRemainingMs / 1000)} s`
            : `${peer.breaker}${peer.breakerOpened > 0 ? ` (opened ${peer.breakerOpened}×)` : ''}`,
          peer.ejected
            ? `yes (${peer.ejections}×)`
            : peer.ejections > 0
              ? `no (${peer.ejections}×)`
              : 'no',
          peer.inflight,
          peer.latencyEwmaMs === null ? '-' : `${peer.latencyEwmaMs.toFixed(2)} ms`,
          `${(peer.errorRate * 100).toFixed(1)}%`,
          peer.requests,
          peer.calls,
          peer.failures,
          peer.retriesRefused > 0
            ? `${peer.retries} (${peer.retriesRefused} refused)`
            : peer.retries,
          peer.rateLimited,
        ]),
      ),
    );
    this.log(`as seen by ${result.node}`);
  }
}
