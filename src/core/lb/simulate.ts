/**
 * `rdbnet lb simulate`: what a strategy does to a set of nodes before anyone changes it.
 *
 *   distribution  K keys (`key-0` … `key-(K−1)`) picked over nodes n1…nN: max/mean, min/mean
 *                 and the standard deviation of keys per node (bounded-load holds each key,
 *                 as it would hold a session, so its cap applies).
 *   change        the same keys after removing some nodes and/or adding some: the share whose
 *                 first pick changed, against the least any strategy could move.
 *   slow node     Q requests on virtual time through a latency model, one node FACTOR× slower:
 *                 the share of requests the balancer still sends it, and the latencies.
 *
 * Deterministic: the same input and seed give the same figures on any machine.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import { type Clock, seededRandom } from '../runtime/index.ts';
import { Balancer } from './balancer.ts';
import type { BalancerConfig } from './config.ts';
import { ENDPOINTS_MAX } from './endpoints.ts';
import type { StrategyName } from './strategy.ts';

/** Keys and requests a simulation takes at most (bounded work for one command). */
export const SIMULATED_KEYS_MAX = 10_000_000;
export const SIMULATED_REQUESTS_MAX = 10_000_000;

/** Latency model: a healthy node answers in BASE_LATENCY_MS × U(0.5, 1.5), serving
 * SLOTS_PER_NODE requests at once and queueing the rest in arrival order. Requests arrive
 * as a Poisson stream at TARGET_UTILIZATION of what the healthy cluster can serve. */
export const BASE_LATENCY_MS = 10;
export const SLOTS_PER_NODE = 8;
export const TARGET_UTILIZATION = 0.5;

export interface SimulationInit {
  strategy: StrategyName;
  /** Nodes n1…nN. */
  nodes: number;
  keys: number;
  /** Ids of nodes to remove (each one of n1…nN). */
  remove: readonly string[];
  /** Nodes to add: n(N+1)…n(N+A). */
  add: number;
  /** One node made `factor` times slower, for the latency model; null: no latency run. */
  slow: { id: string; factor: number } | null;
  /** Requests through the latency model. */
  requests: number;
  seed: number;
  config?: Partial<BalancerConfig>;
}

export interface SimulationResult {
  strategy: StrategyName;
  nodes: number;
  keys: number;
  /** Keys of the fullest node over the mean. */
  maxOverMean: number;
  minOverMean: number;
  /** Standard deviation of keys per node, in keys. */
  stddev: number;
  /** stddev over the mean. */
  relativeStddev: number;
  removed: string[];
  added: string[];
  /** Share of keys whose first pick changed after the change; null without a change. */
  movedFraction: number | null;
  /** The least any balanced strategy must move: max(R/N, A/(N−R+A)); null without a change. */
  idealMovedFraction: number | null;
  /** The distribution after the change; null without one. */
  after: { nodes: number; maxOverMean: number; stddev: number } | null;
  slow: { id: string; factor: number } | null;
  requests: number;
  /** Share of the requests the slow node got; null without --slow. */
  slowShare: number | null;
  /** Latencies of the simulated requests (queueing included); null without --slow. */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  seed: number;
}

function usage(message: string, hint?: string): never {
  throw new RdbnetError(ErrorCode.Usage, message, hint === undefined ? undefined : { hint });
}

export function nodeName(index: number): string {
  return `n${index + 1}`;
}

/** Checks a simulation's input: every problem is RDB_USAGE naming the flag. */
export function validateSimulation(init: SimulationInit): void {
  if (!Number.isInteger(init.nodes) || init.nodes < 1 || init.nodes > ENDPOINTS_MAX) {
    usage(`--nodes must be an integer in 1..${ENDPOINTS_MAX}, got ${init.nodes}`);
  }
  if (!Number.isInteger(init.keys) || init.keys < 1 || init.keys > SIMULATED_KEYS_MAX) {
    usage(`--keys must be an integer in 1..${SIMULATED_KEYS_MAX}, got ${init.keys}`);
  }
  const names = new Set(Array.from({ length: init.nodes }, (_, i) => nodeName(i)));
  const removed = new Set<string>();
  for (const id of init.remove) {
    if (!names.has(id))
      usage(`--remove: there is no node ${JSON.stringify(id)} in n1…n${init.nodes}`);
    if (removed.has(id)) usage(`--remove: node ${id} is listed twice`);
    removed.add(id);
  }
  if (removed.size >= init.nodes) usage('--remove would remove every node');
  if (!Number.isInteger(init.add) || init.add < 0 || init.nodes + init.add > ENDPOINTS_MAX) {
    usage(`--add must be an integer in 0..${ENDPOINTS_MAX - init.nodes}, got ${init.add}`);
  }
  if (init.slow !== null) {
    if (!names.has(init.slow.id)) {
      usage(`--slow: there is no node ${JSON.stringify(init.slow.id)} in n1…n${init.nodes}`);
    }
    if (!Number.isFinite(init.slow.factor) || init.slow.factor <= 0 || init.slow.factor > 10_000) {
      usage(
        `--slow: the factor must be a number above 0 and at most 10000, got ${init.slow.factor}`,
      );
    }
  }
  if (
    !Number.isInteger(init.requests) ||
    init.requests < 1 ||
    init.requests > SIMULATED_REQUESTS_MAX
  ) {
    usage(`--requests must be an integer in 1..${SIMULATED_REQUESTS_MAX}, got ${init.requests}`);
  }
}

