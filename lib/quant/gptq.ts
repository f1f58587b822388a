// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training
// Quantization for Generative Pre-trained Transformers", arXiv:2210.17323,
// Algorithm 1) into the i4 format of formats.ts.
//
// A linear layer y = W x, W [rows, cols], is quantized row by row to minimise
// the layer-output error ‖W X − Ŵ X‖² over calibration inputs X [cols, N]
// (paper eq. 1), whose Hessian is H = 2 X Xᵀ (the caller passes it; the
// quantizer takes H = 2/N · Σ xᵀx, a scale GPTQ does not depend on). The
// columns are quantized in order, one at a time; after column j the error it
// leaves is spread over the columns not yet quantized with the optimal
// brain surgeon update (eq. 2)
//     δ = −(w_j − quant(w_j)) / [H⁻¹]_jj · (H⁻¹)_{j,:}
// and j leaves H⁻¹ by one step of Gaussian elimination (eq. 3). Those steps
// are the rows of the upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU; paper §3,
// "Step 3: Cholesky reformulation"), so column j's step is
//     e = (w_j − q_j) / U_jj,   w_k −= e · U_jk   for every k > j.
// Lazy batch updates ("Step 2"): the columns go in blocks of `blockSize`; a
// column's update reaches only the rest of its block at once, and the columns
// after the block get the block's updates in one product, W[:, i2:] −=
// E · U[i1:i2, i2:] (E: the block's scaled errors e, [rows, block]). The
// result is the same as column by column, operation for operation.
//
// Details as in the paper's code (no act-order; Quamba's settings, see
// REFERENCE.md section 6): dead columns (H_ii = 0: the input is always zero)
// get H_ii = 1 and W_:,i = 0; dampening adds percdamp · mean(diag H) to the
// diagonal (default 0.01); H⁻¹ is formed by a Cholesky factorisation of H, and
// U is the upper Cholesky factor of H⁻¹; everything is float64.
//
// The grid is formats.ts's i4: symmetric groups of 128 along a row, scale
// s = absmax·2/15 (stored as float32) and q = clamp(round(w / s), −8, 7),
// ties to even. A group's scales are taken when its first column is reached,
// over the group's weights as the updates so far have left them (the columns
// of the group past the current block included: the block's pending updates
// are added to them first, so any blockSize gives the same result).
//
// GPTQ for the i8 format (one scale per row) is not offered: Quamba uses
// GPTQ only for its 4-bit weights (quantize() refuses recipe.gptq for w8a8).
import { I4_GROUP, i4Groups, packI4, roundHalfEven, type QuantizedWeight } from './formats';

export interface GptqOptions {
  /** Dampening, as a fraction of the mean of diag(H) added to the diagonal. Default 0.01. */
  percdamp?: number;
  /** Columns per lazy batch update. Default 128. */
  blockSize?: number;
}

/**
 * The lower Cholesky factor L (A = L Lᵀ) of the symmetric n × n matrix A
 * (row-major; only its lower triangle is read). Throws when A is not
 * positive definite.
 */
function choleskyLower(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let s = a[rj + j];
    for (let k = 0; k < j; k++) s -= l[rj + k] * l[rj + k];
    if (!(s > 0)) throw new Error(`the Hessian is not positive definite after dampening (pivot ${j} of ${n} is ${s})`);
    const d = Math.sqrt(s);
    l[rj + j] = d;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let t = a[ri + j];
      for (let k = 0; k < j; k++) t -= l[ri + k] * l[rj + k];
      l[ri + j] = t / d;
    }
  }
  return l;
}

/** U upper triangular with UᵀU = H⁻¹, for H symmetric positive definite (n × n, row-major). */
export function upperCholeskyOfInverse(h: Float64Array, n: number): Float64Array {
  const l = choleskyLower(h, n);
  // L⁻¹ (lower), row by row: row i = (e_i − Σ_{k<i} L_ik · row k) / L_ii.
  const li = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    li[ri + i] = 1;
    for (let k = 0; k < i; k++) {
      const c = l[ri + k];
      if (c === 0) continue;
      const rk = k * n;
      for (let b = 0; b <= k; b++) li[ri + b] -= c * li[rk + b];
    }
    const d = l[ri + i];
    for (let b = 0; b <= i; b++) li[ri + b] /= d;
  }
  // H⁻¹ = L⁻ᵀ L⁻¹ = Σ_k (row k of L⁻¹)ᵀ (row k of L⁻¹); lower triangle, then mirrored.
  const inv = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const rk = k * n;
    for (let a = 0; a <= k; a++) {
      const v = li[rk + a];
      if (v === 0) continue;
      const ra = a * n;
      for (let b = 0; b <= a; b++) inv[ra + b] += v * li[rk + b];
    }
  }
  for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) inv[a * n + b] = inv[b * n + a];
  // U = Lᵀ for the lower factor L of H⁻¹.
  const l2 = choleskyLower(inv, n);
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) u[j * n + i] = l2[i * n + j];
  return u;
}

