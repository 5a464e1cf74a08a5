/**
 * Changes to the replicated access control list (`rdbnet acl add|remove|default`): proposed by
 * the leader as configuration commands (cluster-config.ts), from any member — a follower
 * forwards the change to the leader (AclRequest with forwarded = true), like a leadership
 * transfer. The leader checks the change against the list it has applied before proposing, and
 * after the apply confirms it took (an add that raced another for the same priority is skipped
 * by every member alike, and refused here).
 *
 * Checks a person should see before anything is proposed (syntax, the lockout) are the node's
 * (node/access.ts), on its own applied list; these are the ones that must hold at the leader.
 */
import { ErrorCode } from '../errors.ts';
import { aclRuleId, type ConfigCommand } from '../membership/raft/cluster-config.ts';
import type { AclReply, AclRequest } from '../protocol/messages.ts';
import { request as ask } from '../rpc/request.ts';
import { checkAclAddition } from '../security/acl.ts';
import type { ClusterContext } from './context.ts';
import type { Forwarding } from './forwarding.ts';
import { fail } from './guards.ts';

export type AclCommand = Extract<ConfigCommand, { op: 'aclAdd' | 'aclRemove' | 'aclDefault' }>;

export class AclChanges {
  private readonly ctx: ClusterContext;
  private readonly forwarding: Forwarding;

  constructor(ctx: ClusterContext, forwarding: Forwarding) {
    this.ctx = ctx;
    this.forwarding = forwarding;
  }

  /**
   * Applies `command` to the cluster's list: here when this node leads, else on the leader.
   * `request` is what a follower forwards; `fromMember` whether the asker is a member (only a
   * member may forward).
   */
  async change(
    command: AclCommand,
    request: AclRequest,
    from: { id: string; forwardedByMember: boolean },
  ): Promise<AclReply> {
    const { ctx } = this;
    if (request.forwarded && !from.forwardedByMember) {
      fail(ErrorCode.Forbidden, `${from.id} is not a member and may not forward requests`);
    }
    return this.forwarding
      .onLeader(
        () => this.changeAsLeader(command),
        request.forwarded,
        (leader, timeoutMs) =>
          ask(leader, 'aclRequest', { ...request, forwarded: true }, timeoutMs),
      )
      .then((reply) => ({ ...reply, node: ctx.id }));
  }

  private async changeAsLeader(command: AclCommand): Promise<AclReply> {
    const { ctx } = this;
    const before = ctx.requireMember().config.acl;
    if (command.op === 'aclAdd') checkAclAddition(before, command.rule);
    if (command.op === 'aclRemove' && !before.rules.some((rule) => rule.id === command.id)) {
      fail(
        ErrorCode.AclInvalid,
        `no rule ${command.id} in the access control list`,
        'see `rdbnet acl list`',
      );
    }
    const result = await this.forwarding.proposeRetrying(
      () => ctx.requireMember().proposeCommand(command, ctx.timeouts.proposalTimeoutMs),
      ctx.clock.nowMs() + ctx.timeouts.proposalTimeoutMs,
    );
    const after = ctx.requireMember().config.acl;
    let id = '';
    if (command.op === 'aclAdd') {
      id = aclRuleId(result.index);
      if (!after.rules.some((rule) => rule.id === id)) {
        fail(
          ErrorCode.AclInvalid,
          `rule not added: priority ${command.rule.priority} was taken by a change applied just before`,
        );
      }
    } else if (command.op === 'aclRemove') {
      id = command.id;
    }
    return {
      rules: [],
      id,
      defaultAction: after.defaultAction,
      defaultHits: 0,
      allowed: false,
      rule: '',
      index: result.index,
      node: ctx.id,
    };
  }
}
