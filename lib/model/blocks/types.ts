// The shape of a block's tensor declarations (docs/hybrid-engine.md, "One
// description of each block's tensors"): each block kind (mamba1.ts,
// mamba2.ts, attention.ts, mlp.ts, moe.ts) and the model's own tensors
// (backbone.ts) list their tensors once: the canonical name the engine reads,
// the shape the config implies, and the name each checkpoint family stores it
// under. index.ts expands them into the tensors of one model.
import type { MambaConfig, ModelFamily } from '../config';

/**
 * 'matrix': a linear layer's weight [out, in] (may be quantized); 'experts':
 * one matrix per expert (role holds `{e}`; may be quantized); 'vector': any
 * other tensor, read as floats whatever its rank (norms, biases, conv, A_log, D).
 */
export type TensorKind = 'matrix' | 'vector' | 'experts';

/**
 * A canonical tensor that is a row range of a stored tensor, for example
 * Granite's gate rows [0, I) of shared_mlp.input_linear [2I, d], or expert e's
 * up rows of block_sparse_moe.input_linear [E, 2I, d]. The loader hands the
 * engine the range's own offset, byte size and 2-D shape [count, last dim].
 */
export interface RowSlice {
  /** Stored name; in a layer's declaration relative to the family's layer prefix; `{e}` is the expert index. */
  name: string;
  /** Shape of the whole stored tensor. */
  shape: (c: MambaConfig) => number[];
  /**
   * First row and row count, in the stored tensor seen as 2-D [product of all
   * dims but the last, last dim]; e is the expert index (0 outside experts).
   */
  rows: (c: MambaConfig, e: number) => [number, number];
  /** Explains a wrong stored shape in terms of the config size it implies. */
  explain?: (c: MambaConfig, actual: number[]) => string | undefined;
}

/** A stored name (the canonical tensor is the whole stored tensor) or a row slice. */
export type StoredAs = string | RowSlice;

/**
 * How llama.cpp's GGUF files store the tensor (shared/REFERENCE.md sections 4
 * and 7; llama.cpp src/models/{mamba,jamba,granite-hybrid}.cpp). The GGUF
 * reader (loaders/gguf_model.ts) and the exporter (export/export_gguf.ts)
 * derive their tensor lists from these, through `ggufTensors` (index.ts).
 */
export interface GgufDecl {
  /** llama.cpp's name: in a layer's declaration relative to `blk.i.` ('ssm_in.weight'); in backbone.ts the whole name. */
  name: string;
  /**
   * Accepted ggml dims (dims[0] contiguous), the first being the one the
   * exporter writes. Default: the numpy shape reversed. For 'split_rows'
   * experts, the dims of the tensor holding every expert.
   */
  dims?: (c: MambaConfig) => number[][];
  /**
   * 'neg_exp': the file holds A = -exp(A_log) (the exporter computes it; the
   * reader hands it to the engine as `canonical`, 'mixer.A');
   * 'squeeze_conv': conv1d [C, 1, K] stored as {K, C}, read as [C, K];
   * 'split_rows': one stored tensor holds every expert, numpy [E, ...shape]:
   * expert e is rows [e·rows, (e + 1)·rows) of it seen as 2-D.
   */
  transform?: 'neg_exp' | 'squeeze_conv' | 'split_rows';
  /** The canonical name the reader gives the GGUF tensor, when it is not `role` (ssm_a holds A itself: 'mixer.A'). */
  canonical?: string;
  /** The exporter writes it as F32 whatever the requested type (llama.cpp's converter keeps routers, and Mamba's ssm_x / ssm_dt, in F32). */
  f32?: boolean;
  /** A file may lack it (llama.cpp's optional conv bias): the reader then leaves the canonical tensor out. */
  optional?: boolean;
  /**
   * Attention q / k: llama.cpp's RoPE ('norm' type, granitehybrid) rotates
   * adjacent channel pairs (2i, 2i + 1), Hugging Face's rotate_half pairs
   * (i, i + r/2): with RoPE on, the file holds each head's first r rows
   * interleaved (row 2i + s of the file is row s·r/2 + i of the checkpoint;
   * the converter's `permute`), which the exporter writes and the reader
   * undoes. Value: the tensor's head count.
   */
  ropePairs?: (c: MambaConfig) => number;
}

export interface TensorDecl {
  /**
   * Canonical name: in a layer's declaration relative to `backbone.layers.i.`
   * ('mixer.in_proj.weight', 'ffn.experts.{e}.up_proj.weight'); in
   * backbone.ts the whole name.
   */
  role: string;
  /** Numpy shape the engine reads (per expert for 'experts'). */
  shape: (c: MambaConfig) => number[];
  kind: TensorKind;
  /** The tensor exists only when this holds (biases, inner norms, shared expert, untied head). Default: always. */
  when?: (c: MambaConfig) => boolean;
  /** The embedding: a lookup table (its i8 form has no input scale). */
  lookup?: boolean;
  /** Explains a wrong stored shape in terms of the config size it implies. */
  explain?: (c: MambaConfig, actual: number[]) => string | undefined;
  /** Stored name per checkpoint family that has this tensor. */
  stored: Partial<Record<ModelFamily, StoredAs>>;
  gguf?: GgufDecl;
}

/** A block kind's tensors. */
export interface BlockDecl {
  kind: string;
  tensors: TensorDecl[];
}

/** Requires a config section that a layer kind needs (the config readers always set it). */
export function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`node-mamba: internal error: the config has layers that need '${what}' but does not set it`);
  return v;
}
