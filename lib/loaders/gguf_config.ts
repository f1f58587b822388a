// The normalised MambaConfig of a llama.cpp GGUF file (`mamba`, `mamba2`,
// `jamba`, `granitehybrid`) from its metadata keys; every inconsistency is a
// ModelLoadError naming the key (or the tensor whose presence decides).
//
// Hybrid schedules and sizes (llama.cpp src/llama-model.cpp load_hparams,
// src/models/jamba.cpp, granite-hybrid.cpp):
// - {a}.attention.head_count_kv, a per-layer array (or a scalar for every
//   layer; absent: head_count), marks attention layers (> 0) and Mamba
//   layers (0); head_count (scalar or per layer), head dim key_length or
//   embedding_length / head_count;
// - jamba: a layer is a mixture of experts iff blk.i.ffn_gate_inp.weight
//   exists (else a dense SwiGLU), expert_count / expert_used_count, softmax
//   router without renormalisation, attention scale 1/sqrt(head dim), no
//   RoPE, Mamba-1 with RMSNorms of dt, B and C (ssm_dt_norm, ssm_b_norm,
//   ssm_c_norm);
// - granitehybrid: expert_count > 0 makes every layer a mixture of experts
//   (router top-k then softmax) with a shared expert of
//   expert_shared_feed_forward_length (0 / absent: none), else every layer a
//   dense SwiGLU of feed_forward_length; multipliers embedding_scale,
//   residual_scale, logit_scale (0 or absent: 1); attention.scale (0 or
//   absent: 1/sqrt(head dim)); RoPE on unless rope.scaling.finetuned is false
//   (llama.cpp's default for this architecture is true), base rope.freq_base
//   (10000) over rope.dimension_count channels (the head dim). With RoPE the
//   file's attn_q / attn_k rows are in llama.cpp's interleaved-pair order
//   (GgufDecl.ropePairs): the engine reads them as they are and pairs
//   channels 2i, 2i+1 (AttentionConfig.ropeInterleaved), which gives the
//   scores of Hugging Face's rotate_half on the original rows. The
//   gated norm is computed over all of d_inner, as Hugging Face's
//   GraniteMoeHybridRMSNormGated does, even when ssm.group_count > 1
//   (llama.cpp normalises each group of d_inner / G channels: the two agree
//   only for G = 1, which every released Granite 4.0-H model has).
import { ModelLoadError } from '../errors';
import { mambaLayers, type LayerKind, type MambaConfig } from '../model/config';
import { type GgufFile } from './gguf';
import { GgufMeta } from './gguf_meta';

export const GGUF_ARCHITECTURES = ['mamba', 'mamba2', 'jamba', 'granitehybrid'] as const;
export type GgufArchitecture = (typeof GGUF_ARCHITECTURES)[number];

interface Sizes {
  d: number;
  nLayer: number;
  eps: number;
  V: number;
}

/** The keys and the embedding every architecture has. */
function readSizes(m: GgufMeta, g: GgufFile, a: string): Sizes {
  const d = m.int(`${a}.embedding_length`, true, 1);
  const nLayer = m.int(`${a}.block_count`, true, 1);
  const eps = m.float(`${a}.attention.layer_norm_rms_epsilon`, true);
  if (!(eps > 0 && eps < 1)) m.fail('must be in (0, 1)', `${a}.attention.layer_norm_rms_epsilon`, { actual: eps });
  const embd = g.tensors.get('token_embd.weight');
  if (!embd) throw new ModelLoadError('tensor is missing from the GGUF file', { file: g.file, field: 'token_embd.weight' });
  if (embd.dims.length !== 2 || embd.dims[0] !== d) {
    throw new ModelLoadError(`tensor shape disagrees with ${a}.embedding_length ${d}`, {
      file: g.file, field: 'token_embd.weight', expected: [d, 'n_vocab'], actual: embd.dims,
    });
  }
  return { d, nLayer, eps, V: embd.dims[1] };
}

