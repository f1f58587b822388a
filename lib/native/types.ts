// The native module's exact shape: the one file to update when the C++
// exports change (csrc/napi/*_binding.cpp). Arguments are plain option
// objects; every field is re-checked on the native side.

export type HalfDtype = 'f16' | 'bf16';
export type Isa = 'scalar' | 'avx2' | 'avx512' | 'avx512vnni';

/** A CUDA device as the runtime reports it. */
export interface CudaDeviceInfo {
  index: number;
  name: string;
  /** e.g. '9.0' */
  computeCapability: string;
  totalBytes: number;
  multiprocessors: number;
  /** compute capability 7.5 or newer (what the kernels are built for) */
  supported: boolean;
}

/** Whether this build has the CUDA kernels and whether this machine can run them. */
export interface CudaRuntimeInfo {
  /** built with -DNODE_MAMBA_CUDA=ON */
  compiled: boolean;
  /** compiled, a driver, and at least one supported device */
  usable: boolean;
  /** why not usable (no kernels in this build, no driver, no device, compute capability too old) */
  reason?: string;
  /** CUDA versions as integers (13000 = 13.0); 0 where there is none */
  driverVersion: number;
  runtimeVersion: number;
  devices: CudaDeviceInfo[];
}

/** One variant's recorded decode steps in an A/B trial (NativeRuntimeInfo.abTrial). */
export interface AbTrialVariant {
  steps: number;
  medianUs: number;
  meanUs: number;
}

export interface NativeRuntimeInfo {
  isa: Isa;
  detectedIsa: Isa;
  threads: number;
  physicalCores: number;
  /**
   * Ranges of decode steps' matrix products that the calling thread computed again because the pool's worker
   * holding them had stalled (preempted by the machine) for more than 20 us, since the process started.
   */
  recomputedRanges: number;
  /**
   * Matrix products that ran on the pool's workers while the calling thread went on with other calls (at
   * batch 1, in_proj's gate rows behind a Mamba layer's conv and state update), since the process started.
   */
  backgroundProducts: number;
  /**
   * Only with NODE_MAMBA_AB_TRIAL=<steps> in the environment (a developer's A/B trial, bench/ab_trial.js):
   * decode steps alternate between variants A and B in blocks of that many steps, and these are each
   * variant's step times (decode and token choice), after `warmupSteps`.
   */
  abTrial?: { blockSteps: number; warmupSteps: number; a: AbTrialVariant; b: AbTrialVariant };
  cuda: CudaRuntimeInfo;
}

/** Options objects as the native functions read them. */
export type NativeArgs = Record<string, unknown>;

/** The engine's model object (csrc/napi/model_binding.cpp). Every method that computes returns a Promise. */
export interface NativeModel {
  /**
   * stateBytes: the fixed (Mamba) state of a sequence; kvBytesPerToken: its attention layers' K/V bytes per
   * token; backend: the engine backend it runs on (NativeLoadArgs.backend).
   */
  info(): {
    weightBytes: number; decodeBytes: number; stateBytes: number; kvBytesPerToken: number; backend: string;
    /**
     * Decode steps recorded as graphs (captured once per batch size), replayed, and run eagerly after a departure;
     * launchesPerStep: launches in the latest captured step (CUDA: the graph's kernels; device emulation: the
     * backend operations it held back), 0 before any capture.
     */
    decodeGraphs: { captures: number; replays: number; fallbacks: number; launchesPerStep: number };
    /** stepChained: requests served wholly by a step run ahead, in part, and rows stepped when asked. */
    chainedSteps: { hits: number; partial: number; rowsStepped: number };
  };
  allocSequence(): Promise<number>;
  freeSequence(slot: number): Promise<void> | undefined;
  resetSequence(slot: number): Promise<void>;
  /** Runs tokens through the sequence in `slot`; logits of the last token, of all tokens, or none. */
  prefill(slot: number, tokens: Int32Array, logits: 'none' | 'last' | 'all'): Promise<Float32Array | undefined>;
  /** The same prefill, returning the token drawn from the last token's logits as step(..., 'sample') draws it (one row). */
  prefill(slot: number, tokens: Int32Array, logits: 'sample', params: Float64Array, history?: Int32Array, historyOffsets?: Int32Array): Promise<Int32Array>;
  /** One decode step for several sequences: logits [slots.length, vocab]. */
  step(slots: Int32Array, tokens: Int32Array, output?: 'logits'): Promise<Float32Array>;
  /**
   * The same step, returning each sequence's most likely next token (ties to the lowest id; -1 where
   * its logits hold a NaN or nothing above -Infinity): the logits stay in native memory.
   */
  step(slots: Int32Array, tokens: Int32Array, output: 'greedy'): Promise<Int32Array>;
  /**
   * The same step, returning the token drawn from each sequence's logits with its row of `params`
   * (kernels/sampling.ts packSampleParams: temperature, topK, topP, minP, repetitionPenalty, u) and
   * its history (packSampleHistories); -1 where its logits hold a NaN, -2 where nothing is above
   * -Infinity.
   */
  step(slots: Int32Array, tokens: Int32Array, output: 'sample', params: Float64Array, history?: Int32Array, historyOffsets?: Int32Array): Promise<Int32Array>;
  /**
   * step(..., 'sample') whose next step runs ahead with the tokens it returns (csrc/napi/step_chain.h):
   * nextU[i] is row i's draw for that step, NaN where row i's generation ends with this token. Each
   * sequence's next call must be stepChained with the token returned, or freeing, resetting or
   * restoring it (any other call on it is an Error).
   */
  stepChained(slots: Int32Array, tokens: Int32Array, params: Float64Array, history: Int32Array | undefined,
    historyOffsets: Int32Array | undefined, nextU: Float64Array): Promise<number[]>;
  /** The sequence's whole state (csrc/engine/model.h Model::snapshot) and its position. */
  snapshot(slot: number): Promise<{ state: Uint8Array; position: number }>;
  restore(slot: number, state: Uint8Array, position: number): Promise<void>;
  /**
   * One calibration sample (engine/forward.h ActivationObserver): input statistics of every linear layer;
   * with `gram`, also each layer's Σ xᵀx over its input rows ([K, K] row-major, float64).
   */
  calibrate(tokens: Int32Array, percentile: number, withHead: boolean, gram?: boolean): Promise<{
    names: string[]; absmax: number[]; quantiles: number[][]; grams?: Float64Array[];
    /** The SSM path's channel taps (csrc/engine/forward.h ChannelStats). */
    channels: Array<{ name: string; absmax: Float32Array; quantiles: number[] }>;
  }>;
  dispose(): void;
}

