/**
 * The protobuf messages of proto/rdbnet.proto, loaded once with protobufjs's reflection
 * (which compiles an encoder/decoder per type at load time, as fast as its static code).
 * The TypeScript shapes below mirror the .proto; keep them in step when it changes.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { Codec } from './frame.ts';

// 64-bit fields decode as JS numbers; values above 2^53 never occur in these messages
// (uptimes, counters). Without this, protobufjs returns Long objects whenever the
// 'long' package happens to be installed, which would change types by accident.
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();

export const PROTO_PATH = fileURLToPath(new URL('../../../proto/rdbnet.proto', import.meta.url));

export const RoleCode = { Unspecified: 0, Node: 1, Client: 2 } as const;
export type RoleCode = (typeof RoleCode)[keyof typeof RoleCode];

export interface Hello {
  protocolVersion: number;
  minProtocolVersion: number;
  peerId: string;
  clusterId: string;
  role: RoleCode;
  codecs: Codec[];
  softwareVersion: string;
  /** What the sender accepts of chunked messages; absent from a peer that does not chunk. */
  streams?: StreamSettingsMessage | null;
}
export interface HelloAck {
  protocolVersion: number;
  peerId: string;
  clusterId: string;
  codec: Codec;
  softwareVersion: string;
  streams?: StreamSettingsMessage | null;
}
export interface StreamSettingsMessage {
  streamWindowBytes: number;
  connectionWindowBytes: number;
  streamsMax: number;
}
export interface StreamCredit {
  id: number;
  reply: boolean;
  bytes: number;
}
export interface StreamReset {
  id: number;
  reply: boolean;
  code: string;
  message: string;
}
export interface StreamControl {
  connectionBytes: number;
  credits: StreamCredit[];
  resets: StreamReset[];
}
export interface ErrorReply {
  code: string;
  message: string;
}
export interface StatusReply {
  id: string;
  address: string;
  version: string;
  protocolVersion: number;
  uptimeMs: number;
  state: string;
  clusterId: string;
  startedAtMs: number;
  pid: number;
  tls: boolean;
  connections: number;
  counters: Record<string, number>;
  /** The node's preset; '' from a node older than presets. */
  preset?: string;
  /** Null from a node older than this field. */
  raft?: RaftTimingsReply | null;
}
export interface RaftTimingsReply {
  tickMs: number;
  electionTimeoutMs: number;
  heartbeatIntervalMs: number;
  preVote: boolean;
  checkQuorum: boolean;
  proposalTimeoutMs: number;
  forwardDeadlineMs: number;
  transferTimeoutMs: number;
}
export interface NodeHealth {
  id: string;
  address: string;
  state: string;
  phi: number;
  lastHeartbeatMs: number;
  live: boolean;
  ready: boolean;
  problems: string[];
  certDaysLeft: number;
  hasCertificate: boolean;
  score: number;
}
export interface HealthReply {
  status: string;
  nodes: NodeHealth[];
  quorum: boolean;
}
export interface EchoMessage {
  data: Uint8Array;
}
export interface CertRotateRequest {
  keyBits: number;
}
export interface CertRotateReply {
  csrPem: string;
  nodeId: string;
  clusterId: string;
  hosts: string[];
  currentSerial: string;
}
export interface CertInstallRequest {
  certPem: string;
}
export interface CertInstallReply {
  serial: string;
  notAfter: string;
}
export interface TrustBundleRequest {
  bundlePem: string;
}
export interface TrustBundleReply {
  certificates: number;
}
export interface RevocationsRequest {
  serials: string[];
}
export interface RevocationsReply {
  revoked: number;
}
export interface CertInfoReply {
  certPem: string;
  bundlePem: string;
  revokedSerials: string[];
}
export interface ProveIdentityRequest {
  nonce: Uint8Array;
}
export interface ProveIdentityReply {
  signature: Uint8Array;
  algorithm: string;
}

// ---- cluster configuration (Raft); field meanings are documented in proto/rdbnet.proto

/** RaftMessageType in the proto: the index into MESSAGE_TYPES of the Raft core. */
export type RaftMessageTypeCode = number;
export const RaftEntryTypeCode = { Normal: 0, ConfChange: 1 } as const;
export type RaftEntryTypeCode = (typeof RaftEntryTypeCode)[keyof typeof RaftEntryTypeCode];

