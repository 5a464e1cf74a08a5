/**
 * Counts over a sliding time window kept in a fixed number of buckets (bounded memory: the
 * window slides one bucket at a time, and buckets older than the window are cleared).
 */
export class WindowCounts {
  private readonly bucketMs: number;
  private readonly first: Float64Array;
  private readonly second: Float64Array;
  /** Bucket number (time / bucketMs) each slot currently holds. */
  private readonly epochs: Float64Array;
  /** The newest bucket number added to. */
  private latestEpoch = Number.NEGATIVE_INFINITY;

  constructor(windowMs: number, buckets: number) {
    this.bucketMs = windowMs / buckets;
    this.first = new Float64Array(buckets);
    this.second = new Float64Array(buckets);
    this.epochs = new Float64Array(buckets).fill(-1);
  }

  /** Adds to the two counts of the bucket for `nowMs` (a time already outside the window, as
   * a late report of a long call can be, is ignored: its slot holds newer counts). */
  add(nowMs: number, first: number, second: number): void {
    const epoch = Math.floor(nowMs / this.bucketMs);
    if (epoch <= this.latestEpoch - this.epochs.length) return;
    if (epoch > this.latestEpoch) this.latestEpoch = epoch;
    const slot = this.slot(epoch);
    this.first[slot]! += first;
    this.second[slot]! += second;
  }

  /** Sums of the two counts over the window ending at `nowMs`. */
  sums(nowMs: number): [first: number, second: number] {
    const current = Math.floor(nowMs / this.bucketMs);
    const oldest = current - this.epochs.length + 1;
    let first = 0;
    let second = 0;
    for (let i = 0; i < this.epochs.length; i++) {
      const epoch = this.epochs[i]!;
      if (epoch >= oldest && epoch <= current) {
        first += this.first[i]!;
        second += this.second[i]!;
      }
    }
    return [first, second];
  }

  clear(): void {
    this.first.fill(0);
    this.second.fill(0);
    this.epochs.fill(-1);
    this.latestEpoch = Number.NEGATIVE_INFINITY;
  }

  private slot(epoch: number): number {
    const slot = ((epoch % this.epochs.length) + this.epochs.length) % this.epochs.length;
    if (this.epochs[slot] !== epoch) {
      this.epochs[slot] = epoch;
      this.first[slot] = 0;
      this.second[slot] = 0;
    }
    return slot;
  }
}
