/**
 * One node-wide budget for the bytes its connections buffer: partial inbound frames being
 * assembled, and replies queued for a peer that is not reading. Per-connection limits bound
 * one connection; this bounds their sum, which would otherwise be connectionsMax × 16 MiB.
 * Overflow behaviour: the reservation is refused and the connection asking for it is closed
 * with RDB_MEMORY_BUDGET (see Connection), so what others hold is never touched.
 */
import { ConfigFieldError } from '../errors.ts';
import type { ByteBudget } from '../protocol/frame.ts';

export interface MemoryBudgetStats {
  /** Bytes reserved now. */
  bufferedBytes: number;
  /** Most bytes ever reserved at once; never above bufferedBytesMax. */
  bufferedBytesPeak: number;
  bufferedBytesMax: number;
  /** Reservations refused because they did not fit. */
  refusals: number;
}

export class MemoryBudget implements ByteBudget {
  readonly bufferedBytesMax: number;
  private usedBytes = 0;
  private peakBytes = 0;
  private refused = 0;

  constructor(bufferedBytesMax: number) {
    if (!(Number.isSafeInteger(bufferedBytesMax) && bufferedBytesMax > 0)) {
      throw new ConfigFieldError(
        'bufferedBytesMax',
        `must be a positive integer, got ${bufferedBytesMax}`,
      );
    }
    this.bufferedBytesMax = bufferedBytesMax;
  }

  get bufferedBytes(): number {
    return this.usedBytes;
  }

  reserve(bytes: number): boolean {
    if (!(Number.isSafeInteger(bytes) && bytes >= 0)) {
      throw new Error(`invariant violated: reserve of ${bytes} bytes`);
    }
    if (this.usedBytes + bytes > this.bufferedBytesMax) {
      this.refused++;
      return false;
    }
    this.usedBytes += bytes;
    if (this.usedBytes > this.peakBytes) this.peakBytes = this.usedBytes;
    return true;
  }

  release(bytes: number): void {
    if (!(Number.isSafeInteger(bytes) && bytes >= 0 && bytes <= this.usedBytes)) {
      throw new Error(
        `invariant violated: release of ${bytes} bytes with ${this.usedBytes} reserved`,
      );
    }
    this.usedBytes -= bytes;
  }

  stats(): MemoryBudgetStats {
    return {
      bufferedBytes: this.usedBytes,
      bufferedBytesPeak: this.peakBytes,
      bufferedBytesMax: this.bufferedBytesMax,
      refusals: this.refused,
    };
  }
}
