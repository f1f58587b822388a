// qlinear (W8A8, W4A8, W4A16 on the i8 / i4 formats) against a float64
// reference of the same quantized arithmetic, on every ISA level.
import t, { type Test } from 'tap';
import { kernels } from '../../lib';
import { dequantize, i4Groups, quantizeI4, quantizeI8, roundHalfEven, unpackI4, type QuantizedWeight } from '../../lib/quant/formats';
import { forEachIsa, randn, rng } from '../helpers/reference';

/** q_x as the kernel computes it: x · fround(1 / s) in float32, ties to even, clamp ±127. */
function quantizeRef(x: Float32Array, scale: number): Int8Array {
  const inv = Math.fround(1 / Math.fround(scale));
  const q = new Int8Array(x.length);
  for (let i = 0; i < x.length; i++) q[i] = Math.max(-127, Math.min(127, roundHalfEven(Math.fround(x[i] * inv))));
  return q;
}

interface Ref { y: Float64Array; mag: Float64Array }

/**
 * Reference output and, per element, the L1 size of the terms that make it
 * (Σ |product|·scale + |b|): the float32 error bound is relative to that.
 */
function reference(x: Float32Array, xScale: number, w: QuantizedWeight, b: Float32Array | null, M: number, K: number, N: number): Ref {
  const y = new Float64Array(M * N), mag = new Float64Array(M * N);
  const int8 = xScale > 0;
  const xq = int8 ? quantizeRef(x, xScale) : null;
  const G = i4Groups(K);
  const wq = w.dtype === 'i8' ? (w.data as Int8Array) : unpackI4(w.data as Uint8Array, N, K);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0, abs = 0;
      if (w.dtype === 'i8') {
        let isum = 0;
        for (let k = 0; k < K; k++) { isum += xq![m * K + k] * wq[n * K + k]; abs += Math.abs(xq![m * K + k] * wq[n * K + k]); }
        const s = Math.fround(Math.fround(xScale) * w.scales[n]);
        acc = isum * s; abs *= s;
      } else {
        for (let g = 0; g < G; g++) {
          let part = 0, pabs = 0;
          for (let k = g * 128; k < Math.min(K, g * 128 + 128); k++) {
            const xv = int8 ? xq![m * K + k] : x[m * K + k];
            part += xv * wq[n * K + k]; pabs += Math.abs(xv * wq[n * K + k]);
          }
          acc += part * w.scales[n * G + g]; abs += pabs * Math.abs(w.scales[n * G + g]);
        }
        if (int8) { acc *= Math.fround(xScale); abs *= Math.fround(xScale); }
      }
      const bv = b ? b[n] : 0;
      y[m * N + n] = acc + bv;
      mag[m * N + n] = abs + Math.abs(bv);
    }
  }
  return { y, mag };
}

// float32: W8A8's exact int32 sum is scaled by one float product (2 roundings);
// W4A8 adds ceil(K/128) scaled group sums in float32 lanes; W4A16 accumulates
// K float32 products. A relative 2e-6 of the terms' L1 size bounds the first
// two; W4A16 gets 2e-5 (K <= 1000 terms; typical error ~sqrt(K)·6e-8).
function check(t: Test, got: Float32Array, ref: Ref, tol: number, msg: string) {
  let worst = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - ref.y[i]) / (tol * ref.mag[i] + 1e-30);
    if (!(e <= worst)) { worst = Number.isNaN(e) ? Infinity : e; at = i; }
  }
  t.ok(worst <= 1, `${msg} (worst err/tol ${worst.toPrecision(3)} at ${at}: ${got[at]} vs ${ref.y[at]})`);
}

// [M, K, N]. The int8 schemes take the panel path from a few input rows on
// (panels of 16 / 8 weight rows in blocks of 32, micro-tiles of up to 8
// input rows): M around and above that, N off the panel and block sizes, K
// off the 64-element chunks and 128-element groups; [70, 1000, 19]: enough
// rows that the inputs are prepared by several tasks.
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1], [1, 7, 5], [2, 64, 8], [3, 100, 13], [4, 128, 4], [5, 200, 33], [1, 257, 9], [9, 768, 17], [17, 130, 6], [40, 320, 12],
  [3, 63, 15], [4, 1, 1], [4, 65, 17], [5, 130, 1], [8, 768, 33], [8, 63, 70], [9, 257, 15], [17, 200, 16], [33, 65, 17], [12, 130, 48],
  [70, 1000, 19],
];

