// The float64 reference forward (test/helpers/reference_model.ts) against
// (1) a one-channel Mamba-1 model worked out by hand, (2) logits derived
// independently with numpy from the quadratic ("attention") form of both scans
// (a different formulation from the recurrence the reference uses), and
// (3) invariants: causality, missing/misshapen tensors, bad tokens.
import t, { type Test } from 'tap';
import { mambaLayers, type MambaConfig } from '../../lib/model/config';
import { referenceForward, type ReferenceWeights } from '../helpers/reference_model';

const silu = (x: number): number => x / (1 + Math.exp(-x));

function config(over: Partial<MambaConfig>): MambaConfig {
  const c = {
    arch: 'mamba' as const, dModel: 4, nLayer: 1, vocabSize: 5, dState: 3, dConv: 4, expand: 2, dInner: 8, dtRank: 2,
    headdim: 0, nheads: 0, ngroups: 1, chunkSize: 256, normEps: 1e-5, tieEmbeddings: true, residualInFp32: true,
    useBias: false, convBias: true, timeStepLimit: [0, Infinity] as [number, number], ...over,
  };
  return { family: c.arch, layers: mambaLayers(c.arch, c.nLayer), ...c };
}

/** Tensor k (in the order listed) has elements base + scale*sin(0.37*(i+1) + 1.1*k): the same formula as the numpy derivation. */
function formulaWeights(c: MambaConfig): ReferenceWeights {
  const list: [string, number, number, number][] = []; // name, size, scale, base
  const d = c.dModel, di = c.dInner, N = c.dState, K = c.dConv;
  list.push(['backbone.embeddings.weight', c.vocabSize * d, 0.6, 0]);
  for (let l = 0; l < c.nLayer; l++) {
    const p = `backbone.layers.${l}.`, m = p + 'mixer.';
    list.push([p + 'norm.weight', d, 0.3, 1]);
    if (c.arch === 'mamba') {
      const R = c.dtRank;
      list.push([m + 'in_proj.weight', 2 * di * d, 0.6, 0]);
      if (c.useBias) list.push([m + 'in_proj.bias', 2 * di, 0.6, 0]);
      list.push([m + 'conv1d.weight', di * K, 0.6, 0]);
      if (c.convBias) list.push([m + 'conv1d.bias', di, 0.6, 0]);
      list.push([m + 'x_proj.weight', (R + 2 * N) * di, 0.6, 0], [m + 'dt_proj.weight', di * R, 0.6, 0],
        [m + 'dt_proj.bias', di, 0.6, 0], [m + 'A_log', di * N, 0.6, 0], [m + 'D', di, 0.6, 0],
        [m + 'out_proj.weight', d * di, 0.6, 0]);
      if (c.useBias) list.push([m + 'out_proj.bias', d, 0.6, 0]);
    } else {
      const H = c.nheads, G = c.ngroups, proj = 2 * di + 2 * G * N + H;
      list.push([m + 'in_proj.weight', proj * d, 0.6, 0]);
      if (c.useBias) list.push([m + 'in_proj.bias', proj, 0.6, 0]);
      list.push([m + 'conv1d.weight', (di + 2 * G * N) * K, 0.6, 0]);
      if (c.convBias) list.push([m + 'conv1d.bias', di + 2 * G * N, 0.6, 0]);
      list.push([m + 'dt_bias', H, 0.6, 0], [m + 'A_log', H, 0.6, 0], [m + 'D', H, 0.6, 0],
        [m + 'norm.weight', di, 0.3, 1], [m + 'out_proj.weight', d * di, 0.6, 0]);
      if (c.useBias) list.push([m + 'out_proj.bias', d, 0.6, 0]);
    }
  }
  list.push(['backbone.norm_f.weight', d, 0.3, 1]);
  if (!c.tieEmbeddings) list.push(['lm_head.weight', c.vocabSize * d, 0.6, 0]);
  const w: ReferenceWeights = new Map();
  list.forEach(([name, n, scale, base], k) => {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = base + scale * Math.sin(0.37 * (i + 1) + 1.1 * k);
    w.set(name, a);
  });
  return w;
}

function close(t: Test, got: ArrayLike<number>, want: ArrayLike<number>, tol: number, msg: string): void {
  let worst = 0, at = -1;
  if (got.length !== want.length) { t.fail(`${msg}: length ${got.length} vs ${want.length}`); return; }
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - want[i]) / (tol * (1 + Math.abs(want[i])));
    if (!(e <= worst)) { worst = Number.isNaN(e) ? Infinity : e; at = i; }
  }
  t.ok(worst <= 1, `${msg} (worst err/tol ${worst.toPrecision(3)} at ${at}: ${got[at]} vs ${want[at]})`);
}

