// One sequence's recurrent state (conv + SSM state of every layer) inside a
// model. Prefill runs a prompt through it; step appends one token (batched
// with other sequences' steps); snapshot/restore copy the whole state, which
// for a Mamba model is a few MB whatever the prompt length (prompt caching).
import { DisposedError } from '../errors';
import type { NativeModel } from '../native/types';
import type { DecodeBatcher } from './batcher';
import { toTokenArray } from './tokens';

/** A copy of a sequence's state, from `Sequence.snapshot()`. */
export interface SequenceState {
  /** Raw float32 state (layout private to the model that made it). */
  readonly data: Float32Array;
  /** Tokens the sequence had consumed. */
  readonly length: number;
  /** Logits after the last token, when there was one. */
  readonly lastLogits: Float32Array | undefined;
}

/** What a Sequence needs from its model (kept narrow to avoid an import cycle). */
export interface SequenceHost {
  readonly vocabSize: number;
  readonly isDisposed: boolean;
  nativeModel(): NativeModel;
  readonly batcher: DecodeBatcher;
  onSequenceDisposed(seq: Sequence): void;
}

export class Sequence {
  private disposed = false;
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

  private ensureLive(): void {
    if (this.disposed) throw new DisposedError('sequence');
    if (this.host.isDisposed) throw new DisposedError('model');
  }

  /** Runs `tokens` through the sequence; resolves to the logits of the last one ([vocabSize]). */
  async prefill(tokens: ArrayLike<number>): Promise<Float32Array> {
    this.ensureLive();
    const ids = toTokenArray(tokens, this.host.vocabSize);
    if (ids.length === 0) throw new RangeError("node-mamba: 'tokens' must not be empty");
    const logits = (await this.host.nativeModel().prefill(this.slot, ids, 'last')) as Float32Array;
    this.consumed += ids.length;
    this.last = logits;
    return logits;
  }

  /** Appends one token; resolves to its logits ([vocabSize]). Concurrent steps of several sequences share one batched pass. */
  async step(token: number): Promise<Float32Array> {
    this.ensureLive();
    const [id] = toTokenArray([token], this.host.vocabSize, 'token');
    const logits = await this.host.batcher.step(this.slot, id);
    this.consumed += 1;
    this.last = logits;
    return logits;
  }

  /** A copy of the state (and of the last logits), to restore later into this or another sequence of the same model. */
  async snapshot(): Promise<SequenceState> {
    this.ensureLive();
    const data = await this.host.nativeModel().snapshot(this.slot);
    return { data, length: this.consumed, lastLogits: this.last && Float32Array.from(this.last) };
  }

  /** Replaces the state with a snapshot's. */
  async restore(state: SequenceState): Promise<void> {
    this.ensureLive();
    if (!state || !(state.data instanceof Float32Array)) {
      throw new TypeError("node-mamba: 'state' must come from Sequence.snapshot()");
    }
    await this.host.nativeModel().restore(this.slot, state.data);
    this.consumed = state.length;
    this.last = state.lastLogits && Float32Array.from(state.lastLogits);
  }

  /** Back to the empty state. */
  async reset(): Promise<void> {
    this.ensureLive();
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
