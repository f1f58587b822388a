#!/usr/bin/env node
// Writes the whole-model cases of the GPU check (cuda/check/models/, read by
// cuda/check/model_check.cpp): small checkpoints in the real formats, each
// with a manifest of the engine's load arguments (the keys of
// lib/native/types.ts NativeLoadArgs, the tensor table with file offsets as
// the loaders found them), a prompt, the greedy continuation the CPU engine
// chose and the CPU engine's logits for every prompt position and every
// decode step. The GPU machine has no Node.js: these files travel with the
// script (scripts/gpu-check.sh). Rerun after a change to the formats or to
// the CPU engine's numerics:
//
//   npm run build && node scripts/write-gpu-check-models.js
//
// Manifest lines (whitespace-separated; paths relative to the manifest):
//   node-mamba-gpu-check-model 1
//   name <name>              tolerance <max |Δ| / max |logit|>
//   key <NativeLoadArgs key> <number | true | false | string>
//   layer <mixer> <ffn>      (nLayer lines, when the model has a layer list)
//   file <path>
//   tensor <name> <file> <offset> <nbytes> <dtype> <d0,d1,...|->
//   prompt <ids...>          decode <ids...>
//   logits <path>            (float32 [prompt + decode, vocab], little-endian)
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const { loadModel, quantize, exportGguf } = require(dist);
const { writeRandomCheckpoint } = require(path.join(dist, 'testing/random_checkpoint'));
const { graniteTinyPreset, jambaTinyPreset, writeRandomHybridCheckpoint } = require(path.join(dist, 'testing/random_hybrid_checkpoint'));
const { writeTinyTokenizer } = require(path.join(dist, 'testing/tiny_tokenizer'));
const { resolveCheckpoint } = require(path.join(dist, 'loaders/checkpoint'));
const { loadGgufCheckpoint } = require(path.join(dist, 'loaders/gguf_model'));
const { nativeLoadArgs } = require(path.join(dist, 'model/native_args'));
const { contextSizeFor } = require(path.join(dist, 'model/load_options'));

const out = path.join(root, 'cuda/check/models');
const PROMPT = 24, DECODE = 6;

function tokensFor(n, V, seed) {
  let s = seed * 7919 + 13;
  return Array.from({ length: n }, () => (s = (s * 48271) % 2147483647) % V);
}

function argmax(x) {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
  return b;
}

