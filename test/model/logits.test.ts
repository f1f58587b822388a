// Whole-model logits against the float64 reference forward
// (test/helpers/reference_model.ts), on random-weight checkpoints that the
// test writes in the Hugging Face layout: Mamba-1 and Mamba-2, f32/f16/bf16,
// tied and untied heads, both config dialects, sharded, Mamba-2 with
// groups > 1, lengths that are not multiples of any chunk.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../../lib';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../helpers/checkpoint_writer';
import { bf16MatrixInputs, referenceForward } from '../helpers/reference_model';
import { assertRoundedClose, worstError } from '../helpers/reference';

// Tolerance: the engine computes in float32 (weights widened exactly from
// their stored dtype), the reference in float64 on the same stored values.
// Logits are O(1..10); errors accumulate over layers and the recurrence:
// |err| <= 2e-4 + 2e-4·|ref|.
const ATOL = 2e-4, RTOL = 2e-4;

// bf16 checkpoints run by default with the inputs of their bf16 matrices
// rounded to bf16 (loadModel inputRounding 'auto'); the reference then rounds
// the same inputs. Both modes are checked: 'none' against the plain reference,
// the default against the rounding one with assertRoundedClose (an input
// within float32 noise of a bf16 boundary rounds one ulp apart now and then:
// on 'mamba bf16 original untied' one did, moving 4 token rows by ~4e-3).
const ROUNDED = { atol: ATOL, rtol: RTOL, loose: 2e-2, maxOffFraction: 0.25 };

const cases: Array<[string, Omit<RandomCheckpointOptions, 'seed'>, number]> = [
  ['mamba f32 hf tied', { arch: 'mamba', dModel: 48, nLayer: 2, vocabSize: 97, dtype: 'f32', tied: true, dialect: 'hf' }, 37],
  ['mamba bf16 original untied', { arch: 'mamba', dModel: 40, nLayer: 3, vocabSize: 101, dtype: 'bf16', tied: false, dialect: 'original' }, 23],
  ['mamba f16 hf sharded', { arch: 'mamba', dModel: 32, nLayer: 3, vocabSize: 64, dtype: 'f16', tied: true, dialect: 'hf', shards: 3 }, 19],
  ['mamba2 f32 hf tied', { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 90, dtype: 'f32', tied: true, dialect: 'hf', headdim: 16, dState: 32 }, 70],
  ['mamba2 bf16 original groups=2', { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 77, dtype: 'bf16', tied: true, dialect: 'original', headdim: 16, dState: 16, ngroups: 2 }, 33],
  ['mamba2 f16 hf untied groups=4 sharded', { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 50, dtype: 'f16', tied: false, dialect: 'hf', headdim: 8, dState: 24, ngroups: 4, shards: 2 }, 131],
  ['mamba long prompt (> one 512-token prefill chunk)', { arch: 'mamba', dModel: 16, nLayer: 1, vocabSize: 40, dtype: 'f32', tied: true, dialect: 'hf' }, 600],
];

t.test('forward() logits match the float64 reference', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-logits-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  let seed = 1;
  for (const [name, opts, L] of cases) {
    const dir = path.join(root, name.replace(/\W+/g, '_'));
    const ck = writeRandomCheckpoint(dir, { ...opts, seed: seed++ });
    const model = await loadModel(dir, { inputRounding: 'none' });
    const V = model.vocabSize;
    t.equal(V, ck.config.vocabSize, `${name}: vocab`);
    let s = seed * 7919;
    const tokens = Array.from({ length: L }, () => (s = (s * 48271) % 2147483647) % V);
    const got = await model.forward(tokens);
    const ref = referenceForward(ck.config, ck.weights, tokens);
    const w = worstError(got, ref, ATOL, RTOL);
    t.ok(w.ratio <= 1, `${name}: L=${L} worst err/tol ${w.ratio.toPrecision(3)} at ${w.index} (${w.actual} vs ${w.expected})`);
    model.dispose();
    if (opts.dtype === 'bf16') {
      const rounded = await loadModel(dir);
      const gotR = await rounded.forward(tokens);
      rounded.dispose();
      const refR = referenceForward(ck.config, ck.weights, tokens, bf16MatrixInputs);
      assertRoundedClose(t, gotR, refR, V, ROUNDED, `${name}, bf16-rounded inputs (default), L=${L}`);
      const wx = worstError(gotR, ref, ATOL, RTOL);
      t.ok(wx.ratio > 1, `${name}: rounding the inputs changes the logits (err/tol ${wx.ratio.toPrecision(3)} against the exact reference)`);
    }
  }
});
