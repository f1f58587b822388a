// Mamba-1 selective scan (prefill) and the single-step selective state update
// (decode) for Mamba-1 and Mamba-2 shapes.
//
// Every tensor is float32, row-major, the last axis contiguous. A, D and the
// delta/dt bias are float32 only: they are small per-layer parameters that the
// engine converts to float32 once, at load.
import { native } from '../native/binding';

export interface SelectiveScanOptions {
  /** Input, float32 [batch, seqlen, dim] (token-major; dim contiguous). */
  u: Float32Array;
  /** Step size before bias/softplus, float32 [batch, seqlen, dim] (dim contiguous). */
  delta: Float32Array;
  /** State matrix, float32 [dim, dstate] (dstate contiguous); real checkpoints hold A = -exp(A_log). */
  A: Float32Array;
  /** Input projection per token, float32 [batch, seqlen, ngroups, dstate] (dstate contiguous). */
  B: Float32Array;
  /** Output projection per token, float32 [batch, seqlen, ngroups, dstate] (dstate contiguous). */
  C: Float32Array;
  /** Optional skip weight, float32 [dim]: out += u * D. */
  D?: Float32Array;
  /** Optional gate, float32 [batch, seqlen, dim]: out *= silu(z). */
  z?: Float32Array;
  /** Optional bias added to delta, float32 [dim]. */
  deltaBias?: Float32Array;
  /** Apply softplus (threshold 20) to delta after the bias. Default false, as in the reference. */
  deltaSoftplus?: boolean;
  /** Optional starting state, float32 [batch, dim, dstate] (dstate contiguous); zeros when absent. */
  initialState?: Float32Array;
  /** Batch rows, >= 0. */
  batch: number;
  /** Tokens per row, >= 0. */
  seqlen: number;
  /** Channels (d_inner), >= 1. */
  dim: number;
  /** State size per channel, 1..256 (16 for Mamba-1). */
  dstate: number;
  /** Groups of B/C; must divide dim; channel d uses group floor(d / (dim / ngroups)). Default 1. */
  ngroups?: number;
}

export interface SelectiveScanResult {
  /** float32 [batch, seqlen, dim] (dim contiguous). */
  out: Float32Array;
  /** State after the last token, float32 [batch, dim, dstate] (dstate contiguous). */
  lastState: Float32Array;
}

/**
 * Mamba-1 selective scan (state-spaces/mamba `selective_scan_ref` with
 * variable, optionally grouped B/C and `return_last_state`), on token-major
 * tensors. Per batch row and channel d, with x starting at `initialState` (or 0):
 * `dt = delta + deltaBias` (then softplus if `deltaSoftplus`);
 * `x[n] = exp(dt·A[d,n])·x[n] + dt·B[n]·u`; `y = Σₙ x[n]·C[n]`;
 * `out = (y + u·D[d])·silu(z)`. Computed in float32.
 */
export function selectiveScan(opts: SelectiveScanOptions): SelectiveScanResult {
  return native.selectiveScan(opts as unknown as Record<string, unknown>);
}

export interface SelectiveStateUpdateOptions {
  /**
   * State (or state pool), float32, dstate contiguous: Mamba-1 [slots, dim, dstate],
   * Mamba-2 [slots, nheads, headdim, dstate]; slots = batch, or `stateSlots` with
   * `stateIndices`. Not modified: the updated state is returned as a new array.
   */
  state: Float32Array;
  /** Input, float32: Mamba-1 [batch, dim]; Mamba-2 [batch, nheads, headdim] (headdim contiguous). */
  x: Float32Array;
  /** Step size before bias/softplus, float32: Mamba-1 [batch, dim]; Mamba-2 [batch, nheads] (one per head). */
  dt: Float32Array;
  /** float32: Mamba-1 [dim, dstate] (dstate contiguous); Mamba-2 [nheads] (one scalar per head). */
  A: Float32Array;
  /** float32 [batch, ngroups, dstate] (dstate contiguous). */
  B: Float32Array;
  /** float32 [batch, ngroups, dstate] (dstate contiguous). */
  C: Float32Array;
  /** Optional skip weight, float32: Mamba-1 [dim]; Mamba-2 [nheads]. */
  D?: Float32Array;
  /** Optional gate, float32, x's shape: out *= silu(z). */
  z?: Float32Array;
  /** Optional bias added to dt, float32: Mamba-1 [dim]; Mamba-2 [nheads]. */
  dtBias?: Float32Array;
  /** Apply softplus (threshold 20) to dt after the bias. Default false. */
  dtSoftplus?: boolean;
  /** Lower clamp of dt after the softplus (Mamba-2 dt_limit[0]); default none. */
  dtMin?: number;
  /** Upper clamp of dt after the softplus (dt_limit[1]); default none. */
  dtMax?: number;
  /** Batch rows, >= 0. */
  batch: number;
  /** Mamba-1 channels (d_inner). Required when `headdim` is absent; with Mamba-2 shapes, if given, must be nheads * headdim. */
  dim?: number;
  /** Mamba-2 heads; given together with `headdim` (whose presence selects the Mamba-2 shapes). */
  nheads?: number;
  /** Mamba-2 head dimension; its presence selects the Mamba-2 shapes. */
  headdim?: number;
  /** State size, >= 1. */
  dstate: number;
  /**
   * Groups of B/C; must divide dim (Mamba-1) or nheads (Mamba-2). Channel d
   * uses group floor(d / (dim / ngroups)); head h uses floor(h / (nheads / ngroups)). Default 1.
   */
  ngroups?: number;
  /** Optional int32 [batch]: batch row b updates slot stateIndices[b] of the pool (distinct, in [0, stateSlots)). */
  stateIndices?: Int32Array;
  /** Slots in the state pool; required with `stateIndices`, not allowed without it. */
  stateSlots?: number;
}

export interface SelectiveStateUpdateResult {
  /** float32, x's shape: (Σₙ state·C + x·D)·silu(z). */
  out: Float32Array;
  /** The updated state, float32, the input state's shape (slots not indexed are copied unchanged). */
  state: Float32Array;
}

/**
 * One decode step (state-spaces/mamba `selective_state_update`):
 * `dt = dt + dtBias` (then softplus if `dtSoftplus`, then the `dtMin`/`dtMax` clamp);
 * `state = state·exp(dt·A) + dt·B·x`; `out = (Σₙ state·C + x·D)·silu(z)`.
 * Mamba-1 shapes when `headdim` is absent, Mamba-2 shapes (scalar A, dt, D and
 * dtBias per head) when it is given. Computed in float32.
 */
export function selectiveStateUpdate(opts: SelectiveStateUpdateOptions): SelectiveStateUpdateResult {
  return native.selectiveStateUpdate(opts as unknown as Record<string, unknown>);
}
