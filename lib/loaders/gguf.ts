// Reads the header of a GGUF file (llama.cpp's format, versions 2 and 3):
// never the tensor data, which the engine memory-maps from the offsets
// returned here.
//
// Layout (little-endian):
//   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count × { string key | u32 value_type | value }
//   tensor_count × { string name | u32 n_dims | u64 dims[n_dims] (ggml order:
//                    dims[0] is the contiguous one) | u32 ggml_type | u64 offset }
//   padding to `general.alignment` (default 32)
//   data section: each tensor at data_start + offset (offset a multiple of the alignment)
// A string is a u64 byte length and that many UTF-8 bytes; an array is a u32
// element type, a u64 count and the elements (arrays may nest).
//
// Everything is checked against the file size before anything is allocated
// from it (counts, string lengths, array lengths, dims, offsets, tensor sizes):
// a malformed or truncated file is a ModelLoadError naming the file and the
// field (header field, metadata key or tensor name) at fault.
import * as fs from 'node:fs';
import { ModelLoadError } from '../errors';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types. */
export enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

const VALUE_TYPE_NAMES = ['UINT8', 'INT8', 'UINT16', 'INT16', 'UINT32', 'INT32', 'FLOAT32', 'BOOL', 'STRING', 'ARRAY', 'UINT64', 'INT64', 'FLOAT64'];
/** Bytes of a scalar of each type (0: variable). */
const VALUE_SIZES = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
/** Smallest encoding of one value of each type (string: its u64 length; array: type + count). */
const VALUE_MIN_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];

/**
 * A metadata value: numbers for every numeric type (64-bit integers outside
 * the safe-integer range as bigint), booleans, strings, and arrays of those.
 */
export type GgufScalar = number | bigint | boolean | string;
export interface GgufArray {
  /** Element type (ARRAY for arrays of arrays). */
  itemType: GgufValueType;
  values: GgufValue[];
}
export type GgufValue = GgufScalar | GgufArray;

export interface GgufMetadataEntry {
  type: GgufValueType;
  value: GgufValue;
}

/** ggml tensor types node-mamba reads, with their block geometry. */
export const GGML_TYPES = {
  F32: { id: 0, blockElems: 1, blockBytes: 4 },
  F16: { id: 1, blockElems: 1, blockBytes: 2 },
  Q4_0: { id: 2, blockElems: 32, blockBytes: 18 },
  Q8_0: { id: 8, blockElems: 32, blockBytes: 34 },
  BF16: { id: 30, blockElems: 1, blockBytes: 2 },
} as const;
export type GgmlType = keyof typeof GGML_TYPES;

/** Names of the other ggml types, for messages. */
const OTHER_GGML_TYPE_NAMES: Record<number, string> = {
  3: 'Q4_1', 4: 'Q4_2 (removed)', 5: 'Q4_3 (removed)', 6: 'Q5_0', 7: 'Q5_1', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K',
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS',
  24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};

const TYPE_BY_ID = new Map<number, GgmlType>(Object.entries(GGML_TYPES).map(([name, t]) => [t.id, name as GgmlType]));

export function ggmlTypeName(id: number): string {
  return TYPE_BY_ID.get(id) ?? OTHER_GGML_TYPE_NAMES[id] ?? `unknown type ${id}`;
}

/** Bytes of a tensor of `type` with ggml dims `dims` (dims[0] must be a multiple of the block size). */
export function ggmlTensorBytes(type: GgmlType, dims: readonly number[]): number {
  const t = GGML_TYPES[type];
  const n = dims.reduce((a, b) => a * b, 1);
  return (n / t.blockElems) * t.blockBytes;
}

export interface GgufTensorInfo {
  name: string;
  /** Dimensions in ggml order (dims[0] is contiguous); numpy order is the reverse. */
  dims: number[];
  type: GgmlType;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  nbytes: number;
}

export interface GgufFile {
  file: string;
  fileSize: number;
  version: number;
  alignment: number;
  /** Absolute offset of the data section. */
  dataStart: number;
  metadata: Map<string, GgufMetadataEntry>;
  /** In file order. */
  tensors: Map<string, GgufTensorInfo>;
}