/** `--remove R` (a count: the last R nodes) or `--remove n3,n7` (ids). */
export function parseRemoval(value: string, nodes: number): string[] {
  const text = value.trim();
  if (/^\d+$/.test(text)) {
    const count = Number(text);
    if (count >= nodes) usage(`--remove ${count} would remove every one of the ${nodes} nodes`);
    return Array.from({ length: count }, (_, i) => nodeName(nodes - 1 - i));
  }
  const ids = text.split(/[\s,]+/).filter((id) => id !== '');
  if (ids.length === 0)
    usage('--remove is empty', 'give a count (--remove 1) or ids (--remove n3,n7)');
  return ids;
}

/** `--slow ID=FACTOR`, e.g. n1=10. */
export function parseSlow(value: string): { id: string; factor: number } {
  const match = /^\s*([^\s=]+)\s*=\s*([0-9]*\.?[0-9]+)\s*$/.exec(value);
  if (match === null) usage(`--slow must be ID=FACTOR (e.g. n1=10), got ${JSON.stringify(value)}`);
  return { id: match[1]!, factor: Number(match[2]) };
}

export function simulate(init: SimulationInit): SimulationResult {
  validateSimulation(init);
  const before = Array.from({ length: init.nodes }, (_, i) => nodeName(i));
  const removed = new Set(init.remove);
  const added = Array.from({ length: init.add }, (_, i) => nodeName(init.nodes + i));
  const afterIds = [...before.filter((id) => !removed.has(id)), ...added];
  const changed = removed.size > 0 || added.length > 0;

  const first = distribute(init, before);
  const result: SimulationResult = {
    strategy: init.strategy,
    nodes: init.nodes,
    keys: init.keys,
    ...spread(first.counts, init.keys),
    removed: [...init.remove],
    added,
    movedFraction: null,
    idealMovedFraction: null,
    after: null,
    slow: init.slow,
    requests: init.requests,
    slowShare: null,
    latencyP50Ms: null,
    latencyP99Ms: null,
    seed: init.seed,
  };
  if (changed) {
    const second = distribute(init, afterIds);
    let moved = 0;
    for (let k = 0; k < init.keys; k++) {
      if (first.ids[first.picks[k]!] !== second.ids[second.picks[k]!]) moved++;
    }
    const survivors = init.nodes - removed.size;
    result.movedFraction = round6(moved / init.keys);
    result.idealMovedFraction = round6(
      Math.max(removed.size / init.nodes, added.length / (survivors + added.length)),
    );
    const after = spread(second.counts, init.keys);
    result.after = { nodes: afterIds.length, maxOverMean: after.maxOverMean, stddev: after.stddev };
  }
  if (init.slow !== null) Object.assign(result, latencyRun(init, before, init.slow));
  return result;
}

/** First pick of every key; the index of the id in `ids` per key, and keys per node. */
function distribute(
  init: SimulationInit,
  ids: readonly string[],
): { ids: readonly string[]; picks: Int32Array; counts: Float64Array } {
  const balancer = new Balancer({
    strategy: init.strategy,
    endpoints: ids.map((id) => ({ id, weight: 1 })),
    random: seededRandom(init.seed),
    clock: { nowMs: () => 0, wallMs: () => 0 },
    ...(init.config === undefined ? {} : { config: init.config }),
  });
  const sorted = balancer.endpoints.map((endpoint) => endpoint.id);
  const indexOf = new Map(sorted.map((id, index) => [id, index]));
  const picks = new Int32Array(init.keys);
  const counts = new Float64Array(sorted.length);
  const holds = init.strategy === 'bounded-load';
  for (let k = 0; k < init.keys; k++) {
    const id = balancer.pick(`key-${k}`)!;
    const index = indexOf.get(id)!;
    picks[k] = index;
    counts[index]!++;
    if (holds) balancer.start(id);
  }
  return { ids: sorted, picks, counts };
}

function spread(
  counts: Float64Array,
  keys: number,
): { maxOverMean: number; minOverMean: number; stddev: number; relativeStddev: number } {
  const mean = keys / counts.length;
  let max = 0;
  let min = Number.POSITIVE_INFINITY;
  let squares = 0;
  for (const count of counts) {
    max = Math.max(max, count);
    min = Math.min(min, count);
    squares += (count - mean) ** 2;
  }
  const stddev = Math.sqrt(squares / counts.length);
  return {
    maxOverMean: round6(max / mean),
    minOverMean: round6(min / mean),
    stddev: round3(stddev),
    relativeStddev: round6(stddev / mean),
  };
}

/**
 * The latency model on virtual time: Poisson arrivals, each request picked by the balancer
 * (with its key), served by its node when a slot is free (else queued), and reported back
 * (in flight, latency) when it completes.
 */
