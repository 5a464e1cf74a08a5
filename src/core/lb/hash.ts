/**
 * 32-bit hashing for the key-hashing strategies. Every node computes the same value for the
 * same text (the hash runs over UTF-16 code units, two per round, with murmur3's constants and
 * finalizer), so the same key and the same member list give the same node everywhere.
 */

/** murmur3's x86_32 body over UTF-16 code units, two units (32 bits) per round. */
export function hashString(text: string, seed = 0): number {
  let h = seed | 0;
  const length = text.length;
  const pairs = length & ~1;
  let i = 0;
  for (; i < pairs; i += 2) {
    let k = text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < length) {
    let k = text.charCodeAt(i);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= length;
  return fmix32(h);
}

/** murmur3's finalizer: every input bit affects every output bit. Unsigned result. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
