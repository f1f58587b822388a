// GGUF files with F16, BF16, Q8_0 and Q4_0 matrices run in node-mamba exactly
// as the float64 reference model does on the same (dequantised) weights: the
// loader hands the engine the right bytes, layouts and shapes for every tensor
// type, whatever the precision lost by quantizing. Files: exportGguf's q8_0
// output, and f32 exports rewritten with their matrices (token_embd, output,
// ssm_in, ssm_out, ssm_x, ssm_dt where the rows allow) in BF16 / Q4_0 / F16.
//
// Tolerance as test/model/logits.test.ts (engine float32 vs reference
// float64 on identical weight values): |err| <= 2e-4 + 2e-4·|ref|, with
// inputRounding 'none'. With the default rounded inputs the reference rounds
// the inputs of each linear layer the same way (ROUNDED below). The
// reference takes A_log: A = -exp(A_log) is read back as log(-A), exact to
// float64 rounding.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, loadModel } from '../../lib';
import { readGgufHeader, type GgmlType } from '../../lib/loaders/gguf';
import { GgufWriter } from '../../lib/export/gguf_writer';
import { encodeGgml } from '../../lib/export/export_gguf';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../helpers/checkpoint_writer';
import { writeTinyTokenizer } from '../helpers/gguf_fixtures';
import { referenceForward } from '../helpers/reference_model';
import { ggufReferenceWeights } from '../helpers/gguf_reference';
import { assertRoundedClose, worstError } from '../helpers/reference';

const ATOL = 2e-4, RTOL = 2e-4;
// Rounded inputs (inputRounding 'auto') against the reference that rounds the
// same way: the reference rounds its float64 activations, the engine its
// float32 ones, so an input within float32 noise of a rounding boundary can
// land one step apart (a bf16 ulp, or one int8 step of its block).
// See assertRoundedClose (test/helpers/reference.ts); a flip moves the
// logits of its token by ~1e-2 here.
const ROUNDED = { atol: 2e-3, rtol: 2e-3, loose: 5e-2, maxOffFraction: 0.25 };
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-gguf-q-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const MATRICES = /^(token_embd|output|blk\.\d+\.(ssm_in|ssm_out|ssm_x|ssm_dt))\.weight$/;

/** Rewrites an f32 GGUF with its matrices (rows a multiple of 32 for the block types) in `type`. */
async function retype(src: string, dst: string, type: GgmlType): Promise<number> {
  const g = readGgufHeader(src);
  const bytes = fs.readFileSync(src);
  const w = new GgufWriter();
  for (const [k, e] of g.metadata) w.add(k, e.type, e.value);
  let changed = 0;
  for (const ti of g.tensors.values()) {
    const blocky = type === 'Q8_0' || type === 'Q4_0';
    const to: GgmlType = MATRICES.test(ti.name) && (!blocky || ti.dims[0] % 32 === 0) ? type : 'F32';
    if (to !== 'F32') changed++;
    w.tensor({
      name: ti.name, dims: ti.dims, type: to,
      data: () => {
        const raw = bytes.subarray(ti.offset, ti.offset + ti.nbytes);
        const f = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
        return encodeGgml(f, to, ti.dims[0]);
      },
    });
  }
  await w.write(dst);
  return changed;
}

const cases: Array<[string, Omit<RandomCheckpointOptions, 'seed'>]> = [
  ['mamba untied', { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: false, dialect: 'hf', dtRank: 32 }],
  ['mamba2 tied groups=2', { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: true, dialect: 'hf', headdim: 16, dState: 16, ngroups: 2 }],
];

