// moeRoute / moe (mixture of SwiGLU experts) against a float64 per-expert loop,
// every router variant, every expert weight format, every ISA level; bitwise
// reproducibility across thread counts and schedules.
import t, { type Test } from 'tap';
import { kernels } from '../../lib';
import { dequantize, quantizeI4, quantizeI8, roundHalfEven } from '../../lib/quant/formats';
import { forEachIsa, fromBf16, fromF16, randn, rng, toBf16, toF16 } from '../helpers/reference';
import { BLOCK_BYTES, bitEqual, dequant, randomBlocks, withoutMinus128 } from '../helpers/quant_blocks';

type Router = kernels.MoeRouter;
type Dt = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'i8' | 'i4' | 'i4a16';

// ---------------------------------------------------------------- reference

interface RouterOpts { router: Router; bias?: Float32Array; nGroup?: number; topkGroup?: number; normTopkProb?: boolean; routedScalingFactor?: number }

/** The k best of score (among allowed), ties to the lower index. */
function topK(score: ArrayLike<number>, k: number, allowed?: (i: number) => boolean): number[] {
  const idx = [...Array(score.length).keys()].filter((i) => !allowed || allowed(i));
  idx.sort((a, b) => (score[b] - score[a]) || (a - b));
  return idx.slice(0, k);
}

/** float64 router, written plainly from the definitions. */
function routeRef(logits: Float32Array, T: number, E: number, k: number, o: RouterOpts): { ids: Int32Array; weights: Float64Array } {
  const ids = new Int32Array(T * k), weights = new Float64Array(T * k);
  for (let t = 0; t < T; t++) {
    const l = Array.from(logits.subarray(t * E, (t + 1) * E));
    let chosen: number[], w: number[];
    if (o.router === 'softmax_topk') {
      const mx = Math.max(...l), ex = l.map((v) => Math.exp(v - mx)), s = ex.reduce((a, b) => a + b, 0);
      const p = ex.map((v) => v / s);
      chosen = topK(p, k);
      w = chosen.map((e) => p[e]);
    } else if (o.router === 'topk_softmax') {
      chosen = topK(l, k);
      const ex = chosen.map((e) => Math.exp(l[e] - l[chosen[0]])), s = ex.reduce((a, b) => a + b, 0);
      w = ex.map((v) => v / s);
    } else {
      const s = l.map((v) => 1 / (1 + Math.exp(-v)));
      const c = s.map((v, e) => v + (o.bias ? o.bias[e] : 0));
      const G = o.nGroup ?? 1, gs = E / G, keepG = o.topkGroup ?? G;
      const gscore = [...Array(G).keys()].map((g) => topK(c.slice(g * gs, (g + 1) * gs), Math.min(2, gs)).reduce((a, i) => a + c[g * gs + i], 0));
      const keep = new Set(topK(gscore, keepG));
      chosen = topK(c, k, (e) => keep.has(Math.floor(e / gs)));
      w = chosen.map((e) => s[e]);
      const sum = w.reduce((a, b) => a + b, 0);
      if (o.normTopkProb) w = w.map((v) => v / (sum + 1e-20));
      w = w.map((v) => v * (o.routedScalingFactor ?? 1));
    }
    for (let j = 0; j < k; j++) { ids[t * k + j] = chosen[j]; weights[t * k + j] = w[j]; }
  }
  return { ids, weights };
}

/** q = clamp(round(x · fround(1 / s)), ±127) as qlinear computes it. */
function quantRef(v: number, s: number): number {
  const inv = Math.fround(1 / Math.fround(s));
  return Math.max(-127, Math.min(127, roundHalfEven(Math.fround(Math.fround(v) * inv))));
}

/** One stacked expert weight: what the kernel gets, and the values it stands for. */
interface EW { arg: kernels.MoeExpertWeight; eff: ArrayLike<number>; xScale?: Float32Array; dt: Dt }

const silu = (v: number) => v / (1 + Math.exp(-v));

interface Ref { y: Float64Array; mag: Float64Array }

/**
 * float64 per-expert loop: out[t] = Σ_j w_j · W2_e (silu(Wg_e x) ∘ (Wu_e x)) (+ shared), on the
 * dequantised weights; int8 schemes quantize x and h with the expert's static scale, as the kernels
 * do. `mag` bounds the float32 error: the L1 size of every term, propagated through the SwiGLU
 * (|silu'| <= 1.1), plus two int8 steps of h per (token, slot) for int8 down projections (an h
 * element close to a rounding boundary can round the other way from float32 h).
 */
function moeRef(x: Float32Array, T: number, d: number, I: number, k: number, ids: Int32Array, weights: ArrayLike<number>,
  gate: EW, up: EW, down: EW, shared?: Float32Array): Ref {
  const y = new Float64Array(T * d), mag = new Float64Array(T * d);
  const xin = new Float64Array(d), g = new Float64Array(I), u = new Float64Array(I), gm = new Float64Array(I), um = new Float64Array(I);
  const h = new Float64Array(I), hm = new Float64Array(I);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < k; j++) {
      const e = ids[t * k + j], w = weights[t * k + j];
      for (const [W, out, m] of [[gate, g, gm], [up, u, um]] as const) {
        for (let c = 0; c < d; c++) xin[c] = W.xScale ? quantRef(x[t * d + c], W.xScale[e]) * Math.fround(W.xScale[e]) : x[t * d + c];
        for (let i = 0; i < I; i++) {
          let s = 0, a = 0;
          const o = (e * I + i) * d;
          for (let c = 0; c < d; c++) { const p = xin[c] * W.eff[o + c]; s += p; a += Math.abs(p); }
          out[i] = s; m[i] = a;
        }
      }
      let maxW2 = 0;
      for (let i = 0; i < I; i++) {
        const sg = silu(g[i]);
        h[i] = sg * u[i];
        hm[i] = Math.abs(h[i]) + 1.1 * gm[i] * Math.abs(u[i]) + Math.abs(sg) * um[i];
        if (down.xScale) h[i] = quantRef(h[i], down.xScale[e]) * Math.fround(down.xScale[e]);
      }
      for (let n = 0; n < d; n++) {
        let s = 0, a = 0;
        const o = (e * d + n) * I;
        for (let i = 0; i < I; i++) { s += h[i] * down.eff[o + i]; a += Math.abs(down.eff[o + i]) * hm[i]; maxW2 = Math.max(maxW2, Math.abs(down.eff[o + i])); }
        y[t * d + n] += w * s;
        mag[t * d + n] += Math.abs(w) * (a + (down.xScale ? 2 * down.xScale[e] * maxW2 : 0));
      }
    }
    if (shared) for (let n = 0; n < d; n++) { y[t * d + n] += shared[t * d + n]; mag[t * d + n] += Math.abs(shared[t * d + n]); }
  }
  return { y, mag };
}

