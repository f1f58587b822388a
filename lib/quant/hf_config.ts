// A MambaConfig as a Hugging Face config.json object (the dialect the
// quantizer writes, whatever the source checkpoint used): model_type mamba /
// mamba2 for Mamba models, and the family's own keys for the hybrids (jamba,
// granitemoehybrid), which lib/loaders/config_jamba.ts and config_granite.ts
// read back into the same MambaConfig.
import type { MambaConfig } from '../model/config';

/** A config the family's keys cannot express (e.g. a GGUF file's layer schedule that Jamba's periods cannot state). */
export class UnexpressibleConfigError extends Error {}

export function hfConfigJson(c: MambaConfig): Record<string, unknown> {
  if (c.family === 'jamba') return jambaConfigJson(c);
  if (c.family === 'granitemoehybrid') return graniteConfigJson(c);
  const common: Record<string, unknown> = {
    model_type: c.arch,
    hidden_size: c.dModel,
    num_hidden_layers: c.nLayer,
    vocab_size: c.vocabSize,
    state_size: c.dState,
    conv_kernel: c.dConv,
    expand: c.expand,
    intermediate_size: c.dInner,
    layer_norm_epsilon: c.normEps,
    residual_in_fp32: c.residualInFp32,
    use_bias: c.useBias,
    use_conv_bias: c.convBias,
    hidden_act: 'silu',
    tie_word_embeddings: c.tieEmbeddings,
  };
  if (c.bosTokenId !== undefined) common.bos_token_id = c.bosTokenId;
  if (c.eosTokenId !== undefined) common.eos_token_id = c.eosTokenId;
  if (c.padTokenId !== undefined) common.pad_token_id = c.padTokenId;
  if (c.arch === 'mamba') return { ...common, time_step_rank: c.dtRank };
  const out: Record<string, unknown> = {
    ...common,
    head_dim: c.headdim,
    num_heads: c.nheads,
    n_groups: c.ngroups,
    chunk_size: c.chunkSize,
    rms_norm: true,
  };
  // Absent means [0, inf) (JSON has no Infinity).
  const [lo, hi] = c.timeStepLimit;
  if (lo !== 0 || Number.isFinite(hi)) out.time_step_limit = [lo, Number.isFinite(hi) ? hi : Number.MAX_VALUE];
  return out;
}

/** The keys both hybrid families share (config_hybrid.ts readHybridCommon, readAttentionHeads, readTopK). */
function hybridCommon(c: MambaConfig): Record<string, unknown> {
  const o: Record<string, unknown> = {
    hidden_size: c.dModel,
    num_hidden_layers: c.nLayer,
    vocab_size: c.vocabSize,
    rms_norm_eps: c.normEps,
    tie_word_embeddings: c.tieEmbeddings,
    hidden_act: 'silu',
    attention_bias: false,
  };
  if (c.maxPositionEmbeddings !== undefined) o.max_position_embeddings = c.maxPositionEmbeddings;
  if (c.attention) {
    if (c.attention.headDim * c.attention.nHeads !== c.dModel) {
      throw new UnexpressibleConfigError(`attention heads of ${c.attention.headDim} channels, ${c.attention.nHeads} of them, are not hidden_size ${c.dModel}`);
    }
    o.num_attention_heads = c.attention.nHeads;
    o.num_key_value_heads = c.attention.nKvHeads;
  }
  if (c.moe) o.num_experts_per_tok = c.moe.topK;
  if (c.bosTokenId !== undefined) o.bos_token_id = c.bosTokenId;
  if (c.eosTokenId !== undefined) o.eos_token_id = c.eosTokenId;
  if (c.padTokenId !== undefined) o.pad_token_id = c.padTokenId;
  return o;
}

/** The (period, offset) with layer i selected iff i % period == offset, for a schedule `sel`; one past the layers when none is. */
function periodOf(sel: boolean[], what: string): [number, number] {
  const n = sel.length;
  if (!sel.some(Boolean)) return [n + 1, n];
  for (let p = 1; p <= n; p++) {
    for (let off = 0; off < p; off++) if (sel.every((v, i) => v === (i % p === off))) return [p, off];
  }
  throw new UnexpressibleConfigError(`the ${what} layers (${sel.flatMap((v, i) => (v ? [i] : [])).join(', ')}) are not every p-th layer from an offset, as Jamba's config states them`);
}

function jambaConfigJson(c: MambaConfig): Record<string, unknown> {
  const [attnPeriod, attnOffset] = periodOf(c.layers.map((l) => l.mixer === 'attention'), 'attention');
  const [expertPeriod, expertOffset] = periodOf(c.layers.map((l) => l.ffn === 'moe'), 'mixture-of-experts');
  if (c.attention && Math.abs(c.attention.scale * Math.sqrt(c.attention.headDim) - 1) > 1e-6) {
    throw new UnexpressibleConfigError(`an attention scale of ${c.attention.scale} (Jamba's is 1/sqrt(head_dim))`);
  }
  if (c.moe && c.mlpDim !== undefined && c.mlpDim !== c.moe.dim) {
    throw new UnexpressibleConfigError(`an MLP width ${c.mlpDim} other than the experts' ${c.moe.dim} (Jamba has one intermediate_size)`);
  }
  return {
    model_type: 'jamba',
    ...hybridCommon(c),
    attn_layer_period: attnPeriod,
    attn_layer_offset: attnOffset,
    expert_layer_period: expertPeriod,
    expert_layer_offset: expertOffset,
    num_experts: c.moe ? c.moe.experts : 1,
    intermediate_size: c.moe ? c.moe.dim : c.mlpDim,
    mamba_d_state: c.dState,
    mamba_d_conv: c.dConv,
    mamba_expand: c.expand,
    mamba_dt_rank: c.dtRank,
    mamba_conv_bias: c.convBias,
    mamba_proj_bias: c.useBias,
  };
}

function graniteConfigJson(c: MambaConfig): Record<string, unknown> {
  const a = c.attention;
  if (a?.ropeInterleaved) throw new UnexpressibleConfigError('RoPE over interleaved channel pairs (a llama.cpp layout)');
  if (a && a.ropeTheta > 0 && a.ropeDim !== a.headDim) throw new UnexpressibleConfigError(`RoPE over ${a.ropeDim} of ${a.headDim} channels`);
  const o: Record<string, unknown> = {
    model_type: 'granitemoehybrid',
    ...hybridCommon(c),
    layer_types: c.layers.map((l) => (l.mixer === 'attention' ? 'attention' : 'mamba')),
    num_local_experts: c.moe ? c.moe.experts : 0,
    intermediate_size: c.moe ? c.moe.dim : c.mlpDim,
    shared_intermediate_size: c.moe ? c.moe.sharedDim : c.mlpDim,
    mamba_n_heads: c.nheads,
    mamba_n_groups: c.ngroups,
    mamba_d_state: c.dState,
    mamba_d_head: c.headdim,
    mamba_d_conv: c.dConv,
    mamba_expand: c.expand,
    mamba_chunk_size: c.chunkSize,
    mamba_conv_bias: c.convBias,
    mamba_proj_bias: c.useBias,
    embedding_multiplier: c.multipliers?.embedding ?? 1,
    residual_multiplier: c.multipliers?.residual ?? 1,
    logits_scaling: c.multipliers?.logits ?? 1,
  };
  if (a) {
    o.attention_multiplier = a.scale;
    o.position_embedding_type = a.ropeTheta > 0 ? 'rope' : 'nope';
    if (a.ropeTheta > 0) o.rope_theta = a.ropeTheta;
  }
  return o;
}
