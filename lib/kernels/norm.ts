// RMSNorm (with fused residual add) and gated RMSNorm.
import { native } from '../native/binding';
import { FloatData, floatArg } from './tensor';

export interface RmsNormOptions {
  /** Input, float32, row-major [rows, dim] (rows = tokens). */
  x: Float32Array;
  /** Optional residual stream, float32 [rows, dim]: the norm reads x + residual. */
  residual?: Float32Array;
  /** Scale, [dim], f32 / f16 / bf16. */
  weight: FloatData;
  rows: number;
  dim: number;
  /** Default 1e-5. */
  eps?: number;
}

export interface RmsNormResult {
  /** r * rsqrt(mean(r^2) + eps) * weight, float32 [rows, dim]. */
  out: Float32Array;
  /** The new residual stream r = x + residual (or x), float32 [rows, dim]. */
  residual: Float32Array;
}

/**
 * RMSNorm with fused residual add (state-spaces/mamba `layer_norm_fn` with
 * `prenorm=True, residual_in_fp32=True, is_rms_norm=True`):
 * `r = x + residual; out = r * rsqrt(mean(r²) + eps) * weight`, computed in float32.
 */
export function rmsNorm(opts: RmsNormOptions): RmsNormResult {
  return native.rmsNorm({ ...opts, ...floatArg('weight', opts?.weight) });
}

export interface GatedRmsNormOptions {
  /** Scan output, float32 [rows, dim]. */
  y: Float32Array;
  /** Gate, float32 [rows, dim]; when absent no gate is applied. */
  z?: Float32Array;
  /** Scale, [dim], f32 / f16 / bf16. */
  weight: FloatData;
  rows: number;
  dim: number;
  /** Channels normalised together; must divide dim. Default dim (one group). Mamba-2 uses d_inner / ngroups. */
  groupSize?: number;
  /** Default 1e-5. */
  eps?: number;
}

/**
 * Gated RMSNorm of Mamba-2 (`RMSNormGated`, norm_before_gate=False):
 * `g = y * silu(z)`, then per group of `groupSize` channels
 * `out = g * rsqrt(mean(g²) + eps) * weight`. Returns float32 [rows, dim].
 */
export function gatedRmsNorm(opts: GatedRmsNormOptions): Float32Array {
  return native.gatedRmsNorm({ ...opts, ...floatArg('weight', opts?.weight) });
}
