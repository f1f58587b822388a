// linear (y = x Wᵀ + b) against a float64 reference, both algorithms, every ISA.
import t, { Test } from 'tap';
import { kernels } from '../../lib';
import { forEachIsa, randn, rng, toBf16, fromBf16, toF16, fromF16 } from '../helpers/reference';
import { ATOL, RTOL, bitEqual, checkLinear, linearRef } from '../helpers/quant_blocks';

type Dt = 'f32' | 'f16' | 'bf16';

/** The tensor as the kernel receives it, and its float32 values exactly as the kernel sees them. */
function asDtype(v: Float32Array, dt: Dt): { arg: kernels.FloatData; eff: Float32Array } {
  if (dt === 'f32') return { arg: v, eff: v };
  const bits = dt === 'f16' ? toF16(v) : toBf16(v);
  return { arg: { data: bits, dtype: dt }, eff: dt === 'f16' ? fromF16(bits) : fromBf16(bits) };
}

// Tolerance (checkLinear, test/helpers/quant_blocks.ts): the kernels sum in
// float32 in an order that differs from the reference (vector lanes, K blocks,
// tree reduction), so the error is bounded relative to the sum of magnitudes,
// not to |y|: |got - ref| <= RTOL * (Σ_k |x_k w_k| + |b|) + ATOL, RTOL = 3e-6,
// ATOL = 1e-6. (K <= 1024 terms, float32 eps 6e-8; the worst case observed is
// ~0.1 of this.)
const ALGOS = ['auto', 'gemv', 'gemm'] as const;

t.test('linear matches the float64 reference: awkward shapes, f32/f16/bf16 weights, bias or not, both algorithms, every ISA', (t) => {
  const r = rng(11);
  const Ms = [1, 2, 3, 5, 8, 9, 17, 64, 129], Ns = [1, 7, 33, 100, 257], Ks = [1, 3, 15, 16, 17, 100, 769];
  let idx = 0;
  for (const M of Ms) {
    for (const N of Ns) {
      const K = Ks[idx % Ks.length];
      const withBias = idx % 2 === 0;
      idx++;
      const x = randn(r, M * K), w32 = randn(r, N * K, 0.5), b32 = randn(r, N);
      for (const dt of ['f32', 'f16', 'bf16'] as const) {
        const w = asDtype(w32, dt);
        // bias dtype cycles independently of the weight dtype
        const b = withBias ? asDtype(b32, (['bf16', 'f32', 'f16'] as const)[idx % 3]) : null;
        const ref = linearRef(x, w.eff, b ? b.eff : null, M, N, K);
        forEachIsa((isa) => {
          for (const algorithm of ALGOS) {
            const got = kernels.linear({ x, weight: w.arg, bias: b?.arg, rows: M, inFeatures: K, outFeatures: N, algorithm });
            checkLinear(t, got, ref, `M=${M} N=${N} K=${K} w=${dt} bias=${withBias} ${algorithm} ${isa}`);
          }
        });
      }
    }
  }
  t.end();
});

t.test('linear: block boundaries and threading splits (multi K/N/M blocks, M split for narrow N)', (t) => {
  const r = rng(12);
  // [M, N, K]: K and N over several 256 blocks with tails; M over several A blocks (kMC = 64 x the micro-tile rows); N narrow with many
  // rows (work split over M); large decode GEMV over many row groups; many rows and column strips (dynamic chunks of
  // strips, whose ends fall inside N blocks).
  for (const [M, N, K] of [[40, 600, 600], [300, 20, 300], [1100, 70, 300], [7, 1029, 513], [13, 33, 1024], [1, 2000, 300], [200, 700, 70]]) {
    const x = randn(r, M * K), w32 = randn(r, N * K, 0.5), b32 = randn(r, N);
    for (const dt of ['f32', 'bf16'] as const) {
      const w = asDtype(w32, dt);
      const ref = linearRef(x, w.eff, b32, M, N, K);
      forEachIsa((isa) => {
        for (const algorithm of ALGOS) {
          const got = kernels.linear({ x, weight: w.arg, bias: b32, rows: M, inFeatures: K, outFeatures: N, algorithm });
          checkLinear(t, got, ref, `M=${M} N=${N} K=${K} w=${dt} ${algorithm} ${isa}`);
        }
      });
    }
  }
  t.end();
});

