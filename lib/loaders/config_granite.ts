// config.json of `model_type: "granitemoehybrid"` (Granite 4.0-H) ->
// MambaConfig (shared/REFERENCE.md 7(b); transformers
// granitemoehybrid/configuration_granitemoehybrid.py, modular_granitemoehybrid.py).
//
// Schedule: `layer_types` ("mamba" | "attention" per layer; absent or null:
// all Mamba). Every layer's feed-forward is a mixture of num_local_experts (8)
// experts of width intermediate_size (11008) plus the shared MLP of width
// shared_intermediate_size (1024); with num_local_experts 0 the shared MLP
// alone, which is then the layer's dense 'mlp' (mlpDim).
// Mamba layers: Mamba-2 with mamba_n_heads (128), mamba_n_groups (1),
// mamba_d_state (256), mamba_d_head ("auto" = expand·hidden / heads),
// mamba_d_conv (4), mamba_expand (2), mamba_chunk_size (256),
// mamba_conv_bias (true), mamba_proj_bias (false); the gated RMSNorm runs over
// all of d_inner, without groups (GraniteMoeHybridRMSNormGated), and dt has
// no clamp.
// Attention: scale attention_multiplier (1.0), RoPE (base rope_theta, 1e4, on
// the whole head) only when position_embedding_type is "rope" (any other
// value, "nope" included, means none, as in transformers); rope_scaling is
// refused with RoPE; no biases.
// Router: the top num_experts_per_tok (2) logits, softmax over those.
// Multipliers: embedding_multiplier, residual_multiplier, logits_scaling (1.0).
import type { LayerKind, MambaConfig, MixerKind } from '../model/config';
import { readAttentionHeads, readHybridCommon, readTopK, uses } from './config_hybrid';
import { finish, innerSize, type Reader } from './config_reader';

const LAYER_TYPES: Record<string, MixerKind> = { mamba: 'mamba2', attention: 'attention' };

/** `layer_types` (transformers also maps `layers_block_type` onto it): one mixer per layer. */
function readMixers(r: Reader, nLayer: number): MixerKind[] {
  const key = r.has('layer_types') || !r.has('layers_block_type') ? 'layer_types' : 'layers_block_type';
  const v = r.obj[key];
  if (v === undefined || v === null) return Array.from({ length: nLayer }, () => 'mamba2');
  if (!Array.isArray(v)) r.fail(key, `must be a list of "mamba" / "attention", got ${JSON.stringify(v)}`);
  if (v.length !== nLayer) r.fail(key, `has ${v.length} entries but num_hidden_layers is ${nLayer}`);
  return v.map((t, i) => {
    const kind = typeof t === 'string' && Object.hasOwn(LAYER_TYPES, t) ? LAYER_TYPES[t] : undefined;
    if (!kind) r.fail(key, `entry ${i} is ${JSON.stringify(t)}; layer types are "mamba" and "attention"`);
    return kind;
  });
}

export function fromGranite(r: Reader): MambaConfig {
  const common = readHybridCommon(r, 2048);
  const d = common.dModel;
  const heads = readAttentionHeads(r, d, 'heads');
  const scale = r.posNum('attention_multiplier', 1);
  const posType = r.optString('position_embedding_type');
  const rope = posType === 'rope';
  const ropeTheta = r.posNum('rope_theta', 10000);
  if (rope && r.has('rope_scaling')) {
    const rs = r.obj.rope_scaling as Record<string, unknown>;
    const type = typeof rs === 'object' ? rs.rope_type ?? rs.type : rs;
    if (type !== 'default') r.fail('rope_scaling', `scaled RoPE is not supported (got ${JSON.stringify(r.obj.rope_scaling)})`);
  }

  const experts = r.nonNegInt('num_local_experts', 8);
  const topK = readTopK(r, experts, 'num_local_experts');
  const expertDim = r.posInt('intermediate_size', 11008);
  const sharedDim = r.posInt('shared_intermediate_size', 1024);
  const layers: LayerKind[] = readMixers(r, common.nLayer).map((mixer) => ({ mixer, ffn: experts > 0 ? 'moe' : 'mlp' }));

  const expand = r.posNum('mamba_expand', 2);
  const dInner = innerSize(r, 'mamba_expand', expand, d);
  const nheads = r.posInt('mamba_n_heads', 128);
  if (dInner % nheads !== 0) r.fail('mamba_n_heads', `${nheads} heads do not divide mamba_expand * hidden_size = ${dInner}`);
  const headdim = r.autoInt('mamba_d_head', dInner / nheads);
  if (headdim * nheads !== dInner) {
    r.fail('mamba_d_head', `mamba_d_head * mamba_n_heads = ${headdim} * ${nheads} is not mamba_expand * hidden_size = ${dInner}`);
  }
  const ngroups = r.posInt('mamba_n_groups', 1);
  if (nheads % ngroups !== 0) r.fail('mamba_n_groups', `${ngroups} groups do not divide mamba_n_heads = ${nheads}`);

  const c: MambaConfig = {
    arch: 'mamba2', family: 'granitemoehybrid', layers, ...common,
    dState: r.posInt('mamba_d_state', 256),
    dConv: r.posInt('mamba_d_conv', 4),
    expand, dInner,
    dtRank: 0, headdim, nheads, ngroups,
    chunkSize: r.posInt('mamba_chunk_size', 256),
    useBias: r.bool('mamba_proj_bias', false),
    convBias: r.bool('mamba_conv_bias', true),
    timeStepLimit: [0, Infinity],
    gatedNormGroupSize: dInner,
    multipliers: {
      embedding: r.posNum('embedding_multiplier', 1),
      residual: r.posNum('residual_multiplier', 1),
      logits: r.posNum('logits_scaling', 1),
    },
  };
  if (uses(layers, 'attention')) {
    c.attention = { ...heads, scale, ropeTheta: rope ? ropeTheta : 0, ropeDim: rope ? heads.headDim : 0 };
  }
  if (experts > 0) c.moe = { experts, topK, dim: expertDim, router: 'topk_softmax', sharedDim };
  else c.mlpDim = sharedDim;
  return finish(c);
}
