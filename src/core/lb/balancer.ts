/**
 * One balancer interface over every strategy: `pick` (optionally with a key) for a request,
 * `pickN` for N distinct endpoints in preference order (replicas for a key), and feedback
 * (`start` when a request is sent, `finish` with its outcome and latency, `reportUtilization`
 * with a node's CPU/memory), plus `eject`/`restore` for outlier ejection. Pure: time comes
 * from the injected Clock, randomness from the injected Random; no I/O.
 *
 * Endpoints are sorted by id at construction, so the key-hashing strategies (ring, maglev,
 * rendezvous, bounded-load) give the same answer for the same key and the same set anywhere.
 * An ejected endpoint is skipped, never removed: keys that did not map to it keep their node.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import { type Clock, type Random, systemClock, systemRandom } from '../runtime/index.ts';
import { type BalancerConfig, DEFAULT_BALANCER_CONFIG, validateBalancerConfig } from './config.ts';
import { type Endpoint, validateEndpoints } from './endpoints.ts';
import { adaptiveCost, decayedValue, errorEwma, peakEwma } from './ewma.ts';
import { hashString } from './hash.ts';
import { buildMaglevTable } from './maglev.ts';
import {
  RENDEZVOUS_MULTIPLIER_1,
  RENDEZVOUS_MULTIPLIER_2,
  RENDEZVOUS_SHIFT,
  SimdRendezvous,
  simdAvailable,
} from './rendezvous-simd.ts';
import { buildRing, type HashRing, ringIndex } from './ring.ts';
import { KEY_STRATEGIES, type StrategyName } from './strategy.ts';

/** How one request ended, as the balancer learns it. */
export interface Outcome {
  ok: boolean;
  latencyMs: number;
}

/** One endpoint's state as the balancer sees it (for `lb status` and tests). */
export interface EndpointStats {
  id: string;
  weight: number;
  inflight: number;
  ejected: boolean;
  /** Peak-EWMA latency now (decayed since the last sample); 0 before any. */
  latencyEwmaMs: number;
  /** EWMA of failures (0..1) now. */
  errorRate: number;
  /** Last reported CPU/memory utilization, 0..1. */
  utilization: number;
  picks: number;
}

export interface BalancerInit {
  strategy: StrategyName;
  endpoints: readonly Endpoint[];
  config?: Partial<BalancerConfig>;
  clock?: Clock;
  random?: Random;
}

/** The per-endpoint arrays every picker reads; index = position in the sorted endpoints. */
export class EndpointTable {
  readonly ids: readonly string[];
  readonly weights: Float64Array;
  readonly uniformWeights: boolean;
  readonly inflight: Int32Array;
  totalInflight = 0;
  readonly ejected: Uint8Array;
  ejectedCount = 0;
  /** Sum of the weights of the endpoints not ejected. */
  openWeight: number;
  readonly latencyMs: Float64Array;
  readonly latencyAtMs: Float64Array;
  readonly errorRate: Float64Array;
  readonly errorAtMs: Float64Array;
  readonly utilization: Float64Array;
  readonly picks: Float64Array;

  constructor(endpoints: readonly Endpoint[]) {
    const size = endpoints.length;
    this.ids = endpoints.map((endpoint) => endpoint.id);
    this.weights = Float64Array.from(endpoints, (endpoint) => endpoint.weight);
    this.uniformWeights = endpoints.every((endpoint) => endpoint.weight === endpoints[0]!.weight);
    this.inflight = new Int32Array(size);
    this.ejected = new Uint8Array(size);
    this.latencyMs = new Float64Array(size);
    this.latencyAtMs = new Float64Array(size);
    this.errorRate = new Float64Array(size);
    this.errorAtMs = new Float64Array(size);
    this.utilization = new Float64Array(size);
    this.picks = new Float64Array(size);
    this.openWeight = 0;
    this.recountOpenWeight();
  }

  /** After an ejection or a restore (summed afresh: no rounding drift). */
  recountOpenWeight(): void {
    let sum = 0;
    for (let i = 0; i < this.ids.length; i++) if (this.ejected[i] === 0) sum += this.weights[i]!;
    this.openWeight = sum;
  }

