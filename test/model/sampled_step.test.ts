// Sampled steps (Sequence.stepSample, generate() at a temperature or with a
// repetition penalty): the next token drawn in native code equals
// sampleToken's draw from the step's logits with the same rng; sampled,
// greedy and logits steps batch together (a batch with a logits step samples
// in JavaScript); generate() with a seed gives the tokens of the loop it
// replaced (step() then sampleToken); prefillSample likewise for the prefill;
// the arguments are checked.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRng, loadModel, sampleToken, type MambaModel, type SamplingOptions } from '../../lib';
import { argmax } from '../../lib/generate/sampling';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-sampled-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const V = 97;
const prompts = [[1, 5, 9], [2, 7], [3, 3, 3, 4], [60, 11], [8], [40, 41, 42], [5, 5, 6], [70, 2]];
const OPTIONS: SamplingOptions[] = [
  { temperature: 1 }, { temperature: 0.8, topP: 0.9 }, { topK: 5 }, { temperature: 0.7, minP: 0.05 }, { topK: 20, topP: 0.95, temperature: 1.2 }, { temperature: 2 },
  { temperature: 0.9, topP: 0.95, repetitionPenalty: 1.3 }, { temperature: 0, repetitionPenalty: 1.5 },
];

async function load(): Promise<MambaModel> {
  const dir = path.join(root, 'm');
  if (!fs.existsSync(dir)) writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 32, nLayer: 2, vocabSize: V, dtype: 'f32', tied: false, dialect: 'hf', seed: 11 });
  return loadModel(dir);
}

/**
 * n tokens after `prompt`, each drawn by sampleToken from the step's logits (the JavaScript loop
 * generate() ran before: the history for the repetition penalty is the prompt and the tokens so far).
 */
async function viaLogits(m: MambaModel, prompt: number[], o: SamplingOptions, seed: number, n: number): Promise<number[]> {
  const rng = createRng(seed);
  const s = await m.createSequence();
  const out = [sampleToken(await s.prefill(prompt), { ...o, history: prompt }, rng)];
  while (out.length < n) out.push(sampleToken(await s.step(out[out.length - 1]), { ...o, history: [...prompt, ...out] }, rng));
  await s.dispose();
  return out;
}

t.test('stepSample draws what sampleToken draws from the logits, alone and batched with greedy and logits steps', async (t) => {
  const m = await load();
  t.teardown(() => m.dispose());
  const n = 16;
  const want: number[][] = [];
  for (let i = 0; i < prompts.length; i++) want.push(await viaLogits(m, prompts[i], OPTIONS[i], 100 + i, n));
  t.ok(new Set(want.flat()).size > 10, `the draws vary (${want.map((w) => w.join(' ')).join(' / ')})`);
  // Alone: one sequence at a time (native sampled steps).
  for (const i of [0, 1, 6]) {
    const rng = createRng(100 + i);
    const s = await m.createSequence();
    const out = [sampleToken(await s.prefill(prompts[i]), { ...OPTIONS[i], history: prompts[i] }, rng)];
    while (out.length < n) out.push(await s.stepSample(out[out.length - 1], { ...OPTIONS[i], history: [...prompts[i], ...out] }, rng));
    await s.dispose();
    t.same(out, want[i], `sequence ${i} alone`);
  }
  // Concurrently: sequences 0-3 sampled natively, 4 through its logits (a shorter run, so that
  // batches hold a logits step at first and none later), 5 sampled; plus a greedy sequence.
  const greedyWant: number[] = [];
  {
    const s = await m.createSequence();
    greedyWant.push(argmax(await s.prefill([9, 9])));
    while (greedyWant.length < n) greedyWant.push(argmax(await s.step(greedyWant[greedyWant.length - 1])));
    await s.dispose();
  }
  const runs = prompts.map(async (p, i) => {
    const rng = createRng(100 + i);
    const s = await m.createSequence();
    const out = [sampleToken(await s.prefill(p), { ...OPTIONS[i], history: p }, rng)];
    const steps = i === 4 ? 6 : n;
    while (out.length < steps) {
      const last = out[out.length - 1], o = { ...OPTIONS[i], history: [...p, ...out] };
      out.push(i === 4 ? sampleToken(await s.step(last), o, rng) : await s.stepSample(last, o, rng));
    }
    await s.dispose();
    return out;
  });
  const greedy = (async () => {
    const s = await m.createSequence();
    const out = [argmax(await s.prefill([9, 9]))];
    while (out.length < n) out.push(await s.stepGreedy(out[out.length - 1]));
    await s.dispose();
    return out;
  })();
  const got = await Promise.all(runs);
  got.forEach((g, i) => t.same(g, want[i].slice(0, g.length), `sequence ${i} ${JSON.stringify(OPTIONS[i])} (${i === 4 ? 'logits' : 'sampled'} steps): ${g.length} tokens`));
  t.same(await greedy, greedyWant, 'the greedy sequence batched with them');
});

