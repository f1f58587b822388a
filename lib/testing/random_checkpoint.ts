// Writes random-weight Mamba / Mamba-2 checkpoints in the Hugging Face layout
// (config.json + model.safetensors, or shards + model.safetensors.index.json),
// with the config in either dialect, and returns the expected normalised
// config and every weight AS STORED (rounded to the dtype) in float64, keyed
// by canonical name. Used by the tests and by the CLI demo (a user can try the
// engine without weights). Deliberately independent of the loader (its own
// shapes, its own config), so that the loader is checked against a second
// implementation.
//
// Initialisation keeps a forward pass well scaled: embedding N(0, 1), linear
// weights N(0, 1/fan_in), conv weights U(-0.5, 0.5), norm weights 1 + N(0, 0.1),
// A_log = log U(1, 16), D = 1 + N(0, 0.1), dt bias = softplus^-1(dt) with dt
// log-uniform in [0.001, 0.1], biases N(0, 0.1) (conv bias U(-0.5, 0.5)).
//
// Self-contained (own RNG and half-float rounding) so that loader tests do not
// need the native addon.
import * as path from 'node:path';
import { mambaLayers, type MambaConfig } from '../model/config';
import { writeAtomically, writeSafetensorsShards, type StDtype, type StTensor } from './safetensors_writer';

export type WeightDtype = 'f32' | 'f16' | 'bf16';

export interface RandomCheckpointOptions {
  arch: 'mamba' | 'mamba2';
  dModel: number;
  nLayer: number;
  /** Vocabulary before padding (the original dialect's vocab_size). */
  vocabSize: number;
  /** Default: 16 (mamba), 128 (mamba2). */
  dState?: number;
  dConv?: number;
  expand?: number;
  /** Mamba-2; default 64 when it divides d_inner, else 16. */
  headdim?: number;
  /** Mamba-2; default 1. */
  ngroups?: number;
  /** Mamba-2; default 256. */
  chunkSize?: number;
  /** Mamba-1; default ceil(dModel / 16). */
  dtRank?: number;
  dtype: WeightDtype;
  tied: boolean;
  dialect: 'hf' | 'original';
  /** > 1 writes model-0000k-of-0000n.safetensors and the index. */
  shards?: number;
  seed: number;
  useBias?: boolean;
  convBias?: boolean;
  /** Pads vocabSize up to a multiple of this. Default: none for hf, 8 (mamba) / 16 (mamba2) for original. */
  padVocabMultiple?: number;
  /**
   * Outlier channels, as trained LLMs have them (the case activation quantization
   * struggles with): these channel indices of every block's input norm weight (the
   * in_proj input) and of the inner stream (Mamba-1: their skip weight D, Mamba-2:
   * their gated-norm weight; the out_proj input) are multiplied by `scale`.
   */
  outliers?: { channels: number[]; scale: number };
}

export interface RandomCheckpoint {
  config: MambaConfig;
  /** Canonical name -> values as stored, row-major; lm_head.weight only when untied. */
  weights: Map<string, Float64Array>;
  /** Absolute paths of the safetensors files written, in order. */
  files: string[];
  /** Stored name (as in the file) -> canonical name. */
  storedNames: Map<string, string>;
}

/** mulberry32: a small seedable generator (also the tests' and the benchmark's). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float -> bfloat16 bits via float32, round to nearest even (NaN kept NaN). */
export function bf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16Value(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

/** float -> IEEE half bits via float32, round to nearest even, subnormals and overflow to inf. */
export function f16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 2 ** (shift - 1);
    let r = Math.floor(mant / 2 ** shift);
    const rem = mant - r * 2 ** shift;
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++;
  return sign | r;
}

export function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Rounds values to the dtype: returns the raw little-endian bytes and the stored values. */
export function encode(values: ArrayLike<number>, dtype: WeightDtype): { bytes: Uint8Array; stored: Float64Array } {
  const n = values.length;
  const stored = new Float64Array(n);
  if (dtype === 'f32') {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      a[i] = values[i];
      stored[i] = a[i];
    }
    return { bytes: new Uint8Array(a.buffer), stored };
  }
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = dtype === 'f16' ? f16Bits(values[i]) : bf16Bits(values[i]);
    stored[i] = dtype === 'f16' ? f16Value(a[i]) : bf16Value(a[i]);
  }
  // Uint16Array is little-endian on every platform Node runs on (x64, arm64).
  return { bytes: new Uint8Array(a.buffer), stored };
}

const ST_DTYPE: Record<WeightDtype, StDtype> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/**
 * The random draws of the checkpoint writers, in the order they are called
 * (deterministic per seed): normal (Box-Muller), uniform, linear weights
 * N(0, 1/fan_in), norm weights 1 + N(0, 0.1), log A with A ~ U(1, 16), and dt
 * biases softplus^-1(dt) with dt log-uniform in [0.001, 0.1].
 */
