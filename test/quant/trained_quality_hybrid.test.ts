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
import { evaluate, loadModel, quantize, type QuantRecipe, type QuantScheme } from '../../lib';

const fixtures = path.resolve(__dirname, '..', 'fixtures', 'trained');
const heldout = fs.readFileSync(path.join(fixtures, 'heldout.txt'), 'utf8').slice(0, 16384);
const calibration = fs.readFileSync(path.join(fixtures, 'calibration.txt'), 'utf8');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-quality-hybrid-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
t.setTimeout(900_000);

type Case = { label: string; scheme: QuantScheme; recipe: QuantRecipe | 'naive'; maxIncrease?: number; maxSize?: number };
const CASES: Case[] = [
  { label: 'naive w8a8', scheme: 'w8a8', recipe: 'naive' },
  { label: 'w8a8', scheme: 'w8a8', recipe: {}, maxIncrease: 0.005, maxSize: 0.35 },
  { label: 'w8a8 no hadamard', scheme: 'w8a8', recipe: { hadamard: false } },
  { label: 'w4a8', scheme: 'w4a8', recipe: {}, maxIncrease: 0.02, maxSize: 0.22 },
  { label: 'w4a8 gptq', scheme: 'w4a8', recipe: { gptq: true } },
  { label: 'w4a16', scheme: 'w4a16', recipe: {}, maxIncrease: 0.015, maxSize: 0.22 },
  { label: 'w4a16 gptq', scheme: 'w4a16', recipe: { gptq: true } },
];

t.test('granite-bytes (trained hybrid): held-out perplexity of every scheme', async (t) => {
  const name = 'granite-bytes';
  const dir = path.join(fixtures, name);
  const float = await loadModel(dir);
  const base = await evaluate({ model: float, text: heldout, windowSize: 1024 });
  t.ok(base.perplexity < 10, `the fixture is trained (float perplexity ${base.perplexity.toFixed(4)})`);
  const rows: string[] = [`${name}: float perplexity ${base.perplexity.toFixed(4)} on ${base.tokens} held-out bytes`];
  const kl: Record<string, number> = {};
  for (const c of CASES) {
    const out = path.join(root, `${name}-${c.label.replace(/\W+/g, '-')}`);
    const s = await quantize({ model: dir, output: out, scheme: c.scheme, recipe: c.recipe, calibration, samples: 64, sequenceLength: 512 });
    const r = await evaluate({ model: out, text: heldout, windowSize: 1024, reference: float });
    const inc = r.perplexity / base.perplexity - 1, size = s.bytesAfter / s.bytesBefore;
    kl[c.label] = r.reference!.klDivergence;
    rows.push(`  ${c.label.padEnd(17)} ppl ${r.perplexity.toFixed(4)} (${(100 * inc >= 0 ? '+' : '') + (100 * inc).toFixed(3)}%)  KL ${r.reference!.klDivergence.toExponential(2)}  top-1 ${(100 * r.reference!.top1Agreement).toFixed(1)}%  size ${size.toFixed(3)}x`);
    if (c.maxIncrease !== undefined) t.ok(inc <= c.maxIncrease, `${c.label}: perplexity +${(100 * inc).toFixed(3)}% (target at most +${100 * c.maxIncrease}%)`);
    if (c.maxSize !== undefined) t.ok(size <= c.maxSize, `${c.label}: ${size.toFixed(3)}x of the f32 checkpoint (target at most ${c.maxSize}x)`);
  }
  t.ok(kl['w8a8'] < kl['naive w8a8'], `the recipe beats naive W8A8 (KL ${kl['w8a8'].toExponential(2)} vs ${kl['naive w8a8'].toExponential(2)})`);
  for (const sc of ['w4a8', 'w4a16']) {
    t.ok(kl[`${sc} gptq`] < 0.8 * kl[sc], `GPTQ beats round-to-nearest ${sc} (KL ${kl[`${sc} gptq`].toExponential(2)} vs ${kl[sc].toExponential(2)})`);
  }
  t.comment(rows.join('\n'));
  float.dispose();
});
