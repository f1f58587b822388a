// A decode step whose pool worker stalls (csrc/cpu/threadpool.h
// run_recomputable, kernels/qlinear_rows.h): the calling thread computes a
// range the worker holds again instead of waiting for it, and the logits are
// those of a run without stalls, bit for bit (W8A8 rows with int8 inputs,
// Q8_0 GGUF panels, at batch 1 and 3; Mamba-1, Mamba-2 and Granite, whose
// batch-1 steps also run products in the background: runtimeInfo's
// backgroundProducts). A model disposed while a stalled
// worker still computes a range of its weights waits for it (under the
// sanitizer run, a read of freed weights fails the child).
//
// The stall is the pool's test hook NODE_MAMBA_TEST_STALL_US="every,us": in
// every `every`-th such call the caller leaves the first range to a worker,
// which sleeps `us` microseconds holding it. It is read once per process, so
// the stalled runs are children.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, quantize } from '../../lib';
import { graniteTinyPreset, writeRandomHybridCheckpoint } from '../../lib/testing/random_hybrid_checkpoint';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';
import { writeTinyTokenizer } from '../helpers/gguf_fixtures';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-stall-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const dist = path.resolve(__dirname, '..', '..', 'dist', 'index.js');

// Wide enough that every product splits into several ranges (a product of
// one range runs on the calling thread alone): d_inner 512, in_proj 1024 rows.
const V = 2048;  // (also graniteTinyPreset's at scale 4)
const floatDir = path.join(root, 'float');
writeRandomCheckpoint(floatDir, { arch: 'mamba', dModel: 256, nLayer: 2, vocabSize: V, dtype: 'f32', tied: true, dialect: 'hf', seed: 5 });
writeTinyTokenizer(floatDir); // (byte-level BPE, 263 tokens: exportGguf writes it)
// Mamba-2: at batch 1 in_proj's z rows run behind the conv and the state
// update (a detached call: engine/backend.h BackgroundProduct), as Mamba-1's
// z half does behind its conv and x_proj.
const float2Dir = path.join(root, 'float2');
writeRandomCheckpoint(float2Dir, {
  arch: 'mamba2', dModel: 256, nLayer: 2, vocabSize: V, dtype: 'f32', tied: true, dialect: 'hf', headdim: 32, dState: 32, seed: 6,
});
// Granite 4.0-H (4 Mamba-2 layers, 2 attention, a MoE with a shared MLP in
// each of the 6): at batch 1 the shared MLP's gate product also runs behind
// the router.
const graniteDir = path.join(root, 'granite');
writeRandomHybridCheckpoint(graniteDir, graniteTinyPreset({ scale: 4, seed: 7 }));

function tokensFor(n: number, seed: number): number[] {
  const out: number[] = [];
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out.push(s % V);
  }
  return out;
}

interface ChildOut {
  digest: string;
  first: string;  // sequence 0's rows only
  recomputed: number;
  background: number;
  threads: number;
}

// In a child: prefill, then `steps` logits steps of `batch` sequences (each
// fed its own argmax); the SHA-256 of every step's logits in order.
function decodeInChild(model: string, batch: number, steps: number, stall?: string): ChildOut {
  const code = `(async () => {
    const { loadModel, kernels } = require(${JSON.stringify(dist)});
    const crypto = require('crypto');
    const m = await loadModel(${JSON.stringify(model)});
    const seqs = [];
    const toks = new Int32Array(${batch});
    for (let b = 0; b < ${batch}; b++) {
      const s = await m.createSequence();
      seqs.push(s);
      const prompt = Array.from({ length: 12 }, (_, i) => (i * 131 + b * 17) % ${V});
      await s.prefill(prompt);
      toks[b] = (b * 7 + 3) % ${V};
    }
    const nm = m.nativeModel();
    const slots = Int32Array.from(seqs.map((s) => s.slot));
    const h = crypto.createHash('sha256'), h0 = crypto.createHash('sha256');
    for (let i = 0; i < ${steps}; i++) {
      const l = await nm.step(slots, toks);
      h.update(Buffer.from(l.buffer, l.byteOffset, l.byteLength));
      h0.update(Buffer.from(l.buffer, l.byteOffset, ${V} * 4));
      for (let b = 0; b < ${batch}; b++) {
        let best = 0;
        for (let j = 1; j < ${V}; j++) if (l[b * ${V} + j] > l[b * ${V} + best]) best = j;
        toks[b] = best;
      }
    }
    for (const s of seqs) await s.dispose();
    m.dispose();
    const info = kernels.runtimeInfo();
    process.stdout.write(JSON.stringify({ digest: h.digest('hex'), first: h0.digest('hex'), recomputed: info.recomputedRanges, background: info.backgroundProducts, threads: info.threads }));
  })().catch((e) => { console.error(e); process.exit(1); });`;
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_MAMBA_THREADS: '2' };
  delete env.NODE_MAMBA_TEST_STALL_US;
  if (stall) env.NODE_MAMBA_TEST_STALL_US = stall;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env, maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ChildOut;
}