export function randomDraws(seed: number) {
  const r = rng(seed);
  const normal = (n: number, std: number, mean = 0): Float64Array => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const u = Math.max(r(), 1e-12), v = r();
      out[i] = mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }
    return out;
  };
  const unif = (n: number, lo: number, hi: number) => Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
  const linear = (rows: number, cols: number) => normal(rows * cols, 1 / Math.sqrt(cols));
  const normW = (n: number) => normal(n, 0.1, 1);
  const logA = (n: number) => unif(n, 1, 16).map(Math.log);
  const dtBias = (n: number) =>
    unif(n, Math.log(0.001), Math.log(0.1)).map((l) => {
      const dt = Math.exp(l);
      return dt + Math.log(-Math.expm1(-dt)); // inverse softplus
    });
  return { r, normal, unif, linear, normW, logA, dtBias };
}

/** Python's json.dumps writes float('inf') as the bare token Infinity. */
const PY_INF = '__PYTHON_INFINITY__';
function pythonJson(obj: unknown): string {
  return JSON.stringify(obj, null, 2).replaceAll(`"${PY_INF}"`, 'Infinity') + '\n';
}

export function writeRandomCheckpoint(dir: string, opts: RandomCheckpointOptions): RandomCheckpoint {
  const { arch, dModel: d, nLayer, dtype, tied, dialect } = opts;
  const dConv = opts.dConv ?? 4;
  const expand = opts.expand ?? 2;
  const di = expand * d;
  if (!Number.isInteger(di)) throw new Error('writeRandomCheckpoint: expand * dModel must be an integer');
  const N = opts.dState ?? (arch === 'mamba' ? 16 : 128);
  const useBias = opts.useBias ?? false;
  const convBias = opts.convBias ?? true;
  const R = arch === 'mamba' ? opts.dtRank ?? Math.ceil(d / 16) : 0;
  const headdim = arch === 'mamba2' ? opts.headdim ?? (di % 64 === 0 ? 64 : 16) : 0;
  if (arch === 'mamba2' && di % headdim !== 0) throw new Error('writeRandomCheckpoint: headdim must divide d_inner');
  const H = arch === 'mamba2' ? di / headdim : 0;
  const G = arch === 'mamba2' ? opts.ngroups ?? 1 : 1;
  if (arch === 'mamba2' && H % G !== 0) throw new Error('writeRandomCheckpoint: ngroups must divide nheads');
  const chunkSize = arch === 'mamba2' ? opts.chunkSize ?? 256 : 0;
  const padMultiple = opts.padVocabMultiple ?? (dialect === 'original' ? (arch === 'mamba' ? 8 : 16) : 1);
  const V = Math.ceil(opts.vocabSize / padMultiple) * padMultiple;

  const { normal, unif, linear, logA, dtBias } = randomDraws(opts.seed);

  const specs: Array<{ name: string; shape: number[]; values: Float64Array }> = [];
  const add = (name: string, shape: number[], values: Float64Array) => {
    if (values.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`writeRandomCheckpoint: ${name} size`);
    specs.push({ name, shape, values });
  };

  add('backbone.embeddings.weight', [V, d], normal(V * d, 1));
  for (let i = 0; i < nLayer; i++) {
    const p = `backbone.layers.${i}.`, m = `${p}mixer.`;
    add(`${p}norm.weight`, [d], normal(d, 0.1, 1));
    if (arch === 'mamba') {
      add(`${m}in_proj.weight`, [2 * di, d], linear(2 * di, d));
      if (useBias) add(`${m}in_proj.bias`, [2 * di], normal(2 * di, 0.1));
      add(`${m}conv1d.weight`, [di, 1, dConv], unif(di * dConv, -0.5, 0.5));
      if (convBias) add(`${m}conv1d.bias`, [di], unif(di, -0.5, 0.5));
      add(`${m}x_proj.weight`, [R + 2 * N, di], linear(R + 2 * N, di));
      add(`${m}dt_proj.weight`, [di, R], linear(di, R));
      add(`${m}dt_proj.bias`, [di], dtBias(di));
      add(`${m}A_log`, [di, N], logA(di * N));
      add(`${m}D`, [di], normal(di, 0.1, 1));
    } else {
      const inRows = 2 * di + 2 * G * N + H, convDim = di + 2 * G * N;
      add(`${m}in_proj.weight`, [inRows, d], linear(inRows, d));
      if (useBias) add(`${m}in_proj.bias`, [inRows], normal(inRows, 0.1));
      add(`${m}conv1d.weight`, [convDim, 1, dConv], unif(convDim * dConv, -0.5, 0.5));
      if (convBias) add(`${m}conv1d.bias`, [convDim], unif(convDim, -0.5, 0.5));
      add(`${m}dt_bias`, [H], dtBias(H));
      add(`${m}A_log`, [H], logA(H));
      add(`${m}D`, [H], normal(H, 0.1, 1));
      add(`${m}norm.weight`, [di], normal(di, 0.1, 1));
    }
    add(`${m}out_proj.weight`, [d, di], linear(d, di));
    if (useBias) add(`${m}out_proj.bias`, [d], normal(d, 0.1));
  }
  add('backbone.norm_f.weight', [d], normal(d, 0.1, 1));
  if (!tied) add('lm_head.weight', [V, d], linear(V, d));
  if (opts.outliers) {
    const { channels, scale } = opts.outliers;
    const byName = new Map(specs.map((x) => [x.name, x.values]));
    for (let i = 0; i < nLayer; i++) {
      const p = `backbone.layers.${i}.`, m = `${p}mixer.`;
      for (const c of channels) {
        if (c < 0 || c >= d) throw new Error('writeRandomCheckpoint: outlier channel out of range');
        byName.get(`${p}norm.weight`)![c] *= scale;
        if (arch === 'mamba') {
          byName.get(`${m}D`)![c] *= scale;
        } else {
          byName.get(`${m}norm.weight`)![c] *= scale;
        }
      }
    }
  }

  // Encode and name as stored.
  const weights = new Map<string, Float64Array>();
  const storedNames = new Map<string, string>();
  const stTensors: StTensor[] = specs.map((s) => {
    const { bytes, stored } = encode(s.values, dtype);
    weights.set(s.name, stored);
    const storedName = dialect === 'original' && s.name === 'backbone.embeddings.weight' ? 'backbone.embedding.weight' : s.name;
    storedNames.set(storedName, s.name);
    return { name: storedName, dtype: ST_DTYPE[dtype], shape: s.shape, data: bytes };
  });

  const files = writeSafetensorsShards(dir, stTensors, opts.shards ?? 1);

  // config.json in the requested dialect, and the MambaConfig it must normalise to.
  let json: Record<string, unknown>;
  if (dialect === 'hf') {
    json = {
      architectures: [arch === 'mamba' ? 'MambaForCausalLM' : 'Mamba2ForCausalLM'],
      model_type: arch,
      hidden_size: d,
      num_hidden_layers: nLayer,
      vocab_size: V,
      state_size: N,
      conv_kernel: dConv,
      expand,
      layer_norm_epsilon: 1e-5,
      use_bias: useBias,
      use_conv_bias: convBias,
      hidden_act: 'silu',
      residual_in_fp32: true,
      tie_word_embeddings: tied,
      bos_token_id: 0,
      eos_token_id: 0,
      pad_token_id: 0,
      torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype],
    };
    if (opts.padVocabMultiple !== undefined) json.pad_vocab_size_multiple = opts.padVocabMultiple;
    if (arch === 'mamba') {
      Object.assign(json, { intermediate_size: di, time_step_rank: R });
    } else {
      Object.assign(json, {
        head_dim: headdim, num_heads: H, n_groups: G, chunk_size: chunkSize,
        rms_norm: true, time_step_limit: [0.0, PY_INF], time_step_rank: 'auto',
      });
    }
  } else {
    let ssmCfg: Record<string, unknown>;
    if (arch === 'mamba') {
      const defaults = N === 16 && dConv === 4 && expand === 2 && R === Math.ceil(d / 16);
      ssmCfg = defaults ? {} : { d_state: N, d_conv: dConv, expand, dt_rank: R };
    } else {
      ssmCfg = { layer: 'Mamba2', d_state: N, d_conv: dConv, expand, headdim, ngroups: G, chunk_size: chunkSize };
    }
    if (useBias) ssmCfg.bias = true;
    if (!convBias) ssmCfg.conv_bias = false;
    json = {
      d_model: d,
      d_intermediate: 0,
      n_layer: nLayer,
      vocab_size: opts.vocabSize,
      ssm_cfg: ssmCfg,
      attn_layer_idx: [],
      attn_cfg: {},
      rms_norm: true,
      residual_in_fp32: true,
      fused_add_norm: true,
      pad_vocab_size_multiple: padMultiple,
      tie_embeddings: tied,
    };
  }
  writeAtomically(path.join(dir, 'config.json'), pythonJson(json));

  const config: MambaConfig = {
    arch, family: arch, layers: mambaLayers(arch, nLayer), dModel: d, nLayer, vocabSize: V,
    dState: N, dConv, expand, dInner: di,
    dtRank: R, headdim, nheads: H, ngroups: G, chunkSize,
    normEps: 1e-5, tieEmbeddings: tied, residualInFp32: true,
    useBias, convBias,
    timeStepLimit: [0, Infinity],
  };
  if (dialect === 'hf') Object.assign(config, { bosTokenId: 0, eosTokenId: 0, padTokenId: 0 });
  return { config, weights, files, storedNames };
}
