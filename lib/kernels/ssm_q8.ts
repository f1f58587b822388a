// Int8-activation forms of the SSM kernels (csrc/kernels/ssm_q8.h): the
// tensors that flow between a quantized mixer's kernels are int8 with static
// per-channel scales; the recurrence and every accumulation stay float32.
//
// Quantization of channel c: q = clamp(roundHalfEven(x · f32(1 / s[c])), -127, 127),
// dequantized as q · s[c] (a NaN quantizes to 0). Scales must be finite and > 0.
import { native } from '../native/binding';
import type { CausalConv1dOptions, CausalConv1dUpdateOptions } from './conv1d';
import type { SelectiveScanOptions, SelectiveScanResult, SelectiveStateUpdateOptions, SelectiveStateUpdateResult } from './selective_scan';
import type { SsdChunkScanOptions, SsdChunkScanResult } from './ssd';

type Int8Inputs<T, K extends keyof T> = Omit<T, K> & { [P in K]: Int8Array };

export type CausalConv1dQ8Options = Int8Inputs<CausalConv1dOptions, 'x'> & {
  /** Scale of each input channel, float32 [channels]. */
  xScale: Float32Array;
  /** Scale the output is quantized with, float32 [channels]. */
  outScale: Float32Array;
};
export interface CausalConv1dQ8Result {
  /** int8 [tokens, channels]: quantize(conv(x̂) (+ SiLU), outScale). */
  out: Int8Array;
  /** The last width-1 dequantized inputs, float32 [nseq, channels, width-1]. */
  convState: Float32Array;
}
/** causalConv1d on int8 inputs with an int8 output (dequantize, conv (+ SiLU) in float32, requantize). */
export function causalConv1dQ8(opts: CausalConv1dQ8Options): CausalConv1dQ8Result {
  return native.causalConv1d(opts as unknown as Record<string, unknown>) as unknown as CausalConv1dQ8Result;
}

export type CausalConv1dUpdateQ8Options = Int8Inputs<CausalConv1dUpdateOptions, 'x'> & { xScale: Float32Array; outScale: Float32Array };
export interface CausalConv1dUpdateQ8Result { out: Int8Array; convState: Float32Array }
/** causalConv1dUpdate on int8 inputs with an int8 output; the state holds dequantized inputs. */
export function causalConv1dUpdateQ8(opts: CausalConv1dUpdateQ8Options): CausalConv1dUpdateQ8Result {
  return native.causalConv1dUpdate(opts as unknown as Record<string, unknown>) as unknown as CausalConv1dUpdateQ8Result;
}

export type SelectiveScanQ8Options = Int8Inputs<SelectiveScanOptions, 'u' | 'B' | 'C'> & {
  /** float32 [dim]. */
  uScale: Float32Array;
  /** float32 [ngroups · dstate] each (per-state-group scales repeat a group's value). */
  BScale: Float32Array;
  CScale: Float32Array;
};
/** selectiveScan on int8 u, B, C (float32 recurrence). */
export function selectiveScanQ8(opts: SelectiveScanQ8Options): SelectiveScanResult {
  return native.selectiveScan(opts as unknown as Record<string, unknown>);
}

export type SelectiveStateUpdateQ8Options = Int8Inputs<SelectiveStateUpdateOptions, 'x' | 'B' | 'C'> & {
  /** float32 [nheads · headdim] (Mamba-1: [dim]). */
  xScale: Float32Array;
  BScale: Float32Array;
  CScale: Float32Array;
};
/** selectiveStateUpdate on int8 x, B, C (float32 state). */
export function selectiveStateUpdateQ8(opts: SelectiveStateUpdateQ8Options): SelectiveStateUpdateResult {
  return native.selectiveStateUpdate(opts as unknown as Record<string, unknown>);
}

export type SsdChunkScanQ8Options = Int8Inputs<SsdChunkScanOptions, 'x' | 'B' | 'C'> & {
  /** float32 [nheads · headdim]. */
  xScale: Float32Array;
  /** float32 [ngroups · dstate] each. */
  BScale: Float32Array;
  CScale: Float32Array;
};
/** ssdChunkScan on int8 x, B, C (float32 recurrence). */
export function ssdChunkScanQ8(opts: SsdChunkScanQ8Options): SsdChunkScanResult {
  return native.ssdChunkScan(opts as unknown as Record<string, unknown>);
}