t.test('qlinear W8A8 / W4A8 / W4A16 match the float64 reference on every level', (t) => {
  const r = rng(7);
  for (const [M, K, N] of SHAPES) {
    const x = randn(r, M * K), w = randn(r, N * K, 0.2), b = randn(r, N, 0.1);
    // a few outliers so that clamping at ±127 happens
    x[0] *= 30;
    const xScale = 3 / 127;
    const w8 = quantizeI8(w, N, K), w4 = quantizeI4(w, N, K);
    const cases: Array<[string, QuantizedWeight, number, number]> = [
      ['w8a8', w8, xScale, 2e-6], ['w4a8', w4, xScale, 2e-6], ['w4a16', w4, 0, 2e-5]];
    for (const [name, qw, s, tol] of cases) {
      for (const bias of [null, b]) {
        const ref = reference(x, s, qw, bias, M, K, N);
        forEachIsa((isa) => {
          const y = kernels.qlinear({ x, xScale: s, weight: qw, bias: bias ?? undefined, rows: M, inFeatures: K, outFeatures: N });
          check(t, y, ref, tol, `${name} M=${M} K=${K} N=${N} bias=${!!bias} ${isa}`);
        });
      }
    }
  }
  t.end();
});

t.test('rows are independent: each row equals a one-row call bit for bit; xq equals x', (t) => {
  const r = rng(11);
  // 13 rows: the batched paths (W4A16: weights widened once per block);
  // 8: W4A16's one pass of 8 interleaved input rows (512-bit levels);
  // 7: the decode-sized ones (W4A16: passes of 4 and 3 input rows).
  for (const M of [13, 8, 7]) {
    const K = 300, N = 21;
    const x = randn(r, M * K), w = randn(r, N * K, 0.1);
    const xScale = 4 / 127;
    forEachIsa((isa) => {
      for (const [qw, s] of [[quantizeI8(w, N, K), xScale], [quantizeI4(w, N, K), xScale], [quantizeI4(w, N, K), 0]] as const) {
        const all = kernels.qlinear({ x, xScale: s, weight: qw, rows: M, inFeatures: K, outFeatures: N });
        let same = true;
        for (let m = 0; m < M; m++) {
          const one = kernels.qlinear({ x: x.subarray(m * K, (m + 1) * K), xScale: s, weight: qw, rows: 1, inFeatures: K, outFeatures: N });
          for (let n = 0; n < N; n++) same &&= Object.is(one[n], all[m * N + n]);
        }
        t.ok(same, `${qw.dtype} xScale=${s} M=${M} ${isa}: batch invariant`);
        if (s > 0) {
          const xq = kernels.quantizeInt8({ x, rows: M, cols: K, scale: s });
          t.same(Array.from(xq), Array.from(quantizeRef(x, s)), `quantizeInt8 ${isa}`);
          const viaQ = kernels.qlinear({ xq, xScale: s, weight: qw, rows: M, inFeatures: K, outFeatures: N });
          t.same(Array.from(viaQ), Array.from(all), `${qw.dtype} xq path ${isa}`);
        }
      }
    });
  }
  t.end();
});

t.test('W4A8 gives the same bits on every level', (t) => {
  const r = rng(13);
  for (const [M, K, N] of [[1, 200, 17], [2, 257, 9], [3, 130, 33], [4, 768, 16], [9, 65, 40], [33, 300, 15]] as const) {
    const x = randn(r, M * K), w = randn(r, N * K, 0.2), b = randn(r, N, 0.1);
    x[1] *= 30;
    const w4 = quantizeI4(w, N, K);
    const outs: Array<[string, Float32Array]> = [];
    forEachIsa((isa) => {
      outs.push([isa, kernels.qlinear({ x, xScale: 3 / 127, weight: w4, bias: b, rows: M, inFeatures: K, outFeatures: N })]);
    });
    const [isa0, y0] = outs[0];
    for (const [isa, y] of outs.slice(1)) {
      let diff = -1;
      for (let i = 0; i < y.length && diff < 0; i++) if (!Object.is(y[i], y0[i])) diff = i;
      t.ok(diff < 0, `M=${M} K=${K} N=${N}: ${isa} equals ${isa0}` + (diff < 0 ? '' : ` (first difference at ${diff}: ${y[diff]} vs ${y0[diff]})`));
    }
  }
  t.end();
});

