// The engine's device seam (csrc/engine/backend.h; docs/cuda-backend.md):
// with NODE_MAMBA_DEVICE_EMULATION=1 a model runs the CPU kernels on memory
// that the engine's host code can reach only through the backend (weights
// in rows as a GPU reads them, states, KV pages, activations; mapped
// PROT_NONE outside the backend's own calls, so that any direct access
// faults). Every model family and weight format runs there and must give the
// CPU backend's logits: prefill (all positions), batched decode,
// snapshot / restore across the two backends, and calibration (quantize)
// with its activations downloaded.
//
// Tolerances: float weights run the same kernels on the same bytes, so the
// logits are equal bit for bit. Quamba weights with int8 inputs run from
// panels on the CPU backend and from rows here: the integer sums are exact,
// the float epilogues may round in another order, so |Δ| <= 1e-5 · max|logit|
// and the same greedy token.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, quantize, type MambaModel } from '../../lib';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../../lib/testing/random_checkpoint';
import {
  graniteTinyPreset, jambaTinyPreset, writeRandomHybridCheckpoint, type RandomHybridOptions,
} from '../../lib/testing/random_hybrid_checkpoint';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-device-emulation-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const ENV = 'NODE_MAMBA_DEVICE_EMULATION';

/** f() with the emulation switched on (or off) for the loads it starts. */
async function withEmulation<T>(on: boolean, f: () => Promise<T>): Promise<T> {
  const prev = process.env[ENV];
  if (on) process.env[ENV] = '1';
  else delete process.env[ENV];
  try {
    return await f();
  } finally {
    if (prev === undefined) delete process.env[ENV];
    else process.env[ENV] = prev;
  }
}

function tokensFor(n: number, V: number, seed: number): number[] {
  let s = seed * 7919 + 13;
  return Array.from({ length: n }, () => (s = (s * 48271) % 2147483647) % V);
}

function argmax(x: Float32Array): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
  return b;
}

/** Equal bit for bit (exact), or within tol · max|want| with the same argmax per row of V. */
function compare(t: Test, got: Float32Array, want: Float32Array, V: number, exact: boolean, what: string): void {
  t.equal(got.length, want.length, `${what}: length`);
  if (exact) {
    let diff = -1;
    for (let i = 0; i < want.length && diff < 0; i++) if (!Object.is(got[i], want[i])) diff = i;
    t.equal(diff, -1, `${what}: equal bit for bit${diff >= 0 ? ` (first difference at ${diff}: ${got[diff]} vs ${want[diff]})` : ''}`);
    return;
  }
  let worst = 0, scale = 0, argmaxSame = true;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  for (let r = 0; r < want.length / V; r++) {
    if (argmax(got.subarray(r * V, (r + 1) * V)) !== argmax(want.subarray(r * V, (r + 1) * V))) argmaxSame = false;
  }
  t.ok(worst <= 1e-5 * scale, `${what}: worst |Δ| ${worst.toExponential(2)} <= 1e-5 · ${scale.toFixed(3)}`);
  t.ok(argmaxSame, `${what}: the same greedy token at every position`);
}

