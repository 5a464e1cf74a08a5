/** Raft core: a pure state machine (RawNode), its storage, and the cluster configuration it replicates. */
export type {
  AppliedChange,
  ConfigCommand,
  ConfigMember,
  ConfigRecord,
} from './cluster-config.ts';
export {
  ClusterConfig,
  CONFIG_HISTORY_MAX,
  decodeConfigCommand,
  encodeConfigCommand,
} from './cluster-config.ts';
export type { RaftConfig } from './config.ts';
export {
  DEFAULT_RAFT_CONFIG,
  DEFAULT_TICK_MS,
  randomizedElectionTicks,
  validateRaftConfig,
} from './config.ts';
export type { FileRaftStorageOptions, FileRaftStorageStats } from './file-storage.ts';
export { FileRaftStorage } from './file-storage.ts';
export type { ProposalDropReason } from './raft.ts';
export { quorum, RaftProposalError } from './raft.ts';
export type { BasicStatus, PeerProgress, RaftStatus, RawNodeOptions } from './raw-node.ts';
export { RawNode } from './raw-node.ts';
export type { PersistentRaftStorage, RaftStorage, RaftStorageWriter } from './storage.ts';
export { bootstrapSnapshot, MemoryStorage, persistReady } from './storage.ts';
export type {
  ConfChange,
  ConfChangeType,
  ConfState,
  Entry,
  EntryType,
  HardState,
  Message,
  MessageType,
  NodeId,
  RaftRole,
  Ready,
  Snapshot,
  SnapshotMetadata,
  SoftState,
} from './types.ts';
export {
  decodeConfChange,
  describeConfChange,
  encodeConfChange,
  entryBytes,
  makeMessage,
  NONE,
} from './types.ts';
export type { TornReason, TornTail, WalRecovery } from './wal.ts';
export {
  WAL_ENTRY_DATA_BYTES_MAX,
  WAL_SEGMENT_BYTES_DEFAULT,
  WAL_SEGMENT_BYTES_MAX,
  WAL_SEGMENT_BYTES_MIN,
  WAL_SEGMENT_FILES_MAX,
  WAL_SNAPSHOT_DATA_BYTES_MAX,
} from './wal.ts';