/** The token ids the file names (ids outside the vocabulary are ignored). */
function tokenIds(m: GgufMeta, V: number): Pick<MambaConfig, 'bosTokenId' | 'eosTokenId' | 'padTokenId'> {
  const out: Pick<MambaConfig, 'bosTokenId' | 'eosTokenId' | 'padTokenId'> = {};
  const id = (key: string) => {
    const v = m.int(key);
    return v !== undefined && v < V ? v : undefined;
  };
  const bos = id('tokenizer.ggml.bos_token_id'), eos = id('tokenizer.ggml.eos_token_id'), pad = id('tokenizer.ggml.padding_token_id');
  if (bos !== undefined) out.bosTokenId = bos;
  if (eos !== undefined) out.eosTokenId = eos;
  if (pad !== undefined) out.padTokenId = pad;
  return out;
}

/** What every llama.cpp file of these architectures fixes: no projection biases, a conv bias, no dt clamp, fp32 residual; the head tied when output.weight is absent. */
function fileDefaults(m: GgufMeta, g: GgufFile, eps: number, V: number) {
  return {
    normEps: eps,
    tieEmbeddings: !g.tensors.has('output.weight'),
    residualInFp32: true,
    useBias: false,
    convBias: true,
    timeStepLimit: [0, Infinity] as [number, number],
    ...tokenIds(m, V),
  };
}

/** Mamba-2 heads and groups (mamba2, granitehybrid): ssm.time_step_rank is the head count. */
function mamba2Heads(m: GgufMeta, a: string, di: number): { nheads: number; headdim: number; ngroups: number } {
  const nheads = m.int(`${a}.ssm.time_step_rank`, true, 1);
  if (di % nheads !== 0) m.fail(`head count ${nheads} does not divide ${a}.ssm.inner_size ${di}`, `${a}.ssm.time_step_rank`);
  const ngroups = m.int(`${a}.ssm.group_count`, true, 1);
  if (nheads % ngroups !== 0) m.fail(`group count ${ngroups} does not divide the head count ${nheads} (${a}.ssm.time_step_rank)`, `${a}.ssm.group_count`);
  return { nheads, headdim: di / nheads, ngroups };
}

/** Reads the config from the metadata, the token embedding's row count and (jamba) which layers have a router. */
export function ggufConfig(g: GgufFile): MambaConfig {
  const m: GgufMeta = new GgufMeta(g);
  const arch = m.string('general.architecture', true);
  if (!(GGUF_ARCHITECTURES as readonly string[]).includes(arch)) {
    m.fail(`architecture ${JSON.stringify(arch)} is not supported (node-mamba reads ${GGUF_ARCHITECTURES.join(', ')})`, 'general.architecture');
  }
  const a = arch as GgufArchitecture;
  if (a === 'jamba' || a === 'granitehybrid') return hybridConfig(m, g, a);
  const { d, nLayer, eps, V } = readSizes(m, g, a);
  const K = m.int(`${a}.ssm.conv_kernel`, true, 1);
  const di = m.int(`${a}.ssm.inner_size`, true, 1);
  const N = m.int(`${a}.ssm.state_size`, true, 1);
  if (m.bool(`${a}.ssm.dt_b_c_rms`)) {
    m.fail('RMS norms on dt, B and C (Falcon-Mamba) are not supported by node-mamba', `${a}.ssm.dt_b_c_rms`);
  }
  let headdim = 0, nheads = 0, ngroups = 1, dtRank = 0;
  if (a === 'mamba') dtRank = m.int(`${a}.ssm.time_step_rank`, true, 1);
  else ({ headdim, nheads, ngroups } = mamba2Heads(m, a, di));
  return {
    arch: a, family: a, layers: mambaLayers(a, nLayer), dModel: d, nLayer, vocabSize: V,
    dState: N, dConv: K, expand: di / d, dInner: di,
    dtRank, headdim, nheads, ngroups, chunkSize: a === 'mamba2' ? 256 : 0,
    ...fileDefaults(m, g, eps, V),
  };
}

/** One value for all the layers a per-layer key applies to, or an error naming the key. */
function uniform(m: GgufMeta, key: string, values: number[], layers: number[], what: string): number {
  const first = values[layers[0]];
  for (const i of layers) {
    if (values[i] !== first) {
      m.fail(`layers ${layers[0]} and ${i} have ${first} and ${values[i]} ${what}; node-mamba needs one value for all of them`, key);
    }
  }
  return first;
}

