// Runtime controls: instruction-set cap, thread-pool size, and their
// environment variables.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { kernels } from '../lib';
import { availableIsas } from './helpers/reference';

t.test('runtimeInfo reports levels, threads and the addon file', (t) => {
  const info = kernels.runtimeInfo();
  t.match(info.isa, /^(scalar|avx2|avx512|avx512vnni)$/);
  t.match(info.detectedIsa, /^(scalar|avx2|avx512|avx512vnni)$/);
  t.ok(Number.isInteger(info.threads) && info.threads >= 1);
  t.ok(Number.isInteger(info.physicalCores) && info.physicalCores >= 1);
  t.match(info.addonPath, /\.node$/);
  t.end();
});

t.test('runtimeInfo().cuda says whether CUDA is compiled in and usable, and why not', (t) => {
  const { cuda } = kernels.runtimeInfo();
  t.type(cuda.compiled, 'boolean');
  t.type(cuda.usable, 'boolean');
  t.ok(Array.isArray(cuda.devices));
  if (!cuda.compiled) {
    t.notOk(cuda.usable, 'a build without CUDA kernels is never usable');
    t.match(cuda.reason, /-DNODE_MAMBA_CUDA=ON/, 'and says how to get them');
    t.same(cuda.devices, []);
  } else if (!cuda.usable) {
    // The CUDA build loads without a driver or a GPU (the runtime is static
    // and finds the driver lazily) and names what is missing.
    t.match(cuda.reason, /driver|device|compute capability|CUDA runtime/);
    t.ok(cuda.runtimeVersion >= 12000, `runtime version ${cuda.runtimeVersion}`);
    t.comment(`CUDA compiled in, not usable here: ${cuda.reason}`);
  } else {
    t.equal(cuda.reason, undefined);
    t.ok(cuda.devices.some((d) => d.supported), 'a usable machine has a supported device');
    for (const d of cuda.devices) t.match(d.computeCapability, /^\d+\.\d+$/);
  }
  t.end();
});

t.test('setIsa caps the dispatch and never goes above the CPU', (t) => {
  const isas = availableIsas();
  for (const isa of isas) {
    t.equal(kernels.setIsa(isa), isa);
    t.equal(kernels.runtimeInfo().isa, isa);
  }
  t.equal(kernels.setIsa('avx512vnni'), isas[isas.length - 1]);
  t.throws(() => kernels.setIsa('sse9' as kernels.Isa), { name: 'RangeError', message: /'isa'/ });
  t.throws(() => kernels.setIsa(3 as unknown as kernels.Isa), { name: 'TypeError' });
  t.end();
});

t.test('setThreads resizes the pool; results do not depend on it', (t) => {
  const before = kernels.runtimeInfo().threads;
  const x = new Float32Array(64 * 1000).map((_, i) => Math.sin(i));
  const w = new Float32Array(1000).fill(1);
  const ref = kernels.rmsNorm({ x, weight: w, rows: 64, dim: 1000 }).out;
  for (const n of [1, 3, 2]) {
    t.equal(kernels.setThreads(n), n);
    t.same(kernels.rmsNorm({ x, weight: w, rows: 64, dim: 1000 }).out, ref, `same result with ${n} threads`);
  }
  // Regression: workers created by a resize once took the previous run for new work.
  for (let i = 0; i < 50; i++) {
    kernels.setThreads(1 + (i % 3));
    kernels.rmsNorm({ x, weight: w, rows: 64, dim: 1000 });
  }
  t.pass('resizing between runs is safe');
  t.throws(() => kernels.setThreads(0), { name: 'RangeError', message: /'threads'/ });
  t.throws(() => kernels.setThreads(1.5), { name: 'RangeError' });
  t.throws(() => kernels.setThreads('4' as unknown as number), { name: 'TypeError' });
  kernels.setThreads(before);
  t.end();
});

