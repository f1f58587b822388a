// A llama.cpp GGUF file of architecture `mamba`, `mamba2`, `jamba` or
// `granitehybrid` -> the normalised MambaConfig (gguf_config.ts) and the
// engine's canonical tensor table (Hugging Face names, numpy shapes, absolute file offsets: the
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
// Quantized tensors (Q8_0, Q4_0) are passed on as dtypes 'q8_0' / 'q4_0' for
// the matrix weights (embedding, projections, attention, feed-forwards,
// routers, experts); norms, conv, A, D and biases must be F32, F16 or BF16
// (llama.cpp writes them as F32).
import * as path from 'node:path';
import { ModelLoadError } from '../errors';
import type { MambaConfig } from '../model/config';
import { ggufTensors } from '../model/blocks';
import type { Checkpoint, CheckpointTensor, WeightDtype } from './checkpoint';
import { readGgufHeader, type GgmlType, type GgufFile, type GgufTensorInfo } from './gguf';
import { ggufConfig } from './gguf_config';
import { GgufMeta } from './gguf_meta';

export { GGUF_ARCHITECTURES, ggufConfig, type GgufArchitecture } from './gguf_config';
export { GgufMeta } from './gguf_meta';

const DTYPE_OF: Record<GgmlType, WeightDtype> = { F32: 'f32', F16: 'f16', BF16: 'bf16', Q8_0: 'q8_0', Q4_0: 'q4_0' };

export interface GgufCheckpoint extends Checkpoint {
  /** The parsed header (metadata, tensor infos). */
  gguf: GgufFile;
  /** general.name, when the file has one. */
  name?: string;
  /** Canonical tensor name -> GGUF tensor name (for messages). */
  ggufNames: Map<string, string>;
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
