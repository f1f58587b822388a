// Hadamard transform and fused int8 quantization against the dense float64
// matrix (lib/quant/hadamard.ts hadamardMatrix), which is itself checked here
// against the definition and for H·Hᵀ = n·I.
import t from 'tap';
import { kernels } from '../../lib';
import { hadamardMatrix, hadamardRows } from '../../lib/quant/hadamard';
import { forEachIsa, randn, rng } from '../helpers/reference';

const U = 2 ** -24; // float32 unit roundoff

function split(n: number): { m: number; p: number } {
  for (const m of [1, 12, 40]) {
    const p = n / m;
    if (Number.isInteger(p) && (p & (p - 1)) === 0) return { m, p };
  }
  throw new Error(`not a Hadamard size: ${n}`);
}

/**
 * Roundings an output goes through: log2 p butterfly levels, the chain of the
 * m-block mix (11 additions for H_12; 19 for H_20 plus the H_2 butterfly for
 * H_40; none for m = 1), and the 1/√n scale, plus one.
 */
function depth(n: number): number {
  const { m, p } = split(n);
  return Math.log2(p) + (m === 1 ? 0 : m === 12 ? 11 : 20) + 2;
}

/**
 * Tolerance of the float32 transform of a row: 4·u·√depth·max|x|. Each output
 * is a ±1 sum of the inputs over √n, formed through `depth` roundings of
 * partial sums that, after the 1/√n scale, are of the order of max|x|; the
 * rounding errors add up like a random walk (√depth). Measured on random
 * normal rows, every size: at most ≈0.23 of this bound.
 */
function rowTol(x: ArrayLike<number>, off: number, n: number, d = depth(n)): number {
  let mx = 0;
  for (let i = 0; i < n; i++) mx = Math.max(mx, Math.abs(x[off + i]));
  return 4 * U * Math.sqrt(d) * mx;
}

/** y = H·x / √n (or Hᵀ) in float64, dense; rows of x at stride `stride`. */
function denseRef(h: Int8Array, x: ArrayLike<number>, rows: number, n: number, stride: number, transpose: boolean): Float64Array {
  const y = new Float64Array(rows * n), s = 1 / Math.sqrt(n);
  for (let r = 0; r < rows; r++) {
    const xo = r * stride, yo = r * n;
    if (transpose) {
      // y = Σ_j x_j·(row j of H), reading H row by row
      for (let j = 0; j < n; j++) {
        const xj = x[xo + j], ho = j * n;
        for (let i = 0; i < n; i++) y[yo + i] += h[ho + i] * xj;
      }
      for (let i = 0; i < n; i++) y[yo + i] *= s;
    } else {
      for (let i = 0; i < n; i++) {
        let acc = 0;
        for (let j = 0, ho = i * n; j < n; j++) acc += h[ho + j] * x[xo + j];
        y[yo + i] = acc * s;
      }
    }
  }
  return y;
}

