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
 * llama.cpp's name for the tensor (filled where known from shared/REFERENCE.md
 * sections 4 and 7; read by the GGUF reader and exporter once they derive
 * from these declarations). dims: accepted ggml dims (default: the shape
 * reversed). transform: 'neg_exp' (GGUF stores A = -exp(A_log)),
 * 'squeeze_conv' (conv1d [C, 1, K] stored as {K, C}), 'split_rows' (one
 * stored tensor holds every expert, or the gate and up rows).
 */
export interface GgufDecl {
  name: string;
  dims?: (c: MambaConfig) => number[][];
  transform?: 'neg_exp' | 'squeeze_conv' | 'split_rows';
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
