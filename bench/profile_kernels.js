#!/usr/bin/env node
// Where a batch-1 decode step of mamba-130m (f32) spends its time, kernel by
// kernel: the step's kernels are called through the public `kernels` API at
// decode shapes, each layer with its OWN weights (24 layers' worth, as in the
// model, so that nothing stays in the 32 MB L3 between tokens), and timed.
// The JS calls add their own overhead (argument checks, new output arrays, and
// the state-update kernels copy the state pool they are given), which the
// engine does not pay: the small kernels' times here are upper bounds.
//
//   node bench/profile_kernels.js [tokens=20] [--threads N] [--dtype f32|bf16|f16]
'use strict';
const C = require('./common');

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const tokens = Number(args.find((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--'))) || 20);
const dtype = opt('--dtype', 'f32');
const { kernels } = C.requireDist();
if (opt('--threads')) kernels.setThreads(Number(opt('--threads')));

const d = 768, L = 24, di = 2 * d, N = 16, R = 48, K = 4, V = 50280, xdim = R + 2 * N;
const r = C.rng(5);
const f32 = (n, s = 1) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = (r() - 0.5) * s; return a; };
const half = (a) => {
  if (dtype === 'f32') return a;
  const u = new Uint16Array(a.length), v = new Float32Array(1), b = new Uint32Array(v.buffer);
  for (let i = 0; i < a.length; i++) { v[0] = a[i]; u[i] = b[0] >>> 16; }  // bf16 truncation; f16 bits are just as many bytes
  return { data: u, dtype };
};
const bytesPer = dtype === 'f32' ? 4 : 2;

const layers = Array.from({ length: L }, () => ({
  norm: f32(d, 0.1).map((x) => 1 + x),
  inProj: half(f32(2 * di * d, 2 / Math.sqrt(d))),
  convW: f32(di * K), convB: f32(di),
  xProj: half(f32(xdim * di, 2 / Math.sqrt(di))),
  dtProj: half(f32(di * R, 2 / Math.sqrt(R))), dtBias: f32(di, 0.1).map((x) => x - 4),
  A: f32(di * N).map((x) => -1 - 10 * Math.abs(x)), D: f32(di),
  outProj: half(f32(d * di, 2 / Math.sqrt(di))),
  convState: f32(di * (K - 1)), ssmState: new Float32Array(di * N),
}));
const lmHead = half(f32(V * d, 2 / Math.sqrt(d)));
const normF = f32(d, 0.1).map((x) => 1 + x);

const T = {};
const time = (name, fn) => { const t0 = C.now(); const v = fn(); T[name] = (T[name] || 0) + (C.now() - t0); return v; };

function step(hIn) {
  let h = hIn, residual;
  for (let l = 0; l < L; l++) {
    const w = layers[l];
    const n = time('rmsNorm', () => kernels.rmsNorm({ x: h, residual, weight: w.norm, rows: 1, dim: d, eps: 1e-5 }));
    residual = n.residual;
    const xz = time('linear in_proj', () => kernels.linear({ x: n.out, weight: w.inProj, rows: 1, inFeatures: d, outFeatures: 2 * di }));
    const x = xz.subarray(0, di), z = xz.subarray(di);
    const cv = time('causalConv1dUpdate', () => kernels.causalConv1dUpdate({ x, convState: w.convState, weight: w.convW, bias: w.convB, batch: 1, channels: di, width: K, activation: 'silu' }));
    w.convState = cv.convState;
    const xdbl = time('linear x_proj', () => kernels.linear({ x: cv.out, weight: w.xProj, rows: 1, inFeatures: di, outFeatures: xdim }));
    const dt = time('linear dt_proj', () => kernels.linear({ x: xdbl.subarray(0, R), weight: w.dtProj, rows: 1, inFeatures: R, outFeatures: di }));
    const su = time('selectiveStateUpdate', () => kernels.selectiveStateUpdate({
      state: w.ssmState, x: cv.out, dt, A: w.A, B: xdbl.subarray(R, R + N), C: xdbl.subarray(R + N), D: w.D, z, dtBias: w.dtBias,
      dtSoftplus: true, batch: 1, dim: di, dstate: N,
    }));
    w.ssmState = su.state;
    h = time('linear out_proj', () => kernels.linear({ x: su.out, weight: w.outProj, rows: 1, inFeatures: di, outFeatures: d }));
  }
  const nf = time('rmsNorm', () => kernels.rmsNorm({ x: h, residual, weight: normF, rows: 1, dim: d, eps: 1e-5 }));
  return time('linear lm_head', () => kernels.linear({ x: nf.out, weight: lmHead, rows: 1, inFeatures: d, outFeatures: V }));
}

const bytes = {
  'linear in_proj': L * 2 * di * d * bytesPer, 'linear x_proj': L * xdim * di * bytesPer,
  'linear dt_proj': L * di * R * bytesPer, 'linear out_proj': L * d * di * bytesPer, 'linear lm_head': V * d * bytesPer,
};
let h = f32(d);
for (let i = 0; i < 3; i++) h = step(h).subarray(0, d).slice();  // warm-up
for (const k of Object.keys(T)) delete T[k];
const t0 = C.now();
for (let i = 0; i < tokens; i++) { const lg = step(h); h = lg.subarray(0, d).map((x) => x * 0.01); }
const total = (C.now() - t0) / tokens;
const bw = kernels.measureReadBandwidth({ bytes: 512 << 20, repeats: 5 });
const rows = Object.entries(T).sort((a, b) => b[1] - a[1]).map(([k, v]) => ({
  kernel: k, msPerToken: +(1e3 * v / tokens).toFixed(3), share: +((v / tokens) / total).toFixed(3),
  ...(bytes[k] ? { MBPerToken: +(bytes[k] / 1e6).toFixed(1), GBps: +(bytes[k] / (v / tokens) / 1e9).toFixed(1) } : {}),
}));
console.log(JSON.stringify({ dtype, threads: kernels.runtimeInfo().threads, tokens, msPerToken: +(1e3 * total).toFixed(2),
  readBandwidthBestGBps: +bw.bestGBps.toFixed(1), readBandwidthMedianGBps: +bw.medianGBps.toFixed(1) }));
console.table(rows);
