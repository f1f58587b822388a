// One sequence's recurrent state (conv + SSM state of every layer) inside a
// model. Prefill runs a prompt through it; step appends one token (batched
// with other sequences' steps); snapshot/restore copy the whole state, which
// for a Mamba model is a few MB whatever the prompt length (prompt caching).
import { DisposedError } from '../errors';
import type { Rng } from '../generate/rng';
import { validateSamplingOptions, type ResolvedSamplingOptions, type SamplingOptions } from '../generate/sampling';
import { SAMPLE_PARAM_FIELDS, packSampleHistories, packSampleParams, sampleErrorMessage } from '../kernels/sampling';
import type { NativeModel } from '../native/types';
import type { DecodeBatcher } from './batcher';
import { decodeSnapshot, encodeSnapshot, type SnapshotLayer } from './snapshot';
import { toTokenArray } from './tokens';

/**
 * A sequence's state from `Sequence.snapshot()`: self-describing bytes (format
 * version, the model's fingerprint, every layer's state, the position and the
 * last logits; lib/model/snapshot.ts) that `restore` takes back in this or
 * another process holding the same model.
 */
export type SequenceState = Uint8Array;

/** What snapshots need to know of the model: its fingerprint and its state layout at a position. */
export interface SnapshotInfo {
  fingerprint: string;
  layers(position: number): SnapshotLayer[];
  stateBytes(position: number): number;
}

/** What a Sequence needs from its model (kept narrow to avoid an import cycle). */
export interface SequenceHost {
  readonly vocabSize: number;
  /** Most tokens a sequence may hold (Infinity: no attention layers, no limit). */
  readonly contextSize: number;
  readonly isDisposed: boolean;
  nativeModel(): NativeModel;
  readonly batcher: DecodeBatcher;
  onSequenceDisposed(seq: Sequence): void;
  snapshotInfo(): SnapshotInfo;
}

export class Sequence {
  private disposed = false;
  // stepChained's draw for the step that runs ahead.
  private chainU: number | undefined;
  private consumed = 0;
  private last: Float32Array | undefined;

  /** @internal created by MambaModel.createSequence() */
  constructor(
    private readonly host: SequenceHost,
    /** The state slot in the native model. */
    readonly slot: number,
  ) {}

  /** Tokens consumed so far. */
  get length(): number {
    return this.consumed;
  }