  get size(): number {
    return this.ids.length;
  }
}

/** A strategy's choice for one request: an index not blocked, or -1 when all are. */
interface Picker {
  pick(keyHash: number, blocked: Uint8Array): number;
  /** Told when an endpoint's requests in flight changed (least-connections keeps lists). */
  inflightChanged?(index: number, from: number, to: number): void;
}

export class Balancer {
  readonly strategy: StrategyName;
  readonly endpoints: readonly Endpoint[];
  readonly config: Readonly<BalancerConfig>;
  private readonly table: EndpointTable;
  private readonly indexOf = new Map<string, number>();
  private readonly picker: Picker;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly hashesKeys: boolean;
  /** pickN's blocked set: the ejected plus those already chosen for this request. */
  private readonly scratch: Uint8Array;

  constructor(init: BalancerInit) {
    this.strategy = init.strategy;
    this.config = validateBalancerConfig({ ...DEFAULT_BALANCER_CONFIG, ...init.config });
    this.endpoints = validateEndpoints(init.endpoints);
    this.clock = init.clock ?? systemClock;
    this.random = init.random ?? systemRandom;
    this.hashesKeys = KEY_STRATEGIES.has(init.strategy);
    this.table = new EndpointTable(this.endpoints);
    for (const [index, id] of this.table.ids.entries()) this.indexOf.set(id, index);
    this.scratch = new Uint8Array(this.table.size);
    this.picker = createPicker(this.strategy, this.table, this.config, this.clock, this.random);
  }

  get size(): number {
    return this.table.size;
  }

  /** True when the strategy's answer depends on the key. */
  get usesKey(): boolean {
    return this.hashesKeys;
  }

  /** The endpoint for one request; null when every endpoint is ejected. A key-hashing
   * strategy without a key hashes a random one. */
  pick(key?: string): string | null {
    const index = this.picker.pick(this.keyHash(key), this.table.ejected);
    if (index < 0) return null;
    this.table.picks[index]!++;
    return this.table.ids[index]!;
  }

  /** `count` distinct endpoints in preference order (fewer when ejections leave fewer). */
  pickN(count: number, key?: string): string[] {
    if (!Number.isInteger(count) || count < 1 || count > this.table.size) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `count must be between 1 and the ${this.table.size} endpoints, got ${count}`,
      );
    }
    const keyHash = this.keyHash(key);
    const blocked = this.scratch;
    blocked.set(this.table.ejected);
    const chosen: string[] = [];
    for (let n = 0; n < count; n++) {
      const index = this.picker.pick(keyHash, blocked);
      if (index < 0) break;
      blocked[index] = 1;
      if (n === 0) this.table.picks[index]!++;
      chosen.push(this.table.ids[index]!);
    }
    return chosen;
  }

  /** A request to `id` was sent: one more in flight. */
  start(id: string): void {
    const index = this.require(id);
    const before = this.table.inflight[index]!;
    this.table.inflight[index] = before + 1;
    this.table.totalInflight++;
    this.picker.inflightChanged?.(index, before, before + 1);
  }

  /** A request to `id` ended: one less in flight; its latency and outcome feed the EWMAs. */
  finish(id: string, outcome: Outcome): void {
    const index = this.require(id);
    const table = this.table;
    const before = table.inflight[index]!;
    if (before > 0) {
      table.inflight[index] = before - 1;
      table.totalInflight--;
      this.picker.inflightChanged?.(index, before, before - 1);
    }
    const now = this.clock.nowMs();
    const decay = this.config.ewmaDecayMs;
    table.latencyMs[index] = peakEwma(
      table.latencyMs[index]!,
      table.latencyAtMs[index]!,
      Math.max(0, outcome.latencyMs),
      now,
      decay,
    );
    table.latencyAtMs[index] = now;
    table.errorRate[index] = errorEwma(
      table.errorRate[index]!,
      table.errorAtMs[index]!,
      !outcome.ok,
      now,
      decay,
    );
    table.errorAtMs[index] = now;
  }

  /** The node's reported load: the higher of CPU and memory utilization, 0..1. */
  reportUtilization(id: string, utilization: number): void {
    const index = this.require(id);
    this.table.utilization[index] = Number.isFinite(utilization)
      ? Math.min(1, Math.max(0, utilization))
      : 0;
  }

  /** Takes `id` out of every choice until restore(); keys elsewhere keep their node. */
  eject(id: string): void {
    const index = this.require(id);
    if (this.table.ejected[index] === 1) return;
    this.table.ejected[index] = 1;
    this.table.ejectedCount++;
    this.table.recountOpenWeight();
  }

  restore(id: string): void {
    const index = this.require(id);
    if (this.table.ejected[index] === 0) return;
    this.table.ejected[index] = 0;
    this.table.ejectedCount--;
    this.table.recountOpenWeight();
  }

  has(id: string): boolean {
    return this.indexOf.has(id);
  }

  stats(): EndpointStats[] {
    const table = this.table;
    const now = this.clock.nowMs();
    return table.ids.map((id, index) => ({
      id,
      weight: table.weights[index]!,
      inflight: table.inflight[index]!,
      ejected: table.ejected[index] === 1,
      latencyEwmaMs: decayedValue(
        table.latencyMs[index]!,
        table.latencyAtMs[index]!,
        now,
        this.config.ewmaDecayMs,
      ),
      errorRate: decayedValue(
        table.errorRate[index]!,
        table.errorAtMs[index]!,
        now,
        this.config.ewmaDecayMs,
      ),
      utilization: table.utilization[index]!,
      picks: table.picks[index]!,
    }));
  }

  /** Requests in flight on `id` (0 for an unknown id). */
  inflightOf(id: string): number {
    const index = this.indexOf.get(id);
    return index === undefined ? 0 : this.table.inflight[index]!;
  }

  private keyHash(key: string | undefined): number {
    if (!this.hashesKeys) return 0;
    return key === undefined ? this.random.int(4294967296) : hashString(key);
  }

  private require(id: string): number {
    const index = this.indexOf.get(id);
    if (index === undefined) {
      throw new RdbnetError(ErrorCode.Usage, `unknown endpoint ${JSON.stringify(id)}`);
    }
    return index;
  }
}