export interface RaftEntryWire {
  term: number;
  index: number;
  type: RaftEntryTypeCode;
  data: Uint8Array;
}
export interface RaftConfStateWire {
  voters: string[];
  learners: string[];
}
export interface RaftSnapshotWire {
  index: number;
  term: number;
  confState: RaftConfStateWire | null | undefined;
  data: Uint8Array;
}
export interface RaftMessageWire {
  type: RaftMessageTypeCode;
  term: number;
  logTerm: number;
  index: number;
  commit: number;
  entries: RaftEntryWire[];
  reject: boolean;
  rejectHint: number;
  transfer: boolean;
  transferee: string;
  snapshot?: RaftSnapshotWire | null;
}
export interface RaftBatch {
  messages: RaftMessageWire[];
  to: string;
}
export interface PeerAddress {
  id: string;
  address: string;
}
export interface PeerExchange {
  id: string;
  address: string;
  clusterId: string;
  bootstrapExpect: number;
  peers: PeerAddress[];
  leader: string;
}
export interface BootstrapCommitRequest {
  clusterId: string;
  voters: PeerAddress[];
  config: Uint8Array;
}
export interface JoinRequest {
  id: string;
  address: string;
  clusterId: string;
  forwarded: boolean;
}
export interface ClusterMember {
  id: string;
  address: string;
  role: string;
  voter: boolean;
  matchIndex: number;
  lag: number;
  lastContactMs: number;
  progress: string;
}
export interface JoinReply {
  clusterId: string;
  members: ClusterMember[];
  leader: string;
  added: boolean;
}
export interface RemoveMemberRequest {
  id: string;
  force: boolean;
}
export interface RemoveMemberReply {
  index: number;
}
export interface ClusterBootstrapRequest {
  expect: number;
  waitMs: number;
}
export interface ClusterBootstrapReply {
  clusterId: string;
  leader: string;
  members: ClusterMember[];
}
export interface ClusterJoinRequest {
  seeds: string[];
  waitMs: number;
}
export type ClusterJoinReply = ClusterBootstrapReply;
export interface ClusterStatusRequest {
  localOnly: boolean;
}
export interface ConfigRecord {
  index: number;
  term: number;
  op: string;
  nodeId: string;
  address: string;
}
export interface ConfChangeTiming {
  index: number;
  op: string;
  nodeId: string;
  commitMs: number;
}
export interface ClusterStatusReply {
  clusterId: string;
  clusterName: string;
  id: string;
  state: string;
  leader: string;
  leaderAddress: string;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  role: string;
  members: ClusterMember[];
  progressFrom: string;
  history: ConfigRecord[];
  confChangeTimings: ConfChangeTiming[];
  settings: Record<string, string>;
  knownPeers: PeerAddress[];
}
export interface TransferLeaderRequest {
  to: string;
  forwarded: boolean;
}
export interface TransferLeaderReply {
  leader: string;
  term: number;
}
export interface LogTailRequest {
  afterSeq: number;
  minLevel: string;
}
export interface LogTailReply {
  records: { seq: number; level: string; line: string }[];
  lastSeq: number;
  dropped: number;
}
export interface ClusterRemoveRequest {
  id: string;
  force: boolean;
  forwarded: boolean;
}
export interface ClusterRemoveReply {
  id: string;
  index: number;
}
export interface LeaveRequest {
  force: boolean;
}
export interface LeaveReply {
  left: boolean;
  id: string;
}

// ---- gossip membership (SWIM)

