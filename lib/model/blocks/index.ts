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
import type { BlockDecl, TensorDecl, TensorKind } from './types';

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

/** The tensors of one declaration (one per expert for kind 'experts'), or none when its `when` fails. */
function expand(c: MambaConfig, decl: TensorDecl, canonicalPrefix: string, storedPrefix: string, block: string): ModelTensor[] {
  if (decl.when && !decl.when(c)) return [];
  const as = decl.stored[c.family];
  if (as === undefined) {
    throw new Error(`node-mamba: internal error: the ${block} block declares no ${c.family} name for ${decl.role}`);
  }
  const count = decl.kind === 'experts' ? (c.moe?.experts ?? 0) : 1;
  const out: ModelTensor[] = [];
  for (let e = 0; e < count; e++) {
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
    out.push(t);
  }
  return out;
}

/** Every tensor the model needs, in a stable order (see the file comment). */
export function modelTensors(c: MambaConfig): ModelTensor[] {
  if (c.layers.length !== c.nLayer) {
    throw new Error(`node-mamba: internal error: the config lists ${c.layers.length} layers, nLayer is ${c.nLayer}`);
  }
  const out = expand(c, EMBEDDING, '', '', 'model');
  c.layers.forEach((layer, i) => {
    const canonical = `backbone.layers.${i}.`, stored = storedLayerPrefix(c.family, i);
    out.push(...expand(c, MIXER_NORM, canonical, stored, 'layer'));
    const mixer = MIXER_BLOCKS[layer.mixer];
    if (!mixer) throw new Error(`node-mamba: internal error: layer ${i} has mixer ${JSON.stringify(layer.mixer)}`);
    for (const d of mixer.tensors) out.push(...expand(c, d, canonical, stored, mixer.kind));
    if (layer.ffn === 'none') return;
    const ffn = FFN_BLOCKS[layer.ffn];
    if (!ffn) throw new Error(`node-mamba: internal error: layer ${i} has feed-forward ${JSON.stringify(layer.ffn)}`);
    out.push(...expand(c, FFN_NORM, canonical, stored, 'layer'));
    for (const d of ffn.tensors) out.push(...expand(c, d, canonical, stored, ffn.kind));
  });
  out.push(...expand(c, FINAL_NORM, '', '', 'model'));
  out.push(...expand(c, LM_HEAD, '', '', 'model'));
  return out;
}
