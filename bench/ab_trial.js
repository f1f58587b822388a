#!/usr/bin/env node
// An A/B trial of a code change in one process (csrc/cpu/ab_trial.h): greedy
// decode at batch 1 as generate() steps (chained native steps), the steps
// alternating between variants A and B in blocks of `--block` steps; prints
// each variant's median step time and B's speed relative to A. On the VMs of
// bench/NOTES.md two runs minutes apart differ by more than most changes do;
// here both variants see the same phases of the machine.
//
// The variant is what the code asks cpu::ab_trial_b() (nm::cpu, cpu/ab_trial.h)
// where it chooses between old and new: a temporary edit, never committed.
// Without one this is an A/A trial: the method's own noise (B/A within
// ~±1% in 2000 steps on the Zen 5 guest of bench/NOTES.md).
//
// --batch N steps N sequences together (the native batched step, as the
// 8-sequence rows of the bench) instead of one sequence's chained steps.
//
//   node bench/ab_trial.js <checkpoint dir | .gguf> [--steps 2000] [--block 4] [--rounds 1] [--threads N] [--batch N]
'use strict';

const steps = Number(option('--steps', 2000)), block = Number(option('--block', 4)), rounds = Number(option('--rounds', 1));
const threads = option('--threads', undefined);
const batch = Number(option('--batch', 1));
// (read by the addon once, when it first steps: set before the library loads)
process.env.NODE_MAMBA_AB_TRIAL = String(block);
const C = require('./common');

function option(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

(async () => {
  const dir = process.argv[2];
  if (!dir || dir.startsWith('--')) throw new Error('usage: ab_trial.js <checkpoint> [--steps N] [--block N] [--rounds N] [--threads N] [--batch N]');
  const lib = C.requireDist();
  const model = await lib.loadModel(dir, threads ? { threads: Number(threads) } : {});
  const seqs = [];
  for (let b = 0; b < batch; b++) seqs.push(await model.createSequence());
  const rng = lib.createRng(1);
  const V = model.vocabSize;
  for (let r = 0; r < rounds; r++) {
    const toks = new Int32Array(batch);
    for (let b = 0; b < batch; b++) {
      await seqs[b].reset();
      toks[b] = C.argmax(await seqs[b].prefill(C.randomTokens(64, 7 + r + 101 * b).map((t) => t % V)));
    }
    if (batch === 1) {
      let tok = toks[0];
      for (let i = 0; i < steps; i++) tok = await seqs[0].stepChained(tok, { temperature: 0 }, rng, i === steps - 1);
    } else {
      const nm = model.nativeModel();
      const slots = Int32Array.from(seqs.map((s) => s.slot));
      for (let i = 0; i < steps; i++) {
        const logits = await nm.step(slots, toks);
        for (let b = 0; b < batch; b++) toks[b] = C.argmax(logits.subarray(b * V, (b + 1) * V));
      }
    }
  }
  const info = lib.kernels.runtimeInfo();
  const t = info.abTrial;
  if (!t) throw new Error('the addon did not start the trial (NODE_MAMBA_AB_TRIAL unread?)');
  const line = (name, v) => `${name}: ${v.steps} steps, median ${v.medianUs.toFixed(1)} us, mean ${v.meanUs.toFixed(1)} us`;
  console.log(`${require('node:os').cpus()[0]?.model || 'CPU?'}, ${info.isa}, ${info.threads} threads; ${dir}; batch ${batch}; blocks of ${t.blockSteps} steps, first ${t.warmupSteps} not counted`);
  console.log(line('A', t.a));
  console.log(line('B', t.b));
  console.log(`B speed / A speed: median ${(t.a.medianUs / t.b.medianUs).toFixed(4)}, mean ${(t.a.meanUs / t.b.meanUs).toFixed(4)}`);
  for (const q of seqs) await q.dispose();
  model.dispose();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
