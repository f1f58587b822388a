// linear with rounded inputs (inputRounding 'bf16' | 'q8'): y = round(x) Wᵀ + b
// against a float64 reference on the rounded x (reference_model.ts roundRows,
// which emulates the float32 scale arithmetic, so the rounded values are the
// same numbers) and the exact weight values. Every ISA level: at
// 'avx512vnni' the GEMV runs on vpdpbusd (q8_0 / q4_0 weights with 'q8') and
// vdpbf16ps (bf16 weights with 'bf16', where the CPU has AVX512_BF16); every
// other combination rounds x and runs the exact kernels. Awkward sizes: odd
// block counts (the last pair of blocks half empty), K not a multiple of 32
// (a partial last block for 'q8' with float weights, masked tails for bf16),
// M across the GEMV tile and chunk heights and past the GEMV limit.
//
// Tolerance as the other linear tests, 3e-6·(Σ|x'·w| + |b|) + 1e-6: the
// rounded values are exact, so only the float32 summation (and, for the int8
// path, the float32 product of the two block scales) differs from the
// reference.
import t from 'tap';
import { kernels } from '../../lib';
import { forEachIsa, fromBf16, fromF16, randn, rng, toBf16, toF16 } from '../helpers/reference';
import { checkLinear, dequant, firstBitDiff, linearRef, randomBlocks, type QDt } from '../helpers/quant_blocks';
import { roundRows } from '../helpers/reference_model';

type Rounding = 'bf16' | 'q8';
type WDt = 'f32' | 'f16' | 'bf16' | QDt;

/** Weight of dtype dt as the kernel argument and its exact values. */
function weightOf(r: () => number, dt: WDt, N: number, K: number) {
  if (dt === 'q8_0' || dt === 'q4_0') {
    const data = randomBlocks(r, N, K, dt, 0.02);
    return { arg: { data, dtype: dt } as const, values: dequant(data, N, K, dt) };
  }
  const f = randn(r, N * K, 0.5);
  if (dt === 'f32') return { arg: f, values: Float64Array.from(f) };
  const bits = dt === 'f16' ? toF16(f) : toBf16(f);
  return { arg: { data: bits, dtype: dt } as const, values: Float64Array.from(dt === 'f16' ? fromF16(bits) : fromBf16(bits)) };
}

/** x [M, K] rounded as `mode`, as the float32 array the reference multiplies. */
function rounded(x: Float32Array, M: number, K: number, mode: Rounding): Float32Array {
  return Float32Array.from(roundRows(Float64Array.from(x), M, K, mode));
}

t.test('rounded inputs match the float64 reference on the rounded x, every weight type, algorithm and level', (t) => {
  const r = rng(71);
  const shapes: Array<[number, number, number]> = [
    [1, 37, 96], [2, 29, 64], [3, 50, 160], [5, 24, 32], [8, 61, 224], [9, 30, 96], [13, 19, 768], [16, 40, 128], [17, 23, 96],
  ];
  const oddK: Array<[number, number, number]> = [[1, 33, 45], [4, 17, 1], [8, 21, 77], [11, 9, 100]];
  let cases = 0;
  for (const mode of ['q8', 'bf16'] as const) {
    for (const dt of ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const) {
      const quant = dt === 'q8_0' || dt === 'q4_0';
      for (const [M, N, K] of quant ? shapes : [...shapes, ...oddK]) {
        // Inputs with a wide range of magnitudes per block (outliers make the
        // int8 scale matter), a zero block, and a bias on every other case.
        const x = randn(r, M * K, 2);
        for (let i = 0; i < x.length; i += 41) x[i] *= 30;
        if (K >= 64) x.fill(0, 32, 64);
        const { arg, values } = weightOf(r, dt, N, K);
        const bias = cases % 2 ? randn(r, N) : null;
        const ref = linearRef(rounded(x, M, K, mode), values, bias, M, N, K);
        forEachIsa((isa) => {
          for (const algorithm of ['gemv', 'gemm'] as const) {
            const got = kernels.linear({ x, weight: arg, ...(bias ? { bias } : {}), rows: M, inFeatures: K, outFeatures: N, algorithm, inputRounding: mode });
            checkLinear(t, got, ref, `${mode} x ${dt} M=${M} N=${N} K=${K} ${algorithm} ${isa}`);
          }
        });
        cases++;
      }
    }
  }
  t.end();
});