// The error is bounded relative to the L1 size of the terms (mag), as in the linear tests; the worst
// case seen is < 0.1 of this.
const RTOL = 2e-6, ATOL = 1e-6;

function check(t: Test, got: Float32Array, ref: Ref, msg: string) {
  if (got.length !== ref.y.length) { t.fail(`${msg}: length ${got.length} vs ${ref.y.length}`); return; }
  let worst = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - ref.y[i]) / (RTOL * ref.mag[i] + ATOL);
    if (!(e <= worst)) { worst = Number.isNaN(e) ? Infinity : e; at = i; }
  }
  t.ok(worst <= 1, `${msg} (worst err/tol ${worst.toPrecision(3)}${at >= 0 ? ` at ${at}: ${got[at]} vs ${ref.y[at]}` : ''})`);
}

// ---------------------------------------------------------------- weights

/** E stacked [R, K] matrices in format dt (values ~ scale). */
function makeWeight(r: () => number, dt: Dt, E: number, R: number, K: number, scale: number, xScale?: Float32Array): EW {
  const n = E * R * K;
  switch (dt) {
    case 'f32': { const w = randn(r, n, scale); return { arg: w, eff: w, dt }; }
    case 'f16': { const b = toF16(randn(r, n, scale)); return { arg: { data: b, dtype: 'f16' }, eff: fromF16(b), dt }; }
    case 'bf16': { const b = toBf16(randn(r, n, scale)); return { arg: { data: b, dtype: 'bf16' }, eff: fromBf16(b), dt }; }
    case 'q8_0': case 'q4_0': {
      const b = randomBlocks(r, E * R, K, dt, scale / (dt === 'q8_0' ? 64 : 4));
      return { arg: { data: b, dtype: dt }, eff: dequant(b, E * R, K, dt), dt };
    }
    case 'i8': case 'i4': case 'i4a16': {
      const q = (dt === 'i8' ? quantizeI8 : quantizeI4)(randn(r, n, scale), E * R, K);
      const xs = dt === 'i4a16' ? undefined : xScale;
      return { arg: { dtype: q.dtype, data: q.data, scales: q.scales, xScale: xs }, eff: dequantize(q), xScale: xs, dt };
    }
  }
}

/** Granite's packed [E, 2R, K] from gate and up [E, R, K] (raw bytes and scales interleaved per expert). */
function pack(gate: EW, up: EW, E: number): EW {
  const cat = <A extends ArrayLike<number> & { subarray(a: number, b: number): A; length: number }>(a: A, b: A, mk: (n: number) => A & { set(s: A, o: number): void }): A => {
    const out = mk(a.length + b.length), pa = a.length / E, pb = b.length / E;
    for (let e = 0; e < E; e++) { out.set(a.subarray(e * pa, (e + 1) * pa), e * (pa + pb)); out.set(b.subarray(e * pb, (e + 1) * pb), e * (pa + pb) + pa); }
    return out;
  };
  const effOut = new Float64Array(gate.eff.length + up.eff.length);
  const pe = gate.eff.length / E;
  for (let e = 0; e < E; e++) for (let i = 0; i < pe; i++) { effOut[e * 2 * pe + i] = gate.eff[e * pe + i]; effOut[e * 2 * pe + pe + i] = up.eff[e * pe + i]; }
  const ga = gate.arg as any, ua = up.arg as any;
  let arg: kernels.MoeExpertWeight;
  if (ga instanceof Float32Array) arg = cat(ga, ua, (n) => new Float32Array(n));
  else {
    const data = cat(ga.data, ua.data, (n) => new (ga.data.constructor)(n));
    arg = { ...ga, data, ...(ga.scales ? { scales: cat(ga.scales, ua.scales, (n) => new Float32Array(n)) } : {}) };
  }
  return { arg, eff: effOut, xScale: gate.xScale, dt: gate.dt };
}

/** gate/up view of a packed weight for the reference: rows [0, I) and [I, 2I) of each expert. */
function unpackEff(p: EW, E: number, I: number, d: number): [EW, EW] {
  const g = new Float64Array(E * I * d), u = new Float64Array(E * I * d);
  for (let e = 0; e < E; e++)
    for (let i = 0; i < I * d; i++) { g[e * I * d + i] = p.eff[e * 2 * I * d + i]; u[e * I * d + i] = p.eff[e * 2 * I * d + I * d + i]; }
  return [{ ...p, eff: g }, { ...p, eff: u }];
}

interface Case { T: number; d: number; I: number; E: number; k: number }

