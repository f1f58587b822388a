// quantize(): a float checkpoint -> a Quamba-style W8A8 / W4A8 / W4A16
// checkpoint (Quamba, arXiv:2410.13229; Quamba2, arXiv:2503.22879; the
// recipe as ../REFERENCE.md section 6 summarises it), from code.
//
// Stages:
//   read       every tensor of the source checkpoint as float32
//   rotate     Hadamard rotation of the residual stream (lib/quant/rotate.ts)
//   calibrate  the rotated float model runs the calibration samples; every
//              linear layer's input absmax is recorded (static per-tensor
//              scales s = absmax / 127), with Quamba's percentile clipping on
//              the SSM input x (Mamba-1: the x_proj input); with recipe.gptq
//              also each layer's Hessian H = 2/N · Σ xᵀx over its inputs
//   quantize   weights to i8 (per output channel) / i4 (groups of 128; round
//              to nearest, or GPTQ with recipe.gptq: lib/quant/gptq.ts)
//   write      config.json (+ quantization_config), model.safetensors with
//              every scale as a tensor, tokenizer.json; into a temporary
//              directory renamed into place, so a failure or an abort leaves
//              nothing behind and an existing output is replaced whole.
//
// Hybrids (Jamba, Granite 4.0-H): their Mamba layers as below; attention
// q / k / v / o and every MLP, expert and shared-expert projection in the
// scheme's format with int8 inputs where the scheme has them (each expert its
// own input scale, from the tokens routed to it: unroutedExpertInput covers an
// expert that calibration never reached); routers float32. The output stores
// every tensor under its canonical name (lib/loaders/checkpoint.ts) with a
// config.json in the family's keys (hf_config.ts).
//
// Which Mamba layers (Quamba2's choices): w8a8 in_proj, x_proj, dt_proj, out_proj
// (i8, int8 inputs); w4a8 in_proj, x_proj, out_proj i4 with int8 inputs and
// dt_proj i8 (W8A8); w4a16 in_proj, x_proj and out_proj i4 with float inputs,
// dt_proj float. The embedding and lm_head keep the source's precision (lm_head
// is quantized with quantizeLmHead); conv, A, D, dt bias and norms are stored
// in f16 (keptDtype).
//
// GPTQ (recipe.gptq, 4-bit schemes only): every i4 layer (in_proj, x_proj,
// out_proj, and lm_head with quantizeLmHead) is quantized by GPTQ with the
// Hessian of its inputs as the layer sees them (after the online Hadamard
// rotation for out_proj). Known simplification: the Hessians come from one
// pass of the float (rotated) model over the samples, not layer by layer with
// the layers before already quantized as in the paper and Quamba.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MambaError, QuantizeError } from '../errors';
import { resolveCheckpoint, type Checkpoint } from '../loaders/checkpoint';
import { loadGgufCheckpoint } from '../loaders/gguf_model';
import type { MambaConfig } from '../model/config';
import { loadModel } from '../model/model';
import { DEFAULT_TOKENIZER_FILE, loadTokenizer, type Tokenizer } from '../tokenizer';
import { ggufHasTokenizer, ggufTokenizer, ggufTokenizerJson } from '../tokenizer/gguf_tokenizer';
import { writeSafetensors, type StTensor } from '../testing/safetensors_writer';
import { encode } from '../testing/random_checkpoint';
import { QUANT_FORMAT_VERSION, QUANT_SCHEMES, quantizationConfigJson, type QuantizationConfig, type QuantScheme } from './config';
import { quantizeI4, quantizeI8, type QuantizedWeight } from './formats';
import { gptqQuantizeI4 } from './gptq';
import { isHadamardSize } from './hadamard';
import { hfConfigJson, UnexpressibleConfigError } from './hf_config';
import { rotateModel, type FloatTensor } from './rotate';
import { blockMaxima, permuteMamba2Layer, sortAndCluster, type SortAndClusterLayout } from './sort_cluster';
import { readFloatTensor } from '../loaders/tensor_data';

/** Stages in order; 'reorder' (sort-and-cluster: its calibration pass and the permutation) only for Mamba-2 with it. */
export type QuantizeStage = 'read' | 'reorder' | 'rotate' | 'calibrate' | 'quantize' | 'write';

/** Recipe switches; every one defaults to the papers' choice. */
export interface QuantRecipe {
  /** Hadamard rotation (residual stream offline, out_proj input online). Default true. */
  hadamard?: boolean;
  /**
   * Percentile clipping of the SSM input x's scale (Quamba): the per-sample
   * quantile of |x| at this level, averaged over samples (EMA, weight 0.01), instead
   * of the absmax. Default 0.9995 (Quamba's); false: absmax. Mamba-1: x_proj's input
   * (the conv output); Mamba-2: the x channels of the conv output (with quantizeSsm).
   */
  percentile?: number | false;
  /**
   * int8 activations on the SSM path (w8a8 / w4a8): the conv1d input and output and
   * the scan's x, B and C are int8 with static scales from calibration, as Quamba
   * runs them (the recurrence stays float32). Default true for the int8 schemes;
   * false keeps that path in float32 (only the linear layers' inputs are int8).
   */
  quantizeSsm?: boolean;
  /**
   * Mamba-2 sort-and-cluster of the SSM input x (Quamba2 §4.1; with quantizeSsm): heads
   * clustered and channels sorted and grouped, the weights permuted offline, one x scale
   * per (SSD group, head group, channel range). Default true for Mamba-2 (an error for
   * Mamba-1 or w4a16). Its x scales are absmax (percentile applies without it).
   */
  sortAndCluster?: boolean;
  /**
   * GPTQ (arXiv:2210.17323) for the 4-bit weights, group 128, percdamp 0.01, no act-order;
   * needs calibration data, also for w4a16. 4-bit schemes only (Quamba uses it for W4). Default false.
   */
  gptq?: boolean;
  /**
   * Mamba-2 per-state-group scales of B and C (Quamba2 §4.1; with quantizeSsm): one
   * scale per SSD group instead of one per tensor. Default true; a no-op with one group.
   */
  perStateGroup?: boolean;
  /**
   * Quantize the embedding with the scheme's weight format (8-bit per row, or 4-bit in
   * groups of 128), looked up and dequantized per token. A head tied to the embedding
   * then gets its own float copy (lm_head stays as trained unless quantizeLmHead).
   * Default false.
   */
  quantizeEmbedding?: boolean;
  /** Quantize lm_head with the scheme's weight format. Default false. */
  quantizeLmHead?: boolean;
}

