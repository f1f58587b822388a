// exportGguf -> loadModel(.gguf) gives the logits of the safetensors
// checkpoint it came from, for Mamba-1 and Mamba-2 (groups > 1), tied and
// untied heads, f32 / f16 / bf16 sources, and export types f32, f16, q8_0, q4_0.
//
// Bounds, relative to the logit scale s = max |logit| of the safetensors model:
// - f32 export of an f32 checkpoint: bit-identical logits (max abs diff 0).
//   Every weight is copied bit for bit except A, which the GGUF stores as
//   -exp(A_log) computed here (float64 exp rounded to float32) where the
//   engine computes -std::exp(float) from the checkpoint's A_log. The two give
//   the same float32 for every A of these checkpoints (a glibc expf result
//   can differ from the correctly rounded one by an ulp in rare cases: that
//   would show here as a diff of ~1e-7·s, and the message names the element),
//   and the engine runs the same f32 kernels on both.
// - f32 export of an f16 / bf16 checkpoint: the values are widened exactly, so
//   the weights are the same numbers; only the kernels' f32 path replaces the
//   f16 / bf16 one: within 1e-5·s.
// - f16 export of an f32 checkpoint: each matrix weight rounded to f16
//   (relative error <= 2^-11; measured <= 8e-4·s on these cases): within 5e-3·s.
// - q8_0: each matrix weight w becomes d·q with |w - d·q| <= d/2 = max|block|/254
//   (and d itself rounded to f16): within 5e-2·s.
// - q4_0: |w - d·(q - 8)| <= d/2 = max|block|/16, 8x q8_0's step (measured
//   0.06-0.28·s on these random models, whose untied heads amplify it):
//   within 0.5·s. This catches a wrong layout (logits unrelated to the
//   model's); the values themselves are checked exactly by
//   test/gguf/quantized.test.ts (Q4_0 blocks against a float64 reference of
//   the dequantized weights, encoded by the same encodeGgml).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, loadModel, type GgufExportType } from '../../lib';
import { readGgufHeader } from '../../lib/loaders/gguf';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../helpers/checkpoint_writer';
import { writeTinyTokenizer } from '../helpers/gguf_fixtures';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-gguf-rt-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const cases: Array<[string, Omit<RandomCheckpointOptions, 'seed'>]> = [
  ['mamba f32 untied', { arch: 'mamba', dModel: 32, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: false, dialect: 'hf' }],
  ['mamba f32 tied original', { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize: 290, dtype: 'f32', tied: true, dialect: 'original' }],
  ['mamba bf16 tied', { arch: 'mamba', dModel: 32, nLayer: 2, vocabSize: 270, dtype: 'bf16', tied: true, dialect: 'hf' }],
  ['mamba2 f32 tied', { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: true, dialect: 'hf', headdim: 16, dState: 16 }],
  ['mamba2 f32 untied groups=2', { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 280, dtype: 'f32', tied: false, dialect: 'hf', headdim: 16, dState: 16, ngroups: 2 }],
  ['mamba2 f16 untied groups=4 no conv bias', { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 264, dtype: 'f16', tied: false, dialect: 'original', headdim: 8, dState: 8, ngroups: 4, convBias: false }],
];

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; index: number } {
  let diff = a.length === b.length ? 0 : Infinity, index = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= diff)) {
      diff = Number.isNaN(d) ? Infinity : d;
      index = i;
    }
  }
  return { diff, index };
}

function bound(src: string, type: GgufExportType): number {
  if (type === 'f32') return src === 'f32' ? 0 : 1e-5;
  return type === 'f16' ? 5e-3 : type === 'q8_0' ? 5e-2 : 0.5;
}

