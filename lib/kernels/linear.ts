// Linear layer y = x Wᵀ + bias (nn.Linear), float32 accumulation.
import { native } from '../native/binding';
import { FloatData, QuantData, floatArg } from './tensor';

/** Which algorithm runs: 'auto' (default) picks by `rows`. */
export type LinearAlgorithm = 'auto' | 'gemv' | 'gemm';

/**
 * How x is rounded before the product (y = round(x) Wᵀ + b):
 * - 'none' (default): exact float32 x.
 * - 'bf16': each element rounded to bfloat16 (nearest even).
 * - 'q8': each run of 32 elements of a row (the last run may be shorter) quantized to
 *   int8 with one scale, as ggml's Q8_0: d = amax / 127, q = round(x · 127 / amax),
 *   round(x) = d · q.
 * This is what llama.cpp does for bf16 and q8_0 / q4_0 weights; it lets the GEMV use
 * dot-product instructions at the 'avx512vnni' level (vdpbf16ps for bf16 weights with
 * 'bf16' where the CPU has AVX512_BF16, vpdpbusd for q8_0 / q4_0 weights with 'q8').
 * Other combinations and levels run the exact kernels on the rounded x, so every
 * level gives the same result up to float32 summation order.
 */
export type InputRounding = 'none' | 'bf16' | 'q8';

export interface LinearOptions {
  /** Input, float32, row-major [rows, inFeatures] (rows = tokens; inFeatures contiguous). */
  x: Float32Array;
  /**
   * Weight in the PyTorch nn.Linear layout: row-major [outFeatures, inFeatures]
   * (inFeatures contiguous), f32 / f16 / bf16. f16 / bf16 are widened exactly to float32.
   * Or ggml-quantized, `{ data: Uint8Array, dtype: 'q8_0' | 'q4_0' }`: each of the
   * outFeatures rows is inFeatures / 32 blocks (34 bytes for q8_0, 18 for q4_0), so
   * inFeatures must be a multiple of 32 (else a RangeError naming inFeatures) and
   * `data` must be exactly outFeatures · inFeatures / 32 · blockBytes bytes. Blocks are
   * dequantised as they are read (exactly), never expanded in memory; the result is bit
   * for bit that of the same algorithm on the dequantised float32 weight.
   */
  weight: FloatData | QuantData;
  /** Optional bias, [outFeatures], f32 / f16 / bf16. */
  bias?: FloatData;
  /** M: number of input rows (>= 0). */
  rows: number;
  /** K: input features (>= 0; 0 gives y = bias, or zeros). */
  inFeatures: number;
  /** N: output features (>= 0). */
  outFeatures: number;
  /**
   * 'gemv' streams each weight row once for all rows (decode, small `rows`);
   * 'gemm' is the cache-blocked packed path (prefill). 'auto' (default) uses
   * 'gemv' for rows <= 16. Both give the same result up to float32 summation
   * order; forcing one is for tests and benchmarks.
   */
  algorithm?: LinearAlgorithm;
  /** Rounding of x before the product (see InputRounding); default 'none'. */
  inputRounding?: InputRounding;
  /**
   * 'rows' (default): `weight` as described above. 'panels': a q8_0 / q4_0 weight packed
   * by `packBlockPanels` (16 rows interleaved 4 bytes at a time, each block's 16 scales
   * after its quants: docs/kernels.md), the layout a loaded model packs its q8_0 / q4_0
   * linear layers into; needs `inputRounding: 'q8'`. The int8 dot products then
   * compute each block's sum exactly and scale it by both blocks' d, as llama.cpp's
   * dot products for these types: equal to the 'rows' result up to float32 summation order.
   */
  weightLayout?: 'rows' | 'panels';
}

/**
 * A q8_0 / q4_0 weight [outFeatures, inFeatures] (ggml blocks) in the panel layout that
 * `linear({ weightLayout: 'panels', inputRounding: 'q8' })` reads. A q8_0 weight holding
 * q = -128 (which ggml's quantizer never writes) is refused: a RangeError.
 */
export function packBlockPanels(opts: { weight: QuantData; outFeatures: number; inFeatures: number }): QuantData {
  const w = opts?.weight;
  if (w?.dtype !== 'q8_0' && w?.dtype !== 'q4_0') {
    throw new TypeError("node-mamba: packBlockPanels: 'weight' must be { data, dtype: 'q8_0' | 'q4_0' }");
  }
  const p = native.qlinearPackPanels({
    outFeatures: opts.outFeatures, inFeatures: opts.inFeatures, weight: w.data, weightDtype: w.dtype,
  });
  return { dtype: w.dtype, data: p.data as Uint8Array };
}

/**
 * `y[m, n] = Σ_k x[m, k] · weight[n, k] + bias[n]` (PyTorch `F.linear`), accumulated
 * in float32. Returns a new Float32Array, row-major [rows, outFeatures] (outFeatures contiguous).
 */
export function linear(opts: LinearOptions): Float32Array {
  return native.linear({ ...opts, ...floatArg('weight', opts?.weight), ...floatArg('bias', opts?.bias) });
}
