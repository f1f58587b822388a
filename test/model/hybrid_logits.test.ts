// Hybrid models (Jamba, Granite 4.0-H) end to end: Hugging Face checkpoints
// the tests write (lib/testing/random_hybrid_checkpoint.ts, shapes like
// Jamba-tiny-dev and Granite-4.0-H-Tiny scaled down) loaded by loadModel and
// compared with the float64 reference forward (test/helpers/reference_hybrid.ts)
// on every ISA level; prefill then decode equals one prefill; 8 concurrent
// generations equal 8 sequential ones; snapshots (with KV caches) restored in
// another process; contextSize; the f16 KV cache.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../../lib';
import {
  graniteTinyPreset, jambaTinyPreset, writeRandomHybridCheckpoint, type RandomHybridOptions,
} from '../../lib/testing/random_hybrid_checkpoint';
import { HybridReference } from '../helpers/reference_hybrid';
import { forEachIsaAsync, worstError } from '../helpers/reference';
import { restoreInAnotherProcess } from '../helpers/restore_elsewhere';

// The engine computes in float32 (weights widened exactly from their stored
// dtype, f32 KV cache), the reference in float64 on the same stored values:
// |err| <= 5e-5 + 5e-5·|ref| over 6 layers of recurrence, attention and experts.
// The tokens are checked to keep every router decision further than 1e-4 from a
// tie, so that float32 noise cannot flip an expert choice.
const ATOL = 5e-5, RTOL = 5e-5, MIN_GAP = 1e-4;