/** The two backends side by side on one checkpoint. */
async function checkBothBackends(t: Test, dir: string, exact: boolean, promptLength: number): Promise<void> {
  const opts = { inputRounding: 'none' as const, kvCacheType: 'f32' as const };
  const cpu = await withEmulation(false, () => loadModel(dir, opts));
  const emu = await withEmulation(true, () => loadModel(dir, opts));
  try {
    t.equal(cpu.nativeModel().info().backend, 'cpu');
    t.equal(emu.nativeModel().info().backend, 'cpu-device-emulation', 'the emulated backend is the one that runs');
    t.same(emu.memory, cpu.memory, 'the same weight, state and KV sizes');
    const V = cpu.vocabSize;
    const prompt = tokensFor(promptLength, V, promptLength);
    compare(t, await emu.forward(prompt), await cpu.forward(prompt), V, exact, 'forward (every position)');

    // Three sequences: prefills of different lengths, then batched decode steps.
    const run = async (m: MambaModel) => {
      const seqs = [await m.createSequence(), await m.createSequence(), await m.createSequence()];
      const out: Float32Array[] = [];
      let next = await Promise.all(seqs.map(async (s, i) => argmax(await s.prefill(prompt.slice(0, 5 + 7 * i)))));
      for (let step = 0; step < 4; step++) {
        const logits = await Promise.all(seqs.map((s, i) => s.step(next[i])));
        out.push(...logits.map((l) => Float32Array.from(l)));
        next = logits.map(argmax);
      }
      const snap = await seqs[1].snapshot();
      for (const s of seqs) await s.dispose();
      return { out, next: next[1], snap };
    };
    const a = await run(cpu), b = await run(emu);
    for (let i = 0; i < a.out.length; i++) compare(t, b.out[i], a.out[i], V, exact, `decode step ${Math.floor(i / 3)}, sequence ${i % 3} (batched)`);

    // Sampled generation (the prefill's and the steps' tokens drawn natively from the backend's
    // logits, three concurrent ones batched): with equal logits, the same tokens.
    if (exact) {
      const gen = (m: MambaModel) => Promise.all([
        { temperature: 0.9, topP: 0.9, seed: 5 }, { topK: 7, repetitionPenalty: 1.3, seed: 6 }, { temperature: 1.5, minP: 0.02, seed: 7 },
      ].map(async (o, i) => {
        const out: number[] = [];
        for await (const c of m.generate(prompt.slice(0, 4 + 5 * i), { ...o, maxTokens: 10, stopAtEos: false })) out.push(c.token);
        return out;
      }));
      t.same(await gen(emu), await gen(cpu), 'sampled generations (native sampler), three concurrent: the same tokens');
    }

    // A snapshot taken on one backend restores on the other and continues the same.
    for (const [from, to, name] of [[a, emu, 'cpu -> emulated'], [b, cpu, 'emulated -> cpu']] as const) {
      const s = await to.createSequence();
      await s.restore(from.snap);
      const l = await s.step(from.next);
      const ref = await cpu.createSequence();
      await ref.restore(a.snap);
      compare(t, l, await ref.step(a.next), V, exact, `restored ${name}, next step`);
      await s.dispose();
      await ref.dispose();
    }
  } finally {
    cpu.dispose();
    emu.dispose();
  }
}

const plain: Array<[string, RandomCheckpointOptions, number]> = [
  ['mamba f32', { arch: 'mamba', dModel: 48, nLayer: 2, vocabSize: 97, dtype: 'f32', tied: true, dialect: 'hf', seed: 3 }, 37],
  ['mamba2 bf16, 2 groups, untied', {
    arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 101, dtype: 'bf16', tied: false, dialect: 'hf', seed: 4,
    headdim: 16, ngroups: 2, dState: 16, chunkSize: 16,
  }, 45],
];

for (const [name, opts, L] of plain) {
  t.test(`${name}: the device-emulation backend gives the CPU backend's logits`, async (t) => {
    const dir = path.join(root, name.replace(/\W+/g, '_'));
    writeRandomCheckpoint(dir, opts);
    await checkBothBackends(t, dir, true, L);
  });
}

const hybrids: Array<[string, RandomHybridOptions, number]> = [
  ['jamba tiny (attention, MoE)', jambaTinyPreset({ seed: 21 }), 41],
  ['granite tiny with RoPE (attention, MoE, shared expert)', graniteTinyPreset({ positionEmbeddingType: 'rope', ropeTheta: 5000, seed: 22 }), 70],
];

for (const [name, opts, L] of hybrids) {
  t.test(`${name}: the device-emulation backend gives the CPU backend's logits`, async (t) => {
    const dir = path.join(root, name.replace(/\W+/g, '_'));
    writeRandomHybridCheckpoint(dir, opts);
    await checkBothBackends(t, dir, true, L);
  });
}

