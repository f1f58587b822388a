// A MambaConfig as a Hugging Face config.json object (the dialect the
// quantizer writes, whatever the source checkpoint used).
import type { MambaConfig } from '../model/config';

export function hfConfigJson(c: MambaConfig): Record<string, unknown> {
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
