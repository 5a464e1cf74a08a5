/**
 * The broadcast provider's announcement packet, and the checks a listener makes before it
 * believes one. Pure: no sockets; time is passed in.
 *
 *   "RDBB" | version u8 | sent wall ms u64 | nonce 16 B | payload length u16 | payload | HMAC
 *
 * The payload is JSON `{id, address, ttlMs, meta}`; the HMAC-SHA256 covers every byte before
 * it, keyed with a key derived (HKDF-SHA256) from the gossip key, so the gossip key itself
 * never signs anything but gossip. A stranger (another key, or none) fails the HMAC; a copy of
 * a genuine packet sent again fails the replay guard (timestamp window + nonce cache).
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { assert, ErrorCode, RdbnetError } from '../../errors.ts';

const MAGIC = Buffer.from('RDBB', 'latin1');
const VERSION = 1;
const NONCE_BYTES = 16;
const MAC_BYTES = 32;
const HEADER_BYTES = MAGIC.length + 1 + 8 + NONCE_BYTES + 2;
/** A payload above this is refused when sealing and dropped when received. */
export const BROADCAST_PAYLOAD_BYTES_MAX = 1024;
/** Meta labels carried per announcement, at most. */
export const BROADCAST_META_KEYS_MAX = 32;
export const BROADCAST_PACKET_BYTES_MAX = HEADER_BYTES + BROADCAST_PAYLOAD_BYTES_MAX + MAC_BYTES;

export interface Announcement {
  id: string;
  /** host:port of the node's rdbnet listener. */
  address: string;
  /** How long a listener keeps it without a fresh one; 0 = goodbye (remove now). */
  ttlMs: number;
  meta: Record<string, string>;
}

/** Derives the announcement key from the gossip key (never used raw for anything else). */
export function announcementKey(gossipKey: Uint8Array): Buffer {
  return Buffer.from(
    hkdfSync('sha256', gossipKey, Buffer.alloc(0), 'rdbnet discovery broadcast v1', 32),
  );
}

export function sealAnnouncement(
  key: Buffer,
  announcement: Announcement,
  sentWallMs: number,
  nonce: Uint8Array,
): Buffer {
  const payload = Buffer.from(JSON.stringify(announcement), 'utf8');
  if (payload.length > BROADCAST_PAYLOAD_BYTES_MAX) {
    throw new RdbnetError(
      ErrorCode.DiscoveryFailed,
      `provider=broadcast: announcement is ${payload.length} bytes; at most ${BROADCAST_PAYLOAD_BYTES_MAX} (fewer or shorter meta labels)`,
    );
  }
  assert(nonce.length === NONCE_BYTES, `nonce must be ${NONCE_BYTES} bytes`);
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt8(VERSION, 4);
  header.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(sentWallMs))), 5);
  Buffer.from(nonce).copy(header, 13);
  header.writeUInt16BE(payload.length, 13 + NONCE_BYTES);
  const body = Buffer.concat([header, payload]);
  const mac = createHmac('sha256', key).update(body).digest();
  return Buffer.concat([body, mac]);
}

export type Opened =
  | { ok: true; announcement: Announcement; sentWallMs: number; nonce: string }
  | { ok: false; reason: 'malformed' | 'stranger' };

function isAnnouncement(value: unknown): value is Announcement {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  if (typeof v.id !== 'string' || v.id === '' || v.id.length > 128) return false;
  if (typeof v.address !== 'string' || v.address === '' || v.address.length > 300) return false;
  if (typeof v.ttlMs !== 'number' || !Number.isInteger(v.ttlMs) || v.ttlMs < 0) return false;
  if (typeof v.meta !== 'object' || v.meta === null || Array.isArray(v.meta)) return false;
  const entries = Object.entries(v.meta);
  return (
    entries.length <= BROADCAST_META_KEYS_MAX &&
    entries.every(([, label]) => typeof label === 'string')
  );
}

/** Checks framing and HMAC, then parses. Never throws on any input. */
export function openAnnouncement(key: Buffer, packet: Buffer): Opened {
  if (packet.length < HEADER_BYTES + MAC_BYTES || packet.length > BROADCAST_PACKET_BYTES_MAX) {
    return { ok: false, reason: 'malformed' };
  }
  if (!packet.subarray(0, 4).equals(MAGIC) || packet.readUInt8(4) !== VERSION) {
    return { ok: false, reason: 'malformed' };
  }
  const payloadBytes = packet.readUInt16BE(13 + NONCE_BYTES);
  if (HEADER_BYTES + payloadBytes + MAC_BYTES !== packet.length) {
    return { ok: false, reason: 'malformed' };
  }
  const body = packet.subarray(0, HEADER_BYTES + payloadBytes);
  const mac = packet.subarray(HEADER_BYTES + payloadBytes);
  const expected = createHmac('sha256', key).update(body).digest();
  if (!timingSafeEqual(mac, expected)) return { ok: false, reason: 'stranger' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.subarray(HEADER_BYTES).toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (!isAnnouncement(parsed)) return { ok: false, reason: 'malformed' };
  return {
    ok: true,
    announcement: {
      id: parsed.id,
      address: parsed.address,
      ttlMs: parsed.ttlMs,
      meta: { ...parsed.meta },
    },
    sentWallMs: Number(packet.readBigUInt64BE(5)),
    nonce: packet.subarray(13, 13 + NONCE_BYTES).toString('hex'),
  };
}

export type ReplayVerdict = 'fresh' | 'stale' | 'replay' | 'full';

/**
 * Accepts a packet once: its send time must be within `windowMs` of now (either way: clocks
 * on a LAN differ a little), and its nonce unseen. A nonce is remembered until its packet
 * would be stale anyway, so the cache holds at most a window's worth; at `noncesMax` new
 * packets are refused ('full') rather than old nonces forgotten early, which would let their
 * packets be replayed.
 */
export class ReplayGuard {
  private readonly expiresAtByNonce = new Map<string, number>();

  readonly windowMs: number;
  readonly noncesMax: number;

  constructor(windowMs: number, noncesMax: number) {
    this.windowMs = windowMs;
    this.noncesMax = noncesMax;
  }

  check(nonce: string, sentWallMs: number, nowWallMs: number): ReplayVerdict {
    if (Math.abs(nowWallMs - sentWallMs) > this.windowMs) return 'stale';
    this.prune(nowWallMs, false);
    if (this.expiresAtByNonce.has(nonce)) return 'replay';
    if (this.expiresAtByNonce.size >= this.noncesMax) {
      this.prune(nowWallMs, true);
      if (this.expiresAtByNonce.size >= this.noncesMax) return 'full';
    }
    this.expiresAtByNonce.set(nonce, sentWallMs + this.windowMs);
    return 'fresh';
  }

  get size(): number {
    return this.expiresAtByNonce.size;
  }

  /** Drops expired nonces: from the front only (cheap, mostly in order), or all (`sweep`). */
  private prune(nowWallMs: number, sweep: boolean): void {
    for (const [nonce, expiresAt] of this.expiresAtByNonce) {
      if (expiresAt < nowWallMs) this.expiresAtByNonce.delete(nonce);
      else if (!sweep) break;
    }
  }
}
