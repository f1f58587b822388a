// lib/loaders/config_jamba.ts and config_granite.ts: config.json of the
// hybrid families to MambaConfig (layer schedules, transformers' defaults,
// the hybrid sections), and a ModelLoadError naming the key for every
// impossible or unsupported value.
import t, { type Test } from 'tap';
import { ModelLoadError } from '../../lib/errors';
import { normalizeConfig } from '../../lib/loaders/config';
import type { LayerKind } from '../../lib/model/config';
import { graniteConfig, jambaConfig } from '../helpers/hybrid_checkpoint';

const FILE = '/ckpt/config.json';

function throwsField(t: Test, raw: unknown, field: string, msg?: RegExp): void {
  try {
    normalizeConfig(raw, FILE);
    t.fail(`expected a ModelLoadError naming ${field}`);
  } catch (err) {
    t.ok(err instanceof ModelLoadError, `ModelLoadError (got ${(err as Error).message})`);
    t.equal((err as ModelLoadError).file, FILE, 'file');
    t.equal((err as ModelLoadError).field, field, `field ${field}`);
    if (msg) t.match((err as Error).message, msg);
  }
}

const kinds = (s: string): LayerKind[] => s.split(' ').map((x) => {
  const [m, f] = x.split('/');
  return { mixer: ({ m1: 'mamba1', m2: 'mamba2', a: 'attention' } as const)[m as 'm1' | 'm2' | 'a'], ffn: f as LayerKind['ffn'] };
});

t.test('jamba: the tiny config in full', async (t) => {
  t.same(normalizeConfig(jambaConfig(), FILE), {
    arch: 'mamba', family: 'jamba', layers: kinds('m1/mlp m1/moe a/mlp m1/moe'),
    dModel: 16, nLayer: 4, vocabSize: 40, normEps: 1e-6, tieEmbeddings: false, residualInFp32: true, maxPositionEmbeddings: 1024,
    bosTokenId: 1, eosTokenId: 2, padTokenId: 0,
    dState: 4, dConv: 3, expand: 2, dInner: 32, dtRank: 1, headdim: 0, nheads: 0, ngroups: 1, chunkSize: 0,
    useBias: false, convBias: true, timeStepLimit: [0, Infinity], mambaInnerNorms: true,
    attention: { nHeads: 4, nKvHeads: 2, headDim: 4, scale: 0.5, ropeTheta: 0, ropeDim: 0 },
    mlpDim: 24,
    moe: { experts: 4, topK: 2, dim: 24, router: 'softmax_topk', sharedDim: 0 },
  });
});

t.test("jamba: transformers' defaults (Jamba-v0.1's shape)", async (t) => {
  const c = normalizeConfig({ model_type: 'jamba', hidden_size: 4096, num_hidden_layers: 32, vocab_size: 65536 }, FILE);
  const attn = c.layers.flatMap((l, i) => (l.mixer === 'attention' ? [i] : []));
  const moe = c.layers.flatMap((l, i) => (l.ffn === 'moe' ? [i] : []));
  t.same(attn, [4, 12, 20, 28], 'attention every 8 layers from 4');
  t.same(moe, Array.from({ length: 16 }, (_, k) => 2 * k + 1), 'experts every 2 layers from 1');
  t.ok(c.layers.every((l) => l.mixer === 'attention' || l.mixer === 'mamba1'));
  t.ok(c.layers.every((l) => l.ffn === 'moe' || l.ffn === 'mlp'));
  t.same(c.attention, { nHeads: 32, nKvHeads: 8, headDim: 128, scale: 1 / Math.sqrt(128), ropeTheta: 0, ropeDim: 0 });
  t.same(c.moe, { experts: 16, topK: 2, dim: 14336, router: 'softmax_topk', sharedDim: 0 });
  t.equal(c.mlpDim, 14336);
  t.same([c.dState, c.dConv, c.dInner, c.dtRank, c.useBias, c.convBias], [16, 4, 8192, 256, false, true]);
  t.same([c.normEps, c.tieEmbeddings, c.maxPositionEmbeddings, c.mambaInnerNorms], [1e-6, false, 262144, true]);
  t.notOk('multipliers' in c, 'no Granite multipliers');
  t.notOk('bosTokenId' in c, 'absent token ids stay absent');
  t.notOk('gatedNormGroupSize' in c);
});