export interface GossipStreamMessage {
  payload: Uint8Array;
}
export interface GossipMember {
  id: string;
  address: string;
  state: string;
  incarnation: number;
  rttMs: number;
  phi: number;
  score: number;
  lastAckMs: number;
  isSelf: boolean;
  /** Percentiles of the last 64 direct probes; negative before the first ack. */
  rttP50Ms?: number;
  rttP99Ms?: number;
  lossRatio?: number;
  /** Vivaldi coordinate (seconds); null/absent when none is known yet. */
  coordinate?: NetworkCoordinate | null;
}
export interface NetworkCoordinate {
  vec: number[];
  height: number;
  adjustment: number;
  error: number;
}
export interface MembersReply {
  id: string;
  members: GossipMember[];
}
export interface MemberEventsRequest {
  afterSeq: number;
}
export interface MemberEventRecord {
  seq: number;
  type: string;
  id: string;
  address: string;
  incarnation: number;
  atMs: number;
}
export interface MemberEventsReply {
  id: string;
  events: MemberEventRecord[];
  lastSeq: number;
  missed: number;
}

// ---- gossip keyring operations

export type KeyringOp = 'install' | 'use' | 'remove' | 'list';
export interface KeyringRequest {
  op: string;
  key: string;
  forwarded: boolean;
}
export interface KeyringNodeResult {
  node: string;
  address: string;
  ok: boolean;
  error: string;
  primary: string;
  keys: string[];
  changed: boolean;
}
export interface KeyringReply {
  results: KeyringNodeResult[];
}

// ---- access control list and audit log

export interface AclRuleMessage {
  id: string;
  source: string;
  action: string;
  priority: number;
  op: string;
  identity: string;
  hits: number;
}
export type AclRequestOp = 'add' | 'remove' | 'list' | 'test' | 'default';
export interface AclRequest {
  op: string;
  rule?: AclRuleMessage | null;
  id: string;
  force: boolean;
  forwarded: boolean;
  testSource: string;
  testOp: string;
  testIdentity: string;
  testRole: string;
  defaultAction: string;
}
export interface AclReply {
  rules: AclRuleMessage[];
  id: string;
  defaultAction: string;
  defaultHits: number;
  allowed: boolean;
  rule: string;
  index: number;
  node: string;
}
export interface AuditRequest {
  afterSeq: number;
}
export interface AuditRecord {
  seq: number;
  atMs: number;
  decision: string;
  source: string;
  who: string;
  what: string;
  rule: string;
  stage: string;
  reason: string;
}
export interface AuditReply {
  id: string;
  records: AuditRecord[];
  lastSeq: number;
  missed: number;
}

export interface FirewallRequest {
  op: string;
  source: string;
  banMs: number;
}
export interface FirewallBanMessage {
  source: string;
  remainingMs: number;
  reason: string;
}
export interface FirewallSourceStats {
  source: string;
  open: number;
  refused: number;
  failures: number;
}
export interface FirewallReply {
  node: string;
  limits: Record<string, number>;
  bans: FirewallBanMessage[];
  sources: FirewallSourceStats[];
  refused: Record<string, number>;
  tracked: number;
  automaticBans: number;
  changed: boolean;
}

// ---- load balancing and resilience (`rdbnet lb status`)

export interface LbPeerStatus {
  address: string;
  id: string;
  memberState: string;
  breakerState: string;
  breakerOpened: number;
  breakerRejected: number;
  consecutiveFailures: number;
  openRemainingMs: number;
  ejected: boolean;
  ejections: number;
  ejectedRemainingMs: number;
  inflight: number;
  /** Negative before the first answer. */
  latencyEwmaMs: number;
  errorRate: number;
  requests: number;
  failures: number;
  /** Of the requests, those sent through the breaker, budget and limits. */
  calls: number;
  retries: number;
  retriesRefused: number;
  retryBalance: number;
  rateLimited: number;
  concurrencyRejected: number;
  lastError: string;
  /** Negative when never used. */
  idleMs: number;
}
export interface LbStatusReply {
  id: string;
  peers: LbPeerStatus[];
}

// ---- connection pools per peer (src/core/transport/pool.ts)

export interface PoolEvictions {
  idle: number;
  lifetime: number;
  lru: number;
  unhealthy: number;
}
export interface PeerPoolStatus {
  /** The peer's node id from gossip; '' when no member has that address. */
  peer: string;
  address: string;
  open: number;
  idle: number;
  inUse: number;
  opening: number;
  waiting: number;
  evicted: PoolEvictions;
  created: number;
  failed: number;
  requests: number;
  exhausted: number;
  warm: boolean;
  lastError: string;
}
export interface PoolStatsReply {
  id: string;
  peers: PeerPoolStatus[];
}

