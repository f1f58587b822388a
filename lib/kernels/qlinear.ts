// Linear layers on the Quamba-style weight formats (W8A8, W4A8, W4A16).
import { native } from '../native/binding';
import type { QuantizedWeight } from '../quant/formats';
import { FloatData, floatArg } from './tensor';

export interface QLinearOptions {
  /** Input, float32 [rows, inFeatures]. Omit when passing `xq`. */
  x?: Float32Array;
  /** Input already quantized to int8 with `xScale` (e.g. by hadamardQuantize), [rows, inFeatures]. */
  xq?: Int8Array;
  /**
   * Static per-tensor input scale s_x (> 0): the int8 schemes W8A8 (i8 weights) and W4A8
   * (i4 weights); x is quantized as q = clamp(round(x / s_x), -127, 127) (ties to even).
   * 0 or absent: float32 inputs, W4A16 (i4 weights only).
   */
  xScale?: number;
  /**
   * The weight as lib/quant/formats.ts stores it: `{ dtype: 'i8', data: Int8Array, scales }`
   * (one scale per output row) or `{ dtype: 'i4', data: Uint8Array, scales }` (4-bit, one
   * scale per group of 128 inputs, 64-element chunks in 32 bytes).
   */
  weight: Pick<QuantizedWeight, 'dtype' | 'data' | 'scales'>;
  bias?: FloatData;
  rows: number;
  inFeatures: number;
  outFeatures: number;
  /**
   * 'rows' (default): `weight` as lib/quant/formats.ts stores it. 'panels' (int8 inputs only):
   * `weight` is `qlinearPackPanels`' output, the layout a loaded model packs its W8A8 / W4A8
   * weights into; same results bit for bit.
   */
  weightLayout?: 'rows' | 'panels';
}

/**
 * An i8 / i4 weight [outFeatures, inFeatures] packed into the panel layout (docs/kernels.md:
 * 16 rows interleaved 4 bytes at a time; i4 scales reordered per panel), for
 * `qlinear({ weight, weightLayout: 'panels' })`.
 */
export function qlinearPackPanels(opts: {
  weight: Pick<QuantizedWeight, 'dtype' | 'data' | 'scales'>; outFeatures: number; inFeatures: number;
}): Pick<QuantizedWeight, 'dtype' | 'data' | 'scales'> {
  const w = opts?.weight;
  const p = native.qlinearPackPanels({
    outFeatures: opts?.outFeatures, inFeatures: opts?.inFeatures, weight: w?.data, weightDtype: w?.dtype, weightScales: w?.scales,
  });
  return { dtype: w.dtype, data: p.data, scales: p.scales };
}

/**
 * W8A8: `y[m, n] = s_x · s_w[n] · Σ_k q_x[m, k] · q_w[n, k] + b[n]` (int32 sum, exact);
 * W4A8: `y[m, n] = s_x · Σ_g s_w[n, g] · Σ_{k ∈ g} q_x[m, k] · q_w[n, k] + b[n]`;
 * W4A16: `y[m, n] = Σ_g s_w[n, g] · Σ_{k ∈ g} x[m, k] · q_w[n, k] + b[n]` (float32).
 * A NaN in an int8-scheme input row makes that output row NaN. Returns float32 [rows, outFeatures].
 */
export function qlinear(opts: QLinearOptions): Float32Array {
  const w = opts?.weight;
  return native.qlinear({
    ...opts, ...floatArg('bias', opts?.bias),
    weight: w?.data, weightDtype: w?.dtype, weightScales: w?.scales,
  });
}

/** Symmetric int8 quantization q = clamp(round(x / scale), -127, 127) (ties to even; NaN -> 0). */
export function quantizeInt8(opts: { x: Float32Array; rows: number; cols: number; scale: number }): Int8Array {
  return native.quantizeInt8(opts);
}
