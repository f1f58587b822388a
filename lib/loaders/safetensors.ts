// Reads the header of a safetensors file (never the tensor data, which may be
// gigabytes): an 8-byte little-endian header length N, N bytes of JSON
// ({ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__? }),
// then the data section, where offsets are relative to its start (8 + N).
// Every inconsistency is a ModelLoadError naming the file and the tensor or
// header field; nothing is allocated from a length before it is checked.
import * as fs from 'node:fs';
import { ModelLoadError } from '../errors';

/** Bits per element of every dtype the safetensors format defines. */
export const SAFETENSORS_DTYPE_BITS = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16,
  I32: 32, U32: 32, F32: 32,
  I64: 64, U64: 64, F64: 64, C64: 64,
  F4: 4, F6_E2M3: 6, F6_E3M2: 6,
} as const;

export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BITS;

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offset of the first element in the file. */
  offset: number;
  nbytes: number;
}

export interface SafetensorsFile {
  file: string;
  fileSize: number;
  /** Absolute offset of the data section: 8 + header length. */
  dataStart: number;
  tensors: Map<string, SafetensorsTensor>;
  /** The `__metadata__` object (string to string), empty when absent. */
  metadata: Record<string, string>;
}

/** Headers larger than this are refused before anything is allocated. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function isDtype(s: string): s is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BITS, s);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads exactly `length` bytes at `position`, or fails. */
function readExactly(fd: number, length: number, position: number, file: string, what: string): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) {
      throw new ModelLoadError(`safetensors file ended while reading the ${what}`, { file, field: what });
    }
    done += n;
  }
  return buf;
}

export function readSafetensorsHeader(file: string): SafetensorsFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'safetensors file not found' : `cannot open safetensors file (${code ?? (err as Error).message})`;
    throw new ModelLoadError(reason, { file, cause: err });
  }
  try {
    return parseOpenFile(fd, file);
  } catch (err) {
    if (err instanceof ModelLoadError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelLoadError(`cannot read safetensors file (${code ?? (err as Error).message})`, { file, cause: err });
  } finally {
    fs.closeSync(fd);
  }
}

function parseOpenFile(fd: number, file: string): SafetensorsFile {
  const stat = fs.fstatSync(fd);
  if (!stat.isFile()) throw new ModelLoadError('not a regular file', { file });
  const fileSize = stat.size;
  if (fileSize < 8) {
    throw new ModelLoadError('file is shorter than the 8-byte safetensors header length', {
      file, field: 'header length', expected: '>= 8 bytes', actual: `${fileSize} bytes`,
    });
  }
  const headerLen64 = readExactly(fd, 8, 0, file, 'header length').readBigUInt64LE(0);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) {
    throw new ModelLoadError(`header length ${headerLen64} is larger than the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`, {
      file, field: 'header length',
    });
  }
  const headerLen = Number(headerLen64);
  if (8 + headerLen > fileSize) {
    throw new ModelLoadError(`header length ${headerLen} runs past the end of the file (${fileSize} bytes; truncated?)`, {
      file, field: 'header length',
    });
  }
  if (headerLen < 2) {
    throw new ModelLoadError(`header length ${headerLen} is too short for a JSON object`, { file, field: 'header length' });
  }
  const dataStart = 8 + headerLen;
  const dataSize = fileSize - dataStart;
  const text = readExactly(fd, headerLen, 8, file, 'header').toString('utf8');

  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw new ModelLoadError(`header is not valid JSON (${(err as Error).message})`, { file, field: 'header', cause: err });
  }
  if (!isPlainObject(header)) {
    throw new ModelLoadError('header is not a JSON object', { file, field: 'header' });
  }

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensor>();
  const ranges: Array<{ name: string; begin: number; end: number }> = [];

  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isPlainObject(entry)) throw new ModelLoadError('__metadata__ is not an object', { file, field: '__metadata__' });
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') {
          throw new ModelLoadError(`__metadata__ value is a ${typeof v}, not a string`, { file, field: `__metadata__.${k}` });
        }
        metadata[k] = v;
      }
      continue;
    }
    const bad = (reason: string, extra?: { expected?: unknown; actual?: unknown }) =>
      new ModelLoadError(reason, { file, field: name, ...extra });
    if (!isPlainObject(entry)) throw bad('tensor entry is not an object');
    const { dtype, shape, data_offsets: offsets } = entry;
    if (dtype === undefined) throw bad('tensor entry has no dtype');
    if (shape === undefined) throw bad('tensor entry has no shape');
    if (offsets === undefined) throw bad('tensor entry has no data_offsets');
    if (typeof dtype !== 'string' || !isDtype(dtype)) throw bad(`unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape)) throw bad('shape is not an array');
    let count = 1;
    for (const d of shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        throw bad(`shape has a dimension that is not a non-negative integer: ${JSON.stringify(d)}`);
      }
      count *= d;
    }
    if (!Number.isSafeInteger(count)) throw bad(`shape ${JSON.stringify(shape)} has too many elements`);
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
    ) {
      throw bad(`data_offsets is not [begin, end] with non-negative integers: ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw bad(`data_offsets end ${end} is before begin ${begin}`);
    if (end > dataSize) {
      throw bad(`data_offsets end ${end} is past the end of the data section (${dataSize} bytes; truncated file?)`);
    }
    const bits = count * SAFETENSORS_DTYPE_BITS[dtype];
    if (bits % 8 !== 0) throw bad(`shape ${JSON.stringify(shape)} of ${dtype} is not a whole number of bytes`);
    const expectedBytes = bits / 8;
    if (end - begin !== expectedBytes) {
      throw bad(`data_offsets span ${end - begin} bytes but shape ${JSON.stringify(shape)} of ${dtype} needs ${expectedBytes}`, {
        expected: expectedBytes, actual: end - begin,
      });
    }
    tensors.set(name, { dtype, shape: shape.slice() as number[], offset: dataStart + begin, nbytes: end - begin });
    ranges.push({ name, begin, end });
  }

  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev: { name: string; end: number } | undefined;
  for (const r of ranges) {
    if (r.end === r.begin) continue; // empty tensors occupy no bytes
    if (prev && r.begin < prev.end) {
      throw new ModelLoadError(`tensor data overlaps tensor ${prev.name} (bytes ${r.begin}..${r.end} vs ..${prev.end})`, {
        file, field: r.name,
      });
    }
    if (!prev || r.end > prev.end) prev = r;
  }

  return { file, fileSize, dataStart, tensors, metadata };
}