// Weights packed into panels (as a loaded model packs its W8A8 / W4A8
// layers) give the bits of the stored layout at every row count, level and
// awkward size: N off the 16-row panels, K off the 4-byte groups, 64-element
// chunks and 128-element groups, M below / at / above every micro-tile.
t.test('weightLayout panels equals rows bit for bit on every level', (t) => {
  const r = rng(17);
  const shapes: Array<[number, number, number]> = [
    ...SHAPES, [1, 768, 48], [2, 1536, 80], [1, 48, 40], [6, 2, 31], [7, 3, 16], [8, 129, 15], [10, 255, 47], [1, 0, 5], [3, 0, 17]];
  for (const [M, K, N] of shapes) {
    const x = randn(r, M * K), w = randn(r, N * K, 0.2), b = randn(r, N, 0.1);
    if (M * K > 0) x[0] *= 30;
    if (M >= 3) x[2 * K] = NaN;  // row 2 (if K > 0)
    const bf = new Float32Array(b), b16 = new Uint16Array(N).map((_, i) => Math.round(i * 97) & 0x3bff);
    for (const qw of [quantizeI8(w, N, K), quantizeI4(w, N, K)]) {
      for (const bias of [undefined, bf, b16]) {
        const outs: Array<[string, Float32Array]> = [];
        forEachIsa((isa) => {
          const base = { x, xScale: 3 / 127, weight: qw, rows: M, inFeatures: K, outFeatures: N,
            bias: bias instanceof Uint16Array ? { data: bias, dtype: 'f16' as const } : bias };
          const rows = kernels.qlinear(base);
          const packed = kernels.qlinearPackPanels({ weight: qw, outFeatures: N, inFeatures: K });
          const panels = kernels.qlinear({ ...base, weight: packed, weightLayout: 'panels' });
          let diff = -1;
          for (let i = 0; i < rows.length && diff < 0; i++) if (!Object.is(rows[i], panels[i])) diff = i;
          t.ok(diff < 0, `${qw.dtype} M=${M} K=${K} N=${N} bias=${bias?.constructor.name} ${isa}: panels equal rows` +
            (diff < 0 ? '' : ` (first difference at ${diff}: ${panels[diff]} vs ${rows[diff]})`));
          outs.push([isa, panels]);
        });
        const [isa0, y0] = outs[0];
        for (const [isa, y] of outs.slice(1)) {
          let diff = -1;
          for (let i = 0; i < y.length && diff < 0; i++) if (!Object.is(y[i], y0[i])) diff = i;
          t.ok(diff < 0, `${qw.dtype} M=${M} K=${K} N=${N} panels: ${isa} equals ${isa0}`);
        }
      }
    }
  }
  t.end();
});

t.test('a NaN input makes its row NaN in the int8 schemes', (t) => {
  const r = rng(3);
  // 3 rows: the decode-sized path; 60 rows of 1000: inputs prepared by several tasks.
  for (const [M, K, N, bad] of [[3, 70, 5, 1], [60, 1000, 7, 41]] as const) {
    const x = randn(r, M * K), w = randn(r, N * K);
    x[bad * K + 5] = NaN;
    forEachIsa((isa) => {
      for (const qw of [quantizeI8(w, N, K), quantizeI4(w, N, K)]) {
        const y = kernels.qlinear({ x, xScale: 0.05, weight: qw, rows: M, inFeatures: K, outFeatures: N });
        for (let m = 0; m < M; m++) {
          const row = Array.from(y.subarray(m * N, (m + 1) * N));
          if (m === bad) t.ok(row.every(Number.isNaN), `${qw.dtype} ${isa} M=${M}: NaN row ${m}`);
          else if (!row.every(Number.isFinite)) t.fail(`${qw.dtype} ${isa} M=${M}: row ${m} not finite`);
        }
      }
    });
  }
  t.end();
});

