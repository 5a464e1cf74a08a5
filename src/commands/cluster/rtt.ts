import { Args } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { ErrorCode, RdbnetError } from '../../core/errors.ts';
import { type Coordinate, estimateRttMs } from '../../core/membership/vivaldi.ts';
import type { GossipMember } from '../../core/protocol/messages.ts';
import { validateName } from '../../core/security/identity.ts';

export interface ClusterRttResult {
  from: string;
  to: string;
  /** Estimated round trip, milliseconds, from the two members' network coordinates. */
  rttMs: number;
  /** The node whose view of the coordinates was used. */
  node: string;
}

export default class ClusterRtt extends RdbnetCommand<ClusterRttResult> {
  static override summary = 'Estimated RTT between two members, from network coordinates.';
  static override description =
    'Every node places itself in a Vivaldi coordinate space from the round trips of its gossip ' +
    "probes, and sends its coordinate in each probe's answer; the distance between two " +
    "members' coordinates estimates their RTT, though neither has to measure it. With one id, " +
    'the RTT between the asked node (--node) and that member. RDB_NOT_MEMBER when the node does ' +
    'not know an id; RDB_COORDINATE_UNKNOWN when it has not probed that member yet (exit 1).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> n1 n5 --node 127.0.0.1:7001',
    '<%= config.bin %> <%= command.id %> n3 --json',
  ];
  static override args = {
    first: Args.string({ description: 'A member id.', required: true }),
    second: Args.string({ description: 'Another member id (default: the asked node).' }),
  };
  static override flags = { ...nodeFlags };

  protected override async execute(): Promise<ClusterRttResult> {
    const { args, flags } = await this.parse(ClusterRtt);
    const first = validateName('node id', args.first);
    const second = args.second === undefined ? undefined : validateName('node id', args.second);
    const reply = await withNode(flags, (node) => node.ask('membersRequest', {}));
    const [from, to] = second === undefined ? [reply.id, first] : [first, second];
    const rttMs = estimateRttMs(coordinateOf(reply.members, from), coordinateOf(reply.members, to));
    return { from, to, rttMs: Number(rttMs.toFixed(3)), node: reply.id };
  }

  protected override render(result: ClusterRttResult): void {
    this.log(
      `${result.from} ↔ ${result.to}: ${result.rttMs.toFixed(3)} ms (estimated by ${result.node})`,
    );
  }
}

function coordinateOf(members: GossipMember[], id: string): Coordinate {
  const member = members.find((m) => m.id === id);
  if (member === undefined) {
    throw new RdbnetError(ErrorCode.NotMember, `'${id}' is not a member this node knows`);
  }
  const c = member.coordinate;
  if (c === undefined || c === null || c.vec.length === 0) {
    throw new RdbnetError(
      ErrorCode.CoordinateUnknown,
      `no network coordinate of ${id} yet: the node has not probed it`,
      { hint: 'gossip probes one member every probe interval; try again in a few seconds' },
    );
  }
  return { vec: [...c.vec], height: c.height, adjustment: c.adjustment, error: c.error };
}
