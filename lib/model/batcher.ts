// Continuous batching of decode steps: every sequence that asks for a step
// while another step is running (or in the same turn of the event loop) joins
// the next native step, so concurrent generations share one read of the
// weights per token instead of one each. Once every sequence of the last
// step has asked again, the next step starts at once, without waiting for
// the turn to end (a generation's step then overlaps the synchronous work of
// its consumer, and no turn of the event loop separates two steps).
import { SAMPLE_NAN, SAMPLE_NO_FINITE, SAMPLE_PARAM_FIELDS, packSampleHistories, packSampleParams } from '../kernels/sampling';
import { sampleToken, type ResolvedSamplingOptions } from '../generate/sampling';
import type { NativeModel } from '../native/types';

// A step that wants the logits (resolve gets them), only the greedy next
// token, or a token drawn with sampling options and a uniform draw u (resolve
// gets its id: negative where the logits cannot be sampled, SAMPLE_NAN /
// SAMPLE_NO_FINITE).
type Pending =
  | { kind: 'logits'; slot: number; token: number; resolve(logits: Float32Array): void; reject(err: unknown): void }
  | { kind: 'greedy'; slot: number; token: number; resolve(next: number): void; reject(err: unknown): void }
  | {
    kind: 'sample'; slot: number; token: number; options: ResolvedSamplingOptions; history: Int32Array | null; u: number;
    resolve(next: number): void; reject(err: unknown): void;
  }
  // A sampled step whose next step runs ahead natively (stepChained); uNext: its draw, NaN: none.
  | {
    kind: 'chained'; slot: number; token: number; options: ResolvedSamplingOptions; history: Int32Array | null; u: number;
    uNext: number; resolve(next: number): void; reject(err: unknown): void;
  };

export class DecodeBatcher {
  private queue: Pending[] = [];
  private running = false;
  private scheduled = false;
  // The slots of the step that ran last.
  private lastSlots: number[] = [];

  constructor(
    private readonly native: () => NativeModel,
    private readonly vocabSize: number,
    /** Most sequences per native step. */
    private readonly maxBatch = 16,
  ) {}

