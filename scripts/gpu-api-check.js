#!/usr/bin/env node
// The package's API on a GPU: every trained fixture of test/fixtures/trained/
// (Mamba-1, Mamba-2, the Granite 4.0-H-like hybrid) and its W8A8 / W4A8 /
// W4A16 quantizations (made here by quantize() from the fixtures'
// calibration text) loaded with device 'cuda' and with device 'cpu':
//   - the held-out window's perplexity on both (8192 bytes in one forward),
//   - greedy generation equal on both,
//   - 8 concurrent generations on the GPU equal 8 sequential ones,
//   - a GPU sequence's snapshot restored on the CPU and back, next step's
//     logits equal,
// and decode tokens/s through the JS API on both (tiny models: a measure of
// per-token overhead, not of the kernels). Needs a usable GPU and the addon
// built with CUDA (NODE_MAMBA_ADDON, a local -DNODE_MAMBA_CUDA=ON build, or
// the @node-mamba/<platform>-<arch>-cuda package); exits 1 on any failure,
// 2 when no GPU is usable. Run after `npm run build:ts`:
//   node scripts/gpu-api-check.js
'use strict';
const fs = require('node:fs'), os = require('node:os'), path = require('node:path');
const nm = require('../dist');
const ROOT = path.join(__dirname, '..', 'test', 'fixtures', 'trained');
const metrics = JSON.parse(fs.readFileSync(path.join(ROOT, 'metrics.json'), 'utf8'));
const heldout = fs.readFileSync(path.join(ROOT, 'heldout.txt'));
let failures = 0;
const check = (ok, msg) => { console.log(`${ok ? 'ok  ' : 'FAIL'} ${msg}`); if (!ok) failures++; };
function ppl(logits, ids, V) {
  let nll = 0;
  for (let t = 0; t < ids.length - 1; t++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[t * V + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[t * V + v] - max);
    nll += max + Math.log(sum) - logits[t * V + ids[t + 1]];
  }
  return Math.exp(nll / (ids.length - 1));
}
function rel(a, b) {
  let e = 0, s = 0;
  for (let i = 0; i < a.length; i++) { e = Math.max(e, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
  return e / s;
}
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
async function timedDecode(model, steps) {
  const s = await model.createSequence();
  await s.prefill(Buffer.from('ROMEO:\n'));
  let tok = 32;
  for (let i = 0; i < 8; i++) tok = await s.stepGreedy(tok);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) tok = await s.stepGreedy(tok);
  const t = ms(t0);
  await s.dispose();
  return steps / (t / 1000);
}
async function compare(label, dir, hybrid, quantized) {
  const opts = hybrid ? { contextSize: 8192, kvCacheType: 'f32' } : {};
  const cpu = await nm.loadModel(dir, { ...opts, device: 'cpu' });
  const gpu = await nm.loadModel(dir, { ...opts, device: 'cuda' });
  check(gpu.device === 'cuda', `${label}: loaded on ${gpu.device} (${gpu.deviceReason})`);
  const window = new Uint8Array(heldout.subarray(0, 8192));
  let t0 = process.hrtime.bigint();
  const lc = await cpu.forward(window);
  const tc = ms(t0);
  await gpu.forward(window);
  t0 = process.hrtime.bigint();
  const lg = await gpu.forward(window);
  const tg = ms(t0);
  const pc = ppl(lc, window, 256), pg = ppl(lg, window, 256);
  const base = metrics.models[path.basename(dir).replace(/-w(8a8|4a8|4a16)$/, '')].pytorch_window_ppl;
  const tol = quantized ? 2e-3 : 2e-4;
  check(Math.abs(pg - pc) / pc <= tol,
    `${label}: 8192-byte window perplexity GPU ${pg.toFixed(5)} CPU ${pc.toFixed(5)} (PyTorch float ${base.toFixed(5)}), ` +
    `logits max rel diff ${rel(lg, lc).toExponential(2)}; forward 8192 tokens CPU ${tc.toFixed(0)} ms GPU ${tg.toFixed(1)} ms`);
  const g = { maxTokens: 48, temperature: 0, stopAtEos: false };
  const a = await cpu.complete('ROMEO:\n', g), b = await gpu.complete('ROMEO:\n', g);
  check(a === b, `${label}: greedy 48 bytes equal: ${JSON.stringify(b.slice(0, 48))}` + (a === b ? '' : ` vs CPU ${JSON.stringify(a)}`));
  const prompts = ['ROMEO:\n', 'JULIET:\n', 'KING HENRY:\n', 'First Citizen:\n', 'To be, or ', 'O, ', 'MENENIUS:\n', 'What '];
  const seq = [];
  for (const p of prompts) seq.push(await gpu.complete(p, g));
  const conc = await Promise.all(prompts.map((p) => gpu.complete(p, g)));
  const agree = conc.filter((c, i) => c === seq[i]).length;
  check(agree === prompts.length, `${label}: 8 concurrent generations on the GPU equal 8 sequential ones (${agree}/8)`);
  const s = await gpu.createSequence();
  await s.prefill(Buffer.from('To be, or not to be'));
  const snap = await s.snapshot();
  const c = await cpu.createSequence();
  await c.restore(snap);
  const x = await s.step(44), y = await c.step(44);
  const r = rel(x, y);
  check(r <= (quantized ? 1e-2 : 1e-4), `${label}: GPU snapshot (${snap.length} bytes) restored on the CPU, next step's logits max rel diff ${r.toExponential(2)}`);
  const back = await c.snapshot();
  const s2 = await gpu.createSequence();
  await s2.restore(back);
  const z = await s2.step(44), w = await c.step(44);
  check(rel(z, w) <= (quantized ? 1e-2 : 1e-4), `${label}: and back from the CPU onto the GPU (${rel(z, w).toExponential(2)})`);
  for (const q of [s, c, s2]) await q.dispose();
  const dc = await timedDecode(cpu, 128), dg = await timedDecode(gpu, 256);
  console.log(`     ${label}: decode b1 CPU ${dc.toFixed(0)} tok/s, GPU ${dg.toFixed(0)} tok/s (through the JS API, one token per await)`);
  cpu.dispose();
  gpu.dispose();
}
async function quantizeFixtures(out) {
  const calibration = fs.readFileSync(path.join(ROOT, 'calibration.txt'), 'utf8');
  for (const dir of ['mamba1-bytes', 'mamba2-bytes', 'granite-bytes'])
    for (const scheme of ['w8a8', 'w4a8', 'w4a16'])
      await nm.quantize({ model: path.join(ROOT, dir), output: path.join(out, `${dir}-${scheme}`), scheme, calibration,
        samples: 16, sequenceLength: 512 });
}
let quantized = '';
(async () => {
  const info = nm.kernels.runtimeInfo();
  console.log(`addon ${info.addonPath} (${info.addonSource}); cuda ${JSON.stringify(info.cuda)}`);
  if (!info.cuda.usable) {
    console.log(`gpu-api-check: no usable GPU: ${info.cuda.reason}`);
    process.exit(2);
  }
  quantized = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-gpu-api-'));
  process.on('exit', () => fs.rmSync(quantized, { recursive: true, force: true }));
  const t0 = process.hrtime.bigint();
  await quantizeFixtures(quantized);
  console.log(`quantized the fixtures (W8A8, W4A8, W4A16) in ${ms(t0).toFixed(0)} ms`);
  const auto = await nm.loadModel(path.join(ROOT, 'mamba1-bytes'), { device: 'auto' });
  check(auto.device === 'cuda', `device 'auto' -> ${auto.device}: ${auto.deviceReason}`);
  auto.dispose();
  for (const dir of ['mamba1-bytes', 'mamba2-bytes', 'granite-bytes']) {
    const hybrid = dir.startsWith('granite');
    for (const v of ['', '-w8a8', '-w4a8', '-w4a16']) {
      const d = v ? path.join(quantized, dir + v) : path.join(ROOT, dir);
      try {
        await compare(dir + v, d, hybrid, v !== '');
      } catch (e) {
        check(false, `${dir + v}: ${e && e.stack || e}`);
      }
    }
  }
  console.log(failures ? `gpu-api-check: ${failures} FAILED` : 'gpu-api-check: all passed');
  process.exit(failures ? 1 : 0);
})();
