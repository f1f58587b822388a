// The native sampler (kernels.sampleTokens, csrc/kernels/sampling.h): the
// same tokens as the sort-based reference sampler (test/helpers/
// sampling_reference.ts, HF's order of filters) from the same uniform draws,
// at every ISA level, on rows of awkward sizes, rows full of ties, infinite
// logits, several rows per call with options of their own; its probabilities
// to ~1e-12 relative (draws placed 1e-12 on either side of the reference's
// cumulative boundaries); argument checks.
//
// Tolerance: the native sampler's exp (simd_exp_f64.h, ~1 ulp) and its sums
// in vector lanes round differently from Math.exp and the reference's sums in
// the last bits, so a draw could differ only within ~1e-15 of a boundary:
// none of these draws lands there (the boundary test keeps 1e-12 away).
import t from 'tap';
import { kernels } from '../../lib';
import { createRng } from '../../lib/generate/rng';
import type { SamplingOptions } from '../../lib/generate/sampling';
import { forEachIsa } from '../helpers/reference';
import { referenceSampleToken, referenceTokenProbabilities } from '../helpers/sampling_reference';

const randomLogits = (seed: number, n: number, scale = 4): Float32Array => {
  const r = createRng(seed);
  return Float32Array.from({ length: n }, () => scale * (r.next() - 0.5));
};

const OPTIONS: SamplingOptions[] = [
  {}, { temperature: 0 }, { temperature: 0.7 }, { temperature: 3 }, { topK: 1 }, { topK: 5 }, { topK: 40, temperature: 1.3 },
  { topP: 0.9 }, { topP: 0.5, temperature: 0.8 }, { topP: 0.999 }, { topP: 1e-6 }, { minP: 0.05 }, { minP: 0.3, temperature: 2 },
  { topK: 50, topP: 0.95, minP: 0.02, temperature: 0.9 },
  // The repetition penalty's history: repeats, ids at both ends (those past a short row are left out).
  { topP: 0.9, repetitionPenalty: 1.3, history: [0, 3, 3, 1, 96, 4098, 3] }, { temperature: 0, repetitionPenalty: 1.2, history: [2, 0] },
  { repetitionPenalty: 0.7, history: [5, 6, 5], topK: 8 },
];

t.test('equals the reference sampler from the same draws: every level, awkward sizes, ties, every filter', (t) => {
  // 12 draws of each row in one call (the row repeated); the reference's draws once.
  const R = 12;
  const cases: Array<{ what: string; n: number; logits: Float32Array; o: SamplingOptions; u: number[]; want: number[] }> = [];
  for (const [n, seed, step] of [[1, 1, 0], [2, 2, 0], [7, 3, 0], [97, 4, 0], [1000, 5, 0], [4099, 6, 0], [97, 7, 0.5], [1000, 8, 0.25], [4099, 9, 1], [50280, 10, 0]]) {
    let x = randomLogits(seed, n);
    // Rounded logits: many exactly equal probabilities (ties at every filter's boundary).
    if (step > 0) x = Float32Array.from(x, (v) => Math.round(v / step) * step);
    const logits = new Float32Array(R * n);
    for (let r = 0; r < R; r++) logits.set(x, r * n);
    for (const given of OPTIONS) {
      const o = given.history ? { ...given, history: Array.from(given.history).filter((id) => id < n) } : given;
      const rng = createRng(seed * 17 + cases.length);
      const u = Array.from({ length: R }, () => rng.next());
      const want = u.map((v) => referenceSampleToken(x, o, { next: () => v }));
      cases.push({ what: `n=${n} step=${step} ${JSON.stringify(o)}`, n, logits, o, u, want });
    }
  }
  forEachIsa((isa) => {
    let failed = 0;
    for (const c of cases) {
      const got = kernels.sampleTokens({ logits: c.logits, rows: R, vocab: c.n, options: c.o, u: c.u });
      for (let r = 0; r < R; r++) {
        if (got[r] !== c.want[r] && failed++ < 5) t.fail(`${isa} ${c.what}: u=${c.u[r]}: ${got[r]} vs ${c.want[r]}`);
      }
    }
    t.equal(failed, 0, `${isa}: ${cases.length} rows and ${cases.length * R} draws equal the reference`);
  });
  t.end();
});