  /** Logits after the last consumed token (undefined before any). */
  get lastLogits(): Float32Array | undefined {
    return this.last;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  // Before the native call, so that one sequence past its context does not fail a batched step of others.
  private checkContext(n: number): void {
    const limit = this.host.contextSize;
    if (this.consumed + n > limit) {
      throw new RangeError(`node-mamba: the sequence would hold ${this.consumed + n} tokens (${this.consumed} + ${n}), past the model's contextSize of ${limit}`);
    }
  }

  private ensureLive(): void {
    if (this.disposed) throw new DisposedError('sequence');
    if (this.host.isDisposed) throw new DisposedError('model');
  }

  /** Runs `tokens` through the sequence; resolves to the logits of the last one ([vocabSize]). */
  async prefill(tokens: ArrayLike<number>): Promise<Float32Array> {
    this.ensureLive();
    const ids = toTokenArray(tokens, this.host.vocabSize);
    if (ids.length === 0) throw new RangeError("node-mamba: 'tokens' must not be empty");
    this.checkContext(ids.length);
    const logits = (await this.host.nativeModel().prefill(this.slot, ids, 'last')) as Float32Array;
    this.consumed += ids.length;
    this.last = logits;
    return logits;
  }

  /**
   * prefill(), resolving to the token drawn from the last token's logits as stepSample draws it
   * (sampleToken's choice with `options` and `rng`, in native code: the logits never reach
   * JavaScript). A later snapshot() carries no logits for this prefill.
   */
  async prefillSample(tokens: ArrayLike<number>, options: SamplingOptions, rng: Rng): Promise<number> {
    this.ensureLive();
    const { o, history } = this.samplingArgs(options);
    const ids = toTokenArray(tokens, this.host.vocabSize);
    if (ids.length === 0) throw new RangeError("node-mamba: 'tokens' must not be empty");
    this.checkContext(ids.length);
    const params = new Float64Array(SAMPLE_PARAM_FIELDS);
    packSampleParams(params, 0, o, drawU(o, rng));
    const h = packSampleHistories([history]);
    const [next] = await this.host.nativeModel().prefill(this.slot, ids, 'sample', params, h?.history, h?.historyOffsets);
    this.consumed += ids.length;
    this.last = undefined;
    if (next < 0) throw new RangeError(`node-mamba: prefillSample: ${sampleErrorMessage(next)}`);
    return next;
  }

  /** Appends one token; resolves to its logits ([vocabSize]). Concurrent steps of several sequences share one batched pass. */
  async step(token: number): Promise<Float32Array> {
    this.ensureLive();
    const [id] = toTokenArray([token], this.host.vocabSize, 'token');
    this.checkContext(1);
    const logits = await this.host.batcher.step(this.slot, id);
    this.consumed += 1;
    this.last = logits;
    return logits;
  }

  /**
   * Appends one token; resolves to the most likely next token (the argmax of its logits, ties to
   * the lowest id), chosen in native code: the logits never reach JavaScript, which spares a
   * server doing greedy decoding their copy and garbage collection (vocabSize floats per
   * sequence per step). A later snapshot() carries no logits for this step. Logits that hold a
   * NaN, or nothing above -Infinity, are a RangeError (as generate() reports them).
   */
  async stepGreedy(token: number): Promise<number> {
    this.ensureLive();
    const [id] = toTokenArray([token], this.host.vocabSize, 'token');
    this.checkContext(1);
    const next = await this.host.batcher.stepGreedy(this.slot, id);
    this.consumed += 1;
    this.last = undefined;
    if (next < 0) throw new RangeError('node-mamba: stepGreedy: the logits hold a NaN or nothing above -Infinity');
    return next;
  }

  /**
   * Appends one token; resolves to the next token drawn as sampleToken(logits, options, rng) draws
   * it (repetitionPenalty with options.history, temperature, topK, topP, minP; one rng.next() when
   * temperature > 0), chosen in native code on the thread pool when no concurrent step of this
   * model wants its logits (kernels.sampleTokens): the logits never reach JavaScript. The same seed
   * gives the same tokens as step() followed by sampleToken, except where a draw falls within
   * ~1e-15 of a boundary between two tokens (the native exp and sums round differently in the last
   * bit). History ids outside the vocabulary, and logits that hold a NaN or nothing above
   * -Infinity, are a RangeError. A later snapshot() carries no logits for this step.
   */
  async stepSample(token: number, options: SamplingOptions, rng: Rng): Promise<number> {
    this.ensureLive();
    const { o, history } = this.samplingArgs(options);
    const [id] = toTokenArray([token], this.host.vocabSize, 'token');
    this.checkContext(1);
    const next = await this.host.batcher.stepSample(this.slot, id, o, history, drawU(o, rng));
    this.consumed += 1;
    this.last = undefined;
    if (next < 0) throw new RangeError(`node-mamba: stepSample: ${sampleErrorMessage(next)}`);
    return next;
  }

  /**
   * @internal generate()'s step: stepSample, whose next step runs ahead in native code with the
   * token it returns while the token travels to the caller and back (model batcher, stepChained).
   * `last`: no step follows this one. The caller's next call on this sequence must be stepChained
   * with the returned token (and the history grown by it), or dispose(), reset() or restore().
   */
  async stepChained(token: number, options: SamplingOptions, rng: Rng, last = false): Promise<number> {
    this.ensureLive();
    const { o, history } = this.samplingArgs(options);
    const [id] = toTokenArray([token], this.host.vocabSize, 'token');
    this.checkContext(1);
    // The draw of this step was taken with the last call (the step ran ahead with it); the next
    // one's now: the rng gives the same numbers in the same order as stepSample takes them.
    // No step runs ahead past the context (it would fail the batch it runs in).
    const ahead = !last && this.consumed + 2 <= this.host.contextSize;
    const u = this.chainU ?? drawU(o, rng);
    const uNext = ahead ? drawU(o, rng) : NaN;
    this.chainU = ahead ? uNext : undefined;
    const next = await this.host.batcher.stepChained(this.slot, id, o, history, u, uNext);
    this.consumed += 1;
    this.last = undefined;
    if (next < 0) throw new RangeError(`node-mamba: stepSample: ${sampleErrorMessage(next)}`);
    return next;
  }

  /** The native sampler's options, checked, and the repetition penalty's history (null: none) as ids in the vocabulary. */
  private samplingArgs(options: SamplingOptions): { o: ResolvedSamplingOptions; history: Int32Array | null } {
    const o = validateSamplingOptions(options);
    const history = o.repetitionPenalty !== 1 && options.history ? toTokenArray(options.history, this.host.vocabSize, 'history') : null;
    return { o, history };
  }

  /**
   * The state as self-describing bytes (see SequenceState), to restore later into this or
   * another sequence of the same model, in this process or another.
   */
  async snapshot(): Promise<SequenceState> {
    this.ensureLive();
    const { state, position } = await this.host.nativeModel().snapshot(this.slot);
    const info = this.host.snapshotInfo();
    const last = this.last;
    return encodeSnapshot({
      fingerprint: info.fingerprint, position, layers: info.layers(position), stateBytes: state.length, logits: last ? last.length : 0,
    }, state, last);
  }

  /**
   * Replaces the state with a snapshot's. A snapshot of another model, of another format
   * version, or corrupt bytes are a SnapshotError (nothing changes); anything but a
   * Uint8Array is a TypeError.
   */
  async restore(snapshot: SequenceState): Promise<void> {
    this.ensureLive();
    const info = this.host.snapshotInfo();
    const s = decodeSnapshot(snapshot, { ...info, vocabSize: this.host.vocabSize });
    this.chainU = undefined;
    await this.host.nativeModel().restore(this.slot, s.state, s.header.position);
    this.consumed = s.header.position;
    this.last = s.lastLogits;
  }

  /** Back to the empty state. */
  async reset(): Promise<void> {
    this.ensureLive();
    this.chainU = undefined;
    await this.host.nativeModel().resetSequence(this.slot);
    this.consumed = 0;
    this.last = undefined;
  }

  /** Frees the state slot. Safe to call twice. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.host.onSequenceDisposed(this);
    if (!this.host.isDisposed) await this.host.nativeModel().freeSequence(this.slot);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** The uniform draw of one sampled token: one rng.next() when the temperature is above 0, as sampleToken takes it. */
function drawU(o: ResolvedSamplingOptions, rng: Rng): number {
  return o.temperature > 0 ? rng.next() : 0;
}
