// The tensors around the blocks: the embedding, the final norm and the head
// (whole names), and each layer's two pre-norms (relative to the layer).
// Stored (shared/REFERENCE.md sections 3, 7):
// - Mamba: backbone.embeddings.weight (the original dialect's singular
//   backbone.embedding.weight is renamed on reading), backbone.norm_f.weight,
//   backbone.layers.i.norm.weight;
// - Jamba: model.embed_tokens.weight, model.final_layernorm.weight,
//   model.layers.i.input_layernorm.weight, pre_ff_layernorm.weight;
// - Granite: model.embed_tokens.weight, model.norm.weight,
//   model.layers.i.input_layernorm.weight, post_attention_layernorm.weight;
// - lm_head.weight at the top level in every family (absent when tied).
import type { TensorDecl } from './types';

export const EMBEDDING: TensorDecl = {
  role: 'backbone.embeddings.weight', kind: 'matrix', lookup: true, shape: (c) => [c.vocabSize, c.dModel],
  stored: { mamba: 'backbone.embeddings.weight', mamba2: 'backbone.embeddings.weight', jamba: 'model.embed_tokens.weight', granitemoehybrid: 'model.embed_tokens.weight' },
  explain: (c, a) => (a.length === 2 && a[0] !== c.vocabSize ? `the embedding has ${a[0]} rows, the config's (padded) vocabulary is ${c.vocabSize}` : undefined),
  gguf: { name: 'token_embd.weight' },
};

export const FINAL_NORM: TensorDecl = {
  role: 'backbone.norm_f.weight', kind: 'vector', shape: (c) => [c.dModel],
  stored: { mamba: 'backbone.norm_f.weight', mamba2: 'backbone.norm_f.weight', jamba: 'model.final_layernorm.weight', granitemoehybrid: 'model.norm.weight' },
  gguf: { name: 'output_norm.weight' },
};

export const LM_HEAD: TensorDecl = {
  role: 'lm_head.weight', kind: 'matrix', shape: (c) => [c.vocabSize, c.dModel], when: (c) => !c.tieEmbeddings,
  stored: { mamba: 'lm_head.weight', mamba2: 'lm_head.weight', jamba: 'lm_head.weight', granitemoehybrid: 'lm_head.weight' },
  gguf: { name: 'output.weight' },
};

/** The mixer's pre-norm, in every layer. */
export const MIXER_NORM: TensorDecl = {
  role: 'norm.weight', kind: 'vector', shape: (c) => [c.dModel],
  stored: { mamba: 'norm.weight', mamba2: 'norm.weight', jamba: 'input_layernorm.weight', granitemoehybrid: 'input_layernorm.weight' },
  gguf: { name: 'attn_norm.weight' },
};

/** The feed-forward's pre-norm, in layers with a feed-forward. */
export const FFN_NORM: TensorDecl = {
  role: 'ffn_norm.weight', kind: 'vector', shape: (c) => [c.dModel],
  stored: { jamba: 'pre_ff_layernorm.weight', granitemoehybrid: 'post_attention_layernorm.weight' },
  gguf: { name: 'ffn_norm.weight' },
};