// ---------------------------------------------------------------- pickers

function createPicker(
  strategy: StrategyName,
  table: EndpointTable,
  config: BalancerConfig,
  clock: Clock,
  random: Random,
): Picker {
  switch (strategy) {
    case 'round-robin':
      return new RoundRobin(table);
    case 'weighted-round-robin':
      return weightedRoundRobin(table, config);
    case 'random':
      return new RandomPicker(table, random);
    case 'least-connections':
      return table.uniformWeights
        ? new LeastConnectionsLevels(table)
        : new LeastConnections(table, config);
    case 'p2c':
      return new PowerOfTwo(table, config, random);
    case 'ring':
      return new RingPicker(table, config);
    case 'maglev':
      return new MaglevPicker(table, config);
    case 'rendezvous':
      return new Rendezvous(table);
    case 'bounded-load':
      return new BoundedLoad(table, config);
    case 'p2c-ewma':
      return new PeakEwmaPowerOfTwo(table, config, clock, random);
  }
}

class RoundRobin implements Picker {
  private next = 0;
  private readonly size: number;

  constructor(table: EndpointTable) {
    this.size = table.size;
  }

  pick(_keyHash: number, blocked: Uint8Array): number {
    for (let n = 0; n < this.size; n++) {
      const index = this.next;
      this.next = index + 1 === this.size ? 0 : index + 1;
      if (blocked[index] === 0) return index;
    }
    return -1;
  }
}

/**
 * Smooth weighted round robin (nginx): every turn each endpoint gains its weight, the richest
 * is chosen and pays the total. Turns spread evenly (a=5,b=1,c=1 gives a a b a c a a, never
 * five a in a row). Integer weights with a small sum precompute one cycle of it.
 */
function weightedRoundRobin(table: EndpointTable, config: BalancerConfig): Picker {
  let slots = 0;
  let integral = true;
  for (const weight of table.weights) {
    slots += weight;
    if (!Number.isInteger(weight)) integral = false;
  }
  if (integral && slots <= config.wrrScheduleSlotsMax && slots * table.size <= 1 << 26) {
    return new ScheduledRoundRobin(table, slots);
  }
  return new SmoothWeightedRoundRobin(table);
}

