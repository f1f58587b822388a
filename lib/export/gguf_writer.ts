// A low-level GGUF v3 writer: metadata of every value type, tensor infos and
// the data section (see lib/loaders/gguf.ts for the layout). Tensor data is
// produced one tensor at a time while writing (`data()` is called once, in
// order), so a multi-gigabyte model never sits in memory whole. The file is
// written under a temporary name beside the target and renamed at the end;
// any failure removes the temporary file and leaves the target untouched.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufValueType, ggmlTensorBytes, type GgmlType, type GgufValue } from '../loaders/gguf';

export interface GgufWriterTensor {
  name: string;
  /** ggml order: dims[0] is the contiguous dimension (the reverse of numpy's shape). */
  dims: number[];
  type: GgmlType;
  /** The tensor's bytes, exactly ggmlTensorBytes(type, dims) of them; called once, while writing. */
  data: () => Uint8Array;
}

interface Kv {
  key: string;
  type: GgufValueType;
  value: GgufValue;
}

/** Little-endian byte sink that grows as needed. */
class Bytes {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const b = Buffer.alloc(size);
    this.buf.copy(b, 0, 0, this.length);
    this.buf = b;
  }

  u8(v: number): void { this.room(1); this.buf.writeUInt8(v, this.length); this.length += 1; }
  i8(v: number): void { this.room(1); this.buf.writeInt8(v, this.length); this.length += 1; }
  u16(v: number): void { this.room(2); this.buf.writeUInt16LE(v, this.length); this.length += 2; }
  i16(v: number): void { this.room(2); this.buf.writeInt16LE(v, this.length); this.length += 2; }
  u32(v: number): void { this.room(4); this.buf.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number): void { this.room(4); this.buf.writeInt32LE(v, this.length); this.length += 4; }
  f32(v: number): void { this.room(4); this.buf.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number): void { this.room(8); this.buf.writeDoubleLE(v, this.length); this.length += 8; }
  u64(v: number | bigint): void { this.room(8); this.buf.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: number | bigint): void { this.room(8); this.buf.writeBigInt64LE(BigInt(v), this.length); this.length += 8; }
  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(n);
    this.room(n);
    this.buf.write(s, this.length, 'utf8');
    this.length += n;
  }
  zeros(n: number): void { this.room(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  bytes(): Buffer { return this.buf.subarray(0, this.length); }
}

function writeValue(out: Bytes, type: GgufValueType, v: GgufValue, key: string): void {
  const bad = (): never => { throw new TypeError(`GgufWriter: value of ${key} does not match type ${GgufValueType[type]}: ${String(v)}`); };
  const num = (): number => (typeof v === 'number' ? v : bad());
  const int = (): number | bigint => (typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)) ? v : bad());
  switch (type) {
    case GgufValueType.UINT8: return out.u8(num());
    case GgufValueType.INT8: return out.i8(num());
    case GgufValueType.UINT16: return out.u16(num());
    case GgufValueType.INT16: return out.i16(num());
    case GgufValueType.UINT32: return out.u32(num());
    case GgufValueType.INT32: return out.i32(num());
    case GgufValueType.FLOAT32: return out.f32(num());
    case GgufValueType.FLOAT64: return out.f64(num());
    case GgufValueType.UINT64: return out.u64(int());
    case GgufValueType.INT64: return out.i64(int());
    case GgufValueType.BOOL: return out.u8(typeof v === 'boolean' ? (v ? 1 : 0) : bad());
    case GgufValueType.STRING: return out.str(typeof v === 'string' ? v : bad());
    case GgufValueType.ARRAY: {
      if (typeof v !== 'object' || v === null) return bad();
      out.u32(v.itemType);
      out.u64(v.values.length);
      for (const item of v.values) writeValue(out, v.itemType, item, key);
      return;
    }
  }
}

export class GgufWriter {
  private readonly kvs: Kv[] = [];
  private readonly tensors: GgufWriterTensor[] = [];
  private readonly keys = new Set<string>();