t.test('jamba: schedules', async (t) => {
  const one = normalizeConfig(jambaConfig({ num_experts: 1 }), FILE);
  t.same(one.layers, kinds('m1/mlp m1/mlp a/mlp m1/mlp'), 'num_experts 1: every feed-forward dense');
  t.notOk('moe' in one, 'no moe section');
  const all = normalizeConfig(jambaConfig({ expert_layer_period: 1, expert_layer_offset: 0, attn_layer_period: 2, attn_layer_offset: 0 }), FILE);
  t.same(all.layers, kinds('a/moe m1/moe a/moe m1/moe'));
  t.notOk('mlpDim' in all, 'no dense layer, no mlpDim');
  const none = normalizeConfig(jambaConfig({ attn_layer_period: 8, attn_layer_offset: 7 }), FILE);
  t.ok(none.layers.every((l) => l.mixer === 'mamba1'), 'offset past the last layer: no attention');
  t.notOk('attention' in none, 'no attention section');
  const kv = normalizeConfig(jambaConfig({ num_key_value_heads: null }), FILE);
  t.equal(kv.attention?.nKvHeads, 4, 'null KV heads: as many as the query heads');
  const r = normalizeConfig(jambaConfig({ mamba_dt_rank: 3, mamba_proj_bias: true, mamba_conv_bias: false, tie_word_embeddings: true }), FILE);
  t.same([r.dtRank, r.useBias, r.convBias, r.tieEmbeddings], [3, true, false, true]);
});

t.test('jamba: errors name the key', async (t) => {
  throwsField(t, jambaConfig({ attn_layer_offset: 4 }), 'attn_layer_offset', /smaller than attn_layer_period 4/);
  throwsField(t, jambaConfig({ expert_layer_offset: 2 }), 'expert_layer_offset', /smaller than expert_layer_period 2/);
  throwsField(t, jambaConfig({ attn_layer_period: 0 }), 'attn_layer_period');
  throwsField(t, jambaConfig({ expert_layer_offset: -1 }), 'expert_layer_offset');
  throwsField(t, jambaConfig({ num_attention_heads: 5 }), 'num_attention_heads', /do not divide hidden_size 16/);
  throwsField(t, jambaConfig({ num_key_value_heads: 3 }), 'num_key_value_heads', /do not divide num_attention_heads 4/);
  throwsField(t, jambaConfig({ num_experts_per_tok: 5 }), 'num_experts_per_tok', /5 experts per token but num_experts is 4/);
  throwsField(t, jambaConfig({ num_experts: 0 }), 'num_experts');
  throwsField(t, jambaConfig({ intermediate_size: 0 }), 'intermediate_size');
  throwsField(t, jambaConfig({ mamba_dt_rank: 'big' }), 'mamba_dt_rank', /"auto"/);
  throwsField(t, jambaConfig({ mamba_d_state: 1.5 }), 'mamba_d_state');
  throwsField(t, jambaConfig({ mamba_expand: 0.01 }), 'mamba_expand', /no inner channels/);
  throwsField(t, jambaConfig({ mamba_proj_bias: 'no' }), 'mamba_proj_bias');
  throwsField(t, jambaConfig({ rms_norm_eps: 0 }), 'rms_norm_eps');
  throwsField(t, jambaConfig({ hidden_act: 'gelu' }), 'hidden_act');
  throwsField(t, jambaConfig({ sliding_window: 4096 }), 'sliding_window', /sliding-window/);
  throwsField(t, jambaConfig({ hidden_size: undefined }), 'hidden_size', /missing/);
  throwsField(t, jambaConfig({ max_position_embeddings: -1 }), 'max_position_embeddings');
  throwsField(t, jambaConfig({ quantization_config: { quant_method: 'bitsandbytes' } }), 'quantization_config.quant_method', /unsupported quantization method "bitsandbytes"/);
});

