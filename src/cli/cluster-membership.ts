/** The answer of `cluster bootstrap` and `cluster join`: which cluster, who leads, who is in it. */
import type { ClusterBootstrapReply } from '../core/protocol/messages.ts';
import { table } from './output.ts';

export interface ClusterMembershipResult {
  clusterId: string;
  leader: string | null;
  members: { id: string; address: string; role: string; voter: boolean }[];
}

export function membershipResult(reply: ClusterBootstrapReply): ClusterMembershipResult {
  return {
    clusterId: reply.clusterId,
    leader: reply.leader || null,
    members: (reply.members ?? []).map((member) => ({
      id: member.id,
      address: member.address,
      role: member.role,
      voter: member.voter,
    })),
  };
}

export function renderMembership(
  result: ClusterMembershipResult,
  verb: string,
  log: (line: string) => void,
): void {
  log(`${verb} cluster ${result.clusterId}; leader: ${result.leader ?? 'none yet'}`);
  log(
    table(
      ['id', 'address', 'role', 'voter'],
      result.members.map((member) => [member.id, member.address, member.role, member.voter]),
    ),
  );
}
