// exportGguf: a checkpoint directory (or a loaded MambaModel's checkpoint) ->
// a GGUF file that llama.cpp (and so node-llama-cpp) loads as architecture
// `mamba`, `mamba2`, `jamba` (Jamba checkpoints) or `granitehybrid` (Granite
// 4.0-H), so that both engines can run identical weights.
//
// What is written follows llama.cpp's converter (convert_hf_to_gguf.py and
// conversion/{mamba,jamba,granite}.py; shared/REFERENCE.md sections 4, 7) and
// what its loader reads (src/llama-model.cpp, src/models/*.cpp):
// - metadata: general.*, {arch}.context_length / embedding_length /
//   block_count / attention.layer_norm_rms_epsilon / ssm.* (mamba2 and
//   granitehybrid also ssm.group_count; ssm.time_step_rank is their head
//   count), and the tokenizer as tokenizer.ggml.* ('gpt2' byte-level
//   BPE; the token list padded to the embedding's rows with [PAD{i}] tokens of
//   type UNUSED; merges; bos/eos ids; pre 'olmo' for the GPT-NeoX-20B
//   tokenizer Mamba uses, whose split is GPT-2's, else 'gpt-2');
// - hybrids: feed_forward_length (the dense and expert width),
//   attention.head_count, attention.head_count_kv per layer (0 marks a Mamba
//   layer), expert_count / expert_used_count when some layer is a mixture of
//   experts (jamba: blk.i.ffn_gate_inp marks those layers); granitehybrid also
//   expert_shared_feed_forward_length, attention.scale, embedding_scale,
//   residual_scale, logit_scale (Granite's multipliers) and
//   rope.scaling.finetuned, llama.cpp's RoPE switch (true only for a
//   checkpoint with position_embedding_type "rope", then rope.freq_base and
//   rope.dimension_count; llama.cpp's own converter writes false for every
//   hybrid Granite, which drops RoPE); context_length defaults to
//   max_position_embeddings for Jamba and RoPE Granites, else 2^20;
// - tensors: names and ggml dims from the block declarations
//   (lib/model/blocks/, `gguf`); ssm_a holds A = -exp(A_log) (computed in
//   float64, stored as float32); conv1d squeezed to {K, C}; mamba2 /
//   granitehybrid A and D as {1, H}, the gated norm as {di/G, G}; experts
//   stacked into ffn_{gate,up,down}_exps {d, Ie, E} / {Ie, d, E}; Granite's
//   packed input_linear split into gate and up; with RoPE, attn_q / attn_k
//   rows interleaved per head for llama.cpp's adjacent-pair RoPE (GgufDecl.ropePairs);
// - types: the matrices (embedding, head, in/out projections, attention,
//   feed-forwards, experts) get the requested type (q8_0 / q4_0 fall back to
//   f16 for a matrix whose rows are not a multiple of 32, as the converter
//   does); everything else stays F32 (norms, biases, conv, A, D, the routers,
//   and Mamba-1's ssm_x / ssm_dt, which llama.cpp's converter keeps in F32).
// Q8_0 (ggml's reference quantizer): blocks of 32 consecutive values of a row,
// d = max|w| / 127 (float32), q = round-half-away(w / d) with 1/d in float32,
// d stored as f16; a value comes back as f16(d) * q.
//
// llama.cpp cannot represent in/out projection biases, a Mamba-1 / Jamba /
// Granite expansion other than 2, nor a Mamba-2 dt limit: such checkpoints
// are refused with a ModelLoadError. A missing conv bias is written as zeros
// (llama.cpp requires one) except for granitehybrid, where it is optional.
// Semantics llama.cpp computes otherwise than Hugging Face, written as they
// are: Granite's gated norm over all of d_inner, which llama.cpp normalises
// in ssm.group_count groups (identical for the released models' one group).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelLoadError } from '../errors';
import { readFloatTensor } from '../loaders/tensor_data';
import { resolveCheckpoint, type Checkpoint, type CheckpointTensor } from '../loaders/checkpoint';
import { GgufValueType, type GgmlType } from '../loaders/gguf';
import { ggufTensors, type GgufTensor } from '../model/blocks';
import type { MambaConfig } from '../model/config';
import { ropeCheckpointRow } from './rope_rows';
import type { MambaModel } from '../model/model';
import { DEFAULT_TOKENIZER_FILE, loadTokenizer } from '../tokenizer/tokenizer';
import { TOKEN_TYPE } from '../tokenizer/gguf_tokenizer';
import { GgufWriter } from './gguf_writer';

