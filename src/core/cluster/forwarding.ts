/**
 * What only the leader can do, done from any member: `onLeader` runs an operation here when
 * this node leads and forwards it to the leader otherwise (one hop, retried with the next
 * leader until the forward deadline); proposals retried while an earlier configuration
 * change is still being applied (Raft allows one at a time); and a member's address,
 * committed by the leader (ensureAddress) or passed on to it by a follower (forwardAddress).
 */
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import { RaftProposalError } from '../membership/raft/raft.ts';
import type { ConfChange, NodeId } from '../membership/raft/types.ts';
import { NONE } from '../membership/raft/types.ts';
import { type RequestSender, request } from '../rpc/request.ts';
import type { ClusterContext } from './context.ts';
import { isRetryableProposalError, type ProposalResult, type RaftDriver } from './driver.ts';
import { fail } from './guards.ts';

/** How often a member whose address changed tells the others (Chores.announce), and at most
 * how often a follower passes one member's new address on to the leader. */
export const ANNOUNCE_INTERVAL_MS = 500;
/** Between two tries of a proposal refused because another change is being applied. */
const PROPOSAL_RETRY_MS = 10;
/** Between two tries of reaching the leader while one is being elected. */
const FORWARD_RETRY_MS = 50;

/** Errors after which a forwarded request is worth sending again (to the same or a new leader). */
const FORWARD_RETRY_CODES = new Set<string>([
  ErrorCode.NotLeader,
  ErrorCode.NoLeader,
  ErrorCode.NodeUnreachable,
  ErrorCode.ConnectionClosed,
  ErrorCode.HandshakeTimeout,
  ErrorCode.RequestTimeout,
  // The leader's breaker is open: it has been failing; an election may replace it.
  ErrorCode.CircuitOpen,
]);

/** The Raft core's proposal refusals, in this layer's error codes. */
function proposalError(error: RaftProposalError): RdbnetError {
  switch (error.reason) {
    case 'no-leader':
    case 'not-member':
    case 'transfer-in-progress':
      return new RdbnetError(ErrorCode.NotLeader, error.message);
    case 'conf-change-invalid':
      return new RdbnetError(ErrorCode.NotMember, error.message);
    default:
      return new RdbnetError(ErrorCode.InflightLimit, error.message);
  }
}

export class Forwarding {
  /** The setAddress proposal in flight per member: one at a time, later ones chain on it. */
  private readonly addressProposals = new Map<NodeId, Promise<void>>();
  /** When a member's new address was last passed on to the leader (ANNOUNCE_INTERVAL_MS). */
  private readonly addressForwardedMs = new Map<NodeId, number>();

  private readonly ctx: ClusterContext;

  constructor(ctx: ClusterContext) {
    this.ctx = ctx;
  }

  /**
   * Runs `local` when this node leads; otherwise sends the request to the leader with
   * `remote` (never onward again from there: a forwarded request that reaches a node that
   * is no longer the leader is refused with RDB_NOT_LEADER, and retried from here with the
   * new leader), until the forward deadline.
   */
  async onLeader<T>(
    local: () => Promise<T>,
    forwarded: boolean,
    remote: (leader: RequestSender, timeoutMs: number) => Promise<T>,
  ): Promise<T> {
    const { ctx } = this;
    const deadline = ctx.clock.nowMs() + ctx.timeouts.forwardDeadlineMs;
    let lastError: unknown;
    for (;;) {
      const driver = ctx.requireMember();
      const remaining = deadline - ctx.clock.nowMs();
      if (driver.isLeader) {
        try {
          return await local();
        } catch (error) {
          if (forwarded || !isRdbnetError(error, ErrorCode.NotLeader) || remaining <= 0)
            throw error;
          lastError = error;
        }
      } else if (forwarded) {
        fail(
          ErrorCode.NotLeader,
          `${ctx.id} is not the leader (leader: ${driver.leader || 'unknown'})`,
        );
      } else {
        const leader = driver.leader;
        const address = leader === NONE ? undefined : ctx.addressOf(leader);
        if (address !== undefined && remaining > 0) {
          try {
            // One attempt per hop: the loop here retries (with the next leader), and a
            // forwarded membership change must not be sent twice by the guard's retries.
            return await remote(ctx.guardedPeer(address, 1), Math.max(1, remaining));
          } catch (error) {
            if (!isRdbnetError(error) || !FORWARD_RETRY_CODES.has(error.code)) throw error;
            lastError = error;
          }
        }
      }
      if (ctx.clock.nowMs() >= deadline) {
        fail(
          ErrorCode.NoLeader,
          `no leader could be reached within ${ctx.timeouts.forwardDeadlineMs} ms${lastError ? ` (${(lastError as Error).message})` : ''}`,
          'an election may be under way, or a quorum of voters is down: see `rdbnet cluster status`',
        );
      }
      await ctx.sleep(FORWARD_RETRY_MS);
    }
  }