class SmoothWeightedRoundRobin implements Picker {
  private readonly current: Float64Array;
  private readonly weights: Float64Array;

  constructor(table: EndpointTable) {
    this.weights = table.weights;
    this.current = new Float64Array(table.size);
  }

  pick(_keyHash: number, blocked: Uint8Array): number {
    const current = this.current;
    const weights = this.weights;
    let best = -1;
    let total = 0;
    for (let i = 0; i < current.length; i++) {
      if (blocked[i] !== 0) continue;
      current[i]! += weights[i]!;
      total += weights[i]!;
      if (best < 0 || current[i]! > current[best]!) best = i;
    }
    if (best >= 0) current[best]! -= total;
    return best;
  }
}

class ScheduledRoundRobin implements Picker {
  private readonly schedule: Int32Array;
  private next = 0;

  constructor(table: EndpointTable, slots: number) {
    const smooth = new SmoothWeightedRoundRobin(table);
    const none = new Uint8Array(table.size);
    this.schedule = new Int32Array(slots);
    for (let s = 0; s < slots; s++) this.schedule[s] = smooth.pick(0, none);
  }

  pick(_keyHash: number, blocked: Uint8Array): number {
    const schedule = this.schedule;
    for (let n = 0; n < schedule.length; n++) {
      const index = schedule[this.next]!;
      this.next = this.next + 1 === schedule.length ? 0 : this.next + 1;
      if (blocked[index] === 0) return index;
    }
    return -1;
  }
}

/** Random tries before a full scan finds the unblocked ones (ejections are few). */
const RANDOM_TRIES = 8;

/** A uniform index not blocked, or -1. */
function uniformUnblocked(random: Random, blocked: Uint8Array, size: number): number {
  for (let n = 0; n < RANDOM_TRIES; n++) {
    const index = random.int(size);
    if (blocked[index] === 0) return index;
  }
  let open = 0;
  for (let i = 0; i < size; i++) if (blocked[i] === 0) open++;
  if (open === 0) return -1;
  let nth = random.int(open);
  for (let i = 0; i < size; i++) {
    if (blocked[i] === 0 && nth-- === 0) return i;
  }
  return -1;
}

class RandomPicker implements Picker {
  private readonly table: EndpointTable;
  private readonly random: Random;
  /** Running sums of the weights, for a binary search (weighted only). */
  private readonly cumulative: Float64Array;

  constructor(table: EndpointTable, random: Random) {
    this.table = table;
    this.random = random;
    this.cumulative = new Float64Array(table.size);
    let sum = 0;
    for (let i = 0; i < table.size; i++) {
      sum += table.weights[i]!;
      this.cumulative[i] = sum;
    }
  }

  pick(_keyHash: number, blocked: Uint8Array): number {
    const size = this.table.size;
    if (this.table.uniformWeights) return uniformUnblocked(this.random, blocked, size);
    const cumulative = this.cumulative;
    const total = cumulative[size - 1]!;
    for (let n = 0; n < RANDOM_TRIES; n++) {
      const target = this.random.next() * total;
      let low = 0;
      let high = size - 1;
      while (low < high) {
        const mid = (low + high) >>> 1;
        if (cumulative[mid]! <= target) low = mid + 1;
        else high = mid;
      }
      if (blocked[low] === 0) return low;
    }
    // Many blocked: draw over the open ones only.
    let open = 0;
    for (let i = 0; i < size; i++) if (blocked[i] === 0) open += this.table.weights[i]!;
    if (open === 0) return -1;
    let target = this.random.next() * open;
    let last = -1;
    for (let i = 0; i < size; i++) {
      if (blocked[i] !== 0) continue;
      last = i;
      target -= this.table.weights[i]!;
      if (target < 0) return i;
    }
    return last;
  }
}

/** weight / (active + 1)^bias: higher is better (Envoy's least-request weighting). */
function preference(table: EndpointTable, index: number, bias: number): number {
  const active = table.inflight[index]! + 1;
  return table.weights[index]! / (bias === 1 ? active : active ** bias);
}