// ---- the data plane (src/core/dataplane)

export const TopicKindCode = { Send: 0, Request: 1, Broadcast: 2, Multicast: 3 } as const;
export type TopicKindCode = (typeof TopicKindCode)[keyof typeof TopicKindCode];

export interface TopicMessage {
  topic: string;
  payload: Uint8Array;
  /** Milliseconds left until the sender's deadline when sent; 0: the receiver's default. */
  deadlineMs: number;
  id: string;
  kind: TopicKindCode;
  /** Target node id; empty: the node that receives it. */
  to: string;
  group: string;
  forwarded: boolean;
  /** 0 at-most-once (absent), 1 at-least-once, 2 exactly-once (src/core/dataplane/delivery.ts). */
  delivery?: number;
  /** exactly-once: the receiver's deduplication key; empty: the sending node makes one. */
  idempotencyKey?: string;
  /** 0 normal (absent), 1 critical, 2 high, 3 low (PriorityCode in transport/priority.ts). */
  priority?: number;
}
export interface TopicMiss {
  id: string;
  code: string;
  message: string;
}
export interface TopicReply {
  payload: Uint8Array;
  from: string;
  acked: string[];
  missing: TopicMiss[];
}
export interface PingRequest {
  to: string;
  all: boolean;
  forwarded: boolean;
}
export interface PingRtt {
  from: string;
  to: string;
  /** Negative when it failed (then `error` holds the code). */
  rttMs: number;
  error: string;
}
export interface PingReply {
  rtts: PingRtt[];
}

/** One message per frame payload; exactly one field is set. */
export type Envelope =
  | { hello: Hello }
  | { helloAck: HelloAck }
  | { error: ErrorReply }
  | { statusRequest: Record<string, never> }
  | { statusReply: StatusReply }
  | { healthRequest: Record<string, never> }
  | { healthReply: HealthReply }
  | { echoRequest: EchoMessage }
  | { echoReply: EchoMessage }
  | { certRotateRequest: CertRotateRequest }
  | { certRotateReply: CertRotateReply }
  | { certInstallRequest: CertInstallRequest }
  | { certInstallReply: CertInstallReply }
  | { trustBundleRequest: TrustBundleRequest }
  | { trustBundleReply: TrustBundleReply }
  | { revocationsRequest: RevocationsRequest }
  | { revocationsReply: RevocationsReply }
  | { certInfoRequest: Record<string, never> }
  | { certInfoReply: CertInfoReply }
  | { proveIdentityRequest: ProveIdentityRequest }
  | { proveIdentityReply: ProveIdentityReply }
  | { raftBatch: RaftBatch }
  | { raftBatchReply: Record<string, never> }
  | { peerExchangeRequest: PeerExchange }
  | { peerExchangeReply: PeerExchange }
  | { bootstrapCommitRequest: BootstrapCommitRequest }
  | { bootstrapCommitReply: Record<string, never> }
  | { joinRequest: JoinRequest }
  | { joinReply: JoinReply }
  | { removeMemberRequest: RemoveMemberRequest }
  | { removeMemberReply: RemoveMemberReply }
  | { clusterBootstrapRequest: ClusterBootstrapRequest }
  | { clusterBootstrapReply: ClusterBootstrapReply }
  | { clusterStatusRequest: ClusterStatusRequest }
  | { clusterStatusReply: ClusterStatusReply }
  | { transferLeaderRequest: TransferLeaderRequest }
  | { clusterRemoveRequest: ClusterRemoveRequest }
  | { clusterRemoveReply: ClusterRemoveReply }
  | { logTailRequest: LogTailRequest }
  | { logTailReply: LogTailReply }
  | { transferLeaderReply: TransferLeaderReply }
  | { leaveRequest: LeaveRequest }
  | { leaveReply: LeaveReply }
  | { gossipStreamRequest: GossipStreamMessage }
  | { gossipStreamReply: GossipStreamMessage }
  | { membersRequest: Record<string, never> }
  | { membersReply: MembersReply }
  | { memberEventsRequest: MemberEventsRequest }
  | { memberEventsReply: MemberEventsReply }
  | { keyringRequest: KeyringRequest }
  | { keyringReply: KeyringReply }
  | { clusterJoinRequest: ClusterJoinRequest }
  | { clusterJoinReply: ClusterJoinReply }
  | { lbStatusRequest: Record<string, never> }
  | { lbStatusReply: LbStatusReply }
  | { topicRequest: TopicMessage }
  | { topicReply: TopicReply }
  | { pingRequest: PingRequest }
  | { pingReply: PingReply }
  | { poolStatsRequest: Record<string, never> }
  | { poolStatsReply: PoolStatsReply }
  | { streamControl: StreamControl }
  | { aclRequest: AclRequest }
  | { aclReply: AclReply }
  | { auditRequest: AuditRequest }
  | { auditReply: AuditReply }
  | { firewallRequest: FirewallRequest }
  | { firewallReply: FirewallReply };