t.test('confident rows: the most likely token alone reaching topP (ties at the maximum too), and just short of it', (t) => {
  // One logit (or two equal ones) far above the rest: p_top ~0.93 (tied: ~0.47 each).
  const rows: Array<[string, Float32Array]> = [];
  const one = randomLogits(51, 1000, 2);
  one[417] = 10;
  const two = Float32Array.from(one);
  two[12] = 10;
  rows.push(['one', one], ['two tied', two]);
  const opts: SamplingOptions[] = [{ topP: 0.9 }, { topP: 0.95 }, { topP: 0.99 }, { topP: 0.4 }, { topP: 0.5 }, { topP: 0.9, temperature: 1.5 }, { topP: 0.9, minP: 0.01 }];
  forEachIsa((isa) => {
    let n = 0, bad = 0;
    for (const [what, x] of rows) for (const o of opts) {
      const rng = createRng(52 + n);
      const u = Array.from({ length: 16 }, () => rng.next());
      const logits = new Float32Array(16 * x.length);
      for (let r = 0; r < 16; r++) logits.set(x, r * x.length);
      const got = kernels.sampleTokens({ logits, rows: 16, vocab: x.length, options: o, u });
      for (let r = 0; r < 16; r++, n++) {
        const want = referenceSampleToken(x, o, { next: () => u[r] });
        if (got[r] !== want && bad++ < 5) t.fail(`${isa} ${what} ${JSON.stringify(o)}: u=${u[r]}: ${got[r]} vs ${want}`);
      }
    }
    t.equal(bad, 0, `${isa}: ${n} draws from confident rows equal the reference`);
  });
  t.end();
});

t.test('rows of one call take options of their own; rows = 0 gives an empty result', (t) => {
  const n = 300, x = randomLogits(21, 4 * n, 6), rng = createRng(22);
  const opts: SamplingOptions[] = [{ temperature: 0 }, { topK: 3, repetitionPenalty: 1.5, history: [7, 9] }, { topP: 0.6, temperature: 0.5 }, { minP: 0.2, repetitionPenalty: 2, history: [1, 1, 299] }];
  forEachIsa((isa) => {
    for (let k = 0; k < 10; k++) {
      const u = opts.map(() => rng.next());
      const got = kernels.sampleTokens({ logits: x, rows: 4, vocab: n, options: opts, u });
      const want = opts.map((o, r) => referenceSampleToken(x.subarray(r * n, (r + 1) * n), o, { next: () => u[r] }));
      t.same(Array.from(got), want, `${isa} draw ${k}`);
    }
  });
  t.same(Array.from(kernels.sampleTokens({ logits: new Float32Array(0), rows: 0, vocab: 5, u: [] })), []);
  t.end();
});

t.test('probabilities to 1e-12: draws just below and above the reference cumulative boundaries', (t) => {
  // Each boundary b between token i and the next kept token j: u = b(1 - 1e-12)
  // draws i, u = b(1 + 1e-12) draws j. Wide logits (probabilities from ~1 to
  // ~1e-300) exercise the exp's range.
  const cases: Array<[Float32Array, SamplingOptions]> = [
    [randomLogits(31, 1000, 8), {}], [randomLogits(32, 1000, 8), { topP: 0.8, temperature: 0.9 }],
    [randomLogits(33, 3001, 8), { topK: 200, minP: 1e-4 }], [randomLogits(34, 500, 1400), { temperature: 1 }],
  ];
  forEachIsa((isa) => {
    let checked = 0, bad = 0;
    for (const [x, o] of cases) {
      const p = referenceTokenProbabilities(x, o);
      const us: number[] = [], want: number[] = [];
      let cum = 0, prev = -1;
      for (let i = 0; i < p.length; i++) {
        if (p[i] <= 0) continue;
        // Boundaries where both neighbours hold at least 1e-9 (smaller ones are below the resolution asked).
        if (prev >= 0 && p[prev] > 1e-9 && p[i] > 1e-9 && cum < 1 - 1e-9) {
          us.push(cum * (1 - 1e-12), cum * (1 + 1e-12));
          want.push(prev, i);
        }
        cum += p[i];
        prev = i;
      }
      const n = x.length, R = us.length;
      const logits = new Float32Array(R * n);
      for (let r = 0; r < R; r++) logits.set(x, r * n);
      const got = kernels.sampleTokens({ logits, rows: R, vocab: n, options: o, u: us });
      for (let r = 0; r < R; r++, checked++) {
        if (got[r] !== want[r] && bad++ < 5) t.fail(`${isa} ${JSON.stringify(o)}: u=${us[r]}: ${got[r]} vs ${want[r]}`);
      }
    }
    t.ok(checked > 200, `${isa}: ${checked} boundary draws`);
    t.equal(bad, 0, `${isa}: every boundary draw on its side`);
  });
  t.end();
});