t.test('Mamba-1 with one channel, worked out by hand', (t) => {
  // d = di = N = R = 1, K = 2, V = 2, eps = 1 (so the norms are not just signs).
  const c = config({ dModel: 1, dInner: 1, expand: 1, dState: 1, dtRank: 1, dConv: 2, vocabSize: 2, normEps: 1 });
  const p = 'backbone.layers.0.mixer.';
  const w: ReferenceWeights = new Map(Object.entries({
    'backbone.embeddings.weight': [2, -1],
    'backbone.layers.0.norm.weight': [1.5],
    [p + 'in_proj.weight']: [1, -0.5],        // x = n, z = -n/2
    [p + 'conv1d.weight']: [0.5, 2],          // previous token * 0.5 + current * 2
    [p + 'conv1d.bias']: [0.25],
    [p + 'x_proj.weight']: [0.5, 1, -2],      // dt_in = u/2, B = u, C = -2u
    [p + 'dt_proj.weight']: [3],
    [p + 'dt_proj.bias']: [-1],               // delta = softplus(1.5u - 1)
    [p + 'A_log']: [Math.log(0.5)],           // A = -0.5
    [p + 'D']: [0.75],
    [p + 'out_proj.weight']: [-1.25],
    'backbone.norm_f.weight': [0.8],
  }).map(([k, v]) => [k, Float64Array.from(v)]));
  const got = referenceForward(c, w, [0, 1, 1]);

  const rms1 = (x: number, g: number): number => (x / Math.sqrt(x * x + 1)) * g;
  const sp = (x: number): number => Math.log(1 + Math.exp(x));
  const e = [2, -1, -1];
  const n = e.map((v) => rms1(v, 1.5));            // layer norm of the embedding
  const conv = [0.25 + 2 * n[0], 0.25 + 0.5 * n[0] + 2 * n[1], 0.25 + 0.5 * n[1] + 2 * n[2]];
  const u = conv.map(silu);
  let h = 0;
  const want: number[] = [];
  for (let s = 0; s < 3; s++) {
    const delta = sp(1.5 * u[s] - 1);
    h = Math.exp(-0.5 * delta) * h + delta * u[s] * u[s];   // B = u
    const y = (-2 * u[s] * h + 0.75 * u[s]) * silu(-0.5 * n[s]);
    const r = e[s] + -1.25 * y;
    const f = rms1(r, 0.8);
    want.push(f * 2, f * -1);                               // tied head: rows [2] and [-1]
  }
  close(t, got, want, 1e-14, 'logits');
  t.end();
});

// Expected logits from a separate numpy derivation (vectorised, quadratic form of
// the scans: y_t = sum_{s<=t} C_t exp(A sum_{r=s+1..t} dt_r) dt_s B_s x_s; Mamba-2
// heads mapped to groups by repeat; gated norm per group), weights by formulaWeights.
const numpyCases: { name: string; cfg: MambaConfig; tokens: number[]; logits: number[] }[] = [
  {
    name: 'Mamba-1, 2 layers, tied head',
    cfg: config({ dConv: 3, nLayer: 2 }),
    tokens: [3, 0, 4, 4, 1, 2],
    logits: [
      -0.3757010643881384, -0.7577227706559522, 0.23829315537019316, 0.8009356256482352, -0.09304888683246569,
      1.1722706903586182, 0.5127863544269984, -1.0792803468405638, -0.7085065590278733, 0.950797465539213,
      0.7555354619642586, 0.5444797399649474, -0.6567977369432053, -0.6635855754711929, 0.5364609727450919,
      0.3773353588555798, 0.4894424574239548, -0.28857827346271236, -0.5417741791038947, 0.19033118363837645,
      0.8941344968406046, 0.7300705469999705, -0.7617411319005357, -0.8682071587013777, 0.6042976249985427,
      -0.3646798398500357, -0.528210397634469, 0.26889245022512326, 0.5769722281706701, -0.16426243182706932,
    ],
  },
  {
    name: 'Mamba-1, untied head, in/out_proj biases, no conv bias',
    cfg: config({ tieEmbeddings: false, useBias: true, convBias: false }),
    tokens: [1, 2, 3, 0],
    logits: [
      1.2263276950457722, -2.40078048145104, -1.6616930275165167, 2.09944366911916, 2.0424129634172057,
      -1.1744234428537386, 0.8941391914922362, 1.3365695488333478, -0.6517613270877358, -1.454762065413467,
      -1.5267491265882336, 0.5012101052042515, 1.6176401954618267, -0.2078619765616744, -1.6553345616202466,
      0.6991120196455628, -2.3785494951836657, -1.1304459128396946, 2.1735507606112363, 1.5246046694802065,
    ],
  },
  {
    name: 'Mamba-2, ngroups 2 (2 heads per group), 2 layers, tied head',
    cfg: config({ arch: 'mamba2', dtRank: 0, headdim: 2, nheads: 4, ngroups: 2, nLayer: 2 }),
    tokens: [2, 4, 0, 1, 3],
    logits: [
      -0.3079014797586946, 0.3077196821369819, 0.3637043666766969, -0.241764350634304, -0.4075466994958396,
      0.433612027896434, -0.28805781461292856, -0.4858493678776205, 0.199952311752085, 0.5221093697215319,
      0.8505882557698231, 0.15227354922894293, -0.8229744756267546, -0.3015144144244253, 0.7682968721162193,
      0.8707486224252166, 1.4911594514490136, -0.600336922828835, -1.6000264994866042, 0.3101829190400483,
      -0.5751888825443168, -1.1390072555933968, 0.36863760626173997, 1.20585719679017, -0.14996354445185306,
    ],
  },
  {
    name: 'Mamba-2, ngroups 1, untied, biases, dt clamped to [0.6, 0.9] on both sides',
    cfg: config({ arch: 'mamba2', dtRank: 0, headdim: 2, nheads: 4, ngroups: 1, dConv: 3, tieEmbeddings: false, useBias: true, timeStepLimit: [0.6, 0.9] }),
    tokens: [4, 1, 1, 0],
    logits: [
      -0.22108587146898795, -1.13553875921945, 0.015163583587758756, 1.1382885727326566, 0.19125736440990052,
      1.161647592276573, -2.316854294327359, -1.5817934773041182, 2.03000672601893, 1.94992149234734,
      0.8802543976652206, -2.179465913970859, -1.275485827433878, 1.9481651700615903, 1.6287724288224221,
      0.6047549001459863, -2.293772731839324, -1.0207150996416028, 2.108672939439816, 1.4031087014074792,
    ],
  },
];