// The manifest and files of one case from a checkpoint (a directory or a .gguf file).
async function writeCase(name, source, tolerance) {
  const dir = path.join(out, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const gguf = source.endsWith('.gguf');
  const ck = gguf ? loadGgufCheckpoint(source) : resolveCheckpoint(source);
  const files = ck.files.map((f, i) => {
    const base = `weights-${i}${path.extname(f)}`;
    fs.copyFileSync(f, path.join(dir, base));
    return base;
  });
  const args = nativeLoadArgs(ck, {
    backend: 'cpu', roundActivations: true, contextSize: contextSizeFor(ck.config, undefined), kvDtype: 'f32',
  });
  const lines = ['node-mamba-gpu-check-model 1', `name ${name}`, `tolerance ${tolerance}`];
  for (const [k, v] of Object.entries(args)) {
    if (['files', 'tensors', 'layers', 'backend', 'threads'].includes(k)) continue;
    lines.push(`key ${k} ${typeof v === 'number' ? String(v) : v}`);
  }
  for (const l of args.layers) lines.push(`layer ${l.mixer} ${l.ffn}`);
  for (const f of files) lines.push(`file ${f}`);
  for (const t of args.tensors) {
    lines.push(`tensor ${t.name} ${t.file} ${t.offset} ${t.nbytes} ${t.dtype} ${t.shape.length ? t.shape.join(',') : '-'}`);
  }

  const model = await loadModel(source, { kvCacheType: 'f32' });
  const V = model.vocabSize;
  const prompt = tokensFor(PROMPT, V, name.length);
  const all = [Float32Array.from(await model.forward(prompt))];
  const seq = await model.createSequence();
  let next = argmax(await seq.prefill(prompt));
  const decode = [];
  for (let i = 0; i < DECODE; i++) {
    decode.push(next);
    const l = Float32Array.from(await seq.step(next));
    all.push(l);
    next = argmax(l);
  }
  await seq.dispose();
  model.dispose();
  lines.push(`prompt ${prompt.join(' ')}`, `decode ${decode.join(' ')}`, 'logits logits.f32');
  const logits = new Float32Array(all.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of all) { logits.set(a, o); o += a.length; }
  fs.writeFileSync(path.join(dir, 'logits.f32'), Buffer.from(logits.buffer));
  fs.writeFileSync(path.join(dir, 'manifest.txt'), lines.join('\n') + '\n');
  const bytes = fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
  console.log(`${name}: ${args.tensors.length} tensors, ${(bytes / 1024).toFixed(0)} KiB`);
}

(async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-gpu-models-'));
  try {
    // Its own small BPE vocabulary, so that the GGUF export has a tokenizer.
    const m1 = path.join(work, 'mamba1');
    fs.mkdirSync(m1, { recursive: true });
    const { vocabSize } = writeTinyTokenizer(m1);
    writeRandomCheckpoint(m1, { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize, dtype: 'f32', tied: true, dialect: 'hf', seed: 11 });
    const m2 = path.join(work, 'mamba2');
    writeRandomCheckpoint(m2, {
      arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 128, dtype: 'bf16', tied: false, dialect: 'hf', seed: 12,
      headdim: 16, ngroups: 2, dState: 16, chunkSize: 16,
    });
    const m2f = path.join(work, 'mamba2-f32');
    writeRandomCheckpoint(m2f, {
      arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 128, dtype: 'f32', tied: true, dialect: 'hf', seed: 13,
      headdim: 16, dState: 16, chunkSize: 16,
    });
    const granite = path.join(work, 'granite');
    writeRandomHybridCheckpoint(granite, graniteTinyPreset({
      experts: 0, positionEmbeddingType: 'rope', ropeTheta: 5000, dtype: 'f16', seed: 14,
      nLayer: 3, layerTypes: ['mamba', 'attention', 'mamba'], vocabSize: 256,
    }));
    // Mixture of experts (the CUDA dispatch): Granite's packed experts with
    // the shared expert (top-k logits, then softmax), Jamba's separate ones
    // (softmax, then top-k) beside attention without RoPE, and Q8_0 experts.
    const graniteMoe = path.join(work, 'granite-moe');
    fs.mkdirSync(graniteMoe, { recursive: true });
    const moeVocab = writeTinyTokenizer(graniteMoe).vocabSize;  // for the GGUF export
    writeRandomHybridCheckpoint(graniteMoe, graniteTinyPreset({
      dtype: 'f16', seed: 15, nLayer: 2, layerTypes: ['mamba', 'attention'], vocabSize: moeVocab,
      expertDim: 32, sharedDim: 32,
    }));
    const jambaMoe = path.join(work, 'jamba-moe');
    writeRandomHybridCheckpoint(jambaMoe, jambaTinyPreset({
      seed: 16, nLayer: 2, vocabSize: 128, expertDim: 64,
      attnLayerPeriod: 2, attnLayerOffset: 1, expertLayerPeriod: 1, expertLayerOffset: 0,
    }));

    await writeCase('mamba1-f32', m1, 2e-4);
    await writeCase('mamba2-bf16-2groups', m2, 2e-4);
    await writeCase('granite-dense-rope-f16', granite, 2e-4);
    const q8 = path.join(work, 'mamba1-q8_0.gguf');
    await exportGguf(m1, q8, { type: 'q8_0' });
    await writeCase('mamba1-q8_0-gguf', q8, 2e-4);
    await writeCase('granite-moe-f16', graniteMoe, 2e-4);
    await writeCase('jamba-moe-f32', jambaMoe, 2e-4);
    const graniteMoeQ8 = path.join(work, 'granite-moe-q8_0.gguf');
    await exportGguf(graniteMoe, graniteMoeQ8, { type: 'q8_0' });
    await writeCase('granite-moe-q8_0-gguf', graniteMoeQ8, 2e-4);

    // Quamba checkpoints: int8 activations round at the same boundaries only
    // up to float32 noise, so a flipped rounding moves a logit by one step.
    const calibration = [tokensFor(96, 128, 1), tokensFor(96, 128, 2)];
    const recipe = { quantizeEmbedding: true, quantizeLmHead: true };
    for (const [src, scheme, name] of [[m1, 'w8a8', 'mamba1-w8a8'], [m2f, 'w4a8', 'mamba2-w4a8'], [m1, 'w4a16', 'mamba1-w4a16']]) {
      const q = path.join(work, name);
      await quantize({ model: src, output: q, scheme, recipe, calibration });
      await writeCase(name, q, scheme === 'w4a16' ? 2e-4 : 3e-2);
    }
    // Quantized hybrids (the I8 / I4 experts of the CUDA dispatch, attention
    // and the shared expert quantized too).
    for (const [src, V, scheme, name] of [[graniteMoe, moeVocab, 'w8a8', 'granite-moe-w8a8'], [jambaMoe, 128, 'w4a8', 'jamba-moe-w4a8'],
      [graniteMoe, moeVocab, 'w4a16', 'granite-moe-w4a16']]) {
      const q = path.join(work, name);
      await quantize({ model: src, output: q, scheme, recipe, calibration: [tokensFor(96, V, 3), tokensFor(96, V, 4)] });
      await writeCase(name, q, scheme === 'w4a16' ? 2e-4 : 3e-2);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
