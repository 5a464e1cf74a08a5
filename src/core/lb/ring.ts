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
  /** starts[b]: the first point at or after the start of hash bucket b (the top `bucketBits`
   * bits of a hash); starts[buckets] = points.length. A lookup searches one bucket only. */
  starts: Int32Array;
  bucketBits: number;
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
  // About one point per bucket: a bucket's points are found in O(1) and searched in a step
  // or two, instead of a binary search over the whole ring.
  const bucketBits = Math.min(24, Math.max(1, Math.ceil(Math.log2(total))));
  const starts = new Int32Array((1 << bucketBits) + 1);
  let bucket = 0;
  for (let k = 0; k < total; k++) {
    const value = packed[k]!;
    const owner = value % 16384;
    const hash = (value - owner) / 16384;
    owners[k] = owner;
    points[k] = hash ^ SIGN_BIT;
    const pointBucket = hash >>> (32 - bucketBits);
    while (bucket <= pointBucket) starts[bucket++] = k;
  }
  while (bucket <= 1 << bucketBits) starts[bucket++] = total;
  return { points, owners, starts, bucketBits };
}

const SIGN_BIT = 0x80000000 | 0;

/** Index of the first point at or after `hash` (unsigned; 0 after the last: the ring wraps). */
export function ringIndex(ring: HashRing, hash: number): number {
  const points = ring.points;
  const target = hash ^ SIGN_BIT;
  const bucket = hash >>> (32 - ring.bucketBits);
  let low = ring.starts[bucket]!;
  let high = ring.starts[bucket + 1]!;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (points[mid]! < target) low = mid + 1;
    else high = mid;
  }
  return low === points.length ? 0 : low;
}