const RECIPE_KEYS: ReadonlyArray<keyof QuantRecipe> = ['hadamard', 'percentile', 'quantizeSsm', 'sortAndCluster', 'gptq', 'perStateGroup', 'quantizeEmbedding', 'quantizeLmHead'];
const NOT_YET: ReadonlyArray<keyof QuantRecipe> = [];

export interface QuantizeProgress {
  stage: QuantizeStage;
  done: number;
  total: number;
}

export interface QuantizeOptions {
  /** A float checkpoint directory (f32 / f16 / bf16) or a GGUF file with float tensors. */
  model: string;
  /** Output directory (created; an existing one is replaced whole at the end). */
  output: string;
  scheme: QuantScheme;
  /**
   * Calibration data (the int8 schemes and recipe.gptq need it; plain w4a16 ignores it): a text (cut into
   * `samples` windows of `sequenceLength` tokens), an array of texts (one sample each,
   * truncated), or arrays of token ids (one sample each, truncated).
   */
  calibration?: string | string[] | ArrayLike<number>[];
  /** Most calibration samples (default 512, as the papers). */
  samples?: number;
  /** Tokens per sample (default 512, as the papers). */
  sequenceLength?: number;
  /** Switches, or 'naive': plain per-tensor min-max W8A8 (no rotation, no clipping; the baseline). */
  recipe?: QuantRecipe | 'naive';
  threads?: number;
  onProgress?: (p: QuantizeProgress) => void;
  signal?: AbortSignal;
}

export interface QuantizeSummary {
  output: string;
  scheme: QuantScheme;
  recipe: ResolvedRecipe;
  /** Bytes of the source's weight files and of the output's. */
  bytesBefore: number;
  bytesAfter: number;
  samples: number;
  sequenceLength: number;
  /** Seconds per stage. */
  seconds: Record<QuantizeStage, number>;
}

export interface ResolvedRecipe {
  naive: boolean;
  hadamard: boolean;
  percentile: number | false;
  quantizeSsm: boolean;
  sortAndCluster: boolean;
  gptq: boolean;
  perStateGroup: boolean;
  quantizeEmbedding: boolean;
  quantizeLmHead: boolean;
}

/** Fewest calibration tokens accepted (in all samples together). */
export const MIN_CALIBRATION_TOKENS = 64;

function abortError(signal: AbortSignal): Error {
  if (signal.reason instanceof Error) return signal.reason;
  const e = new Error('node-mamba: quantize aborted');
  e.name = 'AbortError';
  return e;
}

function resolveRecipe(scheme: QuantScheme, recipe: QuantizeOptions['recipe']): ResolvedRecipe {
  if (recipe === 'naive') {
    if (scheme !== 'w8a8') throw new QuantizeError(`recipe 'naive' is plain per-tensor W8A8; scheme must be 'w8a8', got '${scheme}'`, { field: 'recipe' });
    // Plain per-tensor min-max everywhere, the SSM path included.
    return { naive: true, hadamard: false, percentile: false, quantizeSsm: true, sortAndCluster: false, gptq: false, perStateGroup: false, quantizeEmbedding: false, quantizeLmHead: false };
  }
  const r = recipe ?? {};
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new QuantizeError("'recipe' must be an object of switches or 'naive'", { field: 'recipe' });
  for (const k of Object.keys(r)) {
    if (!(RECIPE_KEYS as readonly string[]).includes(k)) {
      throw new QuantizeError(`unknown recipe switch '${k}' (known: ${RECIPE_KEYS.join(', ')})`, { field: `recipe.${k}` });
    }
  }
  const rr = r as QuantRecipe;
  for (const k of RECIPE_KEYS) {
    const v = rr[k];
    if (v === undefined || k === 'percentile') continue;
    if (typeof v !== 'boolean') throw new QuantizeError(`recipe.${k} must be true or false`, { field: `recipe.${k}` });
  }
  for (const k of NOT_YET) {
    if (rr[k] === true) throw new QuantizeError(`recipe.${k} is not available in this version of node-mamba`, { field: `recipe.${k}` });
  }
  if (rr.gptq === true && scheme === 'w8a8') {
    throw new QuantizeError("recipe.gptq applies to the 4-bit weight schemes (w4a8, w4a16), as in Quamba; scheme is 'w8a8'", { field: 'recipe.gptq' });
  }
  const p = rr.percentile === undefined ? 0.9995 : rr.percentile;
  if (p !== false && !(typeof p === 'number' && p > 0 && p <= 1)) {
    throw new QuantizeError('recipe.percentile must be a number in (0, 1] or false', { field: 'recipe.percentile' });
  }
  if (rr.quantizeSsm === true && scheme === 'w4a16') {
    throw new QuantizeError("recipe.quantizeSsm needs int8 activations; scheme 'w4a16' keeps them float", { field: 'recipe.quantizeSsm' });
  }
  return {
    naive: false, hadamard: rr.hadamard ?? true, percentile: p, quantizeSsm: scheme !== 'w4a16' && (rr.quantizeSsm ?? true),
    sortAndCluster: rr.sortAndCluster ?? true, gptq: rr.gptq ?? false, perStateGroup: rr.perStateGroup ?? true,
    quantizeEmbedding: rr.quantizeEmbedding ?? false, quantizeLmHead: rr.quantizeLmHead ?? false,
  };
}

