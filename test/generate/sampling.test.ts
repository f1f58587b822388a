// sampleToken / tokenProbabilities: greedy, the temperature limit, each filter
// on hand cases, the order of operations, empirical frequencies, determinism
// and option checking; against the sort-based reference (test/helpers/
// sampling_reference.ts) on random rows with and without ties.
import t from 'tap';
import { createRng } from '../../lib/generate/rng';
import { argmax, sampleToken, tokenProbabilities, validateSamplingOptions, type SamplingOptions } from '../../lib/generate/sampling';
import { referenceSampleToken, referenceTokenProbabilities } from '../helpers/sampling_reference';

const softmax = (x: number[]): number[] => {
  const m = Math.max(...x), e = x.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const randomLogits = (seed: number, n: number): Float32Array => {
  const r = createRng(seed);
  return Float32Array.from({ length: n }, () => 4 * (r.next() - 0.5));
};
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12): boolean =>
  a.length === b.length && Array.from(a).every((v, i) => Math.abs(v - b[i]) <= tol);

t.test('temperature 0 is argmax; ties go to the lowest id; no randomness used', (t) => {
  const noRng = { next: (): number => { throw new Error('rng used'); } };
  for (let s = 0; s < 20; s++) {
    const x = randomLogits(s, 1000);
    let best = 0;
    for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
    t.equal(sampleToken(x, { temperature: 0 }, noRng), best);
  }
  t.equal(sampleToken(Float32Array.from([1, 5, 2, 5, 5]), { temperature: 0 }, noRng), 1);
  t.equal(argmax([-Infinity, -3, -3]), 1);
  t.same(Array.from(tokenProbabilities([0, 2, 2], { temperature: 0 })), [0, 1, 0]);
  t.end();
});

t.test('temperature -> 0 approaches greedy; topK 1 equals greedy at any temperature', (t) => {
  const x = randomLogits(5, 500);
  const greedy = argmax(x);
  x[greedy] += 0.05; // a clear winner: the runner-up is >= 0.05 behind
  const rng = createRng(1);
  const picks = Array.from({ length: 200 }, () => sampleToken(x, { temperature: 1e-3 }, rng));
  t.ok(picks.every((id) => id === greedy), 'temperature 1e-3 always picks the argmax');
  const pmax = (temp: number): number => tokenProbabilities(x, { temperature: temp })[greedy];
  t.ok(pmax(1) < pmax(0.5) && pmax(0.5) < pmax(0.1) && pmax(0.1) < pmax(0.02), 'the greedy token gains mass as temperature falls');
  t.ok(pmax(1e-3) > 1 - 1e-9, `p(greedy) -> 1 (${pmax(1e-3)})`);
  t.ok(pmax(1) < 0.05, `but is small at temperature 1 (${pmax(1)})`);
  for (const temperature of [0.5, 1, 3, 50]) {
    const ids = Array.from({ length: 50 }, () => sampleToken(x, { temperature, topK: 1 }, rng));
    t.ok(ids.every((id) => id === greedy), `topK 1 at temperature ${temperature} is greedy`);
  }
  t.end();
});

t.test('same seed, same sequence of tokens', (t) => {
  const x = randomLogits(9, 300);
  const opts: SamplingOptions = { temperature: 1.3, topK: 40, topP: 0.9, minP: 0.01 };
  const draw = (seed: number): number[] => { const r = createRng(seed); return Array.from({ length: 200 }, () => sampleToken(x, opts, r)); };
  t.same(draw(77), draw(77));
  t.not(draw(77).join(), draw(78).join());
  t.end();
});

