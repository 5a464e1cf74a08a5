/**
 * Chores: what a member does after every Raft tick, each at its own pace — make its own
 * address the committed one (the leader proposes it; a follower announces it), promote a
 * caught-up learner (leader), remove a dead voter (DeadVoters), keep a connection open to
 * every voter, and close links to nodes that are no longer members.
 */
import { NONE } from '../membership/raft/types.ts';
import { request } from '../rpc/request.ts';
import type { ClusterContext } from './context.ts';
import type { DeadVoters } from './dead-voters.ts';
import type { Discovery } from './discovery.ts';
import { isRetryableProposalError, type RaftDriver } from './driver.ts';
import { ANNOUNCE_INTERVAL_MS, type Forwarding } from './forwarding.ts';

/** How often the leader looks for caught-up learners. */
export const PROMOTE_CHECK_MS = 100;
/** How often a member checks it has a connection open to every voter (see warmLinks). */
export const LINK_WARM_INTERVAL_MS = 1000;
/** How often links to nodes that are neither members nor vouched for are closed. */
export const LINK_RETAIN_INTERVAL_MS = 5000;

export class Chores {
  /** A promotion is in flight: no second one, and no dead-voter removal, starts. */
  private promoting = false;
  private lastPromoteCheckMs = 0;
  private lastAnnounceMs = 0;
  private lastRetainMs = 0;
  private lastWarmMs = 0;

  private readonly ctx: ClusterContext;
  private readonly discovery: Discovery;
  private readonly forwarding: Forwarding;
  private readonly deadVoters: DeadVoters;

  constructor(
    ctx: ClusterContext,
    discovery: Discovery,
    forwarding: Forwarding,
    deadVoters: DeadVoters,
  ) {
    this.ctx = ctx;
    this.discovery = discovery;
    this.forwarding = forwarding;
    this.deadVoters = deadVoters;
  }

  /** The driver's onTick: own address, promotions, dead voters, link upkeep. */
  housekeeping(): void {
    const { ctx } = this;
    const driver = ctx.driver;
    if (driver === null || ctx.state !== 'member' || ctx.stopping) return;
    const now = ctx.clock.nowMs();
    const config = driver.config;
    const self = ctx.id;
    if (config.isMember(self) && config.addresses.get(self) !== ctx.address) {
      if (driver.isLeader) {
        this.forwarding.ensureAddress(self, ctx.address).catch(() => {});
      } else if (now - this.lastAnnounceMs >= ANNOUNCE_INTERVAL_MS) {
        this.lastAnnounceMs = now;
        this.announce();
      }
    }
    if (driver.isLeader && !this.promoting && now - this.lastPromoteCheckMs >= PROMOTE_CHECK_MS) {
      this.lastPromoteCheckMs = now;
      this.promoteCaughtUpLearner(driver);
    }
    this.deadVoters.tick(driver, now, this.promoting);
    if (now - this.lastWarmMs >= LINK_WARM_INTERVAL_MS) {
      this.lastWarmMs = now;
      this.warmLinks(driver);
    }
    if (now - this.lastRetainMs >= LINK_RETAIN_INTERVAL_MS) {
      this.lastRetainMs = now;
      const keep = new Set<string>();
      for (const member of config.members()) {
        const address = ctx.addressOf(member.id);
        if (address !== undefined) keep.add(address);
      }
      for (const address of ctx.addresses.preApplyMembers.values()) keep.add(address);
      for (const id of ctx.vouched) {
        const address = ctx.addressOf(id);
        if (address !== undefined) keep.add(address);
      }
      ctx.transport.retain(keep);
    }
  }

  /**
   * Keeps a connection open to every voter. Followers do not talk to each other while a
   * leader lives, so without this the first pre-vote after a leader's death would wait for a
   * TLS handshake — a window in which both survivors can campaign at once and split the vote.
   */
  private warmLinks(driver: RaftDriver): void {
    const { ctx } = this;
    for (const id of driver.config.voters) {
      if (id === ctx.id) continue;
      const address = ctx.addressOf(id);
      if (address === undefined) continue;
      // A link that is redialing counts as not warm: a voter that went away keeps being asked
      // for, through its breaker, so it stays reachable the moment it is back — and once it
      // has failed long enough to open the breaker, the asking stops (refused at once, no
      // waiting on a dial) until the breaker lets a probe through.
      const open = ctx.transport.isOpen?.(address) ?? !ctx.transport.isCold(address);
      if (open) continue;
      // Once a second at most, so one attempt.
      request(
        ctx.guardedPeer(address, 1),
        'peerExchangeRequest',
        this.discovery.exchangeInfo(),
        ctx.tunables.peerRequestTimeoutMs,
      ).catch(() => {});
    }
  }

  /** A member whose address changed says so to every other member (see onPeerExchange). */
  private announce(): void {
    const { ctx } = this;
    const driver = ctx.driver;
    if (driver === null) return;
    const targets = new Set(driver.config.members().map((member) => member.id));
    for (const id of ctx.vouched) targets.add(id);
    if (driver.leader !== NONE) targets.add(driver.leader);
    targets.delete(ctx.id);
    for (const id of targets) {
      const address = ctx.addressOf(id);
      if (address === undefined) continue;
      request(
        ctx.guardedPeer(address),
        'peerExchangeRequest',
        this.discovery.exchangeInfo(),
        ctx.tunables.peerRequestTimeoutMs,
      ).catch(() => {});
    }
  }

  /** Promotes the first learner (by id) that replicates, is within promoteLagMaxEntries of
   * the last index, and was heard from within an election timeout. */
  private promoteCaughtUpLearner(driver: RaftDriver): void {
    const { ctx } = this;
    const config = driver.config;
    if (config.learners.size === 0) return;
    const status = driver.status();
    for (const id of [...config.learners].sort()) {
      const progress = status.progress[id];
      if (
        progress === undefined ||
        progress.state !== 'replicate' ||
        status.lastIndex - progress.match > ctx.tunables.promoteLagMaxEntries ||
        !ctx.heardWithin(id, driver.raftConfig.electionTicks * ctx.tickMs)
      ) {
        continue;
      }
      this.promoting = true;
      ctx.log.info('promoting a caught-up learner', {
        node: id,
        match: progress.match,
        last: status.lastIndex,
      });
      driver
        .proposeConfChange({ type: 'promoteLearner', nodeId: id }, ctx.timeouts.proposalTimeoutMs)
        .then(
          (result) => ctx.recordTiming('promoteLearner', id, result),
          (error: unknown) => {
            if (!isRetryableProposalError(error)) {
              ctx.log.info('promotion not done', { node: id, reason: String(error) });
            }
          },
        )
        .finally(() => {
          this.promoting = false;
        });
      return;
    }
  }
}
