// The Quamba-style weight formats in TypeScript (the native side's
// core/dtype.h, "I8 / I4"): quantizing float weights into them and reading
// them back. One definition of each layout, used by the quantizer, the
// checkpoint writer and the tests.
//
//   i8  int8 per element, symmetric per output row: s = absmax / 127,
//       q = clamp(round(w / s), -127, 127); value = s·q.
//   i4  symmetric per group of 128 along the row (the last group of a row may
//       be shorter): s = absmax·2 / 15 (Quamba2's W4: the range [-8, 7]·s
//       covers [-absmax·16/15, absmax·14/15]), q = clamp(round(w / s), -8, 7).
//       Stored in chunks of 64 elements in 32 bytes: byte j of a chunk holds
//       element j in its low nibble and element j + 32 in its high nibble, as
//       q + 8; a row takes ceil(cols / 64) chunks, padding nibbles hold 8 (0).
// Rounding is to nearest, ties to even (as the native kernels round
// activations). An all-zero row or group gets scale 0 (values 0).

export type QuambaWeightDtype = 'i8' | 'i4';

export const I4_GROUP = 128;
export const I4_CHUNK = 64;

export interface QuantizedWeight {
  dtype: QuambaWeightDtype;
  rows: number;
  cols: number;
  /** i8: Int8Array [rows, cols]; i4: Uint8Array [rows, ceil(cols / 64) · 32]. */
  data: Int8Array | Uint8Array;
  /** i8: [rows]; i4: [rows, ceil(cols / 128)]. */
  scales: Float32Array;
}

/** Round half to even (as C's nearbyint in the default mode). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function i4RowBytes(cols: number): number {
  return Math.ceil(cols / I4_CHUNK) * (I4_CHUNK / 2);
}

export function i4Groups(cols: number): number {
  return Math.ceil(cols / I4_GROUP);
}

/** Bytes of a [rows, cols] weight of the format (scales not included). */
export function quantWeightBytes(dtype: QuambaWeightDtype, rows: number, cols: number): number {
  return dtype === 'i8' ? rows * cols : rows * i4RowBytes(cols);
}

/** Shape of the scale tensor of a [rows, cols] weight. */
export function quantScaleShape(dtype: QuambaWeightDtype, rows: number, cols: number): number[] {
  return dtype === 'i8' ? [rows] : [rows, i4Groups(cols)];
}

function absmax(w: ArrayLike<number>, i0: number, i1: number): number {
  let m = 0;
  for (let i = i0; i < i1; i++) {
    const v = Math.abs(w[i]);
    if (v > m) m = v;
  }
  return m;
}

/**
 * w row-major [rows, cols] -> i8 with one scale per row (absmax / 127, or the
 * given `scales`, e.g. one per-tensor scale repeated: the naive baseline).
 */
export function quantizeI8(w: ArrayLike<number>, rows: number, cols: number, opts: { scales?: Float32Array } = {}): QuantizedWeight {
  const data = new Int8Array(rows * cols), scales = opts.scales ?? new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const s = opts.scales ? scales[r] : Math.fround(absmax(w, r * cols, (r + 1) * cols) / 127);
    scales[r] = s;
    if (s === 0) continue;
    for (let k = 0; k < cols; k++) data[r * cols + k] = Math.max(-127, Math.min(127, roundHalfEven(w[r * cols + k] / s)));
  }
  return { dtype: 'i8', rows, cols, data, scales };
}

/** Integer values q[r, k] (-8..7) and group scales -> packed i4. */
export function packI4(q: ArrayLike<number>, rows: number, cols: number): Uint8Array {
  const rb = i4RowBytes(cols);
  const data = new Uint8Array(rows * rb).fill(0x88);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const c = Math.floor(k / I4_CHUNK), j = k % I4_CHUNK;
      const byte = r * rb + c * (I4_CHUNK / 2) + (j % 32);
      const nib = (q[r * cols + k] + 8) & 0x0f;
      data[byte] = j < 32 ? (data[byte] & 0xf0) | nib : (data[byte] & 0x0f) | (nib << 4);
    }
  }
  return data;
}

/** The integer values (-8..7) of a packed i4 weight, [rows, cols]. */
export function unpackI4(data: Uint8Array, rows: number, cols: number): Int8Array {
  const rb = i4RowBytes(cols), q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const c = Math.floor(k / I4_CHUNK), j = k % I4_CHUNK;
      const b = data[r * rb + c * (I4_CHUNK / 2) + (j % 32)];
      q[r * cols + k] = (j < 32 ? b & 0x0f : b >> 4) - 8;
    }
  }
  return q;
}

/** w row-major [rows, cols] -> i4 with one scale per group of 128 (round to nearest). */
export function quantizeI4(w: ArrayLike<number>, rows: number, cols: number): QuantizedWeight {
  const G = i4Groups(cols);
  const scales = new Float32Array(rows * G);
  const q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < G; g++) {
      const k0 = g * I4_GROUP, k1 = Math.min(cols, k0 + I4_GROUP);
      const s = Math.fround(absmax(w, r * cols + k0, r * cols + k1) * 2 / 15);
      scales[r * G + g] = s;
      for (let k = k0; k < k1; k++) q[r * cols + k] = s === 0 ? 0 : Math.max(-8, Math.min(7, roundHalfEven(w[r * cols + k] / s)));
    }
  }
  return { dtype: 'i4', rows, cols, data: packI4(q, rows, cols), scales };
}

/** The float values a quantized weight stands for, [rows, cols] row-major (float64). */
export function dequantize(qw: QuantizedWeight): Float64Array {
  const { rows, cols } = qw;
  const out = new Float64Array(rows * cols);
  if (qw.dtype === 'i8') {
    for (let r = 0; r < rows; r++)
      for (let k = 0; k < cols; k++) out[r * cols + k] = qw.scales[r] * (qw.data as Int8Array)[r * cols + k];
  } else {
    const q = unpackI4(qw.data as Uint8Array, rows, cols), G = i4Groups(cols);
    for (let r = 0; r < rows; r++)
      for (let k = 0; k < cols; k++) out[r * cols + k] = qw.scales[r * G + Math.floor(k / I4_GROUP)] * q[r * cols + k];
  }
  return out;
}
