// Quantization quality on a trained hybrid (test/fixtures/trained/granite-bytes:
// a byte-level Granite 4.0-H-like model, Mamba-2 and attention layers each with
// a mixture of experts and a shared expert, trained on tinyshakespeare by
// scripts/train_byte_hybrid.py): held-out perplexity of each scheme against the
// float model with issue 8's targets (W8A8 within 0.5%, W4A16 within 1.5%,
// W4A8 within 2%; checkpoints at most 0.35x / 0.22x of the f32 file), the
// recipe against naive W8A8, GPTQ against round-to-nearest, ablations reported.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { qualityOfCases, type QualityCase } from '../helpers/trained_quality';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-quality-hybrid-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
t.setTimeout(900_000);

const CASES: QualityCase[] = [
  { label: 'naive w8a8', scheme: 'w8a8', recipe: 'naive' },
  { label: 'w8a8', scheme: 'w8a8', recipe: {}, maxIncrease: 0.005, maxSize: 0.35 },
  { label: 'w8a8 no hadamard', scheme: 'w8a8', recipe: { hadamard: false } },
  { label: 'w4a8', scheme: 'w4a8', recipe: {}, maxIncrease: 0.02, maxSize: 0.22 },
  { label: 'w4a8 gptq', scheme: 'w4a8', recipe: { gptq: true } },
  { label: 'w4a16', scheme: 'w4a16', recipe: {}, maxIncrease: 0.015, maxSize: 0.22 },
  { label: 'w4a16 gptq', scheme: 'w4a16', recipe: { gptq: true } },
];

t.test('granite-bytes (trained hybrid): held-out perplexity of every scheme', async (t) => {
  const kl = await qualityOfCases(t, 'granite-bytes', root, CASES);
  t.ok(kl['w8a8'] < kl['naive w8a8'], `the recipe beats naive W8A8 (KL ${kl['w8a8'].toExponential(2)} vs ${kl['naive w8a8'].toExponential(2)})`);
  for (const sc of ['w4a8', 'w4a16']) {
    t.ok(kl[`${sc} gptq`] < 0.8 * kl[sc], `GPTQ beats round-to-nearest ${sc} (KL ${kl[`${sc} gptq`].toExponential(2)} vs ${kl[sc].toExponential(2)})`);
  }
});
