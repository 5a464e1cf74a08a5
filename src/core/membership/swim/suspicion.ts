/**
 * Lifeguard's dynamic suspicion timeout. A suspicion starts at the maximum timeout and
 * shrinks toward the minimum as independent members confirm it, with the log of the
 * confirmations (memberlist's formula):
 *
 *   timeout(c) = max(min, max − (max − min) · log(c + 1) / log(k + 1))
 *
 * so a lone accuser, who may be the unhealthy one, waits long, while a member everyone
 * fails to reach is declared dead soon. The minimum never goes below the stall floor
 * (config.ts), which is what guarantees that a member stalled for at most the stall
 * tolerance is never declared dead.
 */
import type { SwimConfig } from './config.ts';

/** Lowest suspicion timeout, measured from when the suspicion starts. A suspicion starts
 * no earlier than one probe interval after the probe that went unanswered was sent, hence
 * the subtraction: the stall floor is measured from when the member stopped answering. */
export function stallFloorMs(config: SwimConfig): number {
  return config.stallToleranceMs + config.refuteBudgetMs - config.probeIntervalMs;
}

export function suspicionTimeoutMinMs(config: SwimConfig, members: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, members)));
  return Math.max(stallFloorMs(config), config.suspicionMult * nodeScale * config.probeIntervalMs);
}

export function suspicionTimeoutMs(
  confirmations: number,
  expected: number,
  minMs: number,
  maxMs: number,
): number {
  if (expected <= 0) return minMs;
  const fraction = Math.log(confirmations + 1) / Math.log(expected + 1);
  return Math.max(minMs, maxMs - (maxMs - minMs) * fraction);
}

/**
 * One member's suspicion: who started it, who confirmed it, and when it becomes death.
 *
 * Before the deadline the suspect gets a last-chance ping (`lastChanceLeadMs` ahead): it
 * carries the suspicion (buddy system), so a suspect that is alive but missed the
 * accusation and every refutation wave refutes in its ack. Gossip reaches any one member
 * with high probability, never certainty; this makes every death follow a direct
 * question to the member itself.
 */
export class Suspicion {
  startMs: number;
  readonly fromId: string;
  /** Confirmations that drive the timeout to its minimum (k). */
  readonly expected: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly lastChanceLeadMs: number;
  deadlineMs: number;
  /** When the last-chance ping went out; undefined until then. */
  lastChanceAtMs: number | undefined;
  private readonly confirmers = new Set<string>();

  constructor(
    startMs: number,
    fromId: string,
    expected: number,
    minMs: number,
    maxMs: number,
    lastChanceLeadMs: number,
  ) {
    this.startMs = startMs;
    this.fromId = fromId;
    this.expected = Math.max(0, expected);
    this.minMs = minMs;
    this.maxMs = Math.max(minMs, maxMs);
    this.lastChanceLeadMs = lastChanceLeadMs;
    this.deadlineMs = startMs + suspicionTimeoutMs(0, this.expected, this.minMs, this.maxMs);
  }

  get confirmations(): number {
    return this.confirmers.size;
  }

  /** The next moment something is due: the last-chance ping, then the deadline. */
  get wakeMs(): number {
    return this.lastChanceAtMs === undefined
      ? this.deadlineMs - this.lastChanceLeadMs
      : this.deadlineMs;
  }

  /** Records an independent confirmation; true if it was new (and so worth gossiping). */
  confirm(fromId: string): boolean {
    if (this.confirmers.size >= this.expected) return false;
    if (fromId === this.fromId || this.confirmers.has(fromId)) return false;
    this.confirmers.add(fromId);
    const timeout = suspicionTimeoutMs(this.confirmers.size, this.expected, this.minMs, this.maxMs);
    this.deadlineMs = this.startMs + timeout;
    if (this.lastChanceAtMs !== undefined) {
      // The suspect keeps its full lead to answer the last-chance ping.
      this.deadlineMs = Math.max(this.deadlineMs, this.lastChanceAtMs + this.lastChanceLeadMs);
    }
    return true;
  }

  /** The last-chance ping is going out now; the suspect gets the full lead to answer. */
  lastChance(nowMs: number): void {
    this.lastChanceAtMs = nowMs;
    this.deadlineMs = Math.max(this.deadlineMs, nowMs + this.lastChanceLeadMs);
  }

  /** Our own process was paused: nobody could refute to us meanwhile, so push it back. */
  postpone(ms: number): void {
    this.startMs += ms;
    this.deadlineMs += ms;
    if (this.lastChanceAtMs !== undefined) this.lastChanceAtMs += ms;
  }
}
