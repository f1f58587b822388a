// Generation on a random-weight model: greedy follows the argmax of the
// model's own logits, seeds make sampling reproducible, concurrent
// generations (batched decode) give the same tokens as sequential ones,
// stop strings, maxTokens and AbortSignal end a generation and free its
// sequence.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, type GenerateOptions, type MambaModel } from '../../lib';
import { generate, type GenerationHost } from '../../lib/generate/generate';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-gen-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

async function model(arch: 'mamba' | 'mamba2'): Promise<MambaModel> {
  const dir = path.join(root, arch);
  if (!fs.existsSync(dir)) {
    writeRandomCheckpoint(dir, arch === 'mamba'
      ? { arch, dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: false, dialect: 'hf', seed: 21 }
      : { arch, dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'bf16', tied: false, dialect: 'hf', seed: 22, headdim: 16, dState: 16 });
  }
  return loadModel(dir);
}

async function tokensOf(m: MambaModel, prompt: number[], opts: GenerateOptions): Promise<number[]> {
  const out: number[] = [];
  for await (const c of m.generate(prompt, opts)) out.push(c.token);
  return out;
}

const argmax = (a: ArrayLike<number>) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };

for (const arch of ['mamba', 'mamba2'] as const) {
  t.test(`${arch}: greedy generation follows the argmax of forward()`, async (t) => {
    const m = await model(arch);
    t.teardown(() => m.dispose());
    const prompt = [5, 17, 42, 99];
    const gen = await tokensOf(m, prompt, { temperature: 0, maxTokens: 12, stopAtEos: false });
    t.equal(gen.length, 12);
    const logits = await m.forward([...prompt, ...gen.slice(0, -1)]);
    const V = m.vocabSize;
    const expected = gen.map((_, k) => argmax(logits.subarray((prompt.length - 1 + k) * V, (prompt.length + k) * V)));
    t.same(gen, expected);
    t.equal(m.sequenceCount, 0, 'generate freed its sequence');
  });

  t.test(`${arch}: 8 concurrent generations equal 8 sequential ones (same seeds)`, async (t) => {
    const m = await model(arch);
    t.teardown(() => m.dispose());
    const prompts = Array.from({ length: 8 }, (_, j) => [1 + j, 7 * j + 3, 11]);
    const opts = (j: number): GenerateOptions => ({ temperature: 0.9, topK: 40, topP: 0.95, seed: 1000 + j, maxTokens: 10, stopAtEos: false });
    const sequential: number[][] = [];
    for (let j = 0; j < 8; j++) sequential.push(await tokensOf(m, prompts[j], opts(j)));
    const concurrent = await Promise.all(prompts.map((p, j) => tokensOf(m, p, opts(j))));
    t.same(concurrent, sequential);
    const again = await tokensOf(m, prompts[0], opts(0));
    t.same(again, sequential[0], 'same seed, same output');
  });
}

t.test('stop strings, maxTokens, complete()', async (t) => {
  const m = await model('mamba');
  t.teardown(() => m.dispose());
  const opts = { temperature: 1, seed: 3, maxTokens: 24, stopAtEos: false };
  const full = await m.complete([5, 17], opts);
  t.ok(full.length > 6, `sampled text: ${JSON.stringify(full)}`);
  const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
  const cut = await m.complete([5, 17], { ...opts, stop: [stop] });
  t.equal(cut, full.slice(0, full.indexOf(stop)), `stops before ${JSON.stringify(stop)}`);
  t.equal((await tokensOf(m, [1, 2], { maxTokens: 3, stopAtEos: false })).length, 3);
  t.equal(await m.complete([5, 17], { maxTokens: 0 }), '');
  await t.rejects(m.complete([5, 17], { temperature: -1 }), RangeError);
  await t.rejects(m.complete([5, 17], { maxTokens: -1 }), RangeError);
  await t.rejects(m.complete([1, 100000]), RangeError);
});

t.test('AbortSignal stops within one step and frees the sequence', async (t) => {
  const m = await model('mamba');
  t.teardown(() => m.dispose());
  const ac = new AbortController();
  const got: number[] = [];
  await t.rejects((async () => {
    for await (const c of m.generate([1, 2, 3], { maxTokens: 1000, stopAtEos: false, signal: ac.signal })) {
      got.push(c.token);
      if (got.length === 5) ac.abort();
    }
  })(), { name: 'AbortError' });
  t.equal(got.length, 5, 'no token after the abort');
  t.equal(m.sequenceCount, 0, 'the sequence was freed');
  const pre = new AbortController();
  pre.abort();
  await t.rejects(m.complete('x', { signal: pre.signal }), { name: 'AbortError' });
  // Breaking out of the loop also frees the sequence.
  for await (const c of m.generate([1], { maxTokens: 100, stopAtEos: false })) { void c; break; }
  t.equal(m.sequenceCount, 0);
});

t.test('the next step runs while the consumer holds a chunk; a consumer that leaves early waits for it', async (t) => {
  const m = await model('mamba');
  t.teardown(() => m.dispose());
  let started = 0, settled = 0;
  // generate() on the model, its sequences' steps counted.
  const host: GenerationHost = {
    tokenizer: m.tokenizer, config: m.config,
    createSequence: async () => {
      const s = await m.createSequence();
      for (const k of ['stepChained'] as const) {
        const f = (s[k] as (...a: unknown[]) => Promise<number>).bind(s);
        (s as unknown as Record<string, unknown>)[k] = (...a: unknown[]) => { started++; return f(...a).finally(() => settled++); };
      }
      return s;
    },
  };
  for (const opts of [{ temperature: 0 }, { temperature: 0.8, topP: 0.9, seed: 5 }]) {
    started = settled = 0;
    const startedAtChunk: number[] = [];
    const tokens: number[] = [];
    for await (const c of generate(host, [5, 17], { ...opts, maxTokens: 6, stopAtEos: false })) {
      startedAtChunk.push(started);
      tokens.push(c.token);
      await new Promise((r) => setTimeout(r, 2));
    }
    // Chunk k arrives with the step that consumes its token started (k + 1 steps); the last
    // chunk (maxTokens) starts none.
    t.same(startedAtChunk, [1, 2, 3, 4, 5, 5], `${JSON.stringify(opts)}: steps started before each chunk`);
    t.same(tokens, await tokensOf(m, [5, 17], { ...opts, maxTokens: 6, stopAtEos: false }), 'the same tokens as the model\'s generate()');
    t.equal(settled, started);
  }
  started = settled = 0;
  let n = 0;
  for await (const c of generate(host, [5], { maxTokens: 100, stopAtEos: false })) { void c; if (++n === 3) break; }
  t.equal(started, 3, 'the third chunk came with its step started');
  t.equal(settled, 3, 'the loop ended after that step did');
  t.equal(m.sequenceCount, 0, 'and the sequence was freed');
});

t.test('a model disposed while the consumer holds a chunk (its step in flight) rejects the generation', async (t) => {
  const m = await loadModel(path.join(root, 'mamba'));
  t.teardown(() => m.dispose());
  const got: number[] = [];
  await t.rejects((async () => {
    for await (const c of m.generate([1, 2, 3], { maxTokens: 10, stopAtEos: false })) {
      got.push(c.token);
      if (got.length === 3) m.dispose();
      await new Promise((r) => setTimeout(r, 5));
    }
  })(), { name: 'DisposedError' });
  // The step in flight at the dispose may still bring its token; none after it.
  t.ok(got.length === 3 || got.length === 4, `${got.length} tokens`);
  t.equal(m.sequenceCount, 0);
});
