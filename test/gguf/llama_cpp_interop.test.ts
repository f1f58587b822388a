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
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, type GgufExportType } from '../../lib';
import { compareGreedy, importEsm } from '../helpers/llama_cpp';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../helpers/checkpoint_writer';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-gguf-llama-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const STEPS = 8;
const GAP = 1e-3;

const cases: Array<[string, Omit<RandomCheckpointOptions, 'seed'>, GgufExportType[]]> = [
  ['mamba', { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize: 50277, dtype: 'f32', tied: false, dialect: 'original', padVocabMultiple: 8 }, ['f32', 'q8_0']],
  ['mamba2 groups=2', { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 50277, dtype: 'f32', tied: false, dialect: 'original', padVocabMultiple: 8, headdim: 16, dState: 16, ngroups: 2 }, ['f32', 'q8_0']],
];

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
      await compareGreedy(t, llama, name, file, { steps: STEPS, gapRatio: GAP });
    }
  }
});
