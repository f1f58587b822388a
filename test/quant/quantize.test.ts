// quantize(): the Hadamard rotation preserves the float model; every scheme's
// checkpoint loads and runs, on every ISA level, with the logits of a float64
// reference that applies the same quantized arithmetic (dequantized weights,
// the stored static input scales, the online rotation of the out_proj input);
// prefill then decode equals one prefill; bad input is a typed error before
// anything is written; an abort leaves nothing behind.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, kernels, loadModel, quantize, QuantizeError, ModelLoadError } from '../../lib';
import { writeTinyTokenizer } from '../helpers/gguf_fixtures';
import { readSafetensorsHeader } from '../../lib/loaders/safetensors';
import { dequantize, roundHalfEven, type QuantizedWeight } from '../../lib/quant/formats';
import { hadamardRows } from '../../lib/quant/hadamard';
import { rotateModel, type FloatTensor } from '../../lib/quant/rotate';
import type { MambaConfig } from '../../lib/model/config';
import { bf16Value, f16Value, writeRandomCheckpoint, type RandomCheckpoint } from '../../lib/testing/random_checkpoint';
import { writeSafetensors } from '../../lib/testing/safetensors_writer';
import { hfConfigJson } from '../../lib/quant/hf_config';
import { referenceForward, type ReferenceWeights, type RoundMode } from '../helpers/reference_model';
import { assertRoundedClose, availableIsas, forEachIsaAsync } from '../helpers/reference';

/** The promise rejects with an error that satisfies `pred` (tap's t.rejects reads a function as a class). */
async function rejectsWith(t: Test, p: Promise<unknown>, pred: (e: unknown) => boolean, msg: string): Promise<void> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  t.ok(e !== undefined && pred(e), `${msg}${e === undefined ? ' (resolved)' : pred(e) ? '' : `: got ${String(e)} field=${String((e as { field?: string }).field)}`}`);
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-quantize-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

function randomModel(arch: 'mamba' | 'mamba2', name: string): RandomCheckpoint & { dir: string } {
  const dir = path.join(root, name);
  const ck = writeRandomCheckpoint(dir, {
    arch, dModel: 64, nLayer: 2, vocabSize: 128, dtype: 'f32', tied: true, dialect: 'hf', seed: arch === 'mamba' ? 3 : 4,
    dState: 16, headdim: 16, ngroups: arch === 'mamba2' ? 2 : 1,
  });
  return { ...ck, dir };
}

/** The stored shape of every tensor rotateModel and the loader read. */
function shapesOf(c: MambaConfig): Map<string, number[]> {
  const d = c.dModel, di = c.dInner, N = c.dState, K = c.dConv;
  const m = new Map<string, number[]>([['backbone.embeddings.weight', [c.vocabSize, d]], ['lm_head.weight', [c.vocabSize, d]], ['backbone.norm_f.weight', [d]]]);
  for (let i = 0; i < c.nLayer; i++) {
    const p = `backbone.layers.${i}.`, x = `${p}mixer.`;
    const conv = c.arch === 'mamba' ? di : di + 2 * c.ngroups * N;
    m.set(`${p}norm.weight`, [d]);
    m.set(`${x}in_proj.weight`, [c.arch === 'mamba' ? 2 * di : 2 * di + 2 * c.ngroups * N + c.nheads, d]);
    m.set(`${x}conv1d.weight`, [conv, 1, K]);
    m.set(`${x}conv1d.bias`, [conv]);
    m.set(`${x}out_proj.weight`, [d, di]);
    if (c.arch === 'mamba') {
      m.set(`${x}x_proj.weight`, [c.dtRank + 2 * N, di]);
      m.set(`${x}dt_proj.weight`, [di, c.dtRank]);
      m.set(`${x}dt_proj.bias`, [di]);
      m.set(`${x}A_log`, [di, N]);
      m.set(`${x}D`, [di]);
    } else {
      for (const n of ['dt_bias', 'A_log', 'D']) m.set(`${x}${n}`, [c.nheads]);
      m.set(`${x}norm.weight`, [di]);
    }
  }
  return m;
}

const tokensOf = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 53 + seed * 17 + ((i * i) % 7)) % 128);
const CALIB = [tokensOf(96, 1), tokensOf(96, 2)];

