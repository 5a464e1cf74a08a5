/** The node's part in the cluster configuration: Raft driver, peer links, bootstrap, joins. */

export type { ProposalResult, RaftDriverEvents, RaftDriverInit } from './driver.ts';
export { RaftDriver } from './driver.ts';
export type { ClusterServiceInit, ClusterState } from './init.ts';
export { PeerLinks } from './peers.ts';
export { messageFromWire, messageToWire } from './raft-codec.ts';
export { CLUSTER_KINDS, ClusterService } from './service.ts';
