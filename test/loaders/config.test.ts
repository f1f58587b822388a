// lib/loaders/config.ts: both config.json dialects to MambaConfig, defaults,
// Python's bare Infinity, and a ModelLoadError naming the key for every
// unsupported architecture or wrongly typed field.
import t, { type Test } from 'tap';
import { ModelLoadError } from '../../lib/errors';
import { normalizeConfig, parseConfigJson } from '../../lib/loaders/config';
import { mambaLayers } from '../../lib/model/config';

const FILE = '/ckpt/config.json';

function throwsField(t: Test, raw: unknown, field: string | undefined, msg?: RegExp): void {
  try {
    normalizeConfig(raw, FILE);
    t.fail(`expected a ModelLoadError naming ${field}`);
  } catch (err) {
    t.ok(err instanceof ModelLoadError, `ModelLoadError (got ${(err as Error).message})`);
    t.equal((err as ModelLoadError).file, FILE, 'file');
    t.equal((err as ModelLoadError).field, field, 'field');
    if (msg) t.match((err as Error).message, msg);
  }
}

// state-spaces/mamba-130m-hf config.json (with its legacy fields).
const mamba130mHf = {
  architectures: ['MambaForCausalLM'], bos_token_id: 0, conv_kernel: 4, d_inner: 1536, d_model: 768, eos_token_id: 0,
  expand: 2, fused_add_norm: true, hidden_act: 'silu', hidden_size: 768, initializer_range: 0.1, intermediate_size: 1536,
  layer_norm_epsilon: 1e-5, model_type: 'mamba', n_layer: 24, num_hidden_layers: 24, pad_token_id: 0,
  pad_vocab_size_multiple: 8, rescale_prenorm_residual: false, residual_in_fp32: true, rms_norm: true, ssm_cfg: {},
  state_size: 16, time_step_floor: 0.0001, time_step_init_scheme: 'random', time_step_max: 0.1, time_step_min: 0.001,
  time_step_rank: 48, time_step_scale: 1.0, torch_dtype: 'float32', use_bias: false, use_cache: true,
  use_conv_bias: true, vocab_size: 50280,
};

t.test('Hugging Face mamba (mamba-130m-hf)', async (t) => {
  t.same(normalizeConfig(mamba130mHf, FILE), {
    arch: 'mamba', family: 'mamba', layers: mambaLayers('mamba', 24), dModel: 768, nLayer: 24, vocabSize: 50280, dState: 16, dConv: 4, expand: 2, dInner: 1536,
    dtRank: 48, headdim: 0, nheads: 0, ngroups: 1, chunkSize: 0, normEps: 1e-5, tieEmbeddings: true,
    residualInFp32: true, useBias: false, convBias: true, timeStepLimit: [0, Infinity],
    bosTokenId: 0, eosTokenId: 0, padTokenId: 0,
  });
});

t.test('Hugging Face mamba: defaults and auto rank', async (t) => {
  const c = normalizeConfig({ model_type: 'mamba', hidden_size: 100, num_hidden_layers: 3, vocab_size: 77, time_step_rank: 'auto' }, FILE);
  t.equal(c.dtRank, 7, 'ceil(100 / 16)');
  t.equal(c.dState, 16);
  t.equal(c.dConv, 4);
  t.equal(c.dInner, 200);
  t.equal(c.vocabSize, 77, 'HF vocab_size is used as is');
  t.equal(c.tieEmbeddings, true, 'mamba ties by default');
  t.equal(c.useBias, false);
  t.equal(c.convBias, true);
  t.equal(c.normEps, 1e-5);
  t.notOk('bosTokenId' in c, 'absent token ids stay absent');
  const u = normalizeConfig({ model_type: 'mamba', hidden_size: 64, num_hidden_layers: 1, vocab_size: 8, tie_word_embeddings: false, use_bias: true, layer_norm_epsilon: 1e-6, expand: 1.5 }, FILE);
  t.equal(u.tieEmbeddings, false);
  t.equal(u.useBias, true);
  t.equal(u.normEps, 1e-6);
  t.equal(u.dInner, 96);
});