/** Largest n_dims ggml knows (GGML_MAX_DIMS). */
const MAX_DIMS = 4;
const CHUNK = 1 << 20;

/** Sequential reads over an open file, buffered, with every length checked against the file size. */
class Cursor {
  pos = 0;
  private buf = Buffer.alloc(0);
  private bufStart = 0;

  constructor(private readonly fd: number, readonly fileSize: number, readonly file: string) {}

  remaining(): number {
    return this.fileSize - this.pos;
  }

  fail(reason: string, field: string | undefined, extra?: { expected?: unknown; actual?: unknown }): never {
    throw new ModelLoadError(reason, { file: this.file, field, ...extra });
  }

  /** The next n bytes (a view valid until the next call). */
  take(n: number, field: string, what: string): Buffer {
    if (n > this.remaining()) {
      this.fail(`file ends inside the ${what} (needs ${n} bytes at offset ${this.pos}, the file has ${this.fileSize}; truncated?)`, field);
    }
    const end = this.pos + n;
    if (this.pos < this.bufStart || end > this.bufStart + this.buf.length) {
      const len = Math.min(Math.max(n, CHUNK), this.fileSize - this.pos);
      const b = Buffer.allocUnsafe(len);
      let done = 0;
      while (done < len) {
        const got = fs.readSync(this.fd, b, done, len - done, this.pos + done);
        if (got === 0) this.fail(`file ended early while reading the ${what} (truncated while open?)`, field);
        done += got;
      }
      this.buf = b;
      this.bufStart = this.pos;
    }
    const off = this.pos - this.bufStart;
    this.pos = end;
    return this.buf.subarray(off, off + n);
  }

  u32(field: string, what: string): number {
    return this.take(4, field, what).readUInt32LE(0);
  }