t.test('empirical frequencies follow the softmax (20k draws, 4 tokens)', (t) => {
  const x = [0, 1, 2, 0.5];
  for (const [temperature, seed] of [[1, 11], [2, 12], [0.5, 13]] as const) {
    const want = softmax(x.map((v) => v / temperature));
    t.ok(close(tokenProbabilities(x, { temperature }), want), `tokenProbabilities at temperature ${temperature}`);
    const counts = [0, 0, 0, 0], n = 20000, rng = createRng(seed);
    for (let i = 0; i < n; i++) counts[sampleToken(Float32Array.from(x), { temperature }, rng)]++;
    const freq = counts.map((c) => c / n);
    // one sigma is at most sqrt(0.25 / 20000) = 0.0035: allow 0.015 (> 4 sigma)
    t.ok(freq.every((f, i) => Math.abs(f - want[i]) < 0.015), `T=${temperature}: ${freq.map((f) => f.toFixed(3))} vs ${want.map((p) => p.toFixed(3))}`);
  }
  t.end();
});

// p = [0.5, 0.3, 0.15, 0.05] as logits
const P4 = [0.5, 0.3, 0.15, 0.05];
const L4 = P4.map(Math.log);

t.test('top-k keeps the k largest (and ties at the k-th), renormalised', (t) => {
  t.ok(close(tokenProbabilities(L4, { topK: 2 }), [0.625, 0.375, 0, 0]));
  t.ok(close(tokenProbabilities(L4, { topK: 3 }), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]));
  t.ok(close(tokenProbabilities(L4, { topK: 0 }), P4), 'topK 0 is off');
  t.ok(close(tokenProbabilities(L4, { topK: 10 }), P4), 'topK beyond the vocabulary is off');
  t.ok(close(tokenProbabilities([1, 3, 3, 2], { topK: 1 }), [0, 0.5, 0.5, 0]), 'ties with the k-th value stay');
  t.end();
});

t.test('top-p keeps the smallest head of mass >= topP (HF rule)', (t) => {
  // ascending cumulative sums 0.05, 0.2, 0.5, 1: drop those <= 1 - topP
  t.ok(close(tokenProbabilities(L4, { topP: 0.7 }), [0.625, 0.375, 0, 0]), 'topP 0.7 drops 0.05 and 0.15');
  t.ok(close(tokenProbabilities(L4, { topP: 0.9 }), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]), 'topP 0.9 drops 0.05');
  t.ok(close(tokenProbabilities(L4, { topP: 0.3 }), [1, 0, 0, 0]), 'topP 0.3 keeps only the top token');
  t.ok(close(tokenProbabilities(L4, { topP: 1e-9 }), [1, 0, 0, 0]), 'the top token always stays');
  t.ok(close(tokenProbabilities(L4, { topP: 1 }), P4), 'topP 1 is off');
  t.end();
});

t.test('min-p drops tokens below minP * max probability', (t) => {
  t.ok(close(tokenProbabilities(L4, { minP: 0.35 }), [0.625, 0.375, 0, 0]), 'floor 0.175');
  t.ok(close(tokenProbabilities(L4, { minP: 0.2 }), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]), 'floor 0.1');
  t.ok(close(tokenProbabilities(L4, { minP: 1 }), [1, 0, 0, 0]));
  t.end();
});

t.test('repetition penalty: HF semantics on a hand case', (t) => {
  // logits [2, -1, 0.5, 3], history has 0 and 1 (1 twice), penalty 2 -> [1, -2, 0.5, 3]
  const want = softmax([1, -2, 0.5, 3]);
  t.ok(close(tokenProbabilities([2, -1, 0.5, 3], { repetitionPenalty: 2, history: [1, 0, 1] }), want));
  // greedy sees the penalty: 3 / 1.5 = 2 < 2.9
  t.equal(sampleToken(Float32Array.from([3, -1, 2.9, 0]), { temperature: 0, repetitionPenalty: 1.5, history: [0] }, createRng(0)), 2);
  // negative logits are multiplied: -1 * 2 = -2 < -1.2
  t.equal(sampleToken(Float32Array.from([-1, -1.2]), { temperature: 0, repetitionPenalty: 2, history: [0] }, createRng(0)), 1);
  // each id once however often it occurs: 3 / 1.5 = 2 > 1.5 (three times would give 0.89)
  t.equal(sampleToken(Float32Array.from([3, 1.5]), { temperature: 0, repetitionPenalty: 1.5, history: [0, 0, 0] }, createRng(0)), 0);
  // a penalty < 1 encourages repeats
  t.equal(sampleToken(Float32Array.from([1, 1.5]), { temperature: 0, repetitionPenalty: 0.5, history: [0] }, createRng(0)), 0);
  t.ok(close(tokenProbabilities([2, -1], { repetitionPenalty: 1, history: [0, 1] }), softmax([2, -1])), 'penalty 1 is off');
  t.end();
});

