// Decode steps chained ahead of JavaScript (csrc/napi/step_chain.h,
// Sequence.stepChained, generate()): the tokens equal stepSample's with the
// same rng (greedy, sampled, with a repetition penalty); concurrent
// generations that end at different lengths and join at different times (the
// step run ahead then matches a request only in part) equal each generation
// alone, on Mamba and on an attention hybrid; a sequence stepped ahead refuses
// other calls until freed, reset or restored; a sequence at its contextSize
// does not run ahead (its neighbours in the batch are not failed by it); a
// model disposed while a step runs ahead; a request with its rows in another
// order than the step run ahead.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRng, loadModel, type GenerateOptions, type MambaModel } from '../../lib';
import { graniteTinyPreset, writeRandomHybridCheckpoint } from '../../lib/testing/random_hybrid_checkpoint';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';
import { SAMPLE_PARAM_FIELDS, packSampleParams } from '../../lib/kernels/sampling';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-chain-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const mambaDir = path.join(root, 'mamba');
writeRandomCheckpoint(mambaDir, { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: false, dialect: 'hf', seed: 31 });
const graniteDir = path.join(root, 'granite');
writeRandomHybridCheckpoint(graniteDir, graniteTinyPreset({ seed: 43 }));

async function tokensOf(m: MambaModel, prompt: number[], opts: GenerateOptions): Promise<number[]> {
  const out: number[] = [];
  for await (const c of m.generate(prompt, opts)) out.push(c.token);
  return out;
}

t.test('stepChained gives stepSample\'s tokens with the same rng', async (t) => {
  const m = await loadModel(mambaDir);
  t.teardown(() => m.dispose());
  const cases = [
    { temperature: 0 },
    { temperature: 0.9, topP: 0.9 },
    { temperature: 0.8, topK: 20, repetitionPenalty: 1.3 },
    { temperature: 0, repetitionPenalty: 1.5 },
  ];
  for (const o of cases) {
    const run = async (chained: boolean) => {
      const s = await m.createSequence();
      const rng = createRng(7);
      const history = [3, 9, 27];
      let tok = await s.prefillSample(history, { ...o, history }, rng);
      const out: number[] = [];
      for (let i = 0; i < 30; i++) {
        history.push(tok);
        out.push(tok);
        tok = chained ? await s.stepChained(tok, { ...o, history }, rng, i === 29) : await s.stepSample(tok, { ...o, history }, rng);
      }
      out.push(tok);
      await s.dispose();
      return out;
    };
    t.same(await run(true), await run(false), JSON.stringify(o));
  }
});

for (const [name, dir] of [['mamba', mambaDir], ['granite (attention, MoE)', graniteDir]] as const) {
  t.test(`${name}: generations joining and ending at different steps equal each alone`, async (t) => {
    const m = await loadModel(dir);
    t.teardown(() => m.dispose());
    const V = m.vocabSize;
    const opts = (j: number): GenerateOptions => ({
      ...(j % 2 ? { temperature: 0 } : { temperature: 0.9, topK: 30, repetitionPenalty: 1.2 }),
      seed: 100 + j, maxTokens: 3 + 4 * j, stopAtEos: false,
    });
    const prompts = Array.from({ length: 6 }, (_, j) => [(5 + 11 * j) % V, (7 * j + 1) % V, 2]);
    const alone: number[][] = [];
    for (let j = 0; j < 6; j++) alone.push(await tokensOf(m, prompts[j], opts(j)));
    // Generation j starts when generation 0 has yielded j tokens (it joins steps that run ahead),
    // and each ends at its own length (the step run ahead then matches only in part). Whether a
    // join meets a step running ahead depends on the timing of the threads: up to ten rounds,
    // until one has (each round's tokens checked).
    let cs = m.nativeModel().info().chainedSteps;
    for (let round = 0; round < 10 && cs.partial === 0; round++) {
      const together: Array<Promise<number[]>> = [];
      together.push((async () => {
        const out: number[] = [];
        for await (const c of m.generate(prompts[0], { ...opts(0), maxTokens: 24 })) {
          out.push(c.token);
          if (together.length < 6) together.push(tokensOf(m, prompts[together.length], opts(together.length)));
        }
        return out;
      })());
      const first = await together[0];
      t.same(first, await tokensOf(m, prompts[0], { ...opts(0), maxTokens: 24 }), `round ${round}: the first generation`);
      t.same(await Promise.all(together.slice(1)), alone.slice(1), `round ${round}: the generations that joined it`);
      cs = m.nativeModel().info().chainedSteps;
    }
    t.ok(cs.hits > 0 && cs.partial > 0, `steps run ahead served requests wholly (${cs.hits}) and in part (${cs.partial})`);
    t.equal(m.sequenceCount, 0, 'every sequence was freed');
  });
}