  constructor(readonly alignment = GGUF_DEFAULT_ALIGNMENT) {
    if (!(Number.isInteger(alignment) && alignment > 0 && (alignment & (alignment - 1)) === 0)) {
      throw new RangeError('GgufWriter: alignment must be a power of two');
    }
    if (alignment !== GGUF_DEFAULT_ALIGNMENT) this.add('general.alignment', GgufValueType.UINT32, alignment);
  }

  get tensorCount(): number {
    return this.tensors.length;
  }

  add(key: string, type: GgufValueType, value: GgufValue): this {
    if (this.keys.has(key)) throw new Error(`GgufWriter: duplicate key ${key}`);
    this.keys.add(key);
    this.kvs.push({ key, type, value });
    return this;
  }

  string(key: string, v: string): this { return this.add(key, GgufValueType.STRING, v); }
  u32(key: string, v: number): this { return this.add(key, GgufValueType.UINT32, v); }
  f32(key: string, v: number): this { return this.add(key, GgufValueType.FLOAT32, v); }
  bool(key: string, v: boolean): this { return this.add(key, GgufValueType.BOOL, v); }
  array(key: string, itemType: GgufValueType, values: GgufValue[]): this {
    return this.add(key, GgufValueType.ARRAY, { itemType, values });
  }

  tensor(t: GgufWriterTensor): this {
    if (this.tensors.some((o) => o.name === t.name)) throw new Error(`GgufWriter: duplicate tensor ${t.name}`);
    const g = GGML_TYPES[t.type];
    if ((t.dims[0] ?? 1) % g.blockElems !== 0) {
      throw new RangeError(`GgufWriter: ${t.name}: first dimension ${t.dims[0]} is not a multiple of the ${t.type} block size ${g.blockElems}`);
    }
    this.tensors.push(t);
    return this;
  }

  /** Writes the file (temporary name, then rename). Returns its size in bytes. */
  async write(file: string): Promise<number> {
    const align = (n: number) => Math.ceil(n / this.alignment) * this.alignment;
    const head = new Bytes();
    head.u32(GGUF_MAGIC);
    head.u32(3);
    head.u64(this.tensors.length);
    head.u64(this.kvs.length);
    for (const kv of this.kvs) {
      head.str(kv.key);
      head.u32(kv.type);
      writeValue(head, kv.type, kv.value, kv.key);
    }
    let offset = 0;
    const sizes: number[] = [];
    for (const t of this.tensors) {
      head.str(t.name);
      head.u32(t.dims.length);
      for (const d of t.dims) head.u64(d);
      head.u32(GGML_TYPES[t.type].id);
      head.u64(offset);
      const n = ggmlTensorBytes(t.type, t.dims);
      sizes.push(n);
      offset = align(offset + n);
    }
    head.zeros(align(head.length) - head.length);

    const abs = path.resolve(file);
    const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const fh = await fs.promises.open(tmp, 'wx');
    let pos = 0;
    try {
      const put = async (b: Uint8Array) => {
        let done = 0;
        while (done < b.byteLength) {
          const { bytesWritten } = await fh.write(b, done, b.byteLength - done, pos + done);
          done += bytesWritten;
        }
        pos += b.byteLength;
      };
      await put(head.bytes());
      const pad = Buffer.alloc(this.alignment);
      for (let i = 0; i < this.tensors.length; i++) {
        const t = this.tensors[i];
        const data = t.data();
        if (data.byteLength !== sizes[i]) {
          throw new Error(`GgufWriter: ${t.name}: data has ${data.byteLength} bytes, ${t.type} [${t.dims.join(', ')}] needs ${sizes[i]}`);
        }
        await put(data);
        await put(pad.subarray(0, align(pos) - pos)); // the last one too, as gguf-py does
      }
      await fh.sync();
      await fh.close();
      await fs.promises.rename(tmp, abs);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    return pos;
  }
}
