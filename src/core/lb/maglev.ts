/**
 * Maglev's lookup table (Eisenbud et al., NSDI 2016): every endpoint walks its own
 * permutation of a prime-sized table (offset and skip from two hashes of its id), and a
 * lookup is one slot: table[hash(key) mod size].
 *
 * The table is filled by position rather than by turn. The paper (and Envoy) let every
 * endpoint in turn walk on past taken slots until it claims a free one, so one claim per
 * endpoint per round: when an endpoint leaves, every round fills a little differently and the
 * walks drift apart, and at N = 100 with 65,537 slots about 0.56 % of the table moves besides
 * the leaver's own 1 % (measured: `rdbnet lb simulate --strategy maglev --remove 1`). Here
 * every endpoint takes one step of its permutation per tick (a heavier one more steps, in
 * proportion to its weight) and claims the slot it lands on when that is free and it is below
 * its quota — its weight's share of the table, floor or ceiling. An endpoint's claims then
 * depend on where it is in its own permutation, not on how many others claimed before it: a
 * leaver's slots go to whoever reaches them next, and only the endpoints that reach their
 * (slightly larger) quotas earlier or later give up or take a few late slots. About 0.3 % moves
 * besides the leaver's share at N = 100, and every endpoint still owns its share to one slot.
 *
 * Deterministic: the table is a function of the ids, weights and size alone (no history), so
 * every node builds the same one from the same membership.
 */
import { hashString } from './hash.ts';

const OFFSET_SEED = 0x6d61676c; // 'magl'
const SKIP_SEED = 0x65763121;

/** The table: slot → endpoint index. `ids` sorted, `weights` above zero, size prime > ids. */
export function buildMaglevTable(
  ids: readonly string[],
  weights: ArrayLike<number>,
  tableSize: number,
): Int32Array {
  const count = ids.length;
  const table = new Int32Array(tableSize).fill(-1);
  if (count === 0) return table;
  const quota = maglevQuotas(weights, count, tableSize);
  let weightMax = 0;
  for (let i = 0; i < count; i++) weightMax = Math.max(weightMax, weights[i]!);
  const position = new Float64Array(count);
  const skip = new Float64Array(count);
  /** Permutation steps per tick: 1 for the heaviest endpoint. */
  const speed = new Float64Array(count);
  const walked = new Float64Array(count);
  const owned = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    position[i] = hashString(ids[i]!, OFFSET_SEED) % tableSize;
    skip[i] = (hashString(ids[i]!, SKIP_SEED) % (tableSize - 1)) + 1;
    speed[i] = weights[i]! / weightMax;
  }
  // The endpoints still below their quota, in id order; compacted as they reach it.
  const active = new Int32Array(count);
  let activeCount = 0;
  for (let i = 0; i < count; i++) if (quota[i]! > 0) active[activeCount++] = i;
  let filled = 0;
  for (let tick = 1; filled < tableSize; tick++) {
    let kept = 0;
    for (let a = 0; a < activeCount; a++) {
      const i = active[a]!;
      const goal = tick * speed[i]!;
      // A permutation visits every slot once in tableSize steps, so an endpoint below its
      // quota always finds a free slot: the loop ends.
      while (walked[i]! < goal && owned[i]! < quota[i]!) {
        walked[i]!++;
        const slot = position[i]!;
        const next = slot + skip[i]!;
        position[i] = next >= tableSize ? next - tableSize : next;
        if (table[slot] === -1) {
          table[slot] = i;
          owned[i]!++;
          filled++;
        }
      }
      if (owned[i]! < quota[i]!) active[kept++] = i;
    }
    activeCount = kept;
  }
  return table;
}

/**
 * Slots per endpoint: its weight's share of the table rounded down, and the slots left over
 * one each to the largest remainders (ties to the lower index), so they sum to the size.
 */
export function maglevQuotas(weights: ArrayLike<number>, count: number, tableSize: number) {
  let weightSum = 0;
  for (let i = 0; i < count; i++) weightSum += weights[i]!;
  const quota = new Int32Array(count);
  const remainder = new Float64Array(count);
  let given = 0;
  for (let i = 0; i < count; i++) {
    const exact = (tableSize * weights[i]!) / weightSum;
    quota[i] = Math.floor(exact);
    remainder[i] = exact - quota[i]!;
    given += quota[i]!;
  }
  const order = Array.from({ length: count }, (_, i) => i).sort(
    (a, b) => remainder[b]! - remainder[a]! || a - b,
  );
  for (let k = 0; given < tableSize; k = (k + 1) % count, given++) quota[order[k]!]!++;
  return quota;
}