t.test('granitemoehybrid: the tiny config in full', async (t) => {
  t.same(normalizeConfig(graniteConfig(), FILE), {
    arch: 'mamba2', family: 'granitemoehybrid', layers: kinds('m2/moe a/moe m2/moe'),
    dModel: 16, nLayer: 3, vocabSize: 40, normEps: 1e-5, tieEmbeddings: true, residualInFp32: true, maxPositionEmbeddings: 131072,
    bosTokenId: 0, eosTokenId: 0, padTokenId: 0,
    dState: 8, dConv: 4, expand: 2, dInner: 32, dtRank: 0, headdim: 8, nheads: 4, ngroups: 1, chunkSize: 64,
    useBias: false, convBias: true, timeStepLimit: [0, Infinity], gatedNormGroupSize: 32,
    multipliers: { embedding: 12, residual: 0.25, logits: 3 },
    attention: { nHeads: 4, nKvHeads: 2, headDim: 4, scale: 0.0625, ropeTheta: 0, ropeDim: 0 },
    moe: { experts: 3, topK: 2, dim: 8, router: 'topk_softmax', sharedDim: 12 },
  });
});

t.test("granitemoehybrid: transformers' defaults", async (t) => {
  const c = normalizeConfig({ model_type: 'granitemoehybrid', hidden_size: 4096, num_hidden_layers: 4, vocab_size: 100 }, FILE);
  t.same(c.layers, kinds('m2/moe m2/moe m2/moe m2/moe'), 'no layer_types: all Mamba');
  t.notOk('attention' in c, 'no attention layers, no attention section');
  t.same(c.moe, { experts: 8, topK: 2, dim: 11008, router: 'topk_softmax', sharedDim: 1024 });
  t.same([c.nheads, c.ngroups, c.dState, c.headdim, c.dConv, c.dInner, c.chunkSize, c.convBias, c.useBias], [128, 1, 256, 64, 4, 8192, 256, true, false]);
  t.same(c.multipliers, { embedding: 1, residual: 1, logits: 1 });
  t.same([c.normEps, c.tieEmbeddings, c.maxPositionEmbeddings, c.gatedNormGroupSize], [1e-6, false, 2048, 8192]);
  t.notOk('mambaInnerNorms' in c);
});

t.test('granitemoehybrid: dense (num_local_experts 0), RoPE, KV heads', async (t) => {
  const dense = normalizeConfig(graniteConfig({ num_local_experts: 0, num_experts_per_tok: 8 }), FILE);
  t.same(dense.layers, kinds('m2/mlp a/mlp m2/mlp'), 'no experts: the shared MLP is the dense feed-forward');
  t.equal(dense.mlpDim, 12, 'mlpDim = shared_intermediate_size');
  t.notOk('moe' in dense);
  const rope = normalizeConfig(graniteConfig({ position_embedding_type: 'rope', rope_theta: 500000 }), FILE);
  t.same(rope.attention, { nHeads: 4, nKvHeads: 2, headDim: 4, scale: 0.0625, ropeTheta: 500000, ropeDim: 4 });
  const ropeDefault = normalizeConfig(graniteConfig({ position_embedding_type: 'rope', rope_theta: undefined, rope_scaling: { rope_type: 'default' } }), FILE);
  t.equal(ropeDefault.attention?.ropeTheta, 10000, 'rope_theta default 1e4');
  const none = normalizeConfig(graniteConfig({ position_embedding_type: null, rope_scaling: { type: 'linear', factor: 2 } }), FILE);
  t.equal(none.attention?.ropeTheta, 0, 'no RoPE without position_embedding_type "rope" (rope_scaling then unused)');
  const kv = normalizeConfig(graniteConfig({ num_key_value_heads: null }), FILE);
  t.equal(kv.attention?.nKvHeads, 4, 'KV heads default to the query heads');
  const alias = normalizeConfig(graniteConfig({ layer_types: undefined, layers_block_type: ['attention', 'mamba', 'mamba'] }), FILE);
  t.same(alias.layers.map((l) => l.mixer), ['attention', 'mamba2', 'mamba2'], 'layers_block_type is read as layer_types');
  const heads = normalizeConfig(graniteConfig({ mamba_d_head: 4, mamba_n_heads: 8, mamba_n_groups: 2 }), FILE);
  t.same([heads.nheads, heads.headdim, heads.ngroups, heads.gatedNormGroupSize], [8, 4, 2, 32], 'the gated norm spans d_inner whatever the groups');
});