/** x of [rows, stride] with the gaps NaN (a kernel that read them would produce NaN). */
function stridedInput(r: () => number, rows: number, n: number, stride: number, scale = 1): Float32Array {
  const x = new Float32Array(rows * stride).fill(NaN), v = randn(r, rows * n, scale);
  for (let i = 0; i < rows; i++) x.set(v.subarray(i * n, (i + 1) * n), i * stride);
  return x;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (ua.length !== ub.length) return false;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

// Legendre symbol by Euler's criterion (a^((q-1)/2) mod q), independent of
// the square table lib/quant uses.
function legendre(a: number, q: number): number {
  a = ((a % q) + q) % q;
  if (a === 0) return 0;
  let r = 1;
  for (let e = 0; e < (q - 1) / 2; e++) r = (r * a) % q;
  return r === 1 ? 1 : -1;
}

t.test('hadamardMatrix follows the definition (Paley I for H_12 / H_20, H_40 = H_2 ⊗ H_20, ⊗ Sylvester)', (t) => {
  const paley = (q: number, i: number, j: number) =>
    (i === j ? 1 : 0) + (i === 0 ? (j === 0 ? 0 : 1) : j === 0 ? -1 : legendre(j - i, q));
  const hm = (m: number, a: number, c: number): number => {
    if (m === 1) return 1;
    if (m === 12) return paley(11, a, c);
    const s2 = Math.floor(a / 20) & Math.floor(c / 20) ? -1 : 1;
    return s2 * paley(19, a % 20, c % 20);
  };
  const popParity = (v: number) => { let p = 0; for (; v; v &= v - 1) p ^= 1; return p; };
  for (const n of [1, 2, 8, 12, 24, 40, 80, 96]) {
    const { m, p } = split(n), h = hadamardMatrix(n);
    let bad = 0;
    for (let a = 0; a < m; a++) for (let b = 0; b < p; b++) for (let c = 0; c < m; c++) for (let d = 0; d < p; d++) {
      const want = hm(m, a, c) * (popParity(b & d) ? -1 : 1);
      if (h[(a * p + b) * n + c * p + d] !== want) bad++;
    }
    t.equal(bad, 0, `n = ${n}: every entry is H_m[a][c]·S_p[b][d]`);
  }
  const h12 = hadamardMatrix(12);
  t.same(Array.from(h12.subarray(0, 12)), new Array(12).fill(1), 'H_12 row 0 is all ones (I + C)');
  t.same(Array.from({ length: 12 }, (_, i) => h12[i * 12]), [1, ...new Array(11).fill(-1)], 'H_12 column 0 is 1 then -1s');
  let sym = true;
  for (let i = 0; i < 12; i++) for (let j = 0; j < 12; j++) if (h12[i * 12 + j] !== h12[j * 12 + i]) sym = false;
  t.notOk(sym, 'H_12 is not symmetric (so T and Tᵀ differ)');
  t.end();
});

t.test('H·Hᵀ = n·I', (t) => {
  for (const n of [1, 2, 4, 8, 12, 24, 40, 48, 80, 96, 160, 256, 320, 384, 768]) {
    const h = hadamardMatrix(n);
    let bad = 0;
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        let s = 0;
        for (let k = 0, a = i * n, b = j * n; k < n; k++) s += h[a + k] * h[b + k];
        if (s !== (i === j ? n : 0)) bad++;
      }
    }
    t.equal(bad, 0, `n = ${n}`);
  }
  t.end();
});

const SIZES = [1, 2, 4, 8, 12, 24, 40, 48, 80, 96, 160, 256, 768, 1536, 2560, 5120];

t.test('hadamard matches the dense float64 transform, both directions, strided rows, every ISA (bit-identical across levels)', (t) => {
  const r = rng(7);
  let worst = 0;
  for (const n of SIZES) {
    const h = hadamardMatrix(n);
    for (const rows of [1, 3, 17]) {
      const stride = n + 1 + (rows % 5);
      const x = stridedInput(r, rows, n, stride, rows === 3 ? 50 : 1);
      for (const transpose of [false, true]) {
        const ref = denseRef(h, x, rows, n, stride, transpose);
        let first: Float32Array | null = null, firstIsa = '';
        forEachIsa((isa) => {
          const got = kernels.hadamard({ x, rows, n, transpose, xStride: stride });
          t.equal(got.length, rows * n);
          let ratio = 0, at = -1;
          for (let i = 0; i < rows; i++) {
            const tol = rowTol(x, i * stride, n);
            for (let j = 0; j < n; j++) {
              const e = Math.abs(got[i * n + j] - ref[i * n + j]) / tol;
              if (!(e <= ratio)) { ratio = Number.isNaN(e) ? Infinity : e; at = i * n + j; }
            }
          }
          worst = Math.max(worst, ratio);
          if (ratio > 1) t.fail(`n=${n} rows=${rows} T${transpose ? 'ᵀ' : ''} ${isa}: err/tol ${ratio} at ${at}: ${got[at]} vs ${ref[at]}`);
          if (first === null) { first = got; firstIsa = isa; }
          else if (!sameBits(got, first)) t.fail(`n=${n} rows=${rows} T${transpose ? 'ᵀ' : ''}: ${isa} differs from ${firstIsa} in some bits`);
        });
      }
    }
  }
  t.ok(worst <= 1, `every element within 4·u·√depth·max|x_row| (worst err/tol ${worst.toFixed(3)})`);
  t.end();
});