t.test('linear: K = 0 gives the bias (or zeros); M = 0 or N = 0 gives an empty result', (t) => {
  const b32 = new Float32Array([1.5, -2, 3.25, 0.5, -7]);
  forEachIsa((isa) => {
    for (const algorithm of ALGOS) {
      for (const dt of ['f32', 'f16', 'bf16'] as const) {
        const b = asDtype(b32, dt);
        const got = kernels.linear({ x: new Float32Array(0), weight: new Float32Array(0), bias: b.arg, rows: 3, inFeatures: 0, outFeatures: 5, algorithm });
        t.same(Array.from(got), [...b32, ...b32, ...b32], `K=0 bias ${dt} ${algorithm} ${isa}`);
      }
      const z = kernels.linear({ x: new Float32Array(0), weight: new Float32Array(0), rows: 2, inFeatures: 0, outFeatures: 4, algorithm });
      t.same(Array.from(z), new Array(8).fill(0), `K=0 no bias ${algorithm} ${isa}`);
      const e = kernels.linear({ x: new Float32Array(0), weight: new Float32Array(12), rows: 0, inFeatures: 3, outFeatures: 4, algorithm });
      t.equal(e.length, 0, `M=0 ${algorithm} ${isa}`);
      const e2 = kernels.linear({ x: new Float32Array(6), weight: new Float32Array(0), bias: new Float32Array(0), rows: 2, inFeatures: 3, outFeatures: 0, algorithm });
      t.equal(e2.length, 0, `N=0 ${algorithm} ${isa}`);
    }
  });
  t.end();
});

t.test('linear: GEMV and GEMM agree on the same inputs, and across the auto switch (M=16 GEMV / M=17 GEMM)', (t) => {
  const r = rng(13);
  const K = 300, N = 70, T = 16; // T: largest M that 'auto' runs as GEMV (kLinearGemvMaxRows)
  const xb = randn(r, (T + 1) * K), w32 = randn(r, N * K, 0.5), b = randn(r, N);
  xb.set(xb.subarray(0, K), T * K); // last row = row 0
  const xa = xb.slice(0, T * K);
  for (const dt of ['f32', 'f16', 'bf16'] as const) {
    const w = asDtype(w32, dt);
    const refB = linearRef(xb, w.eff, b, T + 1, N, K);
    const refA = { y: refB.y.slice(0, T * N), mag: refB.mag.slice(0, T * N) };
    forEachIsa((isa) => {
      const ya = kernels.linear({ x: xa, weight: w.arg, bias: b, rows: T, inFeatures: K, outFeatures: N }); // auto: GEMV
      const yb = kernels.linear({ x: xb, weight: w.arg, bias: b, rows: T + 1, inFeatures: K, outFeatures: N }); // auto: GEMM
      checkLinear(t, ya, refA, `M=${T} auto ${dt} ${isa}`);
      checkLinear(t, yb, refB, `M=${T + 1} auto ${dt} ${isa}`);
      // the M=T result vs the first T rows of the M=T+1 result
      checkLinear(t, ya, { y: Float64Array.from(yb.subarray(0, T * N)), mag: refA.mag }, `M=${T} vs M=${T + 1} rows agree ${dt} ${isa}`);
      // the duplicated row gives the same output as row 0
      checkLinear(t, yb.subarray(T * N), { y: Float64Array.from(yb.subarray(0, N)), mag: refB.mag.subarray(0, N) }, `duplicate row ${dt} ${isa}`);
      for (const M of [1, 8, 9, T, T + 1]) {
        const x = xb.subarray(0, M * K);
        const gv = kernels.linear({ x, weight: w.arg, bias: b, rows: M, inFeatures: K, outFeatures: N, algorithm: 'gemv' });
        const gm = kernels.linear({ x, weight: w.arg, bias: b, rows: M, inFeatures: K, outFeatures: N, algorithm: 'gemm' });
        checkLinear(t, gv, { y: Float64Array.from(gm), mag: refB.mag.subarray(0, M * N) }, `gemv vs gemm M=${M} ${dt} ${isa}`);
      }
    });
  }
  t.end();
});

t.test('linear: the GEMM for a few tens of rows (x transposed, W read in place or converted) gives the blocked GEMM\'s bits', (t) => {
  // Up to 64 rows (32 at AVX2, f32 only) the GEMM path transposes x instead
  // of packing W (csrc/kernels/linear_impl.h, "GEMM for few input rows");
  // 129 rows take the blocked GEMM. Every output is the same fma chain, so
  // the first M rows of the 129-row product must be equal bit for bit. At
  // the scalar level both are the blocked GEMM. K = 1024 (f32 rows 4 KiB
  // apart) takes the converted-copy branch; K = 100 and N = 33 leave tails.
  const r = rng(15);
  const T = 129;
  for (const [N, K] of [[33, 100], [257, 768], [48, 1024], [100, 256]]) {
    const x = randn(r, T * K), w32 = randn(r, N * K, 0.5), b32 = randn(r, N);
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      const w = asDtype(w32, dt);
      forEachIsa((isa) => {
        for (const bias of [undefined, b32]) {
          const full = kernels.linear({ x, weight: w.arg, bias, rows: T, inFeatures: K, outFeatures: N, algorithm: 'gemm' });
          for (const M of [17, 24, 32, 48, 64]) {
            const got = kernels.linear({ x: x.subarray(0, M * K), weight: w.arg, bias, rows: M, inFeatures: K, outFeatures: N, algorithm: 'gemm' });
            bitEqual(t, got, full.subarray(0, M * N), `M=${M} N=${N} K=${K} ${dt} bias=${!!bias} ${isa}`);
          }
        }
      });
    }
  }
  t.end();
});

