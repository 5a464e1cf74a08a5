/**
 * Vivaldi network coordinates (Dabek, Cox, Kaashoek, Morris: "Vivaldi: A Decentralized Network
 * Coordinate System", SIGCOMM 2004), with the height vector of the paper's section 5.5 and a
 * per-node adjustment term, as Serf and Consul use them: each node places itself in a small
 * Euclidean space so that the distance between two coordinates estimates the RTT between their
 * nodes, without any node measuring every pair. SWIM's direct probes give the samples: each
 * ack carries the target's coordinate, the prober's round trip is the observed RTT.
 *
 * Units are seconds inside (the paper's and Serf's scale, so the constants keep their
 * meaning); the API takes and gives milliseconds. Pure: randomness is injected (only used to
 * push apart two nodes that sit on the same point).
 */
import type { Random } from '../runtime/index.ts';

export const VIVALDI_DIMENSIONS = 8;

export interface VivaldiConfig {
  /** Error of a new coordinate (and the most it may grow to): 1.5 = "no idea". */
  errorMax: number;
  /** c_e: how fast the error estimate moves towards a sample's relative error. */
  errorGain: number;
  /** c_c: how far a sample moves the coordinate, scaled by the relative confidence. */
  moveGain: number;
  /** Samples of RTT minus distance averaged into the adjustment term; 0 turns it off. */
  adjustmentWindow: number;
  /** Least height (seconds): every node is a little way off the core. */
  heightMinSeconds: number;
  /** RTT samples kept per peer; the median of them is used (filters one slow sample out). */
  latencyFilterSize: number;
  /** Peers whose samples are kept at most (the oldest-updated is forgotten beyond it). */
  peersMax: number;
}

export const VIVALDI_DEFAULTS: Readonly<VivaldiConfig> = Object.freeze({
  errorMax: 1.5,
  errorGain: 0.25,
  moveGain: 0.25,
  adjustmentWindow: 20,
  heightMinSeconds: 10e-6,
  latencyFilterSize: 3,
  peersMax: 1024,
});

/** A node's place: what SWIM acks carry and `cluster rtt` reads. */
export interface Coordinate {
  vec: number[];
  height: number;
  adjustment: number;
  error: number;
}

/** Below this a length is zero (two coordinates on the same point). */
const ZERO = 1e-6;
/** A sample outside (0, 10 s] is not a round trip. */
const RTT_SECONDS_MAX = 10;

export function originCoordinate(config: VivaldiConfig = VIVALDI_DEFAULTS): Coordinate {
  return {
    vec: new Array<number>(VIVALDI_DIMENSIONS).fill(0),
    height: config.heightMinSeconds,
    adjustment: 0,
    error: config.errorMax,
  };
}

/** A coordinate from the wire is usable: the right size, every number finite, sane ranges. */
export function validCoordinate(c: Coordinate): boolean {
  return (
    c.vec.length === VIVALDI_DIMENSIONS &&
    c.vec.every(Number.isFinite) &&
    Number.isFinite(c.height) &&
    c.height >= 0 &&
    Number.isFinite(c.adjustment) &&
    Number.isFinite(c.error) &&
    c.error >= 0
  );
}

/** Euclidean distance of the vectors plus both heights, in seconds (no adjustment). */
function rawDistance(a: Coordinate, b: Coordinate): number {
  let sum = 0;
  for (let i = 0; i < VIVALDI_DIMENSIONS; i++) {
    const d = a.vec[i]! - b.vec[i]!;
    sum += d * d;
  }
  return Math.sqrt(sum) + a.height + b.height;
}

/** The estimated RTT between the nodes of two coordinates, in milliseconds. */
export function estimateRttMs(a: Coordinate, b: Coordinate): number {
  const raw = rawDistance(a, b);
  const adjusted = raw + a.adjustment + b.adjustment;
  // Adjustments correct a systematic error; they may not make a distance negative.
  return (adjusted > 0 ? adjusted : raw) * 1000;
}

export class VivaldiClient {
  private coord: Coordinate;
  private readonly config: VivaldiConfig;
  private readonly random: Random;
  private readonly samples = new Map<string, number[]>();
  private readonly adjustments: number[];
  private adjustmentIndex = 0;
  /** Samples applied; for stats. */
  updates = 0;

