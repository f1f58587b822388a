// The GGUF reader and writer: every metadata value type round-trips; Q8_0
// encoding follows ggml's reference quantizer; malformed files (bad magic,
// unsupported version, truncation anywhere, absurd counts and lengths,
// unknown or unsupported tensor types, misaligned or out-of-file tensors,
// missing or wrong keys and tensors) are ModelLoadErrors naming the file and
// the field, from readGgufHeader and from loadModel.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, loadModel, ModelLoadError } from '../../lib';
import { GgufValueType, readGgufHeader, type GgufValue } from '../../lib/loaders/gguf';
import { GgufWriter } from '../../lib/export/gguf_writer';
import { encodeGgml, f16BitsToF32 } from '../../lib/export/export_gguf';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';
import { RawGguf, writeTinyTokenizer } from '../helpers/gguf_fixtures';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-gguf-rd-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

function loadError(fn: () => unknown): ModelLoadError | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof ModelLoadError) return e;
    throw e;
  }
  return undefined;
}

async function loadModelError(file: string): Promise<ModelLoadError | undefined> {
  try {
    (await loadModel(file)).dispose();
  } catch (e) {
    if (e instanceof ModelLoadError) return e;
    throw e;
  }
  return undefined;
}

/** Asserts readGgufHeader(file) fails with a ModelLoadError for `field` whose message matches `re`. */
function expectBad(t: Test, file: string, field: string, re: RegExp, what: string): void {
  const e = loadError(() => readGgufHeader(file));
  t.ok(e, `${what}: ModelLoadError`);
  if (!e) return;
  t.equal(e.file, file, `${what}: names the file`);
  t.equal(e.field, field, `${what}: names ${field} (${e.message})`);
  t.match(e.message, re, `${what}: says why`);
}

/** Writes a raw file and returns its path. */
function raw(name: string, g: RawGguf | Buffer): string {
  const file = path.join(root, name);
  fs.writeFileSync(file, g instanceof RawGguf ? g.bytes() : g);
  return file;
}

/** A valid small file: one key, one F32 tensor {4} at offset 0. */
function small(opts: { type?: number; dims?: number[]; offset?: number; data?: number } = {}): RawGguf {
  const g = new RawGguf().raw(Buffer.from('GGUF')).u32(3).u64(1).u64(1);
  g.str('general.architecture').u32(GgufValueType.STRING).str('mamba');
  const dims = opts.dims ?? [4];
  g.str('w').u32(dims.length);
  for (const d of dims) g.u64(d);
  g.u32(opts.type ?? 0).u64(opts.offset ?? 0);
  g.pad(32);
  g.raw(new Uint8Array(opts.data ?? 16));
  return g;
}

t.test('metadata of every type round-trips through the writer and reader', async (t) => {
  const w = new GgufWriter();
  const values: Array<[string, GgufValueType, GgufValue]> = [
    ['u8', GgufValueType.UINT8, 200], ['i8', GgufValueType.INT8, -100],
    ['u16', GgufValueType.UINT16, 60000], ['i16', GgufValueType.INT16, -30000],
    ['u32', GgufValueType.UINT32, 4000000000], ['i32', GgufValueType.INT32, -2000000000],
    ['f32', GgufValueType.FLOAT32, 0.5], ['f64', GgufValueType.FLOAT64, Math.PI],
    ['u64', GgufValueType.UINT64, 2n ** 60n], ['i64', GgufValueType.INT64, -12345],
    ['b', GgufValueType.BOOL, true], ['s', GgufValueType.STRING, 'héllo ✓'],
    ['empty', GgufValueType.STRING, ''],
    ['arr', GgufValueType.ARRAY, { itemType: GgufValueType.STRING, values: ['a', 'b c', ''] }],
    ['nums', GgufValueType.ARRAY, { itemType: GgufValueType.INT32, values: [1, -2, 3] }],
    ['nested', GgufValueType.ARRAY, { itemType: GgufValueType.ARRAY, values: [{ itemType: GgufValueType.UINT8, values: [1, 2] }, { itemType: GgufValueType.UINT8, values: [] }] }],
  ];
  for (const [k, ty, v] of values) w.add(k, ty, v);
  const data = new Float32Array([1, 2, 3, 4, 5, 6]);
  w.tensor({ name: 'x', dims: [3, 2], type: 'F32', data: () => new Uint8Array(data.buffer) });
  w.tensor({ name: 'y', dims: [5], type: 'F32', data: () => new Uint8Array(20) });
  const file = path.join(root, 'types.gguf');
  await w.write(file);
  const g = readGgufHeader(file);
  t.equal(g.version, 3);
  t.equal(g.alignment, 32);
  for (const [k, ty, v] of values) {
    t.equal(g.metadata.get(k)?.type, ty, `${k}: type`);
    t.same(g.metadata.get(k)?.value, v, `${k}: value`);
  }
  const x = g.tensors.get('x')!;
  t.same([x.dims, x.type, x.nbytes], [[3, 2], 'F32', 24]);
  t.equal(x.offset % 32, 0, 'data aligned');
  t.equal(g.tensors.get('y')!.offset, x.offset + 32, 'next tensor at the next aligned offset');
  const back = fs.readFileSync(file).subarray(x.offset, x.offset + 24);
  t.same(Array.from(new Float32Array(back.buffer.slice(back.byteOffset, back.byteOffset + 24))), Array.from(data), 'data where the offset says');
});

