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
//   node bench/ab_trial.js <checkpoint dir | .gguf> [--steps 2000] [--block 4] [--rounds 1] [--threads N]
'use strict';

const steps = Number(option('--steps', 2000)), block = Number(option('--block', 4)), rounds = Number(option('--rounds', 1));
const threads = option('--threads', undefined);
// (read by the addon once, when it first steps: set before the library loads)
process.env.NODE_MAMBA_AB_TRIAL = String(block);
const C = require('./common');

function option(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

(async () => {
  const dir = process.argv[2];
  if (!dir || dir.startsWith('--')) throw new Error('usage: ab_trial.js <checkpoint> [--steps N] [--block N] [--rounds N] [--threads N]');
  const lib = C.requireDist();
  const model = await lib.loadModel(dir, threads ? { threads: Number(threads) } : {});
  const seq = await model.createSequence();
  const rng = lib.createRng(1);
  for (let r = 0; r < rounds; r++) {
    await seq.reset();
    let tok = C.argmax(await seq.prefill(C.randomTokens(64, 7 + r).map((t) => t % model.vocabSize)));
    for (let i = 0; i < steps; i++) tok = await seq.stepChained(tok, { temperature: 0 }, rng, i === steps - 1);
  }
  const info = lib.kernels.runtimeInfo();
  const t = info.abTrial;
  if (!t) throw new Error('the addon did not start the trial (NODE_MAMBA_AB_TRIAL unread?)');
  const line = (name, v) => `${name}: ${v.steps} steps, median ${v.medianUs.toFixed(1)} us, mean ${v.meanUs.toFixed(1)} us`;
  console.log(`${require('node:os').cpus()[0]?.model || 'CPU?'}, ${info.isa}, ${info.threads} threads; ${dir}; blocks of ${t.blockSteps} steps, first ${t.warmupSteps} not counted`);
  console.log(line('A', t.a));
  console.log(line('B', t.b));
  console.log(`B speed / A speed: median ${(t.a.medianUs / t.b.medianUs).toFixed(4)}, mean ${(t.a.meanUs / t.b.meanUs).toFixed(4)}`);
  model.dispose();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
