// Mixture-of-experts feed-forward (Jamba, Granite 4.0-H, Nemotron-H): router and
// dropless dispatch over SwiGLU experts (csrc/kernels/moe.h).
import { native } from '../native/binding';
import type { QuantizedWeight } from '../quant/formats';
import type { FloatData, QuantData } from './tensor';

/**
 * Router variants, all in float32 on logits = x · W_routerᵀ [tokens, experts] (the caller
 * computes the logits, e.g. with `linear`):
 * - 'softmax_topk' (Jamba): p = softmax over all experts; the k largest p; weights = those p
 *   (not renormalised).
 * - 'topk_softmax' (Granite 4.0-H): the k largest logits; weights = softmax over those k.
 * - 'sigmoid_grouped' (Nemotron-H, DeepSeek-V3): s = sigmoid(logits); choice scores s + bias
 *   (bias for the choice only); experts form `nGroup` groups of consecutive experts, a group
 *   scores the sum of its two largest choice scores, the `topkGroup` best groups are kept and the
 *   k largest choice scores inside them chosen; weights = s of the chosen, divided by
 *   (Σ + 1e-20) if `normTopkProb`, times `routedScalingFactor`.
 * Ties go to the lower expert (or group) index; a NaN ranks below every number. A token's k
 * choices come best first.
 */
export type MoeRouter = 'softmax_topk' | 'topk_softmax' | 'sigmoid_grouped';

export interface MoeRouterOptions {
  /** Router logits, float32 [tokens, experts]. */
  logits: Float32Array;
  router: MoeRouter;
  /** 'sigmoid_grouped' only: choice bias (e_score_correction_bias), float32 [experts]; default none. */
  bias?: Float32Array;
  /** 'sigmoid_grouped' only: number of groups, dividing `experts`; default 1. */
  nGroup?: number;
  /** 'sigmoid_grouped' only: groups kept, 1..nGroup (default nGroup); k <= topkGroup · experts / nGroup. */
  topkGroup?: number;
  /** 'sigmoid_grouped' only: renormalise the chosen weights to sum 1; default false. */
  normTopkProb?: boolean;
  /** 'sigmoid_grouped' only: factor on the weights (after renormalisation); default 1. */
  routedScalingFactor?: number;
}

export interface MoeRouteOptions extends MoeRouterOptions {
  tokens: number;
  /** E >= 1. */
  experts: number;
  /** Experts per token, 1 <= k <= experts. */
  k: number;
}

export interface MoeRouting {
  /** Chosen experts, Int32Array [tokens, k], best first. */
  ids: Int32Array;
  /** Their weights, float32 [tokens, k]. */
  weights: Float32Array;
}

/** Routes every token: the k experts and their weights (see MoeRouter). */
export function moeRoute(opts: MoeRouteOptions): MoeRouting {
  return native.moeRoute({ ...opts });
}

/**
 * Stacked expert weights, [experts, rows, cols] row-major (one nn.Linear weight [rows, cols]
 * per expert, experts contiguous), in one of:
 * - f32 / f16 / bf16: a Float32Array, or `{ data: Uint16Array, dtype: 'f16' | 'bf16' }`;
 * - q8_0 / q4_0 (ggml blocks, `{ data: Uint8Array, dtype }`): cols must be a multiple of 32;
 * - i8 / i4 (Quamba formats of lib/quant/formats.ts, quantized as one [experts · rows, cols]
 *   matrix: `scales` float32 [experts, rows] (i8) or [experts, rows, ceil(cols / 128)] (i4)),
 *   with `xScale`, float32 [experts], the static per-expert input scale (> 0) of this matrix:
 *   int8 inputs (W8A8 / W4A8). Required for i8; absent for i4 means float inputs (W4A16).
 * Products are float32 (f16 / bf16 / q8_0 / q4_0 dequantised exactly as read), as `linear`
 * and `qlinear` compute them.
 */
export type MoeExpertWeight =
  | FloatData
  | QuantData
  | (Pick<QuantizedWeight, 'dtype' | 'data' | 'scales'> & { xScale?: Float32Array });

/**
 * 'decode': experts one after another, each product parallel over its outputs;
 * 'batched': experts (in chunks of up to 256 tokens) spread over the threads. 'auto' (default)
 * uses 'decode' only when there are fewer expert chunks than threads. Both give bitwise the
 * same result, for any thread count.
 */
export type MoeAlgorithm = 'auto' | 'decode' | 'batched';

