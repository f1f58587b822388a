// How float data is passed to kernels: a Float32Array is float32; float16 and
// bfloat16 (no Float16Array on Node 20) are a Uint16Array of raw bits with
// their dtype named.

export type HalfDtype = 'f16' | 'bf16';

/** Float32Array, or `{ data: Uint16Array, dtype: 'f16' | 'bf16' }`. */
export type FloatData = Float32Array | { data: Uint16Array; dtype: HalfDtype };

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
