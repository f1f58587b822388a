// The normalised model configuration every part of the engine uses, whatever
// dialect the checkpoint's config.json was written in (lib/loaders/config.ts
// reads them all). Names follow state-spaces/mamba's (d_model, n_layer, ...) in
// camelCase. Hybrid models (Jamba, Granite 4.0-H) add a per-layer schedule and
// the attention / feed-forward sizes, as docs/hybrid-engine.md's contract
// between the loaders and the engine says.

import type { QuantizationConfig } from '../quant/config';

/** The SSM flavour of the model's Mamba layers: Mamba-1 ('mamba'; also Jamba) or Mamba-2 ('mamba2'; also Granite 4.0-H). */
export type Architecture = 'mamba' | 'mamba2';

/**
 * The tensor naming of the checkpoint: 'mamba' / 'mamba2' (state-spaces and
 * Hugging Face Mamba), 'jamba' (`model_type: "jamba"`), 'granitemoehybrid'
 * (`model_type: "granitemoehybrid"`, Granite 4.0-H).
 */
export type ModelFamily = 'mamba' | 'mamba2' | 'jamba' | 'granitemoehybrid';

/** A layer's sequence mixer. */
export type MixerKind = 'mamba1' | 'mamba2' | 'attention';
/** A layer's feed-forward after the mixer ('none': Mamba models). */
export type FfnKind = 'none' | 'mlp' | 'moe';

export interface LayerKind {
  mixer: MixerKind;
  ffn: FfnKind;
}

/** Attention layers (causal, grouped-query: query head h reads KV head h / (nHeads / nKvHeads)). */
export interface AttentionConfig {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Multiplies q·k (Jamba: 1/sqrt(headDim); Granite: `attention_multiplier`). */
  scale: number;
  /** RoPE base; 0: no positional encoding. */
  ropeTheta: number;
  /** Channels of each head that RoPE rotates (0 without RoPE). */
  ropeDim: number;
  /**
   * RoPE pairs channel 2i with 2i + 1 (llama.cpp files, whose q / k rows its converter
   * reorders so) instead of i with i + ropeDim / 2 (Hugging Face). Default false.
   */
  ropeInterleaved?: boolean;
}

/**
 * 'softmax_topk': softmax over all experts, the top-k probabilities are the
 * weights, not renormalised (Jamba); 'topk_softmax': the top-k logits, then a
 * softmax over those k (Granite). shared/REFERENCE.md 7(d).
 */
export type MoeRouter = 'softmax_topk' | 'topk_softmax';

/** Mixture-of-experts feed-forwards: each expert is down(silu(gate·x) ⊙ up·x). */
export interface MoeConfig {
  experts: number;
  /** Experts per token. */
  topK: number;
  /** Intermediate width of each expert. */
  dim: number;
  router: MoeRouter;
  /** Intermediate width of the shared expert added to every token's output; 0: none. */
  sharedDim: number;
}

/** Granite's scalings: h = embed·embedding; each residual branch ·residual; logits / logits. */
export interface Multipliers {
  embedding: number;
  residual: number;
  logits: number;
}

export interface MambaConfig {
  /** The SSM flavour of the Mamba layers (the Mamba-1 / Mamba-2 fields below describe those layers). */
  arch: Architecture;
  /** Tensor naming of the checkpoint (lib/model/blocks/ maps each family's names onto the canonical ones). */
  family: ModelFamily;
  /** Every layer's mixer and feed-forward, nLayer entries (Mamba models: { mixer: 'mamba1' | 'mamba2', ffn: 'none' }). */
  layers: LayerKind[];
  /** Hidden size (HF `hidden_size`, original `d_model`). */
  dModel: number;
  /** Number of blocks (HF `num_hidden_layers`, original `n_layer`). */
  nLayer: number;
  /** Rows of the embedding and of the logits: the vocabulary after padding to `pad_vocab_size_multiple`. */
  vocabSize: number;
  /** State size per channel (HF `state_size`; mamba 16, mamba2 128 by default). */
  dState: number;
  /** Conv kernel width (HF `conv_kernel`, default 4). */
  dConv: number;
  expand: number;
  /** expand * dModel (HF `intermediate_size`). */
  dInner: number;
  /** Mamba-1: rank of the dt projection (HF `time_step_rank`, default ceil(dModel / 16)); 0 for mamba2. */
  dtRank: number;
  /** Mamba-2: channels per head (HF `head_dim`, default 64); 0 for mamba. */
  headdim: number;
  /** Mamba-2: dInner / headdim; 0 for mamba. */
  nheads: number;
  /** Mamba-2: groups of B/C (HF `n_groups`); 1 for mamba. */
  ngroups: number;
  /** Mamba-2: chunk size of the reference implementation (HF `chunk_size`, default 256); informational. */
  chunkSize: number;
  /** RMSNorm epsilon (HF `layer_norm_epsilon`, default 1e-5). */
  normEps: number;
  /** lm_head shares the embedding matrix. */
  tieEmbeddings: boolean;
  residualInFp32: boolean;
  /** in_proj / out_proj have biases (HF `use_bias`). */
  useBias: boolean;
  /** conv1d has a bias (HF `use_conv_bias`, default true). */
  convBias: boolean;
  /** Mamba-2 dt clamp after softplus (HF `time_step_limit`); [0, Infinity] means none. */
  timeStepLimit: [number, number];
  bosTokenId?: number;
  eosTokenId?: number;
  padTokenId?: number;
  /** Quamba-style checkpoints (config.json `quantization_config`, lib/quant/config.ts). */
  quantization?: QuantizationConfig;
  /** Set when some layer is an attention layer. */
  attention?: AttentionConfig;
  /** Intermediate width of the 'mlp' layers (set when some layer has one). */
  mlpDim?: number;
  /** Set when some layer is a mixture of experts. */
  moe?: MoeConfig;
  /** Jamba: RMSNorms (eps normEps) of dt, B and C right after x_proj (mixer.dt_norm / B_norm / C_norm). */
  mambaInnerNorms?: boolean;
  /** Mamba-2: channels per group of the gated RMSNorm; absent means dInner / ngroups (Granite: dInner, one group). */
  gatedNormGroupSize?: number;
  /** Granite: embedding, residual and logits scalings; absent means all 1. */
  multipliers?: Multipliers;
  /** config.json `max_position_embeddings` (the default of loadModel's contextSize). */
  maxPositionEmbeddings?: number;
}

/** The schedule of a Mamba (non-hybrid) model: nLayer layers of the architecture's mixer, no feed-forward. */
export function mambaLayers(arch: Architecture, nLayer: number): LayerKind[] {
  const mixer: MixerKind = arch === 'mamba' ? 'mamba1' : 'mamba2';
  return Array.from({ length: nLayer }, () => ({ mixer, ffn: 'none' as const }));
}

/** True when some layer is not a plain Mamba layer (attention, or a feed-forward after the mixer). */
export function isHybrid(c: Pick<MambaConfig, 'layers'>): boolean {
  return c.layers.some((l) => l.mixer === 'attention' || l.ffn !== 'none');
}