/** Names of the Envelope oneof fields, e.g. 'statusRequest'. */
export type EnvelopeKind = Envelope extends infer E ? (E extends unknown ? keyof E : never) : never;
export type EnvelopeBody<K extends EnvelopeKind> = Extract<Envelope, Record<K, unknown>>[K];

const root = protobuf.loadSync(PROTO_PATH);
const EnvelopeType = root.lookupType('rdbnet.v1.Envelope');

/** Encodes into a fresh buffer the caller may keep. */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return EnvelopeType.encode(envelope as unknown as Record<string, unknown>).finish();
}

interface ReusableWriter extends protobuf.Writer {
  pos: number;
  buf: Uint8Array;
  states: number[] | null;
  finish(shared?: boolean): Uint8Array;
}

/** A shared writer larger than this is dropped after use, so one big message does not pin its
 * buffer for the life of the process. */
const SCRATCH_WRITER_BYTES_MAX = 1 << 20;
let scratch = protobuf.Writer.create() as ReusableWriter;

/**
 * The Envelope is a single oneof, so on the wire it is one length-delimited field whose
 * number names the message. Encoding and decoding that field by hand, and the inner message
 * with its protobufjs type, skips building an Envelope object whose oneof setter deletes
 * every sibling field on each decode (measurable on the hot path). Anything that is not
 * exactly one known field falls back to protobufjs's full decoder.
 */
interface OneofMember {
  kind: EnvelopeKind;
  tag: number;
  type: protobuf.Type;
  /** The name of the message's one field when that field is `bytes` number 1 and nothing else
   * is declared (EchoRequest, GossipStreamRequest, …): such messages are encoded and decoded by
   * hand (writeBytesMessage, readBytesMessage), the same bytes and the same objects as
   * protobufjs gives, at a fraction of the cost per message. */
  bytesField: string | undefined;
  /** The message's class, as protobufjs decodes into it. */
  ctor: new () => Record<string, unknown>;
}
const membersByKind = new Map<string, OneofMember>();
/** By the field's tag byte(s) as a varint value: a small integer, so an array is the map. */
const membersByTag: (OneofMember | undefined)[] = [];
for (const field of EnvelopeType.oneofs['body']!.fieldsArray) {
  const type = field.resolve().resolvedType as protobuf.Type;
  const member: OneofMember = {
    kind: field.name as EnvelopeKind,
    tag: (field.id << 3) | 2,
    type,
    bytesField: soleBytesField(type),
    ctor: type.ctor as unknown as new () => Record<string, unknown>,
  };
  membersByKind.set(field.name, member);
  membersByTag[member.tag] = member;
}

/** The name of `type`'s field when it has only one, a plain `bytes` numbered 1. */
function soleBytesField(type: protobuf.Type): string | undefined {
  const fields = type.fieldsArray;
  const field = fields[0];
  if (fields.length !== 1 || type.oneofsArray.length !== 0 || field === undefined) return undefined;
  if (field.id !== 1 || field.type !== 'bytes' || field.repeated || field.map) return undefined;
  return field.name;
}

/** Every message kind an Envelope can carry, as named in proto/rdbnet.proto. */
export const ENVELOPE_KINDS: ReadonlySet<string> = new Set(membersByKind.keys());

/** The member found last: senders tend to send one kind again and again. */
let lastMember: OneofMember | undefined;