function childInfo(env: Record<string, string>) {
  // The addon itself, as loaded here: the variables are read natively.
  const addon = kernels.runtimeInfo().addonPath;
  const code = `process.stdout.write(JSON.stringify(require(${JSON.stringify(addon)}).runtimeInfo()));`;
  const r = spawnSync(process.execPath, ['-e', code], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

t.test('NODE_MAMBA_ISA and NODE_MAMBA_THREADS set the initial cap and pool size', (t) => {
  t.equal(childInfo({ NODE_MAMBA_ISA: 'scalar' }).isa, 'scalar');
  t.equal(childInfo({ NODE_MAMBA_THREADS: '3' }).threads, 3);
  t.end();
});

// Pool threads spin for the next call for NODE_MAMBA_SPIN_US (default 1 ms, 5 ms after a decode step)
// and then sleep; at 0 they sleep after every call, so every call below wakes
// them (the path a long-idle server takes), and the results must not change.
t.test('NODE_MAMBA_SPIN_US=0: pool threads woken from sleep for every call give the same results', (t) => {
  const dist = require.resolve('../dist/index.js');
  const code = `(async () => {
    const { kernels } = require(${JSON.stringify(dist)});
    const x = new Float32Array(64 * 1000).map((_, i) => Math.sin(i)), w = new Float32Array(1000).fill(1);
    const run = () => kernels.rmsNorm({ x, weight: w, rows: 64, dim: 1000 }).out;
    kernels.setThreads(1);
    const ref = run();
    kernels.setThreads(3);
    let same = 0;
    for (let i = 0; i < 40; i++) {
      if (i % 8 === 0) await new Promise((r) => setTimeout(r, 5));
      const y = run();
      if (y.every((v, j) => Object.is(v, ref[j]))) same++;
    }
    process.stdout.write(String(same));
  })().catch((e) => { console.error(e); process.exit(1); });`;
  for (const spin of ['0', 'not a number', '20']) {
    const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, NODE_MAMBA_SPIN_US: spin }, encoding: 'utf8' });
    t.equal(r.status, 0, `NODE_MAMBA_SPIN_US=${spin}: exits 0 ${r.stderr}`);
    t.equal(r.stdout, '40', `NODE_MAMBA_SPIN_US=${spin}: 40 of 40 calls equal the 1-thread result`);
  }
  t.end();
});

// bench/ab_trial.js's trial (csrc/cpu/ab_trial.h): with NODE_MAMBA_AB_TRIAL=<n> decode steps
// alternate between variants A and B in blocks of n steps and each variant's step times are
// recorded after a warm-up; without it nothing is recorded and runtimeInfo() has no abTrial.
t.test('NODE_MAMBA_AB_TRIAL: decode steps alternate between two timed variants', (t) => {
  t.equal(kernels.runtimeInfo().abTrial, undefined, 'off unless the environment asks');
  const dist = require.resolve('../dist/index.js');
  const model = require.resolve('../assets/models/tiny-shakespeare-mamba/config.json').replace(/\/config\.json$/, '');
  const code = `(async () => {
    const lib = require(${JSON.stringify(dist)});
    const m = await lib.loadModel(${JSON.stringify(model)});
    const seq = await m.createSequence();
    await seq.prefill([1, 2, 3]);
    const rng = lib.createRng(1);
    let tok = 4;
    for (let i = 0; i < 100; i++) tok = await seq.stepChained(tok, { temperature: 0 }, rng, i === 99);
    await seq.step(tok);  // a logits step counts too
    process.stdout.write(JSON.stringify(lib.kernels.runtimeInfo().abTrial));
    m.dispose();
  })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, NODE_MAMBA_AB_TRIAL: '3' }, encoding: 'utf8' });
  t.equal(r.status, 0, `exits 0 ${r.stderr}`);
  const ab = JSON.parse(r.stdout);
  t.equal(ab.blockSteps, 3);
  const recorded = 101 - ab.warmupSteps;
  t.equal(ab.a.steps + ab.b.steps, recorded, `every step after the warm-up recorded once (${ab.a.steps} + ${ab.b.steps})`);
  t.ok(Math.abs(ab.a.steps - ab.b.steps) <= 3, 'in alternating blocks of 3');
  for (const v of [ab.a, ab.b]) t.ok(v.medianUs > 0 && v.meanUs > 0, 'with times');
  t.end();
});
