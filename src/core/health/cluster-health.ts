/**
 * Cluster health as one node sees it, from its own state, its gossip view and the voters of
 * its Raft configuration: a pure function, so the rules can be read and tested here.
 *
 * - Alone (gossip knows no other member and there is no other voter): the node's own health.
 * - Otherwise one entry per gossip member, plus one entry in state `missing` per voter gossip
 *   does not know (it never joined gossip: another key, UDP blocked; or gossip forgot it).
 * - degraded: a member is suspect or dead, or a voter is not alive in gossip (suspect, dead,
 *   left or missing: a voter stopped cleanly still counts, it is still in the configuration),
 *   or the node has a problem of its own (a certificate expiring soon).
 * - critical: the node itself is not serving (or its certificate expired), or the voters
 *   alive in gossip (this node counts when serving) are not a majority of the voters — what
 *   gossip calls the others does not matter, only `alive` counts. Before the node belongs
 *   to a cluster: without a live majority (alive or suspect) of the gossip members that did
 *   not leave.
 */
import type { GossipMember, HealthReply, NodeHealth } from '../protocol/messages.ts';

export interface ClusterHealthInput {
  /** The node's own entry (state `alive` when serving). */
  self: NodeHealth;
  /** The node cannot serve: not running, or its certificate expired. */
  selfCritical: boolean;
  /** The node's gossip view, itself included (isSelf); empty while gossip does not run. */
  members: readonly GossipMember[];
  /** The voters of its Raft configuration with their addresses; null outside a cluster. */
  voters: readonly { id: string; address: string }[] | null;
}

export function clusterHealth(input: ClusterHealthInput): HealthReply {
  const { self, selfCritical } = input;
  const others = input.members.filter((member) => !member.isSelf && member.id !== self.id);
  const byId = new Map(others.map((member) => [member.id, member]));
  const voterIds = new Set((input.voters ?? []).map((voter) => voter.id));
  const missing = (input.voters ?? []).filter(
    (voter) => voter.id !== self.id && !byId.has(voter.id),
  );
  if (others.length === 0 && missing.length === 0) {
    const status = selfCritical ? 'critical' : self.problems.length > 0 ? 'degraded' : 'healthy';
    return { status, quorum: self.ready, nodes: [self] };
  }
  const nodes: NodeHealth[] = [self];
  let troubled = false;
  for (const member of others) {
    const voter = voterIds.has(member.id);
    const problems: string[] = [];
    if (voter && member.state !== 'alive') {
      problems.push(`${member.id} is a voter but ${member.state} in gossip`);
    } else if (member.state === 'suspect' || member.state === 'dead') {
      problems.push(`${member.id} is ${member.state}`);
    }
    if (problems.length > 0) troubled = true;
    nodes.push({
      id: member.id,
      address: member.address,
      state: member.state,
      phi: member.phi,
      lastHeartbeatMs: Math.max(0, member.lastAckMs),
      live: member.state === 'alive' || member.state === 'suspect',
      ready: member.state === 'alive',
      problems,
      certDaysLeft: 0,
      hasCertificate: false,
      score: member.score,
    });
  }
  for (const voter of missing) {
    troubled = true;
    nodes.push({
      id: voter.id,
      address: voter.address,
      state: 'missing',
      phi: 0,
      lastHeartbeatMs: 0,
      live: false,
      ready: false,
      problems: [`${voter.id} is a voter that gossip does not know`],
      certDaysLeft: 0,
      hasCertificate: false,
      score: 0,
    });
  }
  let quorum: boolean;
  if (input.voters !== null) {
    const alive = input.voters.filter((voter) =>
      voter.id === self.id ? self.ready : byId.get(voter.id)?.state === 'alive',
    ).length;
    quorum = self.ready && alive > input.voters.length / 2;
  } else {
    const counted = others.filter((member) => member.state !== 'left');
    const live = counted.filter(
      (member) => member.state === 'alive' || member.state === 'suspect',
    ).length;
    quorum = self.ready && live + 1 > (counted.length + 1) / 2;
  }
  const status =
    selfCritical || !quorum
      ? 'critical'
      : troubled || self.problems.length > 0
        ? 'degraded'
        : 'healthy';
  return { status, quorum, nodes };
}
