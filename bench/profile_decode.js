#!/usr/bin/env node
// Decode at batch 1 in a loop, for a sampling profiler (perf record -g, or
// valgrind --tool=callgrind with few steps): loads a checkpoint, prefills a
// 64-token prompt, then runs `steps` decode steps through Sequence.step and
// reports their median time; with --native, calls the native step directly
// (no batcher, no logits copy into a new JS array), to separate JS overhead.
//
//   node bench/profile_decode.js <checkpoint dir | .gguf> [steps=64] [--native] [--threads N] [--input-rounding auto|none]
'use strict';
const C = require('./common');

(async () => {
  const args = process.argv.slice(2);
  const native = args.includes('--native');
  const ti = args.indexOf('--threads');
  const threads = ti >= 0 ? Number(args[ti + 1]) : undefined;
  const pos = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && ['--threads', '--input-rounding'].includes(args[i - 1])));
  const dir = pos[0];
  const steps = Number(pos[1] || 64);
  if (!dir) throw new Error('usage: profile_decode.js <checkpoint> [steps] [--native] [--threads N]');
  const { loadModel } = C.requireDist();
  const ri = args.indexOf('--input-rounding');
  const model = await loadModel(dir, { threads, ...(ri >= 0 ? { inputRounding: args[ri + 1] } : {}) });
  const seq = await model.createSequence();
  let tok = C.argmax(await seq.prefill(C.randomTokens(64, 7).map((t) => t % model.vocabSize)));
  const times = [];
  const nm = model.nativeModel();
  const slots = Int32Array.of(seq.slot);
  for (let i = 0; i < steps; i++) {
    const t0 = C.now();
    const logits = native ? await nm.step(slots, Int32Array.of(tok)) : await seq.step(tok);
    times.push(C.now() - t0);
    tok = C.argmax(logits);
  }
  const ms = C.median(times) * 1e3;
  console.log(JSON.stringify({ steps, native, medianMs: +ms.toFixed(3), tokensPerSecond: +(1000 / ms).toFixed(2),
    weightBytes: model.memory.weightBytes, effectiveGBps: +(model.memory.weightBytes / ms / 1e6).toFixed(2) }));
  await seq.dispose();
  model.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