function positiveInt(v: unknown, name: string, def: number): number {
  if (v === undefined) return def;
  if (!(typeof v === 'number' && Number.isInteger(v) && v >= 1)) throw new QuantizeError(`'${name}' must be a positive integer`, { field: name });
  return v;
}

function checkOptions(o: QuantizeOptions) {
  if (o === null || typeof o !== 'object') throw new QuantizeError("'options' must be an object");
  if (typeof o.model !== 'string' || o.model === '') throw new QuantizeError("'model' must be a path", { field: 'model' });
  if (typeof o.output !== 'string' || o.output === '') throw new QuantizeError("'output' must be a path", { field: 'output' });
  if (!(QUANT_SCHEMES as readonly string[]).includes(o.scheme as string)) {
    throw new QuantizeError(`unknown scheme ${JSON.stringify(o.scheme)} (expected ${QUANT_SCHEMES.join(', ')})`, { field: 'scheme' });
  }
  const recipe = resolveRecipe(o.scheme, o.recipe);
  const samples = positiveInt(o.samples, 'samples', 512);
  const sequenceLength = positiveInt(o.sequenceLength, 'sequenceLength', 512);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new QuantizeError("'onProgress' must be a function", { field: 'onProgress' });
  if (o.signal !== undefined && (typeof o.signal !== 'object' || o.signal === null || typeof o.signal.aborted !== 'boolean')) {
    throw new QuantizeError("'signal' must be an AbortSignal", { field: 'signal' });
  }
  const out = path.resolve(o.output);
  let st: fs.Stats | undefined;
  try { st = fs.statSync(out); } catch { st = undefined; }
  if (st && !st.isDirectory()) throw new QuantizeError('output path exists and is not a directory', { field: 'output', file: out });
  if (path.resolve(o.model) === out) throw new QuantizeError('output must not be the model itself', { field: 'output', file: out });
  return { recipe, samples, sequenceLength, out };
}

interface Source {
  ck: Checkpoint;
  /** tokenizer.json text for the output, when the source has a tokenizer. */
  tokenizerText?: string;
  tokenizer: () => Tokenizer;
}

function openCheckpoint(model: string): Source {
  const abs = path.resolve(model);
  let isFile = false;
  try { isFile = fs.statSync(abs).isFile(); } catch { /* resolveCheckpoint names it */ }
  let tok: Tokenizer | undefined;
  if (isFile) {
    const ck = loadGgufCheckpoint(abs);
    const has = ggufHasTokenizer(ck.gguf);
    return {
      ck,
      tokenizerText: has ? JSON.stringify(ggufTokenizerJson(ck.gguf).tokenizerJson) : undefined,
      tokenizer: () => (tok ??= ggufTokenizer(ck.gguf)),
    };
  }
  const ck = resolveCheckpoint(abs);
  const tj = path.join(abs, 'tokenizer.json');
  const has = fs.existsSync(tj);
  // Without a tokenizer.json the engine uses the shipped GPT-NeoX-20B tokenizer (as loadModel does).
  return { ck, tokenizerText: has ? fs.readFileSync(tj, 'utf8') : undefined, tokenizer: () => (tok ??= loadTokenizer(has ? tj : DEFAULT_TOKENIZER_FILE)) };
}

/** Token windows for calibration. */
function calibrationSamples(data: QuantizeOptions['calibration'], tokenizer: () => Tokenizer, vocab: number,
  samples: number, seqLen: number): Int32Array[] {
  if (data === undefined) throw new QuantizeError("'calibration' is required for the int8 schemes (w8a8, w4a8) and for recipe.gptq", { field: 'calibration' });
  const out: Int32Array[] = [];
  const checkIds = (ids: ArrayLike<number>, where: string) => {
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i];
      if (!(Number.isInteger(v) && v >= 0 && v < vocab)) {
        throw new QuantizeError(`calibration ${where} holds ${v} at index ${i}, outside the vocabulary [0, ${vocab})`, { field: 'calibration' });
      }
    }
  };
  if (typeof data === 'string') {
    const ids = tokenizer().encode(data);
    for (let s = 0; s < samples && (s + 1) * seqLen <= ids.length; s++) out.push(Int32Array.from(ids.slice(s * seqLen, (s + 1) * seqLen)));
    // Scaled down to what the data holds: a text shorter than one window is one sample.
    if (out.length === 0 && ids.length > 0) out.push(Int32Array.from(ids));
  } else if (Array.isArray(data)) {
    for (let i = 0; i < data.length && out.length < samples; i++) {
      const item = data[i];
      let ids: ArrayLike<number>;
      if (typeof item === 'string') ids = tokenizer().encode(item);
      else if (item && typeof item === 'object' && typeof (item as ArrayLike<number>).length === 'number') {
        ids = item as ArrayLike<number>;
        checkIds(ids, `sample ${i}`);
      } else throw new QuantizeError(`calibration[${i}] must be a string or an array of token ids`, { field: 'calibration' });
      if (ids.length > 0) out.push(Int32Array.from(Array.prototype.slice.call(ids, 0, seqLen) as number[]));
    }
  } else {
    throw new QuantizeError("'calibration' must be a string, an array of strings or an array of token-id arrays", { field: 'calibration' });
  }
  const total = out.reduce((a, s) => a + s.length, 0);
  if (total < MIN_CALIBRATION_TOKENS) {
    throw new QuantizeError(`calibration data is too short: ${total} tokens, at least ${MIN_CALIBRATION_TOKENS} are needed`, { field: 'calibration' });
  }
  return out;
}

