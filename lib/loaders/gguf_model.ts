// A llama.cpp GGUF file of architecture `mamba`, `mamba2`, `jamba` or
// `granitehybrid` -> the normalised MambaConfig and the engine's canonical
// tensor table (Hugging Face names, numpy shapes, absolute file offsets: the
// engine memory-maps the file).
//
// The tensor list derives from the block declarations (lib/model/blocks/,
// `gguf` of each TensorDecl, expanded by ggufTensors). Conventions of
// llama.cpp's files (shared/REFERENCE.md sections 4 and 7):
// - ggml dims are the reverse of numpy's shape (dims[0] is contiguous);
// - blk.i.ssm_a holds A = -exp(A_log) itself: it maps to `mixer.A`, which the
//   engine takes instead of A_log (mamba / jamba [di, N]; mamba2 /
//   granitehybrid {1, H} -> [H]);
// - ssm_conv1d.weight is squeezed to {K, C} -> numpy [C, K];
// - mamba2 / granitehybrid: ssm.time_step_rank is the head count (headdim =
//   inner / heads), ssm_d is {1, H}, ssm_norm.weight is {di/G, G} (the same
//   bytes as [di]), ssm_dt.bias is the per-head dt_bias;
// - experts: ffn_{gate,up}_exps {d, Ie, E} and ffn_down_exps {Ie, d, E} hold
//   every expert; expert e's canonical [Ie, d] / [d, Ie] tensor is its row
//   range of the packed tensor (offset arithmetic, no copy);
// - output.weight absent: the head is tied to token_embd.
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
// Quantized tensors (Q8_0, Q4_0) are passed on as dtypes 'q8_0' / 'q4_0' for
// the matrix weights (embedding, projections, attention, feed-forwards,
// routers, experts); norms, conv, A, D and biases must be F32, F16 or BF16
// (llama.cpp writes them as F32).
import * as path from 'node:path';
import { ModelLoadError } from '../errors';
import { mambaLayers, type LayerKind, type MambaConfig } from '../model/config';
import { ggufTensors } from '../model/blocks';
import type { Checkpoint, CheckpointTensor, WeightDtype } from './checkpoint';
import { GgufValueType, readGgufHeader, type GgmlType, type GgufFile, type GgufTensorInfo } from './gguf';

export const GGUF_ARCHITECTURES = ['mamba', 'mamba2', 'jamba', 'granitehybrid'] as const;
export type GgufArchitecture = (typeof GGUF_ARCHITECTURES)[number];

const DTYPE_OF: Record<GgmlType, WeightDtype> = { F32: 'f32', F16: 'f16', BF16: 'bf16', Q8_0: 'q8_0', Q4_0: 'q4_0' };

export interface GgufCheckpoint extends Checkpoint {
  /** The parsed header (metadata, tensor infos). */
  gguf: GgufFile;
  /** general.name, when the file has one. */
  name?: string;
  /** Canonical tensor name -> GGUF tensor name (for messages). */
  ggufNames: Map<string, string>;
}

const INT_TYPES = new Set([
  GgufValueType.UINT8, GgufValueType.INT8, GgufValueType.UINT16, GgufValueType.INT16,
  GgufValueType.UINT32, GgufValueType.INT32, GgufValueType.UINT64, GgufValueType.INT64,
]);

/** Typed reads of metadata keys; every failure names the key. */
export class GgufMeta {
  constructor(readonly g: GgufFile) {}

  fail(reason: string, key: string, extra?: { expected?: unknown; actual?: unknown }): never {
    throw new ModelLoadError(reason, { file: this.g.file, field: key, ...extra });
  }

  has(key: string): boolean {
    return this.g.metadata.has(key);
  }