t.test('Tᵀ(T(x)) = x; inPlace writes into x and leaves the gaps alone', (t) => {
  const r = rng(8);
  for (const n of [1, 4, 12, 40, 96, 768, 2560, 5120]) {
    const rows = 5, stride = n + 3;
    const x = stridedInput(r, rows, n, stride, 3);
    forEachIsa((isa) => {
      const y = kernels.hadamard({ x, rows, n, xStride: stride });
      const z = kernels.hadamard({ x: y, rows, n, transpose: true });
      let ratio = 0;
      for (let i = 0; i < rows; i++) {
        const tol = rowTol(x, i * stride, n, 2 * depth(n));
        for (let j = 0; j < n; j++) ratio = Math.max(ratio, Math.abs(z[i * n + j] - x[i * stride + j]) / tol);
      }
      t.ok(ratio <= 1, `n=${n} ${isa}: Tᵀ(T(x)) = x (err/tol ${ratio.toFixed(3)})`);

      const w = x.slice();
      const ret = kernels.hadamard({ x: w, rows, n, xStride: stride, inPlace: true });
      t.equal(ret, w, 'inPlace returns x itself');
      let same = true, gaps = true;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < n; j++) if (!Object.is(w[i * stride + j], y[i * n + j])) same = false;
        for (let j = n; j < stride; j++) if (!Number.isNaN(w[i * stride + j])) gaps = false;
      }
      t.ok(same, `n=${n} ${isa}: in place gives the out-of-place bits`);
      t.ok(gaps, `n=${n} ${isa}: the gaps between rows are untouched`);
    });
  }
  t.end();
});