t.test('order: penalty -> temperature -> top-k -> top-p -> min-p', (t) => {
  // top-p is computed on the top-k renormalised distribution:
  // p = [0.4, 0.3, 0.2, 0.1]; topK 2 -> [4/7, 3/7]; topP 0.5 then drops 3/7 (cum 3/7 <= 0.5).
  const L = [0.4, 0.3, 0.2, 0.1].map(Math.log);
  t.ok(close(tokenProbabilities(L, { topK: 2, topP: 0.5 }), [1, 0, 0, 0]), 'top-p after top-k');
  // (top-p on the full distribution would keep 0.4 and 0.3: ascending cums 0.1, 0.3 <= 0.5 dropped, 0.6 kept)
  t.ok(close(tokenProbabilities(L, { topP: 0.5 }), [4 / 7, 3 / 7, 0, 0]), 'top-p alone');
  // min-p after temperature: T=2 flattens p, so minP 0.5 keeps more
  const hot = softmax(L.map((v) => v / 2)); // ~[0.33, 0.29, 0.23, 0.16]
  t.ok(close(tokenProbabilities(L, { temperature: 2, minP: 0.5 }), softmax(L.map((v, i) => (hot[i] >= 0.5 * hot[0] ? v / 2 : -Infinity)))));
  t.same(Array.from(tokenProbabilities(L, { minP: 0.5 })).map((p) => p > 0), [true, true, true, false], 'T=1: 0.1 < 0.2 dropped');
  t.same(Array.from(tokenProbabilities(L, { temperature: 2, minP: 0.5 })).map((p) => p > 0), [true, true, true, true], 'T=2: nothing dropped');
  // the penalty acts on raw logits, before temperature: history [0], penalty 4, logits [log 0.4 ...] are negative -> x4
  const pen = tokenProbabilities(L, { temperature: 2, repetitionPenalty: 4, history: [0] });
  t.ok(close(pen, softmax([L[0] * 4, L[1], L[2], L[3]].map((v) => v / 2))), 'penalty then temperature');
  t.end();
});

t.test('sampling after filters never picks a dropped token, and follows the renormalised mass', (t) => {
  const rng = createRng(2024), n = 20000, counts = [0, 0, 0, 0];
  for (let i = 0; i < n; i++) counts[sampleToken(Float32Array.from(L4), { topP: 0.9 }, rng)]++;
  t.equal(counts[3], 0, 'the dropped token never appears');
  const want = [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95];
  t.ok(want.every((p, i) => Math.abs(counts[i] / n - p) < 0.015), `${counts} vs ${want.map((p) => (p * n).toFixed(0))}`);
  t.end();
});

t.test('infinite logits', (t) => {
  t.equal(sampleToken(Float32Array.from([0, Infinity, 1]), { temperature: 1 }, createRng(1)), 1);
  t.ok(close(tokenProbabilities([-Infinity, 0, 0], {}), [0, 0.5, 0.5]));
  t.throws(() => tokenProbabilities([-Infinity, -Infinity], {}), { name: 'RangeError', message: /-Infinity/ });
  t.end();
});