/** A random problem: x, routing (moeRoute on random logits) and weights of the given formats. */
function problem(seed: number, c: Case, dts: [Dt, Dt], router: Router = 'topk_softmax') {
  const r = rng(seed);
  const { T, d, I, E, k } = c;
  const x = randn(r, T * d);
  const logits = randn(r, T * E, 2);
  const { ids, weights } = kernels.moeRoute({ logits, tokens: T, experts: E, k, router });
  // static input scales: x ~ N(0, 1) -> 3.5 / 127 (a few clamp); h from a float64 pass over every expert
  const xs = new Float32Array(E).map((_, e) => (3 + 0.1 * e) / 127);
  const gate = makeWeight(r, dts[0], E, I, d, 0.3, xs), up = makeWeight(r, dts[0], E, I, d, 0.3, xs);
  let hs: Float32Array | undefined;
  if (dts[1] === 'i8' || dts[1] === 'i4') {
    hs = new Float32Array(E);
    for (let e = 0; e < E; e++) {
      let mx = 0;
      for (let tt = 0; tt < Math.min(T, 16); tt++)
        for (let i = 0; i < I; i++) {
          let gs = 0, us = 0;
          for (let q = 0; q < d; q++) { gs += x[tt * d + q] * gate.eff[(e * I + i) * d + q]; us += x[tt * d + q] * up.eff[(e * I + i) * d + q]; }
          mx = Math.max(mx, Math.abs(silu(gs) * us));
        }
      hs[e] = Math.max(mx, 1e-3) * 0.8 / 127;
    }
  }
  const down = makeWeight(r, dts[1], E, d, I, 0.3, hs);
  return { x, logits, ids, weights, gate, up, down };
}

const base = (c: Case) => ({ tokens: c.T, hidden: c.d, intermediate: c.I, experts: c.E, k: c.k });

// ---------------------------------------------------------------- router

t.test('moeRoute: each router variant matches the float64 reference', (t) => {
  const r = rng(1);
  const variants: Array<[string, RouterOpts, number, number]> = [
    ['softmax_topk', { router: 'softmax_topk' }, 8, 2],
    ['softmax_topk E5 k3', { router: 'softmax_topk' }, 5, 3],
    ['topk_softmax', { router: 'topk_softmax' }, 8, 2],
    ['topk_softmax k1', { router: 'topk_softmax' }, 5, 1],
    ['sigmoid plain', { router: 'sigmoid_grouped' }, 8, 3],
    ['sigmoid grouped + bias + norm + scale', { router: 'sigmoid_grouped', nGroup: 4, topkGroup: 2, normTopkProb: true, routedScalingFactor: 2.5 }, 16, 3],
    ['sigmoid groups of 1', { router: 'sigmoid_grouped', nGroup: 8, topkGroup: 3, normTopkProb: true }, 8, 2],
    ['sigmoid grouped, no norm', { router: 'sigmoid_grouped', nGroup: 2, topkGroup: 1, routedScalingFactor: 0.5 }, 8, 4],
  ];
  for (const [name, o, E, k] of variants) {
    const T = 37, logits = randn(r, T * E, 2);
    const opts = { ...o, bias: o.router === 'sigmoid_grouped' && name.includes('bias') ? randn(r, E, 0.3) : undefined };
    const got = kernels.moeRoute({ logits, tokens: T, experts: E, k, ...opts });
    const ref = routeRef(logits, T, E, k, opts);
    t.same(Array.from(got.ids), Array.from(ref.ids), `${name}: ids`);
    let worst = 0;
    for (let i = 0; i < T * k; i++) worst = Math.max(worst, Math.abs(got.weights[i] - ref.weights[i]) / (1e-7 + 1e-6 * Math.abs(ref.weights[i])));
    t.ok(worst <= 1, `${name}: weights (worst err/tol ${worst.toPrecision(3)})`);
  }
  t.end();
});

t.test('moeRoute: ties go to the lowest expert (and group) index', (t) => {
  const route = (l: number[], E: number, k: number, o: RouterOpts) => {
    const res = kernels.moeRoute({ logits: new Float32Array(l), tokens: l.length / E, experts: E, k, ...o });
    return { ids: Array.from(res.ids), w: Array.from(res.weights) };
  };
  for (const router of ['softmax_topk', 'topk_softmax', 'sigmoid_grouped'] as const) {
    t.same(route([0, 0, 0, 0, 0], 5, 3, { router }).ids, [0, 1, 2], `${router}: all equal`);
    t.same(route([1, 3, 3, 2, 3, -1], 6, 2, { router }).ids, [1, 2], `${router}: three-way tie at the top`);
    t.same(route([5, 2, 2, 2, 1, 0], 6, 3, { router }).ids, [0, 1, 2], `${router}: tie below the top`);
  }
  const eq = route([0.5, 0.5, 0.5, 0.5], 4, 2, { router: 'topk_softmax' });
  t.same(eq.w, [0.5, 0.5], 'topk_softmax: equal logits give equal weights');
  // groups: [a b | c d | e f] — groups 1 and 2 tie on the top-2 sum, group 1 (lower) is kept
  const g = route([0, 0, 1, 1, 1, 1], 6, 2, { router: 'sigmoid_grouped', nGroup: 3, topkGroup: 1 });
  t.same(g.ids, [2, 3], 'sigmoid_grouped: tied groups -> the lower group');
  // the group score is the top-2 sum, not the max: group 0 has the single best expert, group 1 the best pair
  const g2 = route([3, -3, 2, 2], 4, 1, { router: 'sigmoid_grouped', nGroup: 2, topkGroup: 1 });
  t.same(g2.ids, [2], 'sigmoid_grouped: groups ranked by the sum of their top-2 scores');
  // bias moves the choice but not the weight
  const b = kernels.moeRoute({ logits: new Float32Array([1, 0]), tokens: 1, experts: 2, k: 1, router: 'sigmoid_grouped', bias: new Float32Array([0, 0.5]) });
  t.same(Array.from(b.ids), [1], 'sigmoid_grouped: the bias decides the choice');
  t.equal(b.weights[0], Math.fround(1 / (1 + Math.exp(0))), 'sigmoid_grouped: the weight is the unbiased sigmoid');
  t.end();
});

// ---------------------------------------------------------------- dispatch

const FLOAT_CASES: Case[] = [
  { T: 1, d: 40, I: 24, E: 8, k: 2 },
  { T: 3, d: 96, I: 130, E: 5, k: 3 },
  { T: 64, d: 40, I: 130, E: 8, k: 1 },
  { T: 257, d: 96, I: 24, E: 8, k: 2 },
  { T: 64, d: 96, I: 130, E: 5, k: 2 },
];

