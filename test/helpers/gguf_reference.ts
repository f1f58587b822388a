// The float64 reference model's inputs from a GGUF file: every tensor the
// engine reads, dequantised exactly (F32 / F16 / BF16 / Q8_0 / Q4_0), under
// its canonical Hugging Face name, with A read back as A_log = log(-A) (exact
// to float64 rounding), and the input-rounding rule of inputRounding 'auto'
// for the file's tensor types.
import * as fs from 'node:fs';
import { readGgufHeader, type GgmlType, type GgufTensorInfo } from '../../lib/loaders/gguf';
import { ggufConfig, ggufTensorMap } from '../../lib/loaders/gguf_model';
import { f16BitsToF32 } from '../../lib/export/export_gguf';
import { dequant as dequantBlocks } from './quant_blocks';
import type { InputRoundingRule } from './reference_model';

/** A tensor's values from the file, dequantised to float64 (row-major, ggml order flattened). */
export function dequantTensor(bytes: Buffer, ti: GgufTensorInfo): Float64Array {
  const n = ti.dims.reduce((a, b) => a * b, 1);
  const b = bytes.subarray(ti.offset, ti.offset + ti.nbytes);
  if (ti.type === 'Q8_0' || ti.type === 'Q4_0') return dequantBlocks(b, n / ti.dims[0], ti.dims[0], ti.type === 'Q8_0' ? 'q8_0' : 'q4_0');
  const out = new Float64Array(n);
  switch (ti.type) {
    case 'F32': for (let i = 0; i < n; i++) out[i] = b.readFloatLE(4 * i); break;
    case 'F16': for (let i = 0; i < n; i++) out[i] = f16BitsToF32(b.readUInt16LE(2 * i)); break;
    case 'BF16': {
      const f = new Float32Array(1), u = new Uint32Array(f.buffer);
      for (let i = 0; i < n; i++) {
        u[0] = b.readUInt16LE(2 * i) << 16;
        out[i] = f[0];
      }
      break;
    }
    default: throw new Error(`gguf_reference: tensor ${ti.name} has type ${ti.type}`);
  }
  return out;
}

/** The reference model's weights and config from a GGUF file, and the rounding rule of inputRounding 'auto'. */
export function ggufReferenceWeights(file: string) {
  const g = readGgufHeader(file);
  const config = ggufConfig(g);
  const bytes = fs.readFileSync(file);
  const weights = new Map<string, Float64Array>();
  const types = new Map<string, GgmlType>();
  for (const m of ggufTensorMap(config)) {
    const ti = g.tensors.get(m.gguf);
    if (!ti) continue;
    types.set(m.canonical, ti.type);
    const v = dequantTensor(bytes, ti);
    if (m.canonical.endsWith('.A')) weights.set(m.canonical.slice(0, -1) + 'A_log', v.map((a) => Math.log(-a)));
    else weights.set(m.canonical, v);
  }
  // inputRounding 'auto': bf16 weights get bf16 inputs, q8_0 / q4_0 weights int8 inputs.
  const rounding: InputRoundingRule = (name) => {
    const ty = types.get(name);
    return ty === 'BF16' ? 'bf16' : ty === 'Q8_0' || ty === 'Q4_0' ? 'q8' : 'none';
  };
  return { config, weights, rounding, types };
}