  constructor(random: Random, config: Partial<VivaldiConfig> = {}) {
    this.config = { ...VIVALDI_DEFAULTS, ...config };
    this.random = random;
    this.coord = originCoordinate(this.config);
    this.adjustments = new Array<number>(this.config.adjustmentWindow).fill(0);
  }

  coordinate(): Coordinate {
    return { ...this.coord, vec: [...this.coord.vec] };
  }

  /** One round trip to `peer`, whose coordinate came with its answer. */
  observe(peer: string, peerCoordinate: Coordinate, rttMs: number): void {
    const seconds = rttMs / 1000;
    if (!(seconds > 0 && seconds <= RTT_SECONDS_MAX) || !validCoordinate(peerCoordinate)) return;
    const rtt = this.filtered(peer, seconds);
    this.move(peerCoordinate, rtt);
    this.adjust(peerCoordinate, rtt);
    this.updates++;
  }

  /** Forgets a peer's samples (it left or died). */
  forget(peer: string): void {
    this.samples.delete(peer);
  }

  /** The median of the peer's last latencyFilterSize samples, this one included. */
  private filtered(peer: string, seconds: number): number {
    let window = this.samples.get(peer);
    if (window === undefined) {
      if (this.samples.size >= this.config.peersMax) {
        const oldest = this.samples.keys().next().value;
        if (oldest !== undefined) this.samples.delete(oldest);
      }
      window = [];
    } else {
      this.samples.delete(peer); // re-inserted below: Map order is least recently updated first
    }
    window.push(seconds);
    if (window.length > this.config.latencyFilterSize) window.shift();
    this.samples.set(peer, window);
    const sorted = [...window].sort((a, b) => a - b);
    return sorted[sorted.length >> 1]!;
  }

  /** The paper's update: a spring between the two nodes, stretched by rtt - distance. */
  private move(other: Coordinate, rtt: number): void {
    const { config } = this;
    const self = this.coord;
    const distance = rawDistance(self, other);
    const relativeError = Math.abs(distance - rtt) / rtt;
    const totalError = Math.max(self.error + other.error, ZERO);
    // How much to trust this sample: more when we are unsure and the other is sure.
    const weight = self.error / totalError;
    self.error = Math.min(
      config.errorMax,
      config.errorGain * weight * relativeError + self.error * (1 - config.errorGain * weight),
    );
    const force = config.moveGain * weight * (rtt - distance);
    // Unit vector from the other node towards us (random when we sit on the same point).
    const direction = new Array<number>(VIVALDI_DIMENSIONS);
    let length = 0;
    for (let i = 0; i < VIVALDI_DIMENSIONS; i++) {
      direction[i] = self.vec[i]! - other.vec[i]!;
      length += direction[i]! * direction[i]!;
    }
    length = Math.sqrt(length);
    if (length < ZERO) {
      length = 0;
      for (let i = 0; i < VIVALDI_DIMENSIONS; i++) {
        direction[i] = this.random.next() - 0.5;
        length += direction[i]! * direction[i]!;
      }
      length = Math.sqrt(length);
      for (let i = 0; i < VIVALDI_DIMENSIONS; i++) self.vec[i]! += (direction[i]! / length) * force;
      return;
    }
    for (let i = 0; i < VIVALDI_DIMENSIONS; i++) self.vec[i]! += (direction[i]! / length) * force;
    // The height takes its share of the force in proportion to the heights' part of the distance.
    self.height = Math.max(
      config.heightMinSeconds,
      self.height + ((self.height + other.height) * force) / length,
    );
  }

  /** The adjustment: half the mean of recent (rtt - distance), a per-node offset. */
  private adjust(other: Coordinate, rtt: number): void {
    const window = this.config.adjustmentWindow;
    if (window === 0) return;
    this.adjustments[this.adjustmentIndex] = rtt - rawDistance(this.coord, other);
    this.adjustmentIndex = (this.adjustmentIndex + 1) % window;
    let sum = 0;
    for (const value of this.adjustments) sum += value;
    this.coord.adjustment = sum / (2 * window);
  }
}
