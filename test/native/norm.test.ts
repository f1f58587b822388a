// RMSNorm (fused residual) and gated RMSNorm against float64 references.
import t from 'tap';
import { kernels } from '../../lib';
import { assertClose, forEachIsa, randn, rng, silu, toBf16, fromBf16, toF16, fromF16 } from '../helpers/reference';

function rmsNormRef(x: Float32Array, res: Float32Array | null, w: ArrayLike<number>, rows: number, dim: number, eps: number) {
  const out = new Float64Array(rows * dim), r = new Float64Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) {
      const v = x[i * dim + j] + (res ? res[i * dim + j] : 0);
      r[i * dim + j] = v;
      ss += v * v;
    }
    const s = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) out[i * dim + j] = r[i * dim + j] * s * w[j];
  }
  return { out, r };
}

function gatedRef(y: Float32Array, z: Float32Array | null, w: ArrayLike<number>, rows: number, dim: number, gs: number, eps: number) {
  const out = new Float64Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    for (let g0 = 0; g0 < dim; g0 += gs) {
      let ss = 0;
      for (let j = g0; j < g0 + gs; j++) {
        const v = y[i * dim + j] * (z ? silu(z[i * dim + j]) : 1);
        out[i * dim + j] = v;
        ss += v * v;
      }
      const s = 1 / Math.sqrt(ss / gs + eps);
      for (let j = g0; j < g0 + gs; j++) out[i * dim + j] *= s * w[j];
    }
  }
  return out;
}

// Tolerance: float32 accumulation over <= 1000 terms: atol 1e-5, rtol 1e-5.
const ATOL = 1e-5, RTOL = 1e-5;

t.test('rmsNorm matches the float64 reference (all dtypes, residual or not, every ISA)', (t) => {
  const r = rng(1);
  for (const [rows, dim] of [[1, 1], [3, 7], [5, 33], [2, 768], [17, 130]]) {
    const x = randn(r, rows * dim), res = randn(r, rows * dim), w32 = randn(r, dim, 0.5);
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      const half = dt === 'f16' ? toF16(w32) : dt === 'bf16' ? toBf16(w32) : null;
      const wEff = dt === 'f16' ? fromF16(half!) : dt === 'bf16' ? fromBf16(half!) : w32;
      const weight = half ? { data: half, dtype: dt as 'f16' | 'bf16' } : w32;
      for (const withRes of [false, true]) {
        const ref = rmsNormRef(x, withRes ? res : null, wEff, rows, dim, 1e-5);
        forEachIsa((isa) => {
          const got = kernels.rmsNorm({ x, residual: withRes ? res : undefined, weight, rows, dim });
          assertClose(t, got.out, ref.out, ATOL, RTOL, `out ${rows}x${dim} ${dt} res=${withRes} ${isa}`);
          assertClose(t, got.residual, ref.r, 1e-6, 1e-6, `residual ${rows}x${dim} ${dt} res=${withRes} ${isa}`);
        });
      }
    }
  }
  t.end();
});

t.test('gatedRmsNorm matches the float64 reference (groups, no gate, every ISA)', (t) => {
  const r = rng(2);
  for (const [rows, dim, gs] of [[1, 8, 8], [3, 12, 4], [4, 96, 32], [7, 250, 125], [2, 1536, 1536], [2, 1024, 128]]) {
    const y = randn(r, rows * dim), z = randn(r, rows * dim, 2), w32 = randn(r, dim);
    const wb = toBf16(w32);
    for (const [weight, wEff] of [[w32, w32], [{ data: wb, dtype: 'bf16' as const }, fromBf16(wb)]] as const) {
      for (const gate of [true, false]) {
        const ref = gatedRef(y, gate ? z : null, wEff, rows, dim, gs, 1e-5);
        forEachIsa((isa) => {
          const got = kernels.gatedRmsNorm({ y, z: gate ? z : undefined, weight, rows, dim, groupSize: gs });
          assertClose(t, got, ref, ATOL, RTOL, `gated ${rows}x${dim}/${gs} gate=${gate} ${isa}`);
        });
      }
    }
  }
  t.end();
});

t.test('norm kernels reject bad input with named errors', (t) => {
  const x = new Float32Array(6), w = new Float32Array(3);
  t.throws(() => kernels.rmsNorm({ x, weight: w, rows: 2, dim: 4 }), { name: 'RangeError', message: /'x' must have 8 elements/ });
  t.throws(() => kernels.rmsNorm({ x, weight: new Float32Array(2), rows: 2, dim: 3 }), { name: 'RangeError', message: /'weight'/ });
  t.throws(() => kernels.rmsNorm({ x: new Float64Array(6) as unknown as Float32Array, weight: w, rows: 2, dim: 3 }), { name: 'TypeError', message: /'x'/ });
  t.throws(() => kernels.rmsNorm({ x, weight: w, rows: -2, dim: 3 }), { name: 'RangeError', message: /'rows'/ });
  t.throws(() => kernels.rmsNorm({ x, weight: w, rows: 2 ** 40, dim: 2 ** 20 }), { name: 'RangeError' });
  t.throws(() => kernels.rmsNorm({ x, weight: w, rows: 1.5, dim: 3 }), { name: 'TypeError', message: /'rows'/ });
  t.throws(() => kernels.rmsNorm({ x, weight: { data: new Uint16Array(3), dtype: 'f8' as 'f16' }, rows: 2, dim: 3 }), { name: 'TypeError', message: /weightDtype/ });
  t.throws(() => kernels.rmsNorm({ x, residual: new Float32Array(5), weight: w, rows: 2, dim: 3 }), { name: 'RangeError', message: /'residual'/ });
  t.throws(() => kernels.rmsNorm(undefined as never), { name: 'TypeError' });
  t.throws(() => kernels.gatedRmsNorm({ y: x, weight: w, rows: 2, dim: 3, groupSize: 2 }), { name: 'RangeError', message: /groupSize/ });
  t.end();
});