// A consumer that breaks off frees its sequence while the step after runs ahead; generations
// starting meanwhile queue jobs (alloc, prefill) that the chain lets in before its step, and one
// of them may take the freed slot. The step run ahead must not then run on that slot (it did when
// the chain read its rows before taking the compute lock: the new sequence lost its state or
// failed on a NaN). Timing-dependent: many short rounds, each checked.
t.test('granite: generations started as another breaks off equal each alone', async (t) => {
  const m = await loadModel(graniteDir);
  t.teardown(() => m.dispose());
  const V = m.vocabSize;
  const optsB: GenerateOptions = { temperature: 0, maxTokens: 6, stopAtEos: false };
  const optsC: GenerateOptions = { temperature: 0.9, topK: 30, seed: 5, maxTokens: 5, stopAtEos: false };
  const [promptB, promptC] = [[7, 8, 9, 10, 11, 12, 13], [3, 1]];
  const wantB = await tokensOf(m, promptB, optsB), wantC = await tokensOf(m, promptC, optsC);
  // A longer prefill queued first keeps the chain letting jobs in.
  const promptA = Array.from({ length: 20 }, (_, i) => (7 * i) % V);
  let bad = 0;
  const rounds = 600;
  for (let r = 0; r < rounds; r++) {
    let got: Promise<[number[], number[], number[]]> | undefined;
    let n = 0;
    for await (const c of m.generate([r % V, 2], { temperature: 0, maxTokens: 1000, stopAtEos: false })) {
      void c;
      if (++n > r % 4) {
        const a = tokensOf(m, promptA, { ...optsB, maxTokens: 1 });
        got = Promise.all([tokensOf(m, promptB, optsB), tokensOf(m, promptC, optsC), a]);
        break;
      }
    }
    const [b, c] = await got!;
    if (JSON.stringify(b) !== JSON.stringify(wantB) || JSON.stringify(c) !== JSON.stringify(wantC)) {
      bad++;
      if (bad <= 3) t.fail(`round ${r}: ${JSON.stringify([b, c])} for ${JSON.stringify([wantB, wantC])}`);
    }
  }
  t.equal(bad, 0, `${rounds} rounds: every generation that started as one broke off equals it alone`);
  t.equal(m.sequenceCount, 0, 'every sequence was freed');
});

t.test('a sequence stepped ahead refuses other calls until it is reset', async (t) => {
  const m = await loadModel(mambaDir);
  t.teardown(() => m.dispose());
  const s = await m.createSequence();
  const rng = createRng(1);
  await s.prefill([1, 2, 3]);
  const next = await s.stepChained(4, { temperature: 0 }, rng);
  await t.rejects(s.step(next), { message: /stepped ahead by stepChained/ }, 'step');
  await t.rejects(s.prefill([next]), { message: /stepped ahead by stepChained/ }, 'prefill');
  await t.rejects(s.snapshot(), { message: /stepped ahead by stepChained/ }, 'snapshot');
  await s.reset();
  const fresh = await m.createSequence();
  await fresh.prefill([1, 2, 3]);
  await s.prefill([1, 2, 3]);
  t.same(Array.from(await s.step(4)), Array.from(await fresh.step(4)), 'after reset, as a fresh sequence');
  // A second sequence that stopped asking (the step ahead went on without it) is refused too;
  // freeing it is allowed, and its slot serves a new sequence.
  const a = await m.createSequence();
  await a.prefill([5]);
  await a.stepChained(6, { temperature: 0 }, rng);
  await a.dispose();
  const b = await m.createSequence();
  await b.prefill([5]);
  const c = await m.createSequence();
  await c.prefill([5]);
  t.equal(await b.stepGreedy(6), await c.stepGreedy(6), 'a new sequence in the freed slot steps as any other');
  for (const q of [s, fresh, b, c]) await q.dispose();
});

