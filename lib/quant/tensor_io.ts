// Reading a checkpoint's float tensors into memory (the quantizer transforms
// and rewrites every tensor; the engine itself maps them instead).
import * as fs from 'node:fs';
import { ModelLoadError } from '../errors';
import type { CheckpointTensor } from '../loaders/checkpoint';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A f32 / f16 / bf16 tensor's values as float32, row-major. */
export function readFloatTensor(t: CheckpointTensor, name: string): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const buf = Buffer.alloc(t.nbytes);
  const fd = fs.openSync(t.fileName, 'r');
  try {
    let done = 0;
    while (done < t.nbytes) {
      const got = fs.readSync(fd, buf, done, t.nbytes - done, t.offset + done);
      if (got <= 0) throw new ModelLoadError('tensor data ends early', { file: t.fileName, field: name });
      done += got;
    }
  } finally {
    fs.closeSync(fd);
  }
  const out = new Float32Array(n);
  if (t.dtype === 'f32') {
    for (let i = 0; i < n; i++) out[i] = buf.readFloatLE(4 * i);
  } else if (t.dtype === 'f16') {
    for (let i = 0; i < n; i++) out[i] = f16ToF32(buf.readUInt16LE(2 * i));
  } else if (t.dtype === 'bf16') {
    for (let i = 0; i < n; i++) { u32[0] = buf.readUInt16LE(2 * i) << 16; out[i] = f32[0]; }
  } else {
    throw new ModelLoadError(`the quantizer reads float weights (f32, f16, bf16); this tensor is ${t.dtype}`, { file: t.fileName, field: name });
  }
  return out;
}