export type GgufExportType = 'f32' | 'f16' | 'q8_0' | 'q4_0';

export interface ExportGgufOptions {
  /** Type of the matrix weights (default 'f16'). */
  type?: GgufExportType;
  /** general.name (default: the checkpoint directory's name). */
  name?: string;
  /** tokenizer.json (or a directory holding one). Default: the checkpoint's, else the shipped GPT-NeoX-20B one. */
  tokenizer?: string;
  /** tokenizer.ggml.pre (default: 'olmo' for the GPT-NeoX-20B vocabulary, else 'gpt-2'). */
  pre?: string;
  /**
   * {arch}.context_length (default 1048576: a recurrent model has no context
   * limit; Jamba and Granite with RoPE: max_position_embeddings).
   */
  contextLength?: number;
}

export interface ExportGgufResult {
  file: string;
  type: GgufExportType;
  /** Bytes written. */
  bytes: number;
  tensors: number;
  /** Tokens in tokenizer.ggml.tokens (= embedding rows). */
  vocabSize: number;
}

const LLAMA_FTYPE: Record<GgufExportType, number> = { f32: 0, f16: 1, q8_0: 7, q4_0: 2 };

// ---------------------------------------------------------------- numbers

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> IEEE half bits, round to nearest even (as ggml's converter). */
export function f32ToF16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0);
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    if (abs < 0x33000000) return sign;
    const man = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - (abs >>> 23);
    let r = man >>> shift;
    const rem = man & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = ((((abs >>> 23) - 112) << 10) | ((abs >>> 13) & 0x3ff)) >>> 0;
  const rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++;
  return sign | r;
}

export { f16BitsToF32 } from '../loaders/tensor_data';

/**
 * Bytes of `x` (row-major, rows of `rowLen`) as ggml type `type`: F32, F16, BF16
 * (round to nearest even), Q8_0 and Q4_0 (ggml's reference quantizers). exportGguf
 * writes F32 / F16 / Q8_0 / Q4_0; BF16 serves tests and tools.
 */
