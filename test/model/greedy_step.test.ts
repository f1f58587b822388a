// Greedy steps (Sequence.stepGreedy, generate() at temperature 0): the next
// token is the argmax of the step's logits, chosen in native code, equal to
// what JavaScript picks from the logits; greedy and logits steps batch
// together; snapshots after a greedy step carry no logits; the native
// step's output argument is checked.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, type MambaModel } from '../../lib';
import { argmax } from '../../lib/generate/sampling';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-greedy-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const V = 97;
const prompts = [[1, 5, 9], [2, 7], [3, 3, 3, 4], [60, 11]];

async function load(): Promise<MambaModel> {
  const dir = path.join(root, 'm');
  if (!fs.existsSync(dir)) writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 32, nLayer: 2, vocabSize: V, dtype: 'f32', tied: false, dialect: 'hf', seed: 7 });
  return loadModel(dir);
}

/** n greedy tokens after `prompt`, chosen in JavaScript from each step's logits. */
async function viaLogits(m: MambaModel, prompt: number[], n: number): Promise<number[]> {
  const s = await m.createSequence();
  const out = [argmax(await s.prefill(prompt))];
  while (out.length < n) out.push(argmax(await s.step(out[out.length - 1])));
  await s.dispose();
  return out;
}

t.test('stepGreedy picks the argmax of the logits, alone and in batches mixed with logits steps', async (t) => {
  const m = await load();
  t.teardown(() => m.dispose());
  const n = 12;
  const want: number[][] = [];
  for (const p of prompts) want.push(await viaLogits(m, p, n));
  // All four concurrently: even ones greedy, odd ones through the logits, so
  // that batches hold both kinds (and all-greedy ones once the odd finish).
  const got = await Promise.all(prompts.map(async (p, i) => {
    const s = await m.createSequence();
    const out = [argmax(await s.prefill(p))];
    const steps = i % 2 === 0 ? n - 1 : n - 1 - 4;
    for (let k = 0; k < steps; k++) {
      const last = out[out.length - 1];
      out.push(i % 2 === 0 ? await s.stepGreedy(last) : argmax(await s.step(last)));
    }
    await s.dispose();
    return out;
  }));
  t.ok(new Set(want.flat()).size > 4, `the continuations vary (${want.map((w) => w.join(' ')).join(' / ')})`);
  got.forEach((g, i) => t.same(g, want[i].slice(0, g.length), `sequence ${i} (${i % 2 === 0 ? 'greedy' : 'logits'} steps): ${g.length} tokens`));
  // generate() at temperature 0 takes greedy steps: the same tokens.
  const gen: number[] = [];
  for await (const c of m.generate(prompts[0], { temperature: 0, maxTokens: n, stopAtEos: false })) gen.push(c.token);
  t.same(gen, want[0], 'generate() at temperature 0');
});

t.test('a greedy step leaves no logits in a snapshot; the state continues exactly', async (t) => {
  const m = await load();
  t.teardown(() => m.dispose());
  const want = await viaLogits(m, prompts[2], 6);
  const s = await m.createSequence();
  const first = argmax(await s.prefill(prompts[2]));
  const next = await s.stepGreedy(first);
  t.equal(next, want[1]);
  const snap = await s.snapshot();
  const r = await m.createSequence();
  await r.restore(snap);
  t.equal(await r.stepGreedy(next), want[2], 'the restored sequence continues');
  t.equal(await s.stepGreedy(next), want[2], 'and so does the original');
  await s.dispose();
  await r.dispose();
});

t.test("the native step's output argument: 'logits' or 'greedy'", async (t) => {
  const m = await load();
  t.teardown(() => m.dispose());
  const s = await m.createSequence();
  await s.prefill([1, 2]);
  const nm = m.nativeModel() as unknown as { step(a: Int32Array, b: Int32Array, o?: unknown): Promise<unknown> };
  const slots = Int32Array.of(s.slot), toks = Int32Array.of(3);
  t.throws(() => nm.step(slots, toks, 'top1'), { name: 'TypeError', message: /output/ });
  t.throws(() => nm.step(slots, toks, 5), { name: 'TypeError', message: /output/ });
  const ids = await nm.step(slots, toks, 'greedy');
  t.type(ids, Int32Array);
  t.equal((ids as Int32Array).length, 1);
  await s.dispose();
});
