// Causal depthwise conv1d (the short convolution of Mamba / Mamba-2):
// prefill over packed variable-length sequences, and the one-token update.
import { native } from '../native/binding';
import { FloatData, floatArg } from './tensor';

/** Activation applied after the convolution. */
export type Conv1dActivation = 'silu' | 'none';

/** Largest supported kernel width (Mamba uses 4). */
export const CONV1D_MAX_WIDTH = 8;

export interface CausalConv1dOptions {
  /**
   * Input, float32, row-major [tokens, channels] (channels contiguous): the
   * tokens of all sequences packed one after another, as laid out by
   * `cuSeqlens`.
   */
  x: Float32Array;
  /** Depthwise filters, [channels, width] row-major (width contiguous), f32 / f16 / bf16. `weight[c, width-1]` multiplies the current token. */
  weight: FloatData;
  /** Optional bias, [channels], f32 / f16 / bf16. Default 0. */
  bias?: FloatData;
  /** Total number of tokens (rows of x), >= 0. */
  tokens: number;
  /** Number of channels (columns of x), >= 1. */
  channels: number;
  /** Kernel width W, 1..CONV1D_MAX_WIDTH. */
  width: number;
  /**
   * Optional Int32Array [nseq + 1] of cumulative sequence offsets: sequence s
   * is rows [cuSeqlens[s], cuSeqlens[s+1]) of x. Must start at 0, be
   * non-decreasing (empty sequences allowed) and end at `tokens`. Sequences
   * never see each other's tokens. Default: one sequence of all tokens
   * ([0, tokens]). Batch b of equal length L is [0, L, 2L, ..., bL].
   */
  cuSeqlens?: Int32Array;
  /**
   * Optional float32 [nseq, channels, width-1] row-major (positions
   * contiguous, oldest first): the inputs preceding each sequence, i.e. the
   * conv state a previous call returned. Default: zeros.
   */
  initialState?: Float32Array;
  /** 'silu' or 'none' (default 'none'; Mamba applies 'silu'). */
  activation?: Conv1dActivation;
}

export interface CausalConv1dResult {
  /** Convolved (and activated) output, float32 [tokens, channels] row-major (channels contiguous). */
  out: Float32Array;
  /**
   * Final conv state, float32 [nseq, channels, width-1] row-major (positions
   * contiguous, oldest first): state[s, c, j] is the PRE-conv input of
   * sequence s at position len_s - (width-1) + j; positions before the
   * sequence start come from `initialState` (or are 0). Feed it to
   * `causalConv1dUpdate` or to the next `causalConv1d` as `initialState`.
   */
  convState: Float32Array;
}

/**
 * Causal depthwise conv1d over packed sequences (Dao-AILab causal-conv1d
 * `causal_conv1d_ref`; PyTorch `F.conv1d(x, w.unsqueeze(1), bias,
 * padding=W-1, groups=channels)[..., :L]`, with `initial_states` prepended
 * when given):
 * `out[t, c] = bias[c] + Σ_{k=0..W-1} weight[c, k] · x[t-(W-1)+k, c]`,
 * then the optional SiLU. Computed in float32.
 */
export function causalConv1d(opts: CausalConv1dOptions): CausalConv1dResult {
  return native.causalConv1d({ ...opts, ...floatArg('weight', opts?.weight), ...floatArg('bias', opts?.bias) });
}

export interface CausalConv1dUpdateOptions {
  /** The new token of each row, float32 [batch, channels] row-major (channels contiguous). */
  x: Float32Array;
  /**
   * Conv states, float32 [stateSlots, channels, width-1] row-major
   * (positions contiguous, oldest first), as returned by `causalConv1d` or a
   * previous update. Not modified: the updated copy is returned.
   */
  convState: Float32Array;
  /** Depthwise filters, [channels, width] row-major (width contiguous), f32 / f16 / bf16. */
  weight: FloatData;
  /** Optional bias, [channels], f32 / f16 / bf16. Default 0. */
  bias?: FloatData;
  /** Number of rows (one token each), >= 0. */
  batch: number;
  /** Number of channels, >= 1. */
  channels: number;
  /** Kernel width W, 1..CONV1D_MAX_WIDTH. */
  width: number;
  /**
   * Optional Int32Array [batch]: row b reads and updates state slot
   * stateIndices[b] of the pool (continuous batching). Indices must be
   * distinct and in [0, stateSlots). Default: row b uses slot b.
   */
  stateIndices?: Int32Array;
  /** Number of slots in `convState` (its first dimension). Default `batch`; must equal `batch` without `stateIndices`. */
  stateSlots?: number;
  /** 'silu' or 'none' (default 'none'). */
  activation?: Conv1dActivation;
}

export interface CausalConv1dUpdateResult {
  /** Output of each row, float32 [batch, channels] row-major (channels contiguous). */
  out: Float32Array;
  /**
   * New conv states, float32 [stateSlots, channels, width-1] (same layout as
   * the input): a copy of the input pool in which each used slot has
   * dropped its oldest input and appended x. Unused slots are unchanged.
   */
  convState: Float32Array;
}

/**
 * One decode step of the causal conv1d (`causal_conv1d_update_ref`):
 * `out[b, c] = bias[c] + Σ_{k<W-1} weight[c, k] · state[c, k] + weight[c, W-1] · x[b, c]`,
 * then the optional SiLU; the state shifts left by one and takes x.
 */
export function causalConv1dUpdate(opts: CausalConv1dUpdateOptions): CausalConv1dUpdateResult {
  return native.causalConv1dUpdate({ ...opts, ...floatArg('weight', opts?.weight), ...floatArg('bias', opts?.bias) });
}
