// lib/loaders/safetensors.ts: header parsing of well-formed files and a
// ModelLoadError naming the file and the tensor / header field for every
// malformed one.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelLoadError } from '../../lib/errors';
import { readSafetensorsHeader } from '../../lib/loaders/safetensors';
import { writeRawSafetensors, writeSafetensors, type StTensor } from '../helpers/safetensors_writer';

function tmpdir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-st-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const f32 = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);
const u16 = (...v: number[]) => new Uint8Array(new Uint16Array(v).buffer);

const sample: StTensor[] = [
  { name: 'a', dtype: 'F32', shape: [2, 3], data: f32(1, 2, 3, 4, 5, 6) },
  { name: 'b.weight', dtype: 'F16', shape: [3], data: u16(0x3c00, 0x4000, 0xc000) },
  { name: 'c', dtype: 'BF16', shape: [1, 1, 2], data: u16(0x3f80, 0x4040) },
  { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) },
];

/** Expects a ModelLoadError with this file and field (and optionally a message pattern). */
function throwsLoad(t: Test, fn: () => unknown, file: string, field: string | undefined, msg?: RegExp): void {
  try {
    fn();
    t.fail(`expected a ModelLoadError for ${field ?? file}`);
  } catch (err) {
    t.ok(err instanceof ModelLoadError, `ModelLoadError (got ${(err as Error).name}: ${(err as Error).message})`);
    const e = err as ModelLoadError;
    t.equal(e.file, file, 'file');
    t.equal(e.field, field, 'field');
    if (msg) t.match(e.message, msg, 'message');
  }
}

t.test('round trip: dtypes, shapes, absolute offsets, metadata, 8-byte alignment', async (t) => {
  const file = path.join(tmpdir(t), 'x.safetensors');
  writeSafetensors(file, sample, { format: 'pt', note: 'hi' });
  const st = readSafetensorsHeader(file);
  const bytes = fs.readFileSync(file);
  t.equal(st.file, file);
  t.equal(st.fileSize, bytes.length);
  t.equal(st.dataStart % 8, 0, 'data section starts 8-aligned');
  t.equal(st.dataStart, 8 + Number(bytes.readBigUInt64LE(0)));
  t.same(st.metadata, { format: 'pt', note: 'hi' });
  t.same([...st.tensors.keys()].sort(), ['a', 'b.weight', 'c', 'empty']);
  const a = st.tensors.get('a')!;
  t.same(a, { dtype: 'F32', shape: [2, 3], offset: st.dataStart, nbytes: 24 });
  t.same(Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset + a.offset, bytes.byteOffset + a.offset + a.nbytes))), [1, 2, 3, 4, 5, 6]);
  const b = st.tensors.get('b.weight')!;
  t.same(b, { dtype: 'F16', shape: [3], offset: st.dataStart + 24, nbytes: 6 });
  t.equal(bytes.readUInt16LE(b.offset + 2), 0x4000);
  const c = st.tensors.get('c')!;
  t.same(c.shape, [1, 1, 2]);
  t.equal(c.dtype, 'BF16');
  t.equal(bytes.readUInt16LE(c.offset + 2), 0x4040);
  t.equal(st.tensors.get('empty')!.nbytes, 0);
});

t.test('header without metadata, other safetensors dtypes accepted here', async (t) => {
  const file = path.join(tmpdir(t), 'y.safetensors');
  const header = JSON.stringify({ i: { dtype: 'I64', shape: [2], data_offsets: [0, 16] }, f4: { dtype: 'F4', shape: [4], data_offsets: [16, 18] } });
  writeRawSafetensors(file, header, new Uint8Array(18));
  const st = readSafetensorsHeader(file);
  t.same(st.metadata, {});
  t.equal(st.tensors.get('i')!.dtype, 'I64');
  t.equal(st.tensors.get('f4')!.nbytes, 2);
});

t.test('missing file, directory, short file', async (t) => {
  const dir = tmpdir(t);
  const missing = path.join(dir, 'nope.safetensors');
  throwsLoad(t, () => readSafetensorsHeader(missing), missing, undefined, /not found/);
  throwsLoad(t, () => readSafetensorsHeader(dir), dir, undefined, /not a regular file/);
  const short = path.join(dir, 'short.safetensors');
  fs.writeFileSync(short, Buffer.from([1, 2, 3]));
  throwsLoad(t, () => readSafetensorsHeader(short), short, 'header length', /shorter than/);
  const empty = path.join(dir, 'empty.safetensors');
  fs.writeFileSync(empty, Buffer.alloc(0));
  throwsLoad(t, () => readSafetensorsHeader(empty), empty, 'header length');
});

