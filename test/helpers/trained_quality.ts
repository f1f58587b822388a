// Quantization quality on a trained fixture (test/fixtures/trained): each
// case quantized with the fixture's calibration text and evaluated on its
// held-out text against the float model, with the case's perplexity and size
// targets checked. Used by the Mamba and the hybrid quality tests.
import type { Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { evaluate, loadModel, quantize, type QuantRecipe, type QuantScheme } from '../../lib';

export const TRAINED_FIXTURES = path.resolve(__dirname, '..', 'fixtures', 'trained');

export interface QualityCase {
  label: string;
  scheme: QuantScheme;
  recipe: QuantRecipe | 'naive';
  /** Most relative perplexity increase over the float model (a target), if any. */
  maxIncrease?: number;
  /** Most size of the output against the f32 checkpoint (a target), if any. */
  maxSize?: number;
}

/**
 * Quantizes fixture `name` into `root` for every case and evaluates each on the first
 * 16384 held-out bytes in windows of 1024; returns each case's KL divergence to the
 * float model, by label. The table of results is printed as a comment.
 */
export async function qualityOfCases(t: Test, name: string, root: string, cases: QualityCase[]): Promise<Record<string, number>> {
  const heldout = fs.readFileSync(path.join(TRAINED_FIXTURES, 'heldout.txt'), 'utf8').slice(0, 16384);
  const calibration = fs.readFileSync(path.join(TRAINED_FIXTURES, 'calibration.txt'), 'utf8');
  const dir = path.join(TRAINED_FIXTURES, name);
  const float = await loadModel(dir);
  try {
    const base = await evaluate({ model: float, text: heldout, windowSize: 1024 });
    t.ok(base.perplexity < 10, `the fixture is trained (float perplexity ${base.perplexity.toFixed(4)})`);
    const rows: string[] = [`${name}: float perplexity ${base.perplexity.toFixed(4)} on ${base.tokens} held-out bytes`];
    const width = Math.max(...cases.map((c) => c.label.length));
    const kl: Record<string, number> = {};
    for (const c of cases) {
      const out = path.join(root, `${name}-${c.label.replace(/\W+/g, '-')}`);
      const s = await quantize({ model: dir, output: out, scheme: c.scheme, recipe: c.recipe, calibration, samples: 64, sequenceLength: 512 });
      const r = await evaluate({ model: out, text: heldout, windowSize: 1024, reference: float });
      const inc = r.perplexity / base.perplexity - 1, size = s.bytesAfter / s.bytesBefore;
      kl[c.label] = r.reference!.klDivergence;
      rows.push(`  ${c.label.padEnd(width)}  ppl ${r.perplexity.toFixed(4)} (${(100 * inc >= 0 ? '+' : '') + (100 * inc).toFixed(3)}%)  KL ${r.reference!.klDivergence.toExponential(2)}  top-1 ${(100 * r.reference!.top1Agreement).toFixed(1)}%  size ${size.toFixed(3)}x`);
      if (c.maxIncrease !== undefined) t.ok(inc <= c.maxIncrease, `${c.label}: perplexity +${(100 * inc).toFixed(3)}% (target at most +${100 * c.maxIncrease}%)`);
      if (c.maxSize !== undefined) t.ok(size <= c.maxSize, `${c.label}: ${size.toFixed(3)}x of the f32 checkpoint (target at most ${c.maxSize}x)`);
    }
    t.comment(rows.join('\n'));
    return kl;
  } finally {
    float.dispose();
  }
}
