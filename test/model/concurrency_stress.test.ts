// Everything a service does with one model at once, in random order for a few
// seconds: greedy and sampled generations (whole, aborted by a signal or
// after k tokens, broken off by the caller), sequences stepped, snapshotted
// and restored (into themselves and into fresh sequences), chained steps
// abandoned by reset / restore / dispose and the sequence reused, several
// sequences prefilled and stepped together. Every result is checked against
// the same work done alone before the storm (greedy steps and sampled
// generations are batch-invariant: a row's tokens never depend on the other
// rows of its batch), on a Mamba model and on an attention + MoE hybrid
// (KV caches in snapshots). The choice of operations is seeded; their
// interleaving is not, which is the point: a race shows up as a wrong token,
// a NaN or a crash (the twenty-eighth session's chained-step race did).
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRng, loadModel, type MambaModel } from '../../lib';
import { graniteTinyPreset, writeRandomHybridCheckpoint } from '../../lib/testing/random_hybrid_checkpoint';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';
import { rng as mulberry } from '../helpers/reference';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-stress-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const mambaDir = path.join(root, 'mamba');
writeRandomCheckpoint(mambaDir, { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: false, dialect: 'hf', seed: 71 });
const graniteDir = path.join(root, 'granite');
writeRandomHybridCheckpoint(graniteDir, graniteTinyPreset({ seed: 73 }));

const N = 40;  // longest continuation checked
const SECONDS = Number(process.env.NODE_MAMBA_STRESS_SECONDS ?? 4);
const WORKERS = 6;

const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const argmax = (a: Float32Array) => {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
};

