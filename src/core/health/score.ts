/**
 * One number per member for load balancers and operators: 1 is a healthy, close, lossless
 * member, 0 one that is unavailable. It multiplies three independent factors, so any one
 * of them can pull a member down on its own.
 */
export interface MemberHealthInput {
  /** Current phi of the member's detector. */
  phi: number;
  /** Phi at which the member counts as unavailable. */
  phiThreshold: number;
  /** Smoothed round-trip time; undefined before the first direct ack. */
  rttMs: number | undefined;
  /** RTT that halves the latency factor (a member as slow as the probe timeout scores half). */
  rttReferenceMs: number;
  /** Recent fraction of probes that went unanswered, 0..1. */
  lossRatio: number;
}

export function memberScore(input: MemberHealthInput): number {
  const availability = clamp01(1 - input.phi / input.phiThreshold);
  const latency =
    input.rttMs === undefined ? 1 : input.rttReferenceMs / (input.rttReferenceMs + input.rttMs);
  const delivery = 1 - clamp01(input.lossRatio);
  return clamp01(availability * latency * delivery);
}

function clamp01(value: number): number {
  return Number.isNaN(value) ? 0 : Math.min(1, Math.max(0, value));
}