t.test('Quamba checkpoints: quantized under emulation as on the CPU, and run the same', async (t) => {
  const calibration = [tokensFor(96, 128, 1), tokensFor(96, 128, 2)];
  for (const [arch, scheme] of [['mamba', 'w8a8'], ['mamba2', 'w4a8'], ['mamba', 'w4a16']] as const) {
    const dir = path.join(root, `${arch}-${scheme}-float`);
    writeRandomCheckpoint(dir, {
      arch, dModel: 64, nLayer: 2, vocabSize: 128, dtype: 'f32', tied: true, dialect: 'hf', seed: 7,
      ...(arch === 'mamba2' ? { headdim: 16, dState: 16, chunkSize: 16 } : {}),
    });
    const recipe = { quantizeEmbedding: true, quantizeLmHead: true };
    const onCpu = path.join(root, `${arch}-${scheme}-cpu`), onEmu = path.join(root, `${arch}-${scheme}-emu`);
    await withEmulation(false, () => quantize({ model: dir, output: onCpu, scheme, recipe, calibration }));
    await withEmulation(true, () => quantize({ model: dir, output: onEmu, scheme, recipe, calibration }));
    t.ok(fs.readFileSync(path.join(onEmu, 'model.safetensors')).equals(fs.readFileSync(path.join(onCpu, 'model.safetensors'))),
      `${arch} ${scheme}: calibration with downloaded activations writes the same checkpoint`);
    await t.test(`${arch} ${scheme}`, (t) => checkBothBackends(t, onCpu, scheme === 'w4a16', 37));
  }
});

