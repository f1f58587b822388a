// How float data is passed to kernels: a Float32Array is float32; float16 and
// bfloat16 (no Float16Array on Node 20) are a Uint16Array of raw bits with
// their dtype named.

export type HalfDtype = 'f16' | 'bf16';

/** Float32Array, or `{ data: Uint16Array, dtype: 'f16' | 'bf16' }`. */
export type FloatData = Float32Array | { data: Uint16Array; dtype: HalfDtype };

/**
 * ggml block-quantized types (little-endian blocks of 32 consecutive
 * elements along a row):
 * - 'q8_0': 34 bytes per block: float16 scale d, then 32 int8 q; value = d · q.
 * - 'q4_0': 18 bytes per block: float16 scale d, then 16 bytes where byte j
 *   holds element j in its low nibble and element j + 16 in its high nibble;
 *   value = d · (nibble − 8).
 */
export type QuantDtype = 'q8_0' | 'q4_0';

/** Raw blocks of a quantized matrix, rows of (row length / 32) blocks each. */
export interface QuantData { data: Uint8Array; dtype: QuantDtype }

/** Bytes of one block of a quantized type. */
export const QUANT_BLOCK_BYTES: Readonly<Record<QuantDtype, number>> = { q8_0: 34, q4_0: 18 };

/**
 * Spreads a FloatData argument into the native form `{ [name]: array,
 * [name + 'Dtype']: dtype }`. Anything else is passed through unchanged so
 * that the native side reports it with the argument's name.
 */
export function floatArg(name: string, v: unknown): Record<string, unknown> {
  if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && 'data' in v) {
    const o = v as { data: unknown; dtype?: unknown };
    return { [name]: o.data, [name + 'Dtype']: o.dtype };
  }
  return { [name]: v };
}
