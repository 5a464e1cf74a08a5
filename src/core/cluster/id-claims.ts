/**
 * Who may hold a node id. A node id belongs to its live process: gossip says where that
 * process is, and another process claiming the id at another address is refused
 * (RDB_ID_IN_USE) — at join (Admission) and when a member announces a new address
 * (Discovery) — until gossip has reported the holder dead or left for idReclaimAfterMs.
 * The decision (idClaim) is pure; IdClaims turns it into the typed error and the log.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { NodeId } from '../membership/raft/types.ts';
import { PEERS_MAX } from './address-book.ts';
import type { ClusterContext } from './context.ts';
import { seconds } from './guards.ts';
import type { GossipLiveness } from './init.ts';

/** Default of ClusterServiceInit.idReclaimAfterMs (gossip's lan deadReclaimMs). */
export const ID_RECLAIM_AFTER_MS_DEFAULT = 5000;
/** A refused address change of a member is logged at most this often per member. */
const ID_REFUSAL_LOG_INTERVAL_MS = 5000;

export type IdClaimDecision =
  | { allowed: true }
  /** `live`: the holder is alive or suspect; otherwise dead or left within the window. */
  | { allowed: false; holder: GossipLiveness; live: boolean };

/**
 * May a process at `address` take the node id `id`? Not while gossip has that id alive or
 * suspect at another address (another live process holds it), nor while the holder there is
 * dead or left for less than `reclaimAfterMs` (gossip may still be wrong, and the holder's
 * address is where Raft reaches it). An id gossip does not know, or knows at this same
 * address (a restart in place), is free.
 */
export function idClaim(
  id: NodeId,
  address: string,
  gossip: readonly GossipLiveness[],
  reclaimAfterMs: number,
): IdClaimDecision {
  const holder = gossip.find((member) => member.id === id);
  if (holder === undefined || holder.address === address) return { allowed: true };
  if (holder.state === 'alive' || holder.state === 'suspect') {
    return { allowed: false, holder, live: true };
  }
  if (holder.inStateMs < reclaimAfterMs) return { allowed: false, holder, live: false };
  return { allowed: true };
}

export class IdClaims {
  /** When a refused address change was last logged, per member (bounded by PEERS_MAX). */
  private readonly refusalLoggedMs = new Map<NodeId, number>();

  private readonly ctx: ClusterContext;

  constructor(ctx: ClusterContext) {
    this.ctx = ctx;
  }

  /**
   * RDB_ID_IN_USE when another process holds `id` (see idClaim) for a process at `address`
   * that claims it; null when the id is free, or when there is no gossip view to tell.
   */
  idInUse(
    id: NodeId,
    address: string,
    view: readonly GossipLiveness[] | null = this.ctx.gossipView(),
  ): RdbnetError | null {
    if (view === null) return null;
    const { ctx } = this;
    const windowMs = ctx.init.idReclaimAfterMs ?? ID_RECLAIM_AFTER_MS_DEFAULT;
    const decision = idClaim(id, address, view, windowMs);
    if (decision.allowed) return null;
    const { holder } = decision;
    const cluster = ctx.clusterId || ctx.init.clusterName;
    const message = decision.live
      ? `node id ${id} is already alive in cluster ${cluster} at ${holder.address}` +
        `${holder.state === 'suspect' ? ' (suspect)' : ''}; pick another --id, or stop that node`
      : `node id ${id} is held in cluster ${cluster} by the node at ${holder.address}, ` +
        `${holder.state} for ${seconds(holder.inStateMs)} s; another address may take it once ` +
        `that node has been ${holder.state} for ${seconds(windowMs)} s (idReclaimAfterMs): ` +
        'wait, or pick another --id';
    return new RdbnetError(decision.live ? ErrorCode.IdInUse : ErrorCode.IdReclaimPending, message);
  }

  /** Logs a refused address change of member `id`, at most every ID_REFUSAL_LOG_INTERVAL_MS. */
  logRefusal(id: NodeId, address: string, error: RdbnetError): void {
    const now = this.ctx.clock.nowMs();
    const last = this.refusalLoggedMs.get(id);
    if (last !== undefined && now - last < ID_REFUSAL_LOG_INTERVAL_MS) return;
    if (this.refusalLoggedMs.size >= PEERS_MAX) this.refusalLoggedMs.clear();
    this.refusalLoggedMs.set(id, now);
    this.ctx.log.warn('member address change refused: node id in use', {
      node: id,
      address,
      reason: error.message,
    });
  }
}