t.test('moe matches the float64 per-expert loop: f32 / f16 / bf16 experts, packed and separate gate/up, every ISA', (t) => {
  let seed = 100;
  for (const c of FLOAT_CASES) {
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      const p = problem(seed++, c, [dt, dt]);
      const packed = pack(p.gate, p.up, c.E);
      const ref = moeRef(p.x, c.T, c.d, c.I, c.k, p.ids, p.weights, p.gate, p.up, p.down);
      forEachIsa((isa) => {
        const sep = kernels.moe({ ...base(c), x: p.x, ids: p.ids, weights: p.weights, gate: p.gate.arg, up: p.up.arg, down: p.down.arg });
        check(t, sep, ref, `${JSON.stringify(c)} ${dt} separate ${isa}`);
        const pk = kernels.moe({ ...base(c), x: p.x, ids: p.ids, weights: p.weights, gateUp: packed.arg, down: p.down.arg });
        bitEqual(t, pk, sep, `${JSON.stringify(c)} ${dt} packed == separate ${isa}`);
      });
    }
  }
  t.end();
});

t.test('moe: every router through logits, and the route-then-dispatch reference end to end', (t) => {
  const c: Case = { T: 33, d: 40, I: 24, E: 8, k: 3 };
  let seed = 200;
  const routers: Array<[string, RouterOpts]> = [
    ['softmax_topk', { router: 'softmax_topk' }],
    ['topk_softmax', { router: 'topk_softmax' }],
    ['sigmoid_grouped', { router: 'sigmoid_grouped', nGroup: 4, topkGroup: 2, normTopkProb: true, routedScalingFactor: 1.5 }],
  ];
  for (const [name, o] of routers) {
    const p = problem(seed++, c, ['f32', 'f32']);
    const rr = routeRef(p.logits, c.T, c.E, c.k, o);
    const ref = moeRef(p.x, c.T, c.d, c.I, c.k, rr.ids, rr.weights, p.gate, p.up, p.down);
    forEachIsa((isa) => {
      const got = kernels.moe({ ...base(c), x: p.x, logits: p.logits, ...o, gate: p.gate.arg, up: p.up.arg, down: p.down.arg });
      check(t, got, ref, `${name} via logits ${isa}`);
      const route = kernels.moeRoute({ logits: p.logits, tokens: c.T, experts: c.E, k: c.k, ...o });
      const two = kernels.moe({ ...base(c), x: p.x, ...route, gate: p.gate.arg, up: p.up.arg, down: p.down.arg });
      bitEqual(t, got, two, `${name}: logits == moeRoute then moe ${isa}`);
    });
  }
  t.end();
});

t.test('moe: quantized experts (q8_0, q4_0, i8 W8A8, i4 W4A8, i4 W4A16) match the reference on dequantised weights', (t) => {
  let seed = 300;
  // q8_0 / q4_0 need d and I multiples of 32; i8 / i4 take any size
  const qCases: Case[] = [{ T: 3, d: 96, I: 64, E: 5, k: 2 }, { T: 64, d: 64, I: 160, E: 8, k: 3 }, { T: 1, d: 96, I: 64, E: 8, k: 1 }];
  const iCases: Case[] = [{ T: 3, d: 40, I: 130, E: 5, k: 2 }, { T: 64, d: 96, I: 24, E: 8, k: 3 }, { T: 257, d: 40, I: 24, E: 8, k: 2 }];
  const combos: Array<[Dt, Dt, Case[]]> = [
    ['q8_0', 'q8_0', qCases], ['q4_0', 'q4_0', qCases], ['q4_0', 'q8_0', qCases.slice(0, 1)],
    ['i8', 'i8', iCases], ['i4', 'i4', iCases], ['i4a16', 'i4a16', iCases], ['i8', 'bf16', iCases.slice(0, 1)],
  ];
  for (const [dg, dd, cases] of combos) {
    for (const c of cases) {
      const p = problem(seed++, c, [dg, dd]);
      const ref = moeRef(p.x, c.T, c.d, c.I, c.k, p.ids, p.weights, p.gate, p.up, p.down);
      const packed = pack(p.gate, p.up, c.E);
      const [pg, pu] = unpackEff(packed, c.E, c.I, c.d);
      const refP = moeRef(p.x, c.T, c.d, c.I, c.k, p.ids, p.weights, pg, pu, p.down);
      forEachIsa((isa) => {
        const got = kernels.moe({ ...base(c), x: p.x, ids: p.ids, weights: p.weights, gate: p.gate.arg, up: p.up.arg, down: p.down.arg });
        check(t, got, ref, `${JSON.stringify(c)} ${dg}/${dd} ${isa}`);
        const pk = kernels.moe({ ...base(c), x: p.x, ids: p.ids, weights: p.weights, gateUp: packed.arg, down: p.down.arg });
        check(t, pk, refP, `${JSON.stringify(c)} ${dg}/${dd} packed ${isa}`);
        bitEqual(t, pk, got, `${JSON.stringify(c)} ${dg}/${dd} packed == separate ${isa}`);
      });
    }
  }
  t.end();
});