t.test('Q8_0 encoding is ggml\'s reference quantizer', async (t) => {
  const row = new Float32Array(64);
  for (let i = 0; i < 64; i++) row[i] = Math.fround(Math.sin(i * 1.7) * (i < 32 ? 0.01 : 3));
  row[5] = 0; // zeros stay zero
  const enc = encodeGgml(row, 'Q8_0', 64);
  t.equal(enc.byteLength, 2 * 34, 'two 34-byte blocks');
  const b = Buffer.from(enc.buffer, enc.byteOffset, enc.byteLength);
  let worst = 0;
  for (let blk = 0; blk < 2; blk++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(row[blk * 32 + j]));
    const d = f16BitsToF32(b.readUInt16LE(blk * 34));
    t.ok(Math.abs(d - amax / 127) <= (amax / 127) * 2 ** -11, `block ${blk}: d = f16(max|w| / 127)`);
    let maxQ = 0;
    for (let j = 0; j < 32; j++) {
      const q = b.readInt8(blk * 34 + 2 + j);
      maxQ = Math.max(maxQ, Math.abs(q));
      const w = row[blk * 32 + j];
      t.equal(q, Math.sign(w) * Math.floor(Math.abs(w * 127 / amax) + 0.5) || 0, `block ${blk}[${j}]: q = round(w / d)`);
      worst = Math.max(worst, Math.abs(w - d * q) / amax);
    }
    t.equal(maxQ, 127, `block ${blk}: the largest value maps to ±127`);
  }
  t.ok(worst <= 1 / 254 + 2 ** -11, `dequantised within d/2 (+ f16 rounding of d): worst ${worst.toExponential(3)}·max|block|`);
  t.same(Array.from(encodeGgml(new Float32Array(32), 'Q8_0', 32)), new Array(34).fill(0), 'an all-zero block is all zeros');
  t.throws(() => encodeGgml(new Float32Array(48), 'Q8_0', 48), RangeError, 'rows must be a multiple of 32');
});

