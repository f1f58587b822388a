#!/usr/bin/env node
// qlinear alone at decode and prefill row counts: 24 distinct weights of one
// shape (so that they come from DRAM, as in a model), ms per call (median of
// 7 passes), weight GB/s and GOP/s (2 ops per multiply-add).
//
//   node bench/profile_qlinear.js [K=768] [N=3072] [M list=1,8,64,512] [w8a8|w4a8|w4a16] [--panels]
// NODE_MAMBA_ISA=avx2 forces a lower level. --panels: the weights packed once
// into the panel layout a loaded model uses (W8A8 / W4A8), as the engine
// reads them; without it, the stored row layout.
'use strict';
const C = require('./common');

const { kernels } = C.requireDist();
const { quantizeI8, quantizeI4 } = require('../dist/quant/formats');
const argv = process.argv.filter((a) => a !== '--panels'), panels = process.argv.includes('--panels');
const K = Number(argv[2]) || 768, N = Number(argv[3]) || 3072, L = 24;
const Ms = (argv[4] || '1,8,64,512').split(',').map(Number);
const scheme = argv[5] || 'w8a8';
if (panels && scheme === 'w4a16') throw new Error('--panels: the panel layout is for int8 inputs (w8a8, w4a8)');
const r = C.rng(1);
const ws = [];
for (let l = 0; l < L; l++) {
  const w = new Float32Array(N * K);
  for (let i = 0; i < w.length; i++) w[i] = (r() - 0.5) * 0.2;
  const q = scheme === 'w8a8' ? quantizeI8(w, N, K) : quantizeI4(w, N, K);
  ws.push(panels ? kernels.qlinearPackPanels({ weight: q, outFeatures: N, inFeatures: K }) : q);
}
const layout = panels ? { weightLayout: 'panels' } : {};
const xScale = scheme === 'w4a16' ? 0 : 3 / 127;
for (const M of Ms) {
  const x = new Float32Array(M * K);
  for (let i = 0; i < x.length; i++) x[i] = (r() - 0.5) * 4;
  const times = [];
  for (let it = 0; it < 7; it++) {
    const t0 = C.now();
    for (let l = 0; l < L; l++) kernels.qlinear({ x, xScale, weight: ws[l], rows: M, inFeatures: K, outFeatures: N, ...layout });
    times.push((C.now() - t0) / L);
  }
  const ms = C.median(times) * 1e3;
  console.log(`${scheme}${panels ? ' panels' : ''} ${kernels.runtimeInfo().isa} M=${M} K=${K} N=${N}: ${ms.toFixed(3)} ms/call  ` +
    `${(ws[0].data.byteLength / ms / 1e6).toFixed(1)} GB/s  ${((2 * M * N * K) / ms / 1e6).toFixed(1)} GOP/s`);
}
