#!/usr/bin/env node
// Mixture-of-experts dispatch (kernels.moe) against the naive per-expert loop
// (for every token, for each of its k experts: gate, up and down as three
// kernels.linear calls, SiLU·mul and the weighted sum in JS), on the same
// random weights and routing, at 1, 8, 64 and 512 tokens; with the machine's
// limits: the read bandwidth (for the weight bytes each call must read at
// least once) and the f32 FMA peak measured by kernels.linear on a large GEMM.
// Build dist/ first (npx tsc -p tsconfig.json).
//
//   node bench/moe.js [--threads N] [--dtype f32|bf16] [--hidden 1536] [--intermediate 512] [--experts 64] [--k 6]
'use strict';
const C = require('./common');

const opt = C.option;
const { kernels } = C.requireDist();
if (opt('--threads')) kernels.setThreads(Number(opt('--threads')));
const dtype = opt('--dtype', 'bf16');
// Default shape: Granite-4.0-H-Tiny's MoE (d 1536, I 512, 64 experts, top-6).
const d = Number(opt('--hidden', 1536)), I = Number(opt('--intermediate', 512)), E = Number(opt('--experts', 64)), k = Number(opt('--k', 6));
const r = C.rng(7);
const f32 = (n, s = 1) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = (r() - 0.5) * s; return a; };
const toBf16 = (a) => { const u = new Uint32Array(a.buffer, a.byteOffset, a.length), o = new Uint16Array(a.length); for (let i = 0; i < a.length; i++) o[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16; return o; };
const weight = (n, s) => (dtype === 'bf16' ? { data: toBf16(f32(n, s)), dtype: 'bf16' } : f32(n, s));
const gateUp = weight(E * 2 * I * d, 0.05), down = weight(E * d * I, 0.05);
const bytesPer = dtype === 'bf16' ? 2 : 4;
// One expert's matrices as kernels.linear weights (views, no copies).
const view = (w, off, n) => (dtype === 'bf16' ? { data: w.data.subarray(off, off + n), dtype: 'bf16' } : w.subarray(off, off + n));
const expertGate = (e) => view(gateUp, e * 2 * I * d, I * d);
const expertUp = (e) => view(gateUp, e * 2 * I * d + I * d, I * d);
const expertDown = (e) => view(down, e * d * I, d * I);

function naive(x, T, ids, w) {
  const out = new Float32Array(T * d), h = new Float32Array(I);
  for (let t = 0; t < T; t++) {
    const xt = x.subarray(t * d, (t + 1) * d);
    for (let j = 0; j < k; j++) {
      const e = ids[t * k + j];
      const g = kernels.linear({ x: xt, weight: expertGate(e), rows: 1, inFeatures: d, outFeatures: I, inputRounding: 'none' });
      const u = kernels.linear({ x: xt, weight: expertUp(e), rows: 1, inFeatures: d, outFeatures: I, inputRounding: 'none' });
      for (let i = 0; i < I; i++) h[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
      const y = kernels.linear({ x: h, weight: expertDown(e), rows: 1, inFeatures: I, outFeatures: d, inputRounding: 'none' });
      const wt = w[t * k + j];
      for (let i = 0; i < d; i++) out[t * d + i] += wt * y[i];
    }
  }
  return out;
}

/** Median seconds of repeated calls within a time budget (at least 3). */
function timed(fn, budgetMs) {
  const ts = [];
  const t0 = C.now();
  do { const t = C.now(); fn(); ts.push(C.now() - t); } while (ts.length < 3 || (C.now() - t0) * 1e3 < budgetMs);
  return C.median(ts);
}

const info = kernels.runtimeInfo();
const bw = kernels.measureReadBandwidth({ bytes: 256 << 20, repeats: 5 }).bestGBps;
// f32 GEMM peak as the arithmetic limit: a 512 x 2048 x 2048 product.
const gx = f32(512 * 2048), gw = f32(2048 * 2048);
const gemmS = timed(() => kernels.linear({ x: gx, weight: gw, rows: 512, inFeatures: 2048, outFeatures: 2048 }), 1500);
const peak = (2 * 512 * 2048 * 2048) / gemmS / 1e9;
console.log(`moe: ${info.isa}, ${info.threads} threads; d ${d}, I ${I}, E ${E}, top-${k}, ${dtype} experts; read bandwidth ${bw.toFixed(1)} GB/s, f32 GEMM ${peak.toFixed(1)} GFLOP/s`);
console.log('medians; experts read: distinct experts per call (median of 16 routings)');
console.log('tokens   dispatch ms   naive ms   naive/dispatch   experts read   dispatch GB/s (of bandwidth)   dispatch GFLOP/s (of GEMM)');
for (const T of [1, 8, 64, 512]) {
  const x = f32(T * d, 2);
  // Several routings, cycled, so that repeated calls do not find their experts in the cache
  // (all experts' weights are larger than the L3).
  const routes = Array.from({ length: 16 }, () => kernels.moeRoute({ logits: f32(T * E, 4), tokens: T, experts: E, k, router: 'topk_softmax' }));
  let next = 0;
  const route = routes[0];
  const used = C.median(routes.map((q) => new Set(q.ids).size));
  const run = (q) => kernels.moe({ x, tokens: T, hidden: d, intermediate: I, experts: E, k, ids: q.ids, weights: q.weights, gateUp, down });
  const dispatch = () => run(routes[next++ % routes.length]);
  const a = run(route), b = naive(x, T, route.ids, route.weights);
  let err = 0, scale = 0;
  for (let i = 0; i < a.length; i++) { err = Math.max(err, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
  if (!(err <= 1e-3 * scale + 1e-6)) throw new Error(`dispatch and naive loop disagree at ${T} tokens: ${err} of ${scale}`);
  const td = timed(dispatch, 1500);
  const tn = timed(() => { const q = routes[next++ % routes.length]; naive(x, T, q.ids, q.weights); }, T >= 64 ? 1 : 1500);
  const bytes = used * 3 * I * d * bytesPer, flops = 2 * T * k * 3 * I * d;
  console.log(`${String(T).padStart(6)}   ${(td * 1e3).toFixed(2).padStart(11)}   ${(tn * 1e3).toFixed(1).padStart(8)}   ${(tn / td).toFixed(2).padStart(14)}   ${String(used).padStart(12)}   ` +
    `${(bytes / td / 1e9).toFixed(1).padStart(13)} (${(100 * bytes / td / 1e9 / bw).toFixed(0)}%)   ${(flops / td / 1e9).toFixed(1).padStart(20)} (${(100 * flops / td / 1e9 / peak).toFixed(0)}%)`);
}
