/**
 * Removing voters that are gone: a voter gossip reports `dead`, or does not list at all
 * (`missing`), for longer than deadVoterRemoveAfterMs is removed by the leader — one at a
 * time, and only when quorum stays safe. The decisions (withMissingVoters,
 * deadVoterToRemove) are pure; DeadVoters is the chore the leader runs every
 * deadVoterCheckIntervalMs (every member keeps the clock of missing voters, so a new leader
 * starts with it).
 */
import { quorum } from '../membership/raft/raft.ts';
import type { NodeId } from '../membership/raft/types.ts';
import type { ClusterContext } from './context.ts';
import { isRetryableProposalError, type RaftDriver } from './driver.ts';
import type { GossipLiveness } from './init.ts';

/**
 * A cluster of at least this many voters is never shrunk below it by the automatic removal
 * of dead voters (an operator may still `cluster leave --force`); a smaller cluster keeps
 * at least one voter.
 */
export const DEAD_VOTER_MIN_VOTERS = 3;

/**
 * Gossip's view plus one `missing` entry for each voter (other than `self`) it does not
 * list, missing since the time recorded in `missingSinceMs` — which this updates: voters
 * gossip lists (and ids no longer voters) are dropped from it, newly missing ones start at
 * `nowMs`.
 */
export function withMissingVoters(
  self: NodeId,
  voters: readonly NodeId[],
  gossip: readonly GossipLiveness[],
  missingSinceMs: Map<NodeId, number>,
  nowMs: number,
): GossipLiveness[] {
  const listed = new Set(gossip.map((member) => member.id));
  const out = [...gossip];
  const missing = new Set<NodeId>();
  for (const id of voters) {
    if (id === self || listed.has(id)) continue;
    missing.add(id);
    const since = missingSinceMs.get(id) ?? nowMs;
    missingSinceMs.set(id, since);
    out.push({ id, state: 'missing', inStateMs: nowMs - since, address: '' });
  }
  for (const id of missingSinceMs.keys()) if (!missing.has(id)) missingSinceMs.delete(id);
  return out;
}

export type DeadVoterDecision =
  | { remove: NodeId; deadForMs: number; state: string }
  | { remove: null; reason: string; candidate?: NodeId };

/**
 * Which voter, if any, the leader `self` removes automatically (at most one per call):
 * one gossip reports `dead`, or does not list at all (`missing`, see withMissingVoters),
 * for longer than `afterMs` (the longest first), and only when after its removal (1) the
 * remaining voters alive in gossip (this node counts as alive) are a majority of the new
 * voter set, and (2) the new set keeps at least DEAD_VOTER_MIN_VOTERS voters if the
 * cluster had that many, and at least one otherwise. A voter gossip does not list and has
 * no `missing` entry for is not alive (it counts against the majority) and is not removed.
 * A voter that left gossip (a clean stop) is not removed while gossip remembers it.
 */
export function deadVoterToRemove(
  self: NodeId,
  voters: readonly NodeId[],
  gossip: readonly GossipLiveness[],
  afterMs: number,
): DeadVoterDecision {
  const byId = new Map(gossip.map((member) => [member.id, member]));
  const dead = voters
    .filter((id) => id !== self)
    .map((id) => ({ id, member: byId.get(id) }))
    .filter(
      ({ member }) =>
        (member?.state === 'dead' || member?.state === 'missing') && member.inStateMs > afterMs,
    )
    .sort((a, b) => b.member!.inStateMs - a.member!.inStateMs || (a.id < b.id ? -1 : 1));
  const first = dead[0];
  if (first === undefined) return { remove: null, reason: 'no voter dead long enough' };
  const remaining = voters.filter((id) => id !== first.id);
  const minVoters = voters.length >= DEAD_VOTER_MIN_VOTERS ? DEAD_VOTER_MIN_VOTERS : 1;
  if (remaining.length < minVoters) {
    return {
      remove: null,
      candidate: first.id,
      reason: `removing ${first.id} would leave ${remaining.length} voter(s); the minimum is ${minVoters}`,
    };
  }
  const alive = remaining.filter((id) => id === self || byId.get(id)?.state === 'alive');
  const needed = quorum(remaining.length);
  if (alive.length < needed) {
    return {
      remove: null,
      candidate: first.id,
      reason: `removing ${first.id} would leave ${remaining.length} voter(s) of which ${alive.length} are alive; a majority needs ${needed}`,
    };
  }
  return { remove: first.id, deadForMs: first.member!.inStateMs, state: first.member!.state };
}

