// A GGUF written by exportGguf loads in llama.cpp (node-llama-cpp 3.21.1, its
// prebuilt CPU binary), and llama.cpp's greedy continuation of a prompt
// matches node-mamba's on the same weights.
//
// Random checkpoints with the GPT-NeoX-20B vocabulary (50277 tokens, padded to
// 50280 rows), d_model 64, 2 layers, untied head (a tied random head tends to
// repeat the last token, which makes a weak test). Both engines decode 8
// tokens greedily from the same prompt ids, each loading the same GGUF file
// (f32, and q8_0); node-mamba's steps are fed llama.cpp's tokens, so one
// disagreement does not derail the rest. A step is required to agree when
// node-mamba's top-2 logit gap there is above 1e-3 × the logit scale
// (max |logit|): below that, float32 rounding differences between the two
// engines may legitimately flip the argmax. At least half the steps must be
// that well separated (so the test cannot pass vacuously); the assertion
// message reports how many matched.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, loadModel, type GgufExportType } from '../../lib';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../helpers/checkpoint_writer';

// node-llama-cpp is ESM-only: load it with a real dynamic import (TypeScript
// would turn `import()` into `require()` under module=commonjs).
const importEsm = new Function('s', 'return import(s)') as (s: string) => Promise<typeof import('node-llama-cpp')>;
type Token = import('node-llama-cpp').Token;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-gguf-llama-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const STEPS = 8;
const GAP = 1e-3;

const cases: Array<[string, Omit<RandomCheckpointOptions, 'seed'>, GgufExportType[]]> = [
  ['mamba', { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize: 50277, dtype: 'f32', tied: false, dialect: 'original', padVocabMultiple: 8 }, ['f32', 'q8_0']],
  ['mamba2 groups=2', { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 50277, dtype: 'f32', tied: false, dialect: 'original', padVocabMultiple: 8, headdim: 16, dState: 16, ngroups: 2 }, ['f32', 'q8_0']],
];

function top2(logits: Float32Array): { best: number; gap: number; scale: number } {
  let best = 0, second = -Infinity, scale = 0;
  for (let i = 0; i < logits.length; i++) {
    scale = Math.max(scale, Math.abs(logits[i]));
    if (logits[i] > logits[best]) best = i;
  }
  for (let i = 0; i < logits.length; i++) if (i !== best && logits[i] > second) second = logits[i];
  return { best, gap: logits[best] - second, scale };
}

type Llama = Awaited<ReturnType<typeof import('node-llama-cpp').getLlama>>;

/** Greedy decoding of `file` in both engines; asserts agreement on the well-separated steps. */
async function compare(t: Test, llama: Llama, name: string, file: string): Promise<void> {
  // node-mamba runs the same file (for f32 it is bit-identical to the checkpoint: roundtrip.test.ts).
  const mamba = await loadModel(file);
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
  const ctx = await lmodel.createContext({ contextSize: 128, sequences: 1, threads: 1 });
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
    if (gap > GAP * scale) {
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

t.test('node-llama-cpp loads the export and continues greedily like node-mamba', async (t) => {
  const { getLlama } = await importEsm('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
  t.teardown(() => llama.dispose());
  let seed = 5;
  for (const [arch, opts, types] of cases) {
    const dir = path.join(root, arch.replace(/\W+/g, '_'));
    const ck = writeRandomCheckpoint(dir, { ...opts, seed: seed++ });
    t.equal(ck.config.vocabSize, 50280, `${arch}: padded vocabulary`);
    for (const type of types) {
      const name = `${arch} ${type}`;
      const file = path.join(root, `${name.replace(/\W+/g, '_')}.gguf`);
      await exportGguf(dir, file, { type });
      await compare(t, llama, name, file);
    }
  }
});
