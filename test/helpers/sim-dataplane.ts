/**
 * One DataPlane as a node of the simulated network: attached to a SimPeerNetwork at its
 * address, answering topicRequest with DataPlane.handle, its gossip view built from a fixed
 * list of ids. Shared by the routing simulation (test/sim/dataplane-sim.test.ts) and the
 * delivery-guarantee simulation (test/helpers/delivery-sim.ts).
 */
import { DataPlane, type DataPlaneMember } from '../../src/core/dataplane/dataplane.ts';
import type { DedupStore } from '../../src/core/dataplane/dedup-store.ts';
import type { DataPlaneLimits } from '../../src/core/dataplane/limits.ts';
import { ErrorCode, RdbnetError } from '../../src/core/errors.ts';
import type { TopicMessage } from '../../src/core/protocol/messages.ts';
import type { PeerRequestHandler } from '../../src/core/rpc/peer.ts';
import type { Random } from '../../src/core/runtime/index.ts';
import type { EventQueue } from '../../src/core/sim/index.ts';
import type { SimPeerNetwork } from '../../src/core/sim/peers.ts';

export interface SimDataPlaneInit {
  id: string;
  /** Every node of the simulation: the view each node routes by. */
  ids: readonly string[];
  addressOf(id: string): string;
  peers: SimPeerNetwork;
  queue: EventQueue;
  limits: DataPlaneLimits;
  random: Random;
  dedupStore?: DedupStore;
  /** The gossip state `member` has in the view (default alive). */
  stateOf?(member: string): string;
  /** The groups of `member` (default none). */
  groupsOf?(member: string): string[];
}

export function startSimDataPlane(init: SimDataPlaneInit): DataPlane {
  let plane: DataPlane | null = null;
  const handler: PeerRequestHandler = (request, from) => {
    if (request.kind === 'topicRequest') {
      return plane!
        .handle(request.body as TopicMessage, from.peer?.id ?? '')
        .then((topicReply) => ({ topicReply }));
    }
    throw new RdbnetError(ErrorCode.MethodUnknown, request.kind);
  };
  const transport = init.peers.attach(
    init.addressOf(init.id),
    { id: init.id, role: 'node', authenticated: true },
    handler,
  );
  plane = new DataPlane({
    selfId: init.id,
    limits: init.limits,
    peers: transport,
    clock: init.queue,
    random: init.random,
    ...(init.dedupStore === undefined ? {} : { dedupStore: init.dedupStore }),
    members: () =>
      init.ids.map(
        (member): DataPlaneMember => ({
          id: member,
          address: init.addressOf(member),
          state: init.stateOf?.(member) ?? 'alive',
          groups: init.groupsOf?.(member) ?? [],
          score: 1,
          rttMs: null,
          isSelf: member === init.id,
        }),
      ),
  });
  return plane;
}