/** Every tensor of a checkpoint directory's model.safetensors as raw bytes + header info. */
function readTensors(dir: string) {
  const file = path.join(dir, 'model.safetensors');
  const h = readSafetensorsHeader(file);
  const bytes = fs.readFileSync(file);
  const out = new Map<string, { dtype: string; shape: number[]; data: Uint8Array }>();
  for (const [name, info] of h.tensors) out.set(name, { dtype: info.dtype, shape: info.shape, data: new Uint8Array(bytes.subarray(info.offset, info.offset + info.nbytes)) });
  return out;
}

const f32Of = (b: Uint8Array) => new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
/** F32 / F16 / BF16 tensor bytes as float64 values. */
function floatOf(dtype: string, b: Uint8Array): Float64Array {
  if (dtype === 'F32') return Float64Array.from(f32Of(b));
  const u = new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  return Float64Array.from(u, (h) => (dtype === 'F16' ? f16Value(h) : bf16Value(h)));
}

/**
 * The float64 reference of a quantized checkpoint: dequantized weights, and for
 * every layer with an input_scale the input quantized as the kernels do
 * (x · f32(1/s), ties to even, clamped to ±127), after T for out_proj when the
 * checkpoint rotates online.
 */
function quantizedReference(dir: string, config: MambaConfig) {
  const ts = readTensors(dir);
  const weights: ReferenceWeights = new Map();
  const inputScale = new Map<string, number>();
  // int8 SSM path: per-channel activation scales of the mixer's taps (reference_model.ts names)
  const tapScales = new Map<string, Float32Array>();
  const ssmInt8 = config.quantization?.ssmActivations === 'int8';
  for (const [name, t] of ts) {
    const tap = /^(.*mixer\.)(conv1d\.input_scale|conv1d\.output_scale|B_scale|C_scale)$/.exec(name);
    if (tap) {
      const key = { 'conv1d.input_scale': 'conv1d:input', 'conv1d.output_scale': 'conv1d:output', B_scale: 'B', C_scale: 'C' }[tap[2]]!;
      tapScales.set(tap[1] + key, f32Of(t.data));
      continue;
    }
    if (name.endsWith('.weight_scale') || name.endsWith('.input_scale')) continue;
    if (t.dtype === 'I32') continue;  // sort-and-cluster layout (informational: the weights are permuted)
    if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16') { weights.set(name, floatOf(t.dtype, t.data)); continue; }
    const base = name.replace(/\.weight$/, '');
    const scales = f32Of(ts.get(`${base}.weight_scale`)!.data);
    const rows = t.shape[0];
    const cols = t.dtype === 'I8' ? t.shape[1] : (name.includes('out_proj') ? config.dInner : name.includes('x_proj') ? config.dInner : config.dModel);
    const qw: QuantizedWeight = t.dtype === 'I8'
      ? { dtype: 'i8', rows, cols, data: new Int8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), scales }
      : { dtype: 'i4', rows, cols, data: t.data, scales };
    weights.set(name, dequantize(qw));
    const is = ts.get(`${base}.input_scale`);
    if (is) inputScale.set(name, f32Of(is.data)[0]);
  }
  const hadamard = config.quantization?.hadamard ?? false;
  const online = config.quantization?.residualRotation === 'online';
  // A quantized embedding as the tied head: its input scale is the head's.
  if (!ts.has('lm_head.weight') && inputScale.has('backbone.embeddings.weight')) inputScale.set('lm_head.weight', inputScale.get('backbone.embeddings.weight')!);
  // Mamba-1's conv output is x_proj's int8 input: its scale is x_proj.input_scale.
  if (ssmInt8 && config.arch === 'mamba') {
    for (let i = 0; i < config.nLayer; i++) {
      const mx = `backbone.layers.${i}.mixer.`;
      tapScales.set(`${mx}conv1d:output`, new Float32Array([inputScale.get(`${mx}x_proj.weight`)!]));
    }
  }
  const perChannel = (scales: Float32Array) => (row: Float64Array) =>
    row.map((v, c) => {
      const s = scales.length === 1 ? scales[0] : scales[c];
      return Math.fround(s * Math.max(-127, Math.min(127, roundHalfEven(Math.fround(Math.fround(v) * Math.fround(1 / s))))));
    });
  const rule = (name: string): RoundMode => {
    const tap = tapScales.get(name);
    if (tap) return perChannel(tap);
    const rotate = hadamard && name.endsWith('out_proj.weight');
    const s = inputScale.get(name);
    if (!rotate && s === undefined) return 'none';
    return (row: Float64Array) => {
      const r = Float64Array.from(row);
      if (rotate) hadamardRows(r, 1, r.length);
      if (s === undefined) return r;
      const inv = Math.fround(1 / s);
      return r.map((v) => s * Math.max(-127, Math.min(127, roundHalfEven(Math.fround(Math.fround(v) * inv)))));
    };
  };
  return (tokens: number[]) => (online ? onlineRotatedForward(config, weights, tokens, rule) : referenceForward(config, weights, tokens, rule));
}

