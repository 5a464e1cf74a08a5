/**
 * Rendezvous's hot loop — score every endpoint for one key, keep the highest — four endpoints
 * at a time in WebAssembly SIMD. In JavaScript the loop costs about 1.4 ns per endpoint, so a
 * pick at N = 100 spent most of its time there; i32x4 lanes do four scores per instruction.
 *
 * The score is the same function as the scalar `rendezvousScore` of balancer.ts (multiply,
 * shift-xor, multiply over key ⊕ seed, signed 32-bit), so both give the same endpoint for the
 * same key; a unit test checks that on random keys and sizes. Ties go to the lowest index, as
 * in the scalar loop.
 *
 * The module is a few dozen bytes, assembled here from named instructions rather than shipped
 * as a binary, so that it can be read and reviewed. Where WebAssembly SIMD is missing,
 * `simdAvailable` is false and balancer.ts keeps its scalar loop.
 */

import { assert } from '../errors.ts';

/** Score constants; balancer.ts's rendezvousScore uses the same two. */
export const RENDEZVOUS_MULTIPLIER_1 = 0x9e3779b1;
export const RENDEZVOUS_MULTIPLIER_2 = 0x85ebca6b;
export const RENDEZVOUS_SHIFT = 15;

/** Memory layout: the four lanes' best scores, their indices, then the endpoints' seeds. */
const BEST_SCORES_AT = 0;
const BEST_INDICES_AT = 16;
const SEEDS_AT = 32;
const PAGE_BYTES = 65536;

// Instruction encodings (WebAssembly core spec 1.0 and the fixed-width SIMD proposal).
const SIMD = 0xfd;
const op = {
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Const: 0x41,
  i32Add: 0x6a,
  i32LtU: 0x49,
  i32Shl: 0x74,
  loop: 0x03,
  brIf: 0x0d,
  end: 0x0b,
  emptyBlock: 0x40,
} as const;
const simd = {
  load: [SIMD, 0x00],
  store: [SIMD, 0x0b],
  const: [SIMD, 0x0c],
  splat: [SIMD, 0x11],
  gtS: [SIMD, 0x3b],
  xor: [SIMD, 0x51],
  bitselect: [SIMD, 0x52],
  shrU: [SIMD, 0xad, 0x01],
  add: [SIMD, 0xae, 0x01],
  mul: [SIMD, 0xb5, 0x01],
} as const;
const I32 = 0x7f;
const V128 = 0x7b;
/** memarg of a 16-byte-aligned v128 access at `offset`. */
const aligned = (offset: number) => [4, ...unsignedLeb(offset)];

function unsignedLeb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function signedLeb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...unsignedLeb(body.length), ...body];
}

function name(text: string): number[] {
  return [text.length, ...Array.from(text, (c) => c.charCodeAt(0))];
}

/** `argmax(key: i32, count: i32)`: count is a multiple of 4; leaves the lanes' winners in memory. */
function argmaxBody(): number[] {
  // Locals: 0 key, 1 count (params); 2 at, 3 end (i32); 4 keys, 5 m1, 6 m2, 7 best,
  // 8 bestIndex, 9 index, 10 four, 11 score, 12 won (v128).
  const [key, count, at, end, keys, m1, m2, best, bestIndex, index, four, score, won] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
  ];
  const get = (local: number) => [op.localGet, local];
  const set = (local: number) => [op.localSet, local];
  const splatConst = (value: number, local: number) => [
    op.i32Const,
    ...signedLeb(value),
    ...simd.splat,
    ...set(local),
  ];
  const lanes = (values: number[]) => values.flatMap((v) => [v & 0xff, 0, 0, 0]);
  const code = [
    ...[2, ...unsignedLeb(2), I32, ...unsignedLeb(9), V128], // two local groups
    ...get(key),
    ...simd.splat,
    ...set(keys),
    ...splatConst(RENDEZVOUS_MULTIPLIER_1, m1),
    ...splatConst(RENDEZVOUS_MULTIPLIER_2, m2),
    ...splatConst(-2147483648, best),
    ...simd.const,
    ...lanes([0, 0, 0, 0]),
    ...set(bestIndex),
    ...simd.const,
    ...lanes([0, 1, 2, 3]),
    ...set(index),
    ...splatConst(4, four),
    ...[op.i32Const, ...signedLeb(SEEDS_AT), ...set(at)],
    // end = SEEDS_AT + count * 4
    ...[...get(count), op.i32Const, 2, op.i32Shl, op.i32Const, ...signedLeb(SEEDS_AT), op.i32Add],
    ...set(end),
    op.loop,
    op.emptyBlock,
    // score = mul(x ^ (x >>> 15), m2) where x = mul(seeds ^ key, m1)
    ...get(at),
    ...simd.load,
    ...aligned(0),
    ...get(keys),
    ...simd.xor,
    ...get(m1),
    ...simd.mul,
    op.localTee,
    score,
    ...get(score),
    op.i32Const,
    RENDEZVOUS_SHIFT,
    ...simd.shrU,
    ...simd.xor,
    ...get(m2),
    ...simd.mul,
    op.localTee,
    score,
    // won = score > best (signed), lane by lane; the winners replace best and bestIndex
    ...get(best),
    ...simd.gtS,
    ...set(won),
    ...[...get(score), ...get(best), ...get(won), ...simd.bitselect, ...set(best)],
    ...[...get(index), ...get(bestIndex), ...get(won), ...simd.bitselect, ...set(bestIndex)],
    ...[...get(index), ...get(four), ...simd.add, ...set(index)],
    ...[...get(at), op.i32Const, 16, op.i32Add, op.localTee, at],
    ...[...get(end), op.i32LtU, op.brIf, 0],
    op.end,
    ...[op.i32Const, ...signedLeb(BEST_SCORES_AT), ...get(best), ...simd.store, ...aligned(0)],
    ...[op.i32Const, ...signedLeb(BEST_INDICES_AT), ...get(bestIndex), ...simd.store],
    ...aligned(0),
    op.end,
  ];
  return [...unsignedLeb(code.length), ...code];
}

