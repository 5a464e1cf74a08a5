/**
 * Identifiers drawn from the injected Random, so what a node names (a cluster id at
 * bootstrap, say) is the same in every replay of a seeded simulation. Production passes a
 * Random backed by the system's generator; uniqueness, not secrecy, is what these ids need.
 */
import type { Random } from './index.ts';

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/** An RFC 9562 version-4 UUID (122 random bits) from `random`, lower-case like randomUUID(). */
export function randomUuid(random: Random): string {
  const bytes = new Uint8Array(16);
  for (let i = 0; i < bytes.length; i++) bytes[i] = random.int(256);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // variant 10
  const hex = Array.from(bytes, (byte) => HEX[byte]!).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