// Decode steps as graphs (csrc/engine/step_recorder.h): after two steps of a
// batch size with the same launches, the third is captured and later ones
// replay the capture (the emulated graph is the list of launches it held),
// with the tokens and slots restaged at the same offsets. The logits stay
// those of the CPU backend bit for bit; NODE_MAMBA_DECODE_GRAPHS=0 keeps every
// step eager. Attention layers stage their positions, lengths and block
// tables the same way: their steps are replayed too, recorded anew when the
// tables widen (at a doubling of a sequence's pages) or the KV cache grows.
t.test('decode steps captured and replayed as graphs give the CPU backend\'s logits', async (t) => {
  const dir = path.join(root, 'graphs-mamba2');
  writeRandomCheckpoint(dir, {
    arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 101, dtype: 'f32', tied: true, dialect: 'hf', seed: 9,
    headdim: 16, dState: 16, chunkSize: 16,
  });
  const hybrid = path.join(root, 'graphs-jamba');
  writeRandomHybridCheckpoint(hybrid, jambaTinyPreset({ seed: 23 }));
  const steps = 10;
  // Greedy decode of `n` sequences stepped together; every step's logits.
  const decode = async (m: MambaModel, n: number): Promise<Float32Array[]> => {
    const seqs: Awaited<ReturnType<MambaModel['createSequence']>>[] = [];
    for (let i = 0; i < n; i++) seqs.push(await m.createSequence());
    let next = await Promise.all(seqs.map(async (s, i) => argmax(await s.prefill(tokensFor(4 + 3 * i, m.vocabSize, i)))));
    const out: Float32Array[] = [];
    for (let k = 0; k < steps; k++) {
      const logits = await Promise.all(seqs.map((s, i) => s.step(next[i])));
      out.push(...logits.map((l) => Float32Array.from(l)));
      next = logits.map(argmax);
    }
    for (const s of seqs) await s.dispose();
    return out;
  };
  const graphs = (m: MambaModel) => m.nativeModel().info().decodeGraphs;

  const cpu = await withEmulation(false, () => loadModel(dir));
  const emu = await withEmulation(true, () => loadModel(dir));
  try {
    t.same(graphs(cpu), { captures: 0, replays: 0, fallbacks: 0, launchesPerStep: 0 }, 'the CPU backend records nothing');
    let launches = 0;
    for (const n of [1, 3]) {
      const before = graphs(emu);
      const want = await decode(cpu, n), got = await decode(emu, n);
      for (let i = 0; i < want.length; i++) compare(t, got[i], want[i], cpu.vocabSize, true, `${n} sequence(s), step ${Math.floor(i / n)}`);
      const after = graphs(emu);
      t.equal(after.captures - before.captures, 1, `${n} sequence(s): one capture`);
      t.equal(after.replays - before.replays, steps - 3, `${n} sequence(s): every step after the capture replayed`);
      t.equal(after.fallbacks, 0, 'no step departed from its recording');
      // Each layer makes several launches; a batch of 3 makes as many as 1.
      t.ok(after.launchesPerStep >= 3 * cpu.config.nLayer, `${n} sequence(s): ${after.launchesPerStep} launches per step`);
      if (launches) t.equal(after.launchesPerStep, launches, 'a batch of 3 launches as many operations as one sequence');
      launches = after.launchesPerStep;
    }
  } finally {
    cpu.dispose();
    emu.dispose();
  }

  // A graph addresses the sequence states where they were: when more
  // sequences move them to a larger pool, the recordings are dropped and
  // made again.
  {
    const cpuM = await withEmulation(false, () => loadModel(dir));
    const emuM = await withEmulation(true, () => loadModel(dir));
    try {
      const grow = async (m: MambaModel) => {
        const a = await m.createSequence();
        let next = argmax(await a.prefill(tokensFor(5, m.vocabSize, 1)));
        const out: Float32Array[] = [];
        const stepA = async () => {
          const l = Float32Array.from(await a.step(next));
          out.push(l);
          next = argmax(l);
        };
        for (let k = 0; k < 6; k++) await stepA();
        const more = [];
        for (let i = 0; i < 9; i++) {
          const s = await m.createSequence();
          await s.prefill(tokensFor(40, m.vocabSize, 10 + i));  // activations that reuse the freed pool
          more.push(s);
        }
        for (let k = 0; k < 6; k++) await stepA();
        const snap = await a.snapshot();  // read where the states are now
        for (const s of more) await s.dispose();
        await a.dispose();
        return { out, snap };
      };
      const want = await grow(cpuM), got = await grow(emuM);
      for (let i = 0; i < want.out.length; i++) compare(t, got.out[i], want.out[i], cpuM.vocabSize, true, `states moved, step ${i}`);
      t.ok(Buffer.from(got.snap).equals(Buffer.from(want.snap)), 'the replayed steps updated the states where they are now');
      t.ok(graphs(emuM).replays >= 4, 'replayed before and after the states moved');
    } finally {
      cpuM.dispose();
      emuM.dispose();
    }
  }

  const prev = process.env.NODE_MAMBA_DECODE_GRAPHS;
  process.env.NODE_MAMBA_DECODE_GRAPHS = '0';
  const off = await withEmulation(true, () => loadModel(dir));
  if (prev === undefined) delete process.env.NODE_MAMBA_DECODE_GRAPHS;
  else process.env.NODE_MAMBA_DECODE_GRAPHS = prev;
  try {
    await decode(off, 1);
    t.same(graphs(off), { captures: 0, replays: 0, fallbacks: 0, launchesPerStep: 0 }, 'NODE_MAMBA_DECODE_GRAPHS=0: every step eager');
  } finally {
    off.dispose();
  }

  const cpuHybrid = await withEmulation(false, () => loadModel(hybrid, { kvCacheType: 'f32' }));
  const emuHybrid = await withEmulation(true, () => loadModel(hybrid, { kvCacheType: 'f32' }));
  try {
    // Two sequences from 50 and 56 tokens for 90 steps: their block tables
    // widen from 1 to 2 pages (64 tokens) and to 4 (128), and the KV cache
    // grows from 4 to 8 pages; every step's logits equal the CPU's.
    const long = async (m: MambaModel): Promise<Float32Array[]> => {
      const seqs = [await m.createSequence(), await m.createSequence()];
      let next = await Promise.all(seqs.map(async (s, i) => argmax(await s.prefill(tokensFor(50 + 6 * i, m.vocabSize, 3 + i)))));
      const out: Float32Array[] = [];
      for (let k = 0; k < 90; k++) {
        const logits = await Promise.all(seqs.map((s, i) => s.step(next[i])));
        out.push(...logits.map((l) => Float32Array.from(l)));
        next = logits.map(argmax);
      }
      for (const s of seqs) await s.dispose();
      return out;
    };
    const want = await long(cpuHybrid), got = await long(emuHybrid);
    let same = 0;
    for (let i = 0; i < want.length; i++) if (Buffer.from(got[i].buffer).equals(Buffer.from(want[i].buffer))) same++;
    t.equal(same, want.length, 'jamba: every step\'s logits equal the CPU backend\'s bit for bit');
    const g = graphs(emuHybrid);
    t.ok(g.captures >= 3, `jamba: recorded again after the tables widened and the cache grew (${g.captures} captures)`);
    t.ok(g.replays >= 70, `jamba: most steps replayed (${g.replays} of 90)`);
  } finally {
    cpuHybrid.dispose();
    emuHybrid.dispose();
  }
});