t.test('infinite logits, as sampleToken: +Infinity shares the mass, -Infinity never drawn', (t) => {
  const x = Float32Array.from([-Infinity, 1, Infinity, 0, Infinity, -Infinity]);
  const y = Float32Array.from([-Infinity, 2, -Infinity, 1, -Infinity]);
  forEachIsa((isa) => {
    const us = [0, 0.25, 0.49, 0.5, 0.75, 0.999];
    const got = kernels.sampleTokens({ logits: new Float32Array(us.length * 6).map((_, i) => x[i % 6]), rows: us.length, vocab: 6, u: us });
    t.same(Array.from(got), [2, 2, 2, 4, 4, 4], `${isa}: +Infinity logits split the mass`);
    const gy = kernels.sampleTokens({ logits: new Float32Array(us.length * 5).map((_, i) => y[i % 5]), rows: us.length, vocab: 5, options: { topP: 0.99 }, u: us });
    t.ok(Array.from(gy).every((v, r) => v === referenceSampleToken(y, { topP: 0.99 }, { next: () => us[r] }) && (v === 1 || v === 3)), `${isa}: -Infinity never drawn (${Array.from(gy)})`);
    // Temperature 0 (its own pass over the float32 row): the first of the maxima, +Infinity included.
    const g0 = kernels.sampleTokens({ logits: Float32Array.of(...x, ...y, -Infinity), rows: 2, vocab: 6, options: { temperature: 0 }, u: [0.3, 0.3] });
    t.same(Array.from(g0), [2, 1], `${isa}: temperature 0 takes the first maximum`);
  });
  t.end();
});