export function encodeGgml(x: Float32Array, type: GgmlType, rowLen: number): Uint8Array {
  const n = x.length;
  if (type === 'F32') return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (type === 'F16') {
    const h = new Uint16Array(n);
    for (let i = 0; i < n; i++) h[i] = f32ToF16Bits(x[i]);
    return new Uint8Array(h.buffer);
  }
  if (type === 'Q8_0') {
    if (rowLen % 32 !== 0 || n % rowLen !== 0) throw new RangeError(`encodeGgml: Q8_0 rows must be a multiple of 32, got ${rowLen}`);
    const blocks = n / 32;
    const out = Buffer.alloc(blocks * 34);
    const qs = new Int8Array(out.buffer, out.byteOffset, out.byteLength);
    for (let b = 0; b < blocks; b++) {
      const base = b * 32;
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[base + j]));
      const d = Math.fround(amax / 127);
      const id = d !== 0 ? Math.fround(1 / d) : 0;
      const o = b * 34;
      out.writeUInt16LE(f32ToF16Bits(d), o);
      for (let j = 0; j < 32; j++) {
        const v = Math.fround(x[base + j] * id);
        qs[o + 2 + j] = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5); // roundf: half away from zero
      }
    }
    return out;
  }
  if (type === 'BF16') {
    const h = new Uint16Array(n);
    const bits = new Uint32Array(x.buffer, x.byteOffset, n);
    for (let i = 0; i < n; i++) {
      const v = bits[i];
      h[i] = (v & 0x7fffffff) > 0x7f800000 ? (v >>> 16) | 0x40 : (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
    }
    return new Uint8Array(h.buffer);
  }
  if (type === 'Q4_0') {
    // ggml's reference: d = (the value of largest magnitude) / -8, q = min(15, trunc(w / d + 8.5)), value d·(q - 8).
    if (rowLen % 32 !== 0 || n % rowLen !== 0) throw new RangeError(`encodeGgml: Q4_0 rows must be a multiple of 32, got ${rowLen}`);
    const blocks = n / 32;
    const out = Buffer.alloc(blocks * 18);
    for (let b = 0; b < blocks; b++) {
      const base = b * 32;
      let amax = 0, max = 0;
      for (let j = 0; j < 32; j++) {
        const v = x[base + j];
        if (amax < Math.abs(v)) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = Math.fround(max / -8);
      const id = d !== 0 ? Math.fround(1 / d) : 0;
      const o = b * 18;
      out.writeUInt16LE(f32ToF16Bits(d), o);
      for (let j = 0; j < 16; j++) {
        const lo = Math.min(15, Math.trunc(Math.fround(Math.fround(x[base + j] * id) + 8.5)));
        const hi = Math.min(15, Math.trunc(Math.fround(Math.fround(x[base + 16 + j] * id) + 8.5)));
        out[o + 2 + j] = lo | (hi << 4);
      }
    }
    return out;
  }
  throw new RangeError(`encodeGgml: cannot encode ${type}`);
}

// ---------------------------------------------------------------- tokenizer

interface GgufVocab {
  tokens: string[];
  types: number[];
  merges: string[];
  pre: string;
  bos?: number;
  eos?: number;
}

function tokenizerFileFor(ckDir: string, opt: string | undefined): string {
  if (opt !== undefined) {
    const p = path.resolve(opt);
    try {
      return fs.statSync(p).isDirectory() ? path.join(p, 'tokenizer.json') : p;
    } catch (err) {
      throw new ModelLoadError('tokenizer path not found', { file: p, cause: err });
    }
  }
  const own = path.join(ckDir, 'tokenizer.json');
  return fs.existsSync(own) ? own : DEFAULT_TOKENIZER_FILE;
}

function buildVocab(tokFile: string, rows: number, ck: Checkpoint, preOpt: string | undefined): GgufVocab {
  const hf = loadTokenizer(tokFile); // validates the file, resolves bos/eos from tokenizer_config.json
  const json = JSON.parse(fs.readFileSync(tokFile, 'utf8')) as Record<string, any>;
  const model = json.model as Record<string, any>;
  const bad = (reason: string, field: string): never => {
    throw new ModelLoadError(`exportGguf: ${reason}`, { file: tokFile, field });
  };
  if (!model || model.type !== 'BPE') bad(`only byte-level BPE tokenizers can be written as llama.cpp 'gpt2' tokenizers, this one is ${JSON.stringify(model?.type)}`, 'model.type');
  if (!JSON.stringify(json.pre_tokenizer ?? null).includes('"ByteLevel"')) {
    bad('only byte-level BPE tokenizers (pre_tokenizer ByteLevel) can be written as llama.cpp \'gpt2\' tokenizers', 'pre_tokenizer');
  }
  const byId = new Map<number, { text: string; type: number }>();
  for (const [text, id] of Object.entries(model.vocab as Record<string, number>)) {
    if (!Number.isSafeInteger(id) || id < 0) bad(`token ${JSON.stringify(text)} has id ${id}`, 'model.vocab');
    byId.set(id, { text, type: TOKEN_TYPE.NORMAL });
  }
  for (const a of (json.added_tokens ?? []) as Array<Record<string, any>>) {
    const special = a.special === true || /^<\|.*\|>$/.test(String(a.content));
    byId.set(a.id, { text: String(a.content), type: special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED });
  }
  const n = Math.max(...byId.keys()) + 1;
  if (n > rows) {
    bad(`the tokenizer has ${n} tokens, more than the model's ${rows} embedding rows`, 'model.vocab');
  }
  const tokens: string[] = [], types: number[] = [];
  for (let i = 0; i < rows; i++) {
    const t = byId.get(i);
    tokens.push(t ? t.text : `[PAD${i}]`);
    types.push(t ? t.type : TOKEN_TYPE.UNUSED);
  }
  const merges = ((model.merges ?? []) as Array<string | string[]>).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  if (merges.length === 0) bad('the tokenizer has no merges (llama.cpp requires tokenizer.ggml.merges)', 'model.merges');
  const neox = byId.get(0)?.text === '<|endoftext|>' && byId.get(1)?.text === '<|padding|>';
  const bos = hf.bosTokenId ?? ck.config.bosTokenId;
  const eos = hf.eosTokenId ?? ck.config.eosTokenId;
  return {
    tokens, types, merges, pre: preOpt ?? (neox ? 'olmo' : 'gpt-2'),
    ...(bos !== undefined ? { bos } : {}), ...(eos !== undefined ? { eos } : {}),
  };
}

// ---------------------------------------------------------------- export

/** Reads one stored tensor's values as float32. */
function readTensor(ck: Checkpoint, name: string): { values: Float32Array; shape: number[] } {
  const t = ck.tensors.get(name) as CheckpointTensor;
  return { values: readFloatTensor(t, name), shape: t.shape };
}

/** llama.cpp's architecture name for a checkpoint. */
function ggufArch(c: MambaConfig): 'mamba' | 'mamba2' | 'jamba' | 'granitehybrid' {
  return c.family === 'jamba' ? 'jamba' : c.family === 'granitemoehybrid' ? 'granitehybrid' : c.arch;
}

function checkExportable(ck: Checkpoint): void {
  const c = ck.config;
  const a = ggufArch(c);
  const hybrid = a === 'jamba' || a === 'granitehybrid';
  const fail = (reason: string, field: string): never => {
    throw new ModelLoadError(`exportGguf: ${reason}`, { file: ck.configFile, field });
  };
  if (c.quantization) fail('quantized checkpoints (quantization_config) cannot be written as GGUF', 'quantization_config');
  if (c.useBias) fail(`llama.cpp has no in_proj / out_proj biases for ${a} (${hybrid ? 'mamba_proj_bias' : 'use_bias'} true)`, hybrid ? 'mamba_proj_bias' : 'use_bias');
  if (a !== 'mamba2' && c.dInner !== 2 * c.dModel) {
    fail(`llama.cpp's ${a} supports only an expansion factor of 2 (d_inner ${c.dInner}, d_model ${c.dModel})`, hybrid ? 'mamba_expand' : 'expand');
  }
  if (c.arch === 'mamba2' && (c.timeStepLimit[0] !== 0 || c.timeStepLimit[1] !== Infinity)) {
    fail(`llama.cpp's ${a} has no dt limit (time_step_limit [${c.timeStepLimit.join(', ')}])`, 'time_step_limit');
  }
  if (a === 'jamba' && c.mlpDim !== undefined && c.moe && c.mlpDim !== c.moe.dim) {
    fail(`llama.cpp's jamba has one feed-forward width for dense layers and experts (${c.mlpDim}, ${c.moe.dim})`, 'intermediate_size');
  }
}

/** The hybrid keys (jamba, granitehybrid): schedule, attention, experts, multipliers, RoPE. */
function writeHybridKeys(w: GgufWriter, c: MambaConfig, a: 'jamba' | 'granitehybrid'): void {
  const at = c.attention, moe = c.moe;
  w.u32(`${a}.feed_forward_length`, moe ? moe.dim : c.mlpDim ?? 0);
  w.u32(`${a}.attention.head_count`, at?.nHeads ?? 0);
  w.array(`${a}.attention.head_count_kv`, GgufValueType.UINT32, c.layers.map((l) => (l.mixer === 'attention' ? (at?.nKvHeads ?? 0) : 0)));
  if (moe) {
    w.u32(`${a}.expert_count`, moe.experts);
    w.u32(`${a}.expert_used_count`, moe.topK);
    if (a === 'granitehybrid' && moe.sharedDim > 0) w.u32(`${a}.expert_shared_feed_forward_length`, moe.sharedDim);
  }
  if (a === 'granitehybrid') {
    const k = c.multipliers ?? { embedding: 1, residual: 1, logits: 1 };
    if (at) w.f32(`${a}.attention.scale`, at.scale);
    w.f32(`${a}.embedding_scale`, k.embedding);
    w.f32(`${a}.residual_scale`, k.residual);
    w.f32(`${a}.logit_scale`, k.logits);
    const rope = !!at && at.ropeTheta > 0;
    w.bool(`${a}.rope.scaling.finetuned`, rope);
    if (rope) {
      w.f32(`${a}.rope.freq_base`, at.ropeTheta);
      w.u32(`${a}.rope.dimension_count`, at.ropeDim);
    }
  }
}

/**
 * Writes `modelOrDir`'s checkpoint as a GGUF file llama.cpp loads. The file is
 * written under a temporary name and renamed: a failure leaves nothing behind.
 */
export async function exportGguf(modelOrDir: MambaModel | string, file: string, options: ExportGgufOptions = {}): Promise<ExportGgufResult> {
  const type = options.type ?? 'f16';
  if (!(type in LLAMA_FTYPE)) throw new RangeError(`exportGguf: type must be 'f32', 'f16', 'q8_0' or 'q4_0', got ${String(type)}`);
  if (typeof file !== 'string' || file === '') throw new TypeError('exportGguf: file must be a non-empty string');
  if (options.contextLength !== undefined && !(Number.isInteger(options.contextLength) && options.contextLength >= 1 && options.contextLength <= 0xffffffff)) {
    throw new RangeError('exportGguf: contextLength must be a positive 32-bit integer');
  }
  const dir = typeof modelOrDir === 'string' ? modelOrDir : modelOrDir.path;
  if (typeof dir !== 'string') throw new TypeError('exportGguf: expected a MambaModel or a checkpoint directory');
  if (dir.toLowerCase().endsWith('.gguf')) {
    throw new ModelLoadError('exportGguf: the model was loaded from a GGUF file; export from its checkpoint directory', { file: path.resolve(dir) });
  }
  const ck = resolveCheckpoint(dir);
  checkExportable(ck);
  const c = ck.config;
  const a = ggufArch(c);
  const rope = (c.attention?.ropeTheta ?? 0) > 0;
  const ctx = options.contextLength ?? Math.min(0xffffffff, (a === 'jamba' || rope ? c.maxPositionEmbeddings : undefined) ?? 1048576);
  const tokFile = tokenizerFileFor(ck.dir, options.tokenizer);
  const vocab = buildVocab(tokFile, c.vocabSize, ck, options.pre);

  const w = new GgufWriter();
  w.string('general.architecture', a);
  w.string('general.name', options.name ?? path.basename(ck.dir));
  w.u32('general.file_type', LLAMA_FTYPE[type]);
  if (type === 'q8_0' || type === 'q4_0') w.u32('general.quantization_version', 2);
  w.u32(`${a}.context_length`, ctx);
  w.u32(`${a}.embedding_length`, c.dModel);
  if (a === 'mamba' || a === 'mamba2') {
    w.u32(`${a}.feed_forward_length`, 0);
    w.u32(`${a}.attention.head_count`, 0);
  }
  w.u32(`${a}.block_count`, c.nLayer);
  w.f32(`${a}.attention.layer_norm_rms_epsilon`, c.normEps);
  if (a === 'jamba' || a === 'granitehybrid') writeHybridKeys(w, c, a);
  w.u32(`${a}.ssm.conv_kernel`, c.dConv);
  w.u32(`${a}.ssm.inner_size`, c.dInner);
  w.u32(`${a}.ssm.state_size`, c.dState);
  w.u32(`${a}.ssm.time_step_rank`, c.arch === 'mamba' ? c.dtRank : c.nheads);
  if (c.arch === 'mamba2') w.u32(`${a}.ssm.group_count`, c.ngroups);
  else if (a === 'mamba') w.bool(`${a}.ssm.dt_b_c_rms`, false);
  w.string('tokenizer.ggml.model', 'gpt2');
  w.string('tokenizer.ggml.pre', vocab.pre);
  w.array('tokenizer.ggml.tokens', GgufValueType.STRING, vocab.tokens);
  w.array('tokenizer.ggml.token_type', GgufValueType.INT32, vocab.types);
  w.array('tokenizer.ggml.merges', GgufValueType.STRING, vocab.merges);
  if (vocab.bos !== undefined) w.u32('tokenizer.ggml.bos_token_id', vocab.bos);
  if (vocab.eos !== undefined) w.u32('tokenizer.ggml.eos_token_id', vocab.eos);

  const matrixType = (rowLen: number): GgmlType =>
    type === 'f32' ? 'F32' : type === 'f16' ? 'F16' : rowLen % 32 !== 0 ? 'F16' : type === 'q8_0' ? 'Q8_0' : 'Q4_0';
  // The declarations' tensors, grouped by GGUF name (a 'split_rows' tensor gathers every expert, in order).
  const byName = new Map<string, GgufTensor[]>();
  for (const t of ggufTensors(c)) {
    const parts = byName.get(t.gguf);
    if (parts) parts.push(t);
    else byName.set(t.gguf, [t]);
  }
  // llama.cpp's mamba, mamba2 and jamba require a conv bias; granitehybrid's is optional.
  const zeroConvBias = !c.convBias && a !== 'granitehybrid';
  for (const [name, parts] of byName) {
    const first = parts[0];
    const dims = first.dims[0];
    const ggmlType: GgmlType = !first.linear || first.f32 ? 'F32' : matrixType(dims[0]);
    w.tensor({ name, dims, type: ggmlType, data: () => encodeGgml(tensorValues(ck, parts), ggmlType, dims[0]) });
    if (zeroConvBias && name.endsWith('.ssm_conv1d.weight')) {
      const C = dims[dims.length - 1];
      w.tensor({ name: name.replace(/weight$/, 'bias'), dims: [C], type: 'F32', data: () => new Uint8Array(C * 4) });
    }
  }

  const abs = path.resolve(file);
  const bytes = await w.write(abs);
  return { file: abs, type, bytes, tensors: w.tensorCount, vocabSize: c.vocabSize };
}

/**
 * The values of one GGUF tensor from the checkpoint: its parts (experts, in
 * order) read as float32 and concatenated, A_log -> A = -exp(A_log), q / k
 * rows interleaved for llama.cpp's RoPE.
 */
function tensorValues(ck: Checkpoint, parts: GgufTensor[]): Float32Array {
  const values = parts.map((p) => {
    const v = readTensor(ck, p.source).values;
    if (p.transform === 'neg_exp') for (let i = 0; i < v.length; i++) v[i] = -Math.exp(v[i]);
    if (!p.ropePairs) return v;
    const rows = p.shape[0], cols = v.length / rows, out = new Float32Array(v.length);
    for (let j = 0; j < rows; j++) {
      const from = ropeCheckpointRow(j, p.ropePairs.headDim, p.ropePairs.rotaryDim);
      out.set(v.subarray(from * cols, (from + 1) * cols), j * cols);
    }
    return out;
  });
  if (values.length === 1) return values[0];
  const out = new Float32Array(values.reduce((n, v) => n + v.length, 0));
  let at = 0;
  for (const v of values) {
    out.set(v, at);
    at += v.length;
  }
  return out;
}