class LeastConnections implements Picker {
  private readonly table: EndpointTable;
  private readonly bias: number;
  /** Scans start one further each time, so ties rotate instead of favouring the first. */
  private start = 0;

  constructor(table: EndpointTable, config: BalancerConfig) {
    this.table = table;
    this.bias = config.activeRequestBias;
  }

  pick(_keyHash: number, blocked: Uint8Array): number {
    const table = this.table;
    const size = table.size;
    let best = -1;
    let bestPreference = -1;
    let index = this.start;
    this.start = index + 1 === size ? 0 : index + 1;
    for (let n = 0; n < size; n++) {
      if (blocked[index] === 0) {
        const value = preference(table, index, this.bias);
        if (value > bestPreference) {
          best = index;
          bestPreference = value;
        }
      }
      index = index + 1 === size ? 0 : index + 1;
    }
    return best;
  }
}

/**
 * Least connections over equal weights in O(1): one circular list of endpoints per number of
 * requests in flight (the LFU structure), the lowest non-empty level first. A pick rotates
 * its level's list, so ties take turns.
 */
class LeastConnectionsLevels implements Picker {
  private heads: Int32Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private minLevel = 0;
  private maxLevel = 0;

  constructor(table: EndpointTable) {
    const size = table.size;
    this.heads = new Int32Array(16).fill(-1);
    this.next = new Int32Array(size);
    this.prev = new Int32Array(size);
    for (let i = 0; i < size; i++) this.link(i, 0);
  }

  pick(_keyHash: number, blocked: Uint8Array): number {
    for (let level = this.minLevel; level <= this.maxLevel; level++) {
      const head = this.heads[level]!;
      if (head < 0) continue;
      let index = head;
      do {
        if (blocked[index] === 0) {
          this.heads[level] = this.next[index]!;
          return index;
        }
        index = this.next[index]!;
      } while (index !== head);
    }
    return -1;
  }

  inflightChanged(index: number, from: number, to: number): void {
    this.unlink(index, from);
    this.link(index, to);
    if (to < this.minLevel) this.minLevel = to;
    while (this.minLevel < this.maxLevel && this.heads[this.minLevel]! < 0) this.minLevel++;
    while (this.maxLevel > this.minLevel && this.heads[this.maxLevel]! < 0) this.maxLevel--;
  }

  private link(index: number, level: number): void {
    if (level >= this.heads.length) {
      const grown = new Int32Array(Math.max(level + 1, this.heads.length * 2)).fill(-1);
      grown.set(this.heads);
      this.heads = grown;
    }
    if (level > this.maxLevel) this.maxLevel = level;
    const head = this.heads[level]!;
    if (head < 0) {
      this.heads[level] = index;
      this.next[index] = index;
      this.prev[index] = index;
      return;
    }
    // Appended at the tail: just before the head.
    const tail = this.prev[head]!;
    this.next[tail] = index;
    this.prev[index] = tail;
    this.next[index] = head;
    this.prev[head] = index;
  }

  private unlink(index: number, level: number): void {
    const next = this.next[index]!;
    if (next === index) {
      this.heads[level] = -1;
      return;
    }
    const prev = this.prev[index]!;
    this.next[prev] = next;
    this.prev[next] = prev;
    if (this.heads[level] === index) this.heads[level] = next;
  }
}

/** Two distinct unblocked indexes at random (one when only one is open); [-1, -1] for none. */
function twoChoices(random: Random, blocked: Uint8Array, size: number, out: Int32Array): void {
  const first = uniformUnblocked(random, blocked, size);
  out[0] = first;
  out[1] = first;
  if (first < 0 || size === 1) return;
  // The second is drawn from the other size-1 indexes, so it is never the first.
  for (let n = 0; n < RANDOM_TRIES; n++) {
    let second = random.int(size - 1);
    if (second >= first) second++;
    if (blocked[second] === 0) {
      out[1] = second;
      return;
    }
  }
  blocked[first] = 1;
  const second = uniformUnblocked(random, blocked, size);
  blocked[first] = 0;
  if (second >= 0) out[1] = second;
}

class PowerOfTwo implements Picker {
  private readonly table: EndpointTable;
  private readonly random: Random;
  private readonly bias: number;
  private readonly choices = new Int32Array(2);