t.test('stalled workers: the caller computes their ranges again, and the logits do not change', async (t) => {
  const w8a8 = path.join(root, 'w8a8');
  await quantize({ model: floatDir, output: w8a8, scheme: 'w8a8', calibration: [tokensFor(64, 1), tokensFor(64, 2)] });
  const q8 = path.join(root, 'q8_0.gguf');
  await exportGguf(floatDir, q8, { type: 'q8_0' });
  const w8a8m2 = path.join(root, 'w8a8_mamba2');
  await quantize({ model: float2Dir, output: w8a8m2, scheme: 'w8a8', calibration: [tokensFor(64, 3), tokensFor(64, 4)] });
  const w8a8g = path.join(root, 'w8a8_granite');
  await quantize({ model: graniteDir, output: w8a8g, scheme: 'w8a8', calibration: [tokensFor(64, 5), tokensFor(64, 6)] });
  // Products behind other work per batch-1 step: in_proj's z rows per Mamba
  // layer, and (Granite) the shared MLP's gate per MoE layer.
  const models = [['W8A8', w8a8, 2], ['Q8_0 GGUF', q8, 2], ['Mamba-2 W8A8', w8a8m2, 2], ['Granite W8A8', w8a8g, 4 + 6]] as const;
  for (const [name, model, perStep] of models) {
    let alone = '';
    for (const batch of [1, 3]) {
      const calm = decodeInChild(model, batch, 12);
      // Every call's first range stalls 2 ms in a worker (past the 30 us
      // after which the caller takes it back).
      const stalled = decodeInChild(model, batch, 12, '1,2000');
      t.equal(stalled.threads, 2, `${name} batch ${batch}: two threads`);
      t.ok(stalled.recomputed >= 12, `${name} batch ${batch}: the caller took back ${stalled.recomputed} stalled ranges (at least one a step)`);
      t.equal(stalled.digest, calm.digest, `${name} batch ${batch}: the logits of every step are those of the calm run`);
      const want = batch === 1 ? 12 * perStep : 0;
      t.equal(calm.background, want, `${name} batch ${batch}: ${want} products ran in the background`);
      t.equal(stalled.background, want, `${name} batch ${batch}: ${want} in the stalled run too`);
      // Sequence 0 has the same prompt and tokens at both batch sizes: its
      // logits at batch 3 (no background products) equal batch 1's.
      if (batch === 1) alone = calm.first;
      else t.equal(calm.first, alone, `${name}: sequence 0's logits at batch 3 equal those it had alone, bit for bit`);
    }
  }
});

t.test('a model disposed while a stalled worker computes one of its ranges waits for it', async (t) => {
  const q8 = path.join(root, 'dispose_q8_0.gguf');
  await exportGguf(floatDir, q8, { type: 'q8_0' });
  // Each call's first range stalls 30 ms in a worker, so the last call of the
  // last step leaves a worker reading the weights when dispose() frees them
  // (unless the model waits for it).
  const code = `(async () => {
    const { loadModel, kernels } = require(${JSON.stringify(dist)});
    for (let round = 0; round < 2; round++) {
      const m = await loadModel(${JSON.stringify(q8)});
      const s = await m.createSequence();
      await s.prefill([1, 2, 3]);
      for (let i = 0; i < 2; i++) await s.step(4 + i);
      m.dispose();
      // Fresh allocations where the weights were: a late read would see them.
      const junk = [];
      for (let i = 0; i < 16; i++) junk.push(new Float32Array(1 << 18).fill(i));
    }
    process.stdout.write(JSON.stringify({ recomputed: kernels.runtimeInfo().recomputedRanges }));
  })().catch((e) => { console.error(e); process.exit(1); });`;
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_MAMBA_THREADS: '2', NODE_MAMBA_TEST_STALL_US: '1,30000' };
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env, maxBuffer: 16 << 20 });
  t.equal(r.status, 0, `the child exits cleanly${r.status ? ': ' + r.stderr.slice(-2000) : ''}`);
  const out = JSON.parse(r.stdout || '{}') as { recomputed?: number };
  t.ok((out.recomputed ?? 0) > 0, `ranges were taken back from the stalled worker (${out.recomputed})`);
});
