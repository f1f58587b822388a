// One child process of the benchmark: prepares a checkpoint or a GGUF, or
// measures one engine on one model file (load time, decode at batch 1,
// prefill, decode of 8 concurrent sequences, peak resident memory). Own
// process so that VmHWM belongs to that engine and model alone, and so that a
// crash or a hang costs one cell of the table, not the run.
//
//   node bench/worker.js '<json spec>'   -> last stdout line: @@RESULT <json>
'use strict';
const fs = require('node:fs');
const C = require('./common');

const spec = JSON.parse(process.argv[2]);

function emit(result) {
  process.stdout.write(`\n@@RESULT ${JSON.stringify(result)}\n`);
}

function errorInfo(err) {
  return { message: String((err && err.message) || err).split('\n')[0].slice(0, 300), name: err && err.name };
}

/**
 * Calls run(r) for r = 0, 1, ... until `max` runs, but starts no new run once
 * `budget` seconds are spent and at least `min` runs are done. Returns the
 * values run() returned.
 */
async function repeat({ repeats: max, minRepeats: min = 1, budgetSeconds: budget = Infinity }, run) {
  const out = [];
  const t0 = C.now();
  for (let r = 0; r < max; r++) {
    if (r >= min && C.now() - t0 > budget) break;
    out.push(await run(r));
  }
  return out;
}

/** Runs fn; its error is recorded in the result instead of ending the worker. */
async function task(result, key, fn) {
  try {
    result[key] = await fn();
  } catch (err) {
    result[key] = { error: errorInfo(err) };
  }
}

// ---------------------------------------------------------------- preparing