t.test('i8 / i4 formats: quantization, packing and partial groups', (t) => {
  const r = rng(5);
  const rows = 3, cols = 200;  // 200 = 128 + a partial group of 72; 4 chunks, the last partial
  const w = randn(r, rows * cols);
  const q4 = quantizeI4(w, rows, cols);
  t.equal(q4.data.length, rows * 4 * 32, 'i4 rows are whole 64-element chunks');
  t.equal(q4.scales.length, rows * 2, 'two groups per row');
  const d = dequantize(q4);
  for (let rr = 0; rr < rows; rr++) {
    for (let g = 0; g < 2; g++) {
      const k0 = g * 128, k1 = Math.min(cols, k0 + 128);
      let amax = 0, err = 0;
      for (let k = k0; k < k1; k++) { amax = Math.max(amax, Math.abs(w[rr * cols + k])); err = Math.max(err, Math.abs(d[rr * cols + k] - w[rr * cols + k])); }
      t.ok(Math.abs(q4.scales[rr * 2 + g] - amax * 2 / 15) <= 1e-6 * amax, `scale of row ${rr} group ${g}`);
      // round to nearest: within half a step, except the top of the range clipped at 7·s
      t.ok(err <= Math.max(q4.scales[rr * 2 + g] / 2, amax - 7 * q4.scales[rr * 2 + g]) + 1e-6, `error of row ${rr} group ${g}`);
    }
  }
  // padding nibbles hold 8 (value 0)
  const lastChunk = q4.data.subarray(3 * 32, 4 * 32);
  t.ok(Array.from(lastChunk.subarray(8, 32)).every((b) => (b & 0x0f) === 8) && Array.from(lastChunk).every((b) => b >> 4 === 8), 'padding nibbles are 8');
  const q8 = quantizeI8(w, rows, cols), d8 = dequantize(q8);
  for (let i = 0; i < w.length; i++) if (Math.abs(d8[i] - w[i]) > q8.scales[Math.floor(i / cols)] / 2 + 1e-7) { t.fail(`i8 element ${i}`); break; }
  t.end();
});

t.test('bad arguments are typed errors naming the argument', (t) => {
  const w8 = quantizeI8(new Float32Array(4 * 8).fill(0.5), 4, 8), w4 = quantizeI4(new Float32Array(4 * 8).fill(0.5), 4, 8);
  const x = new Float32Array(2 * 8);
  const base = { x, rows: 2, inFeatures: 8, outFeatures: 4 };
  t.throws(() => kernels.qlinear({ ...base, weight: w8 }), /qlinear.*xScale/, 'i8 without xScale');
  t.throws(() => kernels.qlinear({ ...base, weight: w8, xScale: -1 }), RangeError);
  t.throws(() => kernels.qlinear({ ...base, weight: { ...w8, dtype: 'q9' as 'i8' }, xScale: 1 }), TypeError);
  t.throws(() => kernels.qlinear({ ...base, weight: { ...w4, data: new Uint8Array(5) } }), /qlinear.*weight.*bytes/);
  t.throws(() => kernels.qlinear({ ...base, weight: { ...w4, scales: new Float32Array(3) } }), /weightScales/);
  t.throws(() => kernels.qlinear({ ...base, weight: { ...w8, data: new Uint8Array(32) }, xScale: 1 }), /Int8Array/);
  t.throws(() => kernels.qlinear({ ...base, x: new Float32Array(3), weight: w4 }), /'x'/);
  t.throws(() => kernels.qlinear({ ...base, x: undefined, xq: new Int8Array(16), weight: w4 }), /xScale/);
  t.throws(() => kernels.quantizeInt8({ x, rows: 2, cols: 8, scale: 0 }), RangeError);
  t.throws(() => kernels.qlinear({ ...base, weight: w8, xScale: 1, weightLayout: 'cols' as 'rows' }), /qlinear.*weightLayout/);
  const p8 = kernels.qlinearPackPanels({ weight: w8, outFeatures: 4, inFeatures: 8 });
  const p4 = kernels.qlinearPackPanels({ weight: w4, outFeatures: 4, inFeatures: 8 });
  t.equal(p8.data.length, 16 * 8, 'i8 panels: 16 rows (4 and 12 of padding) of 8 bytes');
  t.equal(p4.data.length, 16 * 32, 'i4 panels: 16 rows of one 32-byte chunk');
  t.equal(p4.scales.length, 16, 'i4 panel scales: [1 panel, 1 group, 16]');
  t.throws(() => kernels.qlinear({ ...base, weight: p4, weightLayout: 'panels' }), RangeError, 'panels need int8 inputs');
  t.throws(() => kernels.qlinear({ ...base, weight: w8, xScale: 1, weightLayout: 'panels' }), /qlinear.*weight.*panels/, 'rows passed as panels');
  t.throws(() => kernels.qlinear({ ...base, weight: { ...p4, scales: p4.scales.subarray(1) }, xScale: 1, weightLayout: 'panels' }), /weightScales/);
  t.throws(() => kernels.qlinearPackPanels({ weight: { ...w4, data: new Uint8Array(7) }, outFeatures: 4, inFeatures: 8 }), /qlinearPackPanels.*weight.*bytes/);
  t.throws(() => kernels.qlinearPackPanels({ weight: { ...w8, dtype: 'q8_0' as 'i8' }, outFeatures: 4, inFeatures: 8 }), TypeError);
  t.end();
});