/** referenceForward for residual_rotation "online": the engine rotates the embedding output by T and the final residual back by Tᵀ before norm_f. */
function onlineRotatedForward(config: MambaConfig, weights: ReferenceWeights, tokens: number[], rule: (name: string) => RoundMode) {
  return referenceForward(config, weights, tokens, rule, {
    forward: (x, rows, n) => hadamardRows(x, rows, n),
    back: (x, rows, n) => hadamardRows(x, rows, n, true),
  });
}

// A rounding flip (an input within float32 noise of a quantization boundary
// rounded one int8 step apart from the reference; the engine's fused
// Hadamard-quantize also scales by 1/(s·sqrt(n)) in one float32 factor) moves
// that token's logits by a step times a weight and lives on in the state:
// so, as for the rounded-input tests, some rows may pass only the loose
// tolerance.
const QUANT_TOL = { atol: 2e-3, rtol: 2e-3, loose: 5e-2, maxOffFraction: 0.5 };

t.test('the Hadamard rotation leaves the float model unchanged (reference and engine)', async (t) => {
  for (const arch of ['mamba', 'mamba2'] as const) {
    const ck = randomModel(arch, `rot-${arch}`);
    const tokens = tokensOf(24, 5);
    const want = referenceForward(ck.config, ck.weights, tokens);
    const shapes = shapesOf(ck.config);
    const w = new Map<string, FloatTensor>();
    for (const [name, v] of ck.weights) w.set(name, { data: Float32Array.from(v), shape: shapes.get(name)! });
    const rc = rotateModel(ck.config, w);
    t.equal(rc.tieEmbeddings, false, `${arch}: the rotated head is untied`);
    const rw: ReferenceWeights = new Map([...w].map(([n, v]) => [n, Float64Array.from(v.data)]));
    const rotIn = (name: string): RoundMode => (name.endsWith('out_proj.weight') ? (row) => { const r = Float64Array.from(row); hadamardRows(r, 1, r.length); return r; } : 'none');
    const got = referenceForward(rc, rw, tokens, rotIn);
    let worst = 0, scale = 0;
    for (let i = 0; i < got.length; i++) { worst = Math.max(worst, Math.abs(got[i] - want[i])); scale = Math.max(scale, Math.abs(want[i])); }
    // float32 storage of the rotated weights: relative ~1e-6
    t.ok(worst <= 1e-4 * scale, `${arch}: rotated float64 reference equals the original (max err ${worst.toExponential(2)} of ${scale.toFixed(2)})`);

    // The engine with the online rotation, on the rotated float weights.
    const dir = path.join(root, `rot-${arch}-engine`);
    fs.mkdirSync(dir, { recursive: true });
    writeSafetensors(path.join(dir, 'model.safetensors'), [...w].map(([name, v]) => ({
      name, dtype: 'F32' as const, shape: shapes.get(name) ?? v.shape, data: new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength),
    })));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
      ...hfConfigJson(rc), quantization_config: { quant_method: 'quamba', format_version: 1, scheme: 'w4a16', hadamard: true },
    }));
    const m = await loadModel(dir);
    const e = await m.forward(tokens);
    m.dispose();
    let ew = 0;
    for (let i = 0; i < e.length; i++) ew = Math.max(ew, Math.abs(e[i] - want[i]));
    t.ok(ew <= 1e-3 * scale, `${arch}: engine with the online rotation equals the original (max err ${ew.toExponential(2)})`);
  }
});

