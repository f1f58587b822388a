// Continuous batching of decode steps: every sequence that asks for a step
// while another step is running (or in the same turn of the event loop) joins
// the next native step, so concurrent generations share one read of the
// weights per token instead of one each.
import type { NativeModel } from '../native/types';

interface Pending {
  slot: number;
  token: number;
  resolve(logits: Float32Array): void;
  reject(err: unknown): void;
}

export class DecodeBatcher {
  private queue: Pending[] = [];
  private running = false;
  private scheduled = false;

  constructor(
    private readonly native: () => NativeModel,
    private readonly vocabSize: number,
    /** Most sequences per native step. */
    private readonly maxBatch = 16,
  ) {}

  /** Logits [vocab] of `token` appended to the sequence in `slot`. */
  step(slot: number, token: number): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.queue.push({ slot, token, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    // Let the other sequences of this turn queue their tokens first.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    // One request per slot per step; a slot's second request waits for the next.
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const seen = new Set<number>();
    for (const p of this.queue) {
      if (batch.length < this.maxBatch && !seen.has(p.slot)) {
        seen.add(p.slot);
        batch.push(p);
      } else {
        rest.push(p);
      }
    }
    this.queue = rest;
    try {
      const logits = await this.native().step(
        Int32Array.from(batch, (p) => p.slot),
        Int32Array.from(batch, (p) => p.token),
      );
      batch.forEach((p, i) => p.resolve(logits.subarray(i * this.vocabSize, (i + 1) * this.vocabSize)));
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.running = false;
      if (this.queue.length > 0) this.schedule();
    }
  }
}
