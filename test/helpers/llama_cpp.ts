// Greedy decoding of one GGUF file in llama.cpp (node-llama-cpp 3.21.1) and
// in node-mamba, for the interop tests (test/gguf/*llama_cpp_interop*): both
// engines decode greedily from the same prompt ids; node-mamba's steps are fed
// llama.cpp's tokens, so one disagreement does not derail the rest. A step
// must agree when node-mamba's top-2 logit gap there is above gapRatio × the
// logit scale (max |logit|): below that, rounding differences between the two
// engines may legitimately flip the argmax. At least half the steps must be
// that well separated, so that a comparison cannot pass vacuously.
import type { Test } from 'tap';
import { loadModel, type LoadModelOptions } from '../../lib';

// node-llama-cpp is ESM-only: load it with a real dynamic import (TypeScript
// would turn `import()` into `require()` under module=commonjs).
export const importEsm = new Function('s', 'return import(s)') as (s: string) => Promise<typeof import('node-llama-cpp')>;
type Token = import('node-llama-cpp').Token;
export type Llama = Awaited<ReturnType<typeof import('node-llama-cpp').getLlama>>;

/**
 * node-llama-cpp's CPU build, disposed when `t` ends; undefined (with a
 * skipped assertion saying why) where the package or its prebuilt binary
 * for this platform is unavailable: then there is nothing to compare with.
 */
export async function llamaOrSkip(t: Test): Promise<Llama | undefined> {
  let llama: Llama;
  try {
    const { getLlama } = await importEsm('node-llama-cpp');
    llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
  } catch (err) {
    t.comment(`skipped: node-llama-cpp is not available here: ${(err as Error).message}`);
    t.pass('nothing to compare with', { skip: 'node-llama-cpp unavailable' });
    return undefined;
  }
  t.teardown(() => llama.dispose());
  return llama;
}

export interface CompareOptions {
  steps: number;
  gapRatio: number;
  /** node-mamba's load options. */
  load?: LoadModelOptions;
  /** Extra llama.cpp context options (e.g. its KV cache types). */
  context?: Record<string, unknown>;
}

export function top2(logits: Float32Array): { best: number; gap: number; scale: number } {
  let best = 0, second = -Infinity, scale = 0;
  for (let i = 0; i < logits.length; i++) {
    scale = Math.max(scale, Math.abs(logits[i]));
    if (logits[i] > logits[best]) best = i;
  }
  for (let i = 0; i < logits.length; i++) if (i !== best && logits[i] > second) second = logits[i];
  return { best, gap: logits[best] - second, scale };
}

/** Greedy decoding of `file` in both engines; asserts agreement on the well-separated steps. */
export async function compareGreedy(t: Test, llama: Llama, name: string, file: string, o: CompareOptions): Promise<void> {
  const { steps: STEPS, gapRatio } = o;
  const mamba = await loadModel(file, o.load);
  const prompt = mamba.tokenizer.encode('The quick brown fox jumps over the lazy dog, and then');
  let lmodel;
  try {
    lmodel = await llama.loadModel({ modelPath: file });
  } catch (err) {
    t.fail(`${name}: node-llama-cpp refused the GGUF: ${(err as Error).message}`);
    mamba.dispose();
    return;
  }
  // One thread: with llama.cpp's default (all cores) a busy 2-core machine makes each step take ~1 s
  // (its threads spin against the other processes), with one it takes milliseconds; results are the same.
  const ctx = await lmodel.createContext({ contextSize: 128, sequences: 1, threads: 1, ...o.context });
  const seq = ctx.getSequence();
  const theirs: number[] = [];
  for await (const tok of seq.evaluate(prompt as Token[], { temperature: 0 })) {
    theirs.push(tok as number);
    if (theirs.length >= STEPS) break;
  }
  await ctx.dispose();
  await lmodel.dispose();
  t.equal(theirs.length, STEPS, `${name}: llama.cpp produced ${STEPS} tokens`);

  const s = await mamba.createSequence();
  let logits = await s.prefill(prompt);
  let checked = 0, matched = 0, firstChecked = -1;
  const ours: number[] = [];
  for (let k = 0; k < theirs.length; k++) {
    const { best, gap, scale } = top2(logits);
    ours.push(best);
    if (gap > gapRatio * scale) {
      checked++;
      if (firstChecked < 0) firstChecked = k;
      if (best === theirs[k]) matched++;
      else t.fail(`${name}: step ${k}: node-mamba ${best} (gap ${gap.toExponential(2)}, scale ${scale.toFixed(2)}), llama.cpp ${theirs[k]}`);
    }
    logits = await s.step(theirs[k]);
  }
  await s.dispose();
  mamba.dispose();
  t.ok(checked >= STEPS / 2, `${name}: ${checked} of ${STEPS} steps are well separated (first at step ${firstChecked})`);
  t.equal(matched, checked, `${name}: ${matched}/${checked} well-separated steps match llama.cpp (node-mamba ${ours.join(',')}; llama.cpp ${theirs.join(',')})`);
}

