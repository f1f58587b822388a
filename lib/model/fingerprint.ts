// A model's fingerprint for snapshots (lib/model/snapshot.ts): SHA-256 of the
// configuration, the tensor table (name, dtype, shape) and a sample of every
// tensor's bytes (its first, middle and last 64 bytes), so that two
// checkpoints of the same shapes but other weights differ, without reading
// gigabytes. Computed once per model, when a snapshot is first made or
// restored.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { MambaConfig } from './config';

export interface FingerprintTensor {
  file: number;
  offset: number;
  nbytes: number;
  dtype: string;
  shape: number[];
}

export function modelFingerprint(config: MambaConfig, files: string[], tensors: Map<string, FingerprintTensor>): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(config, (_k, v) => (v === Infinity ? 'Infinity' : v)));
  const fds = files.map((f) => fs.openSync(f, 'r'));
  try {
    const buf = Buffer.alloc(64);
    for (const name of [...tensors.keys()].sort()) {
      const t = tensors.get(name)!;
      h.update(`${name}\0${t.dtype}\0${t.shape.join(',')}\0`);
      for (const at of [0, Math.floor(t.nbytes / 2), t.nbytes - 64]) {
        const pos = Math.max(0, Math.min(at, t.nbytes - 64));
        const n = fs.readSync(fds[t.file], buf, 0, Math.min(64, t.nbytes), t.offset + pos);
        h.update(buf.subarray(0, n));
      }
    }
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
  return h.digest('hex');
}