/** Round half to even. */
function rne(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

t.test('hadamardQuantize = clamp(rne(T(x)·fround(1/scale)), ±127) except at near-ties, every ISA', (t) => {
  const r = rng(9);
  let checked = 0, nearTies = 0, flips = 0, saturated = 0, worstWindow = 0;
  for (const n of SIZES) {
    const h = hadamardMatrix(n);
    for (const rows of [1, 3, 17]) {
      const stride = n + (rows === 17 ? 7 : 0);
      const x = stridedInput(r, rows, n, stride, 2);
      const ref = denseRef(h, x, rows, n, stride, false);
      // About 1% of |T(x)| beyond 127 steps: saturation is exercised.
      let amax = 0;
      for (const v of ref) amax = Math.max(amax, Math.abs(v));
      const scale = amax > 0 ? amax / 140 : 1, inv = Math.fround(1 / scale);
      let first: Int8Array | null = null;
      forEachIsa((isa) => {
        const got = kernels.hadamardQuantize({ x, rows, n, scale, xStride: stride });
        t.equal(got.length, rows * n);
        let bad = 0, msg = '';
        for (let i = 0; i < rows; i++) {
          // A float32 transform within rowTol, times inv, then the float32
          // product (2u relative): a value this close to a .5 tie may round
          // either way. 1e-4 unless the transform's own bound is larger.
          const window = Math.max(1e-4, rowTol(x, i * stride, n) * inv + 4 * U * 140);
          worstWindow = Math.max(worstWindow, window);
          for (let j = 0; j < n; j++) {
            const v = ref[i * n + j] * inv, want = Math.max(-127, Math.min(127, rne(v)));
            const g = got[i * n + j], nearTie = Math.abs(Math.abs(v - Math.floor(v)) - 0.5) < window;
            if (first === null) { checked++; if (nearTie) nearTies++; if (Math.abs(v) > 127.5) saturated++; if (g !== want) flips++; }
            if (g !== want && !(nearTie && Math.abs(g - want) === 1)) {
              bad++;
              if (!msg) msg = ` first at row ${i} col ${j}: ${g} vs ${want} (ref ${v})`;
            }
          }
        }
        if (bad) t.fail(`n=${n} rows=${rows} ${isa}: ${bad} elements differ${msg}`);
        if (first === null) first = got;
        else if (Buffer.compare(Buffer.from(got.buffer), Buffer.from(first.buffer)) !== 0) t.fail(`n=${n} rows=${rows}: ${isa} differs from the first level`);
      });
    }
  }
  t.ok(saturated > 0, `${saturated} of ${checked} values saturate at ±127`);
  t.pass(`${checked} values: ${nearTies} within the tie window (at most ${worstWindow.toExponential(2)}), ${flips} rounded the other way`);
  t.end();
});

t.test('hadamardQuantize: exact ties round half to even, saturation, NaN rows give 0, ±Infinity saturates', (t) => {
  forEachIsa((isa) => {
    // n = 4: T(k·e_0) = ±k/2 exactly, so odd k gives exact ties.
    const x = Float32Array.from([1, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, -7, 0, 0, 0]);
    const q = kernels.hadamardQuantize({ x, rows: 4, n: 4, scale: 1 });
    t.same(Array.from(q), [0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, -4, -4, -4, -4], `${isa}: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -3.5 -> -4`);
    const big = kernels.hadamardQuantize({ x: Float32Array.from([1e6, 0, 0, 0]), rows: 1, n: 4, scale: 1 });
    t.same(Array.from(big), [127, 127, 127, 127], `${isa}: saturates at 127`);
    const neg = kernels.hadamardQuantize({ x: Float32Array.from([0, -1e30, 0, 0]), rows: 1, n: 4, scale: 1e-3 });
    t.same(Array.from(neg), [-127, 127, -127, 127], `${isa}: saturates at -127 (column 1 of S_4 is +-+-)`);

    // NaN anywhere in a row: that row all zeros, the others unaffected.
    for (const n of [12, 40, 64, 1536]) {
      const r = rng(n);
      const xs = randn(r, 3 * n);
      const clean = kernels.hadamardQuantize({ x: xs, rows: 3, n, scale: 0.01 });
      xs[n + (n >> 1)] = NaN;
      const got = kernels.hadamardQuantize({ x: xs, rows: 3, n, scale: 0.01 });
      t.ok(got.subarray(n, 2 * n).every((v) => v === 0), `n=${n} ${isa}: a row with a NaN quantizes to zeros`);
      t.same(Array.from(got.subarray(0, n)), Array.from(clean.subarray(0, n)), `n=${n} ${isa}: row before untouched`);
      t.same(Array.from(got.subarray(2 * n)), Array.from(clean.subarray(2 * n)), `n=${n} ${isa}: row after untouched`);
      const f = kernels.hadamard({ x: xs, rows: 3, n });
      t.ok(f.subarray(n, 2 * n).every(Number.isNaN), `n=${n} ${isa}: its float transform is all NaN`);

      // One +Infinity at column c: every output is ±Infinity with the sign of H[i][c].
      const xi = new Float32Array(n).fill(0.5), c = n - 3;
      xi[c] = Infinity;
      const qi = kernels.hadamardQuantize({ x: xi, rows: 1, n, scale: 1 });
      const h = hadamardMatrix(n);
      t.ok(qi.every((v, i) => v === 127 * h[i * n + c]), `n=${n} ${isa}: +Infinity saturates to 127·H[i][c]`);
    }
  });
  t.end();
});

t.test('prefill-sized calls (512 rows, threaded) match the float64 fast transform', (t) => {
  const r = rng(10);
  for (const n of [1536, 2560]) {
    const rows = 512, x = randn(r, rows * n);
    const ref = Float64Array.from(x);
    hadamardRows(ref, rows, n);
    const scale = 4 / 127, inv = Math.fround(1 / scale);
    forEachIsa((isa) => {
      const y = kernels.hadamard({ x, rows, n });
      const q = kernels.hadamardQuantize({ x, rows, n, scale });
      let ratio = 0, bad = 0;
      for (let i = 0; i < rows; i++) {
        const tol = rowTol(x, i * n, n), window = Math.max(1e-4, tol * inv + 4 * U * 127);
        for (let j = 0; j < n; j++) {
          const k = i * n + j;
          ratio = Math.max(ratio, Math.abs(y[k] - ref[k]) / tol);
          const v = ref[k] * inv, want = Math.max(-127, Math.min(127, rne(v)));
          if (q[k] !== want && !(Math.abs(Math.abs(v - Math.floor(v)) - 0.5) < window && Math.abs(q[k] - want) === 1)) bad++;
        }
      }
      t.ok(ratio <= 1, `n=${n} ${isa}: float transform (err/tol ${ratio.toFixed(3)})`);
      t.equal(bad, 0, `n=${n} ${isa}: quantized values`);
    });
  }
  t.end();
});

t.test('hadamard kernels reject unsupported sizes and bad arguments with named errors', (t) => {
  const sizes = /must be 2\^k, 12\*2\^k or 40\*2\^k/;
  for (const n of [0, 3, 5, 6, 20, 36, 60, 100, 120, 1000, 3072 + 12]) {
    const x = new Float32Array(Math.max(n, 0));
    t.throws(() => kernels.hadamard({ x, rows: 1, n }), { name: 'RangeError', message: sizes }, `hadamard n = ${n}`);
    t.throws(() => kernels.hadamardQuantize({ x, rows: 1, n, scale: 1 }), { name: 'RangeError', message: sizes }, `hadamardQuantize n = ${n}`);
  }
  t.throws(() => kernels.hadamard({ x: new Float32Array(4), rows: 1, n: 36 }), { name: 'RangeError', message: /node-mamba: hadamard: argument 'n' .*got 36/ });
  const x = new Float32Array(24);
  t.throws(() => kernels.hadamard({ x, rows: 3, n: 12 }), { name: 'RangeError', message: /hadamard: argument 'x' must have 36 elements \(shape \[3, 12\]\), got 24/ });
  t.throws(() => kernels.hadamard({ x, rows: 2, n: 12, xStride: 13 }), { name: 'RangeError', message: /'x' must have 26 elements/ });
  t.throws(() => kernels.hadamard({ x, rows: 2, n: 12, xStride: 11 }), { name: 'RangeError', message: /'xStride'/ });
  t.throws(() => kernels.hadamard({ x, rows: -1, n: 12 }), { name: 'RangeError', message: /'rows'/ });
  t.throws(() => kernels.hadamard({ x, rows: 2, n: 12.5 }), { name: 'TypeError', message: /'n'/ });
  t.throws(() => kernels.hadamard({ x, rows: 2 } as never), { name: 'TypeError', message: /'n' is required/ });
  t.throws(() => kernels.hadamard({ x: new Float64Array(24) as unknown as Float32Array, rows: 2, n: 12 }), { name: 'TypeError', message: /'x'/ });
  t.throws(() => kernels.hadamard({ rows: 2, n: 12 } as never), { name: 'TypeError', message: /'x' is required/ });
  t.throws(() => kernels.hadamard({ x, rows: 2, n: 12, transpose: 1 as unknown as boolean }), { name: 'TypeError', message: /'transpose'/ });
  t.throws(() => kernels.hadamard({ x, rows: 2, n: 12, inPlace: 'yes' as unknown as boolean }), { name: 'TypeError', message: /'inPlace'/ });
  t.throws(() => kernels.hadamard(undefined as never), { name: 'TypeError', message: /hadamard: expected one options object/ });

  const q = (scale: unknown) => () => kernels.hadamardQuantize({ x, rows: 2, n: 12, scale: scale as number });
  t.throws(q(0), { name: 'RangeError', message: /hadamardQuantize: argument 'scale' must be > 0/ });
  t.throws(q(-1), { name: 'RangeError', message: /'scale' must be > 0/ });
  t.throws(q(NaN), { name: 'RangeError', message: /'scale' must be finite/ });
  t.throws(q(Infinity), { name: 'RangeError', message: /'scale' must be finite/ });
  t.throws(q(1e-40), { name: 'RangeError', message: /'scale' must have a finite, non-zero float32 reciprocal/ });
  t.throws(q(1e300), { name: 'RangeError', message: /'scale' must have a finite, non-zero float32 reciprocal/ });
  t.throws(q('1'), { name: 'TypeError', message: /'scale' must be a number/ });
  t.throws(q(undefined), { name: 'TypeError', message: /'scale' is required/ });
  t.throws(() => kernels.hadamardQuantize({ x: new Float32Array(25), rows: 2, n: 12, scale: 1 }), { name: 'RangeError', message: /hadamardQuantize: argument 'x' must have 24 elements/ });

  t.same(kernels.hadamard({ x: new Float32Array(0), rows: 0, n: 12 }).length, 0, 'zero rows is an empty result');
  t.same(kernels.hadamardQuantize({ x: new Float32Array(0), rows: 0, n: 40, scale: 1 }).length, 0, 'zero rows (quantize)');
  t.end();
});
