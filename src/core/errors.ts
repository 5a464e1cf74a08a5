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
  /** HTTP: no client certificate and no valid bearer token (a 401). */
  Unauthenticated: 'RDB_UNAUTHENTICATED',
  /** HTTP: no such route (a 404). */
  RouteUnknown: 'RDB_ROUTE_UNKNOWN',
  /** HTTP: an endpoint of the seeds whose capability rdbnet does not have (a 501). */
  NotImplemented: 'RDB_NOT_IMPLEMENTED',
  /** HTTP: a request body over the server's limit (a 413). */
  BodyTooLarge: 'RDB_BODY_TOO_LARGE',
  /** Refused by the cluster's access control list (src/core/security/acl.ts): the message
   * names the deciding rule, or the default policy (exit 1). */
  AclDenied: 'RDB_ACL_DENIED',
  /** An ACL rule that does not parse (a malformed CIDR, an unknown operation class or role),
   * a priority another rule holds, an unknown rule id, or a full list (exit 64). */
  AclInvalid: 'RDB_ACL_INVALID',
  /** The ACL change would leave no admin able to change anything; refused unless --force (exit 64). */
  AclLockout: 'RDB_ACL_LOCKOUT',
  // transport and rpc
  NodeUnreachable: 'RDB_NODE_UNREACHABLE',
  ConnectionClosed: 'RDB_CONNECTION_CLOSED',
  RequestTimeout: 'RDB_REQUEST_TIMEOUT',
  InflightLimit: 'RDB_INFLIGHT_LIMIT',
  WriteQueueFull: 'RDB_WRITE_QUEUE_FULL',
  MethodUnknown: 'RDB_METHOD_UNKNOWN',
  /** An unauthenticated connection closed to keep the node's pre-authentication limits: too
   * many unauthenticated connections from its source address or in total (oldest go first). */
  PreauthLimit: 'RDB_PREAUTH_LIMIT',
  /** The node already holds `connectionsMax` authenticated connections. */
  ConnectionLimit: 'RDB_CONNECTION_LIMIT',
  /** The node closed an authenticated connection that sent no frame for `idleTimeoutMs`. */
  IdleTimeout: 'RDB_IDLE_TIMEOUT',
  /** Buffering this connection's frames would take the node past `bufferedBytesMax`. */
  MemoryBudget: 'RDB_MEMORY_BUDGET',
  /** A peer sent more of a chunked message than the flow-control window it was granted: that
   * stream is reset (per-stream window) or the connection closed (per-connection window). */
  FlowControl: 'RDB_FLOW_CONTROL',
  /** A peer opened more chunked messages at once than the connection's streamsMax; that one
   * stream is refused, the others go on. */
  StreamLimit: 'RDB_STREAM_LIMIT',
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
  /** A join refused: the node is not alive in the leader's gossip view (another gossip key,
   * UDP blocked) within the wait; Raft members must be gossip members. */
  JoinNotInGossip: 'RDB_JOIN_NOT_IN_GOSSIP',
  /** The node id is held by another live process (or one gone for less than the reclaim
   * window) at another address. */
  IdInUse: 'RDB_ID_IN_USE',
  /** A node asks to join with no Raft state under the id of a voter of the configuration: its
   * data dir was lost, or another process uses its id. A voter that forgot its log and vote
   * must not vote again; it is removed first and joins anew. */
  MemberStateLost: 'RDB_MEMBER_STATE_LOST',
  /** The node id is held by a node gossip reports dead or left for less than idReclaimAfterMs:
   * a restart at a new address is refused for now, and the joiner retries (not fatal). */
  IdReclaimPending: 'RDB_ID_RECLAIM_PENDING',
  // load balancing and resilience (src/core/lb)
  /** No endpoint the balancer may choose: none given, none live, or every one ejected. */
  LbNoCandidates: 'RDB_LB_NO_CANDIDATES',
  /** The peer's circuit breaker is open (or half-open with its probes in flight). */
  CircuitOpen: 'RDB_CIRCUIT_OPEN',
  /** The peer's token bucket is empty: the request was dropped, not sent. */
  RateLimited: 'RDB_RATE_LIMITED',
  /** Every pooled connection to the peer stayed busy (connectionsMax reached) past the pool's
   * waitTimeoutMs, or its queue of waiting requests (waitersMax) is full: slow down (exit 1). */
  PoolExhausted: 'RDB_POOL_EXHAUSTED',
  // the data plane (src/core/dataplane)
  /** No handler is registered for the topic on the receiving node (exit 1). */
  TopicUnknown: 'RDB_TOPIC_UNKNOWN',
  /** A topic name that is empty, too long or has characters outside [A-Za-z0-9._:/-], or
   * more topics than the node's topicsMax (exit 64). */
  TopicInvalid: 'RDB_TOPIC_INVALID',
  /** No member of the node's gossip view has that id, or no member is in that group (exit 1). */
  TargetUnknown: 'RDB_TARGET_UNKNOWN',
  /** The target is a member that gossip reports suspect, dead or left, or that could not be
   * reached (exit 69). */
  TargetDead: 'RDB_TARGET_DEAD',
  /** The message's deadline passed before it was delivered or answered (exit 1). */
  DeadlinePassed: 'RDB_DEADLINE_PASSED',
  /** The payload is larger than the node's messageBytesMax (exit 64). */
  MessageTooLarge: 'RDB_MESSAGE_TOO_LARGE',
  /** The receiver's topic queue is full: the sender should slow down (exit 1). */
  QueueFull: 'RDB_QUEUE_FULL',
  /** A quorum or a scatter-gather got fewer answers than it needed before its deadline (exit 1). */
  QuorumNotReached: 'RDB_QUORUM_NOT_REACHED',
  /** An at-least-once or exactly-once message was not acknowledged within its attempts
   * (deliveryAttemptsMax) or its deadline; the last attempt's error is its cause (exit 1). */
  DeliveryFailed: 'RDB_DELIVERY_FAILED',
  // discovery (src/core/discovery)
  /** A discovery spec that does not parse: unknown provider or key, a bad value (exit 64). */
  DiscoverySyntax: 'RDB_DISCOVERY_SYNTAX',
  /** The discovery source (DNS server, etcd, Consul, an API) could not be reached (exit 69). */
  DiscoveryUnreachable: 'RDB_DISCOVERY_UNREACHABLE',
  /** The source answered with an error, or with no node where one was required (exit 1). */
  DiscoveryFailed: 'RDB_DISCOVERY_FAILED',
  /** Candidates belong to two or more different clusters: the node joins none until told
   * which with --cluster-id. */
  DiscoveryAmbiguous: 'RDB_DISCOVERY_AMBIGUOUS',
  // the HTTP faces (src/core/graphql)
  /** A GraphQL query deeper, costlier or longer than the node's limits (refused unrun). */
  QueryTooComplex: 'RDB_QUERY_TOO_COMPLEX',
  // local configuration and files
  ConfigInvalid: 'RDB_CONFIG_INVALID',
  /** Damage found in a node's on-disk state (a Raft log record that fails its checksum, say). */
  StorageCorrupt: 'RDB_STORAGE_CORRUPT',
  /**
   * State the data dir once held is gone (a Raft log emptied, zeroed, truncated or removed
   * while its watermark says it held more): starting would forget votes and entries.
   */
  StorageLost: 'RDB_STORAGE_LOST',
  /** A write failed for lack of space (ENOSPC, EDQUOT); the message names the file. */
  StorageFull: 'RDB_STORAGE_FULL',
  /** A file may not be written or read (EACCES, EPERM, EROFS); the message names it. */
  StorageDenied: 'RDB_STORAGE_DENIED',
  /** The disk reported an I/O error (EIO) on a file the message names. */
  StorageIo: 'RDB_STORAGE_IO',
  CertificatesMissing: 'RDB_CERTS_MISSING',
  CertificateInvalid: 'RDB_CERT_INVALID',
  /** A certificate not signed by a CA the receiver trusts: a node asked to install one from a
   * CA outside its trust bundle (a CA rotation whose new bundle it has not been given). */
  CertificateUntrusted: 'RDB_CERT_UNTRUSTED',
  /** A file the command would create exists already (e.g. a CA without --overwrite). */
  AlreadyExists: 'RDB_ALREADY_EXISTS',
  /** A CA rotation cannot finish: a certificate in use is still signed by the old CA. */
  CaStillInUse: 'RDB_CA_STILL_IN_USE',
  /** `cluster rtt`: the asked node has no network coordinate of that member yet. */
  CoordinateUnknown: 'RDB_COORDINATE_UNKNOWN',
  /** A node of `rdbnet dev` did not start, or exited while the others ran. */
  DevNodeFailed: 'RDB_DEV_NODE_FAILED',
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

/**
 * A setting outside its bounds, naming the setting in `field` (its name where it is checked:
 * `frameBytesMax`, `idleTimeoutMs`), so a caller that knows where the value came from (a flag,
 * the environment, a config file) can say so without reading the message.
 */
export class ConfigFieldError extends RdbnetError {
  readonly field: string;
  /** What is wrong with the value, without the field's name: "must be positive, got 0". */
  readonly problem: string;

  constructor(field: string, problem: string, options?: { hint?: string }) {
    super(ErrorCode.ConfigInvalid, `${field} ${problem}`, options);
    this.name = 'ConfigFieldError';
    this.field = field;
    this.problem = problem;
  }
}

export function isRdbnetError(error: unknown, code?: ErrorCode): error is RdbnetError {
  return error instanceof RdbnetError && (code === undefined || error.code === code);
}

/** Invariant check: a broken internal state is a bug and must crash loudly, not be handled. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`);
}
