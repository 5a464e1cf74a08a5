/**
 * The operator's membership commands on a member: `cluster transfer-leader`, and
 * `cluster leave` — which hands leadership over first when this node leads, has the leader
 * remove it (refused when the voters left could not make a quorum, unless forced), writes
 * the left marker and ends the node. Also the leader's side of a removal asked by a member
 * (RemoveMemberRequest).
 */
import { ErrorCode } from '../errors.ts';
import { quorum } from '../membership/raft/raft.ts';
import type { NodeId } from '../membership/raft/types.ts';
import type {
  ClusterRemoveReply,
  ClusterRemoveRequest,
  LeaveReply,
  LeaveRequest,
  RemoveMemberRequest,
  TransferLeaderReply,
  TransferLeaderRequest,
} from '../protocol/messages.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import { request as ask } from '../rpc/request.ts';
import type { ClusterContext } from './context.ts';
import type { RaftDriver } from './driver.ts';
import type { Forwarding } from './forwarding.ts';
import { fail, nodePeer } from './guards.ts';

/** Between answering `cluster leave` and stopping, so the answer leaves first. */
export const LEFT_EXIT_DELAY_MS = 150;

export class Operator {
  private readonly ctx: ClusterContext;
  private readonly forwarding: Forwarding;

  constructor(ctx: ClusterContext, forwarding: Forwarding) {
    this.ctx = ctx;
    this.forwarding = forwarding;
  }

  async onTransfer(
    request: TransferLeaderRequest,
    from: PeerIdentity,
  ): Promise<TransferLeaderReply> {
    const { ctx } = this;
    // Roles are the admin API's table (an operator asks, a node only forwards); membership
    // is known here.
    const peer = from.peer!;
    if (request.forwarded && !ctx.isMemberPeer(peer.id)) {
      fail(ErrorCode.Forbidden, `${peer.id} is not a member and may not forward requests`);
    }
    const driver = ctx.requireMember();
    const to = request.to;
    if (!driver.config.voters.has(to)) {
      fail(
        ErrorCode.NotMember,
        `'${to}' is not a voter of cluster ${driver.config.clusterId}`,
        `voters: ${[...driver.config.voters].sort().join(', ')}`,
      );
    }
    return this.forwarding.onLeader(
      () => this.transferAsLeader(to),
      request.forwarded,
      (leader, timeoutMs) =>
        ask(leader, 'transferLeaderRequest', { to, forwarded: true }, timeoutMs),
    );
  }

  private async transferAsLeader(to: NodeId): Promise<TransferLeaderReply> {
    const { ctx } = this;
    const driver = ctx.requireMember();
    if (driver.leader !== to) {
      driver.transferLeader(to);
      const moved = await ctx.waitFor(
        () => ctx.driver?.leader === to,
        ctx.timeouts.transferTimeoutMs,
      );
      if (!moved) {
        fail(
          ErrorCode.RequestTimeout,
          `leadership did not move to ${to} within ${ctx.timeouts.transferTimeoutMs} ms`,
          'the new leader must be a voter that is reachable and caught up',
        );
      }
    }
    return { leader: to, term: ctx.driver?.term ?? driver.term };
  }

  /**
   * `cluster remove --id`: an operator takes a member out by its id — a dead one that will not
   * come back, or one that is stuck. Forwarded to the leader, which refuses (unless force) when
   * the voters left would not have a live quorum. The removed node, if it still runs, learns it
   * from Raft as after `cluster leave`.
   */
  async onClusterRemove(
    request: ClusterRemoveRequest,
    from: PeerIdentity,
  ): Promise<ClusterRemoveReply> {
    const { ctx } = this;
    const peer = from.peer!;
    if (request.forwarded && !ctx.isMemberPeer(peer.id)) {
      fail(ErrorCode.Forbidden, `${peer.id} is not a member and may not forward requests`);
    }
    const driver = ctx.requireMember();
    const id = request.id;
    if (!driver.config.isMember(id)) {
      fail(
        ErrorCode.NotMember,
        `'${id}' is not a member of cluster ${driver.config.clusterId}`,
        `members: ${[...driver.config.voters, ...driver.config.learners].sort().join(', ')}`,
      );
    }
    const force = request.force === true;
    const index = await this.forwarding.onLeader(
      () => this.removeAsLeader(id, force),
      request.forwarded,
      (leader, timeoutMs) =>
        ask(leader, 'clusterRemoveRequest', { id, force, forwarded: true }, timeoutMs).then(
          (reply) => reply.index,
        ),
    );
    return { id, index };
  }

