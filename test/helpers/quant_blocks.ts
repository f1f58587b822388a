// For the linear tests (linear.test.ts, linear_quant.test.ts,
// linear_rounding.test.ts): ggml block-quantized weights (random blocks, exact
// dequantisation), the float64 reference linear and its tolerance check.
//
// Block formats (ggml, little-endian, 32 weights along a row):
//   q8_0: fp16 d, 32 × int8 q            (34 bytes)  value = d · q
//   q4_0: fp16 d, 16 bytes, byte j holds weight j (low nibble) and j + 16
//         (high nibble)                  (18 bytes)  value = d · (nibble − 8)
import type { Test } from 'tap';
import { toF16, fromF16 } from './reference';

export type QDt = 'q8_0' | 'q4_0';
export const QDTS: QDt[] = ['q8_0', 'q4_0'];
export const BLOCK_BYTES: Record<QDt, number> = { q8_0: 34, q4_0: 18 };
export const ALGOS = ['auto', 'gemv', 'gemm'] as const;

const f16One = new Uint16Array(1);
export function halfValue(bits: number): number {
  f16One[0] = bits;
  return fromF16(f16One)[0];
}

/** Exact dequantisation of [rows, K] blocks (every value is exact in float32 too). */
export function dequant(bytes: Uint8Array, rows: number, K: number, dt: QDt): Float64Array {
  const out = new Float64Array(rows * K), bb = BLOCK_BYTES[dt], nb = K / 32;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const o = (r * nb + b) * bb, d = halfValue(bytes[o] | (bytes[o + 1] << 8)), y = r * K + b * 32;
      for (let j = 0; j < 32; j++) {
        if (dt === 'q8_0') {
          const q = bytes[o + 2 + j];
          out[y + j] = d * (q >= 128 ? q - 256 : q);
        } else {
          const byte = bytes[o + 2 + (j & 15)];
          out[y + j] = d * ((j < 16 ? byte & 15 : byte >> 4) - 8);
        }
      }
    }
  }
  return out;
}

/** q8_0 quants of -128 made -127, in place (ggml's quantizer writes -127..127; the panel layouts refuse -128). */
export function withoutMinus128(data: Uint8Array): Uint8Array {
  for (let i = 0; i < data.length; i++) if (i % BLOCK_BYTES.q8_0 >= 2 && data[i] === 0x80) data[i] = 0x81;
  return data;
}

/**
 * Random raw blocks: every int8 / nibble value, scales of both signs around
 * `scale`, and a few special scales (0, fp16 subnormals, exact powers of two).
 */
export function randomBlocks(r: () => number, rows: number, K: number, dt: QDt, scale: number): Uint8Array {
  const bb = BLOCK_BYTES[dt], nblocks = rows * (K / 32);
  const out = new Uint8Array(nblocks * bb);
  const dv = new Float32Array(1);
  for (let i = 0; i < nblocks; i++) {
    const o = i * bb, u = r();
    let h: number;
    if (u < 0.02) h = 0;                                       // d = 0
    else if (u < 0.04) h = 1 + Math.floor(r() * 0x3ff);       // subnormal d
    else if (u < 0.06) h = 0x2000 | (r() < 0.5 ? 0x8000 : 0);  // ±2^-7
    else {
      dv[0] = (r() < 0.5 ? -1 : 1) * scale * (0.25 + 1.5 * r());
      h = toF16(dv)[0];
    }
    out[o] = h & 0xff;
    out[o + 1] = h >> 8;
    for (let j = 2; j < bb; j++) out[o + j] = Math.floor(r() * 256);
  }
  return out;
}

/** float64 reference y = x Wᵀ + b and the scale Σ|x·w| + |b| (as in linear.test.ts). */
export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null, M: number, N: number, K: number) {
  const y = new Float64Array(M * N), mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0, a = 0;
      for (let k = 0; k < K; k++) {
        const p = x[m * K + k] * w[n * K + k];
        s += p;
        a += Math.abs(p);
      }
      const bn = b ? b[n] : 0;
      y[m * N + n] = s + bn;
      mag[m * N + n] = a + Math.abs(bn);
    }
  }
  return { y, mag };
}

// Same tolerance as the f32 linear tests: the dequantised weights are exact,
// so only the float32 summation order differs from the reference.
export const RTOL = 3e-6, ATOL = 1e-6;

export function checkLinear(t: Test, got: Float32Array, ref: { y: Float64Array; mag: Float64Array }, msg: string) {
  if (got.length !== ref.y.length) {
    t.fail(`${msg}: length ${got.length}, expected ${ref.y.length}`);
    return;
  }
  let worst = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i] - ref.y[i]) / (RTOL * ref.mag[i] + ATOL);
    if (!(r <= worst)) { worst = Number.isNaN(r) ? Infinity : r; at = i; }
  }
  t.ok(worst <= 1, `${msg} (worst err/tol ${worst.toPrecision(3)}${at >= 0 ? ` at ${at}: ${got[at]} vs ${ref.y[at]}` : ''})`);
}


/** Index of the first element whose bits differ (-1: identical). */
export function firstBitDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

export function bitEqual(t: Test, got: Float32Array, want: Float32Array, msg: string) {
  const i = firstBitDiff(got, want);
  t.ok(i < 0, i < 0 ? msg : `${msg}: first difference at ${i}: ${got[i]} vs ${want[i]}`);
}