t.test('moe is bitwise reproducible: 1 vs 2 threads, decode vs batched schedule, shared output added last', (t) => {
  const before = kernels.runtimeInfo().threads;
  let seed = 400;
  try {
    for (const [c, dts] of [
      [{ T: 257, d: 96, I: 130, E: 8, k: 2 }, ['f32', 'f32']],
      [{ T: 64, d: 40, I: 64, E: 5, k: 3 }, ['bf16', 'q8_0']],
      [{ T: 64, d: 64, I: 64, E: 8, k: 2 }, ['q4_0', 'i4']],
      [{ T: 3, d: 96, I: 24, E: 8, k: 2 }, ['i8', 'i8']],
    ] as Array<[Case, [Dt, Dt]]>) {
      const p = problem(seed++, c, dts);
      const shared = randn(rng(seed), c.T * c.d);
      const args = { ...base(c), x: p.x, ids: p.ids, weights: p.weights, gate: p.gate.arg, up: p.up.arg, down: p.down.arg };
      forEachIsa((isa) => {
        const outs: Float32Array[] = [];
        for (const threads of [1, 2]) {
          kernels.setThreads(threads);
          for (const algorithm of ['auto', 'decode', 'batched'] as const) outs.push(kernels.moe({ ...args, algorithm }));
        }
        for (let i = 1; i < outs.length; i++) bitEqual(t, outs[i], outs[0], `${JSON.stringify(c)} ${dts} run ${i} == run 0 ${isa}`);
        const withShared = kernels.moe({ ...args, shared });
        const want = new Float32Array(outs[0].length).map((v, i) => Math.fround(outs[0][i] + shared[i]));
        bitEqual(t, withShared, want, `${JSON.stringify(c)} ${dts} shared added last ${isa}`);
      });
    }
  } finally {
    kernels.setThreads(before);
  }
  t.end();
});

t.test('moe: SiLU·up in the epilogue of the gate / up products gives the separate pass\'s bits', (t) => {
  // Units of 17-64 rows take the few-row GEMM (every float format at AVX-512, f32 up to 32 rows at
  // AVX2), which computes silu(gate)·up in its epilogue (kernels/linear.h linear_swiglu);
  // swigluEpilogue: false forces the products into memory and the separate pass. I = 130 leaves
  // a partial tile; packed gateUp and separate gate / up both take it; 'q8' rounds the inputs first.
  let seed = 450;
  for (const [c, dt, rounding] of [
    [{ T: 64, d: 96, I: 130, E: 5, k: 2 }, 'f32', 'none'],
    [{ T: 40, d: 64, I: 48, E: 4, k: 2 }, 'f32', 'none'],
    [{ T: 64, d: 96, I: 130, E: 5, k: 2 }, 'bf16', 'none'],
    [{ T: 64, d: 64, I: 40, E: 5, k: 2 }, 'f16', 'none'],
    [{ T: 64, d: 64, I: 64, E: 5, k: 2 }, 'q8_0', 'q8'],
  ] as Array<[Case, Dt, 'none' | 'q8']>) {
    const p = problem(seed++, c, [dt, dt]);
    const packed = pack(p.gate, p.up, c.E);
    const ref = moeRef(p.x, c.T, c.d, c.I, c.k, p.ids, p.weights, p.gate, p.up, p.down);
    const counts = new Array(c.E).fill(0);
    for (const e of p.ids) counts[e]++;
    t.ok(counts.some((n) => n > 16 && n <= 32), `${JSON.stringify(c)}: some expert gets 17-32 rows (${counts})`);
    const args = { ...base(c), x: p.x, ids: p.ids, weights: p.weights, down: p.down.arg, inputRounding: rounding };
    forEachIsa((isa) => {
      const sep = kernels.moe({ ...args, gate: p.gate.arg, up: p.up.arg, swigluEpilogue: false });
      if (rounding === 'none') check(t, sep, ref, `${JSON.stringify(c)} ${dt} separate pass ${isa}`);
      bitEqual(t, kernels.moe({ ...args, gate: p.gate.arg, up: p.up.arg }), sep, `${JSON.stringify(c)} ${dt} ${rounding} epilogue (gate, up) == separate pass ${isa}`);
      bitEqual(t, kernels.moe({ ...args, gateUp: packed.arg }), sep, `${JSON.stringify(c)} ${dt} ${rounding} epilogue (gateUp) == separate pass ${isa}`);
    });
  }
  t.end();
});

t.test('moe: decode-sized calls give bitwise the batched result of the same tokens (GEMV rows are independent)', (t) => {
  // A token's result depends only on its own row while each expert sees <= 16 rows (the GEMV path):
  // one token at a time equals the 12-token call here (12 · k rows spread over 8 experts stay <= 16).
  const c: Case = { T: 12, d: 96, I: 130, E: 8, k: 2 };
  for (const dts of [['f32', 'f32'], ['q8_0', 'bf16'], ['i8', 'i4']] as Array<[Dt, Dt]>) {
    const cc = dts[0] === 'q8_0' ? { ...c, I: 128 } : c;
    const p = problem(500, cc, dts);
    forEachIsa((isa) => {
      const all = kernels.moe({ ...base(cc), x: p.x, ids: p.ids, weights: p.weights, gate: p.gate.arg, up: p.up.arg, down: p.down.arg, algorithm: 'batched' });
      for (let tk = 0; tk < cc.T; tk++) {
        const one = kernels.moe({
          ...base(cc), tokens: 1, x: p.x.slice(tk * cc.d, (tk + 1) * cc.d), ids: p.ids.slice(tk * cc.k, (tk + 1) * cc.k),
          weights: p.weights.slice(tk * cc.k, (tk + 1) * cc.k), gate: p.gate.arg, up: p.up.arg, down: p.down.arg,
        });
        bitEqual(t, one, all.slice(tk * cc.d, (tk + 1) * cc.d), `${dts} token ${tk} alone == in the batch ${isa}`);
      }
    });
  }
  t.end();
});

/**
 * The q8-rounded result composed per token from kernels.linear calls (GEMV path, rows layout,
 * inputRounding 'q8'), SiLU·mul and the weighted sum in float64, for q8_0 / q4_0 experts; mag
 * scaled so that check() allows 1e-5·mag (RTOL 2e-6 x 5): float32 summation of the k terms,
 * SiLU's float32 rounding, and the panel layout's block order.
 */