t.test('generate() with a seed: the tokens of step() + sampleToken with that seed; 8 concurrent equal 8 sequential', async (t) => {
  const m = await load();
  t.teardown(() => m.dispose());
  const n = 20;
  for (const [i, o] of OPTIONS.entries()) {
    const want = await viaLogits(m, prompts[i], o, 7 + i, n);
    const got: number[] = [];
    for await (const c of m.generate(prompts[i], { ...o, seed: 7 + i, maxTokens: n, stopAtEos: false })) got.push(c.token);
    t.same(got, want, `generate ${JSON.stringify(o)}`);
  }
  const opts = { temperature: 0.9, topP: 0.95, maxTokens: 12, stopAtEos: false };
  const seq: number[][] = [];
  for (let k = 0; k < 8; k++) {
    const out: number[] = [];
    for await (const c of m.generate(prompts[k % prompts.length], { ...opts, seed: 300 + k })) out.push(c.token);
    seq.push(out);
  }
  const conc = await Promise.all(Array.from({ length: 8 }, async (_, k) => {
    const out: number[] = [];
    for await (const c of m.generate(prompts[k % prompts.length], { ...opts, seed: 300 + k })) out.push(c.token);
    return out;
  }));
  t.same(conc, seq, '8 concurrent sampled generations equal 8 sequential ones');
});

t.test('prefillSample draws what sampleToken draws from the prefill logits', async (t) => {
  const m = await load();
  t.teardown(() => m.dispose());
  for (const [i, o] of OPTIONS.entries()) {
    const p = prompts[i];
    const a = await m.createSequence(), b = await m.createSequence();
    const ra = createRng(70 + i), rb = createRng(70 + i);
    const want = [sampleToken(await a.prefill(p), { ...o, history: p }, ra), sampleToken(await a.prefill(p), { ...o, history: p }, ra)];
    const got = [await b.prefillSample(p, { ...o, history: p }, rb), await b.prefillSample(p, { ...o, history: p }, rb)];
    t.same(got, want, `prefillSample ${JSON.stringify(o)} (twice: the state and the rng continue alike)`);
    t.equal(await b.stepSample(got[1], o, rb), sampleToken(await a.step(want[1]), o, ra), 'and the step after it');
    await a.dispose();
    await b.dispose();
  }
  const s = await m.createSequence();
  await t.rejects(s.prefillSample([], {}, createRng(1)), { name: 'RangeError', message: /tokens/ });
  await t.rejects(s.prefillSample([1], { topK: -1 }, createRng(1)), { name: 'RangeError', message: /topK/ });
  await t.rejects(s.prefillSample([1, V], {}, createRng(1)), { name: 'RangeError', message: /outside the vocabulary/ });
  const nm = m.nativeModel() as unknown as { prefill(slot: number, toks: Int32Array, o: string, p?: unknown): Promise<unknown> };
  t.throws(() => nm.prefill(s.slot, Int32Array.of(1), 'sample'), { name: 'TypeError', message: /params/ });
  t.throws(() => nm.prefill(s.slot, Int32Array.of(1), 'sample', Float64Array.of(1, 0, 1, 0, 1, 2)), { name: 'RangeError', message: /row 0: u/ });
  t.throws(() => nm.prefill(s.slot, Int32Array.of(1), 'top'), { name: 'TypeError', message: /'sample'/ });
  await s.dispose();
});

t.test('stepSample and the native sampled step check their arguments', async (t) => {
  const m = await load();
  t.teardown(() => m.dispose());
  const s = await m.createSequence();
  await s.prefill([1, 2]);
  const rng = createRng(1);
  await t.rejects(s.stepSample(3, { repetitionPenalty: 1.3, history: [1, V] }, rng), { name: 'RangeError', message: /history\[1\]/ });
  await t.rejects(s.stepSample(3, { repetitionPenalty: -1 }, rng), { name: 'RangeError', message: /repetitionPenalty/ });
  await t.rejects(s.stepSample(3, { topP: 2 }, rng), { name: 'RangeError', message: /topP/ });
  await t.rejects(s.stepSample(V, {}, rng), { name: 'RangeError' });
  const nm = m.nativeModel() as unknown as { step(a: Int32Array, b: Int32Array, o?: unknown, p?: unknown): Promise<Int32Array> };
  const slots = Int32Array.of(s.slot), toks = Int32Array.of(3);
  t.throws(() => nm.step(slots, toks, 'sample'), { name: 'TypeError', message: /params/ });
  t.throws(() => nm.step(slots, toks, 'sample', Float64Array.of(1, 0, 1, 0, 1)), { name: 'RangeError', message: /params/ });
  t.throws(() => nm.step(slots, toks, 'sample', Float64Array.of(1, 0, 1, 0, 1, 1)), { name: 'RangeError', message: /row 0: u/ });
  const ids = await nm.step(slots, toks, 'sample', Float64Array.of(0, 0, 1, 0, 1, 0));
  t.type(ids, Int32Array);
  t.ok(ids[0] >= 0 && ids[0] < V, `a token id (${ids[0]})`);
  await s.dispose();
});