  constructor(table: EndpointTable, config: BalancerConfig, random: Random) {
    this.table = table;
    this.random = random;
    this.bias = config.activeRequestBias;
  }

  pick(_keyHash: number, blocked: Uint8Array): number {
    twoChoices(this.random, blocked, this.table.size, this.choices);
    const a = this.choices[0]!;
    const b = this.choices[1]!;
    if (a === b) return a;
    return preference(this.table, b, this.bias) > preference(this.table, a, this.bias) ? b : a;
  }
}

/**
 * Adaptive P2C (Finagle's peak EWMA): of two random endpoints, the one with the lower cost =
 * latency × (in flight + 1) × (1 + errorPenalty × error rate) / (1 − utilization) / weight,
 * latency and error rate decayed for the time since their last sample, so an endpoint that
 * was slow a while ago is tried again.
 */
class PeakEwmaPowerOfTwo implements Picker {
  private readonly table: EndpointTable;
  private readonly config: BalancerConfig;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly choices = new Int32Array(2);

  constructor(table: EndpointTable, config: BalancerConfig, clock: Clock, random: Random) {
    this.table = table;
    this.config = config;
    this.clock = clock;
    this.random = random;
  }

  pick(_keyHash: number, blocked: Uint8Array): number {
    twoChoices(this.random, blocked, this.table.size, this.choices);
    const a = this.choices[0]!;
    const b = this.choices[1]!;
    if (a === b) return a;
    const now = this.clock.nowMs();
    return this.cost(b, now) < this.cost(a, now) ? b : a;
  }

  cost(index: number, now: number): number {
    const table = this.table;
    const decay = this.config.ewmaDecayMs;
    return adaptiveCost(
      decayedValue(table.latencyMs[index]!, table.latencyAtMs[index]!, now, decay),
      table.inflight[index]!,
      decayedValue(table.errorRate[index]!, table.errorAtMs[index]!, now, decay),
      table.utilization[index]!,
      table.weights[index]!,
      this.config.errorPenalty,
    );
  }
}

class RingPicker implements Picker {
  protected readonly ring: HashRing;
  protected readonly owners: Int32Array;

  constructor(table: EndpointTable, config: BalancerConfig) {
    this.ring = buildRing(
      table.ids,
      table.weights,
      config.ringVnodesPerWeight,
      config.ringPointsMax,
    );
    this.owners = this.ring.owners;
  }

  pick(keyHash: number, blocked: Uint8Array): number {
    const owners = this.owners;
    const length = owners.length;
    let at = ringIndex(this.ring, keyHash);
    for (let n = 0; n < length; n++) {
      const owner = owners[at]!;
      if (blocked[owner] === 0) return owner;
      at = at + 1 === length ? 0 : at + 1;
    }
    return -1;
  }
}

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018): walk the ring
 * from the key's point to the first endpoint whose load (requests in flight, or keys held) is
 * below ceil(c × (total + 1) × its weight share). Without load it answers like the ring.
 */
class BoundedLoad extends RingPicker {
  private readonly table: EndpointTable;
  private readonly factor: number;

  constructor(table: EndpointTable, config: BalancerConfig) {
    super(table, config);
    this.table = table;
    this.factor = config.boundedLoadFactor;
  }

  override pick(keyHash: number, blocked: Uint8Array): number {
    const table = this.table;
    const owners = this.owners;
    const length = owners.length;
    const perWeight = (this.factor * (table.totalInflight + 1)) / table.openWeight;
    let at = ringIndex(this.ring, keyHash);
    let fallback = -1;
    for (let n = 0; n < length; n++) {
      const owner = owners[at]!;
      if (blocked[owner] === 0) {
        if (table.inflight[owner]! < Math.ceil(perWeight * table.weights[owner]!)) return owner;
        if (fallback < 0) fallback = owner;
      }
      at = at + 1 === length ? 0 : at + 1;
    }
    return fallback;
  }
}

class MaglevPicker implements Picker {
  private readonly lookup: Int32Array;

