// Hadamard rotation for Quamba-style quantization, in float64 (offline: it
// rotates weights once, at quantization time). The matrices are those of the
// native kernels (csrc/kernels/hadamard.h); the construction rule is shared,
// not the code:
//
//   n = m·p with m in {1, 12, 40} and p = 2^k (a unique decomposition).
//   S_p (Sylvester): S[i][j] = (-1)^popcount(i & j).
//   H_12 / H_20: Paley construction I with q = 11 / 19: chi the quadratic
//     character mod q (chi(0) = 0, 1 on non-zero squares, -1 otherwise),
//     Jacobsthal Q[i][j] = chi(j - i mod q), C = [[0, 1ᵀ], [-1, Q]], H = I + C.
//   H_40 = H_2 ⊗ H_20 with H_2 = [[1, 1], [1, -1]].
//   H_n = H_m ⊗ S_p: H_n[a·p + b][c·p + d] = H_m[a][c]·S_p[b][d] (H_1 = [1]).
//   T(x) = H_n·x / √n; Tᵀ(x) = H_nᵀ·x / √n is its inverse (H_12 and H_20 are
//   not symmetric). Both are orthogonal.

/** The supported sizes, in words (for messages; the native kernels use the same). */
export const hadamardSizes = '2^k, 12*2^k or 40*2^k (k >= 0: 1, 2, 4, ..., 12, 24, 48, ..., 40, 80, 160, ...)';

/** n = m·p with m in {1, 12, 40} and p a power of two, or null. */
function decompose(n: number): { m: 1 | 12 | 40; p: number } | null {
  if (!Number.isSafeInteger(n) || n <= 0) return null;
  for (const m of [1, 12, 40] as const) {
    if (n % m !== 0) continue;
    const p = n / m;
    if (Number.isInteger(Math.log2(p)) && 2 ** Math.log2(p) === p) return { m, p };
  }
  return null;
}

/** Whether the transform exists for rows of length n (n = 2^k, 12·2^k or 40·2^k). */
export function isHadamardSize(n: number): boolean {
  return decompose(n) !== null;
}

function checkSize(n: number, fn: string): { m: 1 | 12 | 40; p: number } {
  const d = decompose(n);
  if (!d) throw new RangeError(`node-mamba: ${fn}: 'n' must be ${hadamardSizes}, got ${String(n)}`);
  return d;
}

/** Paley construction I for a prime q ≡ 3 (mod 4): the ±1 matrix I + C of order q + 1, row-major. */
function paley(q: number): Int8Array {
  const chi = new Int8Array(q).fill(-1);
  chi[0] = 0;
  for (let t = 1; t < q; t++) chi[(t * t) % q] = 1;
  const m = q + 1, h = new Int8Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      const c = i === 0 ? (j === 0 ? 0 : 1) : j === 0 ? -1 : chi[(((j - i) % q) + q) % q];
      h[i * m + j] = c + (i === j ? 1 : 0);
    }
  }
  return h;
}

let h12: Int8Array | undefined, h20: Int8Array | undefined;

/** H_m (m = 1, 12 or 40), row-major. */
function smallMatrix(m: 1 | 12 | 40): Int8Array {
  if (m === 1) return Int8Array.of(1);
  if (m === 12) return (h12 ??= paley(11));
  const b = (h20 ??= paley(19)), h = new Int8Array(40 * 40);
  for (let a = 0; a < 2; a++)
    for (let c = 0; c < 2; c++)
      for (let i = 0; i < 20; i++)
        for (let j = 0; j < 20; j++) h[(a * 20 + i) * 40 + c * 20 + j] = (a & c ? -1 : 1) * b[i * 20 + j];
  return h;
}

function popcountParity(v: number): number {
  v ^= v >>> 16; v ^= v >>> 8; v ^= v >>> 4; v ^= v >>> 2; v ^= v >>> 1;
  return v & 1;
}

/**
 * H_n as n·n signs (±1, row-major), unnormalised: T(x) = H_n·x / √n. Dense,
 * so for tests and small n (n ≤ 8192).
 */
export function hadamardMatrix(n: number): Int8Array {
  const { m, p } = checkSize(n, 'hadamardMatrix');
  if (n > 8192) throw new RangeError(`node-mamba: hadamardMatrix: 'n' must be <= 8192 (the matrix is dense), got ${n}`);
  const hm = smallMatrix(m), out = new Int8Array(n * n);
  for (let a = 0; a < m; a++)
    for (let b = 0; b < p; b++) {
      const row = (a * p + b) * n;
      for (let c = 0; c < m; c++) {
        const s = hm[a * m + c];
        for (let d = 0; d < p; d++) out[row + c * p + d] = popcountParity(b & d) ? -s : s;
      }
    }
  return out;
}

/**
 * Applies T (or Tᵀ when `transpose`) in place to each of `rows` contiguous
 * rows of length n, in float64 arithmetic (a Float32Array row is computed in
 * a float64 copy and stored back rounded). Fast algorithm: a Walsh-Hadamard
 * butterfly over each length-p block of the row, then the ±1 mix of the m
 * blocks, O(n·(log2 p + m)) per row.
 */
export function hadamardRows(data: Float64Array | Float32Array, rows: number, n: number, transpose = false): void {
  const { m, p } = checkSize(n, 'hadamardRows');
  if (!(data instanceof Float64Array || data instanceof Float32Array))
    throw new TypeError("node-mamba: hadamardRows: 'data' must be a Float64Array or Float32Array");
  if (!Number.isSafeInteger(rows) || rows < 0) throw new RangeError(`node-mamba: hadamardRows: 'rows' must be an integer >= 0, got ${String(rows)}`);
  if (data.length !== rows * n)
    throw new RangeError(`node-mamba: hadamardRows: 'data' must have ${rows * n} elements (shape [${rows}, ${n}]), got ${data.length}`);
  const hm = smallMatrix(m), scale = 1 / Math.sqrt(n);
  const y = new Float64Array(n), t = new Float64Array(m);
  for (let r = 0; r < rows; r++) {
    const off = r * n;
    for (let i = 0; i < n; i++) y[i] = data[off + i];
    // S_p on each block (unnormalised butterflies).
    for (let a = 0; a < m; a++) {
      const base = a * p;
      for (let h = 1; h < p; h *= 2)
        for (let i = base; i < base + p; i += 2 * h)
          for (let j = i; j < i + h; j++) {
            const u = y[j], v = y[j + h];
            y[j] = u + v;
            y[j + h] = u - v;
          }
    }
    // H_m (or H_mᵀ) across the blocks, column by column.
    if (m === 1) {
      for (let i = 0; i < n; i++) data[off + i] = y[i] * scale;
      continue;
    }
    for (let d = 0; d < p; d++) {
      for (let a = 0; a < m; a++) {
        let s = 0;
        for (let c = 0; c < m; c++) s += (transpose ? hm[c * m + a] : hm[a * m + c]) * y[c * p + d];
        t[a] = s;
      }
      for (let a = 0; a < m; a++) data[off + a * p + d] = t[a] * scale;
    }
  }
}
