// The native sampler (csrc/kernels/sampling.h): lib/generate/sampling.ts's
// sampleToken on rows of float32 logits, in native code on the thread pool.
import { native } from '../native/binding';
import { validateSamplingOptions, type ResolvedSamplingOptions, type SamplingOptions } from '../generate/sampling';

/** Numbers per row of the native sampler's parameters: temperature, topK, topP, minP, repetitionPenalty, u. */
export const SAMPLE_PARAM_FIELDS = 6;

/** What the native sampler writes for a row whose logits hold a NaN. */
export const SAMPLE_NAN = -1;
/** What the native sampler writes for a row whose logits are all -Infinity. */
export const SAMPLE_NO_FINITE = -2;

/** Writes one row's parameters at `row` of `out` (SAMPLE_PARAM_FIELDS numbers a row). */
export function packSampleParams(out: Float64Array, row: number, o: ResolvedSamplingOptions, u: number): void {
  const at = row * SAMPLE_PARAM_FIELDS;
  out[at] = o.temperature;
  out[at + 1] = o.topK;
  out[at + 2] = o.topP;
  out[at + 3] = o.minP;
  out[at + 4] = o.repetitionPenalty;
  out[at + 5] = u;
}

/**
 * The rows' histories (null: none) as the native sampler takes them: the ids concatenated and
 * rows + 1 offsets; undefined when no row has one.
 */
export function packSampleHistories(histories: ReadonlyArray<ArrayLike<number> | null | undefined>): { history: Int32Array; historyOffsets: Int32Array } | undefined {
  if (!histories.some((h) => h && h.length > 0)) return undefined;
  const historyOffsets = new Int32Array(histories.length + 1);
  histories.forEach((h, r) => (historyOffsets[r + 1] = historyOffsets[r] + (h ? h.length : 0)));
  const history = new Int32Array(historyOffsets[histories.length]);
  histories.forEach((h, r) => { if (h) history.set(h, historyOffsets[r]); });
  return { history, historyOffsets };
}

/** The message for a row the native sampler could not sample from (as sampleToken words it). */
export function sampleErrorMessage(code: number): string {
  return code === SAMPLE_NAN ? 'the logits hold a NaN' : 'logits are all -Infinity';
}

export interface SampleTokensOptions {
  /** Logits, float32 row-major [rows, vocab]. */
  logits: Float32Array;
  rows: number;
  vocab: number;
  /**
   * Sampling options (temperature, topK, topP, minP, repetitionPenalty with its history of token ids,
   * as sampleToken takes them): one object for every row, or one per row.
   */
  options?: SamplingOptions | SamplingOptions[];
  /** One uniform draw in [0, 1) per row (an Rng's next()); rows with temperature 0 do not read theirs. */
  u: ArrayLike<number>;
}

/**
 * The next token of each row: sampleToken's semantics (repetition penalty -> temperature -> top-k -> top-p -> min-p ->
 * the draw u; temperature 0 the argmax, ties to the lowest id), computed natively on the thread pool
 * (csrc/kernels/sampling.h). Its probabilities agree with sampleToken's to ~1e-15 relative (its own
 * exp, vector sums), so a row's token differs from sampleToken's with the same u only where u falls
 * that close to a boundary. Throws RangeError for a row whose logits hold a NaN or are all -Infinity.
 */
export function sampleTokens(opts: SampleTokensOptions): Int32Array {
  if (opts === null || typeof opts !== 'object') throw new TypeError('node-mamba: sampleTokens: options must be an object');
  const { rows } = opts;
  if (!Number.isSafeInteger(rows) || rows < 0) throw new RangeError("node-mamba: sampleTokens: 'rows' must be an integer >= 0");
  const list = Array.isArray(opts.options) ? opts.options : null;
  if (list && list.length !== rows) throw new RangeError(`node-mamba: sampleTokens: 'options' must have one entry per row (${rows}), got ${list.length}`);
  if (!opts.u || typeof opts.u.length !== 'number' || opts.u.length !== rows) {
    throw new RangeError(`node-mamba: sampleTokens: 'u' must hold one number per row (${rows})`);
  }
  const params = new Float64Array(rows * SAMPLE_PARAM_FIELDS);
  const one = (opts.options as SamplingOptions | undefined) ?? {};
  const shared = list ? null : validateSamplingOptions(one);
  const histories: Array<ArrayLike<number> | undefined> = [];
  for (let r = 0; r < rows; r++) {
    const given = list ? list[r] : one;
    const o = shared ?? validateSamplingOptions(given);
    packSampleParams(params, r, o, opts.u[r]);
    histories.push(o.repetitionPenalty !== 1 ? given.history : undefined);
  }
  const ids = native.sampleTokens({ logits: opts.logits, rows, vocab: opts.vocab, params, ...packSampleHistories(histories) });
  for (let r = 0; r < rows; r++) {
    if (ids[r] < 0) throw new RangeError(`node-mamba: sampleTokens: row ${r}: ${sampleErrorMessage(ids[r])}`);
  }
  return ids;
}
