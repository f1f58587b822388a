#!/usr/bin/env node
// The sampler's cost per token against the decode step it follows:
// sampleToken (lib/generate/sampling.ts, on the JavaScript thread) and the
// native sampler (kernels.sampleTokens, one row and 8 rows on the pool) on
// vocabulary-sized rows of logits for the usual option sets, then generate()
// at 1 and 8 concurrent sequences with those options against greedy
// generation on a checkpoint (without a repetition penalty generate() draws
// natively in the step: Sequence.stepSample).
//
//   node bench/profile_sampling.js [checkpoint dir | .gguf] [--vocab 50280] [--tokens 64]
'use strict';
const C = require('./common');

const SETS = [
  { temperature: 1 },
  { temperature: 0.8, topP: 0.9 },
  { temperature: 0.8, topK: 40 },
  { temperature: 0.7, minP: 0.05 },
  { temperature: 0.8, topK: 50, topP: 0.95, repetitionPenalty: 1.1 },
];

function samplerAlone(V) {
  const { sampleToken } = C.requireDist('generate/sampling.js');
  const { createRng } = C.requireDist('generate/rng.js');
  const r = C.rng(7);
  const logits = Float32Array.from({ length: V }, () => (r() - 0.5) * 8);
  const history = Array.from({ length: 64 }, (_, i) => (i * 7919) % V);
  const rng = createRng(1);
  console.log(`sampleToken on ${V} logits (ms per token, median of 5 x 40):`);
  for (const o of SETS) {
    const opts = { ...o, history };
    for (let i = 0; i < 20; i++) sampleToken(logits, opts, rng);
    const t = [];
    for (let k = 0; k < 5; k++) {
      const t0 = C.now();
      for (let i = 0; i < 40; i++) sampleToken(logits, opts, rng);
      t.push((C.now() - t0) / 40);
    }
    console.log(`  ${JSON.stringify(o).padEnd(72)} ${(C.median(t) * 1e3).toFixed(3)}`);
  }
  const { kernels } = C.requireDist();
  if (!kernels.sampleTokens) return;  // (a library from before the native sampler)
  console.log(`kernels.sampleTokens on ${V} logits (ms per call of 1 row / of 8 rows, median of 5 x 40):`);
  const rows8 = new Float32Array(8 * V);
  for (let i = 0; i < 8; i++) rows8.set(logits, i * V);
  for (const o of SETS.filter((x) => !x.repetitionPenalty)) {
    const time = (rows, data) => {
      const u = Array.from({ length: rows }, () => rng.next());
      for (let i = 0; i < 10; i++) kernels.sampleTokens({ logits: data, rows, vocab: V, options: o, u });
      const t = [];
      for (let k = 0; k < 5; k++) {
        const t0 = C.now();
        for (let i = 0; i < 40; i++) kernels.sampleTokens({ logits: data, rows, vocab: V, options: o, u });
        t.push((C.now() - t0) / 40);
      }
      return (C.median(t) * 1e3).toFixed(3);
    };
    console.log(`  ${JSON.stringify(o).padEnd(72)} ${time(1, logits)} / ${time(8, rows8)}`);
  }
}

async function generation(dir, tokens) {
  const { loadModel } = C.requireDist();
  const m = await loadModel(dir);
  console.log(`generate() on ${dir}, ${tokens} tokens per sequence (tokens/s, median of 3):`);
  for (const n of [1, 8]) {
    const prompts = Array.from({ length: n }, (_, i) => C.randomTokens(16, 3 + i).map((t) => t % m.vocabSize));
    for (const o of [{ temperature: 0 }, ...SETS]) {
      const run = async () => {
        const t0 = C.now();
        let count = 0;
        await Promise.all(prompts.map(async (p, i) => {
          for await (const c of m.generate(p, { ...o, maxTokens: tokens, stopAtEos: false, seed: i })) count += c.token >= 0 ? 1 : 0;
        }));
        return count / (C.now() - t0);
      };
      await run();
      const r = [await run(), await run(), await run()];
      console.log(`  ${String(n).padStart(2)} sequences ${JSON.stringify(o).padEnd(72)} ${C.median(r).toFixed(1)}`);
    }
  }
  m.dispose();
}

(async () => {
  const pos = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !(i > 0 && all[i - 1].startsWith('--')));
  samplerAlone(Number(C.option('--vocab', 50280)));
  if (pos[0]) await generation(pos[0], Number(C.option('--tokens', 64)));
})().catch((e) => { console.error(e); process.exit(1); });