t.test('Hugging Face mamba2 (Python Infinity in time_step_limit)', async (t) => {
  const text = `{"model_type": "mamba2", "hidden_size": 768, "num_hidden_layers": 24, "vocab_size": 50288,
    "state_size": 128, "head_dim": 64, "num_heads": 24, "n_groups": 1, "chunk_size": 256, "expand": 2, "conv_kernel": 4,
    "time_step_limit": [0.0, Infinity], "rms_norm": true, "tie_word_embeddings": true, "norm_before_gate": false,
    "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0, "note": "Infinity in a string stays"}`;
  const raw = parseConfigJson(text, FILE) as Record<string, unknown>;
  t.equal(raw.note, 'Infinity in a string stays');
  t.same(normalizeConfig(raw, FILE), {
    arch: 'mamba2', family: 'mamba2', layers: mambaLayers('mamba2', 24), dModel: 768, nLayer: 24, vocabSize: 50288, dState: 128, dConv: 4, expand: 2, dInner: 1536,
    dtRank: 0, headdim: 64, nheads: 24, ngroups: 1, chunkSize: 256, normEps: 1e-5, tieEmbeddings: true,
    residualInFp32: true, useBias: false, convBias: true, timeStepLimit: [0, Infinity],
    bosTokenId: 0, eosTokenId: 0, padTokenId: 0,
  });
  const c = normalizeConfig({ model_type: 'mamba2', hidden_size: 64, num_hidden_layers: 2, vocab_size: 10, head_dim: 16, n_groups: 2, time_step_limit: [0.01, 0.5] }, FILE);
  t.equal(c.nheads, 8, 'num_heads derived from d_inner / head_dim');
  t.equal(c.ngroups, 2);
  t.equal(c.dState, 128);
  t.same(c.timeStepLimit, [0.01, 0.5]);
  t.equal(c.tieEmbeddings, false, 'mamba2 unties by default (Mamba2Config)');
  t.equal(c.dtRank, 0);
});

t.test('parseConfigJson', async (t) => {
  t.same(parseConfigJson('{"a": [-Infinity, NaN]}', FILE), { a: [-Infinity, NaN] });
  t.same(parseConfigJson('{"a\\"Infinity": 1}', FILE), { 'a"Infinity': 1 });
  try {
    parseConfigJson('{"a": 1', FILE);
    t.fail('no error');
  } catch (err) {
    t.ok(err instanceof ModelLoadError);
    t.equal((err as ModelLoadError).file, FILE);
    t.match((err as Error).message, /not valid JSON/);
  }
});

