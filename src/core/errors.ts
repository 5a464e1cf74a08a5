/**
 * Expected failures are typed errors with stable codes (ARCHITECTURE.md practice 6).
 * Scripts and tests match on `code`, never on the message text, so codes never change
 * meaning once published; messages may be reworded freely.
 */
export const ErrorCode = {
  // protocol
  FrameTooLarge: 'RDB_FRAME_TOO_LARGE',
  FrameMalformed: 'RDB_FRAME_MALFORMED',
  ChecksumMismatch: 'RDB_CHECKSUM_MISMATCH',
  CodecUnsupported: 'RDB_CODEC_UNSUPPORTED',
  DecompressFailed: 'RDB_DECOMPRESS_FAILED',
  MessageMalformed: 'RDB_MESSAGE_MALFORMED',
  // handshake and identity
  HandshakeRejected: 'RDB_HANDSHAKE_REJECTED',
  HandshakeTimeout: 'RDB_HANDSHAKE_TIMEOUT',
  VersionIncompatible: 'RDB_VERSION_INCOMPATIBLE',
  ClusterMismatch: 'RDB_CLUSTER_MISMATCH',
  IdentityInvalid: 'RDB_IDENTITY_INVALID',
  TlsFailed: 'RDB_TLS_FAILED',
  CertificateRevoked: 'RDB_CERT_REVOKED',
  /** The peer's role may not do this (a node asking for an operator's operation, say). */
  Forbidden: 'RDB_FORBIDDEN',
  // transport and rpc
  NodeUnreachable: 'RDB_NODE_UNREACHABLE',
  ConnectionClosed: 'RDB_CONNECTION_CLOSED',
  RequestTimeout: 'RDB_REQUEST_TIMEOUT',
  InflightLimit: 'RDB_INFLIGHT_LIMIT',
  WriteQueueFull: 'RDB_WRITE_QUEUE_FULL',
  MethodUnknown: 'RDB_METHOD_UNKNOWN',
  RemoteError: 'RDB_REMOTE_ERROR',
  // cluster configuration (Raft)
  /** A request only the Raft leader may answer reached another node. */
  NotLeader: 'RDB_NOT_LEADER',
  /** No leader could be reached within the deadline (election under way, no quorum). */
  NoLeader: 'RDB_NO_LEADER',
  /** The node (or one it would bootstrap with) already belongs to a cluster. */
  ClusterExists: 'RDB_CLUSTER_EXISTS',
  /** The node is not a member of the cluster (yet), or the peer is not one. */
  NotMember: 'RDB_NOT_MEMBER',
  /** A membership change would leave the voters without a live quorum (see --force). */
  QuorumAtRisk: 'RDB_QUORUM_AT_RISK',
  // load balancing and resilience (src/core/lb)
  /** No endpoint the balancer may choose: none given, none live, or every one ejected. */
  LbNoCandidates: 'RDB_LB_NO_CANDIDATES',
  /** The peer's circuit breaker is open (or half-open with its probes in flight). */
  CircuitOpen: 'RDB_CIRCUIT_OPEN',
  /** The peer's token bucket is empty: the request was dropped, not sent. */
  RateLimited: 'RDB_RATE_LIMITED',
  // local configuration and files
  ConfigInvalid: 'RDB_CONFIG_INVALID',
  /** Damage found in a node's on-disk state (a Raft log record that fails its checksum, say). */
  StorageCorrupt: 'RDB_STORAGE_CORRUPT',
  CertificatesMissing: 'RDB_CERTS_MISSING',
  CertificateInvalid: 'RDB_CERT_INVALID',
  /** A file the command would create exists already (e.g. a CA without --overwrite). */
  AlreadyExists: 'RDB_ALREADY_EXISTS',
  /** A CA rotation cannot finish: a certificate in use is still signed by the old CA. */
  CaStillInUse: 'RDB_CA_STILL_IN_USE',
  Usage: 'RDB_USAGE',
  // a bug on the answering side; details are in its log, not on the wire
  Internal: 'RDB_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class RdbnetError extends Error {
  readonly code: ErrorCode;
  /** A short suggestion for a person, printed after the message by the CLI. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RdbnetError';
    this.code = code;
    this.hint = options?.hint;
  }
}

export function isRdbnetError(error: unknown, code?: ErrorCode): error is RdbnetError {
  return error instanceof RdbnetError && (code === undefined || error.code === code);
}

/** Invariant check: a broken internal state is a bug and must crash loudly, not be handled. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`);
}
