// Every tensor of one model, expanded from the block declarations: the
// embedding, then per layer (in order) the mixer's pre-norm and the mixer's
// tensors, and for a layer with a feed-forward its pre-norm and tensors, then
// the final norm and, untied, the head. Each with its canonical name
// (docs/hybrid-engine.md, "Canonical tensor names"), the shape the engine
// reads, and where the checkpoint's family stores it (a whole stored tensor,
// or a row range of one).
import type { FfnKind, MambaConfig, MixerKind, ModelFamily } from '../config';
import { ATTENTION } from './attention';
import { EMBEDDING, FFN_NORM, FINAL_NORM, LM_HEAD, MIXER_NORM } from './backbone';
import { MAMBA1 } from './mamba1';
import { MAMBA2 } from './mamba2';
import { MLP } from './mlp';
import { MOE } from './moe';
import { need, type BlockDecl, type TensorDecl, type TensorKind } from './types';

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

/**
 * A block's tensors in declaration order; a run of 'experts' declarations is
 * listed expert by expert (expert 0's gate, up, down, then expert 1's, ...).
 */
function blockTensors(c: MambaConfig, block: BlockDecl, canonicalPrefix: string, storedPrefix: string): ModelTensor[] {
  const out: ModelTensor[] = [];
  const decls = block.tensors;
  for (let k = 0; k < decls.length;) {
    if (decls[k].kind !== 'experts') {
      out.push(...resolve(c, decls[k++], 0, canonicalPrefix, storedPrefix, block.kind));
      continue;
    }
    let end = k;
    while (end < decls.length && decls[end].kind === 'experts') end++;
    const experts = need(c.moe, 'moe').experts;
    for (let e = 0; e < experts; e++) {
      for (let j = k; j < end; j++) out.push(...resolve(c, decls[j], e, canonicalPrefix, storedPrefix, block.kind));
    }
    k = end;
  }
  return out;
}

/** Every tensor the model needs, in a stable order (see the file comment). */
export function modelTensors(c: MambaConfig): ModelTensor[] {
  if (c.layers.length !== c.nLayer) {
    throw new Error(`node-mamba: internal error: the config lists ${c.layers.length} layers, nLayer is ${c.nLayer}`);
  }
  const model = (d: TensorDecl) => resolve(c, d, 0, '', '', 'model');
  const out = model(EMBEDDING);
  c.layers.forEach((layer, i) => {
    const canonical = `backbone.layers.${i}.`, stored = storedLayerPrefix(c.family, i);
    const mixer = MIXER_BLOCKS[layer.mixer];
    if (!mixer) throw new Error(`node-mamba: internal error: layer ${i} has mixer ${JSON.stringify(layer.mixer)}`);
    out.push(...resolve(c, MIXER_NORM, 0, canonical, stored, 'layer'), ...blockTensors(c, mixer, canonical, stored));
    if (layer.ffn === 'none') return;
    const ffn = FFN_BLOCKS[layer.ffn];
    if (!ffn) throw new Error(`node-mamba: internal error: layer ${i} has feed-forward ${JSON.stringify(layer.ffn)}`);
    out.push(...resolve(c, FFN_NORM, 0, canonical, stored, 'layer'), ...blockTensors(c, ffn, canonical, stored));
  });
  out.push(...model(FINAL_NORM), ...model(LM_HEAD));
  return out;
}