/**
 * GPTQ of w [rows, cols] (row-major) into i4 (groups of 128 along cols),
 * given the Hessian of the layer's inputs, hessian [cols, cols] (row-major,
 * symmetric). Returns the layout of formats.ts quantizeI4: packed data and
 * scales [rows, ceil(cols / 128)].
 */
export function gptqQuantizeI4(w: Float32Array | ArrayLike<number>, rows: number, cols: number, hessian: Float64Array,
  opts: GptqOptions = {}): QuantizedWeight {
  if (!(Number.isInteger(rows) && rows >= 1 && Number.isInteger(cols) && cols >= 1)) throw new RangeError(`gptq: rows and cols must be positive integers, got ${rows} x ${cols}`);
  if (w.length !== rows * cols) throw new RangeError(`gptq: w holds ${w.length} values, expected ${rows} x ${cols}`);
  if (hessian.length !== cols * cols) throw new RangeError(`gptq: the Hessian holds ${hessian.length} values, expected ${cols} x ${cols}`);
  const percdamp = opts.percdamp ?? 0.01;
  const B = opts.blockSize ?? 128;
  if (!(Number.isFinite(percdamp) && percdamp >= 0)) throw new RangeError(`gptq: percdamp must be a finite number >= 0, got ${percdamp}`);
  if (!(Number.isInteger(B) && B >= 1)) throw new RangeError(`gptq: blockSize must be a positive integer, got ${B}`);

  const W = Float64Array.from(w);
  const H = Float64Array.from(hessian);
  let diagSum = 0;
  for (let i = 0; i < cols; i++) {
    const ii = i * cols + i;
    if (!Number.isFinite(H[ii])) throw new Error(`the Hessian's diagonal holds ${H[ii]} at ${i}`);
    if (H[ii] === 0) {
      // dead column: its input is always zero
      H[ii] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + i] = 0;
    }
    diagSum += H[ii];
  }
  const damp = percdamp * (diagSum / cols);
  for (let i = 0; i < cols; i++) H[i * cols + i] += damp;
  const U = upperCholeskyOfInverse(H, cols);

  const G = i4Groups(cols);
  const scales = new Float32Array(rows * G);
  const q = new Int8Array(rows * cols);
  const E = new Float64Array(rows * B);
  const s = new Float64Array(rows);  // each row's scale of the current group
  for (let i1 = 0; i1 < cols; i1 += B) {
    const i2 = Math.min(cols, i1 + B);
    for (let j = i1; j < i2; j++) {
      if (j % I4_GROUP === 0) {
        const g = j / I4_GROUP, k1 = Math.min(cols, j + I4_GROUP);
        for (let r = 0; r < rows; r++) {
          const rw = r * cols;
          let amax = 0;
          for (let c = j; c < k1; c++) {
            let v = W[rw + c];
            // columns past the block: with this block's updates so far
            if (c >= i2) for (let t = i1; t < j; t++) v -= E[r * B + (t - i1)] * U[t * cols + c];
            const a = Math.abs(v);
            if (a > amax) amax = a;
          }
          s[r] = scales[r * G + g] = Math.fround(amax * 2 / 15);
        }
      }
      const ru = j * cols, d = U[ru + j];
      for (let r = 0; r < rows; r++) {
        const rw = r * cols, wv = W[rw + j], sr = s[r];
        const qv = sr === 0 ? 0 : Math.max(-8, Math.min(7, roundHalfEven(wv / sr)));
        q[rw + j] = qv;
        const e = (wv - qv * sr) / d;
        E[r * B + (j - i1)] = e;
        if (e === 0) continue;
        for (let k = j + 1; k < i2; k++) W[rw + k] -= e * U[ru + k];
      }
    }
    // the lazy batch update of the columns after the block
    if (i2 < cols) {
      for (let r = 0; r < rows; r++) {
        const rw = r * cols;
        for (let t = i1; t < i2; t++) {
          const e = E[r * B + (t - i1)];
          if (e === 0) continue;
          const ru = t * cols;
          for (let c = i2; c < cols; c++) W[rw + c] -= e * U[ru + c];
        }
      }
    }
  }
  return { dtype: 'i4', rows, cols, data: packI4(q, rows, cols), scales };
}
