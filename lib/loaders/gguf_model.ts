// A llama.cpp GGUF file of architecture `mamba` or `mamba2` -> the normalised
// MambaConfig and the engine's canonical tensor table (Hugging Face names,
// numpy shapes, absolute file offsets: the engine memory-maps the file).
//
// Conventions of llama.cpp's files (shared/REFERENCE.md section 4):
// - ggml dims are the reverse of numpy's shape (dims[0] is contiguous);
// - blk.i.ssm_a holds A = -exp(A_log) itself: it maps to `mixer.A`, which the
//   engine takes instead of A_log (mamba [di, N]; mamba2 {1, H} -> [H]);
// - ssm_conv1d.weight is squeezed to {K, C} -> numpy [C, K];
// - mamba2: ssm.time_step_rank is the head count (headdim = inner / heads),
//   ssm_d is {1, H}, ssm_norm.weight is {di/G, G} (the same bytes as [di]),
//   ssm_dt.bias is the per-head dt_bias;
// - output.weight absent: the head is tied to token_embd.
// Quantized tensors (Q8_0, Q4_0) are passed on as dtypes 'q8_0' / 'q4_0' for
// the matrix weights; norms, conv, A, D and biases must be F32, F16 or BF16
// (llama.cpp writes them as F32).
import * as path from 'node:path';
import { ModelLoadError } from '../errors';
import { mambaLayers, type MambaConfig } from '../model/config';
import type { Checkpoint, CheckpointTensor, WeightDtype } from './checkpoint';
import { GgufValueType, readGgufHeader, type GgmlType, type GgufFile, type GgufTensorInfo } from './gguf';

export const GGUF_ARCHITECTURES = ['mamba', 'mamba2'] as const;

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

/** Reads the config from the metadata and the token embedding's row count. */
export function ggufConfig(g: GgufFile): MambaConfig {
  const m: GgufMeta = new GgufMeta(g);
  const arch = m.string('general.architecture', true);
  if (!(GGUF_ARCHITECTURES as readonly string[]).includes(arch)) {
    m.fail(`architecture ${JSON.stringify(arch)} is not supported (node-mamba reads ${GGUF_ARCHITECTURES.join(', ')})`, 'general.architecture');
  }
  const a = arch as 'mamba' | 'mamba2';
  const d = m.int(`${a}.embedding_length`, true, 1);
  const nLayer = m.int(`${a}.block_count`, true, 1);
  const K = m.int(`${a}.ssm.conv_kernel`, true, 1);
  const di = m.int(`${a}.ssm.inner_size`, true, 1);
  const N = m.int(`${a}.ssm.state_size`, true, 1);
  const rank = m.int(`${a}.ssm.time_step_rank`, true, 1);
  const eps = m.float(`${a}.attention.layer_norm_rms_epsilon`, true);
  if (!(eps > 0 && eps < 1)) m.fail('must be in (0, 1)', `${a}.attention.layer_norm_rms_epsilon`, { actual: eps });
  if (m.bool(`${a}.ssm.dt_b_c_rms`)) {
    m.fail('RMS norms on dt, B and C (Falcon-Mamba) are not supported by node-mamba', `${a}.ssm.dt_b_c_rms`);
  }
  const embd = g.tensors.get('token_embd.weight');
  if (!embd) throw new ModelLoadError('tensor is missing from the GGUF file', { file: g.file, field: 'token_embd.weight' });
  if (embd.dims.length !== 2 || embd.dims[0] !== d) {
    throw new ModelLoadError(`tensor shape disagrees with ${a}.embedding_length ${d}`, {
      file: g.file, field: 'token_embd.weight', expected: [d, 'n_vocab'], actual: embd.dims,
    });
  }
  const V = embd.dims[1];

  let headdim = 0, nheads = 0, ngroups = 1, dtRank = 0;
  if (a === 'mamba') {
    dtRank = rank;
  } else {
    nheads = rank;
    if (di % nheads !== 0) m.fail(`head count ${nheads} does not divide ${a}.ssm.inner_size ${di}`, `${a}.ssm.time_step_rank`);
    headdim = di / nheads;
    ngroups = m.int(`${a}.ssm.group_count`, true, 1);
    if (nheads % ngroups !== 0) m.fail(`group count ${ngroups} does not divide the head count ${nheads} (${a}.ssm.time_step_rank)`, `${a}.ssm.group_count`);
  }
  const tokenId = (key: string) => {
    const v = m.int(key);
    return v !== undefined && v < V ? v : undefined;
  };
  const config: MambaConfig = {
    arch: a, family: a, layers: mambaLayers(a, nLayer), dModel: d, nLayer, vocabSize: V,
    dState: N, dConv: K, expand: di / d, dInner: di,
    dtRank, headdim, nheads, ngroups, chunkSize: a === 'mamba2' ? 256 : 0,
    normEps: eps,
    tieEmbeddings: !g.tensors.has('output.weight'),
    residualInFp32: true,
    useBias: false,
    convBias: true,
    timeStepLimit: [0, Infinity],
  };
  const bos = tokenId('tokenizer.ggml.bos_token_id');
  const eos = tokenId('tokenizer.ggml.eos_token_id');
  const pad = tokenId('tokenizer.ggml.padding_token_id');
  if (bos !== undefined) config.bosTokenId = bos;
  if (eos !== undefined) config.eosTokenId = eos;
  if (pad !== undefined) config.padTokenId = pad;
  return config;
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
}