t.test('a sequence at its contextSize does not run ahead; the others in its batch go on', async (t) => {
  const m = await loadModel(graniteDir, { contextSize: 12 });
  t.teardown(() => m.dispose());
  const opts = { temperature: 0, maxTokens: 20, stopAtEos: false };
  const short = m.generate([1, 2, 3, 4, 5, 6, 7, 8], opts);  // 8 + 4 tokens reach 12
  const got: number[] = [];
  const roomy = await loadModel(graniteDir, { contextSize: 64 });
  t.teardown(() => roomy.dispose());
  const long = await tokensOf(roomy, [9, 10], { ...opts, maxTokens: 8 });
  const other = tokensOf(m, [9, 10], { ...opts, maxTokens: 8 });
  await t.rejects((async () => { for await (const c of short) got.push(c.token); })(), { name: 'RangeError', message: /contextSize/ });
  t.equal(got.length, 5, 'the prompt and four steps fill the context; the fifth step is refused');
  t.same(await other, long, 'the generation sharing its steps is unaffected');
});

t.test('a model disposed while a step runs ahead', async (t) => {
  for (let k = 0; k < 3; k++) {
    const m = await loadModel(mambaDir);
    const s = await m.createSequence();
    await s.prefill([1, 2]);
    const first = await s.stepChained(3, { temperature: 0 }, createRng(k));
    void first;
    m.dispose();  // the step after runs ahead now
    await t.rejects(s.stepChained(first, { temperature: 0 }, createRng(k)), { name: 'DisposedError' });
  }
  // The process is still sound: a new model steps.
  const m = await loadModel(mambaDir);
  const s = await m.createSequence();
  await s.prefill([1, 2]);
  t.ok((await s.stepGreedy(3)) >= 0);
  m.dispose();
});

t.test('a request for the step run ahead with its rows in another order is served by it', async (t) => {
  const m = await loadModel(mambaDir);
  t.teardown(() => m.dispose());
  const nm = m.nativeModel();
  const greedy = new Float64Array(2 * SAMPLE_PARAM_FIELDS);
  for (let i = 0; i < 2; i++) packSampleParams(greedy, i, { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1 }, 0);
  const [a, b] = [await m.createSequence(), await m.createSequence()];
  await a.prefill([1, 2]);
  await b.prefill([3]);
  const first = await nm.stepChained(Int32Array.of(a.slot, b.slot), Int32Array.of(4, 5), greedy, undefined, undefined, Float64Array.of(0, 0));
  const hits = nm.info().chainedSteps.hits;
  const second = await nm.stepChained(Int32Array.of(b.slot, a.slot), Int32Array.of(first[1], first[0]), greedy, undefined, undefined,
    Float64Array.of(NaN, NaN));
  t.equal(nm.info().chainedSteps.hits, hits + 1, 'served by the step run ahead');
  // The same steps one by one on fresh sequences.
  const [x, y] = [await m.createSequence(), await m.createSequence()];
  await x.prefill([1, 2]);
  await y.prefill([3]);
  const wantA = [await x.stepGreedy(4)], wantB = [await y.stepGreedy(5)];
  wantA.push(await x.stepGreedy(wantA[0]));
  wantB.push(await y.stepGreedy(wantB[0]));
  t.same([first[0], second[1]], wantA, 'sequence a');
  t.same([first[1], second[0]], wantB, 'sequence b');
  for (const s of [a, b, x, y]) await s.dispose();
});
