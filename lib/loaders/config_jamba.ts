// config.json of `model_type: "jamba"` -> MambaConfig (shared/REFERENCE.md
// 7(a); transformers jamba/configuration_jamba.py and modeling_jamba.py).
//
// Schedule: layer i is attention iff i % attn_layer_period == attn_layer_offset
// (defaults 8, 4), else Mamba-1; its feed-forward is a mixture of experts iff
// i % expert_layer_period == expert_layer_offset (defaults 2, 1) and
// num_experts > 1, else a dense SwiGLU MLP. An offset >= its period is refused,
// as JambaConfig refuses it.
// Mamba layers: Mamba-1 with mamba_d_state (16), mamba_d_conv (4),
// mamba_expand (2), mamba_dt_rank ("auto" = ceil(hidden_size / 16)),
// mamba_conv_bias (true), mamba_proj_bias (false: in_proj / out_proj biases),
// and RMSNorms of dt, B and C after x_proj (eps rms_norm_eps).
// Attention: no positional encoding, scale 1/sqrt(head_dim), no biases;
// sliding-window attention (sliding_window set) is refused.
// MoE: softmax over all num_experts (16), the top num_experts_per_tok (2)
// probabilities unnormalised; no shared expert. intermediate_size (14336) is
// the width of the dense MLP and of every expert.
import type { LayerKind, MambaConfig } from '../model/config';
import { readAttentionHeads, readHybridCommon, readTopK, uses } from './config_hybrid';
import { finish, innerSize, type Reader } from './config_reader';

/** i % period == offset, with offset < period checked (naming the offset key). */
function periodic(r: Reader, periodKey: string, offsetKey: string, dPeriod: number, dOffset: number): (i: number) => boolean {
  const period = r.posInt(periodKey, dPeriod);
  const offset = r.nonNegInt(offsetKey, dOffset);
  if (offset >= period) r.fail(offsetKey, `offset ${offset} must be smaller than ${periodKey} ${period}`);
  return (i) => i % period === offset;
}

export function fromJamba(r: Reader): MambaConfig {
  const common = readHybridCommon(r, 262144);
  const d = common.dModel;
  const heads = readAttentionHeads(r, d, 8);
  if (r.has('sliding_window')) r.fail('sliding_window', `sliding-window attention is not supported (got ${JSON.stringify(r.obj.sliding_window)})`);

  const isAttention = periodic(r, 'attn_layer_period', 'attn_layer_offset', 8, 4);
  const isExpert = periodic(r, 'expert_layer_period', 'expert_layer_offset', 2, 1);
  const experts = r.posInt('num_experts', 16);
  const topK = readTopK(r, experts > 1 ? experts : 0, 'num_experts');
  const width = r.posInt('intermediate_size', 14336);
  const layers: LayerKind[] = Array.from({ length: common.nLayer }, (_, i) => ({
    mixer: isAttention(i) ? 'attention' : 'mamba1',
    ffn: experts > 1 && isExpert(i) ? 'moe' : 'mlp',
  }));

  const expand = r.posNum('mamba_expand', 2);
  const c: MambaConfig = {
    arch: 'mamba', family: 'jamba', layers, ...common,
    dState: r.posInt('mamba_d_state', 16),
    dConv: r.posInt('mamba_d_conv', 4),
    expand,
    dInner: innerSize(r, 'mamba_expand', expand, d),
    dtRank: r.autoInt('mamba_dt_rank', Math.ceil(d / 16)),
    headdim: 0, nheads: 0, ngroups: 1, chunkSize: 0,
    useBias: r.bool('mamba_proj_bias', false),
    convBias: r.bool('mamba_conv_bias', true),
    timeStepLimit: [0, Infinity],
    mambaInnerNorms: true,
  };
  if (uses(layers, 'attention')) c.attention = { ...heads, scale: 1 / Math.sqrt(heads.headDim), ropeTheta: 0, ropeDim: 0 };
  if (uses(layers, 'mlp')) c.mlpDim = width;
  if (uses(layers, 'moe')) c.moe = { experts, topK, dim: width, router: 'softmax_topk', sharedDim: 0 };
  return finish(c);
}
