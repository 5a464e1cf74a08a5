/**
 * Maglev's lookup table (Eisenbud et al., NSDI 2016), weighted as Envoy weights it: every
 * endpoint walks its own permutation of the table (offset and skip from two hashes of its
 * id) and claims the next free slot on its turns; an endpoint of half the largest weight
 * takes a turn every second round. A lookup is one slot: table[hash(key) mod size].
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
  let weightMax = 0;
  for (let i = 0; i < count; i++) weightMax = Math.max(weightMax, weights[i]!);
  const normalized = new Float64Array(count);
  const position = new Float64Array(count);
  const skip = new Float64Array(count);
  const target = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    normalized[i] = weights[i]! / weightMax;
    position[i] = hashString(ids[i]!, OFFSET_SEED) % tableSize;
    skip[i] = (hashString(ids[i]!, SKIP_SEED) % (tableSize - 1)) + 1;
  }
  let filled = 0;
  for (let round = 1; filled < tableSize; round++) {
    for (let i = 0; i < count && filled < tableSize; i++) {
      if (round * normalized[i]! < target[i]!) continue;
      target[i]! += 1;
      let slot = position[i]!;
      while (table[slot] !== -1) {
        slot += skip[i]!;
        if (slot >= tableSize) slot -= tableSize;
      }
      table[slot] = i;
      slot += skip[i]!;
      position[i] = slot >= tableSize ? slot - tableSize : slot;
      filled++;
    }
  }
  return table;
}