t.test('bad options raise RangeError naming the option', (t) => {
  const x = Float32Array.from([0, 1]);
  const bad: [SamplingOptions, RegExp][] = [
    [{ temperature: -1 }, /temperature/], [{ temperature: NaN }, /temperature/], [{ temperature: Infinity }, /temperature/],
    [{ topK: -1 }, /topK/], [{ topK: 1.5 }, /topK/],
    [{ topP: 0 }, /topP/], [{ topP: 1.1 }, /topP/], [{ topP: NaN }, /topP/],
    [{ minP: -0.1 }, /minP/], [{ minP: 2 }, /minP/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty/], [{ repetitionPenalty: -1 }, /repetitionPenalty/],
    [{ repetitionPenalty: 1.2, history: [0, 2] }, /history\[1\]/], [{ repetitionPenalty: 1.2, history: [0.5] }, /history\[0\]/],
    [{ temperature: '1' as unknown as number }, /temperature/],
  ];
  for (const [opts, re] of bad) {
    t.throws(() => sampleToken(x, opts, createRng(0)), { name: 'RangeError', message: re }, JSON.stringify(opts));
  }
  t.throws(() => sampleToken(new Float32Array(0), {}, createRng(0)), RangeError);
  t.throws(() => sampleToken(Float32Array.from([0, NaN]), {}, createRng(0)), { name: 'RangeError', message: /logits\[1\]/ });
  t.same(validateSamplingOptions({}), { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1 }, 'defaults are neutral');
  t.end();
});

t.test('equals the sort-based reference: random rows of awkward sizes, rows full of ties, every filter and their mixes', (t) => {
  // The same probabilities bit for bit and the same draws from the same
  // seeds. (The top-p selection sums the mass in another order than the
  // reference's ascending sort: a kept set could differ only where a
  // cumulative sum falls within rounding of 1 - topP, as none of these do.)
  const opts: SamplingOptions[] = [
    {}, { temperature: 0.7 }, { topK: 1 }, { topK: 5 }, { topK: 40, temperature: 1.3 }, { topP: 0.9 }, { topP: 0.5, temperature: 0.8 },
    { topP: 0.999 }, { topP: 1e-6 }, { minP: 0.05 }, { minP: 0.3, temperature: 2 }, { topK: 50, topP: 0.95, minP: 0.02, temperature: 0.9 },
    { topP: 0.9, repetitionPenalty: 1.3, history: [0, 3, 3, 1] }, { temperature: 0, repetitionPenalty: 1.2, history: [2] },
  ];
  let rows = 0, draws = 0;
  for (const [n, seed, step] of [[1, 1, 0], [2, 2, 0], [7, 3, 0], [97, 4, 0], [1000, 5, 0], [4099, 6, 0], [97, 7, 0.5], [1000, 8, 0.25], [4099, 9, 1], [50280, 10, 0]]) {
    let x = randomLogits(seed, n);
    // Rounded logits: many exactly equal probabilities (ties at every filter's boundary).
    if (step > 0) x = Float32Array.from(x, (v) => Math.round(v / step) * step);
    for (const o of opts) {
      if (o.history && Array.from(o.history).some((id) => id >= n)) continue;
      const got = tokenProbabilities(x, o), want = referenceTokenProbabilities(x, o);
      let worst = 0, sameSet = true;
      for (let i = 0; i < n; i++) {
        worst = Math.max(worst, Math.abs(got[i] - want[i]));
        sameSet &&= (got[i] > 0) === (want[i] > 0);
      }
      rows++;
      if (!(worst === 0 && sameSet)) t.fail(`n=${n} step=${step} ${JSON.stringify(o)}: worst |dp| ${worst}, same kept set ${sameSet}`);
      const a = createRng(seed * 31), b = createRng(seed * 31);
      for (let k = 0; k < 20; k++, draws++) {
        const g = sampleToken(x, o, a), w = referenceSampleToken(x, o, b);
        if (g !== w) { t.fail(`n=${n} step=${step} ${JSON.stringify(o)}: draw ${k}: ${g} vs ${w}`); break; }
      }
    }
  }
  t.pass(`${rows} rows and ${draws} draws equal the reference`);
  t.end();
});
