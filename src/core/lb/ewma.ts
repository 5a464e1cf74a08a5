/**
 * The arithmetic of the adaptive strategy, shared by the balancer and the per-peer registry:
 * time-decayed EWMAs and the cost p2c-ewma minimises.
 */

/** Cost of an unmeasured endpoint that already has requests in flight (Finagle's penalty):
 * a new endpoint is tried once, and not piled onto before its first answer. */
export const UNMEASURED_BUSY_COST = 1e12;

/** `value` (sampled at `atMs`) decayed to `nowMs` with time constant `decayMs`. */
export function decayedValue(value: number, atMs: number, nowMs: number, decayMs: number): number {
  return value * Math.exp(-Math.max(0, nowMs - atMs) / decayMs);
}

/**
 * Peak EWMA (Finagle): a sample above the estimate replaces it at once (react to a slowdown
 * now); one below pulls it down with weight 1 − e^(−Δt/τ) (recover gradually).
 */
export function peakEwma(
  previous: number,
  previousAtMs: number,
  sample: number,
  nowMs: number,
  decayMs: number,
): number {
  if (sample > previous) return sample;
  const w = Math.exp(-Math.max(0, nowMs - previousAtMs) / decayMs);
  return previous * w + sample * (1 - w);
}

/** Plain time-decayed EWMA of 0/1 outcomes (1 = failure). */
export function errorEwma(
  previous: number,
  previousAtMs: number,
  failed: boolean,
  nowMs: number,
  decayMs: number,
): number {
  const w = Math.exp(-Math.max(0, nowMs - previousAtMs) / decayMs);
  return previous * w + (failed ? 1 - w : 0);
}

/**
 * What p2c-ewma minimises: latency × (in flight + 1), × (1 + errorPenalty × error rate) so a
 * node that fails fast does not attract traffic for its low latency, ÷ (1 − utilization)
 * because a queue's response time grows so with load, ÷ weight.
 */
export function adaptiveCost(
  latencyMs: number,
  inflight: number,
  errorRate: number,
  utilization: number,
  weight: number,
  errorPenalty: number,
): number {
  if (latencyMs === 0 && inflight > 0) return UNMEASURED_BUSY_COST;
  const headroom = Math.max(0.01, 1 - utilization);
  return (latencyMs * (inflight + 1) * (1 + errorPenalty * errorRate)) / headroom / weight;
}