interface LayerPlan {
  dtype: 'i8' | 'i4';
  /** Static int8 input scale (from the calibration tap `tap`, the layer's own name unless given). */
  int8Input: boolean;
  tap?: string;
  /** A lookup table (the embedding): round to nearest, never GPTQ. */
  lookup?: boolean;
}

/**
 * Which format each quantized matrix gets, and whether its input is int8.
 * `tiedHead`: the embedding (quantized) also serves as the head, whose input
 * scale is the lm_head tap's.
 */
function layerPlan(c: MambaConfig, scheme: QuantScheme, recipe: ResolvedRecipe, tiedHead: boolean): Map<string, LayerPlan> {
  const plan = new Map<string, LayerPlan>();
  const w4 = scheme !== 'w8a8';
  const a8 = scheme !== 'w4a16';
  const main: LayerPlan = { dtype: w4 ? 'i4' : 'i8', int8Input: a8 };
  for (let i = 0; i < c.nLayer; i++) {
    const { mixer, ffn } = c.layers[i];
    const m = `backbone.layers.${i}.mixer.`, f = `backbone.layers.${i}.ffn.`;
    if (mixer === 'attention') {
      for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) plan.set(`${m}${p}`, main);
    } else {
      plan.set(`${m}in_proj`, main);
      plan.set(`${m}out_proj`, main);
    }
    if (mixer === 'mamba1') {
      // x_proj follows the scheme; dt_proj (K = dt_rank, small) is W8A8 in the
      // int8 schemes (Quamba2's W4A8 keeps it 8-bit) and float in w4a16.
      plan.set(`${m}x_proj`, main);
      if (a8) plan.set(`${m}dt_proj`, { dtype: 'i8', int8Input: true });
    }
    // Feed-forwards: every projection in the scheme's format; a MoE router
    // stays float32 (its logits choose the experts; llama.cpp keeps it F32 too).
    const swiglu = (prefix: string) => { for (const p of ['gate_proj', 'up_proj', 'down_proj']) plan.set(`${prefix}${p}`, main); };
    if (ffn === 'mlp') swiglu(f);
    if (ffn === 'moe') {
      const moe = c.moe!;
      for (let e = 0; e < moe.experts; e++) swiglu(`${f}experts.${e}.`);
      if (moe.sharedDim > 0) swiglu(`${f}shared.`);
    }
  }
  if (recipe.quantizeLmHead && !tiedHead) plan.set('lm_head', main);
  if (recipe.quantizeEmbedding) {
    plan.set('backbone.embeddings', { dtype: w4 ? 'i4' : 'i8', int8Input: a8 && tiedHead, tap: 'lm_head', lookup: true });
  }
  return plan;
}

/**
 * The calibration tap that stands in for a mixture-of-experts expert's
 * projection that no calibration token was routed to: gate / up read the
 * layer's feed-forward input, which the router saw for every token; down
 * reads the expert's own SwiGLU output, for which the largest of the layer's
 * other experts' is taken. Undefined for any other layer.
 */
function unroutedExpertInput(base: string, seen: Map<string, number>): number | undefined {
  const m = /^(backbone\.layers\.\d+\.ffn\.)experts\.\d+\.(gate_proj|up_proj|down_proj)$/.exec(base);
  if (!m) return undefined;
  if (m[2] !== 'down_proj') return seen.get(`${m[1]}router`);
  let v: number | undefined;
  for (const [name, a] of seen) if (name.startsWith(`${m[1]}experts.`) && name.endsWith('.down_proj')) v = Math.max(v ?? 0, a);
  return v;
}

interface TensorOut { name: string; tensor: StTensor }

function f32Tensor(name: string, t: FloatTensor): TensorOut {
  return { name, tensor: { name, dtype: 'F32', shape: t.shape, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) } };
}

/** A float tensor in the given storage dtype. */
function floatTensor(name: string, t: FloatTensor, dtype: 'f32' | 'f16' | 'bf16'): TensorOut {
  if (dtype === 'f32') return f32Tensor(name, t);
  return { name, tensor: { name, dtype: dtype === 'f16' ? 'F16' : 'BF16', shape: t.shape, data: encode(t.data, dtype).bytes } };
}

/**
 * Storage of the tensors that stay float in a quantized checkpoint: the
 * embedding and lm_head keep the source's dtype ("their original precision");
 * the small per-layer parameters (conv, A_log, D, dt bias, norms, and a
 * projection the scheme leaves in float) are stored in f16, as Quamba keeps
 * them in half precision (the engine widens them to float32 as it reads them).
 */
function keptDtype(name: string, source: string | undefined): 'f32' | 'f16' | 'bf16' {
  if (name === 'backbone.embeddings.weight' || name === 'lm_head.weight') return source === 'f16' || source === 'bf16' ? source : 'f32';
  // A MoE router's logits pick the experts: kept as read (f32), never rounded further.
  if (name.endsWith('.ffn.router.weight')) return 'f32';
  return 'f16';
}

interface CalibrationStats {
  /** Linear layers' input absmax, by layer name. */
  inputAbsmax: Map<string, number>;
  /** Percentile-clipped values (EMA over samples) of the clipped taps. */
  clipped: Map<string, number>;
  /** SSM channel taps: absmax per channel (csrc/engine/forward.h ChannelStats). */
  channels: Map<string, Float32Array>;
  /** With gram: each linear layer's Σ xᵀx over the samples (GPTQ's H = 2/N of it). */
  hessians: Map<string, Float64Array>;
}