t.test('granitemoehybrid: errors name the key', async (t) => {
  throwsField(t, graniteConfig({ layer_types: ['mamba', 'attention', 'mlp'] }), 'layer_types', /entry 2 is "mlp"/);
  throwsField(t, graniteConfig({ layer_types: ['mamba', 'attention'] }), 'layer_types', /2 entries but num_hidden_layers is 3/);
  throwsField(t, graniteConfig({ layer_types: 'mamba' }), 'layer_types');
  throwsField(t, graniteConfig({ layer_types: undefined, layers_block_type: ['mamba', 7, 'mamba'] }), 'layers_block_type');
  throwsField(t, graniteConfig({ num_attention_heads: 3 }), 'num_attention_heads', /do not divide hidden_size 16/);
  throwsField(t, graniteConfig({ num_key_value_heads: 3 }), 'num_key_value_heads');
  throwsField(t, graniteConfig({ num_experts_per_tok: 4 }), 'num_experts_per_tok', /num_local_experts is 3/);
  throwsField(t, graniteConfig({ num_local_experts: -1 }), 'num_local_experts');
  throwsField(t, graniteConfig({ shared_intermediate_size: 0 }), 'shared_intermediate_size');
  throwsField(t, graniteConfig({ mamba_n_heads: 5 }), 'mamba_n_heads', /do not divide mamba_expand \* hidden_size = 32/);
  throwsField(t, graniteConfig({ mamba_d_head: 16 }), 'mamba_d_head', /16 \* 4 is not/);
  throwsField(t, graniteConfig({ mamba_n_groups: 3 }), 'mamba_n_groups', /do not divide mamba_n_heads = 4/);
  throwsField(t, graniteConfig({ mamba_chunk_size: 0 }), 'mamba_chunk_size');
  throwsField(t, graniteConfig({ attention_multiplier: 0 }), 'attention_multiplier');
  throwsField(t, graniteConfig({ logits_scaling: 'x' }), 'logits_scaling');
  throwsField(t, graniteConfig({ embedding_multiplier: -1 }), 'embedding_multiplier');
  throwsField(t, graniteConfig({ residual_multiplier: null, attention_bias: true }), 'attention_bias', /biases/);
  throwsField(t, graniteConfig({ position_embedding_type: 3 }), 'position_embedding_type');
  throwsField(t, graniteConfig({ position_embedding_type: 'rope', rope_scaling: { type: 'dynamic', factor: 2 } }), 'rope_scaling', /scaled RoPE/);
  throwsField(t, graniteConfig({ rope_theta: 0, position_embedding_type: 'rope' }), 'rope_theta');
  throwsField(t, graniteConfig({ hidden_act: 'relu' }), 'hidden_act');
  throwsField(t, graniteConfig({ vocab_size: 0 }), 'vocab_size');
  throwsField(t, graniteConfig({ quantization_config: { quant_method: 'fp8' } }), 'quantization_config.quant_method', /unsupported quantization method "fp8"/);
});

t.test('model_type lists the hybrids among the supported ones', async (t) => {
  throwsField(t, { model_type: 'nemotron_h', hidden_size: 8 }, 'model_type', /mamba, mamba2, jamba, granitemoehybrid/);
});