function q8Ref(p: ReturnType<typeof problem>, c: Case): Ref & { y: Float64Array; mag: Float64Array } {
  const rows = (w: EW, e: number, R: number, K: number) => {
    const a = w.arg as { data: Uint8Array; dtype: 'q8_0' | 'q4_0' };
    const per = R * (K / 32) * BLOCK_BYTES[a.dtype];
    return { data: a.data.subarray(e * per, (e + 1) * per), dtype: a.dtype };
  };
  const want = new Float64Array(c.T * c.d), mag = new Float64Array(c.T * c.d);
  for (let tk = 0; tk < c.T; tk++) {
    const x = p.x.slice(tk * c.d, (tk + 1) * c.d);
    for (let j = 0; j < c.k; j++) {
      const e = p.ids[tk * c.k + j], w = p.weights[tk * c.k + j];
      const lin = (xx: Float32Array, weight: ReturnType<typeof rows>, K: number, N: number) =>
        kernels.linear({ x: xx, weight, rows: 1, inFeatures: K, outFeatures: N, inputRounding: 'q8', algorithm: 'gemv' });
      const g = lin(x, rows(p.gate, e, c.I, c.d), c.d, c.I), u = lin(x, rows(p.up, e, c.I, c.d), c.d, c.I);
      const h = new Float32Array(c.I).map((_, i) => (g[i] / (1 + Math.exp(-g[i]))) * u[i]);
      const y = lin(h, rows(p.down, e, c.d, c.I), c.I, c.d);
      for (let i = 0; i < c.d; i++) {
        want[tk * c.d + i] += w * y[i];
        mag[tk * c.d + i] += Math.abs(w * y[i]);
      }
    }
  }
  return { y: want, mag: mag.map((m) => m * 5) };
}

// inputRounding 'q8' (the engine's rounding for q8_0 / q4_0 files): every
// product's input is quantized to int8 per 32 values, as kernels.linear does.
// Reference: the per-token composition of kernels.linear calls with the same
// rounding (GEMV path, as each unit here has <= 16 rows), SiLU·mul and the
// weighted sum in float64: equal up to float32 summation of the k terms and
// SiLU's float32 rounding (|err| <= 1e-5·mag + 1e-6). Without the rounding the
// result moves by far more, so the test would see the option ignored.
t.test("moe: inputRounding 'q8' rounds every expert product's input as kernels.linear does", (t) => {
  const c: Case = { T: 5, d: 64, I: 96, E: 6, k: 2 };
  for (const dts of [['q8_0', 'q8_0'], ['q4_0', 'q8_0']] as Array<[Dt, Dt]>) {
    const p = problem(560, c, dts);
    const ref = q8Ref(p, c);
    const want = ref.y, mag = ref.mag.map((m) => m / 5);
    forEachIsa((isa) => {
      for (const algorithm of ['decode', 'batched'] as const) {
        const args = { ...base(c), x: p.x, ids: p.ids, weights: p.weights, gate: p.gate.arg, up: p.up.arg, down: p.down.arg, algorithm };
        check(t, kernels.moe({ ...args, inputRounding: 'q8' }), ref, `${dts} q8 rounding ${algorithm} ${isa}`);
        const plain = kernels.moe(args);
        let moved = 0;
        for (let i = 0; i < plain.length; i++) moved = Math.max(moved, Math.abs(plain[i] - want[i]) / (1e-5 * mag[i] + 1e-6));
        t.ok(moved > 1, `${dts} without rounding the result differs (err/tol ${moved.toPrecision(3)}) ${algorithm} ${isa}`);
      }
    });
  }
  t.end();
});

/**
 * Experts in panels (weightLayout 'panels') at every level: against `ref` and bitwise
 * alike across 1 / 2 threads and the three schedules; the rows layout against `ref` too.
 * Callers restore the thread count.
 */
function panelsEverywhere(t: Test, args: Parameters<typeof kernels.moe>[0], ref: Ref, name: string): void {
  forEachIsa((isa) => {
    const outs: Float32Array[] = [];
    for (const threads of [1, 2]) {
      kernels.setThreads(threads);
      for (const algorithm of ['auto', 'decode', 'batched'] as const)
        outs.push(kernels.moe({ ...args, weightLayout: 'panels', algorithm }));
    }
    check(t, outs[0], ref, `${name} panels ${isa}`);
    for (let i = 1; i < outs.length; i++) bitEqual(t, outs[i], outs[0], `${name} panels run ${i} == run 0 ${isa}`);
    check(t, kernels.moe(args), ref, `${name} rows layout ${isa}`);
  });
}

t.test('moe: q8_0 / q4_0 experts in panels (as a loaded model reads them): every schedule and thread count alike', (t) => {
  // The engine packs q8_0 / q4_0 experts into panels at load (ggml_panels.h); whole models test
  // that path, this tests it alone: against the q8-rounded reference, bitwise across the
  // schedules and thread counts, for separate and packed gate / up, and against the rows layout.
  const before = kernels.runtimeInfo().threads;
  let seed = 640;
  try {
    for (const [c, dts, packed] of [
      [{ T: 1, d: 64, I: 96, E: 6, k: 3 }, ['q8_0', 'q8_0'], false],
      [{ T: 1, d: 96, I: 160, E: 8, k: 2 }, ['q4_0', 'q8_0'], true],
      [{ T: 3, d: 64, I: 64, E: 8, k: 2 }, ['q8_0', 'q4_0'], false],
      [{ T: 12, d: 64, I: 96, E: 8, k: 2 }, ['q8_0', 'q8_0'], true],
    ] as Array<[Case, [Dt, Dt], boolean]>) {
      const p = problem(seed++, c, dts);
      for (const w of [p.gate, p.up, p.down]) {
        const a = w.arg as { data: Uint8Array; dtype: string };
        if (a.dtype === 'q8_0') withoutMinus128(a.data);
      }
      const ref = q8Ref(p, c);
      const gu = packed ? { gateUp: pack(p.gate, p.up, c.E).arg } : { gate: p.gate.arg, up: p.up.arg };
      const args = { ...base(c), x: p.x, ids: p.ids, weights: p.weights, ...gu, down: p.down.arg, inputRounding: 'q8' as const };
      const name = `${JSON.stringify(c)} ${dts}${packed ? ' gateUp' : ''}`;
      panelsEverywhere(t, args, ref, name);
    }
  } finally {
    kernels.setThreads(before);
  }
  t.end();
});