t.test('bad rows and bad arguments: typed errors naming the row or the field', (t) => {
  const x = randomLogits(41, 20);
  const nanRow = Float32Array.from(x);
  nanRow[7] = NaN;
  const two = new Float32Array(40);
  two.set(x);
  two.set(nanRow, 20);
  t.throws(() => kernels.sampleTokens({ logits: two, rows: 2, vocab: 20, u: [0.5, 0.5] }), { name: 'RangeError', message: /row 1: the logits hold a NaN/ });
  t.throws(() => kernels.sampleTokens({ logits: new Float32Array(4).fill(-Infinity), rows: 1, vocab: 4, u: [0.1] }), { name: 'RangeError', message: /row 0: logits are all -Infinity/ });
  // The same at temperature 0 (its own pass over the row: kernels/sampling.h greedy_token).
  const greedy = { temperature: 0 };
  t.throws(() => kernels.sampleTokens({ logits: two, rows: 2, vocab: 20, options: greedy, u: [0.5, 0.5] }), { name: 'RangeError', message: /row 1: the logits hold a NaN/ });
  t.throws(() => kernels.sampleTokens({ logits: Float32Array.of(-Infinity, NaN, -Infinity), rows: 1, vocab: 3, options: greedy, u: [0.5] }), { name: 'RangeError', message: /row 0: the logits hold a NaN/ });
  t.throws(() => kernels.sampleTokens({ logits: new Float32Array(37).fill(-Infinity), rows: 1, vocab: 37, options: greedy, u: [0.1] }), { name: 'RangeError', message: /row 0: logits are all -Infinity/ });
  t.throws(() => kernels.sampleTokens({ logits: x, rows: 1, vocab: 20, u: [1] }), { name: 'RangeError', message: /u must be a number in \[0, 1\)/ });
  t.throws(() => kernels.sampleTokens({ logits: x, rows: 1, vocab: 20, u: [NaN] }), { name: 'RangeError', message: /row 0: u/ });
  t.throws(() => kernels.sampleTokens({ logits: x, rows: 1, vocab: 20, u: [] }), { name: 'RangeError', message: /'u'/ });
  t.throws(() => kernels.sampleTokens({ logits: x, rows: 2, vocab: 20, u: [0, 0] }), { name: 'RangeError', message: /logits/ });
  t.throws(() => kernels.sampleTokens({ logits: x, rows: 1, vocab: 20, options: { topP: 0 }, u: [0] }), { name: 'RangeError', message: /topP/ });
  t.throws(() => kernels.sampleTokens({ logits: x, rows: 1, vocab: 20, options: { repetitionPenalty: 0 }, u: [0] }), { name: 'RangeError', message: /repetitionPenalty/ });
  t.throws(() => kernels.sampleTokens({ logits: x, rows: 1, vocab: 20, options: { repetitionPenalty: 1.2, history: [3, 20] }, u: [0] }), { name: 'RangeError', message: /history.*row 0: id 20 at index 1/ });
  t.throws(() => kernels.sampleTokens({ logits: x, rows: 1, vocab: 20, options: [{}, {}], u: [0] }), { name: 'RangeError', message: /one entry per row/ });
  // The native entry point checks each field itself (the model's sampled steps pass rows straight through).
  const { native } = require('../../lib/native/binding') as { native: { sampleTokens(a: unknown): Int32Array } };
  const call = (params: unknown, more: object = {}) => native.sampleTokens({ logits: x, rows: 1, vocab: 20, params, ...more });
  t.throws(() => call([1, 0, 1, 0, 1, 0.5]), { name: 'TypeError', message: /params.*Float64Array/ });
  t.throws(() => call(Float64Array.of(1, 0, 1, 0, 1)), { name: 'RangeError', message: /6 numbers/ });
  t.throws(() => call(Float64Array.of(-1, 0, 1, 0, 1, 0.5)), { name: 'RangeError', message: /row 0: temperature/ });
  t.throws(() => call(Float64Array.of(Infinity, 0, 1, 0, 1, 0.5)), { name: 'RangeError', message: /temperature/ });
  t.throws(() => call(Float64Array.of(1, 1.5, 1, 0, 1, 0.5)), { name: 'RangeError', message: /topK must be an integer/ });
  t.throws(() => call(Float64Array.of(1, 0, 1.5, 0, 1, 0.5)), { name: 'RangeError', message: /topP/ });
  t.throws(() => call(Float64Array.of(1, 0, 1, -0.1, 1, 0.5)), { name: 'RangeError', message: /minP/ });
  t.throws(() => call(Float64Array.of(1, 0, 1, 0, NaN, 0.5)), { name: 'RangeError', message: /repetitionPenalty/ });
  t.throws(() => call(Float64Array.of(1, 0, 1, 0, 1, -0.5)), { name: 'RangeError', message: /u must be/ });
  const ok = Float64Array.of(1, 0, 1, 0, 1.5, 0.5);
  t.throws(() => call(ok, { history: Int32Array.of(1) }), { name: 'TypeError', message: /historyOffsets/ });
  t.throws(() => call(ok, { history: [1], historyOffsets: Int32Array.of(0, 1) }), { name: 'TypeError', message: /history.*Int32Array/ });
  t.throws(() => call(ok, { history: Int32Array.of(1), historyOffsets: Int32Array.of(0) }), { name: 'RangeError', message: /rows \+ 1/ });
  t.throws(() => call(ok, { history: Int32Array.of(1), historyOffsets: Int32Array.of(0, 2) }), { name: 'RangeError', message: /end at the history/ });
  t.throws(() => call(ok, { history: Int32Array.of(-1), historyOffsets: Int32Array.of(0, 1) }), { name: 'RangeError', message: /id -1/ });
  t.end();
});
