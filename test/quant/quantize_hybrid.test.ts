// quantize() on hybrid models (Jamba, Granite 4.0-H), on random checkpoints
// in the Granite-4.0-H-Tiny-like and Jamba-tiny-dev-like shapes (the bench's,
// scaled down): every scheme loads and stays close to the float model
// (KL divergence of the next-token distributions and top-1 agreement, with
// bounds set from measured values with a wide margin: these are random weights,
// the trained-model evidence is in trained_quality.test.ts); the output holds
// what the format says (canonical names, I8 / U8 projections with their
// scales, float32 routers, the family's config.json); decode steps equal one
// prefill on the quantized model; an expert that no calibration token reached
// gets its input scales from its layer; a GGUF export quantizes to the same
// bytes as its directory; bad inputs are typed errors.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, loadModel, quantize, ModelLoadError, type QuantScheme } from '../../lib';
import { writeTinyTokenizer } from '../../lib/testing/tiny_tokenizer';
import { normalizeConfig } from '../../lib/loaders/config';
import { resolveCheckpoint } from '../../lib/loaders/checkpoint';
import { readSafetensorsHeader } from '../../lib/loaders/safetensors';
import { hfConfigJson } from '../../lib/quant/hf_config';
import { graniteTinyPreset, jambaTinyPreset, writeRandomHybridCheckpoint, type RandomHybridOptions } from '../../lib/testing/random_hybrid_checkpoint';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-qhyb-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
t.setTimeout(600_000);

function tokensFor(n: number, V: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % V;
  });
}

/** Mean KL(float || quantized) of the next-token distributions, and top-1 agreement, over [T, V] logits. */
function compare(ref: Float32Array, q: Float32Array, V: number): { kl: number; top1: number } {
  const T = ref.length / V;
  let kl = 0, top1 = 0;
  const lse = (x: Float32Array) => {
    let m = -Infinity;
    for (const v of x) m = Math.max(m, v);
    let s = 0;
    for (const v of x) s += Math.exp(v - m);
    return m + Math.log(s);
  };
  for (let t0 = 0; t0 < T; t0++) {
    const a = ref.subarray(t0 * V, (t0 + 1) * V), b = q.subarray(t0 * V, (t0 + 1) * V);
    const la = lse(a), lb = lse(b);
    let k = 0, am = 0, bm = 0;
    for (let i = 0; i < V; i++) {
      k += Math.exp(a[i] - la) * ((a[i] - la) - (b[i] - lb));
      if (a[i] > a[am]) am = i;
      if (b[i] > b[bm]) bm = i;
    }
    kl += k / T;
    top1 += (am === bm ? 1 : 0) / T;
  }
  return { kl, top1 };
}

// Measured on these seeds (KL): Granite 2.1e-4 / 8.2e-3 / 7.9e-3, Jamba 2.6e-3 / 4.2e-2 / 4.0e-2
// (w8a8 / w4a8 / w4a16). Without the router's rotation the quantized models measured
// Granite 5.0e-2 / 5.6e-2 / 5.6e-2, Jamba 2.1e-1 / 2.4e-1: these bounds fail them.
const BOUNDS: Record<string, Record<QuantScheme, { kl: number; top1: number }>> = {
  granite: { w8a8: { kl: 0.005, top1: 0.9 }, w4a8: { kl: 0.03, top1: 0.6 }, w4a16: { kl: 0.03, top1: 0.6 } },
  jamba: { w8a8: { kl: 0.015, top1: 0.85 }, w4a8: { kl: 0.12, top1: 0.45 }, w4a16: { kl: 0.12, top1: 0.45 } },
};

const CASES: Array<[string, RandomHybridOptions]> = [
  ['granite', graniteTinyPreset()],
  ['jamba', jambaTinyPreset()],
];

function calibrationFor(V: number): number[][] {
  return Array.from({ length: 8 }, (_, i) => tokensFor(64, V, 1000 + i));
}