function prepareCheckpoint() {
  const m = C.MODELS[spec.model];
  const tmp = `${spec.dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  if (m.hybrid) {
    const { writeRandomHybridCheckpoint } = C.requireDist('testing/random_hybrid_checkpoint.js');
    const vocabSize = Math.ceil(C.TOKENIZER_VOCAB / C.PAD_VOCAB_MULTIPLE) * C.PAD_VOCAB_MULTIPLE;
    writeRandomHybridCheckpoint(tmp, { ...m.hybrid, vocabSize, dtype: spec.dtype, seed: spec.seed });
  } else {
    const { writeRandomCheckpoint } = C.requireDist('testing/random_checkpoint.js');
    writeRandomCheckpoint(tmp, {
      ...m, vocabSize: C.TOKENIZER_VOCAB, padVocabMultiple: C.PAD_VOCAB_MULTIPLE,
      dtype: spec.dtype, tied: true, dialect: 'original', seed: spec.seed,
    });
  }
  fs.rmSync(spec.dir, { recursive: true, force: true });
  fs.renameSync(tmp, spec.dir);
  return { dir: spec.dir };
}

async function exportGgufFile() {
  let mod;
  try {
    mod = C.requireDist('export/export_gguf.js');
  } catch (err) {
    throw new Error(`exportGguf is not available in ${C.distDir()} (${errorInfo(err).message})`);
  }
  await mod.exportGguf(spec.dir, spec.file, { type: spec.type });
  return { file: spec.file, bytes: fs.statSync(spec.file).size };
}

async function quantizeCheckpoint() {
  const { quantize } = C.requireDist();
  // Random weights: calibration on random tokens (16 samples of 256) is as good as any text.
  // lm_head and the embedding quantized too, as llama.cpp's Q8_0 / Q4_0 files quantize their
  // output matrix and token embedding.
  const calibration = Array.from({ length: 16 }, (_, i) => C.randomTokens(256, spec.seed + 500 + i));
  const s = await quantize({ model: spec.dir, output: spec.out, scheme: spec.scheme, calibration, recipe: { quantizeLmHead: true, quantizeEmbedding: true } });
  return { dir: spec.out, bytes: s.bytesAfter, seconds: s.seconds };
}

// ---------------------------------------------------------------- bandwidth
//
// This VM's memory bandwidth moves between regimes within seconds (30-70
// GB/s on 2 threads), so the limit is sampled before each decode run's
// prompt and right after its decode, in this process, and the larger counts.
// The probe's 128 MiB buffer would count in VmHWM: the peak so far is kept,
// the probe runs, and the kernel's peak counter is reset (/proc/self/clear_refs
// 5); the reported peak is the max of the pieces.

let peakSoFar = 0;
let peakResetWorks = true;
function sampleBandwidth() {
  const { kernels } = C.requireDist();
  peakSoFar = Math.max(peakSoFar, C.procStatus().vmHWM);
  const r = kernels.measureReadBandwidth({ bytes: 128 << 20, repeats: 3 });
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    peakResetWorks = false;
  }
  return r.bestGBps;
}

function peakStatus() {
  const s = C.procStatus();
  return { ...s, vmHWM: Math.max(s.vmHWM, peakSoFar), includesBandwidthProbe: !peakResetWorks };
}

// ---------------------------------------------------------------- protocol
//
// The same measurements for both engines, through a small adapter:
//   newSequence() -> handle; reset(h); prompt(h, tokens) (no logits needed);
//   decode(h, firstToken, steps) runs `steps` decode steps of one sequence
//   (each: one token in, greedy next token out); decodeMany(hs, firstTokens, steps)
//   runs the sequences concurrently; release(h).

/** Decode steps of the uncounted first run (see measure). */
const kWarmSteps = 64;

async function measure(result, eng) {
  const d = spec.decode;
  if (d) {
    await task(result, 'decode', async () => {
      const h = await eng.newSequence();
      const once = async (r, steps) => {
        await eng.reset(h);
        const prompt = C.randomTokens(d.prompt, spec.seed + 100 + r);
        // The machine's read bandwidth drifts within seconds on the VMs of
        // bench/NOTES.md: sampled before the run's prompt and right after its
        // decode, and the larger taken as the run's limit (a run in a fast
        // phase is not compared with a slow sample after it). (A probe right
        // before the decode slowed the 16 steps after it by ~8%: the prompt
        // sits between them.)
        const before = r >= 0 ? sampleBandwidth() : NaN;
        let t0 = C.now();
        const next = await eng.prompt(h, prompt);
        const promptSeconds = C.now() - t0;
        t0 = C.now();
        await eng.decode(h, next, steps);
        const rate = steps / (C.now() - t0);
        return { rate, promptSeconds, bandwidthGBps: r >= 0 ? Math.max(before, sampleBandwidth()) : NaN };
      };
      // Not counted: a first run of kWarmSteps steps. The first ~50 steps of a
      // process fault in fresh pages (heap growth, staging buffers, KV pages:
      // 10-17 us each on the VMs of bench/NOTES.md) and V8 compiles the loop
      // on the same cores: after a 4-step warm-up, node-mamba's first
      // measured runs took up to 14 faults a step.
      const warm = await once(-1, Math.max(kWarmSteps, d.steps));
      const runs = await repeat(d, (r) => once(r, d.steps));
      await eng.release(h);
      return {
        ...C.summary(runs.map((x) => x.rate)), steps: d.steps, prompt: d.prompt, firstPromptSeconds: warm.promptSeconds,
        // Read bandwidth around each run: the larger of the samples before its
        // prompt and right after its decode (same index as runs).
        bandwidthGBps: runs.map((x) => x.bandwidthGBps),
      };
    });
  }

  const p = spec.prefill;
  if (p) {
    for (const len of p.lengths) {
      await task(result, `prefill${len}`, async () => {
        const h = await eng.newSequence();
        const runs = await repeat(p, async (r) => {
          await eng.reset(h);
          const prompt = C.randomTokens(len, spec.seed + 200 + r);
          const t0 = C.now();
          await eng.prompt(h, prompt);
          return len / (C.now() - t0);
        });
        await eng.release(h);
        return { ...C.summary(runs), tokens: len };
      });
    }
  }

  const b = spec.batch;
  if (b) {
    await task(result, 'batch', async () => {
      const hs = await eng.newSequences(b.n);
      const once = async (r, steps) => {
        const first = [];
        for (let i = 0; i < b.n; i++) {
          await eng.reset(hs[i]);
          first.push(await eng.prompt(hs[i], C.randomTokens(b.prompt, spec.seed + 300 + 16 * (r + 1) + i)));
        }
        const t0 = C.now();
        await Promise.all(hs.map((h, i) => eng.decode(h, first[i], steps)));
        return (b.n * steps) / (C.now() - t0);
      };
      await once(-1, Math.max(kWarmSteps / 4, b.steps));  // (not counted, as decode's)
      const runs = await repeat(b, (r) => once(r, b.steps));
      for (const h of hs) await eng.release(h);
      return { ...C.summary(runs), sequences: b.n, stepsPerSequence: b.steps };
    });
  }
}

// ---------------------------------------------------------------- node-mamba

async function runNodeMamba() {
  const lib = C.requireDist();
  const result = { engine: 'node-mamba' };
  result.rssBeforeLoad = C.procStatus().vmRSS;
  const t = C.now();
  const model = await lib.loadModel(spec.model, { threads: spec.threads, maxBatch: 16 });
  result.loadSeconds = C.now() - t;
  result.rssAfterLoad = C.procStatus().vmRSS;
  result.threads = lib.kernels.runtimeInfo().threads;
  result.isa = lib.kernels.runtimeInfo().isa;
  const mem = model.memory;
  result.weightBytes = mem.weightBytes;
  result.decodeBytesPerToken = mem.decodeBytesPerToken;
  result.stateBytesPerSequence = mem.stateBytesPerSequence;
  result.vocabSize = model.vocabSize;

  await measure(result, {
    newSequence: () => model.createSequence(),
    newSequences: async (n) => { const a = []; for (let i = 0; i < n; i++) a.push(await model.createSequence()); return a; },
    reset: (seq) => seq.reset(),
    prompt: async (seq, tokens) => C.argmax(await seq.prefill(tokens)),
    // Greedy steps as generate() at temperature 0 takes them (and as
    // llama.cpp's adapter samples): the choice made natively, each step run
    // ahead natively with the token it chose (Sequence.stepChained), the last
    // without one; concurrent sequences' steps are joined into one batched
    // native step by the model's batcher (as concurrent generate() calls are).
    decode: async (seq, tok, steps) => {
      const rng = lib.createRng(1);
      for (let i = 0; i < steps; i++) tok = await seq.stepChained(tok, { temperature: 0 }, rng, i === steps - 1);
    },
    release: (seq) => seq.dispose(),
  });

  model.dispose();
  result.peak = peakStatus();
  return result;
}

// ---------------------------------------------------------------- llama.cpp

async function runLlamaCpp() {
  const result = { engine: 'llama.cpp' };
  // node-llama-cpp is ESM-only.
  const nlc = await import('node-llama-cpp');
  C.requireDist();  // node-mamba's addon, for the bandwidth probe: loaded before rssBeforeLoad
  result.version = C.llamaPackage().version;
  const llama = await nlc.getLlama({
    gpu: false, build: 'never', maxThreads: spec.threads,
    logLevel: nlc.LlamaLogLevel ? nlc.LlamaLogLevel.error : undefined,
  });
  result.rssBeforeLoad = C.procStatus().vmRSS;
  const t = C.now();
  const model = await llama.loadModel({ modelPath: spec.model, gpuLayers: 0 });
  result.loadSeconds = C.now() - t;
  result.rssAfterLoad = C.procStatus().vmRSS;
  result.threads = spec.threads;
  result.modelFileBytes = fs.statSync(spec.model).size;

  const maxPrefill = spec.prefill ? Math.max(...spec.prefill.lengths) : 0;
  const contexts = [];
  const context = async (sequences) => {
    const ctx = await model.createContext({
      sequences,
      contextSize: Math.max(1024, maxPrefill + 256),
      // node-llama-cpp's default batch (512): a 2048-token batch made llama.cpp's
      // Mamba prefill about 2x slower here (bench/NOTES.md).
      batchSize: 512,
      threads: spec.threads,
    });
    contexts.push(ctx);
    result.context = { contextSize: ctx.contextSize, batchSize: ctx.batchSize };
    return ctx;
  };
  let single;
  await measure(result, {
    newSequence: async () => {
      single = single || (await context(1));
      return single.getSequence();
    },
    // One context holding n sequences: node-llama-cpp dispatches the pending
    // evaluations of all its sequences together, as one llama_decode batch.
    newSequences: async (n) => {
      const ctx = await context(n);
      return Array.from({ length: n }, () => ctx.getSequence());
    },
    reset: (seq) => seq.clearHistory(),
    // The prompt's last token is fed again as the first decode input (llama.cpp
    // gives no logits without sampling; the work per step is the same).
    prompt: async (seq, tokens) => {
      await seq.evaluateWithoutGeneratingNewTokens(tokens);
      return tokens[tokens.length - 1];
    },
    // Each token the generator yields is one decode step: evaluate the previous
    // token, sample greedily.
    decode: async (seq, tok, steps) => {
      let n = 0;
      for await (const _next of seq.evaluate([tok], { temperature: 0 })) {
        if (++n >= steps) break;
      }
    },
    release: async (seq) => seq.dispose(),
  });

  for (const ctx of contexts) await ctx.dispose();
  await model.dispose();
  result.peak = peakStatus();
  await llama.dispose();
  return result;
}

// ---------------------------------------------------------------- main

(async () => {
  let result;
  try {
    if (spec.mode === 'checkpoint') result = prepareCheckpoint();
    else if (spec.mode === 'gguf') result = await exportGgufFile();
    else if (spec.mode === 'quantize') result = await quantizeCheckpoint();
    else if (spec.mode === 'node-mamba') result = await runNodeMamba();
    else if (spec.mode === 'llama.cpp') result = await runLlamaCpp();
    else throw new Error(`unknown mode ${spec.mode}`);
  } catch (err) {
    result = { error: errorInfo(err) };
  }
  const cpu = process.cpuUsage();
  result.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  emit(result);
  // node-llama-cpp can keep handles open; the parent only needs the line above.
  process.exit(0);
})();