/**
 * Runs the calibration samples through the float model `weights` (written to
 * `dir` with `configJson`) with the native observer, accumulating maxima over
 * samples and Quamba's percentile EMA on `clipTaps`
 * (PerTensorPercentileObserver: the first observation sets w, then
 * w <- w + 0.01 (q - w)).
 */
async function calibrateFloat(dir: string, configJson: Record<string, unknown>, weights: Map<string, FloatTensor>, samples: Int32Array[],
  o: { clipTaps: Set<string>; percentile: number; withHead: boolean; gram?: boolean; threads?: number; checkAbort: () => void; onSample: (done: number) => void }): Promise<CalibrationStats> {
  const st: CalibrationStats = { inputAbsmax: new Map(), clipped: new Map(), channels: new Map(), hessians: new Map() };
  writeCheckpoint(dir, configJson, [...weights].map(([n, t]) => f32Tensor(n, t)), undefined);
  const model = await loadModel(dir, { threads: o.threads });
  const ema = (name: string, qs: number[]) => {
    for (const q of qs) {
      const w = st.clipped.get(name);
      st.clipped.set(name, w === undefined ? q : w + 0.01 * (q - w));
    }
  };
  try {
    for (let s = 0; s < samples.length; s++) {
      o.checkAbort();
      const r = await model.nativeModel().calibrate(samples[s], o.clipTaps.size > 0 ? o.percentile : 0, o.withHead, o.gram ?? false);
      if (r.grams) addGrams(st.hessians, r.names, r.grams);
      r.names.forEach((name, i) => {
        st.inputAbsmax.set(name, Math.max(st.inputAbsmax.get(name) ?? 0, r.absmax[i]));
        if (o.clipTaps.has(name)) ema(name, r.quantiles[i]);
      });
      for (const ch of r.channels) {
        const acc = st.channels.get(ch.name);
        if (!acc) st.channels.set(ch.name, Float32Array.from(ch.absmax));
        else for (let k = 0; k < acc.length; k++) acc[k] = Math.max(acc[k], ch.absmax[k]);
        if (o.clipTaps.has(ch.name)) ema(ch.name, ch.quantiles);
      }
      o.onSample(s + 1);
    }
  } finally {
    model.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return st;
}

/** A sort-and-cluster layout as int32 tensors (informational: the weights are already permuted). */
function layoutTensors(mx: string, l: SortAndClusterLayout): TensorOut[] {
  const i32 = (name: string, a: Int32Array, shape: number[]): TensorOut =>
    ({ name: mx + name, tensor: { name: mx + name, dtype: 'I32', shape, data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength) } });
  return [
    i32('x_head_index', l.headIndex, [l.nheads]),
    i32('x_channel_index', l.channelIndex, [l.nheads * l.headdim]),
    i32('x_head_group_range', l.headGroupRange, [l.ngroups, l.m]),
    i32('x_dim_group_range', l.dimGroupRange, [l.ngroups, l.m, l.n]),
  ];
}

/** Quamba's static scale: s = max(absmax, 1e-5) / 127, at least 1e-6. */
function actScale(absmax: number): number {
  return Math.max(Math.max(absmax, 1e-5) / 127, 1e-6);
}

/**
 * The static scales of the int8 SSM path (lib/quant/config.ts ssm_activations)
 * from the calibration's channel taps (csrc/engine/forward.h ChannelStats):
 * per tensor (the max of its channels' absmax) for x and Mamba-1's B / C; per
 * SSD group for Mamba-2's B / C with perStateGroup (else per tensor). The SSM
 * input x uses the percentile-clipped value where calibration made one.
 */
function ssmScaleTensors(c: MambaConfig, recipe: ResolvedRecipe, channels: Map<string, Float32Array>,
  linearInput: (base: string) => number | undefined, layouts?: Array<SortAndClusterLayout | undefined>): TensorOut[] {
  const out: TensorOut[] = [];
  const tap = (name: string) => {
    const v = channels.get(name);
    if (!v) throw new MambaError(`node-mamba: quantize: calibration saw no ${name}`);
    return v;
  };
  const maxOf = (v: Float32Array, a: number, b: number) => { let m = 0; for (let i = a; i < b; i++) m = Math.max(m, v[i]); return m; };
  const di = c.dInner, N = c.dState;
  for (let i = 0; i < c.nLayer; i++) {
    if (c.layers[i].mixer === 'attention') continue;
    const mx = `backbone.layers.${i}.mixer.`;
    const convIn = tap(`${mx}conv1d:input`);
    if (c.arch === 'mamba') {
      const xdbl = tap(`${mx}x_proj:output`), R = c.dtRank;
      out.push(scalarF32(`${mx}conv1d.input_scale`, actScale(maxOf(convIn, 0, di))));
      out.push(scalarF32(`${mx}B_scale`, actScale(maxOf(xdbl, R, R + N))));
      out.push(scalarF32(`${mx}C_scale`, actScale(maxOf(xdbl, R + N, R + 2 * N))));
      // The conv output's scale is x_proj.input_scale (written with x_proj).
      if (linearInput(`${mx}x_proj`) === undefined) throw new MambaError(`node-mamba: quantize: calibration saw no input of ${mx}x_proj`);
      continue;
    }
    // Mamba-2: per-channel vectors [x (di) | B (G·N) | C (G·N)].
    const G = c.ngroups, convOut = tap(`${mx}conv1d:output`);
    const vector = (absmax: Float32Array, xAbsmax: number) => {
      const v = new Float32Array(di + 2 * G * N);
      v.fill(actScale(xAbsmax), 0, di);
      for (const base of [di, di + G * N]) {
        const whole = maxOf(absmax, base, base + G * N);
        for (let g = 0; g < G; g++) {
          const s = actScale(recipe.perStateGroup ? maxOf(absmax, base + g * N, base + (g + 1) * N) : whole);
          v.fill(s, base + g * N, base + (g + 1) * N);
        }
      }
      return v;
    };
    out.push(f32Tensor(`${mx}conv1d.input_scale`, { data: vector(convIn, maxOf(convIn, 0, di)), shape: [di + 2 * G * N] }));
    const clippedX = linearInput(`${mx}conv1d:output`);
    const outScale = vector(convOut, clippedX ?? maxOf(convOut, 0, di));
    // sort-and-cluster: x scales per (SSD group, head group, channel range)
    const layout = layouts?.[i];
    if (layout) blockMaxima(convOut.subarray(0, di), layout).forEach((v, k) => { outScale[k] = actScale(v); });
    out.push(f32Tensor(`${mx}conv1d.output_scale`, { data: outScale, shape: [di + 2 * G * N] }));
  }
  return out;
}

