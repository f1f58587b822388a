// Writes a Hugging Face checkpoint directory from float64 tensors: config.json
// (Python's json.dumps dialect: an infinite float is the bare token Infinity)
// and model.safetensors, or model-0000k-of-0000n.safetensors shards plus
// model.safetensors.index.json (the layout transformers' save_pretrained
// writes when it shards). Each tensor is rounded to the dtype on the way; the
// values AS STORED come back in float64, keyed by the stored name.
import * as path from 'node:path';
import { encode, type WeightDtype } from './random_checkpoint';
import { writeAtomically, writeSafetensorsShards, type StDtype, type StTensor } from './safetensors_writer';

export interface TensorSpec {
  /** Name as stored in the file. */
  name: string;
  /** numpy shape, row-major. */
  shape: number[];
  values: ArrayLike<number>;
}

export interface WrittenCheckpoint {
  /** Stored name -> values as stored (rounded to the dtype), row-major. */
  weights: Map<string, Float64Array>;
  /** Stored name -> shape. */
  shapes: Map<string, number[]>;
  /** Absolute paths of the safetensors files, in order. */
  files: string[];
}

const ST_DTYPE: Record<WeightDtype, StDtype> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** JSON as Python's json.dumps(indent=2) writes it: ±Infinity and NaN as bare tokens. */
export function pythonJson(obj: unknown): string {
  const marks = new Map<string, string>();
  const text = JSON.stringify(obj, (_k, v: unknown) => {
    if (typeof v === 'number' && !Number.isFinite(v)) {
      const token = Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
      const mark = `__PYTHON_${token.replace('-', 'NEG_')}__`;
      marks.set(mark, token);
      return mark;
    }
    return v;
  }, 2);
  let out = text;
  for (const [mark, token] of marks) out = out.replaceAll(`"${mark}"`, token);
  return out + '\n';
}

/**
 * Writes `config` as config.json and `tensors` (in the order given) as one
 * safetensors file, or as `shards` files of consecutive tensors with the index.
 */
export function writeHfCheckpoint(
  dir: string, config: Record<string, unknown>, tensors: TensorSpec[], dtype: WeightDtype, shards = 1,
): WrittenCheckpoint {
  const weights = new Map<string, Float64Array>();
  const shapes = new Map<string, number[]>();
  const st: StTensor[] = tensors.map((t) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.values.length !== n) throw new Error(`writeHfCheckpoint: ${t.name} has ${t.values.length} values, shape ${JSON.stringify(t.shape)} needs ${n}`);
    if (weights.has(t.name)) throw new Error(`writeHfCheckpoint: duplicate tensor ${t.name}`);
    const { bytes, stored } = encode(t.values, dtype);
    weights.set(t.name, stored);
    shapes.set(t.name, [...t.shape]);
    return { name: t.name, dtype: ST_DTYPE[dtype], shape: t.shape, data: bytes };
  });

  const files = writeSafetensorsShards(dir, st, shards);
  writeAtomically(path.join(dir, 'config.json'), pythonJson(config));
  return { weights, shapes, files };
}