  /** Proposes a membership change (leader only), retried until `deadlineMs`. */
  proposeConfChange(change: ConfChange, deadlineMs: number): Promise<ProposalResult> {
    const { ctx } = this;
    return this.proposeRetrying(
      () =>
        ctx.requireMember().proposeConfChange(change, Math.max(1, deadlineMs - ctx.clock.nowMs())),
      deadlineMs,
    );
  }

  /** Retries while an earlier change is still being applied (one change at a time). */
  async proposeRetrying(
    propose: () => Promise<ProposalResult>,
    deadlineMs: number,
  ): Promise<ProposalResult> {
    for (;;) {
      try {
        return await propose();
      } catch (error) {
        if (isRetryableProposalError(error) && this.ctx.clock.nowMs() < deadlineMs) {
          await this.ctx.sleep(PROPOSAL_RETRY_MS);
          continue;
        }
        if (error instanceof RaftProposalError) throw proposalError(error);
        throw error;
      }
    }
  }

  /** Commits `address` for `id` (leader only); one proposal per id at a time. */
  ensureAddress(id: NodeId, address: string): Promise<void> {
    const { ctx } = this;
    const driver = ctx.requireMember();
    if (driver.config.addresses.get(id) === address) return Promise.resolve();
    const inFlight = this.addressProposals.get(id);
    if (inFlight !== undefined) return inFlight.then(() => this.ensureAddress(id, address));
    const proposal = this.proposeRetrying(
      () =>
        ctx
          .requireMember()
          .proposeCommand({ op: 'setAddress', id, address }, ctx.timeouts.proposalTimeoutMs),
      ctx.clock.nowMs() + ctx.timeouts.proposalTimeoutMs,
    )
      .then(() => undefined)
      .finally(() => this.addressProposals.delete(id));
    this.addressProposals.set(id, proposal);
    return proposal;
  }

  /**
   * A follower passes a member's new address on to the leader (as a forwarded JoinRequest):
   * the member may not know the leader (it was down while the leader was added).
   */
  forwardAddress(driver: RaftDriver, id: NodeId, address: string): void {
    const { ctx } = this;
    const now = ctx.clock.nowMs();
    if (
      now - (this.addressForwardedMs.get(id) ?? Number.NEGATIVE_INFINITY) <
      ANNOUNCE_INTERVAL_MS
    ) {
      return;
    }
    const leader = driver.leader;
    const leaderAddress = leader === NONE ? undefined : ctx.addressOf(leader);
    if (leaderAddress === undefined) return;
    this.addressForwardedMs.set(id, now);
    // Setting an address twice changes nothing: the guard may retry it.
    request(
      ctx.guardedPeer(leaderAddress),
      'joinRequest',
      { id, address, clusterId: driver.config.clusterId, forwarded: true },
      ctx.timeouts.forwardDeadlineMs,
    ).catch(() => {});
  }
}
