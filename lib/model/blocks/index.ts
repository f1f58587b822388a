// Every tensor of one model, expanded from the block declarations: the
// embedding, then per layer (in order) the mixer's pre-norm and the mixer's
// tensors, and for a layer with a feed-forward its pre-norm and tensors, then
// the final norm and, untied, the head. Each with its canonical name
// (docs/hybrid-engine.md, "Canonical tensor names"), the shape the engine
// reads, and where the checkpoint's family stores it (a whole stored tensor,
// or a row range of one). ggufTensors lists the same tensors as llama.cpp's
// GGUF files hold them (names, ggml dims, transforms).
import type { FfnKind, MambaConfig, MixerKind, ModelFamily } from '../config';
import { ATTENTION } from './attention';
import { EMBEDDING, FFN_NORM, FINAL_NORM, LM_HEAD, MIXER_NORM } from './backbone';
import { MAMBA1 } from './mamba1';
import { MAMBA2 } from './mamba2';
import { MLP } from './mlp';
import { MOE } from './moe';
import { need, type BlockDecl, type GgufDecl, type TensorDecl, type TensorKind } from './types';

export type { BlockDecl, GgufDecl, RowSlice, StoredAs, TensorDecl, TensorKind } from './types';
export { ATTENTION, MAMBA1, MAMBA2, MLP, MOE };
export { EMBEDDING, FFN_NORM, FINAL_NORM, LM_HEAD, MIXER_NORM };

export const MIXER_BLOCKS: Record<MixerKind, BlockDecl> = { mamba1: MAMBA1, mamba2: MAMBA2, attention: ATTENTION };
export const FFN_BLOCKS: Record<Exclude<FfnKind, 'none'>, BlockDecl> = { mlp: MLP, moe: MOE };

/** One tensor of a model. */
export interface ModelTensor {
  /** Canonical name (what Checkpoint.tensors and the engine use). */
  name: string;
  /** Numpy shape the engine reads. */
  shape: number[];
  kind: TensorKind;
  /** A linear layer's matrix (kind 'matrix' or 'experts'): may be i8 / i4 in a quantized checkpoint. */
  linear: boolean;
  /** With linear: a lookup table (the embedding), whose i8 form has no input scale. */
  lookup?: boolean;
  /** The name the checkpoint's family stores it under (with the family's prefix, e.g. `model.`). */
  stored: string;
  /**
   * Set when the tensor is a row range of the stored one: the stored tensor's
   * whole shape, and rows [first, first + count) of it seen as 2-D.
   */
  slice?: { storedShape: number[]; rows: [number, number] };
  /** Explains a wrong stored shape in terms of the config size it implies. */
  explain?: (actual: number[]) => string | undefined;
}

/** Where a family's layer tensors are stored: `backbone.layers.i.` (Mamba), `model.layers.i.` (Jamba, Granite). */
export function storedLayerPrefix(family: ModelFamily, i: number): string {
  return family === 'mamba' || family === 'mamba2' ? `backbone.layers.${i}.` : `model.layers.${i}.`;
}

/** One declaration's tensor (expert e for kind 'experts'), or none when its `when` fails. */
function resolve(c: MambaConfig, decl: TensorDecl, e: number, canonicalPrefix: string, storedPrefix: string, block: string): ModelTensor[] {
  if (decl.when && !decl.when(c)) return [];
  const as = decl.stored[c.family];
  if (as === undefined) {
    throw new Error(`node-mamba: internal error: the ${block} block declares no ${c.family} name for ${decl.role}`);
  }
  const at = (s: string) => s.replaceAll('{e}', String(e));
  const t: ModelTensor = {
    name: canonicalPrefix + at(decl.role),
    shape: decl.shape(c),
    kind: decl.kind,
    linear: decl.kind !== 'vector',
    stored: storedPrefix + at(typeof as === 'string' ? as : as.name),
  };
  if (decl.lookup) t.lookup = true;
  const explain = typeof as === 'string' ? decl.explain : as.explain;
  if (explain) t.explain = (a) => explain(c, a);
  if (typeof as !== 'string') {
    t.slice = { storedShape: as.shape(c), rows: as.rows(c, e) };
    const last = t.slice.storedShape[t.slice.storedShape.length - 1];
    if (t.shape.length !== 2 || t.shape[0] !== t.slice.rows[1] || t.shape[1] !== last) {
      throw new Error(`node-mamba: internal error: ${t.name} [${t.shape.join(', ')}] is not ${t.slice.rows[1]} rows of ${t.stored}`);
    }
  }
  return [t];
}

/** One declaration in a model's expansion: which expert, and where (layer index, or none for the model's own tensors). */
interface DeclAt {
  decl: TensorDecl;
  e: number;
  /** `backbone.layers.i.` for layer tensors, '' for the model's own. */
  canonicalPrefix: string;
  layer?: number;
  block: string;
}

/**
 * A block's declarations in order, for those whose `when` holds; a run of
 * 'experts' declarations is listed expert by expert (expert 0's gate, up,
 * down, then expert 1's, ...).
 */
function blockDecls(c: MambaConfig, block: BlockDecl, layer: number): DeclAt[] {
  const out: DeclAt[] = [];
  const at = (decl: TensorDecl, e: number) => {
    if (!decl.when || decl.when(c)) out.push({ decl, e, canonicalPrefix: `backbone.layers.${layer}.`, layer, block: block.kind });
  };
  const decls = block.tensors;
  for (let k = 0; k < decls.length;) {
    if (decls[k].kind !== 'experts') {
      at(decls[k++], 0);
      continue;
    }
    let end = k;
    while (end < decls.length && decls[end].kind === 'experts') end++;
    const experts = need(c.moe, 'moe').experts;
    for (let e = 0; e < experts; e++) for (let j = k; j < end; j++) at(decls[j], e);
    k = end;
  }
  return out;
}