interface MoeBaseOptions {
  /** Input, float32 [tokens, hidden]. */
  x: Float32Array;
  tokens: number;
  /** d, the model width. */
  hidden: number;
  /** I, each expert's width. */
  intermediate: number;
  /** E >= 1. */
  experts: number;
  /** Experts per token, 1 <= k <= experts. */
  k: number;
  /**
   * Gate and up packed per expert, [experts, 2 · intermediate, hidden]: rows [0, I) gate and
   * [I, 2I) up (Granite's block_sparse_moe.input_linear). Or give `gate` and `up`.
   */
  gateUp?: MoeExpertWeight;
  /** Gate, [experts, intermediate, hidden] (Jamba / Mixtral-style checkpoints), with `up`. */
  gate?: MoeExpertWeight;
  /** Up, [experts, intermediate, hidden], with `gate`. */
  up?: MoeExpertWeight;
  /** Down, [experts, hidden, intermediate]. */
  down: MoeExpertWeight;
  /**
   * Optional float32 [tokens, hidden] added to the result last (e.g. the shared expert's output,
   * computed by the caller with `linear`); out = (Σ_j w_j · y_j) + shared.
   */
  shared?: Float32Array;
  /**
   * Rounding of each expert product's input for float / q8_0 / q4_0 experts (kernels.linear's
   * inputRounding: 'q8' quantizes x and h to int8 per 32 values, as llama.cpp does for Q8_0 /
   * Q4_0 weights and the engine for its q8_0 / q4_0 files). Default 'none'.
   */
  inputRounding?: 'none' | 'bf16' | 'q8';
  algorithm?: MoeAlgorithm;
  /**
   * Whether SiLU(gate)·up may be computed in the epilogue of the gate / up products (default
   * true; it is where an expert's few-row GEMM runs: float experts, 17-64 rows at AVX-512). false
   * forces the separate pass; both give the same bits (for tests and benchmarks).
   */
  swigluEpilogue?: boolean;
  /**
   * 'panels': q8_0 / q4_0 / i8 / i4 experts (given in rows, as above) are packed for the call
   * into the panel layout a loaded model reads them in, and read from it: q8_0 / q4_0 with
   * inputRounding 'q8' only (a q8_0 quant of -128 is a RangeError), i8 / i4 with int8 inputs
   * (input scales) only, their scales reordered per panel. Default 'rows'.
   */
  weightLayout?: 'rows' | 'panels';
}

/** Routing given: the output of moeRoute, or the caller's own. */
export interface MoeRoutedOptions extends MoeBaseOptions {
  /** Expert ids, Int32Array [tokens, k], each in [0, experts). */
  ids: Int32Array;
  /** Their weights, float32 [tokens, k]. */
  weights: Float32Array;
}

/** Routing done here from the router logits (as moeRoute). */
export type MoeLogitsOptions = MoeBaseOptions & MoeRouterOptions;

export type MoeOptions = MoeRoutedOptions | MoeLogitsOptions;

/** Spreads an expert weight into the native `{ name, nameDtype, nameScales, nameXScale }`. */
function expertArg(name: string, v: unknown): Record<string, unknown> {
  if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && 'data' in v) {
    const o = v as { data: unknown; dtype?: unknown; scales?: unknown; xScale?: unknown };
    return { [name]: o.data, [name + 'Dtype']: o.dtype, [name + 'Scales']: o.scales, [name + 'XScale']: o.xScale };
  }
  return { [name]: v };
}

/**
 * Dropless mixture of SwiGLU experts: for each token t,
 * `out[t] = Σ_j weights[t, j] · W2_e (silu(Wgate_e x_t) ∘ (Wup_e x_t)) (+ shared[t])`, e = ids[t, j],
 * the k terms added in slot order (deterministic, no atomics). Returns float32 [tokens, hidden].
 * Only the chosen experts' weights are read. The result is bitwise independent of the thread
 * count and of `algorithm`; it can change in float32 rounding with how many tokens of the call
 * share an expert (up to 16 rows per expert chunk use linear's GEMV, more its GEMM).
 */
export function moe(opts: MoeOptions): Float32Array {
  const o = opts as MoeBaseOptions;
  return native.moe({
    ...opts, ...expertArg('gateUp', o?.gateUp), ...expertArg('gate', o?.gate), ...expertArg('up', o?.up),
    ...expertArg('down', o?.down),
  });
}
