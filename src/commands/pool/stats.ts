import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { table, withSpinner } from '../../cli/output.ts';

export interface PoolStatsPeer {
  /** The peer's node id; null when no gossip member has this address. */
  peer: string | null;
  address: string;
  /** Open connections; of them idle (nothing in flight) and in use. */
  open: number;
  idle: number;
  inUse: number;
  /** Connections being dialed now. */
  opening: number;
  /** Requests waiting for a connection with room. */
  waiting: number;
  /** Connections closed or lost, by reason. */
  evicted: { idle: number; lifetime: number; lru: number; unhealthy: number };
  created: number;
  failed: number;
  requests: number;
  /** Requests refused with RDB_POOL_EXHAUSTED. */
  exhausted: number;
  /** Kept filled to pool.connectionsMin (gossip reports the member alive). */
  warm: boolean;
  /** Error code of the last failed dial or lost connection. */
  lastError: string | null;
}

export interface PoolStatsResult {
  /** The node that answered. */
  node: string;
  peers: PoolStatsPeer[];
}

export default class PoolStats extends RdbnetCommand<PoolStatsResult> {
  static override summary = "The node's data-plane connection pool of every peer.";
  static override description =
    'For every peer the node sends data-plane messages to (send, request, broadcast, ping) or ' +
    'keeps warm because gossip reports it alive: open connections, idle and in use, being ' +
    'dialed, requests waiting for a connection, connections evicted (idle, lifetime, LRU at the ' +
    'node-wide cap, unhealthy), created and failed dials. Pool sizes and timeouts are the node ' +
    'config fields pool.* (`rdbnet node config`).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7001',
    "<%= config.bin %> <%= command.id %> --json | jq '.peers[] | {peer, open, waiting}'",
  ];
  static override flags = { ...nodeFlags };

  protected override async execute(): Promise<PoolStatsResult> {
    const { flags } = await this.parse(PoolStats);
    const reply = await withSpinner('asking the node', this.json, () =>
      withNode(flags, (node) => node.ask('poolStatsRequest', {})),
    );
    return {
      node: reply.id,
      peers: (reply.peers ?? []).map((peer) => ({
        peer: peer.peer || null,
        address: peer.address,
        open: peer.open,
        idle: peer.idle,
        inUse: peer.inUse,
        opening: peer.opening,
        waiting: peer.waiting,
        evicted: {
          idle: peer.evicted?.idle ?? 0,
          lifetime: peer.evicted?.lifetime ?? 0,
          lru: peer.evicted?.lru ?? 0,
          unhealthy: peer.evicted?.unhealthy ?? 0,
        },
        created: peer.created,
        failed: peer.failed,
        requests: peer.requests,
        exhausted: peer.exhausted,
        warm: peer.warm,
        lastError: peer.lastError || null,
      })),
    };
  }

  protected override render(result: PoolStatsResult): void {
    if (result.peers.length === 0) {
      this.log(`${result.node} has no connection pools yet`);
      return;
    }
    this.log(
      table(
        [
          'peer',
          'address',
          'open',
          'idle',
          'in use',
          'waiting',
          'evicted (idle/lifetime/lru/unhealthy)',
          'created',
          'failed',
        ],
        result.peers.map((peer) => [
          peer.peer ?? '-',
          peer.address,
          peer.opening > 0 ? `${peer.open} (+${peer.opening} opening)` : peer.open,
          peer.idle,
          peer.inUse,
          peer.exhausted > 0 ? `${peer.waiting} (${peer.exhausted} refused)` : peer.waiting,
          `${peer.evicted.idle}/${peer.evicted.lifetime}/${peer.evicted.lru}/${peer.evicted.unhealthy}`,
          peer.created,
          peer.lastError === null ? peer.failed : `${peer.failed} (last ${peer.lastError})`,
        ]),
      ),
    );
    this.log(`as seen by ${result.node}`);
  }
}