function scalarF32(name: string, v: number): TensorOut {
  const a = new Float32Array([v]);
  return { name, tensor: { name, dtype: 'F32', shape: [], data: new Uint8Array(a.buffer) } };
}

/** Writes config.json, model.safetensors (float tensors first: 4-byte aligned) and the tokenizer into dir. */
function writeCheckpoint(dir: string, config: Record<string, unknown>, tensors: TensorOut[], tokenizerJson: string | undefined): void {
  fs.mkdirSync(dir, { recursive: true });
  // 4-byte, then 2-byte, then 1-byte elements: every tensor stays aligned to its element size.
  const rank = (t: StTensor) => (t.dtype === 'F32' || t.dtype === 'I32' ? 0 : t.dtype === 'F16' || t.dtype === 'BF16' ? 1 : 2);
  const sorted = tensors.map((t) => t.tensor).sort((a, b) => rank(a) - rank(b));
  writeSafetensors(path.join(dir, 'model.safetensors'), sorted, { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  if (tokenizerJson !== undefined) fs.writeFileSync(path.join(dir, 'tokenizer.json'), tokenizerJson);
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir)) if (e.endsWith('.safetensors')) n += fs.statSync(path.join(dir, e)).size;
  return n;
}

/** Adds one sample's Gram matrices (NativeModel.calibrate's grams) to the sums per layer. */
function addGrams(sums: Map<string, Float64Array>, names: string[], grams: Float64Array[]): void {
  names.forEach((name, i) => {
    const g = grams[i], acc = sums.get(name);
    if (!acc) { sums.set(name, Float64Array.from(g)); return; }
    for (let k = 0; k < g.length; k++) acc[k] += g[k];
  });
}

/** GPTQ of one i4 layer with H = 2/N · Σ xᵀx (N: the calibration tokens, each layer sees every one). */
function gptqLayer(base: string, w: Float32Array, rows: number, cols: number, grams: Map<string, Float64Array>, calib: Int32Array[]): QuantizedWeight {
  const g = grams.get(base);
  if (!g || g.length !== cols * cols) throw new MambaError(`node-mamba: quantize: calibration saw no input of ${base}`);
  const n = calib.reduce((a, x) => a + x.length, 0);
  const h = g.map((v) => (2 / n) * v);
  try {
    return gptqQuantizeI4(w, rows, cols, h);
  } catch (err) {
    throw new QuantizeError(`GPTQ of ${base} failed: ${(err as Error).message}`, { field: 'recipe.gptq', cause: err });
  }
}