t.test('original dialect: mamba-130m and mamba2-130m', async (t) => {
  const m1 = normalizeConfig({ d_model: 768, n_layer: 24, vocab_size: 50277, ssm_cfg: {}, rms_norm: true, residual_in_fp32: true, fused_add_norm: true, pad_vocab_size_multiple: 8 }, FILE);
  t.same(m1, {
    arch: 'mamba', family: 'mamba', layers: mambaLayers('mamba', 24), dModel: 768, nLayer: 24, vocabSize: 50280, dState: 16, dConv: 4, expand: 2, dInner: 1536,
    dtRank: 48, headdim: 0, nheads: 0, ngroups: 1, chunkSize: 0, normEps: 1e-5, tieEmbeddings: true,
    residualInFp32: true, useBias: false, convBias: true, timeStepLimit: [0, Infinity],
  });
  const m2 = normalizeConfig({ d_model: 768, d_intermediate: 0, n_layer: 24, vocab_size: 50277, ssm_cfg: { layer: 'Mamba2' }, attn_layer_idx: [], attn_cfg: {}, rms_norm: true, residual_in_fp32: true, fused_add_norm: true, pad_vocab_size_multiple: 16, tie_embeddings: true }, FILE);
  t.same(m2, {
    arch: 'mamba2', family: 'mamba2', layers: mambaLayers('mamba2', 24), dModel: 768, nLayer: 24, vocabSize: 50288, dState: 128, dConv: 4, expand: 2, dInner: 1536,
    dtRank: 0, headdim: 64, nheads: 24, ngroups: 1, chunkSize: 256, normEps: 1e-5, tieEmbeddings: true,
    residualInFp32: true, useBias: false, convBias: true, timeStepLimit: [0, Infinity],
  });
  const o = normalizeConfig({ d_model: 32, n_layer: 2, vocab_size: 100, ssm_cfg: { layer: 'Mamba2', d_state: 8, d_conv: 3, expand: 4, headdim: 16, ngroups: 4, chunk_size: 32, bias: true, conv_bias: false, dt_limit: [0.001, 1] }, tie_embeddings: false, residual_in_fp32: false }, FILE);
  t.same([o.dState, o.dConv, o.dInner, o.headdim, o.nheads, o.ngroups, o.chunkSize, o.useBias, o.convBias, o.tieEmbeddings, o.residualInFp32, o.vocabSize],
    [8, 3, 128, 16, 8, 4, 32, true, false, false, false, 104]);
  t.same(o.timeStepLimit, [0.001, 1]);
  const r = normalizeConfig({ d_model: 40, n_layer: 1, vocab_size: 9, ssm_cfg: { layer: 'Mamba1', d_state: 4, dt_rank: 5 }, pad_vocab_size_multiple: 1 }, FILE);
  t.same([r.arch, r.dState, r.dtRank, r.vocabSize], ['mamba', 4, 5, 9]);
});

t.test('unsupported architectures name the key', async (t) => {
  throwsField(t, { model_type: 'llama', hidden_size: 8 }, 'model_type', /unsupported model_type "llama"/);
  throwsField(t, { model_type: 'falcon_mamba', hidden_size: 8 }, 'model_type');
  throwsField(t, { model_type: 7 }, 'model_type');
  throwsField(t, { hidden_size: 8, num_hidden_layers: 1 }, 'model_type', /neither model_type .* nor d_model/);
  throwsField(t, [1, 2], undefined, /not a JSON object/);
  throwsField(t, null, undefined);
  const orig = { d_model: 32, n_layer: 2, vocab_size: 100 };
  throwsField(t, { ...orig, ssm_cfg: { layer: 'Mamba3' } }, 'ssm_cfg.layer', /Mamba3/);
  throwsField(t, { ...orig, attn_layer_idx: [1] }, 'attn_layer_idx', /attention/);
  throwsField(t, { ...orig, d_intermediate: 64 }, 'd_intermediate', /MLP/);
  throwsField(t, { ...orig, rms_norm: false }, 'rms_norm', /LayerNorm/);
  throwsField(t, { ...orig, ssm_cfg: { layer: 'Mamba2', headdim: 16, norm_before_gate: true } }, 'ssm_cfg.norm_before_gate');
  throwsField(t, { ...orig, ssm_cfg: { layer: 'Mamba2', headdim: 16, D_has_hdim: true } }, 'ssm_cfg.D_has_hdim');
  throwsField(t, { ...orig, ssm_cfg: { layer: 'Mamba2', headdim: 16, d_ssm: 32 } }, 'ssm_cfg.d_ssm');
  throwsField(t, { ...orig, ssm_cfg: { layer: 'Mamba2', headdim: 16, rmsnorm: false } }, 'ssm_cfg.rmsnorm');
  throwsField(t, { model_type: 'mamba', hidden_size: 8, num_hidden_layers: 1, vocab_size: 4, hidden_act: 'gelu' }, 'hidden_act');
  throwsField(t, { model_type: 'mamba2', hidden_size: 64, num_hidden_layers: 1, vocab_size: 4, head_dim: 16, rms_norm: false }, 'rms_norm');
});

