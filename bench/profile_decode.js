#!/usr/bin/env node
// Decode at batch 1 in a loop, for a sampling profiler (perf record -g, or
// valgrind --tool=callgrind with few steps): loads a checkpoint, prefills a
// 64-token prompt, then runs `steps` decode steps through Sequence.step and
// reports their median time; with --native, calls the native step directly
// (no batcher, no logits copy into a new JS array), to separate JS overhead.
//
// --batch N (with --native) steps N sequences together, as the 8-sequence
// rows of the bench do.
//
//   node bench/profile_decode.js <checkpoint dir | .gguf> [steps=64] [--native] [--threads N] [--input-rounding auto|none] [--batch N]
'use strict';
const C = require('./common');

(async () => {
  const args = process.argv.slice(2);
  const native = args.includes('--native');
  const ti = args.indexOf('--threads');
  const threads = ti >= 0 ? Number(args[ti + 1]) : undefined;
  const pos = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && ['--threads', '--input-rounding', '--batch'].includes(args[i - 1])));
  const dir = pos[0];
  const steps = Number(pos[1] || 64);
  if (!dir) throw new Error('usage: profile_decode.js <checkpoint> [steps] [--native] [--threads N]');
  const { loadModel } = C.requireDist();
  const ri = args.indexOf('--input-rounding');
  const model = await loadModel(dir, { threads, ...(ri >= 0 ? { inputRounding: args[ri + 1] } : {}) });
  const bi = args.indexOf('--batch');
  const batch = bi >= 0 ? Number(args[bi + 1]) : 1;
  if (batch > 1 && !native) throw new Error('--batch needs --native');
  const seqs = [];
  for (let b = 0; b < batch; b++) seqs.push(await model.createSequence());
  const toks = new Int32Array(batch);
  for (let b = 0; b < batch; b++) toks[b] = C.argmax(await seqs[b].prefill(C.randomTokens(64, 7 + b).map((t) => t % model.vocabSize)));
  const seq = seqs[0];
  const times = [];
  const nm = model.nativeModel();
  const slots = Int32Array.from(seqs.map((s) => s.slot));
  const V = model.vocabSize;
  for (let i = 0; i < steps; i++) {
    const t0 = C.now();
    const logits = native ? await nm.step(slots, toks) : await seq.step(toks[0]);
    times.push(C.now() - t0);
    for (let b = 0; b < batch; b++) toks[b] = C.argmax(batch > 1 ? logits.subarray(b * V, (b + 1) * V) : logits);
  }
  const ms = C.median(times) * 1e3;
  console.log(JSON.stringify({ steps, native, batch, medianMs: +ms.toFixed(3), tokensPerSecond: +((1000 * batch) / ms).toFixed(2),
    weightBytes: model.memory.weightBytes, effectiveGBps: +(model.memory.weightBytes / ms / 1e6).toFixed(2) }));
  for (const s of seqs) await s.dispose();
  model.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