for (const arch of ['mamba', 'mamba2'] as const) {
  t.test(`${arch}: every scheme loads and matches its quantized float64 reference on every level`, async (t) => {
    const ck = randomModel(arch, `q-${arch}`);
    const tokens = tokensOf(20, 9);
    const exact = referenceForward(ck.config, ck.weights, tokens);
    const cases: Array<[string, 'w8a8' | 'w4a8' | 'w4a16', Parameters<typeof quantize>[0]['recipe']]> = [
      ['naive', 'w8a8', 'naive'], ['w8a8', 'w8a8', {}], ['w8a8-nohad', 'w8a8', { hadamard: false, percentile: false }],
      ['w4a8', 'w4a8', {}], ['w4a16', 'w4a16', {}], ['w8a8-head', 'w8a8', { quantizeLmHead: true }],
      ['w8a8-floatssm', 'w8a8', { quantizeSsm: false }], ['w8a8-tensorbc', 'w8a8', { perStateGroup: false }],
      ['w8a8-emb', 'w8a8', { quantizeEmbedding: true }], ['w4a16-emb', 'w4a16', { quantizeEmbedding: true, quantizeLmHead: true }],
      ['w8a8-emb-head', 'w8a8', { quantizeEmbedding: true, quantizeLmHead: true }], ['w4a8-emb-head-gptq', 'w4a8', { quantizeEmbedding: true, quantizeLmHead: true, gptq: true }],
    ];
    for (const [label, scheme, recipe] of cases) {
      const out = path.join(root, `q-${arch}-${label}`);
      const stages = new Set<string>();
      const s = await quantize({ model: ck.dir, output: out, scheme, recipe, calibration: CALIB, onProgress: (p) => stages.add(p.stage) });
      t.ok(s.bytesAfter > 0 && s.bytesBefore > 0, `${label}: summary sizes`);
      t.ok(stages.has('write') && stages.has('quantize'), `${label}: progress stages ${[...stages].join(',')}`);
      const m0 = await loadModel(out);
      const config = m0.config;
      m0.dispose();
      t.equal(config.quantization?.scheme, scheme, `${label}: quantization_config read back`);
      const ssm = scheme !== 'w4a16' && !(typeof recipe === 'object' && recipe?.quantizeSsm === false);
      t.equal(config.quantization?.ssmActivations, ssm ? 'int8' : 'float', `${label}: ssm_activations`);
      if (typeof recipe === 'object' && recipe.quantizeEmbedding) {
        const e = readTensors(out).get('backbone.embeddings.weight')!;
        t.equal(e.dtype, scheme === 'w8a8' ? 'I8' : 'U8', `${label}: the embedding is quantized`);
        const tiedQuant = recipe.quantizeLmHead === true;  // the models here are tied
        t.equal(config.tieEmbeddings, tiedQuant, `${label}: the head ${tiedQuant ? 'is the quantized embedding' : 'is untied from it (a float copy)'}`);
        if (tiedQuant) t.equal(config.quantization?.residualRotation, 'online', `${label}: the residual stream rotated online (the tied head reads it unrotated)`);
      }
      const sorted = ssm && arch === 'mamba2' && recipe !== 'naive';
      t.equal(readTensors(out).has('backbone.layers.0.mixer.x_channel_index'), sorted, `${label}: sort-and-cluster layout tensors ${sorted ? 'written' : 'absent'}`);
      if (ssm && arch === 'mamba2') {
        // B / C scales: one per SSD group (perStateGroup), or one per tensor
        const os = f32Of(readTensors(out).get('backbone.layers.0.mixer.conv1d.output_scale')!.data);
        const di = config.dInner, N = config.dState;
        const groupsDiffer = os[di] !== os[di + N] || os[di + 2 * N] !== os[di + 3 * N];
        const perGroup = !(typeof recipe === 'object' && recipe?.perStateGroup === false) && recipe !== 'naive';
        t.equal(groupsDiffer, perGroup, `${label}: B / C scales ${perGroup ? 'per state group' : 'per tensor'} (${Array.from(os.slice(di, di + 4 * N).filter((_, i) => i % N === 0)).map((v) => v.toExponential(2)).join(' ')})`);
      }
      const ref = quantizedReference(out, config)(tokens);
      // the quantized reference differs from the float model: quantization is real
      let qd = 0;
      for (let i = 0; i < ref.length; i++) qd = Math.max(qd, Math.abs(ref[i] - exact[i]));
      t.ok(qd > 1e-4, `${label}: quantized reference differs from float (${qd.toExponential(2)})`);
      await forEachIsaAsync(async (isa) => {
        const m = await loadModel(out);
        const all = await m.forward(tokens);
        assertRoundedClose(t, all, ref, m.vocabSize, QUANT_TOL, `${label} ${isa} prefill`);
        // prefill then decode steps (the GEMV path) equal the one prefill (GEMM path) bit for bit up to float32 order
        const seq = await m.createSequence();
        await seq.prefill(tokens.slice(0, -4));
        let worst = 0;
        for (let i = 0; i < 4; i++) {
          const row = await seq.step(tokens[tokens.length - 4 + i]);
          const r0 = (tokens.length - 4 + i) * m.vocabSize;
          for (let v = 0; v < m.vocabSize; v++) worst = Math.max(worst, Math.abs(row[v] - all[r0 + v]));
        }
        t.ok(worst <= 2e-3, `${label} ${isa}: decode steps equal the prefill (max diff ${worst.toExponential(2)})`);
        await seq.dispose();
        m.dispose();
      });
    }
  });
}