t.test('wrong types and impossible sizes name the key', async (t) => {
  const hf = { model_type: 'mamba', hidden_size: 64, num_hidden_layers: 2, vocab_size: 100 };
  throwsField(t, { ...hf, hidden_size: '64' }, 'hidden_size', /positive integer/);
  throwsField(t, { ...hf, hidden_size: undefined }, 'hidden_size', /missing/);
  throwsField(t, { ...hf, num_hidden_layers: 0 }, 'num_hidden_layers');
  throwsField(t, { ...hf, vocab_size: 1.5 }, 'vocab_size');
  throwsField(t, { ...hf, state_size: -16 }, 'state_size');
  throwsField(t, { ...hf, conv_kernel: [4] }, 'conv_kernel');
  throwsField(t, { ...hf, expand: 'two' }, 'expand');
  throwsField(t, { ...hf, expand: 0.001 }, 'expand', /no inner channels/);
  throwsField(t, { ...hf, intermediate_size: 100 }, 'intermediate_size', /expand \* hidden_size = 128/);
  throwsField(t, { ...hf, time_step_rank: 'big' }, 'time_step_rank', /"auto"/);
  throwsField(t, { ...hf, tie_word_embeddings: 'yes' }, 'tie_word_embeddings', /true or false/);
  throwsField(t, { ...hf, use_bias: 1 }, 'use_bias');
  throwsField(t, { ...hf, layer_norm_epsilon: -1 }, 'layer_norm_epsilon');
  throwsField(t, { ...hf, eos_token_id: 'x' }, 'eos_token_id');
  const hf2 = { model_type: 'mamba2', hidden_size: 64, num_hidden_layers: 2, vocab_size: 100, head_dim: 16 };
  throwsField(t, { ...hf2, num_heads: 6 }, 'num_heads', /d_inner/);
  throwsField(t, { ...hf2, head_dim: 48 }, 'head_dim', /does not divide/);
  throwsField(t, { ...hf2, n_groups: 3 }, 'n_groups', /does not divide/);
  throwsField(t, { ...hf2, time_step_limit: [1, 0] }, 'time_step_limit');
  throwsField(t, { ...hf2, time_step_limit: 'none' }, 'time_step_limit');
  throwsField(t, { ...hf2, chunk_size: 0 }, 'chunk_size');
  const orig = { d_model: 32, n_layer: 2, vocab_size: 100 };
  throwsField(t, { ...orig, d_model: '32' }, 'd_model');
  throwsField(t, { ...orig, n_layer: undefined }, 'n_layer', /missing/);
  throwsField(t, { ...orig, vocab_size: -1 }, 'vocab_size');
  throwsField(t, { ...orig, pad_vocab_size_multiple: 0 }, 'pad_vocab_size_multiple');
  throwsField(t, { ...orig, tie_embeddings: 'true' }, 'tie_embeddings');
  throwsField(t, { ...orig, ssm_cfg: 'Mamba2' }, 'ssm_cfg');
  throwsField(t, { ...orig, ssm_cfg: { d_state: 1.5 } }, 'ssm_cfg.d_state');
  throwsField(t, { ...orig, ssm_cfg: { dt_rank: 'x' } }, 'ssm_cfg.dt_rank');
  throwsField(t, { ...orig, ssm_cfg: { layer: 'Mamba2', headdim: 24 } }, 'ssm_cfg.headdim');
  throwsField(t, { ...orig, ssm_cfg: { layer: 'Mamba2', headdim: 16, ngroups: 3 } }, 'ssm_cfg.ngroups');
  throwsField(t, { ...orig, ssm_cfg: { layer: 'Mamba2', headdim: 16, dt_limit: [0] } }, 'ssm_cfg.dt_limit');
});