t.test('moe: i8 / i4 experts with int8 inputs in panels (as a loaded quantized model reads them): every schedule and thread count alike', (t) => {
  // A quantized hybrid's experts are packed into panels at load (qweight_pack_panels), each
  // expert's scales reordered apart from the others' (the kernel's expert_scales table).
  const before = kernels.runtimeInfo().threads;
  let seed = 660;
  try {
    for (const [c, dts, packed] of [
      [{ T: 1, d: 40, I: 130, E: 5, k: 2 }, ['i8', 'i8'], false],
      [{ T: 1, d: 96, I: 24, E: 8, k: 3 }, ['i4', 'i4'], true],
      [{ T: 3, d: 40, I: 130, E: 6, k: 2 }, ['i4', 'i8'], false],
      [{ T: 33, d: 96, I: 24, E: 8, k: 2 }, ['i8', 'i4'], true],
    ] as Array<[Case, [Dt, Dt], boolean]>) {
      const p = problem(seed++, c, dts);
      const ref = moeRef(p.x, c.T, c.d, c.I, c.k, p.ids, p.weights, p.gate, p.up, p.down);
      const packedW = packed ? pack(p.gate, p.up, c.E) : undefined;
      const refP = packedW ? moeRef(p.x, c.T, c.d, c.I, c.k, p.ids, p.weights, ...unpackEff(packedW, c.E, c.I, c.d), p.down) : ref;
      const gu = packedW ? { gateUp: packedW.arg } : { gate: p.gate.arg, up: p.up.arg };
      const args = { ...base(c), x: p.x, ids: p.ids, weights: p.weights, ...gu, down: p.down.arg };
      const name = `${JSON.stringify(c)} ${dts}${packed ? ' gateUp' : ''}`;
      panelsEverywhere(t, args, refP, name);
    }
  } finally {
    kernels.setThreads(before);
  }
  t.end();
});

t.test('moe: edge sizes (0 tokens, k = E, one expert takes every token)', (t) => {
  const c: Case = { T: 0, d: 40, I: 24, E: 5, k: 2 };
  const p = problem(600, { ...c, T: 300 }, ['f32', 'f32']);
  t.equal(kernels.moe({ ...base(c), x: new Float32Array(0), ids: new Int32Array(0), weights: new Float32Array(0), gate: p.gate.arg, up: p.up.arg, down: p.down.arg }).length, 0, '0 tokens');
  const T = 300, ids = new Int32Array(T).fill(3), weights = new Float32Array(T).fill(0.75);
  const all = { ...c, T, k: 1 };
  const got = kernels.moe({ ...base(all), x: p.x, ids, weights, gate: p.gate.arg, up: p.up.arg, down: p.down.arg });
  check(t, got, moeRef(p.x, T, c.d, c.I, 1, ids, weights, p.gate, p.up, p.down), 'one expert, 300 rows (two chunks of at most 256)');
  const kE = { ...c, T: 4, k: 5 };
  const route = kernels.moeRoute({ logits: randn(rng(1), 4 * 5), tokens: 4, experts: 5, k: 5, router: 'softmax_topk' });
  const gotE = kernels.moe({ ...base(kE), x: p.x.slice(0, 4 * c.d), ...route, gate: p.gate.arg, up: p.up.arg, down: p.down.arg });
  check(t, gotE, moeRef(p.x, 4, c.d, c.I, 5, route.ids, route.weights, p.gate, p.up, p.down), 'k = E');
  t.end();
});

// ---------------------------------------------------------------- bad arguments