t.test('bad input: typed errors before anything is written', async (t) => {
  const ck = randomModel('mamba', 'bad-src');
  const out = path.join(root, 'bad-out');
  const base = { model: ck.dir, output: out, scheme: 'w8a8' as const, calibration: CALIB };
  const expectErr = async (opts: object, field: RegExp | string, msg: string) => {
    await rejectsWith(t, quantize({ ...base, ...opts } as Parameters<typeof quantize>[0]), (e: unknown) => e instanceof QuantizeError && (typeof field === 'string' ? e.field === field : field.test(String(e.field))), msg);
  };
  await expectErr({ scheme: 'w3a3' }, 'scheme', 'unknown scheme');
  await expectErr({ recipe: { hadamrd: true } }, 'recipe.hadamrd', 'unknown recipe switch');
  await expectErr({ recipe: { quantizeEmbedding: 'yes' } }, 'recipe.quantizeEmbedding', 'a switch must be a boolean');
  await expectErr({ recipe: { gptq: true } }, 'recipe.gptq', 'gptq is for the 4-bit schemes');
  await expectErr({ recipe: { percentile: 2 } }, 'recipe.percentile', 'percentile out of range');
  await expectErr({ scheme: 'w4a8', recipe: 'naive' }, 'recipe', 'naive is W8A8 only');
  await expectErr({ scheme: 'w4a16', recipe: { quantizeSsm: true } }, 'recipe.quantizeSsm', 'int8 SSM activations need an int8 scheme');
  await expectErr({ recipe: { sortAndCluster: true } }, 'recipe.sortAndCluster', 'sort-and-cluster is for Mamba-2 (this model is Mamba-1)');
  await expectErr({ calibration: [] }, 'calibration', 'empty calibration');
  await expectErr({ calibration: [[1, 2, 3]] }, 'calibration', 'too short calibration');
  await expectErr({ calibration: undefined }, 'calibration', 'missing calibration');
  await expectErr({ calibration: [[1, 2, 999]] }, 'calibration', 'out-of-vocabulary calibration ids');
  const file = path.join(root, 'a-file');
  fs.writeFileSync(file, 'x');
  await expectErr({ output: file }, 'output', 'output is a file');
  const odd = writeRandomCheckpoint(path.join(root, 'odd'), { arch: 'mamba', dModel: 36, nLayer: 1, vocabSize: 64, dtype: 'f32', tied: true, dialect: 'hf', seed: 1 });
  await expectErr({ model: path.join(root, "odd"), calibration: [tokensOf(80, 1).map((v) => v % 64)] }, 'recipe.hadamard', 'd_model 36 is no Hadamard size');
  t.notOk(fs.existsSync(out), 'nothing written');
  // an already quantized model
  const q = path.join(root, 'bad-q');
  await quantize({ ...base, output: q });
  await expectErr({ model: q, output: path.join(root, 'bad-qq') }, 'model', 'already quantized');
  t.same(fs.readdirSync(root).filter((e) => e.includes('.tmp-')), [], 'no temporary directories left');
});