  /** A u64 as a number; values above 2^53 are reported as too large for `what`. */
  u64(field: string, what: string): number {
    const v = this.take(8, field, what).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is absurdly large`, field);
    return Number(v);
  }

  string(field: string, what: string): string {
    const len = this.u64(field, `${what} length`);
    if (len > this.remaining()) {
      this.fail(`${what} length ${len} runs past the end of the file (${this.remaining()} bytes left; truncated or corrupt?)`, field);
    }
    return this.take(len, field, what).toString('utf8');
  }
}

function readValue(c: Cursor, type: number, key: string, depth: number): GgufValue {
  switch (type) {
    case GgufValueType.UINT8: return c.take(1, key, 'value').readUInt8(0);
    case GgufValueType.INT8: return c.take(1, key, 'value').readInt8(0);
    case GgufValueType.UINT16: return c.take(2, key, 'value').readUInt16LE(0);
    case GgufValueType.INT16: return c.take(2, key, 'value').readInt16LE(0);
    case GgufValueType.UINT32: return c.take(4, key, 'value').readUInt32LE(0);
    case GgufValueType.INT32: return c.take(4, key, 'value').readInt32LE(0);
    case GgufValueType.FLOAT32: return c.take(4, key, 'value').readFloatLE(0);
    case GgufValueType.FLOAT64: return c.take(8, key, 'value').readDoubleLE(0);
    case GgufValueType.BOOL: {
      const b = c.take(1, key, 'value').readUInt8(0);
      if (b > 1) c.fail(`bool value is ${b}, not 0 or 1`, key);
      return b === 1;
    }
    case GgufValueType.UINT64: {
      const v = c.take(8, key, 'value').readBigUInt64LE(0);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufValueType.INT64: {
      const v = c.take(8, key, 'value').readBigInt64LE(0);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufValueType.STRING: return c.string(key, 'string value');
    case GgufValueType.ARRAY: {
      if (depth >= 8) c.fail('arrays nested more than 8 deep', key);
      const itemType = c.u32(key, 'array element type');
      if (itemType > GgufValueType.FLOAT64) c.fail(`array element type ${itemType} is not a GGUF value type`, key);
      const count = c.u64(key, 'array length');
      // Each element takes at least VALUE_MIN_BYTES bytes: refuse counts the file cannot hold before allocating.
      if (count * VALUE_MIN_BYTES[itemType] > c.remaining()) {
        c.fail(`array of ${count} ${VALUE_TYPE_NAMES[itemType]} values cannot fit in the ${c.remaining()} bytes left in the file`, key);
      }
      const size = VALUE_SIZES[itemType];
      if (size > 0 && itemType !== GgufValueType.BOOL) {
        // Fixed-size numbers: read in one go.
        const bytes = c.take(count * size, key, 'array');
        const values: GgufValue[] = new Array(count);
        for (let i = 0; i < count; i++) values[i] = scalarAt(bytes, i * size, itemType);
        return { itemType, values };
      }
      const values: GgufValue[] = new Array(count);
      for (let i = 0; i < count; i++) values[i] = readValue(c, itemType, key, depth + 1);
      return { itemType, values };
    }
    default:
      return c.fail(`metadata value type ${type} is not a GGUF value type`, key);
  }
}

function scalarAt(b: Buffer, off: number, type: GgufValueType): GgufScalar {
  switch (type) {
    case GgufValueType.UINT8: return b.readUInt8(off);
    case GgufValueType.INT8: return b.readInt8(off);
    case GgufValueType.UINT16: return b.readUInt16LE(off);
    case GgufValueType.INT16: return b.readInt16LE(off);
    case GgufValueType.UINT32: return b.readUInt32LE(off);
    case GgufValueType.INT32: return b.readInt32LE(off);
    case GgufValueType.FLOAT32: return b.readFloatLE(off);
    case GgufValueType.FLOAT64: return b.readDoubleLE(off);
    case GgufValueType.UINT64: {
      const v = b.readBigUInt64LE(off);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    default: {
      const v = b.readBigInt64LE(off);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
  }
}

export function readGgufHeader(file: string): GgufFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelLoadError(code === 'ENOENT' ? 'GGUF file not found' : `cannot open GGUF file (${code ?? (err as Error).message})`, { file, cause: err });
  }
  try {
    return parse(fd, file);
  } catch (err) {
    if (err instanceof ModelLoadError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelLoadError(`cannot read GGUF file (${code ?? (err as Error).message})`, { file, cause: err });
  } finally {
    fs.closeSync(fd);
  }
}

function parse(fd: number, file: string): GgufFile {
  const st = fs.fstatSync(fd);
  if (!st.isFile()) throw new ModelLoadError('not a regular file', { file });
  const c: Cursor = new Cursor(fd, st.size, file);
  if (st.size < 4) c.fail(`file is ${st.size} bytes, too short for a GGUF header`, 'magic');
  const magic = c.take(4, 'magic', 'magic');
  if (magic.readUInt32LE(0) !== GGUF_MAGIC) {
    c.fail(`not a GGUF file: magic is ${JSON.stringify(magic.toString('latin1'))} (0x${magic.toString('hex')}), expected "GGUF"`, 'magic');
  }
  const version = c.u32('version', 'version');
  if (version !== 2 && version !== 3) {
    if (version === 1) c.fail('GGUF version 1 is not supported (versions 2 and 3 are); re-convert the model with a current llama.cpp', 'version');
    if ((version & 0xffff) === 0 && version >>> 16 !== 0) c.fail(`GGUF version 0x${version.toString(16)} looks big-endian; only little-endian GGUF files are supported`, 'version');
    c.fail(`GGUF version ${version} is not supported (versions 2 and 3 are)`, 'version');
  }
  const tensorCount = c.u64('tensor_count', 'tensor count');
  const kvCount = c.u64('kv_count', 'metadata count');
  // Each metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor info 8 + 4 + 4 + 8.
  if (kvCount * 13 > c.remaining()) {
    c.fail(`metadata count ${kvCount} cannot fit in a ${c.fileSize}-byte file`, 'kv_count');
  }
  if (tensorCount * 24 > c.remaining() - kvCount * 13) {
    c.fail(`tensor count ${tensorCount} cannot fit in a ${c.fileSize}-byte file`, 'tensor_count');
  }

  const metadata = new Map<string, GgufMetadataEntry>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`metadata[${i}]`, 'metadata key');
    if (metadata.has(key)) c.fail('metadata key appears twice', key);
    const type = c.u32(key, 'value type');
    if (type > GgufValueType.FLOAT64) c.fail(`metadata value type ${type} is not a GGUF value type`, key);
    metadata.set(key, { type, value: readValue(c, type, key, 0) });
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al !== undefined) {
    const v = al.value;
    if (al.type !== GgufValueType.UINT32 || typeof v !== 'number' || v === 0 || (v & (v - 1)) !== 0) {
      c.fail(`general.alignment must be a UINT32 power of two, got ${VALUE_TYPE_NAMES[al.type]} ${String(v)}`, 'general.alignment');
    }
    alignment = v;
  }

  interface RawInfo { name: string; dims: number[]; type: GgmlType; rel: number; nbytes: number }
  const infos: RawInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`tensor[${i}]`, 'tensor name');
    if (names.has(name)) c.fail('tensor name appears twice', name);
    names.add(name);
    const nDims = c.u32(name, 'tensor n_dims');
    if (nDims > MAX_DIMS) c.fail(`tensor has ${nDims} dimensions, ggml allows at most ${MAX_DIMS}`, name);
    const dims: number[] = [];
    let count = 1;
    for (let k = 0; k < nDims; k++) {
      const d = c.u64(name, `tensor dimension ${k}`);
      if (d === 0) c.fail(`tensor dimension ${k} is 0`, name);
      dims.push(d);
      count *= d;
      if (!Number.isSafeInteger(count) || count > c.fileSize * 2 + 64) {
        // A tensor of more elements than the file has half-bytes cannot be stored in it (Q4_0 has 4.5 bits per element).
        c.fail(`tensor dimensions [${dims.join(', ')}${k + 1 < nDims ? ', …' : ''}] are absurdly large for a ${c.fileSize}-byte file`, name);
      }
    }
    const typeId = c.u32(name, 'tensor type');
    const type = TYPE_BY_ID.get(typeId);
    if (type === undefined) {
      c.fail(`tensor type ${ggmlTypeName(typeId)} is not supported; supported: ${Object.keys(GGML_TYPES).join(', ')}`, name, {
        actual: ggmlTypeName(typeId),
      });
    }
    const g = GGML_TYPES[type];
    const ne0 = dims.length > 0 ? dims[0] : 1;
    if (ne0 % g.blockElems !== 0) {
      c.fail(`tensor of type ${type} has a first (contiguous) dimension ${ne0} that is not a multiple of its block size ${g.blockElems}`, name);
    }
    const rel = c.u64(name, 'tensor offset');
    if (rel % alignment !== 0) c.fail(`tensor offset ${rel} is not a multiple of the alignment ${alignment}`, name);
    infos.push({ name, dims, type, rel, nbytes: (count / g.blockElems) * g.blockBytes });
  }

  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const dataSize = c.fileSize - dataStart;
  const tensors = new Map<string, GgufTensorInfo>();
  for (const t of infos) {
    if (t.rel + t.nbytes > dataSize) {
      c.fail(`tensor data (${t.nbytes} bytes at data offset ${t.rel}) runs past the end of the file (data section is ${Math.max(0, dataSize)} bytes; truncated?)`, t.name);
    }
    tensors.set(t.name, { name: t.name, dims: t.dims, type: t.type, offset: dataStart + t.rel, nbytes: t.nbytes });
  }
  const sorted = [...tensors.values()].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1];
    if (sorted[i].offset < p.offset + p.nbytes) c.fail(`tensor data overlaps tensor ${p.name}`, sorted[i].name);
  }
  return { file, fileSize: c.fileSize, version, alignment, dataStart, metadata, tensors };
}

/** A metadata value as a plain scalar or array of scalars (arrays unwrapped), for convenience. */
export function ggufPlain(v: GgufValue): unknown {
  if (typeof v === 'object' && v !== null) return v.values.map(ggufPlain);
  return v;
}