  async onRemoveMember(request: RemoveMemberRequest, from: PeerIdentity): Promise<number> {
    const { ctx } = this;
    const peer = nodePeer(from);
    if (peer.authenticated && request.id !== peer.id) {
      fail(ErrorCode.Forbidden, `node ${peer.id} may only ask for its own removal`);
    }
    const driver = ctx.requireMember();
    // Asked again after a lost answer: already done.
    if (!driver.config.isMember(request.id) && driver.isLeader) return 0;
    if (!ctx.isMemberPeer(peer.id)) fail(ErrorCode.Forbidden, `${peer.id} is not a member`);
    if (!driver.isLeader) {
      fail(
        ErrorCode.NotLeader,
        `${ctx.id} is not the leader (leader: ${driver.leader || 'unknown'})`,
      );
    }
    return this.removeAsLeader(request.id, request.force);
  }

  private async removeAsLeader(id: NodeId, force: boolean): Promise<number> {
    const { ctx } = this;
    const driver = ctx.requireMember();
    const config = driver.config;
    if (!config.isMember(id)) return 0;
    if (config.voters.has(id)) {
      const remaining = [...config.voters].filter((voter) => voter !== id);
      if (remaining.length === 0) {
        fail(ErrorCode.QuorumAtRisk, `${id} is the last voter: removing it would end the cluster`);
      }
      if (!force) {
        // Live: a Raft batch from it arrived within an election timeout (a follower answers
        // every heartbeat of the leader).
        const liveMs = driver.raftConfig.electionTicks * ctx.tickMs;
        const needed = quorum(remaining.length);
        const liveCount = () => remaining.filter((voter) => ctx.heardWithin(voter, liveMs)).length;
        // A leader that has just been elected (a leaving leader handed over to it, say) may
        // not have heard from every follower yet: followers do not talk to each other, so
        // give them one election timeout (a heartbeat round) to answer before refusing.
        if (liveCount() < needed) await ctx.waitFor(() => liveCount() >= needed, liveMs);
        const live = liveCount();
        if (live < needed) {
          fail(
            ErrorCode.QuorumAtRisk,
            `removing ${id} would leave ${remaining.length} voter(s) of which ${live} answer; a quorum needs ${needed}`,
            'bring the other voters back first, or pass --force to remove it anyway',
          );
        }
      }
    }
    const result = await this.forwarding.proposeConfChange(
      { type: 'removeNode', nodeId: id },
      ctx.clock.nowMs() + ctx.timeouts.proposalTimeoutMs,
    );
    ctx.recordTiming('removeNode', id, result);
    return result.index;
  }

  async onLeave(request: LeaveRequest): Promise<LeaveReply> {
    const { ctx } = this;
    const driver = ctx.requireMember();
    const self = ctx.id;
    const force = request.force === true;
    if (driver.isLeader) await this.handOverBeforeLeaving(driver);
    await this.forwarding.onLeader(
      () => this.removeAsLeader(self, force),
      false,
      (leader, timeoutMs) =>
        ask(leader, 'removeMemberRequest', { id: self, force }, timeoutMs).then(
          (reply) => reply.index,
        ),
    );
    const clusterId = ctx.clusterId;
    ctx.state = 'left';
    await ctx.leftMarker.write(clusterId, self, ctx.clock.wallMs());
    ctx.log.info('left the cluster; stopping', { cluster: clusterId });
    ctx.joinedClusterId = clusterId;
    // Raft keeps running until the node stops, so a leader that removed itself still sends
    // the commit of its removal to the others; 'left' refuses every new request.
    ctx.timers.after(LEFT_EXIT_DELAY_MS, () => ctx.resolveLeft());
    return { left: true, id: self };
  }

  /**
   * A leader that is asked to leave first hands leadership to the most caught-up voter that
   * answers, so the cluster does not wait an election timeout without a leader. When that
   * fails, it removes itself as leader (the core then steps down once the removal applied).
   */
  private async handOverBeforeLeaving(driver: RaftDriver): Promise<void> {
    const { ctx } = this;
    const status = driver.status();
    const liveMs = driver.raftConfig.electionTicks * ctx.tickMs;
    const candidates = [...driver.config.voters]
      .filter((id) => id !== ctx.id && ctx.heardWithin(id, liveMs))
      .sort((a, b) => (status.progress[b]?.match ?? 0) - (status.progress[a]?.match ?? 0));
    const target = candidates[0];
    if (target === undefined) return;
    try {
      await this.transferAsLeader(target);
      ctx.log.info('handed leadership over before leaving', { leader: target });
    } catch (error) {
      ctx.log.info('leadership hand-over failed; removing this leader itself', {
        reason: (error as Error).message,
      });
    }
  }
}