function tokensFor(n: number, V: number, seed: number): number[] {
  let s = seed * 7919 + 13;
  return Array.from({ length: n }, () => (s = (s * 48271) % 2147483647) % V);
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-hybrid-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const cases: Array<[string, RandomHybridOptions, number]> = [
  ['jamba tiny f32', jambaTinyPreset(), 37],
  ['jamba bf16 tied, 2 shards', jambaTinyPreset({ dtype: 'bf16', tied: true, shards: 2, seed: 5 }), 21],
  ['granite tiny f32 (nope)', graniteTinyPreset(), 37],
  ['granite f16 rope', graniteTinyPreset({ dtype: 'f16', positionEmbeddingType: 'rope', ropeTheta: 5000, seed: 7 }), 29],
  ['granite dense (no experts)', graniteTinyPreset({ experts: 0, seed: 9 }), 25],
  // Prefill runs in chunks (csrc/engine/forward.h): 512 tokens, 2048 with MoE layers; the
  // attention of a later chunk reads the earlier chunks' K/V, the Mamba layers carry their state.
  ['granite dense long prompt (> one 512-token prefill chunk)', graniteTinyPreset({ experts: 0, seed: 12 }), 600],
  ['jamba long prompt (> one 2048-token MoE prefill chunk)', jambaTinyPreset({ seed: 13 }), 2100],
];

function write(name: string, opts: RandomHybridOptions) {
  const dir = path.join(root, name.replace(/\W+/g, '_'));
  return { dir, ck: writeRandomHybridCheckpoint(dir, opts) };
}

t.test('forward() logits of Jamba and Granite 4.0-H checkpoints match the float64 reference', async (t) => {
  for (const [name, opts, L] of cases) {
    const { dir, ck } = write(name, opts);
    const model = await loadModel(dir, { inputRounding: 'none', kvCacheType: 'f32' });
    const V = model.vocabSize;
    const tokens = tokensFor(L, V, L);
    const ref = new HybridReference(ck.config, ck.weights);
    const want = ref.prefill(tokens);
    t.ok(ref.minRouterGap() > MIN_GAP, `${name}: router gaps ${ref.minRouterGap().toExponential(2)} > ${MIN_GAP}`);
    const got = await model.forward(tokens);
    const w = worstError(got, want, ATOL, RTOL);
    t.ok(w.ratio <= 1, `${name}: L=${L} worst err/tol ${w.ratio.toPrecision(3)} at ${w.index} (${w.actual} vs ${w.expected})`);
    model.dispose();
  }
});

t.test('every ISA level gives the reference logits (Jamba and Granite)', async (t) => {
  for (const [name, opts] of [cases[0], cases[3]] as const) {
    const { dir, ck } = write(`isa ${name}`, opts);
    const model = await loadModel(dir, { inputRounding: 'none', kvCacheType: 'f32' });
    const tokens = tokensFor(19, model.vocabSize, 3);
    const want = new HybridReference(ck.config, ck.weights).prefill(tokens);
    await forEachIsaAsync(async (isa) => {
      const got = await model.forward(tokens);
      const w = worstError(got, want, ATOL, RTOL);
      t.ok(w.ratio <= 1, `${name} at ${isa}: worst err/tol ${w.ratio.toPrecision(3)}`);
    });
    model.dispose();
  }
});

/** The model in `dir` (exact inputs, f32 cache), `n` tokens, their one-forward logits and a new sequence. */
async function withReference(dir: string, n: number, seed: number) {
  const model = await loadModel(dir, { inputRounding: 'none', kvCacheType: 'f32' });
  const V = model.vocabSize;
  const tokens = tokensFor(n, V, seed);
  const all = await model.forward(tokens);
  const seq = await model.createSequence();
  return { model, V, tokens, all, seq };
}

t.test('prefill then decode equals one prefill; a later prefill chunk sees the earlier ones', async (t) => {
  for (const [name, opts] of [cases[0], cases[3]] as const) {
    const { dir } = write(`pd ${name}`, opts);
    const { model, V, tokens, all, seq } = await withReference(dir, 30, 4);
    await seq.prefill(tokens.slice(0, 11));
    const b = await seq.prefill(tokens.slice(11, 20));
    let w = worstError(b, all.subarray(19 * V, 20 * V), 1e-5, 1e-5);
    t.ok(w.ratio <= 1, `${name}: two prefills = one (err/tol ${w.ratio.toPrecision(3)})`);
    for (let i = 20; i < 30; i++) {
      const got = await seq.step(tokens[i]);
      w = worstError(got, all.subarray(i * V, (i + 1) * V), 1e-5, 1e-5);
      if (w.ratio > 1) t.fail(`${name}: step at ${i} err/tol ${w.ratio}`);
    }
    t.equal(seq.length, 30, `${name}: position`);
    t.pass(`${name}: 10 steps equal the prefill's logits`);
    await seq.dispose();
    model.dispose();
  }
});

t.test('decode past 512 cached positions (key ranges merged) equals one prefill', async (t) => {
  // A decode query splits its keys in ranges of 512 positions merged after
  // (csrc/kernels/attention.cpp): steps at 601..606 positions take two ranges.
  const { dir } = write('long decode granite', graniteTinyPreset({ experts: 0, seed: 14 }));
  const { model, V, tokens, all, seq } = await withReference(dir, 606, 6);
  await seq.prefill(tokens.slice(0, 600));
  let worst = 0;
  for (let i = 600; i < 606; i++) {
    const got = await seq.step(tokens[i]);
    worst = Math.max(worst, worstError(got, all.subarray(i * V, (i + 1) * V), 1e-5, 1e-5).ratio);
  }
  t.ok(worst <= 1, `6 steps after 600 positions equal the prefill's logits (worst err/tol ${worst.toPrecision(3)})`);
  await seq.dispose();
  model.dispose();
});

t.test('8 concurrent generations equal 8 sequential ones (batched decode over attention and experts)', async (t) => {
  const { dir } = write('concurrent', graniteTinyPreset({ seed: 21, positionEmbeddingType: 'rope' }));
  const model = await loadModel(dir, { inputRounding: 'none' });
  const V = model.vocabSize;
  const prompts = Array.from({ length: 8 }, (_, i) => tokensFor(3 + 2 * i, V, 100 + i));
  const sequential: number[][] = [];
  for (const p of prompts) sequential.push(await greedy(p));
  const concurrent = await Promise.all(prompts.map((p) => greedy(p)));
  t.same(concurrent, sequential, '8 greedy continuations of 12 tokens, bit for bit');
  model.dispose();

  async function greedy(prompt: number[]): Promise<number[]> {
    const seq = await model.createSequence();
    let logits = await seq.prefill(prompt);
    const out: number[] = [];
    for (let i = 0; i < 12; i++) {
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
      out.push(best);
      logits = await seq.step(best);
    }
    await seq.dispose();
    return out;
  }
});

t.test('snapshots carry the KV caches: restored in another process, continued bit for bit', async (t) => {
  const { dir } = write('snapshot', jambaTinyPreset({ seed: 31 }));
  const model = await loadModel(dir, { inputRounding: 'none' });
  t.teardown(() => model.dispose());
  const V = model.vocabSize, toks = tokensFor(24, V, 6);
  const a = await model.createSequence();
  await a.prefill(toks.slice(0, 17));
  const snap = await a.snapshot();
  const next = Array.from(await a.step(toks[17]));
  await a.dispose();
  const header = JSON.parse(Buffer.from(snap.subarray(16, 16 + new DataView(snap.buffer, snap.byteOffset).getUint32(12, true))).toString('utf8'));
  const kinds = header.layers.map((l: { kind: string }) => l.kind);
  t.same(kinds, ['mamba', 'attention', 'mamba', 'mamba', 'attention', 'mamba'], 'the header lists every layer by kind');
  t.same(header.layers[1], { kind: 'attention', tokens: 17, kvHeads: 2, headDim: 16, dtype: 'f16' }, 'attention layers: tokens, heads, dtype');

  const child = restoreInAnotherProcess(dir, snap, path.join(root, 'hybrid-snap.bin'), toks[17]);
  t.equal(child.status, 0, child.stderr);
  t.equal(child.length, 17, 'the position travels with the state');
  t.same(child.logits, next, 'the other process continues bit for bit');

  // A snapshot of a Granite model is refused by the Jamba model.
  const { dir: gdir } = write('snapshot-granite', graniteTinyPreset({ seed: 32 }));
  const granite = await loadModel(gdir);
  const g = await granite.createSequence();
  await g.prefill([1, 2, 3]);
  const gsnap = await g.snapshot();
  const s = await model.createSequence();
  await t.rejects(s.restore(gsnap), { name: 'SnapshotError', field: 'fingerprint' }, 'another model');
  // Restore into a sequence that already holds tokens replaces its KV pages.
  await s.prefill(toks.slice(0, 5));
  await s.restore(snap);
  t.same(Array.from(await s.step(toks[17])), next, 'restored over a used sequence');
  await s.dispose();
  await g.dispose();
  granite.dispose();
});

t.test('contextSize bounds a sequence (RangeError naming it); the f16 KV cache stays close to f32', async (t) => {
  const { dir } = write('context', graniteTinyPreset({ seed: 41 }));
  const model = await loadModel(dir, { contextSize: 16 });
  const seq = await model.createSequence();
  await seq.prefill(tokensFor(10, model.vocabSize, 1));
  await t.rejects(seq.prefill(tokensFor(7, model.vocabSize, 2)), { name: 'RangeError', message: /contextSize/ }, 'a prompt past contextSize');
  for (let i = 0; i < 6; i++) await seq.step(i);
  await t.rejects(seq.step(1), { name: 'RangeError', message: /contextSize/ }, 'a step past contextSize');
  t.equal(seq.length, 16, 'the refused calls changed nothing');
  await seq.reset();
  await seq.prefill(tokensFor(16, model.vocabSize, 3));
  t.pass('reset frees the pages: a full context fits again');
  await seq.dispose();
  model.dispose();

  const f32 = await loadModel(dir, { inputRounding: 'none', kvCacheType: 'f32' });
  const f16 = await loadModel(dir, { inputRounding: 'none' });
  const tokens = tokensFor(40, f32.vocabSize, 8);
  const a = await f32.forward(tokens), b = await f16.forward(tokens);
  const w = worstError(b, a, 2e-2, 2e-2);
  t.ok(w.ratio <= 1, `f16 K/V rows: logits within 2e-2 of the f32 cache's (err/tol ${w.ratio.toPrecision(3)})`);
  t.ok(worstError(b, a, 0, 0).ratio > 0, 'and not identical (the cache really is f16)');
  f32.dispose();
  f16.dispose();
});