function envelopeMember(envelope: Envelope): OneofMember {
  for (const kind in envelope) {
    // Property names are internalized strings, so this compare is a pointer compare.
    if (kind === lastMember?.kind) return lastMember;
    const member = membersByKind.get(kind);
    if (member !== undefined) {
      lastMember = member;
      return member;
    }
  }
  throw new Error(
    `invariant violated: envelope carries no known message (${Object.keys(envelope).join(',')})`,
  );
}

/**
 * Writes an Envelope at `writer.pos`: its one field (tag, length, message). Used to encode
 * straight into a connection's outbound frames (OutboundBuffer.appendEncoded), so the hot path
 * writes each message once.
 */
export function writeEnvelope(writer: protobuf.Writer, envelope: Envelope): void {
  const member = envelopeMember(envelope);
  const body = (envelope as Record<string, unknown>)[member.kind] as Record<string, unknown>;
  if (member.bytesField !== undefined && writeBytesMessage(writer, member, body)) return;
  writer.uint32(member.tag).fork();
  member.type.encode(body, writer);
  writer.ldelim();
}

/** protobufjs 8 writer internals (see frame.ts): one buffer, grown by `_reserve`. */
interface WriterInternals {
  buf: Uint8Array;
  pos: number;
  _reserve(bytes: number): void;
}

/** Bytes of `value` as a protobuf varint (values below 2^32). */
function varintBytes(value: number): number {
  return value < 0x80
    ? 1
    : value < 0x4000
      ? 2
      : value < 0x20_0000
        ? 3
        : value < 0x1000_0000
          ? 4
          : 5;
}

