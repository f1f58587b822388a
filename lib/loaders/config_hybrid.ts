// What the hybrid config readers (config_jamba.ts, config_granite.ts) read
// alike: the model sizes, the attention heads and the expert counts, in the
// Hugging Face dialect transformers writes (shared/REFERENCE.md section 7).
// Every failure is a ModelLoadError naming the config key.
import type { AttentionConfig, LayerKind, MambaConfig } from '../model/config';
import type { Reader } from './config_reader';

/** The fields of MambaConfig that do not depend on the family. */
export type HybridCommon = Pick<MambaConfig,
  'dModel' | 'nLayer' | 'vocabSize' | 'normEps' | 'tieEmbeddings' | 'residualInFp32' | 'maxPositionEmbeddings' |
  'bosTokenId' | 'eosTokenId' | 'padTokenId'>;

/**
 * Sizes, norm epsilon (`rms_norm_eps`, default 1e-6 in both families), tying
 * (`tie_word_embeddings`, default false in both), the token ids the file
 * names, and `max_position_embeddings` (defaults: Jamba 262144, Granite 2048).
 * hidden_size, num_hidden_layers and vocab_size are required, as for Mamba
 * configs (transformers writes them all).
 */
export function readHybridCommon(r: Reader, maxPositionDefault: number): HybridCommon {
  r.only('hidden_act', 'silu', 'an activation other than silu');
  return {
    dModel: r.posInt('hidden_size'),
    nLayer: r.posInt('num_hidden_layers'),
    vocabSize: r.posInt('vocab_size'),
    normEps: r.posNum('rms_norm_eps', 1e-6),
    tieEmbeddings: r.bool('tie_word_embeddings', false),
    // The engine's residual stream is float32 whatever the weights' dtype.
    residualInFp32: true,
    maxPositionEmbeddings: r.posInt('max_position_embeddings', maxPositionDefault),
    bosTokenId: r.optTokenId('bos_token_id'),
    eosTokenId: r.optTokenId('eos_token_id'),
    padTokenId: r.optTokenId('pad_token_id'),
  };
}

/**
 * `num_attention_heads` (default 32 in both families) and
 * `num_key_value_heads` (null: as many as the query heads; absent:
 * `kvDefault`, Jamba's 8 or Granite's "as many as the query heads"); head_dim = hidden_size / heads, as
 * LlamaAttention and GraniteMoeSharedAttention compute it. No projection
 * biases (`attention_bias` true is refused).
 */
export function readAttentionHeads(r: Reader, dModel: number, kvDefault: number | 'heads'): Pick<AttentionConfig, 'nHeads' | 'nKvHeads' | 'headDim'> {
  r.only('attention_bias', false, 'attention projections with biases (attention_bias true)');
  const nHeads = r.posInt('num_attention_heads', 32);
  if (dModel % nHeads !== 0) r.fail('num_attention_heads', `${nHeads} heads do not divide hidden_size ${dModel}`);
  // An explicit null is None in Python, which both configs turn into nHeads; an absent key takes the default.
  const nKvHeads = r.posInt('num_key_value_heads', kvDefault === 'heads' || r.obj.num_key_value_heads === null ? nHeads : kvDefault);
  if (nHeads % nKvHeads !== 0) r.fail('num_key_value_heads', `${nKvHeads} key/value heads do not divide num_attention_heads ${nHeads}`);
  return { nHeads, nKvHeads, headDim: dModel / nHeads };
}

/** `num_experts_per_tok` (default 2), checked against the expert count when there are experts. */
export function readTopK(r: Reader, experts: number, expertsKey: string): number {
  const topK = r.posInt('num_experts_per_tok', 2);
  if (experts > 0 && topK > experts) r.fail('num_experts_per_tok', `${topK} experts per token but ${expertsKey} is ${experts}`);
  return topK;
}

/** True when some layer uses the given mixer or feed-forward. */
export function uses(layers: LayerKind[], kind: LayerKind['mixer'] | LayerKind['ffn']): boolean {
  return layers.some((l) => l.mixer === kind || l.ffn === kind);
}
