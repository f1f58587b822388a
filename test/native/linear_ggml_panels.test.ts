// q8_0 / q4_0 weights in their panel layouts (kernels.packBlockPanels, as a
// loaded model packs its q8_0 / q4_0 linear layers when inputs are rounded as
// Q8_0), read by linear({ weightLayout: 'panels', inputRounding: 'q8' }): int8
// dot products per block of 32 (exact int32 sums) scaled by both blocks' d,
// as llama.cpp's Q8_0 / Q4_0 dot products. Checked against a float64 reference on the rounded x
// (reference_model.ts roundRows: the same numbers the kernel's q·d are) and
// the exact weight values, at every ISA level, on awkward sizes: N not a
// multiple of the 16-row panel (nor of AVX2's 8-row half panels), M across
// the micro-tile heights (1..4 and past them) and past the GEMV limit, one
// block to 24 blocks per row.
//
// Tolerance as the other linear tests, 3e-6·(Σ|x'·w| + |b|) + 1e-6: only the
// float32 product of the two block scales and the float32 sum over blocks
// differ from the reference.
import t from 'tap';
import { kernels } from '../../lib';
import { forEachIsa, randn, rng } from '../helpers/reference';
import { checkLinear, dequant, firstBitDiff, linearRef, randomBlocks, withoutMinus128, type QDt } from '../helpers/quant_blocks';
import { roundRows } from '../helpers/reference_model';

/** randomBlocks' blocks, for q8_0 with q = -128 made -127 (ggml's quantizer writes -127..127; the panels refuse -128). */
function blocks(r: () => number, N: number, K: number, dt: QDt = 'q8_0'): Uint8Array {
  const data = randomBlocks(r, N, K, dt, 0.02);
  return dt === 'q8_0' ? withoutMinus128(data) : data;
}

function q8Rounded(x: Float32Array, M: number, K: number): Float32Array {
  return Float32Array.from(roundRows(Float64Array.from(x), M, K, 'q8'));
}

t.test('q8_0 / q4_0 panels match the float64 reference on the rounded x, every level and awkward sizes', (t) => {
  const r = rng(91);
  const shapes: Array<[number, number, number]> = [
    [1, 1, 32], [1, 15, 96], [1, 17, 768], [1, 100, 160], [2, 33, 64], [3, 50, 224], [4, 24, 32], [5, 8, 96],
    [7, 61, 128], [8, 40, 768], [9, 30, 96], [16, 19, 256], [17, 23, 96], [37, 70, 160], [64, 9, 64],
  ];
  let cases = 0;
  for (const dt of ['q8_0', 'q4_0'] as const) for (const [M, N, K] of shapes) {
    // Outliers (the block scales matter), a zero block, a bias every other case.
    const x = randn(r, M * K, 2);
    for (let i = 0; i < x.length; i += 41) x[i] *= 30;
    if (K >= 64) x.fill(0, 32, 64);
    const data = blocks(r, N, K, dt);
    const values = dequant(data, N, K, dt);
    const bias = cases++ % 2 ? randn(r, N) : null;
    const ref = linearRef(q8Rounded(x, M, K), values, bias, M, N, K);
    const packed = kernels.packBlockPanels({ weight: { data, dtype: dt }, outFeatures: N, inFeatures: K });
    t.equal(packed.data.length, Math.ceil(N / 16) * 16 * (K / 32) * (dt === 'q8_0' ? 34 : 18), `${dt} M=${M} N=${N} K=${K}: panels are whole 16-row panels of the rows' bytes`);
    forEachIsa((isa) => {
      const got = kernels.linear({
        x, weight: packed, ...(bias ? { bias } : {}), rows: M, inFeatures: K, outFeatures: N, inputRounding: 'q8', weightLayout: 'panels',
      });
      checkLinear(t, got, ref, `${dt} panels M=${M} N=${N} K=${K} ${isa}`);
    });
  }
  t.end();
});

t.test('q8_0 / q4_0 panels: rows are independent (row m of M rows = the M=1 call, bit for bit)', (t) => {
  const r = rng(92);
  const N = 75, K = 224;
  const x = randn(r, 16 * K, 3);
  const bias = randn(r, N);
  for (const dt of ['q8_0', 'q4_0'] as const) {
    const weight = kernels.packBlockPanels({ weight: { data: blocks(r, N, K, dt), dtype: dt }, outFeatures: N, inFeatures: K });
    forEachIsa((isa) => {
      for (const M of [2, 4, 5, 8, 16]) {
        const all = kernels.linear({ x: x.subarray(0, M * K), weight, bias, rows: M, inFeatures: K, outFeatures: N, inputRounding: 'q8', weightLayout: 'panels' });
        let firstBad = -1;
        for (let m = 0; m < M && firstBad < 0; m++) {
          const one = kernels.linear({ x: x.subarray(m * K, (m + 1) * K), weight, bias, rows: 1, inFeatures: K, outFeatures: N, inputRounding: 'q8', weightLayout: 'panels' });
          if (firstBitDiff(all.subarray(m * N, (m + 1) * N), one) >= 0) firstBad = m;
        }
        t.equal(firstBad, -1, `${dt} ${isa}: every row of M=${M} equals its M=1 result`);
      }
    });
  }
  t.end();
});

