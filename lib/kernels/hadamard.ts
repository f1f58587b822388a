// Orthogonal Hadamard transform of rows, and the same fused with int8
// quantization (Quamba's online rotation of the out_proj input).
import { native } from '../native/binding';
import type { NativeArgs } from '../native/types';

export interface HadamardOptions {
  /** Input, float32, [rows, xStride] row-major (the first n of each row are read). */
  x: Float32Array;
  rows: number;
  /**
   * Row length: 2^k, 12·2^k or 40·2^k (k ≥ 0), e.g. 768 = 12·64, 1536 = 12·128,
   * 2048, 2560 = 40·64, 5120 = 40·128. Anything else is a RangeError.
   */
  n: number;
  /** Apply Tᵀ (the inverse) instead of T. Default false. */
  transpose?: boolean;
  /** Elements between rows of x, ≥ n. Default n. */
  xStride?: number;
  /** Write the result into x (its first n of each row; the rest untouched) and return x. Default false. */
  inPlace?: boolean;
}

/**
 * `T(x) = H_n·x / √n` on each row (or `Tᵀ(x) = H_nᵀ·x / √n` with `transpose`),
 * where `H_n = H_m ⊗ S_p` for `n = m·p`, `m ∈ {1, 12, 40}`, `p = 2^k`: `S_p` is
 * Sylvester's matrix (`S[i][j] = (-1)^popcount(i & j)`), `H_12` and `H_20`
 * come from Paley's construction I (q = 11, 19) and `H_40 = H_2 ⊗ H_20`
 * (docs/kernels.md; `lib/quant/hadamard.ts` builds the same matrices in
 * float64). Both transforms are orthogonal, each the other's inverse.
 * Computed in float32 with the fast algorithm (butterflies, then the ±1 mix of
 * the m blocks); every ISA level gives the same bits. Returns float32
 * [rows, n], or x itself with `inPlace`.
 */
export function hadamard(opts: HadamardOptions): Float32Array {
  return native.hadamard(opts as unknown as NativeArgs);
}

export interface HadamardQuantizeOptions {
  /** Input, float32, [rows, xStride] row-major (the first n of each row are read). */
  x: Float32Array;
  rows: number;
  /** Row length: 2^k, 12·2^k or 40·2^k (as `hadamard`). */
  n: number;
  /**
   * Quantization step s (finite, > 0; its float32 reciprocal must be finite
   * and non-zero): q = round(T(x) / s), computed as T(x)·Math.fround(1 / s).
   */
  scale: number;
  /** Elements between rows of x, ≥ n. Default n. */
  xStride?: number;
}

/**
 * The rotation fused with symmetric int8 quantization (Quamba's `QHadamard`):
 * `q = clamp(nearbyint(T(x)[i] · inv), −127, 127)` with
 * `inv = Math.fround(1 / scale)`, rounding half to even, in float32 (the
 * factor `inv / √n` is rounded to float32 once and applied where the transform
 * scales). A NaN anywhere in a row makes its whole transform NaN, and NaN
 * quantizes to 0, so that row comes out all zeros. One ±Infinity in a row
 * makes every output ±Infinity, which saturates to ±127 (two can meet as
 * ∞ − ∞ = NaN, hence 0). Returns int8 [rows, n].
 */
export function hadamardQuantize(opts: HadamardQuantizeOptions): Int8Array {
  return native.hadamardQuantize(opts as unknown as NativeArgs);
}