function putVarint(buf: Uint8Array, pos: number, value: number): number {
  while (value > 0x7f) {
    buf[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buf[pos++] = value;
  return pos;
}

/**
 * Writes the Envelope field of a one-`bytes`-field message: tag, length, then the message's
 * field 1 (tag 0x0a, length, bytes), sizes known up front, so no length is patched afterwards.
 * Only the common case, a non-empty Uint8Array of the body's own; anything else (empty, a
 * base64 string, unknown fields kept from a decode) answers false and protobufjs encodes it.
 */
function writeBytesMessage(
  writer: protobuf.Writer,
  member: OneofMember,
  body: Record<string, unknown>,
): boolean {
  const field = member.bytesField!;
  const value = body[field];
  if (!(value instanceof Uint8Array) || value.length === 0) return false;
  if (!Object.hasOwn(body, field) || body['$unknowns'] !== undefined) return false;
  const length = value.length;
  const messageLength = 1 + varintBytes(length) + length;
  const internals = writer as unknown as WriterInternals;
  internals._reserve(varintBytes(member.tag) + varintBytes(messageLength) + messageLength);
  const buf = internals.buf;
  let pos = putVarint(buf, internals.pos, member.tag);
  pos = putVarint(buf, pos, messageLength);
  buf[pos++] = BYTES_FIELD_1_TAG;
  pos = putVarint(buf, pos, length);
  buf.set(value, pos);
  internals.pos = pos + length;
  return true;
}

/** Field 1, wire type 2 (length-delimited). */
const BYTES_FIELD_1_TAG = 0x0a;

/** Where the varint readVarint read last ended. */
let varintEnd = 0;

/**
 * The varint at buf[pos], read no further than `end`, when it is at most four bytes long (a value
 * below 2^28; varintEnd is then where it ends); -1 otherwise, for protobufjs to read and judge.
 */
function readVarint(buf: Uint8Array, pos: number, end: number): number {
  let value = 0;
  for (let shift = 0; shift < 28 && pos < end; shift += 7) {
    const byte = buf[pos++]!;
    value |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      varintEnd = pos;
      return value;
    }
  }
  return -1;
}

/**
 * Decodes a one-`bytes`-field message at buf[start, end) when it is exactly that field, once,
 * non-empty: an object of the message's class with the field a view of `buf`, as protobufjs
 * would give. Anything else (unknown fields, repeats, an empty message) answers undefined for
 * protobufjs to decode, and to refuse.
 */
function readBytesMessage(
  buf: Buffer,
  start: number,
  end: number,
  member: OneofMember,
): Record<string, unknown> | undefined {
  if (start >= end || buf[start] !== BYTES_FIELD_1_TAG) return undefined;
  const length = readVarint(buf, start + 1, end);
  if (length <= 0 || varintEnd + length !== end) return undefined;
  const body = new member.ctor();
  body[member.bytesField!] = buf.subarray(varintEnd, end);
  return body;
}

/** An Envelope at source[start, end) carrying a one-`bytes`-field message, decoded with no
 * protobufjs reader at all; undefined for any other payload. */
function decodeBytesEnvelope(
  source: Buffer,
  start: number,
  end: number,
): DecodedEnvelope | undefined {
  const tag = readVarint(source, start, end);
  const member = tag < 0 ? undefined : membersByTag[tag];
  if (member?.bytesField === undefined) return undefined;
  const length = readVarint(source, varintEnd, end);
  if (length < 0 || varintEnd + length !== end) return undefined;
  const body = readBytesMessage(source, varintEnd, end, member);
  return body === undefined ? undefined : { kind: member.kind, body };
}

/**
 * Encodes into one reused buffer and returns a view of it, valid only until the next call:
 * for callers that copy the bytes at once. Saves two allocations per message.
 */
export function encodeEnvelopeTransient(envelope: Envelope): Uint8Array {
  if (scratch.buf.length > SCRATCH_WRITER_BYTES_MAX) {
    scratch = protobuf.Writer.create() as ReusableWriter;
  }
  scratch.pos = 0;
  if (scratch.states !== null) scratch.states.length = 0;
  writeEnvelope(scratch, envelope);
  return scratch.finish(true);
}

export interface DecodedEnvelope {
  kind: EnvelopeKind;
  body: unknown;
}

/** The reader of decodeEnvelopeAt, reused: decoding is synchronous and never re-entered. */
interface ReaderInternals extends protobuf.Reader {
  buf: Uint8Array;
  pos: number;
  len: number;
  view: DataView | null;
}
const NO_BYTES = Buffer.alloc(0);
const reader = protobuf.Reader.create(NO_BYTES) as ReaderInternals;

/**
 * Decodes a payload and says which oneof field it carries. A payload that is not a
 * valid Envelope, or carries no known message, is a typed error, never a crash.
 */
export function decodeEnvelope(payload: Uint8Array): DecodedEnvelope {
  return decodeEnvelopeAt(payload, 0, payload.length);
}

/**
 * decodeEnvelope of `source[start, end)`, without making a view of it first. Byte fields of the
 * result are views of `source`.
 */
export function decodeEnvelopeAt(source: Uint8Array, start: number, end: number): DecodedEnvelope {
  if (Buffer.isBuffer(source)) {
    const decoded = decodeBytesEnvelope(source, start, end);
    if (decoded !== undefined) return decoded;
  }
  try {
    // protobufjs's Buffer reader slices and decodes strings with Buffer methods.
    reader.buf = Buffer.isBuffer(source)
      ? source
      : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    reader.pos = start;
    reader.len = end;
    const member = end > start ? membersByTag[reader.uint32()] : undefined;
    if (member !== undefined) {
      const length = reader.uint32();
      if (reader.pos + length === end) {
        return { kind: member.kind, body: member.type.decode(reader, length) };
      }
    }
  } catch {
    // Not the one-field shape: the full decoder below decides, and explains.
  } finally {
    // Hold no peer bytes past the call.
    reader.buf = NO_BYTES;
    reader.view = null;
  }
  const payload = start === 0 && end === source.length ? source : source.subarray(start, end);
  let message: protobuf.Message & Record<string, unknown>;
  try {
    message = EnvelopeType.decode(payload) as protobuf.Message & Record<string, unknown>;
  } catch (cause) {
    throw new RdbnetError(ErrorCode.MessageMalformed, 'payload is not a valid rdbnet message', {
      cause,
    });
  }
  const kind = message['body'] as EnvelopeKind | undefined;
  if (kind === undefined) {
    throw new RdbnetError(ErrorCode.MessageMalformed, 'message carries no known body');
  }
  return { kind, body: message[kind] };
}
