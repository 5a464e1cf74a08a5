/**
 * The bounds the etcd and consul providers share: one request's deadline (`timeout=`), a
 * registration's TTL (`ttl=`), how large an answer may be, how many registrations one lookup
 * reads, and how a broken watch backs off.
 */

/** Deadline of one request (`timeout=`), default 5 s; a consul blocking query adds its wait. */
export const KV_TIMEOUT_MS_DEFAULT = 5_000;
export const KV_TIMEOUT_MS_MIN = 100;
export const KV_TIMEOUT_MS_MAX = 60_000;
/** TTL of a registration (`ttl=`: etcd's lease, consul's TTL check), default 10 s. */
export const KV_TTL_MS_DEFAULT = 10_000;
export const KV_TTL_MS_MIN = 2_000;
export const KV_TTL_MS_MAX = 300_000;
/** A listing answer (etcd range or watch line, consul health answer) holds at most this. */
export const KV_LIST_BYTES_MAX = 32 * 1024 * 1024;
/** Answers to register, keep-alive and deregister requests are small; this bounds them. */
export const KV_SMALL_ANSWER_BYTES_MAX = 64 * 1024;
/** One lookup reads at most this many registrations; more are logged, not read. */
export const KV_REGISTRATIONS_MAX = 5_000;
/** A broken watch is re-opened after exponential backoff with full jitter, base to cap. */
export const KV_WATCH_BACKOFF_BASE_MS = 250;
export const KV_WATCH_BACKOFF_CAP_MS = 10_000;