t.test('quantized and half-precision GGUF tensors run as the reference on the same values', async (t) => {
  let seed = 40;
  for (const [name, opts] of cases) {
    const dir = path.join(root, name.replace(/\W+/g, '_'));
    fs.mkdirSync(dir, { recursive: true });
    writeTinyTokenizer(dir);
    writeRandomCheckpoint(dir, { ...opts, seed: seed++ });
    const f32 = path.join(dir, 'f32.gguf');
    await exportGguf(dir, f32, { type: 'f32' });
    const files: Array<[string, string]> = [];
    const q8 = path.join(dir, 'q8_0.gguf');
    await exportGguf(dir, q8, { type: 'q8_0' });
    files.push(['exportGguf q8_0', q8]);
    for (const type of ['F16', 'BF16', 'Q4_0', 'Q8_0'] as const) {
      const file = path.join(dir, `${type}.gguf`);
      const n = await retype(f32, file, type);
      t.ok(n >= 2 * opts.nLayer + 1, `${name}: ${n} matrices rewritten as ${type}`);
      files.push([`rewritten ${type}`, file]);
    }
    let s = seed * 104729;
    for (const [what, file] of files) {
      const { config, weights, rounding } = ggufReferenceWeights(file);
      const tokens = Array.from({ length: 29 }, () => (s = (s * 48271) % 2147483647) % config.vocabSize);
      const exact = await loadModel(file, { inputRounding: 'none' });
      const got = await exact.forward(tokens);
      exact.dispose();
      const ref = referenceForward(config, weights, tokens);
      const w = worstError(got, ref, ATOL, RTOL);
      t.ok(w.ratio <= 1, `${name}, ${what}, exact inputs: worst err/tol ${w.ratio.toPrecision(3)} at ${w.index} (${w.actual} vs ${w.expected})`);

      // Rounded inputs (the default): prefill (GEMM path) of all tokens, and
      // prefill of all but 3 then 3 decode steps (GEMV, dot-product path).
      const model = await loadModel(file);
      const rref = referenceForward(config, weights, tokens, rounding);
      const all = await model.forward(tokens);
      const seq = await model.createSequence();
      await seq.prefill(tokens.slice(0, -3));
      const V = config.vocabSize;
      const steps = new Float32Array(3 * V);
      for (let i = 0; i < 3; i++) steps.set(await seq.step(tokens[tokens.length - 3 + i]), i * V);
      model.dispose();
      assertRoundedClose(t, all, rref, V, ROUNDED, `${name}, ${what}, rounded inputs, prefill`);
      assertRoundedClose(t, steps, rref.subarray(rref.length - 3 * V), V, ROUNDED, `${name}, ${what}, rounded inputs, decode`);
      if (what !== 'rewritten F16') {
        const wx = worstError(all, ref, ATOL, RTOL);
        t.ok(wx.ratio > 1, `${name}, ${what}: rounding the inputs changes the logits (err/tol ${wx.ratio.toPrecision(3)} against the exact reference)`);
      }
    }
  }
});

// Q8_0 matrices with rounded inputs are packed into panels at load (int8 dot
// products at every level); NODE_MAMBA_BLOCK_PANELS=0 keeps them in rows (the
// float kernels on the rounded inputs). A matrix holding q = -128 (which
// ggml's quantizer never writes, and which the levels without VNNI cannot
// multiply in panels) stays in rows. All three, at every level, match the
// reference on the file's values.
t.test('Q8_0 in panels, in rows, and with q = -128 run as the reference at every level', async (t) => {
  const dir = path.join(root, 'panels');
  fs.mkdirSync(dir, { recursive: true });
  writeTinyTokenizer(dir);
  writeRandomCheckpoint(dir, { ...cases[1][1], seed: 77 });
  const q8 = path.join(dir, 'q8_0.gguf');
  await exportGguf(dir, q8, { type: 'q8_0' });
  // Every q of the first 40 blocks of blk.0.ssm_in made -128.
  const bad = path.join(dir, 'q8_0-min.gguf');
  const bytes = fs.readFileSync(q8);
  const ti = readGgufHeader(q8).tensors.get('blk.0.ssm_in.weight');
  t.equal(ti?.type, 'Q8_0', 'blk.0.ssm_in.weight is Q8_0');
  for (let b = 0; b < 40; b++) bytes.fill(0x80, ti!.offset + b * 34 + 2, ti!.offset + b * 34 + 34);
  fs.writeFileSync(bad, bytes);
  const { kernels } = await import('../../lib');
  const levels = (['scalar', 'avx2', 'avx512', 'avx512vnni'] as const).filter(
    (l) => ['scalar', 'avx2', 'avx512', 'avx512vnni'].indexOf(l) <= ['scalar', 'avx2', 'avx512', 'avx512vnni'].indexOf(kernels.runtimeInfo().detectedIsa));
  for (const [what, file, env] of [['panels', q8, undefined], ['rows', q8, '0'], ['q = -128', bad, undefined]] as const) {
    const { config, weights, rounding } = ggufReferenceWeights(file);
    const tokens = Array.from({ length: 21 }, (_, i) => (i * 37 + 5) % config.vocabSize);
    const rref = referenceForward(config, weights, tokens, rounding);
    const V = config.vocabSize;
    if (env === undefined) delete process.env.NODE_MAMBA_BLOCK_PANELS;
    else process.env.NODE_MAMBA_BLOCK_PANELS = env;
    const model = await loadModel(file);
    delete process.env.NODE_MAMBA_BLOCK_PANELS;
    try {
      for (const isa of levels) {
        kernels.setIsa(isa);
        const all = await model.forward(tokens);
        const seq = await model.createSequence();
        await seq.prefill(tokens.slice(0, -3));
        const steps = new Float32Array(3 * V);
        for (let i = 0; i < 3; i++) steps.set(await seq.step(tokens[tokens.length - 3 + i]), i * V);
        seq.dispose();
        assertRoundedClose(t, all, rref, V, ROUNDED, `${what}, ${isa}, prefill`);
        assertRoundedClose(t, steps, rref.subarray(rref.length - 3 * V), V, ROUNDED, `${what}, ${isa}, decode`);
      }
    } finally {
      kernels.setIsa(kernels.runtimeInfo().detectedIsa);
      model.dispose();
    }
  }
});