// (An infinity's block has d = inf and the infinity itself q = -127 (NaN
// clamped): the block sums are ±inf, where the rows layout's float products
// of d·q mix signs into NaN. Either way the row is not finite.)
t.test('q8_0 panels: a NaN (an infinity) in an input row makes that output row NaN (not finite), as the rows layout', (t) => {
  const r = rng(93);
  const M = 3, N = 20, K = 96;
  const data = blocks(r, N, K);
  const weight = kernels.packBlockPanels({ weight: { data, dtype: 'q8_0' }, outFeatures: N, inFeatures: K });
  for (const bad of [NaN, Infinity]) {
    const x = randn(r, M * K);
    x[K + 40] = bad;  // row 1, block 1
    forEachIsa((isa) => {
      const got = kernels.linear({ x, weight, rows: M, inFeatures: K, outFeatures: N, inputRounding: 'q8', weightLayout: 'panels' });
      const rows = kernels.linear({ x, weight: { data, dtype: 'q8_0' }, rows: M, inFeatures: K, outFeatures: N, inputRounding: 'q8' });
      const bad1 = (v: number) => (Number.isNaN(bad) ? Number.isNaN(v) : !Number.isFinite(v));
      t.ok(got.subarray(N, 2 * N).every(bad1), `${bad} ${isa}: row 1 is ${Number.isNaN(bad) ? 'NaN' : 'not finite'}`);
      t.ok([...got.subarray(0, N), ...got.subarray(2 * N)].every((v) => Number.isFinite(v)), `${bad} ${isa}: rows 0 and 2 are finite`);
      t.ok(rows.subarray(N, 2 * N).every(bad1), `${bad} ${isa}: (the rows layout agrees)`);
    });
  }
  t.end();
});

t.test('q8_0 / q4_0 panels: bad layouts, roundings, sizes and weights are refused with the argument named', (t) => {
  const r = rng(94);
  const M = 2, N = 18, K = 64;
  const x = randn(r, M * K);
  const data = blocks(r, N, K);
  const weight = kernels.packBlockPanels({ weight: { data, dtype: 'q8_0' }, outFeatures: N, inFeatures: K });
  const base = { x, rows: M, inFeatures: K, outFeatures: N };
  t.throws(() => kernels.linear({ ...base, weight, weightLayout: 'panels' }), { name: 'RangeError', message: /inputRounding/ });
  t.throws(() => kernels.linear({ ...base, weight, weightLayout: 'panels', inputRounding: 'bf16' }), { name: 'RangeError', message: /inputRounding/ });
  t.throws(() => kernels.linear({ ...base, weight: new Float32Array(N * K), weightLayout: 'panels', inputRounding: 'q8' }), { name: 'TypeError', message: /weightLayout/ });
  t.throws(() => kernels.linear({ ...base, weight: { data: new Uint8Array(N * 2 * 18 - 1), dtype: 'q4_0' }, weightLayout: 'panels', inputRounding: 'q8' }), { name: 'RangeError', message: /weight.*bytes/ });
  t.throws(() => kernels.linear({ ...base, weight: { data, dtype: 'q8_0' }, weightLayout: 'panels', inputRounding: 'q8' }), { name: 'RangeError', message: /weight.*bytes/ });
  t.throws(() => kernels.linear({ ...base, weight, weightLayout: 'tiles' as never, inputRounding: 'q8' }), { name: 'TypeError', message: /weightLayout/ });
  t.throws(() => kernels.packBlockPanels({ weight: { data: data.subarray(1), dtype: 'q8_0' }, outFeatures: N, inFeatures: K }), { name: 'RangeError', message: /weight/ });
  t.throws(() => kernels.packBlockPanels({ weight: { data, dtype: 'q8_0' }, outFeatures: N * 2, inFeatures: K / 2 + 16 }), { name: 'RangeError', message: /inFeatures/ });
  t.throws(() => kernels.packBlockPanels({ weight: { data, dtype: 'q4_0' }, outFeatures: N, inFeatures: K }), { name: 'RangeError', message: /weight.*bytes/ });
  t.throws(() => kernels.packBlockPanels({ weight: { data, dtype: 'i8' as never }, outFeatures: N, inFeatures: K }), { name: 'TypeError', message: /q8_0/ });
  // q = -128: the levels without VNNI move x's sign onto w, which -128 does not survive.
  const bad = data.slice();
  bad[34 * 3 + 2 + 7] = 0x80;
  t.throws(() => kernels.packBlockPanels({ weight: { data: bad, dtype: 'q8_0' }, outFeatures: N, inFeatures: K }), { name: 'RangeError', message: /-128/ });
  t.end();
});