  string(key: string, required: true): string;
  string(key: string, required?: boolean): string | undefined;
  string(key: string, required = false): string | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return required ? this.fail('required metadata key is missing', key) : undefined;
    if (e.type !== GgufValueType.STRING || typeof e.value !== 'string') this.fail(`expected a string, got ${GgufValueType[e.type]}`, key);
    return e.value;
  }

  int(key: string, required: true, min?: number): number;
  int(key: string, required?: boolean, min?: number): number | undefined;
  int(key: string, required = false, min = 0): number | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return required ? this.fail('required metadata key is missing', key) : undefined;
    if (!INT_TYPES.has(e.type) || typeof e.value !== 'number') this.fail(`expected an integer, got ${GgufValueType[e.type]} ${String(e.value)}`, key);
    if (e.value < min) this.fail(`must be at least ${min}`, key, { actual: e.value });
    return e.value;
  }

  float(key: string, required: true): number;
  float(key: string, required?: boolean): number | undefined;
  float(key: string, required = false): number | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return required ? this.fail('required metadata key is missing', key) : undefined;
    if ((e.type !== GgufValueType.FLOAT32 && e.type !== GgufValueType.FLOAT64) || typeof e.value !== 'number') {
      this.fail(`expected a float, got ${GgufValueType[e.type]}`, key);
    }
    return e.value;
  }

  bool(key: string): boolean | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return undefined;
    if (e.type !== GgufValueType.BOOL || typeof e.value !== 'boolean') this.fail(`expected a bool, got ${GgufValueType[e.type]}`, key);
    return e.value;
  }

  /**
   * An integer per layer: a scalar (the same for every layer) or an array of
   * exactly `n` integers (llama.cpp's get_key_or_arr). Undefined when absent.
   */
  perLayer(key: string, n: number): number[] | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return undefined;
    if (e.type !== GgufValueType.ARRAY) return new Array<number>(n).fill(this.int(key, true));
    const v = this.array(key, GgufValueType.UINT32) as unknown[];
    if (v.length !== n) this.fail(`has ${v.length} entries, one per layer is ${n} (block_count)`, key, { expected: n, actual: v.length });
    return v.map((x, i) => {
      if (typeof x !== 'number' || x < 0) this.fail(`entry ${i} is ${String(x)}, not a non-negative integer`, key);
      return x;
    });
  }

  /** An array whose items are all of `itemType`. */
  array(key: string, itemType: GgufValueType): unknown[] | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return undefined;
    const v = e.value;
    if (e.type !== GgufValueType.ARRAY || typeof v !== 'object' || v === null) this.fail(`expected an array, got ${GgufValueType[e.type]}`, key);
    const ok = v.itemType === itemType || (INT_TYPES.has(itemType) && INT_TYPES.has(v.itemType));
    if (!ok) this.fail(`expected an array of ${GgufValueType[itemType]}, got an array of ${GgufValueType[v.itemType]}`, key);
    return v.values;
  }
}


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
    normEps: eps,
    tieEmbeddings: !g.tensors.has('output.weight'),
    residualInFp32: true,
    useBias: false,
    convBias: true,
    timeStepLimit: [0, Infinity],
    ...tokenIds(m, V),
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
    normEps: eps,
    tieEmbeddings: !g.tensors.has('output.weight'),
    residualInFp32: true,
    useBias: false,
    convBias: true,
    timeStepLimit: [0, Infinity],
    ...tokenIds(m, V),
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

interface Mapping {
  gguf: string;
  canonical: string;
  /** Accepted ggml dims (first is the one reported). */
  dims: number[][];
  /** Numpy shape handed to the engine. */
  shape: number[];
  required: boolean;
  /** Matrix weights may be quantized. */
  matrix: boolean;
  /** An expert's rows [first, count) of the GGUF tensor seen as 2-D [all dims but dims[0], dims[0]]. */
  rows?: [number, number];
  /** q / k rows in llama.cpp's interleaved-pair RoPE order. */
  ropePairs?: { heads: number; headDim: number; rotaryDim: number };
}

/** Every GGUF tensor the architecture uses, with its canonical name and shapes (from the block declarations). */
export function ggufTensorMap(c: MambaConfig): Mapping[] {
  return ggufTensors(c).map((t) => ({
    gguf: t.gguf, canonical: t.name, dims: t.dims, shape: t.shape, required: !t.optional, matrix: t.linear,
    ...(t.rows ? { rows: t.rows } : {}), ...(t.ropePairs ? { ropePairs: t.ropePairs } : {}),
  }));
}

/** GGUF key prefix of a config (for messages). */
function archOf(c: MambaConfig): string {
  return c.family === 'jamba' ? 'jamba' : c.family === 'granitemoehybrid' ? 'granitehybrid' : c.arch;
}