t.test('rounding is per row: the GEMV is batch invariant (row m of M rows = the M=1 call, bit for bit)', (t) => {
  const r = rng(72);
  const N = 75, K = 224;
  const x = randn(r, 16 * K, 3);
  for (const [mode, dt] of [['q8', 'q8_0'], ['q8', 'q4_0'], ['bf16', 'bf16'], ['q8', 'f32']] as const) {
    const { arg } = weightOf(r, dt, N, K);
    const b = randn(r, N);
    forEachIsa((isa) => {
      for (const M of [2, 7, 8, 16]) {
        const all = kernels.linear({ x: x.subarray(0, M * K), weight: arg, bias: b, rows: M, inFeatures: K, outFeatures: N, algorithm: 'gemv', inputRounding: mode });
        let firstBad = -1;
        for (let m = 0; m < M && firstBad < 0; m++) {
          const one = kernels.linear({ x: x.subarray(m * K, (m + 1) * K), weight: arg, bias: b, rows: 1, inFeatures: K, outFeatures: N, algorithm: 'gemv', inputRounding: mode });
          if (firstBitDiff(all.subarray(m * N, (m + 1) * N), one) >= 0) firstBad = m;
        }
        t.equal(firstBad, -1, `${mode} x ${dt} ${isa}: every row of M=${M} equals its M=1 result`);
      }
    });
  }
  t.end();
});

t.test('rounding changes the result (the checks can fail), none is the default, bad values are refused', (t) => {
  const r = rng(73);
  const M = 2, N = 16, K = 64;
  const x = randn(r, M * K);
  for (const [mode, dt] of [['q8', 'q8_0'], ['bf16', 'bf16']] as const) {
    const { arg, values } = weightOf(r, dt, N, K);
    const exactRef = linearRef(x, values, null, M, N, K);
    forEachIsa((isa) => {
      const got = kernels.linear({ x, weight: arg, rows: M, inFeatures: K, outFeatures: N, inputRounding: mode });
      const exact = kernels.linear({ x, weight: arg, rows: M, inFeatures: K, outFeatures: N });
      const none = kernels.linear({ x, weight: arg, rows: M, inFeatures: K, outFeatures: N, inputRounding: 'none' });
      t.equal(firstBitDiff(exact, none), -1, `${dt} ${isa}: 'none' is the default`);
      let caught = false;
      for (let i = 0; i < got.length; i++) if (Math.abs(got[i] - exactRef.y[i]) > 3e-6 * exactRef.mag[i] + 1e-6) caught = true;
      t.ok(caught, `${mode} x ${dt} ${isa}: the rounded result is outside the exact reference's tolerance`);
    });
  }
  // A NaN input is never rounded away: its block's scale is NaN.
  const xn = x.slice();
  xn[5] = NaN;
  for (const [mode, dt] of [['q8', 'q8_0'], ['q8', 'f32'], ['bf16', 'bf16']] as const) {
    const { arg } = weightOf(r, dt, N, K);
    forEachIsa((isa) => {
      for (const algorithm of ['gemv', 'gemm'] as const) {
        const got = kernels.linear({ x: xn, weight: arg, rows: M, inFeatures: K, outFeatures: N, algorithm, inputRounding: mode });
        t.ok(got.subarray(0, N).every((v) => Number.isNaN(v)) && got.subarray(N).every((v) => Number.isFinite(v)),
          `${mode} x ${dt} ${algorithm} ${isa}: a NaN in row 0 gives NaN in row 0 only`);
      }
    });
  }
  const w = new Float32Array(N * K);
  t.throws(() => kernels.linear({ x, weight: w, rows: M, inFeatures: K, outFeatures: N, inputRounding: 'q4' as never }), { name: 'TypeError', message: /inputRounding/ });
  t.throws(() => kernels.linear({ x, weight: w, rows: M, inFeatures: K, outFeatures: N, inputRounding: 1 as never }), { name: 'TypeError', message: /inputRounding/ });
  t.end();
});