t.test('exported GGUF reproduces the checkpoint logits', async (t) => {
  let seed = 11;
  for (const [name, opts] of cases) {
    const dir = path.join(root, name.replace(/\W+/g, '_'));
    fs.mkdirSync(dir, { recursive: true });
    writeTinyTokenizer(dir);
    writeRandomCheckpoint(dir, { ...opts, seed: seed++ });
    // Exact inputs on the source checkpoint (inputRounding 'auto' would round
    // the inputs of its bf16 matrices, which the f32 / f16 exports do not).
    const ref = await loadModel(dir, { inputRounding: 'none' });
    const V = ref.vocabSize;
    let s = seed * 7919;
    const tokens = Array.from({ length: 37 }, () => (s = (s * 48271) % 2147483647) % V);
    const want = await ref.forward(tokens);
    const scale = maxAbs(want);

    for (const type of ['f32', 'f16', 'q8_0', 'q4_0'] as const) {
      const file = path.join(root, `${name.replace(/\W+/g, '_')}.${type}.gguf`);
      const res = await exportGguf(type === 'f16' ? ref : dir, file, { type });
      t.equal(res.vocabSize, V, `${name} ${type}: tokens = embedding rows`);
      t.equal(fs.statSync(file).size, res.bytes, `${name} ${type}: size`);
      const g = readGgufHeader(file);
      const expectTensors = 3 + (opts.tied ? 0 : 1) + opts.nLayer * (opts.arch === 'mamba' ? 10 : 9) - 1;
      t.equal(g.tensors.size, expectTensors, `${name} ${type}: tensor count`);
      const matType = g.tensors.get('blk.0.ssm_in.weight')!.type;
      t.equal(matType, { f32: 'F32', f16: 'F16', q8_0: 'Q8_0', q4_0: 'Q4_0' }[type], `${name} ${type}: ssm_in type`);
      t.equal(g.tensors.get('blk.0.ssm_a')!.type, 'F32', `${name} ${type}: ssm_a stays F32`);

      const m = await loadModel(file);
      t.same(m.config.arch, opts.arch);
      t.equal(m.config.tieEmbeddings, opts.tied, `${name} ${type}: tied`);
      t.equal(m.config.ngroups, opts.ngroups ?? 1, `${name} ${type}: groups`);
      const got = await m.forward(tokens);
      const { diff, index } = maxDiff(got, want);
      const b = bound(opts.dtype, type);
      t.ok(diff <= b * scale, `${name} ${type}: max |Δlogit| ${diff.toExponential(3)} = ${(diff / scale).toExponential(3)}·scale (scale ${scale.toFixed(3)}, bound ${b}·scale) at ${index}`);
      if (type === 'f32') {
        const text = ' the thin cat sat in the hat';
        t.same(m.tokenizer.encode(text), ref.tokenizer.encode(text), `${name}: GGUF tokenizer encodes as tokenizer.json`);
        t.equal(m.tokenizer.decode(m.tokenizer.encode(text)), text, `${name}: decode round trip`);
        t.equal(m.tokenizer.eosTokenId, 0, `${name}: eos`);
      }
      m.dispose();
    }
    ref.dispose();
  }
});

t.test('export refuses what llama.cpp cannot represent, and leaves nothing behind', async (t) => {
  const dir = path.join(root, 'bias');
  fs.mkdirSync(dir, { recursive: true });
  writeTinyTokenizer(dir);
  writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 32, nLayer: 1, vocabSize: 270, dtype: 'f32', tied: true, dialect: 'hf', useBias: true, seed: 3 });
  const file = path.join(root, 'bias.gguf');
  await t.rejects(exportGguf(dir, file, { type: 'f32' }), { name: 'ModelLoadError', field: 'use_bias' });
  t.notOk(fs.existsSync(file), 'no file written');

  const small = path.join(root, 'small-vocab');
  fs.mkdirSync(small, { recursive: true });
  writeTinyTokenizer(small); // 263 tokens
  writeRandomCheckpoint(small, { arch: 'mamba', dModel: 32, nLayer: 1, vocabSize: 100, dtype: 'f32', tied: true, dialect: 'hf', seed: 4 });
  await t.rejects(exportGguf(small, file, { type: 'f32' }), { name: 'ModelLoadError', field: 'model.vocab' });
  t.notOk(fs.existsSync(file), 'no file written');
  t.same(fs.readdirSync(root).filter((f) => f.includes('.tmp-')), [], 'no temporary file left');

  await t.rejects(exportGguf(small, file, { type: 'q5_k' as never }), RangeError);
});
