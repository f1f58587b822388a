// Reading a checkpoint tensor's values into memory as float32 (the GGUF
// exporter and the quantizer rewrite tensors; the engine itself maps them).
import * as fs from 'node:fs';
import { ModelLoadError } from '../errors';
import type { CheckpointTensor } from './checkpoint';

let F16_TABLE: Float32Array | undefined;
/** IEEE half bits -> value (exact). */
export function f16BitsToF32(h: number): number {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) {
      const s = i & 0x8000 ? -1 : 1, e = (i >> 10) & 0x1f, m = i & 0x3ff;
      F16_TABLE[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return F16_TABLE[h];
}

/** Values of a stored f32 / f16 / bf16 tensor (little-endian bytes), widened exactly to float32. */
export function toF32(bytes: Buffer, dtype: string, n: number, file: string, name: string): Float32Array {
  // A fresh copy at offset 0 of its own ArrayBuffer, so typed views are aligned.
  const own = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  if (dtype === 'f32') return new Float32Array(own, 0, n);
  const h = new Uint16Array(own, 0, n);
  const out = new Float32Array(n);
  if (dtype === 'f16') {
    f16BitsToF32(0); // builds the table
    const table = F16_TABLE as Float32Array;
    for (let i = 0; i < n; i++) out[i] = table[h[i]];
  } else if (dtype === 'bf16') {
    const o = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) o[i] = h[i] << 16;
  } else {
    throw new ModelLoadError(`expected a f32, f16 or bf16 tensor, got ${dtype}`, { file, field: name });
  }
  return out;
}

/** A f32 / f16 / bf16 tensor's values, widened exactly to float32, row-major. */
export function readFloatTensor(t: CheckpointTensor, name: string): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const buf = Buffer.alloc(t.nbytes);
  const fd = fs.openSync(t.fileName, 'r');
  try {
    let done = 0;
    while (done < t.nbytes) {
      const got = fs.readSync(fd, buf, done, t.nbytes - done, t.offset + done);
      if (got === 0) throw new ModelLoadError('file ended while reading the tensor', { file: t.fileName, field: name });
      done += got;
    }
  } finally {
    fs.closeSync(fd);
  }
  return toF32(buf, t.dtype, n, t.fileName, name);
}
