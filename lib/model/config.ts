// The normalised model configuration every part of the engine uses, whatever
// dialect the checkpoint's config.json was written in (lib/loaders/config.ts
// reads both). Names follow state-spaces/mamba's (d_model, n_layer, ...) in camelCase.

import type { QuantizationConfig } from '../quant/config';

export type Architecture = 'mamba' | 'mamba2';

export interface MambaConfig {
  arch: Architecture;
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
}