t.test('truncated files', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'x.safetensors');
  writeSafetensors(file, sample);
  const whole = fs.readFileSync(file);
  const st = readSafetensorsHeader(file);
  // Cut inside the data section: the last stored tensor ('c') now runs past the end.
  fs.writeFileSync(file, whole.subarray(0, whole.length - 1));
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'c', /past the end of the data section/);
  // Cut inside the first tensor: 'a', 'b.weight', 'c' all run past; some tensor is named.
  fs.writeFileSync(file, whole.subarray(0, st.dataStart + 10));
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'a', /past the end/);
  // Cut inside the header.
  fs.writeFileSync(file, whole.subarray(0, 20));
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'header length', /past the end of the file/);
});

t.test('corrupt header length', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'x.safetensors');
  const header = JSON.stringify({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } });
  writeRawSafetensors(file, header, f32(1), 1n << 40n);
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'header length', /limit/);
  writeRawSafetensors(file, header, f32(1), 0xffffffffffffffffn);
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'header length', /limit/);
  writeRawSafetensors(file, header, f32(1), BigInt(header.length + 5)); // past EOF (data is 4 bytes)
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'header length', /past the end/);
  writeRawSafetensors(file, header, f32(1), 0n);
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'header length', /too short/);
  writeRawSafetensors(file, header, f32(1), BigInt(header.length - 3)); // JSON cut short
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'header', /not valid JSON/);
});

t.test('malformed header JSON', async (t) => {
  const dir = tmpdir(t);
  const cases: Array<[string, string | undefined, RegExp]> = [
    ['{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', 'header', /not valid JSON/],
    ['[1, 2, 3]', 'header', /not a JSON object/],
    ['null', 'header', /not a JSON object/],
    ['"str"', 'header', /not a JSON object/],
    ['{"a": 5}', 'a', /not an object/],
    ['{"a": {"shape": [1], "data_offsets": [0, 4]}}', 'a', /no dtype/],
    ['{"a": {"dtype": "F32", "data_offsets": [0, 4]}}', 'a', /no shape/],
    ['{"a": {"dtype": "F32", "shape": [1]}}', 'a', /no data_offsets/],
    ['{"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}', 'a', /unknown dtype "F33"/],
    ['{"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}}', 'a', /unknown dtype 7/],
    ['{"a": {"dtype": "F32", "shape": 4, "data_offsets": [0, 4]}}', 'a', /shape is not an array/],
    ['{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', 'a', /non-negative integer/],
    ['{"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}', 'a', /non-negative integer/],
    ['{"a": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}}', 'a', /non-negative integer/],
    ['{"a": {"dtype": "F32", "shape": [1e300, 1e300], "data_offsets": [0, 4]}}', 'a', /non-negative integer|too many/],
    ['{"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}}', 'a', /too many elements/],
    ['{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}', 'a', /data_offsets is not \[begin, end\]/],
    ['{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, "4"]}}', 'a', /data_offsets is not/],
    ['{"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}', 'a', /data_offsets is not/],
    ['{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}', 'a', /before begin/],
    ['{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 12]}}', 'a', /past the end of the data section/],
    ['{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', 'a', /needs 8/],
    ['{"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}', 'a', /whole number of bytes/],
    ['{"__metadata__": [1], "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', '__metadata__', /not an object/],
    ['{"__metadata__": {"k": 1}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', '__metadata__.k', /not a string/],
  ];
  for (const [k, [header, field, msg]] of cases.entries()) {
    const file = path.join(dir, `case${k}.safetensors`);
    writeRawSafetensors(file, header, new Uint8Array(8));
    t.test(header, async (t) => throwsLoad(t, () => readSafetensorsHeader(file), file, field, msg));
  }
});

t.test('overlapping tensors', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'x.safetensors');
  // 'late' is listed first but starts later; 'early' spans [0, 16) and 'late' [8, 16).
  writeRawSafetensors(file, JSON.stringify({
    late: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
    early: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
  }), new Uint8Array(16));
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'late', /overlaps tensor early/);
  // Identical ranges overlap too.
  writeRawSafetensors(file, JSON.stringify({
    x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
    y: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
  }), new Uint8Array(4));
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'y', /overlaps tensor x/);
  // A small tensor nested in a big one, after a third tensor.
  writeRawSafetensors(file, JSON.stringify({
    big: { dtype: 'F32', shape: [4], data_offsets: [4, 20] },
    first: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
    inner: { dtype: 'F16', shape: [2], data_offsets: [12, 16] },
  }), new Uint8Array(20));
  throwsLoad(t, () => readSafetensorsHeader(file), file, 'inner', /overlaps tensor big/);
  // Adjacent and empty tensors do not overlap; gaps are allowed.
  writeRawSafetensors(file, JSON.stringify({
    p: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
    q: { dtype: 'F32', shape: [0], data_offsets: [2, 2] },
    r: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
  }), new Uint8Array(12));
  t.equal(readSafetensorsHeader(file).tensors.size, 3);
});