t.test('a quantized checkpoint with a missing or mis-shaped scale tensor is a ModelLoadError naming it', async (t) => {
  const ck = randomModel('mamba2', 'scales-src');
  const good = path.join(root, 'scales-good');
  await quantize({ model: ck.dir, output: good, scheme: 'w4a8', calibration: CALIB });
  const ts = readTensors(good);
  const rewrite = (dir: string, edit: (name: string) => { skip?: boolean; shape?: number[] } | undefined) => {
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(path.join(good, 'config.json'), path.join(dir, 'config.json'));
    const list = [];
    for (const [name, v] of ts) {
      const e = edit(name);
      if (e?.skip) continue;
      list.push({ name, dtype: v.dtype as 'F32', shape: e?.shape ?? v.shape, data: e?.shape ? v.data.subarray(0, e.shape.reduce((a, b) => a * b, 1) * 4) : v.data });
    }
    writeSafetensors(path.join(dir, 'model.safetensors'), list);
  };
  const victim = 'backbone.layers.1.mixer.out_proj';
  // (an i4 weight without input_scale is W4A16 by definition; its weight scale is always required)
  rewrite(path.join(root, 'scales-missing-w'), (n) => (n === `${victim}.weight_scale` ? { skip: true } : undefined));
  await rejectsWith(t, loadModel(path.join(root, 'scales-missing-w')), (e: unknown) => e instanceof ModelLoadError && e.field === `${victim}.weight_scale`, 'missing weight_scale');
  const rows = ts.get(`${victim}.weight_scale`)!.shape[0];
  rewrite(path.join(root, 'scales-shape'), (n) => (n === `${victim}.weight_scale` ? { shape: [rows - 1, 1] } : undefined));
  await rejectsWith(t, loadModel(path.join(root, 'scales-shape')), (e: unknown) => e instanceof ModelLoadError && /weight_scale/.test(String(e.field)), 'mis-shaped weight_scale');
  // an i8 weight needs its input scale
  const w8 = path.join(root, 'scales-w8');
  await quantize({ model: ck.dir, output: w8, scheme: 'w8a8', calibration: CALIB });
  const t8 = readTensors(w8);
  fs.mkdirSync(path.join(root, 'scales-w8-missing'));
  fs.copyFileSync(path.join(w8, 'config.json'), path.join(root, 'scales-w8-missing', 'config.json'));
  writeSafetensors(path.join(root, 'scales-w8-missing', 'model.safetensors'),
    [...t8].filter(([n]) => n !== `${victim}.input_scale`).map(([name, v]) => ({ name, dtype: v.dtype as 'F32', shape: v.shape, data: v.data })));
  await rejectsWith(t, loadModel(path.join(root, 'scales-w8-missing')), (e: unknown) => e instanceof ModelLoadError && e.field === `${victim}.input_scale`, 'missing input_scale of an i8 weight');
  // a quantized embedding with the head tied to it
  const emb = path.join(root, 'scales-emb');
  await quantize({ model: ck.dir, output: emb, scheme: 'w8a8', calibration: CALIB, recipe: { quantizeEmbedding: true } });
  const te = readTensors(emb);
  const tiedDir = path.join(root, 'scales-emb-tied');
  fs.mkdirSync(tiedDir);
  const ecfg = JSON.parse(fs.readFileSync(path.join(emb, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(tiedDir, 'config.json'), JSON.stringify({ ...ecfg, tie_word_embeddings: true }));
  writeSafetensors(path.join(tiedDir, 'model.safetensors'),
    [...te].filter(([n]) => n !== 'lm_head.weight').map(([name, v]) => ({ name, dtype: v.dtype as 'F32', shape: v.shape, data: v.data })));
  await rejectsWith(t, loadModel(tiedDir), (e: unknown) => e instanceof ModelLoadError && e.field === 'backbone.embeddings.input_scale', 'an i8 embedding as a tied head without its input scale');
  // the int8 SSM path's scales: missing, mis-shaped, not positive
  const ssmVictim = 'backbone.layers.1.mixer.conv1d.output_scale';
  const withSsm = (label: string, edit: (name: string, v: { dtype: string; shape: number[]; data: Uint8Array }) => { dtype: string; shape: number[]; data: Uint8Array } | undefined) => {
    const d = path.join(root, `ssm-${label}`);
    fs.mkdirSync(d);
    fs.copyFileSync(path.join(w8, 'config.json'), path.join(d, 'config.json'));
    const list = [];
    for (const [name, v] of t8) {
      const e = edit(name, v);
      if (e) list.push({ name, dtype: e.dtype as 'F32', shape: e.shape, data: e.data });
    }
    writeSafetensors(path.join(d, 'model.safetensors'), list);
    return d;
  };
  await rejectsWith(t, loadModel(withSsm('missing', (n, v) => (n === ssmVictim ? undefined : v))),
    (e: unknown) => e instanceof ModelLoadError && e.field === ssmVictim, 'missing conv1d.output_scale');
  await rejectsWith(t, loadModel(withSsm('shape', (n, v) => (n === ssmVictim ? { ...v, shape: [v.shape[0] - 1], data: v.data.subarray(0, v.data.length - 4) } : v))),
    (e: unknown) => e instanceof ModelLoadError && e.field === ssmVictim, 'mis-shaped conv1d.output_scale');
  await rejectsWith(t, loadModel(withSsm('zero', (n, v) => (n === ssmVictim ? { ...v, data: new Uint8Array(v.data.length) } : v))),
    (e: unknown) => e instanceof ModelLoadError && e.field === ssmVictim && /> 0/.test(e.message), 'a zero activation scale');
  // an unknown quant_method / a newer format / an unknown ssm_activations
  const cfg = JSON.parse(fs.readFileSync(path.join(good, 'config.json'), 'utf8'));
  for (const [label, patch, field] of [['method', { quant_method: 'gptq' }, 'quantization_config.quant_method'], ['version', { format_version: 99 }, 'quantization_config.format_version'],
    ['ssm', { ssm_activations: 'int4' }, 'quantization_config.ssm_activations']] as const) {
    const d = path.join(root, `cfg-${label}`);
    fs.mkdirSync(d);
    fs.copyFileSync(path.join(good, 'model.safetensors'), path.join(d, 'model.safetensors'));
    fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...cfg, quantization_config: { ...cfg.quantization_config, ...patch } }));
    await rejectsWith(t, loadModel(d), (e: unknown) => e instanceof ModelLoadError && e.field === field, `unknown ${label}`);
  }
});

