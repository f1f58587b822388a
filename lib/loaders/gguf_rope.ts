// The tensor table the engine maps for a GGUF checkpoint.
//
// llama.cpp's RoPE for granitehybrid is its 'norm' type: it rotates adjacent
// channel pairs (2i, 2i + 1) of a head, where Hugging Face's rotate_half (and
// node-mamba's engine, csrc/kernels/attention.h) rotates (i, i + r/2). Its
// converter therefore stores attn_q / attn_k with each head's first r rows
// interleaved: row 2i + s of the file is row s·r/2 + i of the checkpoint
// (convert_hf_to_gguf's `permute`). A row permutation cannot be expressed as
// an offset into the file, so for such tensors (GgufCheckpoint.ropePairs,
// only files with RoPE on and attention layers) the rows are copied back
// into checkpoint order into a temporary file beside the others, which the
// engine maps with the GGUF; release() removes it once the engine has mapped
// it (on POSIX a mapped file outlives its name; where removal fails, at exit).
// Every row is whole (F32 / F16 / BF16 values or whole Q8_0 / Q4_0 blocks),
// so the copy is exact for every type. Files without RoPE-ordered tensors use
// the GGUF alone.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelLoadError } from '../errors';
import type { CheckpointTensor } from './checkpoint';
import type { GgufCheckpoint } from './gguf_model';

export interface EngineSource {
  files: string[];
  tensors: Map<string, CheckpointTensor>;
  /** Removes the temporary file, if any (call once the engine has loaded, or failed to). */
  release: () => void;
}

/**
 * For rows [0, rows) of a tensor of `heads` heads of `headDim` rows whose
 * first `rotaryDim` rows per head are in llama.cpp's interleaved-pair order:
 * the file row that holds checkpoint row j (ropeFileRow) and the inverse
 * (ropeCheckpointRow, what the exporter writes at file row j).
 */
export function ropeFileRow(j: number, headDim: number, rotaryDim: number): number {
  const h = Math.floor(j / headDim), r = j % headDim, half = rotaryDim / 2;
  if (r >= rotaryDim) return j;
  return h * headDim + 2 * (r % half) + Math.floor(r / half);
}

export function ropeCheckpointRow(j: number, headDim: number, rotaryDim: number): number {
  const h = Math.floor(j / headDim), r = j % headDim, half = rotaryDim / 2;
  if (r >= rotaryDim) return j;
  return h * headDim + (r % 2) * half + Math.floor(r / 2);
}

const ALIGN = 64;
const pending = new Set<string>();
let exitHook = false;

function removeLater(file: string): void {
  pending.add(file);
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const f of pending) {
      try {
        fs.rmSync(f, { force: true });
      } catch {
        // nothing more to do
      }
    }
  });
}

export function ggufEngineSource(ck: GgufCheckpoint): EngineSource {
  if (ck.ropePairs.size === 0) return { files: ck.files, tensors: ck.tensors, release: () => undefined };
  const file = path.join(os.tmpdir(), `node-mamba-rope-${process.pid}-${Math.random().toString(36).slice(2)}.bin`);
  const tensors = new Map(ck.tensors);
  const files = [...ck.files, file];
  const src = fs.openSync(ck.files[0], 'r');
  let out: number | undefined;
  try {
    out = fs.openSync(file, 'wx', 0o600);
    let pos = 0;
    for (const [name, p] of ck.ropePairs) {
      const t = ck.tensors.get(name) as CheckpointTensor;
      const rows = t.shape[0];
      if (rows !== p.heads * p.headDim || rows === 0) {
        throw new ModelLoadError(`internal error: ${rows} rows are not ${p.heads} heads of ${p.headDim}`, { file: ck.files[0], field: ck.ggufNames.get(name) ?? name });
      }
      const rowBytes = t.nbytes / rows;
      const bytes = Buffer.alloc(t.nbytes);
      if (fs.readSync(src, bytes, 0, t.nbytes, t.offset) !== t.nbytes) {
        throw new ModelLoadError('file ended while reading the tensor', { file: ck.files[0], field: ck.ggufNames.get(name) ?? name });
      }
      const ordered = Buffer.alloc(t.nbytes);
      for (let j = 0; j < rows; j++) {
        const from = ropeFileRow(j, p.headDim, p.rotaryDim);
        bytes.copy(ordered, j * rowBytes, from * rowBytes, (from + 1) * rowBytes);
      }
      pos = Math.ceil(pos / ALIGN) * ALIGN;
      let done = 0;
      while (done < ordered.length) done += fs.writeSync(out, ordered, done, ordered.length - done, pos + done);
      tensors.set(name, { ...t, file: files.length - 1, fileName: file, offset: pos });
      pos += ordered.length;
    }
  } catch (err) {
    if (out !== undefined) fs.closeSync(out);
    fs.rmSync(file, { force: true });
    throw err instanceof ModelLoadError ? err
      : new ModelLoadError(`cannot write the attention rows in checkpoint order to a temporary file (${(err as Error).message})`, { file, cause: err });
  } finally {
    fs.closeSync(src);
  }
  fs.closeSync(out);
  let released = false;
  return {
    files, tensors,
    release: () => {
      if (released) return;
      released = true;
      try {
        fs.rmSync(file, { force: true });
      } catch {
        removeLater(file);
      }
    },
  };
}