for (const [name, opts] of CASES) {
  t.test(`${name}: every scheme loads, stays close to the float model, and holds its format`, async (t) => {
    const dir = path.join(root, name);
    writeRandomHybridCheckpoint(dir, opts);
    const V = opts.vocabSize;
    const float = await loadModel(dir);
    const tokens = tokensFor(48, V, 7);
    const ref = await float.forward(tokens);
    for (const scheme of ['w8a8', 'w4a8', 'w4a16'] as const) {
      const out = path.join(root, `${name}-${scheme}`);
      const s = await quantize({ model: dir, output: out, scheme, calibration: calibrationFor(V) });
      t.ok(s.bytesAfter < 0.45 * s.bytesBefore, `${name} ${scheme}: ${s.bytesBefore} -> ${s.bytesAfter} bytes`);
      const q = await loadModel(out);
      const { kl, top1 } = compare(ref, await q.forward(tokens), V);
      t.ok(kl <= BOUNDS[name][scheme].kl, `${name} ${scheme}: KL to the float model ${kl.toExponential(2)} (bound ${BOUNDS[name][scheme].kl})`);
      t.ok(top1 >= BOUNDS[name][scheme].top1, `${name} ${scheme}: top-1 agreement ${(100 * top1).toFixed(1)}% (bound ${100 * BOUNDS[name][scheme].top1}%)`);

      // The format: the family's config.json with a quantization_config, canonical names.
      const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
      t.equal(cfg.model_type, opts.family, `${name} ${scheme}: model_type`);
      t.equal(cfg.quantization_config.scheme, scheme);
      const st = readSafetensorsHeader(path.join(out, 'model.safetensors')).tensors;
      const ck = resolveCheckpoint(dir);
      const moeLayer = ck.config.layers.findIndex((l) => l.ffn === 'moe');
      const attnLayer = ck.config.layers.findIndex((l) => l.mixer === 'attention');
      const mambaLayer = ck.config.layers.findIndex((l) => l.mixer !== 'attention');
      const int8 = scheme === 'w8a8' ? 'I8' : 'U8';
      const e1 = `backbone.layers.${moeLayer}.ffn.experts.1.`;
      for (const n of [`${e1}gate_proj.weight`, `${e1}up_proj.weight`, `${e1}down_proj.weight`,
        `backbone.layers.${attnLayer}.mixer.q_proj.weight`, `backbone.layers.${attnLayer}.mixer.o_proj.weight`,
        `backbone.layers.${mambaLayer}.mixer.in_proj.weight`]) {
        t.equal(st.get(n)?.dtype, int8, `${name} ${scheme}: ${n} is ${int8}`);
        t.equal(st.get(n.replace(/weight$/, 'weight_scale'))?.dtype, 'F32', `${name} ${scheme}: ${n} has its weight scales`);
        t.equal(st.has(n.replace(/weight$/, 'input_scale')), scheme !== 'w4a16', `${name} ${scheme}: ${n} input scale iff int8 inputs`);
      }
      t.equal(st.get(`backbone.layers.${moeLayer}.ffn.router.weight`)?.dtype, 'F32', `${name} ${scheme}: the router stays float32`);
      if (opts.family === 'granitemoehybrid') {
        t.equal(st.get(`backbone.layers.${moeLayer}.ffn.shared.down_proj.weight`)?.dtype, int8, `${name} ${scheme}: the shared expert is quantized`);
      }

      if (scheme === 'w8a8') {
        // Decode on the quantized model (experts in the decode schedule, int8 panels) equals one prefill.
        const seq = await q.createSequence();
        await seq.prefill(tokens.slice(0, 40));
        const all = await q.forward(tokens);
        let worst = 0;
        for (let i = 40; i < 48; i++) {
          const got = await seq.step(tokens[i]);
          const want = all.subarray(i * V, (i + 1) * V);
          for (let k = 0; k < V; k++) worst = Math.max(worst, Math.abs(got[k] - want[k]) / (1e-3 + 1e-3 * Math.abs(want[k])));
        }
        t.ok(worst <= 1, `${name} ${scheme}: 8 decode steps equal the prefill's logits (err/tol ${worst.toPrecision(3)}, tol 1e-3 + 1e-3·|x|)`);
        await seq.dispose();
      }
      q.dispose();
    }
    float.dispose();
  });
}

t.test('hybrid configs: the quantizer writes the family keys that read back into the same config', async (t) => {
  for (const [name, opts] of [...CASES, ['granite rope, tied, one group', graniteTinyPreset({ positionEmbeddingType: 'rope', tied: true, seed: 5 })] as const,
    ['jamba, dense only', jambaTinyPreset({ experts: 1 })] as const]) {
    const dir = path.join(root, `cfg-${name.replace(/\W+/g, '-')}`);
    writeRandomHybridCheckpoint(dir, opts);
    const c = resolveCheckpoint(dir).config;
    const again = normalizeConfig(hfConfigJson(c), 'config.json');
    t.same(again, c, `${name}: normalizeConfig(hfConfigJson(c)) equals c`);
  }
});