/** Quantizes a float checkpoint into `output`. See QuantizeOptions. */
export async function quantize(options: QuantizeOptions): Promise<QuantizeSummary> {
  const { recipe, samples, sequenceLength, out } = checkOptions(options);
  const { scheme, signal, onProgress } = options;
  const progress = (stage: QuantizeStage, done: number, total: number) => onProgress?.({ stage, done, total });
  const checkAbort = () => { if (signal?.aborted) throw abortError(signal); };
  const seconds: Record<QuantizeStage, number> = { read: 0, reorder: 0, rotate: 0, calibrate: 0, quantize: 0, write: 0 };
  const timed = async <T>(stage: QuantizeStage, fn: () => Promise<T> | T): Promise<T> => {
    checkAbort();
    const t0 = performance.now();
    try { return await fn(); } finally { seconds[stage] += (performance.now() - t0) / 1000; }
  };

  const { ck, tokenizerText, tokenizer } = openCheckpoint(options.model);
  const c0 = ck.config;
  if (c0.quantization) {
    throw new QuantizeError('the model is already quantized (its config.json has a quantization_config); quantize its float original', {
      field: 'model', file: ck.configFile,
    });
  }
  for (const [name, t] of ck.tensors) {
    if (t.dtype !== 'f32' && t.dtype !== 'f16' && t.dtype !== 'bf16') {
      throw new QuantizeError(`the model must have float weights (f32, f16, bf16); ${name} is ${t.dtype}`, { field: 'model', file: t.fileName });
    }
  }
  // The output's config.json states the model in its family's keys; a schedule
  // those keys cannot state (from a GGUF file) is refused before any work.
  try {
    hfConfigJson(c0);
  } catch (err) {
    if (!(err instanceof UnexpressibleConfigError)) throw err;
    throw new QuantizeError(`the quantized ${c0.family} checkpoint's config.json could not state this model: ${err.message}`, { field: 'model', file: ck.configFile, cause: err });
  }
  if (recipe.hadamard) {
    for (const [n, what] of [[c0.dModel, 'd_model'], [c0.dInner, 'd_inner']] as const) {
      if (!isHadamardSize(n)) {
        throw new QuantizeError(`${what} = ${n} is not a size the Hadamard rotation serves (2^k, 12·2^k or 40·2^k); pass recipe: { hadamard: false }`, {
          field: 'recipe.hadamard', file: ck.configFile,
        });
      }
    }
  }
  const a8 = scheme !== 'w4a16';
  const ssmInt8 = a8 && recipe.quantizeSsm;
  // Sort-and-cluster applies to Mamba-2's int8 SSM input; on by default there.
  const askedSort = typeof options.recipe === 'object' ? options.recipe?.sortAndCluster : undefined;
  if (askedSort === true && (c0.arch !== 'mamba2' || !ssmInt8)) {
    throw new QuantizeError(`recipe.sortAndCluster applies to Mamba-2 with int8 SSM activations (this is ${c0.arch === 'mamba2' ? `scheme ${scheme}${a8 ? ' with quantizeSsm: false' : ''}` : 'a Mamba-1 model'})`, {
      field: 'recipe.sortAndCluster', file: ck.configFile,
    });
  }
  const sortCluster = !recipe.naive && askedSort !== false && c0.arch === 'mamba2' && ssmInt8;
  recipe.sortAndCluster = sortCluster;
  const calib = a8 || recipe.gptq ? calibrationSamples(options.calibration, tokenizer, c0.vocabSize, samples, sequenceLength) : [];

  const parent = path.dirname(out);
  fs.mkdirSync(parent, { recursive: true });
  const work = fs.mkdtempSync(path.join(parent, `.${path.basename(out)}.tmp-`));
  try {
    // read
    const weights = await timed('read', () => {
      const w = new Map<string, FloatTensor>();
      let i = 0;
      for (const [name, t] of ck.tensors) {
        let data = readFloatTensor(t, name);
        let outName = name, shape = t.shape.slice();
        // GGUF files store A itself (mixer.A = -exp(A_log)) and conv as [C, K].
        if (name.endsWith('.mixer.A')) { outName = name.replace(/\.A$/, '.A_log'); data = data.map((v) => Math.log(-v)); }
        if (name.endsWith('conv1d.weight') && shape.length === 2) shape = [shape[0], 1, shape[1]];
        w.set(outName, { data, shape });
        progress('read', ++i, ck.tensors.size);
      }
      return w;
    });

    // sort-and-cluster (Mamba-2 with int8 SSM activations): a first calibration pass over the
    // unrotated float model measures x per channel; the weights are permuted before the rotation.
    // (attention layers: undefined)
    let layouts: Array<SortAndClusterLayout | undefined> | undefined;
    if (sortCluster) {
      layouts = await timed('reorder', async () => {
        // The float model as read, under canonical names: a quantization_config of no rotation
        // and float activations says so (lib/loaders/checkpoint.ts).
        const asRead: QuantizationConfig = {
          quantMethod: 'quamba', formatVersion: QUANT_FORMAT_VERSION, scheme, hadamard: false, residualRotation: 'none', ssmActivations: 'float', recipe: {},
        };
        const st = await calibrateFloat(path.join(work, 'float-reorder'), { ...hfConfigJson(c0), quantization_config: quantizationConfigJson(asRead) }, weights, calib, {
          clipTaps: new Set(), percentile: 0, withHead: false, threads: options.threads, checkAbort, onSample: (s) => progress('reorder', s, calib.length + 1),
        });
        const ls = Array.from({ length: c0.nLayer }, (_, i) => {
          if (c0.layers[i].mixer === 'attention') return undefined;
          const x = st.channels.get(`backbone.layers.${i}.mixer.conv1d:output`);
          if (!x) throw new MambaError(`node-mamba: quantize: calibration saw no conv output of layer ${i}`);
          return sortAndCluster(x.subarray(0, c0.dInner), c0.nheads, c0.headdim, c0.ngroups);
        });
        ls.forEach((l, i) => { if (l) permuteMamba2Layer(weights, `backbone.layers.${i}.mixer.`, c0, l); });
        progress('reorder', calib.length + 1, calib.length + 1);
        return ls;
      });
    }

    // rotate
    // The residual stream is rotated at both ends by the engine, keeping the
    // embedding, final norm and a tied head as they are, unless lm_head is
    // quantized: then its input must be rotated too, and the rotation is
    // folded into embedding and head (Quamba's way).
    // A tied head with both embedding and head quantized stays tied: one quantized matrix
    // serves the lookup and the head, so the residual stream is rotated online (the head's
    // input then unrotated; folding would make the head T(w ∘ γ_f), no longer the embedding).
    const tiedQuantHead = c0.tieEmbeddings && recipe.quantizeEmbedding && recipe.quantizeLmHead;
    const residualRotation = !recipe.hadamard ? 'none' : recipe.quantizeLmHead && !tiedQuantHead ? 'folded' : 'online';
    let config = c0;
    if (recipe.hadamard) {
      config = await timed('rotate', () => {
        const r = rotateModel(c0, weights, residualRotation === 'folded' ? 'folded' : 'online');
        progress('rotate', 1, 1);
        return r;
      });
    }
    // A quantized embedding doubles as the head only when the head is quantized too;
    // otherwise a tied head gets its float copy.
    if (recipe.quantizeEmbedding && config.tieEmbeddings && !tiedQuantHead) {
      const e = weights.get('backbone.embeddings.weight')!;
      weights.set('lm_head.weight', { data: Float32Array.from(e.data), shape: e.shape.slice() });
      config = { ...config, tieEmbeddings: false };
    }
    const qc: QuantizationConfig = {
      quantMethod: 'quamba', formatVersion: QUANT_FORMAT_VERSION, scheme, hadamard: recipe.hadamard, residualRotation,
      ssmActivations: ssmInt8 ? 'int8' : 'float', recipe: { ...recipe },
    };

    // calibrate: the (rotated) float model, with the online rotation, sees the samples.
    // Percentile clipping of the SSM input x: Mamba-1's x_proj input, Mamba-2's conv output x
    // channels (not with sort-and-cluster, whose grouped x scales are absmax, as Quamba2's).
    const clipTaps = new Set<string>();
    const mambaLayers = config.layers.flatMap((l, i) => (l.mixer === 'attention' ? [] : [i]));
    if (a8 && recipe.percentile !== false && config.arch === 'mamba') {
      for (const i of mambaLayers) clipTaps.add(`backbone.layers.${i}.mixer.x_proj`);
    }
    if (recipe.percentile !== false && config.arch === 'mamba2' && ssmInt8 && !layouts) {
      for (const i of mambaLayers) clipTaps.add(`backbone.layers.${i}.mixer.conv1d:output`);
    }
    const stats: CalibrationStats = a8 || recipe.gptq
      ? await timed('calibrate', () => calibrateFloat(path.join(work, 'float'), { ...hfConfigJson(config), quantization_config: quantizationConfigJson({ ...qc, ssmActivations: 'float' }) },
        weights, calib, {
          clipTaps, percentile: recipe.percentile === false ? 0 : recipe.percentile, withHead: recipe.quantizeLmHead, gram: recipe.gptq, threads: options.threads, checkAbort,
          onSample: (s) => progress('calibrate', s, calib.length),
        }))
      : { inputAbsmax: new Map(), clipped: new Map(), channels: new Map(), hessians: new Map() };
    const { inputAbsmax, clipped, channels, hessians } = stats;

    // quantize
    const plan = layerPlan(config, scheme, recipe, tiedQuantHead);
    const tensorsOut: TensorOut[] = [];
    await timed('quantize', () => {
      let done = 0;
      for (const [name, t] of weights) {
        const base = name.replace(/\.weight$/, '');
        const p = name.endsWith('.weight') ? plan.get(base) : undefined;
        if (!p) {
          const src = ck.tensors.get(name)?.dtype ?? (name === 'lm_head.weight' ? ck.tensors.get('backbone.embeddings.weight')?.dtype : undefined);
          tensorsOut.push(floatTensor(name, t, keptDtype(name, src)));
          continue;
        }
        const [rows, cols] = t.shape;
        let qw: QuantizedWeight;
        if (p.dtype === 'i8') {
          if (!recipe.naive) {
            qw = quantizeI8(t.data, rows, cols);
          } else {
            // per-tensor min-max: one scale for the whole matrix
            let amax = 0;
            for (const v of t.data) amax = Math.max(amax, Math.abs(v));
            qw = quantizeI8(t.data, rows, cols, { scales: new Float32Array(rows).fill(Math.fround(amax / 127)) });
          }
        } else if (recipe.gptq && !p.lookup && (hessians.has(base) || unroutedExpertInput(base, inputAbsmax) === undefined)) {
          qw = gptqLayer(base, t.data, rows, cols, hessians, calib);
        } else {
          qw = quantizeI4(t.data, rows, cols);
        }
        tensorsOut.push({ name, tensor: { name, dtype: p.dtype === 'i8' ? 'I8' : 'U8', shape: p.dtype === 'i8' ? [rows, cols] : [rows, qw.data.length / rows], data: new Uint8Array(qw.data.buffer, qw.data.byteOffset, qw.data.byteLength) } });
        tensorsOut.push(f32Tensor(`${base}.weight_scale`, { data: qw.scales, shape: p.dtype === 'i8' ? [rows] : [rows, qw.scales.length / rows] }));
        if (p.int8Input) {
          const tap = p.tap ?? base;
          const v = clipped.get(tap) ?? inputAbsmax.get(tap) ?? unroutedExpertInput(tap, inputAbsmax);
          if (v === undefined) throw new MambaError(`node-mamba: quantize: calibration saw no input of ${tap}`);
          tensorsOut.push(scalarF32(`${base}.input_scale`, actScale(v)));
        }
        progress('quantize', ++done, plan.size);
      }
    });

    if (ssmInt8) tensorsOut.push(...ssmScaleTensors(config, recipe, channels, (base) => clipped.get(base) ?? inputAbsmax.get(base), layouts));
    layouts?.forEach((l, i) => { if (l) tensorsOut.push(...layoutTensors(`backbone.layers.${i}.mixer.`, l)); });

    // write
    await timed('write', () => {
      const staged = path.join(work, 'out');
      writeCheckpoint(staged, { ...hfConfigJson(config), quantization_config: quantizationConfigJson(qc) }, tensorsOut, tokenizerText);
      checkAbort();
      // Swap into place: an existing output is moved aside first and removed
      // only once the new one is in place.
      let old: string | undefined;
      if (fs.existsSync(out)) {
        old = path.join(work, 'previous');
        fs.renameSync(out, old);
      }
      try {
        fs.renameSync(staged, out);
      } catch (err) {
        if (old) fs.renameSync(old, out);
        throw err;
      }
      progress('write', 1, 1);
    });
    return {
      output: out, scheme, recipe, bytesBefore: ck.files.reduce((a, f) => a + fs.statSync(f).size, 0), bytesAfter: dirBytes(out),
      samples: calib.length, sequenceLength, seconds,
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

