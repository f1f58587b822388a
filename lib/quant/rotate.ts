// Quamba2's Hadamard rotation (arXiv:2503.22879 §4.2), applied offline to
// float weights. With T(v) = H·v / sqrt(n) (lib/quant/hadamard.ts), Q_n its
// orthogonal matrix:
//   - the residual stream lives in the rotated basis r' = Q_d·r: every
//     embedding row e <- T(e) and every out_proj output is rotated too (or,
//     'online', the engine rotates the embedding output and rotates the
//     final residual back, keeping embedding, final norm and a tied head);
//   - RMSNorm of a unit-weight norm commutes with Q (rms(Q·r) = rms(r)), so
//     each block's norm weight γ is folded into the next projection and set to
//     1: in_proj W <- W·diag(γ)·Q_dᵀ (each row w <- T(w ∘ γ)); likewise the
//     final norm into lm_head, which becomes untied: W_lm <- W_lm·diag(γ_f)·Q_dᵀ;
//   - out_proj reads y rotated online (the engine applies T to its input,
//     hadamard_out): W_out <- Q_d·W_out·Q_diᵀ (T on each row, then T on each
//     column), bias b <- T(b);
//   - hybrids (rotateBlocks): attention and feed-forward projections fold
//     their pre-norm and rotate their input or output the same way.
// The float model computes the same function (up to rounding); quantization
// then sees rotated activations and weights, whose outlier channels are
// spread over all channels.
import type { MambaConfig } from '../model/config';
import { hadamardRows } from './hadamard';

export interface FloatTensor {
  data: Float32Array;
  shape: number[];
}

/** Applies T to each contiguous row of length n of a [rows, n] matrix, in place. */
function rotateRows(m: Float32Array, rows: number, n: number): void {
  hadamardRows(m, rows, n);
}

/** Applies T to each column (length rows) of a [rows, cols] matrix, in place. */
function rotateColumns(m: Float32Array, rows: number, cols: number): void {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
  hadamardRows(t, cols, rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) m[r * cols + c] = t[c * rows + r];
}

function scaleColumns(m: Float32Array, rows: number, cols: number, g: Float32Array): void {
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) m[r * cols + c] *= g[c];
}

/**
 * Rotates a float model in place (tensors by canonical name). `residual`:
 * 'folded' rotates the embedding rows and the head offline (Quamba; the head
 * is untied and the final norm folded into it); 'online' leaves embedding,
 * final norm and head as they are (the engine rotates the embedding output
 * and rotates the final residual back: quantization_config.residual_rotation).
 * Returns the config (untied head when folded). Callers check that d_model
 * and d_inner are Hadamard sizes.
 */
export function rotateModel(c: MambaConfig, w: Map<string, FloatTensor>, residual: 'folded' | 'online' = 'folded'): MambaConfig {
  const d = c.dModel, di = c.dInner, V = c.vocabSize;
  const get = (name: string): FloatTensor => {
    const t = w.get(name);
    if (!t) throw new Error(`rotateModel: missing ${name}`);
    return t;
  };
  rotateBlocks(c, w, get);
  if (residual === 'online') return c;
  // lm_head from the original (unrotated) embedding when tied.
  const emb = get('backbone.embeddings.weight');
  const head = c.tieEmbeddings ? { data: emb.data.slice(), shape: emb.shape.slice() } : get('lm_head.weight');
  const normF = get('backbone.norm_f.weight');
  scaleColumns(head.data, V, d, normF.data);
  rotateRows(head.data, V, d);
  normF.data.fill(1);
  w.set('lm_head.weight', head);
  rotateRows(emb.data, V, d);
  return { ...c, tieEmbeddings: false };
}

/** W <- W·diag(γ)·Q_dᵀ: a projection reading the normed residual stream, its norm weight γ folded in. */
function readsResidual(t: FloatTensor, d: number, norm: FloatTensor): void {
  const rows = t.shape[0];
  scaleColumns(t.data, rows, d, norm.data);
  rotateRows(t.data, rows, d);
}

/** W <- Q_d·W: a projection writing to the residual stream ([d, cols]). */
function writesResidual(t: FloatTensor, d: number): void {
  rotateColumns(t.data, d, t.data.length / d);
}

/**
 * Every layer: the mixer's projections that read the normed residual stream
 * (Mamba in_proj; attention q / k / v) get its pre-norm folded in and their
 * input rotated; those that write to it (out_proj, o_proj) their output;
 * Mamba's out_proj also its input (rotated online by the engine). A
 * feed-forward likewise: gate / up of the MLP, of every expert and of the
 * shared expert, and the float router, read the feed-forward's pre-norm
 * (folded into each); every down projection writes to the stream. The
 * attention's o_proj input and the experts' inner activations are not rotated.
 */
function rotateBlocks(c: MambaConfig, w: Map<string, FloatTensor>, get: (name: string) => FloatTensor): void {
  const d = c.dModel, di = c.dInner;
  for (let i = 0; i < c.nLayer; i++) {
    const p = `backbone.layers.${i}.`, m = `${p}mixer.`, f = `${p}ffn.`;
    const { mixer, ffn } = c.layers[i];
    const norm = get(`${p}norm.weight`);
    if (mixer === 'attention') {
      for (const q of ['q_proj', 'k_proj', 'v_proj']) readsResidual(get(`${m}${q}.weight`), d, norm);
      writesResidual(get(`${m}o_proj.weight`), d);
    } else {
      readsResidual(get(`${m}in_proj.weight`), d, norm);
      const outProj = get(`${m}out_proj.weight`);
      rotateRows(outProj.data, d, di);
      writesResidual(outProj, d);
      const bias = w.get(`${m}out_proj.bias`);
      if (bias) rotateRows(bias.data, 1, d);
    }
    norm.data.fill(1);
    if (ffn === 'none') continue;
    const ffnNorm = get(`${p}ffn_norm.weight`);
    const swiglu = (prefix: string) => {
      readsResidual(get(`${prefix}gate_proj.weight`), d, ffnNorm);
      readsResidual(get(`${prefix}up_proj.weight`), d, ffnNorm);
      writesResidual(get(`${prefix}down_proj.weight`), d);
    };
    if (ffn === 'mlp') swiglu(f);
    else {
      readsResidual(get(`${f}router.weight`), d, ffnNorm);
      for (let e = 0; e < c.moe!.experts; e++) swiglu(`${f}experts.${e}.`);
      if (c.moe!.sharedDim > 0) swiglu(`${f}shared.`);
    }
    ffnNorm.data.fill(1);
  }
}