  /** Logits [vocab] of `token` appended to the sequence in `slot`. */
  step(slot: number, token: number): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'logits', slot, token, resolve, reject });
      this.schedule();
    });
  }

  /**
   * The most likely next token after `token` is appended to the sequence in `slot` (native
   * argmax: a batch of greedy steps brings no logits to JavaScript); -1 where the logits hold a
   * NaN or nothing above -Infinity.
   */
  stepGreedy(slot: number, token: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'greedy', slot, token, resolve, reject });
      this.schedule();
    });
  }

  /**
   * The token drawn after `token` is appended to the sequence in `slot`: sampleToken's choice with
   * `options`, the repetition penalty's `history` (ids in the vocabulary; null: none) and the uniform
   * draw `u`, made in native code when no step of the batch wants its logits (kernels/sampling.ts),
   * else by sampleToken on the logits. Negative where the logits cannot be sampled (SAMPLE_NAN,
   * SAMPLE_NO_FINITE).
   */
  stepSample(slot: number, token: number, options: ResolvedSamplingOptions, history: Int32Array | null, u: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'sample', slot, token, options, history, u, resolve, reject });
      this.schedule();
    });
  }

  /**
   * stepSample whose next step runs ahead in native code with the token it returns (the draw
   * `uNext`; NaN: no step follows), so that it is running or done when asked for. The sequence's
   * next request must be stepChained with that token, or the sequence freed, reset or restored
   * (generate(), which owns its sequences, keeps this).
   */
  stepChained(slot: number, token: number, options: ResolvedSamplingOptions, history: Int32Array | null, u: number,
    uNext: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'chained', slot, token, options, history, u, uNext, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running) return;
    if (this.lastSlots.length > 0 && this.lastSlots.every((slot) => this.queue.some((p) => p.slot === slot))) {
      void this.flush();
      return;
    }
    if (this.scheduled) return;
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
    this.lastSlots = batch.map((p) => p.slot);
    // Chained requests take their own native call (their steps may be running ahead already);
    // the others one call as before. The requests are settled once this step no longer counts as
    // running, so that their next requests can start the next step at once.
    // (A batch of chained requests only, as generate() makes, is one native call: no Promise.all.)
    let chained = 0;
    for (const p of batch) chained += p.kind === 'chained' ? 1 : 0;
    let settles: Array<() => void> = [];
    try {
      if (chained === batch.length) {
        settles = [await this.stepChainedRows(batch)];
      } else {
        settles = await Promise.all([
          chained > 0 ? this.stepChainedRows(batch.filter((p) => p.kind === 'chained')) : NOTHING,
          this.stepRows(batch.filter((p) => p.kind !== 'chained')),
        ]);
      }
    } finally {
      this.running = false;
    }
    for (const settle of settles) settle();
    if (this.queue.length > 0) this.schedule();
  }

  /** The chained requests' native step; resolves to what settles them (never rejects). */
  private async stepChainedRows(batch: Pending[]): Promise<() => void> {
    try {
      const n = batch.length;
      const slots = new Int32Array(n), tokens = new Int32Array(n);
      const params = new Float64Array(n * SAMPLE_PARAM_FIELDS);
      const nextU = new Float64Array(n);
      const histories: Array<Int32Array | null> = new Array(n);
      for (let i = 0; i < n; i++) {
        const p = batch[i];
        if (p.kind !== 'chained') throw new Error('node-mamba: internal: not a chained step');
        slots[i] = p.slot;
        tokens[i] = p.token;
        packSampleParams(params, i, p.options, p.u);
        nextU[i] = p.uNext;
        histories[i] = p.history;
      }
      const h = packSampleHistories(histories);
      const next = await this.native().stepChained(slots, tokens, params, h?.history, h?.historyOffsets, nextU);
      return () => { for (let i = 0; i < n; i++) (batch[i].resolve as (t: number) => void)(next[i]); };
    } catch (err) {
      return () => { for (const p of batch) p.reject(err); };
    }
  }

  /** The other requests' native step; resolves to what settles them (never rejects). */
  private async stepRows(batch: Pending[]): Promise<() => void> {
    try {
      const slots = Int32Array.from(batch, (p) => p.slot), tokens = Int32Array.from(batch, (p) => p.token);
      if (batch.every((p) => p.kind === 'greedy')) {
        const next = await this.native().step(slots, tokens, 'greedy');
        return () => batch.forEach((p, i) => (p.resolve as (n: number) => void)(next[i]));
      }
      if (batch.every((p) => p.kind !== 'logits')) {
        // Greedy rows are temperature 0 (the sampler's argmax is the greedy choice).
        const params = new Float64Array(batch.length * SAMPLE_PARAM_FIELDS);
        batch.forEach((p, i) => packSampleParams(params, i, p.kind === 'sample' ? p.options : GREEDY, p.kind === 'sample' ? p.u : 0));
        const h = packSampleHistories(batch.map((p) => (p.kind === 'sample' ? p.history : null)));
        const next = await this.native().step(slots, tokens, 'sample', params, h?.history, h?.historyOffsets);
        return () => batch.forEach((p, i) => (p.resolve as (n: number) => void)(next[i]));
      }
      const logits = await this.native().step(slots, tokens);
      return () => batch.forEach((p, i) => {
        const row = logits.subarray(i * this.vocabSize, (i + 1) * this.vocabSize);
        if (p.kind === 'logits') p.resolve(row);
        else if (p.kind === 'greedy') p.resolve(greedyToken(row));
        else if (p.kind === 'sample') p.resolve(sampledToken(row, p.options, p.history, p.u));
      });
    } catch (err) {
      return () => { for (const p of batch) p.reject(err); };
    }
  }
}

const NOTHING: () => void = () => undefined;

/** The native greedy choice (engine/greedy.h) on logits already in JavaScript. */
function greedyToken(x: Float32Array): number {
  let best = -Infinity, id = -1;
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i])) return -1;
    if (x[i] > best) { best = x[i]; id = i; }
  }
  return id;
}

const GREEDY: ResolvedSamplingOptions = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1 };

/** sampleToken's choice with the draw u, or SAMPLE_NAN / SAMPLE_NO_FINITE as the native sampler reports them. */
function sampledToken(row: Float32Array, options: ResolvedSamplingOptions, history: Int32Array | null, u: number): number {
  const g = greedyToken(row);
  if (g < 0) return row.some((v) => Number.isNaN(v)) ? SAMPLE_NAN : SAMPLE_NO_FINITE;
  return sampleToken(row, { ...options, history: history ?? undefined }, { next: () => u });
}
