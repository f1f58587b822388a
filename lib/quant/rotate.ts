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
//     column), bias b <- T(b).
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

/** in_proj (norm folded) and out_proj of every block. */
function rotateBlocks(c: MambaConfig, w: Map<string, FloatTensor>, get: (name: string) => FloatTensor): void {
  const d = c.dModel, di = c.dInner;
  for (let i = 0; i < c.nLayer; i++) {
    const p = `backbone.layers.${i}.`, m = `${p}mixer.`;
    const norm = get(`${p}norm.weight`);
    const inProj = get(`${m}in_proj.weight`);
    const rows = inProj.shape[0];
    scaleColumns(inProj.data, rows, d, norm.data);
    rotateRows(inProj.data, rows, d);
    norm.data.fill(1);
    const outProj = get(`${m}out_proj.weight`);
    rotateRows(outProj.data, d, di);
    rotateColumns(outProj.data, d, di);
    const bias = w.get(`${m}out_proj.bias`);
    if (bias) rotateRows(bias.data, 1, d);
  }
}