function latencyRun(
  init: SimulationInit,
  ids: readonly string[],
  slow: { id: string; factor: number },
): Pick<SimulationResult, 'slowShare' | 'latencyP50Ms' | 'latencyP99Ms'> {
  let now = 0;
  const clock: Clock = { nowMs: () => now, wallMs: () => now };
  const random = seededRandom(init.seed ^ 0x5eed);
  const balancer = new Balancer({
    strategy: init.strategy,
    endpoints: ids.map((id) => ({ id, weight: 1 })),
    random: seededRandom(init.seed),
    clock,
    ...(init.config === undefined ? {} : { config: init.config }),
  });
  const sorted = balancer.endpoints.map((endpoint) => endpoint.id);
  const indexOf = new Map(sorted.map((id, index) => [id, index]));
  const factor = sorted.map((id) => (id === slow.id ? slow.factor : 1));
  const busy = new Int32Array(sorted.length);
  /** Arrival times of queued requests, per node (FIFO with a read index). */
  const queues: number[][] = sorted.map(() => []);
  const heads = new Int32Array(sorted.length);
  const completions = new CompletionHeap();
  const latencies = new Float64Array(init.requests);
  let done = 0;
  let slowPicks = 0;
  const arrivalRate = TARGET_UTILIZATION * ((sorted.length * SLOTS_PER_NODE) / BASE_LATENCY_MS);
  let nextArrival = 0;
  let arrived = 0;

  const serve = (node: number, arrivedAt: number): void => {
    busy[node]!++;
    const service = BASE_LATENCY_MS * factor[node]! * (0.5 + random.next());
    completions.push(now + service, node, arrivedAt);
  };
  while (done < init.requests) {
    if (
      arrived < init.requests &&
      (completions.size === 0 || nextArrival <= completions.peekTime())
    ) {
      now = nextArrival;
      const id = balancer.pick(`key-${arrived % init.keys}`)!;
      const node = indexOf.get(id)!;
      if (id === slow.id) slowPicks++;
      balancer.start(id);
      if (busy[node]! < SLOTS_PER_NODE) serve(node, now);
      else queues[node]!.push(now);
      arrived++;
      nextArrival = now - Math.log(1 - random.next()) / arrivalRate;
    } else {
      const { time, node, arrivedAt } = completions.pop();
      now = time;
      busy[node]!--;
      const latency = now - arrivedAt;
      latencies[done++] = latency;
      balancer.finish(sorted[node]!, { ok: true, latencyMs: latency });
      const queue = queues[node]!;
      if (heads[node]! < queue.length) {
        serve(node, queue[heads[node]!]!);
        heads[node]!++;
        if (heads[node]! > 1024 && heads[node]! * 2 > queue.length) {
          queue.splice(0, heads[node]!);
          heads[node] = 0;
        }
      }
    }
  }
  latencies.sort();
  return {
    slowShare: round6(slowPicks / init.requests),
    latencyP50Ms: round3(latencies[Math.floor(0.5 * (init.requests - 1))]!),
    latencyP99Ms: round3(latencies[Math.floor(0.99 * (init.requests - 1))]!),
  };
}

/** A binary min-heap of request completions by time (parallel typed arrays, grown as needed). */
class CompletionHeap {
  private times = new Float64Array(1024);
  private nodes = new Int32Array(1024);
  private arrivals = new Float64Array(1024);
  size = 0;

  push(time: number, node: number, arrivedAt: number): void {
    if (this.size === this.times.length) this.grow();
    let at = this.size++;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (this.times[parent]! <= time) break;
      this.move(parent, at);
      at = parent;
    }
    this.times[at] = time;
    this.nodes[at] = node;
    this.arrivals[at] = arrivedAt;
  }

  peekTime(): number {
    return this.times[0]!;
  }

  pop(): { time: number; node: number; arrivedAt: number } {
    const top = { time: this.times[0]!, node: this.nodes[0]!, arrivedAt: this.arrivals[0]! };
    const last = --this.size;
    const time = this.times[last]!;
    const node = this.nodes[last]!;
    const arrivedAt = this.arrivals[last]!;
    let at = 0;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= last) break;
      if (child + 1 < last && this.times[child + 1]! < this.times[child]!) child++;
      if (this.times[child]! >= time) break;
      this.move(child, at);
      at = child;
    }
    this.times[at] = time;
    this.nodes[at] = node;
    this.arrivals[at] = arrivedAt;
    return top;
  }

  private move(from: number, to: number): void {
    this.times[to] = this.times[from]!;
    this.nodes[to] = this.nodes[from]!;
    this.arrivals[to] = this.arrivals[from]!;
  }

  private grow(): void {
    const times = new Float64Array(this.times.length * 2);
    const nodes = new Int32Array(this.nodes.length * 2);
    const arrivals = new Float64Array(this.arrivals.length * 2);
    times.set(this.times);
    nodes.set(this.nodes);
    arrivals.set(this.arrivals);
    this.times = times;
    this.nodes = nodes;
    this.arrivals = arrivals;
  }
}

function round6(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