/** Explains a wrong tensor shape in terms of the size it implies and the key that gives it. */
function explain(m: Mapping, c: MambaConfig, dims: number[], g: GgufFile): string {
  const a = archOf(c);
  const name = m.gguf.replace(/^blk\.\d+\./, '');
  if (name === 'ssm_in.weight' && c.arch === 'mamba2' && dims.length === 2) {
    const g = (dims[1] - 2 * c.dInner - c.nheads) / (2 * c.dState);
    if (Number.isInteger(g) && g > 0) return ` (its rows imply group_count ${g})`;
  }
  if (name === 'ssm_a' && c.arch === 'mamba2' && dims.length >= 1) {
    return ` (it implies ${dims[dims.length - 1]} heads; ssm.time_step_rank gives ${c.nheads})`;
  }
  const moe = c.moe;
  if (moe && name === 'ffn_gate_inp.weight' && dims.length === 2 && dims[1] !== moe.experts) {
    return ` (it implies ${dims[1]} experts; ${a}.expert_count gives ${moe.experts})`;
  }
  if (moe && /^ffn_(gate|up|down)_exps\.weight$/.test(name) && dims.length === 3) {
    if (dims[2] !== moe.experts) return ` (it holds ${dims[2]} experts; ${a}.expert_count gives ${moe.experts})`;
    const w = name.startsWith('ffn_down') ? dims[0] : dims[1];
    if (w !== moe.dim) return ` (its experts are ${w} channels wide; ${a}.feed_forward_length gives ${moe.dim})`;
  }
  if (moe && /^ffn_(gate|up|down)_shexp\.weight$/.test(name) && dims.length === 2) {
    const w = name.startsWith('ffn_down') ? dims[0] : dims[1];
    return ` (it implies a shared expert of ${w} channels; ${a}.expert_shared_feed_forward_length gives ${moe.sharedDim})`;
  }
  if (c.mlpDim && /^ffn_(gate|up|down)\.weight$/.test(name) && dims.length === 2) {
    const w = name.startsWith('ffn_down') ? dims[0] : dims[1];
    if (w !== c.mlpDim) return ` (it implies a feed-forward of ${w} channels; ${a}.feed_forward_length gives ${c.mlpDim})`;
  }
  const at = c.attention;
  if (at && /^attn_(q|k|v)\.weight$/.test(name) && dims.length === 2 && dims[1] % at.headDim === 0) {
    const h = dims[1] / at.headDim;
    if (name === 'attn_q.weight' && h !== at.nHeads) return ` (its rows imply ${h} heads of ${at.headDim}; ${a}.attention.head_count gives ${at.nHeads})`;
    if (name !== 'attn_q.weight' && h !== at.nKvHeads) {
      const headDimFrom = g.metadata.has(`${a}.attention.key_length`) ? `${a}.attention.key_length` : `${a}.embedding_length / ${a}.attention.head_count`;
      return ` (its rows imply ${h} key/value heads of ${at.headDim}; ${a}.attention.head_count_kv gives ${at.nKvHeads}, and the head dim ${at.headDim} is ${headDimFrom})`;
    }
  }
  return '';
}

/** Reads a GGUF file into the config and tensor table loadModel hands to the engine. */
export function loadGgufCheckpoint(file: string): GgufCheckpoint {
  const abs = path.resolve(file);
  const g = readGgufHeader(abs);
  const config = ggufConfig(g);
  const tensors = new Map<string, CheckpointTensor>();
  const ggufNames = new Map<string, string>();
  const checked = new Set<string>();
  for (const m of ggufTensorMap(config)) {
    const t: GgufTensorInfo | undefined = g.tensors.get(m.gguf);
    if (!t) {
      if (!m.required) {
        if (m.canonical.endsWith('conv1d.bias')) config.convBias = false;
        continue;
      }
      throw new ModelLoadError('tensor is missing from the GGUF file', { file: abs, field: m.gguf, expected: m.dims[0] });
    }
    if (!checked.has(m.gguf)) {
      if (!m.dims.some((e) => e.length === t.dims.length && e.every((v, k) => v === t.dims[k]))) {
        throw new ModelLoadError(`tensor shape (ggml order) disagrees with the metadata${explain(m, config, t.dims, g)}`, {
          file: abs, field: m.gguf, expected: m.dims[0], actual: t.dims,
        });
      }
      if (!m.matrix && (t.type === 'Q8_0' || t.type === 'Q4_0')) {
        throw new ModelLoadError(`tensor type ${t.type} is not supported for this tensor (node-mamba reads norms, conv, A, D and biases as F32, F16 or BF16)`, {
          file: abs, field: m.gguf,
        });
      }
      checked.add(m.gguf);
    }
    // 'q8_0' / 'q4_0' pass through to the engine, which reads ggml's block layouts.
    const dtype = DTYPE_OF[t.type];
    let offset = t.offset, nbytes = t.nbytes;
    if (m.rows) {
      // Whole rows of dims[0] values: a row of a quantized type is whole blocks, so any row range is too.
      const rowBytes = t.nbytes / (t.nbytes === 0 ? 1 : t.dims.slice(1).reduce((x, y) => x * y, 1));
      offset = t.offset + m.rows[0] * rowBytes;
      nbytes = m.rows[1] * rowBytes;
    }
    tensors.set(m.canonical, { file: 0, fileName: abs, offset, nbytes, dtype, shape: m.shape.slice() });
    ggufNames.set(m.canonical, m.gguf);
  }
  const meta = new GgufMeta(g);
  const name = meta.string('general.name');
  return {
    dir: path.dirname(abs), config, configFile: abs, files: [abs], tensors, gguf: g, ggufNames,
    ...(name !== undefined ? { name } : {}),
  };
}