t.test('malformed files are ModelLoadErrors naming the file and the field', async (t) => {
  t.ok(readGgufHeader(raw('ok.gguf', small())).tensors.get('w'), 'the base file reads');
  const v2 = small().bytes();
  v2.writeUInt32LE(2, 4);
  t.equal(readGgufHeader(raw('v2.gguf', v2)).version, 2, 'version 2 reads (same layout as 3)');

  expectBad(t, raw('empty.gguf', Buffer.alloc(0)), 'magic', /too short/, 'empty file');
  expectBad(t, raw('magic.gguf', Buffer.concat([Buffer.from('GGML'), small().bytes().subarray(4)])), 'magic', /not a GGUF file/, 'bad magic');
  const v1 = small().bytes();
  v1.writeUInt32LE(1, 4);
  expectBad(t, raw('v1.gguf', v1), 'version', /version 1 is not supported/, 'version 1');
  const be = small().bytes();
  be.writeUInt32BE(3, 4);
  expectBad(t, raw('be.gguf', be), 'version', /big-endian/, 'big-endian file');

  // Truncation at every byte of the header, and inside the data.
  const full = small().bytes();
  const fieldsSeen = new Set<string>();
  let allTyped = true;
  for (let n = 0; n < full.length; n++) {
    const file = raw('trunc.gguf', full.subarray(0, n));
    const e = loadError(() => readGgufHeader(file));
    if (!e || e.file !== file || !e.field) allTyped = false;
    else fieldsSeen.add(e.field);
  }
  t.ok(allTyped, `every truncation of the ${full.length}-byte file is a ModelLoadError with a field`);
  t.same([...fieldsSeen].sort(), ['general.architecture', 'kv_count', 'magic', 'tensor[0]', 'tensor_count', 'version', 'w'].sort(), 'fields named along the way');
  expectBad(t, raw('trunc-data.gguf', full.subarray(0, full.length - 1)), 'w', /past the end of the file/, 'truncated data');

  // Absurd counts and lengths are refused before anything is allocated.
  const hdr = (tensors: bigint, kvs: bigint) => new RawGguf().raw(Buffer.from('GGUF')).u32(3).u64(tensors).u64(kvs);
  expectBad(t, raw('kv-count.gguf', hdr(0n, 2n ** 62n).raw(new Uint8Array(64))), 'kv_count', /absurdly large|cannot fit/, 'absurd kv count');
  expectBad(t, raw('kv-count2.gguf', hdr(0n, 1000n).raw(new Uint8Array(64))), 'kv_count', /cannot fit/, 'kv count past the file');
  expectBad(t, raw('t-count.gguf', hdr(1n << 40n, 0n).raw(new Uint8Array(64))), 'tensor_count', /cannot fit/, 'absurd tensor count');
  expectBad(t, raw('key-len.gguf', hdr(0n, 1n).u64(2n ** 40n).raw(new Uint8Array(64))), 'metadata[0]', /length .* runs past the end/, 'absurd key length');
  expectBad(t, raw('str-len.gguf', hdr(0n, 1n).str('k').u32(GgufValueType.STRING).u64(1e9).raw(new Uint8Array(64))), 'k', /runs past the end/, 'absurd string length');
  expectBad(t, raw('arr-len.gguf', hdr(0n, 1n).str('k').u32(GgufValueType.ARRAY).u32(GgufValueType.UINT32).u64(1e12).raw(new Uint8Array(64))), 'k', /cannot fit/, 'absurd array length');
  expectBad(t, raw('arr-len2.gguf', hdr(0n, 1n).str('k').u32(GgufValueType.ARRAY).u32(GgufValueType.STRING).u64(2n ** 63n).raw(new Uint8Array(64))), 'k', /absurdly large/, 'array length above 2^53');
  expectBad(t, raw('vtype.gguf', hdr(0n, 1n).str('k').u32(99).raw(new Uint8Array(64))), 'k', /not a GGUF value type/, 'unknown value type');
  expectBad(t, raw('bool.gguf', hdr(0n, 1n).str('k').u32(GgufValueType.BOOL).u8(7).raw(new Uint8Array(64))), 'k', /bool value is 7/, 'bad bool');
  expectBad(t, raw('dup-key.gguf', hdr(0n, 2n).str('k').u32(GgufValueType.UINT8).u8(1).str('k').u32(GgufValueType.UINT8).u8(1).raw(new Uint8Array(64))), 'k', /twice/, 'duplicate key');
  expectBad(t, raw('align.gguf', hdr(0n, 1n).str('general.alignment').u32(GgufValueType.UINT32).u32(24).raw(new Uint8Array(64))), 'general.alignment', /power of two/, 'bad alignment');
  expectBad(t, raw('dims.gguf', small({ dims: [4, 2 ** 40] })), 'w', /absurdly large/, 'absurd dims');
  expectBad(t, raw('ndims.gguf', small({ dims: [1, 1, 1, 1, 4] })), 'w', /at most 4/, 'too many dims');
  expectBad(t, raw('dim0.gguf', small({ dims: [4, 0] })), 'w', /dimension 1 is 0/, 'zero dim');

  // Tensor types: unknown, known but unsupported, block size.
  const unknown = loadError(() => readGgufHeader(raw('type-k.gguf', small({ type: 12 }))));
  t.equal(unknown?.field, 'w', 'Q4_K: names the tensor');
  t.match(unknown?.message ?? '', /tensor type Q4_K is not supported; supported: F32, F16, Q4_0, Q8_0, BF16/, 'Q4_K: names the type and the supported ones');
  expectBad(t, raw('type-99.gguf', small({ type: 99 })), 'w', /unknown type 99 is not supported; supported:/, 'unknown type id');
  expectBad(t, raw('q8-block.gguf', small({ type: 8, dims: [16] })), 'w', /not a multiple of its block size 32/, 'Q8_0 row not a multiple of 32');
  t.equal(readGgufHeader(raw('q8.gguf', small({ type: 8, dims: [32, 2], data: 68 }))).tensors.get('w')?.nbytes, 68, 'Q8_0 [32, 2] is 68 bytes');
  t.equal(readGgufHeader(raw('q4.gguf', small({ type: 2, dims: [64], data: 36 }))).tensors.get('w')?.nbytes, 36, 'Q4_0 [64] is 36 bytes');
  t.equal(readGgufHeader(raw('bf16.gguf', small({ type: 30, dims: [8] }))).tensors.get('w')?.nbytes, 16, 'BF16 [8] is 16 bytes');
  expectBad(t, raw('q4-eof.gguf', small({ type: 2, dims: [64], data: 35 })), 'w', /past the end/, 'Q4_0 tensor one byte short');

  // Offsets.
  expectBad(t, raw('misaligned.gguf', small({ offset: 4 })), 'w', /not a multiple of the alignment 32/, 'misaligned offset');
  expectBad(t, raw('past-eof.gguf', small({ offset: 64 })), 'w', /runs past the end of the file/, 'tensor past EOF');
  expectBad(t, raw('past-eof2.gguf', small({ offset: 2 ** 50 })), 'w', /runs past the end of the file/, 'tensor far past EOF');
});

