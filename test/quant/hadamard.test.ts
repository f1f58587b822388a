// The offline (float64) Hadamard rotation against the dense matrix.
import t from 'tap';
import { hadamardMatrix, hadamardRows, hadamardSizes, isHadamardSize } from '../../lib/quant/hadamard';
import { randn, rng } from '../helpers/reference';

function dense(h: Int8Array, x: ArrayLike<number>, rows: number, n: number, transpose: boolean): Float64Array {
  const y = new Float64Array(rows * n), s = 1 / Math.sqrt(n);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let j = 0; j < n; j++) acc += (transpose ? h[j * n + i] : h[i * n + j]) * x[r * n + j];
      y[r * n + i] = acc * s;
    }
  return y;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
}

t.test('isHadamardSize', (t) => {
  const yes = [1, 2, 4, 1024, 2 ** 30, 12, 24, 768, 1536, 3072, 40, 80, 2560, 5120, 10240];
  const no = [0, -4, 3, 5, 6, 20, 36, 60, 120, 1000, 1.5, NaN, Infinity, 12 * 3, 40 * 5, 2 ** 53 + 2];
  for (const n of yes) t.ok(isHadamardSize(n), `${n} is supported`);
  for (const n of no) t.notOk(isHadamardSize(n), `${n} is not`);
  t.match(hadamardSizes, /12\*2\^k/);
  t.end();
});

t.test('hadamardRows matches the dense matrix in float64 (1e-12), both directions', (t) => {
  const r = rng(21);
  for (const n of [1, 2, 4, 8, 12, 24, 40, 48, 80, 160, 256, 384, 768, 1280]) {
    const h = hadamardMatrix(n), rows = 3;
    const x = Float64Array.from(randn(r, rows * n, 10), (v) => v + (r() - 0.5) * 1e-3); // not float32 values
    for (const transpose of [false, true]) {
      const ref = dense(h, x, rows, n, transpose);
      const y = x.slice();
      hadamardRows(y, rows, n, transpose);
      // Sums of n terms of magnitude ~10/√n: rounding ~1e-15.
      t.ok(maxAbsDiff(y, ref) < 1e-12, `n=${n} transpose=${transpose} (max err ${maxAbsDiff(y, ref).toExponential(2)})`);
    }
    const back = x.slice();
    hadamardRows(back, rows, n);
    hadamardRows(back, rows, n, true);
    t.ok(maxAbsDiff(back, x) < 1e-12, `n=${n}: the transpose is the inverse`);
    let ss0 = 0, ss1 = 0;
    const y = x.slice();
    hadamardRows(y, rows, n);
    for (let i = 0; i < x.length; i++) { ss0 += x[i] * x[i]; ss1 += y[i] * y[i]; }
    t.ok(Math.abs(ss1 - ss0) <= 1e-12 * ss0, `n=${n}: norms are kept`);
  }
  t.end();
});

t.test('hadamardRows on a Float32Array: float64 inside, rounded once when stored', (t) => {
  const r = rng(22);
  for (const n of [12, 40, 64, 1536]) {
    const rows = 2, x = randn(r, rows * n);
    const ref = Float64Array.from(x);
    hadamardRows(ref, rows, n);
    const y = x.slice();
    hadamardRows(y, rows, n);
    t.ok(y.every((v, i) => v === Math.fround(ref[i])), `n=${n}: each value is the float64 result rounded to float32`);
  }
  t.end();
});

t.test('hadamardRows and hadamardMatrix reject bad arguments', (t) => {
  t.throws(() => hadamardRows(new Float64Array(36), 1, 36), { name: 'RangeError', message: /hadamardRows: 'n' must be 2\^k, 12\*2\^k or 40\*2\^k .*got 36/ });
  t.throws(() => hadamardRows(new Float64Array(23), 2, 12), { name: 'RangeError', message: /'data' must have 24 elements/ });
  t.throws(() => hadamardRows(new Float64Array(24), -2, 12), { name: 'RangeError', message: /'rows'/ });
  t.throws(() => hadamardRows([1, 2] as unknown as Float64Array, 1, 2), { name: 'TypeError', message: /'data'/ });
  t.throws(() => hadamardMatrix(20), { name: 'RangeError', message: /hadamardMatrix: 'n' must be/ });
  t.throws(() => hadamardMatrix(16384), { name: 'RangeError', message: /dense/ });
  t.end();
});
