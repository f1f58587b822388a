// Mamba-2 SSD chunked scan for prefill, on packed variable-length sequences.
import { native } from '../native/binding';

export interface SsdChunkScanOptions {
  /** Input, float32 [tokens, nheads, headdim], row-major (headdim contiguous); tokens of all sequences packed back to back. */
  x: Float32Array;
  /** Raw time step, float32 [tokens, nheads] (nheads contiguous); dtBias, softplus and the clamp are applied inside. */
  dt: Float32Array;
  /**
   * Per-head decay, float32 [nheads]: A = -exp(A_log). Float32 only (like D and
   * dtBias): the engine converts these small per-layer parameters at load.
   */
  A: Float32Array;
  /** Input projection of the state, float32 [tokens, ngroups, dstate] (dstate contiguous). */
  B: Float32Array;
  /** Output projection of the state, float32 [tokens, ngroups, dstate] (dstate contiguous). */
  C: Float32Array;
  /** Optional skip connection, float32 [nheads]: y += D[h] * x. */
  D?: Float32Array;
  /** Optional gate, float32 [tokens, nheads, headdim]: y *= silu(z) (mamba_chunk_scan_combined's z). */
  z?: Float32Array;
  /** Optional time-step bias, float32 [nheads], added to dt before the softplus. */
  dtBias?: Float32Array;
  /**
   * Sequence boundaries, Int32Array [nseq + 1]: cumulative offsets into the
   * token axis, 0 first, non-decreasing, last = tokens (sequences of length 0
   * allowed). Default: one sequence [0, tokens].
   */
  cuSeqlens?: Int32Array;
  /** Optional start states, float32 [nseq, nheads, headdim, dstate] (dstate contiguous); default zeros. */
  initialStates?: Float32Array;
  /** Total packed tokens, 0 ≤ tokens < 2^31. */
  tokens: number;
  nheads: number;
  /** Channels per head (P), 1..1024. */
  headdim: number;
  /** Groups of B/C (G), must divide nheads; head h uses group h / (nheads / ngroups). Default 1. */
  ngroups?: number;
  /** State size per channel (N), 1..1024. */
  dstate: number;
  /**
   * Tokens per chunk, 1..4096. Chunks restart at every sequence start; the
   * chunk size only changes float32 rounding. Default 64 (SSD_CPU_CHUNK_SIZE):
   * the reference's GPU chunk_size is 256, but on CPU 16..64 is ~20% faster
   * (the C·Bᵀ and diagonal-block work grows with the chunk).
   */
  chunkSize?: number;
  /** Apply softplus (threshold 20) to dt + dtBias. Default false (as mamba_chunk_scan_combined; Mamba2 passes true). */
  dtSoftplus?: boolean;
  /** Lower clamp of dt after the softplus (dt_limit[0]); default none. */
  dtMin?: number;
  /** Upper clamp of dt after the softplus (dt_limit[1]); default none. */
  dtMax?: number;
}

export interface SsdChunkScanResult {
  /** Output y (gated if z was given), float32 [tokens, nheads, headdim], headdim contiguous. */
  out: Float32Array;
  /** State after each sequence's last token, float32 [nseq, nheads, headdim, dstate], dstate contiguous. */
  finalStates: Float32Array;
}

/** The default chunkSize of the CPU kernel (measured on a mamba2-130m layer: 24 heads × 64 × 128, 2048 tokens). */
export const SSD_CPU_CHUNK_SIZE = 64;

/**
 * Mamba-2 SSD scan (state-spaces/mamba `mamba_chunk_scan_combined`, chunked as
 * in ssd_minimal.py), per head h with group g = h / (nheads / ngroups):
 * `dt = clamp(softplus?(dt + dtBias[h]))`,
 * `state_t = exp(dt·A[h])·state_{t-1} + dt·x_t ⊗ B_{g,t}` (state [headdim, dstate]),
 * `y_t = state_t·C_{g,t} + D[h]·x_t`, then `y_t *= silu(z_t)` if z is given.
 * Each sequence of `cuSeqlens` starts from its initial state (or zeros).
 */
export function ssdChunkScan(opts: SsdChunkScanOptions): SsdChunkScanResult {
  return native.ssdChunkScan({ ...opts });
}