async function stress(t: Test, dir: string, seed: number): Promise<void> {
  const m: MambaModel = await loadModel(dir);
  t.teardown(() => m.dispose());
  const r = mulberry(seed);
  const ri = (n: number) => Math.floor(r() * n);
  const V = m.vocabSize;
  const prompts = Array.from({ length: 5 }, (_, i) => Array.from({ length: 1 + ((i * 7) % 19) }, () => ri(V)));

  // Alone first: each prompt's greedy continuation (plain steps) and sampled generations.
  const greedy = async (s: Awaited<ReturnType<MambaModel['createSequence']>>, p: number[], n: number) => {
    const out = [argmax(await s.prefill(p))];
    while (out.length < n) out.push(await s.stepGreedy(out[out.length - 1]));
    return out;
  };
  const ref: number[][] = [];
  for (const p of prompts) {
    const s = await m.createSequence();
    ref.push(await greedy(s, p, N));
    await s.dispose();
  }
  const sampled = async (pi: number, sd: number, n: number) => {
    const out: number[] = [];
    for await (const c of m.generate(prompts[pi], { maxTokens: n, temperature: 0.9, topK: 20, seed: sd, stopAtEos: false })) out.push(c.token);
    return out;
  };
  const sref = new Map<string, number[]>();
  for (let pi = 0; pi < prompts.length; pi++) for (const sd of [1, 2]) sref.set(`${pi}:${sd}`, await sampled(pi, sd, N));

  const failures: string[] = [];
  const counts: Record<string, number> = {};
  const fail = (what: string, detail: unknown) => failures.push(`${what}: ${JSON.stringify(detail)}`);
  // Eleven kinds of operation (cases 2 and 4 three each); every worker runs each at least once.
  const KINDS = 11;
  const op = async (kind: number): Promise<string> => {
    const pi = ri(prompts.length), p = prompts[pi], want = ref[pi];
    switch (kind < 2 ? kind : kind < 5 ? 2 : kind < 6 ? 3 : kind < 9 ? 4 : kind - 4) {
      case 0: {
        const n = 1 + ri(N), out: number[] = [];
        for await (const c of m.generate(p, { maxTokens: n, temperature: 0, stopAtEos: false })) out.push(c.token);
        if (!same(out, want.slice(0, n))) fail('greedy generation', { pi, n, out });
        return 'greedy';
      }
      case 1: {
        const sd = 1 + ri(2), n = 1 + ri(N), out = await sampled(pi, sd, n);
        if (!same(out, sref.get(`${pi}:${sd}`)!.slice(0, n))) fail('sampled generation', { pi, sd, n, out });
        return 'sampled';
      }
      case 2: {
        // Aborted by a timer or after k tokens; or broken off by the caller after k tokens.
        const ac = new AbortController(), k = 1 + ri(N), how = kind - 2, out: number[] = [];
        if (how === 0) setTimeout(() => ac.abort(), ri(10));
        try {
          for await (const c of m.generate(p, { maxTokens: N, temperature: 0, stopAtEos: false, signal: ac.signal })) {
            out.push(c.token);
            if (out.length === k) {
              if (how === 1) ac.abort();
              if (how === 2) break;
            }
          }
        } catch (e) {
          if ((e as Error).name !== 'AbortError') fail('aborted generation threw', String((e as Error).stack));
        }
        if (!same(out, want.slice(0, out.length))) fail('aborted generation', { pi, how, k, out });
        return ['timer abort', 'abort', 'break'][how];
      }
      case 3: {
        // Snapshot, unrelated steps, restore, go on.
        const s = await m.createSequence();
        try {
          const a = 1 + ri(N / 2), b = 1 + ri(N / 2);
          const out = await greedy(s, p, a);
          const snap = await s.snapshot();
          for (let i = 0; i < b; i++) await s.stepGreedy(ri(V));
          await s.restore(snap);
          while (out.length < a + b) out.push(await s.stepGreedy(out[out.length - 1]));
          if (!same(out, want.slice(0, a + b))) fail('snapshot / restore', { pi, a, b, out });
        } finally {
          await s.dispose();
        }
        return 'snapshot';
      }
      case 4: {
        // Chained steps (a step runs ahead) abandoned by reset, restore or dispose; the sequence reused.
        const s = await m.createSequence();
        const how = kind - 6;
        try {
          const empty = await s.snapshot();
          let tok = argmax(await s.prefill(p));
          const rng = createRng(1);
          for (let i = ri(6); i > 0; i--) tok = await s.stepChained(tok, { temperature: 0 }, rng, false);
          if (how === 2) {
            await s.dispose();
            return 'chain, dispose';
          }
          if (how === 0) await s.reset();
          else await s.restore(empty);
          const out = await greedy(s, p, 8);
          if (!same(out, want.slice(0, 8))) fail(`chain then ${how === 0 ? 'reset' : 'restore'}`, { pi, out });
        } finally {
          await s.dispose();
        }
        return `chain, ${how === 0 ? 'reset' : 'restore'}`;
      }
      case 5: {
        // A state moved to another sequence mid-way.
        const s = await m.createSequence(), s2 = await m.createSequence();
        try {
          const out = await greedy(s, p, 5);
          await s2.restore(await s.snapshot());
          await s.dispose();
          while (out.length < 12) out.push(await s2.stepGreedy(out[out.length - 1]));
          if (!same(out, want.slice(0, 12))) fail('moved snapshot', { pi, out });
        } finally {
          await s.dispose();
          await s2.dispose();
        }
        return 'moved';
      }
      default: {
        // Three sequences prefilled and stepped together (their steps batched).
        const ss = await Promise.all([0, 1, 2].map(() => m.createSequence()));
        try {
          const outs = await Promise.all(ss.map((s, j) => greedy(s, prompts[(pi + j) % prompts.length], 10)));
          outs.forEach((out, j) => {
            if (!same(out, ref[(pi + j) % prompts.length].slice(0, 10))) fail('batched sequences', { j, out });
          });
        } finally {
          await Promise.all(ss.map((s) => s.dispose()));
        }
        return 'batched';
      }
    }
  };
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: WORKERS }, async (_, w) => {
    for (let i = 0; (i < KINDS || Date.now() < end) && failures.length < 5; i++) {
      try {
        const k = await op((i + 3 * w) % KINDS);
        counts[k] = (counts[k] ?? 0) + 1;
      } catch (e) {
        fail('operation threw', String((e as Error).stack));
      }
    }
  }));
  t.same(failures, [], `no wrong token, error or crash in ${SECONDS} s of ${WORKERS} concurrent workers (${JSON.stringify(counts)})`);
  t.equal(Object.keys(counts).length, KINDS, 'every kind of operation ran');
}

t.test('concurrent generations, steps, snapshots and chained steps on a Mamba model', (t) => stress(t, mambaDir, 5));
t.test('the same on an attention + MoE hybrid (Granite-like: KV caches in snapshots)', (t) => stress(t, graniteDir, 6));
