// Writes safetensors files for the tests: 8-byte little-endian header length,
// the JSON header padded with spaces to a multiple of 8 bytes (as the
// safetensors library does, so the data section starts 8-aligned), then the
// tensors' bytes back to back in the order given. Written to a temporary name
// and renamed, so a reader never sees half a file.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type StDtype = 'F32' | 'F16' | 'BF16';
/** Other byte-sized safetensors dtypes, for tests of unsupported weights. */
export type OtherStDtype = 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface StTensor {
  name: string;
  dtype: StDtype | OtherStDtype;
  shape: number[];
  /** Raw little-endian bytes, product(shape) * dtype size of them. */
  data: Uint8Array;
}

const BYTES: Record<StDtype | OtherStDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export function writeSafetensors(file: string, tensors: StTensor[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.byteLength !== n * BYTES[t.dtype]) {
      throw new Error(`writeSafetensors: ${t.name} has ${t.data.byteLength} bytes, shape ${JSON.stringify(t.shape)} of ${t.dtype} needs ${n * BYTES[t.dtype]}`);
    }
    if (t.name in header) throw new Error(`writeSafetensors: duplicate tensor ${t.name}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((8 + jsonBytes) % 8)) % 8);
  writeRawSafetensors(file, json, Buffer.concat(tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))));
}

/**
 * Writes a file from a header text and a data section as given (no checks),
 * for malformed-file tests. `headerLength` overrides the length field.
 */
export function writeRawSafetensors(file: string, headerText: string, data: Uint8Array, headerLength?: bigint): void {
  const head = Buffer.from(headerText, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLength ?? BigInt(head.byteLength));
  writeAtomically(file, Buffer.concat([len, head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

export function writeAtomically(file: string, bytes: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}

/**
 * Writes the tensors as model.safetensors (shards <= 1), or as `shards` files
 * model-0000k-of-0000n.safetensors (tensors split in order) with
 * model.safetensors.index.json. Returns the absolute paths written.
 */
export function writeSafetensorsShards(dir: string, st: StTensor[], shards: number): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  if (shards <= 1) {
    const file = path.resolve(dir, 'model.safetensors');
    writeSafetensors(file, st, { format: 'pt' });
    files.push(file);
    return files;
  }
  if (shards > st.length) throw new Error('writeSafetensorsShards: more shards than tensors');
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let k = 0; k < shards; k++) {
    const part = st.slice(Math.floor((k * st.length) / shards), Math.floor(((k + 1) * st.length) / shards));
    const name = `model-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const file = path.resolve(dir, name);
    writeSafetensors(file, part, { format: 'pt' });
    files.push(file);
    for (const t of part) {
      weightMap[t.name] = name;
      totalSize += t.data.byteLength;
    }
  }
  writeAtomically(path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
  return files;
}
