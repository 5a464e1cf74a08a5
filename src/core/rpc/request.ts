/**
 * The one table of which reply answers which request, and the typed request function built
 * on it: a caller names the request kind once, and the reply kind, the body it may send and
 * the body it gets back all follow, so a mismatched pair cannot be written.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type {
  DecodedEnvelope,
  Envelope,
  EnvelopeBody,
  EnvelopeKind,
} from '../protocol/messages.ts';

/** Anything that sends one Envelope and resolves with the decoded reply: a connection, or a
 * reconnecting link. Error frames reject with their typed error before a reply is decoded. */
export interface RequestSender {
  request(envelope: Envelope, timeoutMs?: number): Promise<DecodedEnvelope>;
}

/**
 * Request kind → the reply kind a node answers it with, for every request of the Envelope
 * oneof (proto/rdbnet.proto). Checked against EnvelopeKind below: a kind missing from the
 * table, or a reply that is not a kind, fails to compile.
 */
export const REPLY_OF = {
  statusRequest: 'statusReply',
  healthRequest: 'healthReply',
  echoRequest: 'echoReply',
  certRotateRequest: 'certRotateReply',
  certInstallRequest: 'certInstallReply',
  trustBundleRequest: 'trustBundleReply',
  revocationsRequest: 'revocationsReply',
  certInfoRequest: 'certInfoReply',
  proveIdentityRequest: 'proveIdentityReply',
  raftBatch: 'raftBatchReply',
  peerExchangeRequest: 'peerExchangeReply',
  bootstrapCommitRequest: 'bootstrapCommitReply',
  joinRequest: 'joinReply',
  removeMemberRequest: 'removeMemberReply',
  clusterBootstrapRequest: 'clusterBootstrapReply',
  clusterStatusRequest: 'clusterStatusReply',
  transferLeaderRequest: 'transferLeaderReply',
  clusterRemoveRequest: 'clusterRemoveReply',
  logTailRequest: 'logTailReply',
  leaveRequest: 'leaveReply',
  gossipStreamRequest: 'gossipStreamReply',
  membersRequest: 'membersReply',
  memberEventsRequest: 'memberEventsReply',
  keyringRequest: 'keyringReply',
  clusterJoinRequest: 'clusterJoinReply',
  lbStatusRequest: 'lbStatusReply',
  topicRequest: 'topicReply',
  pingRequest: 'pingReply',
  poolStatsRequest: 'poolStatsReply',
  aclRequest: 'aclReply',
  auditRequest: 'auditReply',
  firewallRequest: 'firewallReply',
} as const satisfies Partial<Record<EnvelopeKind, EnvelopeKind>>;

/** Kinds that are neither a request nor its reply: the handshake, the error frame and flow
 * control. */
export const UNPAIRED_KINDS = ['hello', 'helloAck', 'error', 'streamControl'] as const;

export type RequestKind = keyof typeof REPLY_OF;
export type ReplyKind<K extends RequestKind = RequestKind> = (typeof REPLY_OF)[K];
export type RequestBody<K extends RequestKind> = EnvelopeBody<K>;
export type ReplyBody<K extends RequestKind> = EnvelopeBody<ReplyKind<K>>;

/** Every Envelope kind the table does not place; `never` when the table is complete. */
export type KindsWithoutPlace = Exclude<
  EnvelopeKind,
  RequestKind | ReplyKind | (typeof UNPAIRED_KINDS)[number]
>;
// A new Envelope kind must be placed in REPLY_OF (or UNPAIRED_KINDS) before this compiles.
const tableIsComplete: [KindsWithoutPlace] extends [never] ? true : KindsWithoutPlace = true;
void tableIsComplete;

/** The Envelope carrying `body` as a `kind`. */
export function envelopeOf<K extends RequestKind>(kind: K, body: RequestBody<K>): Envelope {
  return { [kind]: body } as Record<K, RequestBody<K>> as unknown as Envelope;
}

/**
 * Sends `kind` with `body` and resolves with the body of its reply. A reply of another kind
 * is RDB_MESSAGE_MALFORMED (the peer broke the protocol); an error frame rejects with its code.
 */
export async function request<K extends RequestKind>(
  sender: RequestSender,
  kind: K,
  body: RequestBody<K>,
  timeoutMs?: number,
): Promise<ReplyBody<K>> {
  const reply = await sender.request(envelopeOf(kind, body), timeoutMs);
  const expected = REPLY_OF[kind];
  if (reply.kind !== expected) {
    throw new RdbnetError(
      ErrorCode.MessageMalformed,
      `expected ${expected} in reply to ${kind}, got ${reply.kind}`,
    );
  }
  return reply.body as ReplyBody<K>;
}