t.test('linear: the tolerance check can fail (a perturbed weight is caught)', (t) => {
  const r = rng(14);
  const M = 3, N = 5, K = 40;
  const x = randn(r, M * K), w = randn(r, N * K);
  const ref = linearRef(x, w, null, M, N, K);
  const w2 = w.slice();
  w2[K + 7] += 1e-3; // row 1, one element
  const got = kernels.linear({ x, weight: w2, rows: M, inFeatures: K, outFeatures: N });
  let bad = false;
  for (let i = 0; i < got.length; i++) if (Math.abs(got[i] - ref.y[i]) > RTOL * ref.mag[i] + ATOL) bad = true;
  t.ok(bad, 'a 1e-3 change in one weight exceeds the tolerance');
  t.end();
});

t.test('linear rejects bad input with named errors', (t) => {
  const x = new Float32Array(6), w = new Float32Array(12), b = new Float32Array(4);
  const ok = { x, weight: w, bias: b, rows: 2, inFeatures: 3, outFeatures: 4 };
  t.equal(kernels.linear(ok).length, 8, 'the valid call works');
  t.throws(() => kernels.linear({ ...ok, x: new Float32Array(5) }), { name: 'RangeError', message: /'x' must have 6 elements/ });
  t.throws(() => kernels.linear({ ...ok, weight: new Float32Array(11) }), { name: 'RangeError', message: /'weight' must have 12 elements/ });
  t.throws(() => kernels.linear({ ...ok, weight: { data: new Uint16Array(13), dtype: 'bf16' } }), { name: 'RangeError', message: /'weight'/ });
  t.throws(() => kernels.linear({ ...ok, bias: new Float32Array(3) }), { name: 'RangeError', message: /'bias' must have 4 elements/ });
  t.throws(() => kernels.linear({ ...ok, x: new Float64Array(6) as unknown as Float32Array }), { name: 'TypeError', message: /'x'/ });
  t.throws(() => kernels.linear({ ...ok, x: { data: new Uint16Array(6), dtype: 'bf16' } as unknown as Float32Array }), { name: 'TypeError', message: /'x'/ });
  t.throws(() => kernels.linear({ ...ok, weight: new Uint16Array(12) as unknown as Float32Array }), { name: 'TypeError', message: /weightDtype/ });
  t.throws(() => kernels.linear({ ...ok, weight: { data: new Uint16Array(12), dtype: 'f8' as 'f16' } }), { name: 'TypeError', message: /weightDtype/ });
  t.throws(() => kernels.linear({ ...ok, bias: { data: new Uint16Array(4), dtype: 'int4' as 'f16' } }), { name: 'TypeError', message: /biasDtype/ });
  t.throws(() => kernels.linear({ ...ok, weight: undefined as unknown as Float32Array }), { name: 'TypeError', message: /'weight' is required/ });
  t.throws(() => kernels.linear({ ...ok, rows: -1 }), { name: 'RangeError', message: /'rows'/ });
  t.throws(() => kernels.linear({ ...ok, inFeatures: 1.5 }), { name: 'TypeError', message: /'inFeatures'/ });
  t.throws(() => kernels.linear({ ...ok, outFeatures: '4' as unknown as number }), { name: 'TypeError', message: /'outFeatures'/ });
  t.throws(() => kernels.linear({ ...ok, rows: 2 ** 30, inFeatures: 2 ** 20 }), { name: 'RangeError', message: /'x' is too large/ });
  t.throws(() => kernels.linear({ ...ok, outFeatures: 2 ** 30, inFeatures: 2 ** 20 }), { name: 'RangeError', message: /'weight' is too large/ });
  // x and weight are empty (K = 0) but the output would exceed 2^40 elements
  t.throws(() => kernels.linear({ x: new Float32Array(0), weight: new Float32Array(0), rows: 2 ** 21, inFeatures: 0, outFeatures: 2 ** 20 }), { name: 'RangeError', message: /'output' is too large/ });
  t.throws(() => kernels.linear({ ...ok, algorithm: 'fast' as 'gemv' }), { name: 'TypeError', message: /'algorithm'/ });
  t.throws(() => kernels.linear({ ...ok, algorithm: 1 as unknown as 'gemv' }), { name: 'TypeError', message: /'algorithm'/ });
  t.throws(() => kernels.linear(undefined as never), { name: 'TypeError' });
  t.end();
});