/** Every GGUF tensor the architecture uses, with its canonical name and shapes. */
export function ggufTensorMap(c: MambaConfig): Mapping[] {
  const d = c.dModel, di = c.dInner, N = c.dState, K = c.dConv, V = c.vocabSize;
  const out: Mapping[] = [];
  const add = (gguf: string, canonical: string, dims: number[][], shape: number[], matrix = false, required = true) =>
    out.push({ gguf, canonical, dims, shape, required, matrix });
  add('token_embd.weight', 'backbone.embeddings.weight', [[d, V]], [V, d], true);
  for (let i = 0; i < c.nLayer; i++) {
    const b = `blk.${i}.`, p = `backbone.layers.${i}.`, mx = `${p}mixer.`;
    add(`${b}attn_norm.weight`, `${p}norm.weight`, [[d]], [d]);
    if (c.arch === 'mamba') {
      const R = c.dtRank;
      add(`${b}ssm_in.weight`, `${mx}in_proj.weight`, [[d, 2 * di]], [2 * di, d], true);
      add(`${b}ssm_conv1d.weight`, `${mx}conv1d.weight`, [[K, di], [K, 1, di]], [di, K]);
      add(`${b}ssm_conv1d.bias`, `${mx}conv1d.bias`, [[di]], [di], false, false);
      add(`${b}ssm_x.weight`, `${mx}x_proj.weight`, [[di, R + 2 * N]], [R + 2 * N, di], true);
      add(`${b}ssm_dt.weight`, `${mx}dt_proj.weight`, [[R, di]], [di, R], true);
      add(`${b}ssm_dt.bias`, `${mx}dt_proj.bias`, [[di]], [di]);
      add(`${b}ssm_a`, `${mx}A`, [[N, di]], [di, N]);
      add(`${b}ssm_d`, `${mx}D`, [[di], [1, di]], [di]);
    } else {
      const H = c.nheads, G = c.ngroups, C = di + 2 * G * N;
      add(`${b}ssm_in.weight`, `${mx}in_proj.weight`, [[d, 2 * di + 2 * G * N + H]], [2 * di + 2 * G * N + H, d], true);
      add(`${b}ssm_conv1d.weight`, `${mx}conv1d.weight`, [[K, C], [K, 1, C]], [C, K]);
      add(`${b}ssm_conv1d.bias`, `${mx}conv1d.bias`, [[C]], [C], false, false);
      add(`${b}ssm_dt.bias`, `${mx}dt_bias`, [[H], [1, H]], [H]);
      add(`${b}ssm_a`, `${mx}A`, [[1, H], [H]], [H]);
      add(`${b}ssm_d`, `${mx}D`, [[1, H], [H]], [H]);
      add(`${b}ssm_norm.weight`, `${mx}norm.weight`, [[di / G, G], [di]], [di]);
    }
    add(`${b}ssm_out.weight`, `${mx}out_proj.weight`, [[di, d]], [d, di], true);
  }
  add('output_norm.weight', 'backbone.norm_f.weight', [[d]], [d]);
  if (!c.tieEmbeddings) add('output.weight', 'lm_head.weight', [[d, V]], [V, d], true);
  return out;
}

/** Explains a wrong ssm_in / ssm_a shape in terms of the size it implies. */
function explain(m: Mapping, c: MambaConfig, dims: number[]): string {
  if (m.gguf.endsWith('ssm_in.weight') && c.arch === 'mamba2' && dims.length === 2) {
    const g = (dims[1] - 2 * c.dInner - c.nheads) / (2 * c.dState);
    if (Number.isInteger(g) && g > 0) return ` (its rows imply group_count ${g})`;
  }
  if (m.gguf.endsWith('ssm_a') && c.arch === 'mamba2' && dims.length >= 1) {
    return ` (it implies ${dims[dims.length - 1]} heads; ssm.time_step_rank gives ${c.nheads})`;
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
  for (const m of ggufTensorMap(config)) {
    const t: GgufTensorInfo | undefined = g.tensors.get(m.gguf);
    if (!t) {
      if (!m.required) {
        if (m.canonical.endsWith('conv1d.bias')) config.convBias = false;
        continue;
      }
      throw new ModelLoadError('tensor is missing from the GGUF file', { file: abs, field: m.gguf, expected: m.dims[0] });
    }
    if (!m.dims.some((e) => e.length === t.dims.length && e.every((v, k) => v === t.dims[k]))) {
      throw new ModelLoadError(`tensor shape (ggml order) disagrees with the metadata${explain(m, config, t.dims)}`, {
        file: abs, field: m.gguf, expected: m.dims[0], actual: t.dims,
      });
    }
    if (!m.matrix && (t.type === 'Q8_0' || t.type === 'Q4_0')) {
      throw new ModelLoadError(`tensor type ${t.type} is not supported for this tensor (node-mamba reads norms, conv, A, D and biases as F32, F16 or BF16)`, {
        file: abs, field: m.gguf,
      });
    }
    // 'q8_0' / 'q4_0' pass through to the engine, which reads ggml's block layouts.
    const dtype = DTYPE_OF[t.type];
    tensors.set(m.canonical, { file: 0, fileName: abs, offset: t.offset, nbytes: t.nbytes, dtype, shape: m.shape.slice() });
    ggufNames.set(m.canonical, m.gguf);
  }
  const meta = new GgufMeta(g);
  const name = meta.string('general.name');
  return {
    dir: path.dirname(abs), config, configFile: abs, files: [abs], tensors, gguf: g, ggufNames,
    ...(name !== undefined ? { name } : {}),
  };
}
