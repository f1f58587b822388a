// Typed reads of a GGUF file's metadata keys (integers of any width, floats,
// strings, booleans, arrays, per-layer values); every failure is a
// ModelLoadError naming the key.
import { ModelLoadError } from '../errors';
import { GgufValueType, type GgufFile } from './gguf';

const INT_TYPES = new Set([
  GgufValueType.UINT8, GgufValueType.INT8, GgufValueType.UINT16, GgufValueType.INT16,
  GgufValueType.UINT32, GgufValueType.INT32, GgufValueType.UINT64, GgufValueType.INT64,
]);

/** Typed reads of metadata keys; every failure names the key. */
export class GgufMeta {
  constructor(readonly g: GgufFile) {}

  fail(reason: string, key: string, extra?: { expected?: unknown; actual?: unknown }): never {
    throw new ModelLoadError(reason, { file: this.g.file, field: key, ...extra });
  }

  has(key: string): boolean {
    return this.g.metadata.has(key);
  }

  string(key: string, required: true): string;
  string(key: string, required?: boolean): string | undefined;
  string(key: string, required = false): string | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return required ? this.fail('required metadata key is missing', key) : undefined;
    if (e.type !== GgufValueType.STRING || typeof e.value !== 'string') this.fail(`expected a string, got ${GgufValueType[e.type]}`, key);
    return e.value;
  }

  int(key: string, required: true, min?: number): number;
  int(key: string, required?: boolean, min?: number): number | undefined;
  int(key: string, required = false, min = 0): number | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return required ? this.fail('required metadata key is missing', key) : undefined;
    if (!INT_TYPES.has(e.type) || typeof e.value !== 'number') this.fail(`expected an integer, got ${GgufValueType[e.type]} ${String(e.value)}`, key);
    if (e.value < min) this.fail(`must be at least ${min}`, key, { actual: e.value });
    return e.value;
  }

  float(key: string, required: true): number;
  float(key: string, required?: boolean): number | undefined;
  float(key: string, required = false): number | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return required ? this.fail('required metadata key is missing', key) : undefined;
    if ((e.type !== GgufValueType.FLOAT32 && e.type !== GgufValueType.FLOAT64) || typeof e.value !== 'number') {
      this.fail(`expected a float, got ${GgufValueType[e.type]}`, key);
    }
    return e.value;
  }

  bool(key: string): boolean | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return undefined;
    if (e.type !== GgufValueType.BOOL || typeof e.value !== 'boolean') this.fail(`expected a bool, got ${GgufValueType[e.type]}`, key);
    return e.value;
  }

  /**
   * An integer per layer: a scalar (the same for every layer) or an array of
   * exactly `n` integers (llama.cpp's get_key_or_arr). Undefined when absent.
   */
  perLayer(key: string, n: number): number[] | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return undefined;
    if (e.type !== GgufValueType.ARRAY) return new Array<number>(n).fill(this.int(key, true));
    const v = this.array(key, GgufValueType.UINT32) as unknown[];
    if (v.length !== n) this.fail(`has ${v.length} entries, one per layer is ${n} (block_count)`, key, { expected: n, actual: v.length });
    return v.map((x, i) => {
      if (typeof x !== 'number' || x < 0) this.fail(`entry ${i} is ${String(x)}, not a non-negative integer`, key);
      return x;
    });
  }

  /** An array whose items are all of `itemType`. */
  array(key: string, itemType: GgufValueType): unknown[] | undefined {
    const e = this.g.metadata.get(key);
    if (!e) return undefined;
    const v = e.value;
    if (e.type !== GgufValueType.ARRAY || typeof v !== 'object' || v === null) this.fail(`expected an array, got ${GgufValueType[e.type]}`, key);
    const ok = v.itemType === itemType || (INT_TYPES.has(itemType) && INT_TYPES.has(v.itemType));
    if (!ok) this.fail(`expected an array of ${GgufValueType[itemType]}, got an array of ${GgufValueType[v.itemType]}`, key);
    return v.values;
  }
}