/**
 * Every declaration the model uses, in a stable order: the embedding, then
 * per layer the mixer's pre-norm and tensors, and for a layer with a
 * feed-forward its pre-norm and tensors, then the final norm and, untied, the head.
 */
function modelDecls(c: MambaConfig): DeclAt[] {
  if (c.layers.length !== c.nLayer) {
    throw new Error(`node-mamba: internal error: the config lists ${c.layers.length} layers, nLayer is ${c.nLayer}`);
  }
  const model = (decl: TensorDecl): DeclAt[] => (!decl.when || decl.when(c) ? [{ decl, e: 0, canonicalPrefix: '', block: 'model' }] : []);
  const layerOwn = (decl: TensorDecl, i: number): DeclAt[] => [{ decl, e: 0, canonicalPrefix: `backbone.layers.${i}.`, layer: i, block: 'layer' }];
  const out = model(EMBEDDING);
  c.layers.forEach((layer, i) => {
    const mixer = MIXER_BLOCKS[layer.mixer];
    if (!mixer) throw new Error(`node-mamba: internal error: layer ${i} has mixer ${JSON.stringify(layer.mixer)}`);
    out.push(...layerOwn(MIXER_NORM, i), ...blockDecls(c, mixer, i));
    if (layer.ffn === 'none') return;
    const ffn = FFN_BLOCKS[layer.ffn];
    if (!ffn) throw new Error(`node-mamba: internal error: layer ${i} has feed-forward ${JSON.stringify(layer.ffn)}`);
    out.push(...layerOwn(FFN_NORM, i), ...blockDecls(c, ffn, i));
  });
  out.push(...model(FINAL_NORM), ...model(LM_HEAD));
  return out;
}

/** Every tensor the model needs, in a stable order (see the file comment). */
export function modelTensors(c: MambaConfig): ModelTensor[] {
  return modelDecls(c).flatMap(({ decl, e, canonicalPrefix, layer, block }) =>
    resolve(c, decl, e, canonicalPrefix, layer === undefined ? '' : storedLayerPrefix(c.family, layer), block));
}

/** One tensor of a model as llama.cpp's GGUF files hold it (GgufDecl). */
export interface GgufTensor {
  /** Canonical name the reader gives it ('mixer.A' for ssm_a). */
  name: string;
  /** Canonical name of the checkpoint tensor the exporter writes it from ('mixer.A_log' for ssm_a). */
  source: string;
  /** Numpy shape the engine reads (conv1d squeezed to [C, K]). */
  shape: number[];
  kind: TensorKind;
  /** A linear layer's matrix: may be Q8_0 / Q4_0. */
  linear: boolean;
  /** Whole GGUF name ('blk.3.ffn_up_exps.weight'). */
  gguf: string;
  /** Accepted ggml dims of the GGUF tensor (a packed expert tensor's whole dims); the first is written. */
  dims: number[][];
  transform?: GgufDecl['transform'];
  /** Written as F32 whatever the requested type. */
  f32: boolean;
  /** A file may lack it. */
  optional: boolean;
  /** 'split_rows': this expert's rows [first, count) of the GGUF tensor seen as 2-D [all dims but dims[0], dims[0]]. */
  rows?: [number, number];
  /** Set when RoPE is on for q / k: the file's rows are in llama.cpp's interleaved-pair order (GgufDecl.ropePairs). */
  ropePairs?: { heads: number; headDim: number; rotaryDim: number };
}

/**
 * Every tensor of the model as a GGUF file holds it, in modelTensors' order
 * (experts expert by expert: several entries share a 'split_rows' GGUF
 * tensor, in expert order).
 */
export function ggufTensors(c: MambaConfig): GgufTensor[] {
  return modelDecls(c).map(({ decl, e, canonicalPrefix, layer, block }) => {
    const g = decl.gguf;
    if (!g) throw new Error(`node-mamba: internal error: the ${block} block declares no GGUF name for ${decl.role}`);
    const at = (s: string) => s.replaceAll('{e}', String(e));
    const shape = decl.shape(c);
    const packed = g.transform === 'split_rows' ? [need(c.moe, 'moe').experts, ...shape] : shape;
    const t: GgufTensor = {
      name: canonicalPrefix + at(g.canonical ?? decl.role),
      source: canonicalPrefix + at(decl.role),
      shape: g.transform === 'squeeze_conv' ? [shape[0], shape[shape.length - 1]] : shape,
      kind: decl.kind,
      linear: decl.kind !== 'vector',
      gguf: (layer === undefined ? '' : `blk.${layer}.`) + g.name,
      dims: g.dims ? g.dims(c) : [packed.slice().reverse()],
      f32: g.f32 === true,
      optional: g.optional === true,
    };
    if (g.transform) t.transform = g.transform;
    if (g.transform === 'split_rows') t.rows = [e * shape[0], shape[0]];
    const a = c.attention;
    if (g.ropePairs && a && a.ropeTheta > 0) t.ropePairs = { heads: g.ropePairs(c), headDim: a.headDim, rotaryDim: a.ropeDim };
    return t;
  });
}