function moduleBytes(): Uint8Array {
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, [1, 0x60, 2, I32, I32, 0]), // type: (i32, i32) -> ()
    ...section(3, [1, 0]), // one function of that type
    ...section(5, [1, 0, 1]), // one memory, at least one page
    ...section(7, [2, ...name('memory'), 2, 0, ...name('argmax'), 0, 0]),
    ...section(10, [1, ...argmaxBody()]),
  ]);
}

/** The part of the WebAssembly JS API used here (its typings come with lib "dom", which the
 * project does not load). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;

function compiledModule(): object | null {
  if (compiled === undefined) {
    const bytes = moduleBytes();
    compiled = wasm?.validate(bytes) === true ? new wasm.Module(bytes) : null;
  }
  return compiled;
}

/** True when this runtime has WebAssembly SIMD (Node 16.4 and later do). */
export function simdAvailable(): boolean {
  return compiledModule() !== null;
}

/** One endpoint set's seeds in a WebAssembly instance; `argmax(key)` is rendezvous's pick. */
export class SimdRendezvous {
  private readonly run: (key: number, count: number) => void;
  private readonly lanes: Int32Array;
  private readonly paddedCount: number;

  /** `seeds` must not be empty; throws when SIMD is unavailable (check simdAvailable). */
  constructor(seeds: Int32Array) {
    const module = compiledModule();
    assert(module !== null, 'WebAssembly SIMD is not available (check simdAvailable first)');
    const instance = new wasm!.Instance(module, {});
    const memory = instance.exports['memory'] as WasmMemory;
    // Padding repeats the first seed: its lanes tie with index 0 at best, and ties go to the
    // lowest index, so padding never wins.
    this.paddedCount = Math.ceil(seeds.length / 4) * 4;
    const bytes = SEEDS_AT + this.paddedCount * 4;
    const pages = Math.ceil(bytes / PAGE_BYTES);
    if (pages > 1) memory.grow(pages - 1);
    const seedView = new Int32Array(memory.buffer, SEEDS_AT, this.paddedCount);
    seedView.fill(seeds[0]!);
    seedView.set(seeds);
    this.lanes = new Int32Array(memory.buffer, BEST_SCORES_AT, 8);
    this.run = instance.exports['argmax'] as (key: number, count: number) => void;
  }

  /** The index of the highest-scoring seed for `key` (the lowest index on a tie). */
  argmax(key: number): number {
    this.run(key, this.paddedCount);
    const lanes = this.lanes;
    let bestScore = lanes[0]!;
    let best = lanes[4]!;
    for (let lane = 1; lane < 4; lane++) {
      const score = lanes[lane]!;
      const index = lanes[lane + 4]!;
      if (score > bestScore || (score === bestScore && index < best)) {
        bestScore = score;
        best = index;
      }
    }
    return best;
  }
}
