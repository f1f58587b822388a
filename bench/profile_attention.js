#!/usr/bin/env node
// Speed of the attention kernels at hybrid-model shapes, through the public
// `kernels` API (build dist/ first: npx tsc -p tsconfig.json). The JS calls
// copy the caches kvCacheAppend returns; pagedAttention and rope times are the
// kernel plus argument checks.
//
//   node bench/profile_attention.js [--threads N] [--dtype f32|f16] [--heads 32] [--kv-heads 8] [--head-dim 128]
'use strict';
const C = require('./common');

const opt = C.option;
const { kernels } = C.requireDist();
if (opt('--threads')) kernels.setThreads(Number(opt('--threads')));
const dtype = opt('--dtype', 'f32');
const H = Number(opt('--heads', 32)), Hk = Number(opt('--kv-heads', 8)), D = Number(opt('--head-dim', 128));
const pageSize = 16;
const r = C.rng(1);
const f32 = (n) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = r() - 0.5; return a; };

function cacheFor(len) {
  const maxPages = Math.ceil(len / pageSize), numPages = maxPages;
  const n = numPages * pageSize * Hk * D;
  const mk = () => (dtype === 'f16' ? { data: new Uint16Array(n), dtype: 'f16' } : new Float32Array(n));
  const blockTable = Int32Array.from({ length: maxPages }, (_, i) => maxPages - 1 - i);
  const shape = { numPages, pageSize, nKvHeads: Hk, headDim: D, maxPagesPerSeq: maxPages, blockTable };
  const filled = kernels.kvCacheAppend({
    ...shape, kCache: mk(), vCache: mk(), k: f32(len * Hk * D), v: f32(len * Hk * D),
    cuSeqlens: Int32Array.of(0, len), tokens: len, startPos: Int32Array.of(0),
  });
  return { ...shape, kCache: filled.kCache, vCache: filled.vCache };
}

function best(fn, reps) {
  let b = Infinity;
  for (let i = 0; i < reps; i++) { const t0 = C.now(); fn(); b = Math.min(b, C.now() - t0); }
  return b;
}

const info = kernels.runtimeInfo();
console.log(`attention kernels: H ${H}, Hk ${Hk}, D ${D}, page ${pageSize}, cache ${dtype}, isa ${info.isa}, threads ${info.threads}`);
for (const T of [512, 2048]) {
  const c = cacheFor(T);
  const q = f32(T * H * D);
  const s = best(() => kernels.pagedAttention({ ...c, q, nHeads: H, cuSeqlens: Int32Array.of(0, T), tokens: T, kvLens: Int32Array.of(T) }), 3);
  const flops = 4 * H * D * (T * (T + 1)) / 2;  // q·k and p·v over the causal triangle
  console.log(`prefill ${T}: ${(s * 1e3).toFixed(1)} ms, ${(flops / s / 1e9).toFixed(1)} GFLOP/s`);
}
for (const L of [512, 4096, 16384]) {
  const c = cacheFor(L);
  const bytes = 2 * L * Hk * D * (dtype === 'f16' ? 2 : 4);
  for (const B of [1, 8]) {
    // B sequences sharing one cache (same block table row each): decode reads B·L positions.
    const bt = new Int32Array(B * c.maxPagesPerSeq);
    for (let b = 0; b < B; b++) bt.set(c.blockTable, b * c.maxPagesPerSeq);
    const cu = Int32Array.from({ length: B + 1 }, (_, i) => i);
    const q = f32(B * H * D);
    const s = best(() => kernels.pagedAttention({ ...c, blockTable: bt, q, nHeads: H, cuSeqlens: cu, tokens: B, kvLens: new Int32Array(B).fill(L) }), 10);
    console.log(`decode kv ${L} batch ${B}: ${(s * 1e6).toFixed(0)} us, ${(B * bytes / s / 1e9).toFixed(1)} GB/s of K/V`);
  }
}
const T = 2048, x = f32(T * H * D), positions = Int32Array.from({ length: T }, (_, i) => i);
const sr = best(() => kernels.rope({ x, positions, tokens: T, nHeads: H, headDim: D, theta: 10000 }), 5);
console.log(`rope ${T} tokens: ${(sr * 1e3).toFixed(2)} ms`);
