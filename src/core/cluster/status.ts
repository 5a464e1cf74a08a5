/**
 * `cluster status` as this node sees it: the members with their roles, replication progress
 * and last contact, the configuration's history and settings, the membership-change
 * timings — and, on a follower, the leader's progress figures (one hop, localOnly), since
 * only the leader tracks them.
 */
import type { NodeId } from '../membership/raft/types.ts';
import { NONE } from '../membership/raft/types.ts';
import type {
  ClusterMember,
  ClusterStatusReply,
  ClusterStatusRequest,
} from '../protocol/messages.ts';
import { request as ask } from '../rpc/request.ts';
import type { ClusterContext } from './context.ts';
import type { RaftDriver } from './driver.ts';

export class ClusterStatus {
  private readonly ctx: ClusterContext;

  constructor(ctx: ClusterContext) {
    this.ctx = ctx;
  }

  /** The members of the applied configuration, as this node sees them. */
  memberList(driver: RaftDriver): ClusterMember[] {
    const { ctx } = this;
    const status = driver.status();
    const self: NodeId = ctx.id;
    return driver.config.members().map((member) => {
      const progress = status.progress[member.id];
      let role: string;
      if (!member.voter) role = 'learner';
      else if (member.id === status.lead) role = 'leader';
      else if (member.id === self && status.role !== 'follower') role = 'candidate';
      else role = status.lead !== NONE ? 'follower' : 'unknown';
      return {
        id: member.id,
        address: ctx.addressOf(member.id) ?? member.address,
        role,
        voter: member.voter,
        matchIndex: progress?.match ?? 0,
        lag: progress === undefined ? 0 : Math.max(0, status.lastIndex - progress.match),
        lastContactMs: ctx.lastContactMs(member.id),
        progress: progress?.state ?? '',
      };
    });
  }

  /** This node's own view (a node without a cluster lists the peers it knows). */
  localStatus(): ClusterStatusReply {
    const { ctx } = this;
    const driver = ctx.driver;
    const base = {
      clusterName: ctx.init.clusterName,
      id: ctx.id,
      state: ctx.state,
      confChangeTimings: [...ctx.confChangeTimings],
    };
    if (driver === null) {
      return {
        ...base,
        clusterId: ctx.joinedClusterId,
        leader: '',
        leaderAddress: '',
        term: 0,
        commitIndex: 0,
        appliedIndex: 0,
        lastIndex: 0,
        role: '',
        members: [],
        progressFrom: '',
        history: [],
        settings: {},
        knownPeers: [...ctx.peers.values()].map((peer) => ({
          id: peer.id,
          address: peer.address,
        })),
      };
    }
    const status = driver.status();
    const config = driver.config;
    return {
      ...base,
      clusterId: config.clusterId || ctx.joinedClusterId,
      leader: status.lead,
      leaderAddress: status.lead === NONE ? '' : (ctx.addressOf(status.lead) ?? ''),
      term: status.term,
      commitIndex: status.commit,
      appliedIndex: config.appliedIndex,
      lastIndex: status.lastIndex,
      role: status.role,
      members: this.memberList(driver),
      progressFrom: status.role === 'leader' ? ctx.id : '',
      history: [...config.history],
      settings: Object.fromEntries(config.settings),
      knownPeers: [],
    };
  }

  async onStatus(request: ClusterStatusRequest): Promise<ClusterStatusReply> {
    const { ctx } = this;
    const local = this.localStatus();
    const driver = ctx.driver;
    if (request.localOnly || driver === null || driver.isLeader || local.leader === NONE) {
      return local;
    }
    const address = ctx.addressOf(local.leader);
    if (address === undefined) return local;
    try {
      const remote = await ask(
        ctx.guardedPeer(address),
        'clusterStatusRequest',
        { localOnly: true },
        ctx.tunables.peerRequestTimeoutMs,
      );
      if (remote.role !== 'leader') return local;
      const byId = new Map((remote.members ?? []).map((member) => [member.id, member]));
      for (const member of local.members) {
        const seen = byId.get(member.id);
        if (seen === undefined) continue;
        member.matchIndex = seen.matchIndex;
        member.lag = seen.lag;
        member.lastContactMs = seen.lastContactMs;
        member.progress = seen.progress;
      }
      local.progressFrom = remote.id;
    } catch {
      // The local view stands; progressFrom stays empty.
    }
    return local;
  }
}