t.test('model-level errors from loadModel name the GGUF key or tensor', async (t) => {
  const dir = path.join(root, 'ck');
  fs.mkdirSync(dir, { recursive: true });
  writeTinyTokenizer(dir);
  writeRandomCheckpoint(dir, { arch: 'mamba2', dModel: 64, nLayer: 1, vocabSize: 270, dtype: 'f32', tied: false, dialect: 'hf', headdim: 16, dState: 16, ngroups: 2, seed: 9 });
  const good = path.join(root, 'good.gguf');
  await exportGguf(dir, good, { type: 'f32' });
  (await loadModel(good)).dispose();

  /** Rewrites `good` through the writer with changes to its metadata and tensors. */
  async function variant(
    name: string,
    edit: { drop?: string[]; set?: Array<[string, GgufValueType, GgufValue]>; dropTensor?: string; tensor?: { name: string; dims?: number[]; type?: 'F32' | 'Q8_0' } },
  ): Promise<string> {
    const g = readGgufHeader(good);
    const w = new GgufWriter();
    const sets = new Map((edit.set ?? []).map(([k, ty, v]) => [k, { ty, v }]));
    for (const [k, e] of g.metadata) {
      if (edit.drop?.includes(k)) continue;
      const s = sets.get(k);
      w.add(k, s ? s.ty : e.type, s ? s.v : e.value);
      sets.delete(k);
    }
    for (const [k, s] of sets) w.add(k, s.ty, s.v);
    const bytes = fs.readFileSync(good);
    for (const ti of g.tensors.values()) {
      if (ti.name === edit.dropTensor) continue;
      const patch = edit.tensor?.name === ti.name ? edit.tensor : undefined;
      const dims = patch?.dims ?? ti.dims;
      const type = patch?.type ?? ti.type;
      const n = dims.reduce((a, b) => a * b, 1);
      const size = type === 'Q8_0' ? (n / 32) * 34 : n * 4;
      w.tensor({ name: ti.name, dims, type, data: () => (size === ti.nbytes ? bytes.subarray(ti.offset, ti.offset + ti.nbytes) : new Uint8Array(size)) });
    }
    const file = path.join(root, `${name}.gguf`);
    await w.write(file);
    return file;
  }

  const cases: Array<[string, Parameters<typeof variant>[1], string, RegExp]> = [
    ['missing block_count', { drop: ['mamba2.block_count'] }, 'mamba2.block_count', /required metadata key is missing/],
    ['missing group_count', { drop: ['mamba2.ssm.group_count'] }, 'mamba2.ssm.group_count', /missing/],
    ['missing architecture', { drop: ['general.architecture'] }, 'general.architecture', /missing/],
    ['llama architecture', { set: [['general.architecture', GgufValueType.STRING, 'llama']] }, 'general.architecture', /"llama" is not supported/],
    ['eps as a string', { set: [['mamba2.attention.layer_norm_rms_epsilon', GgufValueType.STRING, '1e-5']] }, 'mamba2.attention.layer_norm_rms_epsilon', /expected a float/],
    ['heads not dividing inner', { set: [['mamba2.ssm.time_step_rank', GgufValueType.UINT32, 7]] }, 'mamba2.ssm.time_step_rank', /does not divide/],
    ['wrong group count', { set: [['mamba2.ssm.group_count', GgufValueType.UINT32, 1]] }, 'blk.0.ssm_in.weight', /rows imply group_count 2/],
    ['missing tensor', { dropTensor: 'blk.0.ssm_out.weight' }, 'blk.0.ssm_out.weight', /missing/],
    ['misshapen tensor', { tensor: { name: 'blk.0.ssm_d', dims: [1, 9] } }, 'blk.0.ssm_d', /shape/],
    ['quantized norm', { tensor: { name: 'blk.0.attn_norm.weight', type: 'Q8_0' } }, 'blk.0.attn_norm.weight', /Q8_0 is not supported for this tensor/],
    ['falcon-mamba norms', { set: [['mamba2.ssm.dt_b_c_rms', GgufValueType.BOOL, true]] }, 'mamba2.ssm.dt_b_c_rms', /not supported/],
    ['other tokenizer', { set: [['tokenizer.ggml.model', GgufValueType.STRING, 'bert']] }, 'tokenizer.ggml.model', /not supported/],
    ['llama tokenizer without byte tokens', { set: [['tokenizer.ggml.model', GgufValueType.STRING, 'llama']] }, 'tokenizer.ggml.tokens', /256 byte tokens/],
    ['other pre-tokenizer', { set: [['tokenizer.ggml.pre', GgufValueType.STRING, 'qwen2']] }, 'tokenizer.ggml.pre', /not supported/],
    ['no merges', { drop: ['tokenizer.ggml.merges'] }, 'tokenizer.ggml.merges', /needs merges/],
    ['token types length', { set: [['tokenizer.ggml.token_type', GgufValueType.ARRAY, { itemType: GgufValueType.INT32, values: [1, 1] }]] }, 'tokenizer.ggml.token_type', /2 entries/],
  ];
  for (const [what, edit, field, re] of cases) {
    const file = await variant(what.replace(/\W+/g, '_'), edit);
    const e = await loadModelError(file);
    t.ok(e, `${what}: ModelLoadError`);
    t.equal(e?.file, file, `${what}: names the file`);
    t.equal(e?.field, field, `${what}: names ${field} (${e?.message})`);
    t.match(e?.message ?? '', re, `${what}: says why`);
  }

  // Without tokenizer keys the default tokenizer is used; { tokenizer } overrides the file's.
  const noTok = await variant('no_tokenizer', { drop: ['tokenizer.ggml.model', 'tokenizer.ggml.pre', 'tokenizer.ggml.tokens', 'tokenizer.ggml.token_type', 'tokenizer.ggml.merges'] });
  const m = await loadModel(noTok);
  t.ok(m.tokenizer.vocabSize > 50000, 'no tokenizer keys: the shipped GPT-NeoX tokenizer');
  m.dispose();
  const m2 = await loadModel(await variant('other_tok_override', { set: [['tokenizer.ggml.model', GgufValueType.STRING, 'bert']] }), { tokenizer: dir });
  t.equal(m2.tokenizer.vocabSize, 263, '{ tokenizer } overrides the file\'s');
  m2.dispose();
  await t.rejects(loadModel(path.join(root, 'missing.gguf')), { name: 'ModelLoadError', message: /GGUF file not found/ });
});