export class DeadVoters {
  /** Voters gossip does not list, and since when (this node's clock): see withMissingVoters. */
  private readonly missingSinceMs = new Map<NodeId, number>();
  /** A removal of this kind is in flight: no second one starts. */
  private removing = false;
  /** The last reason a dead voter was kept, logged once per change. */
  private keptReason = '';
  private lastCheckMs = 0;

  private readonly ctx: ClusterContext;

  constructor(ctx: ClusterContext) {
    this.ctx = ctx;
  }

  /** After every tick of a member: at most every deadVoterCheckIntervalMs, updates the clock
   * of missing voters and, on the leader with no promotion in flight, removes one dead voter. */
  tick(driver: RaftDriver, nowMs: number, promoting: boolean): void {
    if (nowMs - this.lastCheckMs < this.ctx.tunables.deadVoterCheckIntervalMs) return;
    this.lastCheckMs = nowMs;
    const liveness = this.voterLiveness(driver, nowMs);
    if (liveness !== null && driver.isLeader && !promoting && !this.removing) {
      this.removeDeadVoter(driver, liveness);
    }
  }

  /** Gossip's view plus the voters it does not list (see withMissingVoters); null without
   * gossip. */
  private voterLiveness(driver: RaftDriver, nowMs: number): GossipLiveness[] | null {
    const gossip = this.ctx.gossipView();
    if (gossip === null) return null;
    return withMissingVoters(
      this.ctx.id,
      [...driver.config.voters],
      gossip,
      this.missingSinceMs,
      nowMs,
    );
  }

  /**
   * Leader only: proposes the removal of one voter gossip reports dead (or does not list)
   * for longer than deadVoterRemoveAfterMs, when deadVoterToRemove finds it safe. Never
   * while another configuration change is unapplied: the proposal goes straight to the core
   * (no retry), which refuses it then ('conf-change-pending'), and none starts while a
   * promotion or an earlier removal of this kind is in flight. The removal takes the same
   * path as `cluster leave` (a committed removeNode, in the history and the timings of
   * `cluster status`).
   */
  private removeDeadVoter(driver: RaftDriver, liveness: readonly GossipLiveness[]): void {
    const { ctx } = this;
    const afterMs = ctx.init.deadVoterRemoveAfterMs;
    if (afterMs === undefined || afterMs <= 0) return;
    const decision = deadVoterToRemove(ctx.id, [...driver.config.voters], liveness, afterMs);
    if (decision.remove === null) {
      const reason = decision.candidate === undefined ? '' : decision.reason;
      if (reason !== this.keptReason) {
        this.keptReason = reason;
        if (reason !== '') ctx.log.warn('dead voter kept: quorum not safe', { reason });
      }
      return;
    }
    const id = decision.remove;
    this.keptReason = '';
    this.removing = true;
    ctx.log.warn('removing a dead voter', {
      node: id,
      gossip: decision.state,
      deadForMs: Math.round(decision.deadForMs),
      voters: [...driver.config.voters],
    });
    driver
      .proposeConfChange({ type: 'removeNode', nodeId: id }, ctx.timeouts.proposalTimeoutMs)
      .then(
        (result) => {
          ctx.recordTiming('removeNode', id, result);
          ctx.counters.increment('cluster.dead_voters_removed');
          ctx.log.info('removed a dead voter', { node: id, index: result.index });
        },
        (error: unknown) => {
          // Another change still unapplied: tried again at the next check.
          if (!isRetryableProposalError(error)) {
            ctx.log.info('dead voter not removed', { node: id, reason: String(error) });
          }
        },
      )
      .finally(() => {
        this.removing = false;
      });
  }
}