t.test('logits match an independent numpy derivation', (t) => {
  for (const k of numpyCases) {
    const got = referenceForward(k.cfg, formulaWeights(k.cfg), k.tokens);
    close(t, got, k.logits, 1e-12, k.name);
  }
  t.end();
});

t.test('Mamba-2 heads read their own group of B/C', (t) => {
  // (The ngroups 2 case above also pins the per-group gated norm: the numpy
  // derivation with HF's norm over all dInner channels moves its logits by 0.17.)
  // Heads 2-3 read group 1: copying group 0's B/C rows over group 1's changes the model.
  const k = numpyCases[2];
  const w = formulaWeights(k.cfg);
  const m = 'backbone.layers.0.mixer.', N = k.cfg.dState, di = k.cfg.dInner, d = k.cfg.dModel;
  const inW = Float64Array.from(w.get(m + 'in_proj.weight')!);
  for (const off of [2 * di, 2 * di + 2 * N]) { // B block, C block of xBC (after z and x)
    for (let n = 0; n < N; n++) for (let j = 0; j < d; j++) inW[(off + N + n) * d + j] = inW[(off + n) * d + j];
  }
  const w2 = new Map(w); w2.set(m + 'in_proj.weight', inW);
  const moved = referenceForward(k.cfg, w2, k.tokens);
  let diff = 0;
  for (let i = 0; i < moved.length; i++) diff = Math.max(diff, Math.abs(moved[i] - k.logits[i]));
  t.ok(diff > 1e-3, `group 1's B/C rows matter (max change ${diff})`);
  t.end();
});

t.test('causal: logits at t do not depend on tokens after t', (t) => {
  for (const cfg of [
    config({ nLayer: 2 }),
    config({ arch: 'mamba2', dtRank: 0, headdim: 2, nheads: 4, ngroups: 2, nLayer: 2 }),
    config({ arch: 'mamba2', dtRank: 0, headdim: 4, nheads: 2, ngroups: 1 }),
  ]) {
    const w = formulaWeights(cfg), V = cfg.vocabSize;
    const a = [1, 3, 0, 2, 4, 4, 1, 0, 2], b = [1, 3, 0, 2, 0, 1, 3, 3, 4];
    const la = referenceForward(cfg, w, a), lb = referenceForward(cfg, w, b);
    t.same(Array.from(la.subarray(0, 4 * V)), Array.from(lb.subarray(0, 4 * V)), `${cfg.arch} G=${cfg.ngroups}: positions 0-3 identical`);
    let diff = 0;
    for (let i = 4 * V; i < la.length; i++) diff = Math.max(diff, Math.abs(la[i] - lb[i]));
    t.ok(diff > 1e-6, `${cfg.arch} G=${cfg.ngroups}: later positions differ (${diff})`);
    // a prefix computed alone equals the prefix of the longer run
    const lp = referenceForward(cfg, w, a.slice(0, 5));
    t.same(Array.from(lp), Array.from(la.subarray(0, 5 * V)), `${cfg.arch} G=${cfg.ngroups}: prefix run equals prefix rows`);
  }
  t.end();
});

t.test('missing or misshapen tensors and bad tokens are reported', (t) => {
  const cfg = config({});
  const w = formulaWeights(cfg);
  const noD = new Map(w); noD.delete('backbone.layers.0.mixer.D');
  t.throws(() => referenceForward(cfg, noD, [0]), /missing tensor backbone\.layers\.0\.mixer\.D/);
  const shortA = new Map(w); shortA.set('backbone.layers.0.mixer.A_log', new Float64Array(3));
  t.throws(() => referenceForward(cfg, shortA, [0]), /A_log has 3 elements, expected 24/);
  t.throws(() => referenceForward(cfg, w, [0, 5]), RangeError);
  t.throws(() => referenceForward(cfg, w, [-1]), RangeError);
  t.throws(() => referenceForward(cfg, w, [1.5]), RangeError);
  t.end();
});
