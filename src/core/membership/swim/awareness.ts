/**
 * Lifeguard local health ("awareness"). A node that misses acks and nacks, refutes
 * suspicions about itself or notices it was paused is more likely the slow one than its
 * peers, so it slows its own probing and waits longer for answers instead of accusing
 * others. The score runs 0..max−1; timeouts are multiplied by score + 1.
 */
export class Awareness {
  private readonly max: number;
  private current = 0;

  constructor(max: number) {
    this.max = max;
  }

  get score(): number {
    return this.current;
  }

  get multiplier(): number {
    return this.current + 1;
  }

  applyDelta(delta: number): void {
    this.current = Math.min(this.max - 1, Math.max(0, this.current + delta));
  }

  scale(ms: number): number {
    return ms * (this.current + 1);
  }
}