t.test('moeRoute / moe reject bad arguments, naming them', (t) => {
  const c: Case = { T: 2, d: 40, I: 24, E: 4, k: 2 };
  const p = problem(700, c, ['f32', 'f32']);
  const ok = { ...base(c), x: p.x, ids: p.ids, weights: p.weights, gate: p.gate.arg, up: p.up.arg, down: p.down.arg };
  const routeOk = { logits: p.logits, tokens: 2, experts: 4, k: 2, router: 'softmax_topk' as Router };
  t.doesNotThrow(() => kernels.moe(ok), 'valid call');
  const bad = (name: string, fn: () => unknown, cls: ErrorConstructor, re: RegExp) => t.throws(fn, { constructor: cls, message: re }, name);
  bad('k > E', () => kernels.moeRoute({ ...routeOk, k: 5 }), RangeError, /argument 'k'/);
  bad('k = 0', () => kernels.moe({ ...ok, k: 0 }), RangeError, /argument 'k'/);
  bad('unknown router', () => kernels.moeRoute({ ...routeOk, router: 'softmax' as Router }), TypeError, /argument 'router'/);
  bad('logits length', () => kernels.moeRoute({ ...routeOk, logits: new Float32Array(7) }), RangeError, /argument 'logits'/);
  bad('nGroup not dividing', () => kernels.moeRoute({ ...routeOk, router: 'sigmoid_grouped', nGroup: 3 }), RangeError, /argument 'nGroup'/);
  bad('topkGroup > nGroup', () => kernels.moeRoute({ ...routeOk, router: 'sigmoid_grouped', nGroup: 2, topkGroup: 3 }), RangeError, /argument 'topkGroup'/);
  bad('k > kept experts', () => kernels.moeRoute({ ...routeOk, k: 3, router: 'sigmoid_grouped', nGroup: 4, topkGroup: 2 }), RangeError, /argument 'k'/);
  bad('group options on softmax', () => kernels.moeRoute({ ...routeOk, nGroup: 2 }), TypeError, /argument 'nGroup'/);
  bad('bias length', () => kernels.moeRoute({ ...routeOk, router: 'sigmoid_grouped', bias: new Float32Array(3) }), RangeError, /argument 'bias'/);
  bad('expert id out of range', () => kernels.moe({ ...ok, ids: new Int32Array([0, 1, 2, 4]) }), RangeError, /argument 'ids'.*got 4/);
  bad('negative expert id', () => kernels.moe({ ...ok, ids: new Int32Array([0, -1, 2, 3]) }), RangeError, /argument 'ids'/);
  bad('ids not Int32Array', () => kernels.moe({ ...ok, ids: new Float32Array(4) as unknown as Int32Array }), TypeError, /argument 'ids'/);
  bad('weights length', () => kernels.moe({ ...ok, weights: new Float32Array(3) }), RangeError, /argument 'weights'/);
  bad('no routing', () => kernels.moe({ ...ok, ids: undefined as unknown as Int32Array }), TypeError, /argument 'ids'/);
  bad('logits and ids', () => kernels.moe({ ...ok, logits: p.logits, router: 'softmax_topk' } as kernels.MoeOptions), TypeError, /argument 'logits'/);
  bad('x length', () => kernels.moe({ ...ok, x: new Float32Array(79) }), RangeError, /argument 'x'/);
  bad('gate shape', () => kernels.moe({ ...ok, gate: new Float32Array(10) }), RangeError, /argument 'gate'/);
  bad('down missing', () => kernels.moe({ ...ok, down: undefined as unknown as Float32Array }), TypeError, /argument 'down'/);
  bad('gate without up', () => kernels.moe({ ...ok, up: undefined }), TypeError, /argument 'gateUp'/);
  bad('gateUp with gate', () => kernels.moe({ ...ok, gateUp: p.gate.arg }), TypeError, /argument 'gateUp'/);
  bad('gateUp shape', () => kernels.moe({ ...ok, gate: undefined, up: undefined, gateUp: p.gate.arg }), RangeError, /argument 'gateUp'/);
  bad('q8_0 rows not a multiple of 32', () => kernels.moe({ ...ok, down: { data: new Uint8Array(4 * 40 * BLOCK_BYTES.q8_0), dtype: 'q8_0' } }), RangeError, /argument 'down'.*multiple of 32/);
  {
    // weightLayout 'panels': q8_0 / q4_0 experts with 'q8' inputs only (a -128 quant cannot be
    // packed), i8 / i4 experts with int8 inputs only.
    const q: Case = { T: 1, d: 64, I: 32, E: 2, k: 1 };
    const qp = problem(701, q, ['q8_0', 'q8_0']);
    const qok = { ...base(q), x: qp.x, ids: qp.ids, weights: qp.weights, gate: qp.gate.arg, up: qp.up.arg, down: qp.down.arg };
    for (const w of [qp.gate, qp.up, qp.down]) withoutMinus128((w.arg as { data: Uint8Array }).data);
    t.doesNotThrow(() => kernels.moe({ ...qok, inputRounding: 'q8', weightLayout: 'panels' }), 'q8_0 experts in panels');
    bad('panels without q8 rounding', () => kernels.moe({ ...qok, weightLayout: 'panels' }), RangeError, /argument 'inputRounding'.*'q8'/);
    bad('panels of f32 experts', () => kernels.moe({ ...ok, inputRounding: 'q8', weightLayout: 'panels' }), TypeError, /argument 'weightLayout'.*q8_0, q4_0, i8 or i4/);
    const w16: Case = { T: 1, d: 40, I: 24, E: 3, k: 1 };
    const wp = problem(702, w16, ['i4a16', 'i4a16']);
    bad('panels of i4 experts with float inputs', () => kernels.moe({ ...base(w16), x: wp.x, ids: wp.ids, weights: wp.weights, gate: wp.gate.arg, up: wp.up.arg, down: wp.down.arg, weightLayout: 'panels' }),
      TypeError, /argument 'weightLayout'.*int8 inputs/);
    bad('unknown weightLayout', () => kernels.moe({ ...qok, inputRounding: 'q8', weightLayout: 'tiles' as 'rows' }), TypeError, /argument 'weightLayout'/);
    const down = (qp.down.arg as { data: Uint8Array }).data;
    down[40] = 0x80;
    bad('q8_0 quant of -128 in panels', () => kernels.moe({ ...qok, inputRounding: 'q8', weightLayout: 'panels' }), RangeError, /argument 'down'.*expert 0.*-128/);
  }
  bad('q8_0 byte length', () => kernels.moe({ ...ok, hidden: 64, x: new Float32Array(128), gate: { data: new Uint8Array(5), dtype: 'q8_0' } }), RangeError, /argument 'gate'.*bytes/);
  bad('unknown dtype', () => kernels.moe({ ...ok, gate: { data: new Uint8Array(5), dtype: 'q5_0' } as unknown as kernels.QuantData }), TypeError, /argument 'gateDtype'/);
  const q8 = quantizeI8(randn(rng(1), 4 * 24 * 40), 4 * 24, 40);
  const i8 = { dtype: 'i8' as const, data: q8.data, scales: q8.scales };
  bad('i8 without xScale', () => kernels.moe({ ...ok, gate: i8 }), TypeError, /argument 'gateXScale'/);
  bad('i8 xScale <= 0', () => kernels.moe({ ...ok, gate: { ...i8, xScale: new Float32Array([1, 0, 1, 1]) } }), RangeError, /argument 'gateXScale'/);
  bad('i8 scales length', () => kernels.moe({ ...ok, gate: { ...i8, scales: new Float32Array(3), xScale: new Float32Array(4).fill(0.1) } }), RangeError, /argument 'gateScales'/);
  bad('i8 as Uint8Array', () => kernels.moe({ ...ok, gate: { ...i8, data: new Uint8Array(q8.data.buffer), xScale: new Float32Array(4).fill(0.1) } }), TypeError, /argument 'gate'.*Int8Array/);
  bad('shared length', () => kernels.moe({ ...ok, shared: new Float32Array(3) }), RangeError, /argument 'shared'/);
  bad('algorithm', () => kernels.moe({ ...ok, algorithm: 'fast' as kernels.MoeAlgorithm }), TypeError, /argument 'algorithm'/);
  bad('router option without logits', () => kernels.moe({ ...ok, normTopkProb: true } as kernels.MoeOptions), TypeError, /argument 'normTopkProb'/);
  bad('tokens not an integer', () => kernels.moe({ ...ok, tokens: 1.5 }), TypeError, /argument 'tokens'/);
  t.end();
});