t.test('an abort leaves nothing behind; an existing output is replaced whole', async (t) => {
  const ck = randomModel('mamba', 'abort-src');
  const out = path.join(root, 'abort-out');
  const ac = new AbortController();
  await t.rejects(quantize({
    model: ck.dir, output: out, scheme: 'w8a8', calibration: CALIB, signal: ac.signal,
    onProgress: (p) => { if (p.stage === 'calibrate') ac.abort(); },
  }), { name: 'AbortError' });
  t.notOk(fs.existsSync(out), 'no output after an abort');
  t.same(fs.readdirSync(root).filter((e) => e.startsWith('.abort-out')), [], 'no temporary directory after an abort');
  // existing output: replaced by the new checkpoint, the old files gone
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'stale.txt'), 'old');
  await quantize({ model: ck.dir, output: out, scheme: 'w4a16' });
  t.notOk(fs.existsSync(path.join(out, 'stale.txt')), 'old contents replaced');
  const m = await loadModel(out);
  t.equal(m.config.quantization?.scheme, 'w4a16');
  m.dispose();
  t.ok(kernels.runtimeInfo().isa === availableIsas()[availableIsas().length - 1]);
});

t.test('a float GGUF file quantizes like its checkpoint directory', async (t) => {
  const dir = path.join(root, 'gguf-src');
  fs.mkdirSync(dir, { recursive: true });
  writeTinyTokenizer(dir); // 263 tokens
  writeRandomCheckpoint(dir, { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: true, dialect: 'hf', seed: 8, dState: 16, headdim: 16, ngroups: 2 });
  const ck = { dir };
  const gguf = path.join(root, 'gguf-src.f32.gguf');
  await exportGguf(ck.dir, gguf, { type: 'f32' });
  const fromDir = path.join(root, 'gguf-q-dir'), fromGguf = path.join(root, 'gguf-q-gguf');
  await quantize({ model: ck.dir, output: fromDir, scheme: 'w4a8', calibration: CALIB });
  await quantize({ model: gguf, output: fromGguf, scheme: 'w4a8', calibration: CALIB });
  const a = await loadModel(fromDir), b = await loadModel(fromGguf);
  const tokens = tokensOf(24, 3);
  const x = await a.forward(tokens), y = await b.forward(tokens);
  let worst = 0, scale = 0;
  for (let i = 0; i < x.length; i++) { worst = Math.max(worst, Math.abs(x[i] - y[i])); scale = Math.max(scale, Math.abs(x[i])); }
  // The GGUF stores A = -exp(A_log); the quantizer takes log(-A) back (float32 round trips), so the two differ by rounding only.
  t.ok(worst <= 1e-3 * scale, `logits agree (max diff ${worst.toExponential(2)} of ${scale.toFixed(2)})`);
  t.ok(fs.existsSync(path.join(fromGguf, 'tokenizer.json')), 'the GGUF tokenizer is written as tokenizer.json');
  a.dispose();
  b.dispose();
});