/**
 * The engine's load arguments (csrc/napi/model_binding.cpp). The per-layer
 * fields are docs/hybrid-engine.md's contract: `layers` is the schedule;
 * attention / MLP / MoE sizes are 0 in a model without such layers; the
 * multipliers are 1 unless the model scales; `tensors` hold canonical names,
 * each with its own offset and 2-D shape when it is a row range of a packed
 * stored tensor.
 */
export interface NativeLoadArgs {
  /** The engine backend (engine/backend.h): 'cpu', 'cuda', or 'cpu-device-emulation' for the tests' check of the device seam. */
  backend?: 'cpu' | 'cpu-device-emulation' | 'cuda';
  /** The SSM flavour of the Mamba layers. */
  arch: 'mamba' | 'mamba2';
  dModel: number; nLayer: number; vocabSize: number; dState: number; dConv: number; dInner: number;
  dtRank: number; headdim: number; nheads: number; ngroups: number; normEps: number;
  dtMin: number; dtMax?: number; threads?: number; roundActivations?: boolean; hadamardOut?: boolean; hadamardResidual?: boolean; ssmInt8?: boolean;
  /** nLayer entries: each layer's mixer and feed-forward. */
  layers: Array<{ mixer: 'mamba1' | 'mamba2' | 'attention'; ffn: 'none' | 'mlp' | 'moe' }>;
  /** Jamba: RMSNorms of dt, B, C after x_proj (tensors mixer.dt_norm / B_norm / C_norm). */
  mambaInnerNorms: boolean;
  /** Mamba-2 gated norm: channels per group (dInner / ngroups; Granite dInner). */
  gatedNormGroupSize: number;
  nHeads: number; nKvHeads: number; headDim: number;
  /** Multiplies q·k. */
  attnScale: number;
  /** RoPE base; 0: no RoPE. */
  ropeTheta: number; ropeDim: number;
  /** RoPE pairs channels 2i, 2i + 1 (llama.cpp files) instead of i, i + ropeDim / 2. */
  ropeInterleaved: boolean;
  mlpDim: number;
  moeExperts: number; moeTopK: number; moeDim: number; moeRouter: 'softmax_topk' | 'topk_softmax';
  /** 0: no shared expert. */
  moeSharedDim: number;
  embeddingMultiplier: number; residualMultiplier: number;
  /** Logits are divided by it. */
  logitsScaling: number;
  /** Tokens a sequence may hold (bounds the attention layers' KV cache). */
  contextSize: number;
  kvDtype: 'f16' | 'f32';
  files: string[];
  tensors: Array<{ name: string; file: number; offset: number; nbytes: number; dtype: 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'i8' | 'i4'; shape: number[] }>;
}

export interface NativeModule {
  loadModel(args: NativeLoadArgs): Promise<NativeModel>;

  runtimeInfo(): NativeRuntimeInfo;
  setIsa(isa: string): Isa;
  setThreads(threads: number): number;
  measureReadBandwidth(args: { bytes?: number; repeats?: number; threads?: number }): import('../kernels/runtime').ReadBandwidth;
  measureArithmeticPeak(args: { repeats?: number; threads?: number }): import('../kernels/runtime').ArithmeticPeak;

  sampleTokens(args: NativeArgs): Int32Array;
  rmsNorm(args: NativeArgs): { out: Float32Array; residual: Float32Array };
  gatedRmsNorm(args: NativeArgs): Float32Array;
  causalConv1d(args: NativeArgs): { out: Float32Array; convState: Float32Array };
  causalConv1dUpdate(args: NativeArgs): { out: Float32Array; convState: Float32Array };
  linear(args: NativeArgs): Float32Array;
  qlinear(args: NativeArgs): Float32Array;
  qlinearPackPanels(args: NativeArgs): { data: Int8Array | Uint8Array; scales: Float32Array };
  quantizeInt8(args: NativeArgs): Int8Array;
  moeRoute(args: NativeArgs): { ids: Int32Array; weights: Float32Array };
  moe(args: NativeArgs): Float32Array;
  selectiveScan(args: NativeArgs): { out: Float32Array; lastState: Float32Array };
  selectiveStateUpdate(args: NativeArgs): { out: Float32Array; state: Float32Array };
  ssdChunkScan(args: NativeArgs): { out: Float32Array; finalStates: Float32Array };
  kvCacheAppend(args: NativeArgs): { kCache: Float32Array | Uint16Array; vCache: Float32Array | Uint16Array };
  pagedAttention(args: NativeArgs): Float32Array;
  rope(args: NativeArgs): Float32Array;
  hadamard(args: NativeArgs): Float32Array;
  hadamardQuantize(args: NativeArgs): Int8Array;
}