  constructor(table: EndpointTable, config: BalancerConfig) {
    if (table.size >= config.maglevTableSize) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `maglev needs a table larger than the ${table.size} endpoints (table size ${config.maglevTableSize})`,
        { hint: 'use a larger prime table size, about 100 × the endpoints' },
      );
    }
    this.lookup = buildMaglevTable(table.ids, table.weights, config.maglevTableSize);
  }

  pick(keyHash: number, blocked: Uint8Array): number {
    const lookup = this.lookup;
    const size = lookup.length;
    let slot = keyHash % size;
    const owner = lookup[slot]!;
    if (blocked[owner] === 0) return owner;
    // Ejected or already chosen: the next slots in the table, whose owners are spread evenly.
    for (let n = 1; n < size; n++) {
      slot = slot + 1 === size ? 0 : slot + 1;
      const next = lookup[slot]!;
      if (blocked[next] === 0) return next;
    }
    return -1;
  }
}

/** Highest random weight: the endpoint whose score with the key is best; weighted as
 * weight / −ln(u) (u the score in (0, 1)), so shares follow the weights and removal moves
 * only the removed endpoint's keys. The key is hashed once (murmur3, by the caller); each
 * endpoint's score is then one cheap 32-bit mix of the key with the endpoint's seed, itself
 * a full murmur3 hash of its id precomputed here: two well-mixed words need no full
 * finalizer to rank independently. Equal weights rank the scores themselves (signed 32-bit
 * integers, no heap numbers, no log); −ln(u) is paid only when the weights differ. */
class Rendezvous implements Picker {
  private readonly table: EndpointTable;
  private readonly seeds: Int32Array;
  private readonly simd: SimdRendezvous | null;

  constructor(table: EndpointTable) {
    this.table = table;
    this.seeds = Int32Array.from(table.ids, (id) => hashString(id, RENDEZVOUS_SEED) | 0);
    this.simd = this.seeds.length > 0 && simdAvailable() ? new SimdRendezvous(this.seeds) : null;
  }

  pick(keyHash: number, blocked: Uint8Array): number {
    const table = this.table;
    if (!table.uniformWeights) return this.pickWeighted(keyHash | 0, blocked);
    const seeds = this.seeds;
    const count = seeds.length;
    const key = keyHash | 0;
    if (blocked === table.ejected && table.ejectedCount === 0) {
      // Nothing ejected (the usual case): every endpoint scored, four at a time in SIMD.
      if (this.simd !== null) return this.simd.argmax(key);
      let best = 0;
      let bestScore = rendezvousScore(key, seeds[0]!);
      for (let i = 1; i < count; i++) {
        const score = rendezvousScore(key, seeds[i]!);
        if (score > bestScore) {
          best = i;
          bestScore = score;
        }
      }
      return best;
    }
    let best = -1;
    let bestScore = 0;
    for (let i = 0; i < count; i++) {
      if (blocked[i] !== 0) continue;
      const score = rendezvousScore(key, seeds[i]!);
      if (best < 0 || score > bestScore) {
        best = i;
        bestScore = score;
      }
    }
    return best;
  }

  private pickWeighted(key: number, blocked: Uint8Array): number {
    const seeds = this.seeds;
    const weights = this.table.weights;
    let best = -1;
    let bestScore = -1;
    for (let i = 0; i < seeds.length; i++) {
      if (blocked[i] !== 0) continue;
      const u = (rendezvousScore(key, seeds[i]!) + 2147483648.5) / 4294967296;
      const score = weights[i]! / -Math.log(u);
      if (score > bestScore) {
        best = i;
        bestScore = score;
      }
    }
    return best;
  }
}

/** Seed of the endpoints' rendezvous hashes (apart from every other use of their ids). */
const RENDEZVOUS_SEED = 0x68727721; // 'hrw!'

/** One endpoint's score for one key: a multiply, a shift-xor and a multiply (the first and
 * last steps of a murmur-style finalizer) over key ⊕ seed; a signed 32-bit integer. */
function rendezvousScore(key: number, seed: number): number {
  let h = Math.imul(key ^ seed, RENDEZVOUS_MULTIPLIER_1);
  h ^= h >>> RENDEZVOUS_SHIFT;
  return Math.imul(h, RENDEZVOUS_MULTIPLIER_2);
}