t.test('from a GGUF export (granitehybrid, jamba) the quantized weights are bitwise those from the directory', async (t) => {
  for (const [name, opts] of CASES) {
    const dir = path.join(root, `gguf-${name}`);
    writeRandomHybridCheckpoint(dir, opts);
    writeTinyTokenizer(dir);  // exportGguf writes the tokenizer (the shipped default has more tokens than these models)
    const file = path.join(root, `gguf-${name}.gguf`);
    await exportGguf(dir, file, { type: 'f32' });
    const calib = calibrationFor(opts.vocabSize);
    const fromDir = path.join(root, `gguf-${name}-dir-w8a8`), fromGguf = path.join(root, `gguf-${name}-gguf-w8a8`);
    await quantize({ model: dir, output: fromDir, scheme: 'w8a8', calibration: calib });
    await quantize({ model: file, output: fromGguf, scheme: 'w8a8', calibration: calib });
    t.ok(fs.readFileSync(path.join(fromDir, 'model.safetensors')).equals(fs.readFileSync(path.join(fromGguf, 'model.safetensors'))), `${name}: the same safetensors bytes`);
    const a = resolveCheckpoint(fromDir).config, b = resolveCheckpoint(fromGguf).config;
    t.same(b.layers, a.layers, `${name}: the same layer schedule`);
    t.same(b.moe, a.moe, `${name}: the same experts`);
  }
});

t.test('an expert no calibration token reached takes its input scales from its layer', async (t) => {
  // Granite routes the top-k logits; with k = 1 and expert 7's router row a copy
  // of expert 0's, the tie always goes to expert 0: expert 7 never sees a token.
  const opts = graniteTinyPreset({ topK: 1, seed: 9 });
  const dir = path.join(root, 'unrouted');
  writeRandomHybridCheckpoint(dir, opts);
  const ck = resolveCheckpoint(dir);
  const moeLayer = ck.config.layers.findIndex((l) => l.ffn === 'moe');
  const router = ck.tensors.get(`backbone.layers.${moeLayer}.ffn.router.weight`)!;
  const rowBytes = router.nbytes / router.shape[0];
  const fd = fs.openSync(router.fileName, 'r+');
  const row0 = Buffer.alloc(rowBytes);
  fs.readSync(fd, row0, 0, rowBytes, router.offset);
  fs.writeSync(fd, row0, 0, rowBytes, router.offset + 7 * rowBytes);
  fs.closeSync(fd);

  const out = path.join(root, 'unrouted-w8a8');
  await quantize({ model: dir, output: out, scheme: 'w8a8', calibration: calibrationFor(opts.vocabSize) });
  const q = resolveCheckpoint(out);
  const scale = (n: string) => {
    const s = q.tensors.get(n)!;
    const b = Buffer.alloc(4);
    const fd2 = fs.openSync(s.fileName, 'r');
    fs.readSync(fd2, b, 0, 4, s.offset);
    fs.closeSync(fd2);
    return b.readFloatLE(0);
  };
  const f = `backbone.layers.${moeLayer}.ffn.`;
  const routed = [0, 1, 2, 3, 4, 5, 6];
  const gate7 = scale(`${f}experts.7.gate_proj.input_scale`);
  for (const e of routed) t.ok(gate7 >= scale(`${f}experts.${e}.gate_proj.input_scale`), `expert 7's gate input scale (the whole layer's input) >= expert ${e}'s`);
  t.equal(scale(`${f}experts.7.up_proj.input_scale`), gate7, "up reads gate's input");
  t.equal(scale(`${f}experts.7.down_proj.input_scale`), Math.max(...routed.map((e) => scale(`${f}experts.${e}.down_proj.input_scale`))),
    "down takes the largest of the layer's other experts'");
  const model = await loadModel(out);
  const logits = await model.forward(tokensFor(16, opts.vocabSize, 3));
  t.ok(logits.every(Number.isFinite), 'the quantized model runs');
  model.dispose();
});

t.test('a quantized hybrid with an expert scale missing is a typed error naming it', async (t) => {
  const dir = path.join(root, 'bad-src');
  writeRandomHybridCheckpoint(dir, graniteTinyPreset({ seed: 4 }));
  const out = path.join(root, 'bad-w8a8');
  await quantize({ model: dir, output: out, scheme: 'w8a8', calibration: calibrationFor(512) });
  const moeLayer = resolveCheckpoint(dir).config.layers.findIndex((l) => l.ffn === 'moe');
  const victim = `backbone.layers.${moeLayer}.ffn.experts.3.down_proj.weight_scale`;
  // Rename the tensor in the header (same length: the file stays valid).
  const file = path.join(out, 'model.safetensors');
  const buf = fs.readFileSync(file);
  const at = buf.indexOf(Buffer.from(`"${victim}"`));
  t.ok(at > 0, 'the scale is in the header');
  const renamed = Buffer.from(buf);
  renamed.write(`"${victim.replace('weight_scale', 'weight_scalX')}"`, at);
  fs.writeFileSync(file, renamed);
  try {
    resolveCheckpoint(out);
    t.fail('expected a ModelLoadError');
  } catch (err) {
    t.ok(err instanceof ModelLoadError, 'ModelLoadError');
    t.equal((err as ModelLoadError).field, victim, 'names the missing scale');
    t.equal((err as ModelLoadError).file, file, 'and the file');
    t.match((err as Error).message, /scale tensor .* is missing/);
  }
  await t.rejects(loadModel(out), { name: 'ModelLoadError', field: victim });
});
