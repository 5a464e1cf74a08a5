/**
 * The hash ring (ketama): each endpoint owns points in proportion to its weight; a key goes to
 * the owner of the first point at or after its hash, going round. Points are hashes of the id
 * with the point number as seed, so every node builds the same ring from the same ids.
 */
import { hashString } from './hash.ts';

export interface HashRing {
  /** Point hashes with the sign bit flipped (signed order = unsigned order; int32 keeps the
   * lookup on small integers), ascending. */
  points: Int32Array;
  /** owners[i]: the endpoint index owning points[i]. */
  owners: Int32Array;
}

/** Builds the ring: `vnodesPerWeight` points for the heaviest endpoint, the others in
 * proportion (at least one), scaled down when the total would pass `pointsMax`. */
export function buildRing(
  ids: readonly string[],
  weights: ArrayLike<number>,
  vnodesPerWeight: number,
  pointsMax: number,
): HashRing {
  const count = ids.length;
  let weightMax = 0;
  for (let i = 0; i < count; i++) weightMax = Math.max(weightMax, weights[i]!);
  const perNode = new Int32Array(count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    perNode[i] = Math.max(1, Math.round((vnodesPerWeight * weights[i]!) / weightMax));
    total += perNode[i]!;
  }
  if (total > pointsMax) {
    const scale = pointsMax / total;
    total = 0;
    for (let i = 0; i < count; i++) {
      perNode[i] = Math.max(1, Math.floor(perNode[i]! * scale));
      total += perNode[i]!;
    }
  }
  // hash × 2^14 + owner is exact in a double (2^46 < 2^53): one numeric sort orders points,
  // ties by owner index (sorted ids), the same everywhere.
  const packed = new Float64Array(total);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const id = ids[i]!;
    for (let j = 0; j < perNode[i]!; j++) packed[at++] = hashString(id, j) * 16384 + i;
  }
  packed.sort();
  const points = new Int32Array(total);
  const owners = new Int32Array(total);
  for (let k = 0; k < total; k++) {
    const value = packed[k]!;
    const owner = value % 16384;
    owners[k] = owner;
    points[k] = ((value - owner) / 16384) ^ SIGN_BIT;
  }
  return { points, owners };
}

const SIGN_BIT = 0x80000000 | 0;

/** Index of the first point at or after `hash` (unsigned; 0 after the last: the ring wraps). */
export function ringIndex(points: Int32Array, hash: number): number {
  const target = hash ^ SIGN_BIT;
  let low = 0;
  let high = points.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (points[mid]! < target) low = mid + 1;
    else high = mid;
  }
  return low === points.length ? 0 : low;
}
