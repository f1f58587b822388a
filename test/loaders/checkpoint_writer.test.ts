// test/helpers/checkpoint_writer.ts is the other half of every engine test:
// check its half-float rounding and that its random weights are initialised
// in the stated ranges (a forward pass on them stays well scaled).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bf16Bits, bf16Value, encode, f16Bits, f16Value, writeRandomCheckpoint } from '../helpers/checkpoint_writer';

t.test('f16 rounding: round to nearest even, subnormals, overflow', async (t) => {
  const cases: Array<[number, number]> = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00],
    [1e6, 0x7c00], [-Infinity, 0xfc00], [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000],
    [3 * 2 ** -25, 0x0002], [1023 * 2 ** -24, 0x03ff], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    [0.1, 0x2e66], [1 / 3, 0x3555],
  ];
  for (const [v, bits] of cases) t.equal(f16Bits(v), bits, `f16(${v})`);
  t.ok(Number.isNaN(f16Value(f16Bits(NaN))));
  for (const [v, bits] of cases) if (Number.isFinite(v) && Math.abs(v) <= 65504) t.equal(f16Value(bits), f16Value(f16Bits(v)));
  t.equal(f16Value(0x3c02), 1 + 2 ** -9);
  t.equal(f16Value(0x0001), 2 ** -24);
});

t.test('bf16 rounding', async (t) => {
  const cases: Array<[number, number]> = [
    [1, 0x3f80], [-2, 0xc000], [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [0.1, 0x3dcd], [3e38, 0x7f62],
  ];
  for (const [v, bits] of cases) t.equal(bf16Bits(v), bits, `bf16(${v})`);
  t.equal(bf16Value(0x3f82), 1 + 2 ** -6);
  t.ok(Number.isNaN(bf16Value(bf16Bits(NaN))));
});

t.test('encode returns the stored values and their bytes', async (t) => {
  const v = [0.1, -1.5, 3.14159];
  const a = encode(v, 'f32');
  t.same(Array.from(a.stored), v.map(Math.fround));
  t.same(Array.from(new Float32Array(a.bytes.buffer)), v.map(Math.fround));
  const h = encode(v, 'f16');
  t.same(Array.from(h.stored), v.map((x) => f16Value(f16Bits(x))));
  t.equal(h.bytes.byteLength, 6);
  t.equal(h.bytes[0] | (h.bytes[1] << 8), f16Bits(0.1));
  const b = encode(v, 'bf16');
  t.same(Array.from(b.stored), v.map((x) => bf16Value(bf16Bits(x))));
});

t.test('initialisation ranges', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-writer-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const softplus = (x: number) => Math.log1p(Math.exp(x));
  const stats = (a: Float64Array) => {
    const mean = a.reduce((s, x) => s + x, 0) / a.length;
    return { mean, std: Math.sqrt(a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length), min: Math.min(...a), max: Math.max(...a) };
  };
  const m1 = writeRandomCheckpoint(path.join(dir, 'm1'), { arch: 'mamba', dModel: 64, nLayer: 1, vocabSize: 100, dtype: 'f32', tied: false, dialect: 'hf', seed: 3 });
  const w = (n: string) => m1.weights.get(n)!;
  const inProj = stats(w('backbone.layers.0.mixer.in_proj.weight'));
  t.ok(Math.abs(inProj.std - 1 / 8) < 0.01, `in_proj std ${inProj.std} ~ 1/sqrt(64)`);
  t.ok(Math.abs(inProj.mean) < 0.01);
  const outProj = stats(w('backbone.layers.0.mixer.out_proj.weight'));
  t.ok(Math.abs(outProj.std - 1 / Math.sqrt(128)) < 0.01, `out_proj std ${outProj.std} ~ 1/sqrt(128)`);
  const emb = stats(w('backbone.embeddings.weight'));
  t.ok(Math.abs(emb.std - 1) < 0.05, `embedding std ${emb.std} ~ 1`);
  const conv = stats(w('backbone.layers.0.mixer.conv1d.weight'));
  t.ok(conv.min >= -0.5 && conv.max <= 0.5 && conv.max - conv.min > 0.9, 'conv weights U(-0.5, 0.5)');
  const aLog = stats(w('backbone.layers.0.mixer.A_log'));
  t.ok(aLog.min >= 0 && aLog.max <= Math.log(16) && aLog.max - aLog.min > 2, 'A_log = log U(1, 16)');
  const dt = w('backbone.layers.0.mixer.dt_proj.bias').map(softplus);
  t.ok(Math.min(...dt) >= 0.001 * 0.999 && Math.max(...dt) <= 0.1 * 1.001 && Math.max(...dt) / Math.min(...dt) > 20, 'softplus(dt bias) in [0.001, 0.1]');
  const D = stats(w('backbone.layers.0.mixer.D'));
  t.ok(Math.abs(D.mean - 1) < 0.05 && D.std < 0.2, 'D ~ 1');
  const norm = stats(w('backbone.layers.0.norm.weight'));
  t.ok(Math.abs(norm.mean - 1) < 0.05 && norm.std > 0.01 && norm.std < 0.2, 'norm ~ 1 + noise');

  const m2 = writeRandomCheckpoint(path.join(dir, 'm2'), { arch: 'mamba2', dModel: 64, nLayer: 1, vocabSize: 100, dState: 16, headdim: 8, dtype: 'bf16', tied: true, dialect: 'original', seed: 4 });
  const dt2 = m2.weights.get('backbone.layers.0.mixer.dt_bias')!.map(softplus);
  t.ok(Math.min(...dt2) >= 0.0009 && Math.max(...dt2) <= 0.101, 'mamba2 softplus(dt_bias) in [0.001, 0.1] (bf16-rounded)');
  t.equal(m2.weights.get('backbone.layers.0.mixer.A_log')!.length, 16, 'one A_log per head');
  t.notOk(m2.weights.has('lm_head.weight'), 'tied: no lm_head');
  t.equal(m2.config.vocabSize, 112, 'original mamba2 pads to 16');
  t.ok(m2.storedNames.has('backbone.embedding.weight'), 'original dialect stores the singular embedding name');
  const cfg = fs.readFileSync(path.join(dir, 'm2', 'config.json'), 'utf8');
  t.match(cfg, /"layer": "Mamba2"/);
  const cfgHf = fs.readFileSync(path.join(dir, 'm1', 'config.json'), 'utf8');
  t.match(cfgHf, /"model_type": "mamba"/);
  // Same seed, same checkpoint.
  const again = writeRandomCheckpoint(path.join(dir, 'm1b'), { arch: 'mamba', dModel: 64, nLayer: 1, vocabSize: 100, dtype: 'f32', tied: false, dialect: 'hf', seed: 3 });
  t.same(fs.readFileSync(path.join(dir, 'm1b', 'model.safetensors')), fs.readFileSync(path.join(dir, 'm1', 'model.safetensors')));
  t.same(again.weights.get('lm_head.weight'), m1.weights.get('lm_head.weight'));
});