/** A multiplier key of granitehybrid: 0 or absent means none (1), as llama.cpp reads it. */
function scaleKey(m: GgufMeta, key: string): number {
  const v = m.float(key) ?? 0;
  if (!Number.isFinite(v) || v < 0) m.fail('must be a positive number (0: none)', key, { actual: v });
  return v === 0 ? 1 : v;
}

/** jamba / granitehybrid (see the file comment). */
function hybridConfig(m: GgufMeta, g: GgufFile, a: 'jamba' | 'granitehybrid'): MambaConfig {
  const { d, nLayer, eps, V } = readSizes(m, g, a);
  const K = m.int(`${a}.ssm.conv_kernel`, true, 1);
  const di = m.int(`${a}.ssm.inner_size`, true, 1);
  const N = m.int(`${a}.ssm.state_size`, true, 1);
  const granite = a === 'granitehybrid';
  const all = Array.from({ length: nLayer }, (_, i) => i);

  // Attention layers: head_count_kv > 0 (absent: head_count, as llama.cpp defaults it).
  const kvKey = `${a}.attention.head_count_kv`, headsKey = `${a}.attention.head_count`;
  const heads = m.perLayer(headsKey, nLayer);
  const kv = m.perLayer(kvKey, nLayer) ?? heads ?? new Array<number>(nLayer).fill(0);
  const attnLayers = all.filter((i) => kv[i] > 0);
  const mixer: LayerKind['mixer'] = granite ? 'mamba2' : 'mamba1';

  // Feed-forwards. jamba: a router makes a layer MoE; granitehybrid: expert_count > 0 makes every layer MoE.
  const experts = m.int(`${a}.expert_count`) ?? 0;
  const moeLayers = granite
    ? (experts > 0 ? all : [])
    : all.filter((i) => g.tensors.has(`blk.${i}.ffn_gate_inp.weight`));
  if (!granite) {
    for (const i of all) {
      if (!moeLayers.includes(i) && g.tensors.has(`blk.${i}.ffn_gate_exps.weight`)) {
        throw new ModelLoadError('tensor is missing from the GGUF file: the layer has expert tensors (ffn_gate_exps) but no router', {
          file: g.file, field: `blk.${i}.ffn_gate_inp.weight`,
        });
      }
    }
  }
  const layers: LayerKind[] = all.map((i) => ({ mixer: kv[i] > 0 ? 'attention' : mixer, ffn: moeLayers.includes(i) ? 'moe' : 'mlp' }));

  const c: MambaConfig = {
    arch: granite ? 'mamba2' : 'mamba', family: granite ? 'granitemoehybrid' : 'jamba', layers,
    dModel: d, nLayer, vocabSize: V, dState: N, dConv: K, expand: di / d, dInner: di,
    dtRank: 0, headdim: 0, nheads: 0, ngroups: 1, chunkSize: granite ? 256 : 0,
    ...fileDefaults(m, g, eps, V),
  };
  const ctx = m.int(`${a}.context_length`, false, 1);
  if (ctx !== undefined) c.maxPositionEmbeddings = ctx;
  if (granite) {
    Object.assign(c, mamba2Heads(m, a, di));
    // Hugging Face's GraniteMoeHybridRMSNormGated: one group over d_inner (llama.cpp: ssm.group_count groups).
    c.gatedNormGroupSize = di;
    c.multipliers = { embedding: scaleKey(m, `${a}.embedding_scale`), residual: scaleKey(m, `${a}.residual_scale`), logits: scaleKey(m, `${a}.logit_scale`) };
  } else {
    c.dtRank = m.int(`${a}.ssm.time_step_rank`, true, 1);
    c.mambaInnerNorms = true;
  }

  if (attnLayers.length > 0) {
    if (!heads) m.fail(`required metadata key is missing (layers ${attnLayers.join(', ')} are attention layers: ${kvKey} > 0)`, headsKey);
    const nHeads = uniform(m, headsKey, heads, attnLayers, 'query heads');
    if (nHeads === 0) m.fail(`is 0 for attention layer ${attnLayers[0]} (${kvKey} ${kv[attnLayers[0]]})`, headsKey);
    const nKvHeads = uniform(m, kvKey, kv, attnLayers, 'key/value heads');
    if (nHeads % nKvHeads !== 0) m.fail(`${nKvHeads} key/value heads do not divide ${headsKey} ${nHeads}`, kvKey, { actual: kv });
    let headDim = m.int(`${a}.attention.key_length`, false, 1);
    if (headDim === undefined) {
      if (d % nHeads !== 0) m.fail(`${nHeads} heads do not divide ${a}.embedding_length ${d} (and there is no ${a}.attention.key_length)`, headsKey);
      headDim = d / nHeads;
    }
    const vLen = m.int(`${a}.attention.value_length`, false, 1);
    if (vLen !== undefined && vLen !== headDim) m.fail(`value heads of ${vLen} channels, key heads of ${headDim}: node-mamba needs one head size`, `${a}.attention.value_length`);
    let scale = 1 / Math.sqrt(headDim), ropeTheta = 0, ropeDim = 0;
    if (granite) {
      const s = m.float(`${a}.attention.scale`) ?? 0;
      if (!Number.isFinite(s) || s < 0) m.fail('must be a positive number (0: 1/sqrt(head dim))', `${a}.attention.scale`, { actual: s });
      if (s !== 0) scale = s;
      // llama.cpp: "Granite uses rope_finetuned as a switch for rope, so default to true".
      if (m.bool(`${a}.rope.scaling.finetuned`) ?? true) {
        ropeTheta = m.float(`${a}.rope.freq_base`) ?? 10000;
        if (!(ropeTheta > 0 && Number.isFinite(ropeTheta))) m.fail('must be a positive number', `${a}.rope.freq_base`, { actual: ropeTheta });
        ropeDim = m.int(`${a}.rope.dimension_count`, false, 2) ?? headDim;
        if (ropeDim % 2 !== 0 || ropeDim > headDim) m.fail(`the rotary dimension must be even and at most the head dim ${headDim}`, `${a}.rope.dimension_count`, { actual: ropeDim });
        const type = m.string(`${a}.rope.scaling.type`);
        if (type !== undefined && type !== 'none' && type !== 'linear') m.fail(`scaled RoPE (${JSON.stringify(type)}) is not supported`, `${a}.rope.scaling.type`);
        const factor = m.float(`${a}.rope.scaling.factor`) ?? 0;
        if (factor !== 0 && factor !== 1) m.fail(`scaled RoPE (factor ${factor}) is not supported`, `${a}.rope.scaling.factor`);
      }
    }
    c.attention = { nHeads, nKvHeads, headDim, scale, ropeTheta, ropeDim, ...(ropeTheta > 0 ? { ropeInterleaved: true } : {}) };
  }

  const ffKey = `${a}.feed_forward_length`;
  const ff = m.perLayer(ffKey, nLayer);
  if (!ff) m.fail('required metadata key is missing', ffKey);
  const width = uniform(m, ffKey, ff, all, 'feed-forward channels');
  if (width === 0) m.fail('must be at least 1', ffKey, { actual: 0 });
  if (moeLayers.length > 0) {
    const eKey = `${a}.expert_count`, kKey = `${a}.expert_used_count`;
    if (experts === 0) {
      m.fail(`required (> 0): layer ${moeLayers[0]} has a router (blk.${moeLayers[0]}.ffn_gate_inp.weight)`, eKey, { actual: m.int(eKey) });
    }
    const used = m.perLayer(kKey, nLayer);
    if (!used) m.fail(`required metadata key is missing (${eKey} is ${experts})`, kKey);
    const topK = uniform(m, kKey, used, moeLayers, 'experts per token');
    if (topK < 1 || topK > experts) m.fail(`${topK} experts per token must be in [1, ${eKey} ${experts}]`, kKey, { actual: topK });
    const sKey = `${a}.expert_shared_feed_forward_length`;
    const shared = granite ? m.int(sKey) ?? 0 : 0;
    const stray = shared === 0 ? moeLayers.find((i) => g.tensors.has(`blk.${i}.ffn_gate_shexp.weight`)) : undefined;
    if (stray !== undefined) m.fail(`is ${m.has(sKey) ? 0 : 'missing'}, but blk.${stray}.ffn_gate_shexp.weight is a shared expert`, sKey);
    c.moe = { experts, topK, dim: width, router: granite ? 'topk_softmax' : 'softmax_topk', sharedDim: shared };
  }
  if (moeLayers.length < nLayer) c.mlpDim = width;
  return c;
}
