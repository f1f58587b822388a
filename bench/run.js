#!/usr/bin/env node
// node-mamba vs llama.cpp (node-llama-cpp) on the same random-weight
// checkpoints of real shapes, in one run, on this machine. See bench/README.md.
//
//   npm run bench [-- --quick] [--models a,b] [--precisions f32,f16,bf16,q8_0,w8a8,w4a8,w4a16]
//                 [--engines node-mamba,llama.cpp] [--threads N] [--no-save]
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const C = require('./common');

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const o = {
    quick: false, models: null, precisions: null, engines: ['node-mamba', 'llama.cpp'],
    threads: null, save: true, waitQuiet: 60, cache: path.join(__dirname, '.cache'), timeout: 300, seed: 1234,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--models') o.models = val().split(',');
    else if (a === '--precisions') o.precisions = val().split(',');
    else if (a === '--engines') o.engines = val().split(',');
    else if (a === '--threads') o.threads = Number(val());
    else if (a === '--no-save') o.save = false;
    else if (a === '--cache') o.cache = path.resolve(val());
    else if (a === '--timeout') o.timeout = Number(val());
    else if (a === '--wait-quiet') o.waitQuiet = Number(val());
    else if (a === '--help' || a === '-h') {
      console.log(fs.readFileSync(path.join(__dirname, 'README.md'), 'utf8'));
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  o.models = o.models || (o.quick ? ['mamba-130m'] : Object.keys(C.MODELS));
  for (const m of o.models) if (!C.MODELS[m]) throw new Error(`unknown model ${m} (${Object.keys(C.MODELS).join(', ')})`);
  o.precisions = o.precisions || Object.keys(PRECISIONS);
  for (const p of o.precisions) if (!PRECISIONS[p]) throw new Error(`unknown precision ${p}`);
  // Runs repeat up to `repeats` times but start no new run after `budgetSeconds`
  // once `minRepeats` are done: the three Mamba models stay under 10 minutes on
  // 2 cores; the two hybrids add about 4 (cached checkpoints and GGUFs).
  o.plan = o.quick
    ? {
      decode: { prompt: 64, steps: 8, repeats: 3, minRepeats: 3 },
      prefill: { lengths: [512, 2048], repeats: 1 },
      batch: { n: 8, prompt: 64, steps: 4, repeats: 1 },
      bwRepeats: 5,
    }
    : {
      decode: { prompt: 64, steps: 16, repeats: 7, minRepeats: 3, budgetSeconds: 6 },
      prefill: { lengths: [512, 2048], repeats: 3, minRepeats: 1, budgetSeconds: 8 },
      batch: { n: 8, prompt: 64, steps: 8, repeats: 3, minRepeats: 1, budgetSeconds: 5 },
      bwRepeats: 10,
    };
  return o;
}

/**
 * What each engine loads for each precision; prefill is measured at f32, w8a8
 * and q8_0 only (compute-bound: float, then int8 products; q8_0 and q4_0 run
 * on the int8 panels, so their prefills cost about the same). The
 * Quamba-style schemes (w8a8, w4a8, w4a16) are node-mamba's quantize() of the
 * f32 checkpoint, measured against llama.cpp's own 8-bit (Q8_0) and 4-bit
 * (Q4_0) files of the same weights; q8_0 and q4_0 are those files in both.
 */
const PRECISIONS = {
  f32: { checkpoint: 'f32', nodeMamba: 'dir', gguf: 'f32', prefill: true },
  f16: { checkpoint: 'f16', nodeMamba: 'dir', gguf: 'f16', prefill: false },
  bf16: { checkpoint: 'bf16', nodeMamba: 'dir', gguf: null, prefill: false },
  q8_0: { checkpoint: 'f32', nodeMamba: 'gguf', gguf: 'q8_0', prefill: true },
  q4_0: { checkpoint: 'f32', nodeMamba: 'gguf', gguf: 'q4_0', prefill: false },
  w8a8: { checkpoint: 'f32', nodeMamba: 'quant', scheme: 'w8a8', gguf: 'q8_0', prefill: true },
  w4a8: { checkpoint: 'f32', nodeMamba: 'quant', scheme: 'w4a8', gguf: 'q4_0', prefill: false },
  w4a16: { checkpoint: 'f32', nodeMamba: 'quant', scheme: 'w4a16', gguf: 'q4_0', prefill: false },
};

// ---------------------------------------------------------------- children

/**
 * Waits (up to maxSeconds) until the other processes of the machine use less
 * than `threshold` of its CPUs over a 1-second sample. Returns the last share.
 */
async function waitQuiet(maxSeconds, threshold = 0.15) {
  const t0 = Date.now();
  let share = NaN;
  for (;;) {
    const a = C.cpuTimes();
    const u0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 1000));
    const b = C.cpuTimes();
    if (!a || !b) return NaN;
    const u = process.cpuUsage(u0);
    share = (b.busy - a.busy - (u.user + u.system) / 1e6) / Math.max(1e-9, b.total - a.total);
    if (share < threshold || Date.now() - t0 > maxSeconds * 1000) return share;
  }
}

/**
 * Runs one worker; for measurements, also the share of the machine's CPU time
 * that other processes used meanwhile (`otherCpuShare`; the child's own CPU
 * time and this process's are subtracted).
 */
async function runWorker(spec, timeoutSeconds) {
  const c0 = C.cpuTimes(), u0 = process.cpuUsage();
  const r = await spawnWorker(spec, timeoutSeconds);
  const c1 = C.cpuTimes(), u = process.cpuUsage(u0);

  if (c0 && c1 && Number.isFinite(r.cpuSeconds)) {
    r.otherCpuShare = Math.max(0, (c1.busy - c0.busy - r.cpuSeconds - (u.user + u.system) / 1e6) / Math.max(1e-9, c1.total - c0.total));
  }
  return r;
}

/**
 * The llama.cpp worker, run a second time if it died of a signal: on Intel
 * Xeons with AMX, llama.cpp 3.21.1's AMX matrix product
 * (libggml-cpu-sapphirerapids, ggml_backend_amx_mul_mat) crashes with SIGSEGV
 * now and then on Mamba-1 Q8_0 / Q4_0 files (bench/NOTES.md). The result
 * says when it was retried.
 */
async function runLlamaCppWorker(spec, timeoutSeconds) {
  const r = await runWorker(spec, timeoutSeconds);
  if (!r.error || !/^exited with SIG/.test(r.error.message)) return r;
  log(`llama.cpp ${r.error.message.split(':')[0]}; running it once more`);
  const again = await runWorker(spec, timeoutSeconds);
  again.retriedAfter = r.error.message;
  return again;
}

function spawnWorker(spec, timeoutSeconds) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'worker.js'), JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'pipe'], env: process.env,
    });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutSeconds * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').reverse().find((l) => l.startsWith('@@RESULT '));
      if (line) return resolve(JSON.parse(line.slice('@@RESULT '.length)));
      const why = signal === 'SIGKILL' ? `timed out after ${timeoutSeconds} s` : `exited with ${signal || code}`;
      resolve({ error: { message: `${why}: ${(err.trim().split('\n').pop() || '').slice(0, 300)}` } });
    });
  });
}

function log(msg) {
  process.stderr.write(`[bench] ${msg}\n`);
}

// ---------------------------------------------------------------- machine

function machineInfo(kernels) {
  const info = kernels.runtimeInfo();
  let cpuModel = os.cpus()[0] ? os.cpus()[0].model : 'unknown';
  try {
    const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m);
    if (m) cpuModel = m[1].trim();
  } catch { /* keep os.cpus() */ }
  return {
    cpuModel, logicalCpus: os.cpus().length, physicalCores: info.physicalCores,
    isa: info.isa, detectedIsa: info.detectedIsa, memoryBytes: os.totalmem(),
    node: process.version, platform: `${process.platform}-${process.arch}`,
  };
}

function gitCommit() {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: __dirname, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: __dirname, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return { commit, dirty };
  } catch {
    return { commit: 'unknown', dirty: null };
  }
}

// ---------------------------------------------------------------- preparing

/** A hash of the compiled code in dist/<sub> ('' when absent: the worker says so). */
function distHash(sub) {
  try {
    const h = require('node:crypto').createHash('sha256');
    const dir = path.join(C.distDir(), sub);
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.js')).sort()) h.update(f).update(fs.readFileSync(path.join(dir, f)));
    return h.digest('hex');
  } catch {
    return '';
  }
}

async function prepare(o, model, precisions, errors) {
  const base = path.join(o.cache, `v${C.CACHE_VERSION}`);
  fs.mkdirSync(base, { recursive: true });
  const dirs = {}, ggufs = {};
  const need = new Set(precisions.map((p) => PRECISIONS[p].checkpoint));
  for (const dtype of ['f32', 'f16', 'bf16']) {
    if (!need.has(dtype)) continue;
    const dir = path.join(base, `${model}-${dtype}`);
    if (!fs.existsSync(path.join(dir, 'config.json'))) {
      log(`writing ${model} ${dtype} checkpoint (random weights, once; cached in ${path.relative(process.cwd(), base)})`);
      const r = await runWorker({ mode: 'checkpoint', model, dtype, dir, seed: o.seed }, 900);
      if (r.error) { errors[`checkpoint ${dtype}`] = r.error.message; continue; }
    }
    dirs[dtype] = dir;
  }
  // GGUF exports go stale when the exporter (its compiled code) or the checkpoint changes.
  const exporter = distHash('export');
  const wantGguf = new Set(precisions.map((p) => PRECISIONS[p].gguf).filter(Boolean));
  for (const type of ['f32', 'f16', 'q8_0', 'q4_0']) {
    if (!wantGguf.has(type)) continue;
    const src = dirs[type === 'f16' ? 'f16' : 'f32'];
    if (!src) { errors[`gguf ${type}`] = 'no source checkpoint'; continue; }
    const file = path.join(base, `${model}-${type}.gguf`);
    const stamp = `${exporter}:${fs.statSync(path.join(src, 'model.safetensors')).mtimeMs}`;
    let fresh = false;
    try { fresh = fs.existsSync(file) && fs.readFileSync(`${file}.stamp`, 'utf8') === stamp; } catch { /* missing */ }
    if (!fresh) {
      log(`exporting ${model} ${type}.gguf`);
      const r = await runWorker({ mode: 'gguf', dir: src, file, type }, 900);
      if (r.error) { errors[`gguf ${type}`] = r.error.message; continue; }
      fs.writeFileSync(`${file}.stamp`, stamp);
    }
    ggufs[type] = file;
  }
  // Quamba-style checkpoints: quantize() of the f32 checkpoint (calibrated on
  // random tokens: the weights are random too), redone when the quantizer
  // (its compiled code) or the checkpoint changes.
  const quants = {};
  const quantizer = distHash('quant');
  for (const scheme of new Set(precisions.map((p) => PRECISIONS[p].scheme).filter(Boolean))) {
    const src = dirs.f32;
    if (!src) { errors[`quantize ${scheme}`] = 'no f32 checkpoint'; continue; }
    const out = path.join(base, `${model}-${scheme}`);
    const stamp = `${quantizer}:${fs.statSync(path.join(src, 'model.safetensors')).mtimeMs}`;
    let fresh = false;
    try { fresh = fs.readFileSync(`${out}.stamp`, 'utf8') === stamp && fs.existsSync(path.join(out, 'config.json')); } catch { /* missing */ }
    if (!fresh) {
      log(`quantizing ${model} to ${scheme}`);
      const r = await runWorker({ mode: 'quantize', dir: src, out, scheme, seed: o.seed }, 1800);
      if (r.error) { errors[`quantize ${scheme}`] = r.error.message; continue; }
      fs.writeFileSync(`${out}.stamp`, stamp);
    }
    quants[scheme] = out;
  }
  return { dirs, ggufs, quants };
}

// ---------------------------------------------------------------- table

const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—');
const mb = (b) => (Number.isFinite(b) ? (b / 1e6).toFixed(1) : '—');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);

const BUSY = 0.1;
/** Decode as a fraction of the limit: median over runs of rate x bytes read per token / bandwidth sampled around the run. */
function frac(cell) {
  const f = cell && !cell.error && cell.decode && cell.decode.fractionOfLimit;
  return Number.isFinite(f) ? `${(100 * f).toFixed(0)}%` : '';
}
/** A table entry: the median, '—' when it failed, 'n/a' when the engine has no such cell; '*' when others used the CPUs meanwhile. */
function show(cell, key, digits = 1) {
  if (!cell) return 'n/a';
  const { v } = cellValue(cell, key);
  return fmt(v, digits) + (Number.isFinite(v) && cell.otherCpuShare > BUSY ? '*' : '');
}

function cellValue(cell, key) {
  if (!cell) return { v: NaN, err: 'not run' };
  if (cell.error) return { v: NaN, err: cell.error.message };
  const t = cell[key];
  if (!t) return { v: NaN, err: 'not measured' };
  if (t.error) return { v: NaN, err: t.error.message };
  return { v: t.median };
}

/** Which llama.cpp file a row compares against, where it is not the same precision. */
const P_GGUF_NOTE = {};
for (const [p, P] of Object.entries(PRECISIONS)) if (P.scheme) P_GGUF_NOTE[p] = ` (llama.cpp: ${P.gguf.toUpperCase()})`;

/**
 * Prefill against the arithmetic peak: the matrix products' multiply-adds per
 * token (every weight of the float32 checkpoint but the embedding; the head
 * runs for the last token only; the scan and conv are left out, so this is a
 * lower bound of the work) x 2 x tokens/s, over the level's f32 or int8 peak.
 * Not for mixture-of-experts models (a token runs only its experts).
 */
function ofPeak(results, name, m, p, tokPerSec) {
  const peak = results.arithmeticPeak, spec = C.MODELS[name];
  const f32cell = m.cells.f32 && m.cells.f32['node-mamba'];
  if (!peak || !Number.isFinite(tokPerSec) || (spec.hybrid && spec.hybrid.experts) || !f32cell || f32cell.error) return '';
  const macs = f32cell.weightBytes / 4 - f32cell.vocabSize * spec.dModel;
  // (q8_0 / q4_0 with rounded inputs: int8 products on the block panels)
  const int8 = PRECISIONS[p].scheme === 'w8a8' || PRECISIONS[p].scheme === 'w4a8' || p === 'q8_0' || p === 'q4_0';
  const limit = int8 ? peak.int8Gops.best : peak.f32Gflops.best;
  if (!(macs > 0) || !(limit > 0)) return '';
  return `${fmt((100 * 2 * macs * tokPerSec) / (limit * 1e9), 0)}% of the ${int8 ? 'int8' : 'f32'} peak (${fmt(limit, 0)} G/s)`;
}

function buildTable(results) {
  const rows = [];  // [label, nm, llama, ratio, note]
  const failures = [];
  for (const [name, m] of Object.entries(results.models)) {
    rows.push({ heading: `${name} (d_model ${C.MODELS[name].dModel}, ${C.MODELS[name].nLayer} layers, ${C.MODELS[name].arch})` });
    for (const e of m.errors ? Object.entries(m.errors) : []) failures.push(`${name} ${e[0]}: ${e[1]}`);
    const ps = Object.keys(m.cells);
    for (const p of ps) {
      for (const [engine, cell] of Object.entries(m.cells[p])) {
        if (cell.error) { failures.push(`${name} ${p} ${engine}: ${cell.error.message}`); continue; }
        for (const [k, v] of Object.entries(cell)) if (v && typeof v === 'object' && v.error) failures.push(`${name} ${p} ${engine} ${k}: ${v.error.message}`);
      }
    }
    for (const p of ps) {
      const c = m.cells[p];
      const a = cellValue(c['node-mamba'], 'decode'), b = cellValue(c['llama.cpp'], 'decode');
      const lim = m.limits[p];
      rows.push([`decode b1 ${p} tok/s`, show(c['node-mamba'], 'decode'), show(c['llama.cpp'], 'decode'), fmt(ratio(a.v, b.v), 2),
        (P_GGUF_NOTE[p] ? `${P_GGUF_NOTE[p].trim()} ` : '') + (lim ? `limit ${fmt(lim.tokensPerSecond)} tok/s (${mb(lim.weightBytes)} MB weights + ${mb(lim.stateBytes || 0)} MB state per token at ${fmt(lim.bandwidthGBps)} GB/s); of the limit: node-mamba ${frac(c['node-mamba']) || '—'}` +
          (c['llama.cpp'] ? `, llama.cpp ${frac(c['llama.cpp']) || '—'}` : '') : '')]);
    }
    for (const p of ps.filter((q) => PRECISIONS[q].prefill)) {
      for (const len of [512, 2048]) {
        const c = m.cells[p];
        const a = cellValue(c['node-mamba'], `prefill${len}`), b = cellValue(c['llama.cpp'], `prefill${len}`);
        const f32 = p !== 'f32' && m.cells.f32 ? cellValue(m.cells.f32['node-mamba'], `prefill${len}`).v : NaN;
        const pk = ofPeak(results, name, m, p, a.v);
        rows.push([`prefill ${len} ${p} tok/s`, show(c['node-mamba'], `prefill${len}`), show(c['llama.cpp'], `prefill${len}`), fmt(ratio(a.v, b.v), 2),
          [Number.isFinite(f32) ? `x node-mamba f32: ${fmt(ratio(a.v, f32), 2)}` : '', (P_GGUF_NOTE[p] || '').trim(), pk].filter(Boolean).join('; ')]);
      }
    }
    for (const p of ps) {
      const c = m.cells[p];
      const a = cellValue(c['node-mamba'], 'batch'), b = cellValue(c['llama.cpp'], 'batch');
      const a1 = cellValue(c['node-mamba'], 'decode').v, b1 = cellValue(c['llama.cpp'], 'decode').v;
      rows.push([`8 seqs ${p} tok/s (sum)`, show(c['node-mamba'], 'batch'), show(c['llama.cpp'], 'batch'), fmt(ratio(a.v, b.v), 2),
        `x b1: node-mamba ${fmt(ratio(a.v, a1), 2)}, llama.cpp ${fmt(ratio(b.v, b1), 2)}`]);
    }
    // f16 size: half the f32 checkpoint's (the issue's "a quarter of the f16 size" for 4 bits)
    const f16 = m.fileBytes && m.fileBytes.f32 ? m.fileBytes.f32.nm / 2 : NaN;
    for (const p of ps) {
      const fb = m.fileBytes && m.fileBytes[p];
      if (!fb) continue;
      rows.push([`file ${p} MB`, Number.isFinite(fb.nm) ? mb(fb.nm) : '—', Number.isFinite(fb.llama) ? mb(fb.llama) : 'n/a', fmt(ratio(fb.nm, fb.llama), 2),
        Number.isFinite(f16) ? `x f16 size: node-mamba ${fmt(fb.nm / f16, 3)}${Number.isFinite(fb.llama) ? `, llama.cpp ${fmt(fb.llama / f16, 3)}` : ''}` : '']);
    }
    for (const p of ps) {
      const c = m.cells[p];
      const x = c['node-mamba'], y = c['llama.cpp'];
      const ok = (z) => z && !z.error;
      rows.push([`load ${p} s`, ok(x) ? fmt(x.loadSeconds, 3) : '—', y ? (ok(y) ? fmt(y.loadSeconds, 3) : '—') : 'n/a',
        ok(x) && ok(y) ? fmt(ratio(x.loadSeconds, y.loadSeconds), 2) : '—', '']);
    }
    for (const p of ps) {
      const c = m.cells[p];
      const x = c['node-mamba'], y = c['llama.cpp'];
      const ok = (z) => z && !z.error && z.peak;
      const ref = m.memoryReference[p];
      const note = ref
        ? `weights+8 states ${mb(ref)} MB; peak/ref: node-mamba ${ok(x) ? fmt(x.peak.vmHWM / ref, 2) : '—'}` +
          ` (${ok(x) ? fmt((x.peak.vmHWM - x.rssBeforeLoad) / ref, 2) : '—'} above its pre-load RSS)` +
          (y ? `, llama.cpp ${ok(y) ? fmt(y.peak.vmHWM / ref, 2) : '—'} (${ok(y) ? fmt((y.peak.vmHWM - y.rssBeforeLoad) / ref, 2) : '—'})` : '')
        : '';
      rows.push([`peak RSS ${p} MB`, ok(x) ? mb(x.peak.vmHWM) : '—', y ? (ok(y) ? mb(y.peak.vmHWM) : '—') : 'n/a',
        ok(x) && ok(y) ? fmt(ratio(x.peak.vmHWM, y.peak.vmHWM), 2) : '—', note]);
    }
  }
  const head = ['', 'node-mamba', 'llama.cpp', 'nm/llama', ''];
  const w = [26, 11, 11, 9];
  const line = (r) => r.slice(0, 4).map((s, i) => (i === 0 ? String(s).padEnd(w[i]) : String(s).padStart(w[i]))).join(' ') + (r[4] ? `  ${r[4]}` : '');
  const out = [line(head)];
  for (const r of rows) out.push(r.heading ? `\n${r.heading}` : line(r));
  return { text: out.join('\n'), failures };
}

// ---------------------------------------------------------------- main

async function quiet(o) {
  if (!o.waitQuiet) return;
  const share = await waitQuiet(o.waitQuiet);
  if (share >= 0.15) log(`other processes use ${(100 * share).toFixed(0)}% of the CPUs; measuring anyway (waited ${o.waitQuiet} s)`);
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const { kernels } = C.requireDist();
  if (o.threads) kernels.setThreads(o.threads);
  const threads = kernels.runtimeInfo().threads;
  const machine = machineInfo(kernels);
  const git = gitCommit();
  let llamaVersion = null;
  try {
    llamaVersion = C.llamaPackage().version;
  } catch { /* reported per cell */ }
  log(`${machine.cpuModel}, ${machine.physicalCores} cores, ${machine.isa}; ${threads} threads; node-llama-cpp ${llamaVersion || 'not installed'}; load average ${os.loadavg()[0].toFixed(2)}`);

  const bwOpts = { bytes: 512 << 20, repeats: o.plan.bwRepeats };
  const bwStart = kernels.measureReadBandwidth(bwOpts);
  log(`read bandwidth ${bwStart.bestGBps.toFixed(1)} GB/s (best of ${bwStart.repeats}; median ${bwStart.medianGBps.toFixed(1)})`);
  // The compute limit of prefill: the level's float32 and int8 multiply-add rates.
  const peak = kernels.measureArithmeticPeak({ repeats: 5 });
  log(`arithmetic peak (${peak.isa}, ${peak.threads} threads): f32 ${peak.f32Gflops.best.toFixed(0)} GFLOP/s, int8 (${peak.int8Op}) ${peak.int8Gops.best.toFixed(0)} GOP/s`);

  const results = {
    date: new Date().toISOString(), ...git, machine, threads, quick: o.quick, nodeLlamaCpp: llamaVersion,
    plan: o.plan, loadAverageStart: os.loadavg(), bandwidth: { start: bwStart }, arithmeticPeak: peak, models: {},
  };

  for (const name of o.models) {
    const m = { cells: {}, limits: {}, memoryReference: {}, fileBytes: {}, errors: {} };
    results.models[name] = m;
    // A model may support only some precisions (bench/common.js MODELS[name].precisions).
    const precisions = o.precisions.filter((p) => !C.MODELS[name].precisions || C.MODELS[name].precisions.includes(p));
    const { dirs, ggufs, quants } = await prepare(o, name, precisions, m.errors);
    for (const p of precisions) {
      const P = PRECISIONS[p];
      const cell = {};
      m.cells[p] = cell;
      const common = { threads, seed: o.seed, decode: o.plan.decode, prefill: P.prefill ? o.plan.prefill : null, batch: o.plan.batch };
      if (o.engines.includes('node-mamba')) {
        const src = P.nodeMamba === 'dir' ? dirs[P.checkpoint] : P.nodeMamba === 'quant' ? quants[P.scheme] : ggufs[P.gguf];
        await quiet(o);
        log(`${name} ${p}: node-mamba`);
        cell['node-mamba'] = src ? await runWorker({ mode: 'node-mamba', model: src, ...common }, o.timeout)
          : { error: { message: `no ${P.nodeMamba === 'dir' ? `${P.checkpoint} checkpoint` : P.nodeMamba === 'quant' ? `${P.scheme} checkpoint` : `${P.gguf} GGUF`}` } };
      }
      if (o.engines.includes('llama.cpp') && P.gguf) {
        await quiet(o);
        log(`${name} ${p}: llama.cpp`);
        cell['llama.cpp'] = ggufs[P.gguf] ? await runLlamaCppWorker({ mode: 'llama.cpp', model: ggufs[P.gguf], ...common }, o.timeout)
          : { error: { message: `no ${P.gguf} GGUF` } };
      }
      // The files each engine loads (node-mamba: its safetensors or GGUF; llama.cpp: its GGUF).
      const sizeOf = (f) => { try { return fs.statSync(f).size; } catch { return NaN; } };
      m.fileBytes[p] = {
        nm: sizeOf(P.nodeMamba === 'gguf' ? ggufs[P.gguf] : path.join(P.nodeMamba === 'quant' ? quants[P.scheme] : dirs[P.checkpoint], 'model.safetensors')),
        llama: P.gguf ? sizeOf(ggufs[P.gguf]) : NaN,
      };
      // Bytes read per decoded token: every weight once, except an untied
      // embedding (one row per token; the quantized checkpoints untie it),
      // and the sequence's state (stateBytes, added below).
      const nm = cell['node-mamba'];
      // Per token a step also reads each sequence's recurrent state (Mamba-2:
      // 24 layers x 24 heads x 64 x 128 floats = 18.9 MB for mamba2-130m).
      const stateBytes = nm && !nm.error && Number.isFinite(nm.stateBytesPerSequence) ? nm.stateBytesPerSequence : 0;
      let weightBytes = nm && !nm.error ? (nm.decodeBytesPerToken ?? nm.weightBytes) : NaN;
      if (!Number.isFinite(weightBytes)) {
        try {
          weightBytes = P.nodeMamba === 'gguf' ? fs.statSync(ggufs[P.gguf]).size
            : fs.statSync(path.join(P.nodeMamba === 'quant' ? quants[P.scheme] : dirs[P.checkpoint], 'model.safetensors')).size;
        } catch { /* unknown */ }
      }
      if (Number.isFinite(weightBytes)) {
        // Each decode run is compared with the bandwidth sampled around it (the
        // larger of the samples before its prompt and right after it, same process);
        // fractionOfLimit is the median over runs. The limit
        // shown is at the median bandwidth sampled in node-mamba's cell (else
        // the run's start).
        const readBytes = weightBytes + stateBytes;
        for (const e of Object.values(cell)) {
          const dd = e && !e.error && e.decode;
          if (dd && Array.isArray(dd.bandwidthGBps)) {
            dd.fractionOfLimit = C.median(dd.runs.map((rate, i) => (rate * readBytes) / (dd.bandwidthGBps[i] * 1e9)));
            dd.medianBandwidthGBps = C.median(dd.bandwidthGBps);
          }
        }
        const nmd = nm && !nm.error && nm.decode;
        const bw = nmd && Number.isFinite(nmd.medianBandwidthGBps) ? nmd.medianBandwidthGBps : bwStart.bestGBps;
        m.limits[p] = { weightBytes, stateBytes, bandwidthGBps: bw, tokensPerSecond: (bw * 1e9) / readBytes };
        const state = stateBytes;
        // Memory holds every weight (the untied embedding too), not only the bytes a step reads.
        const allWeights = nm && !nm.error && Number.isFinite(nm.weightBytes) ? nm.weightBytes : weightBytes;
        m.memoryReference[p] = allWeights + o.plan.batch.n * state;
      }
    }
    if (Object.keys(m.errors).length === 0) delete m.errors;
  }

  const bwEnd = kernels.measureReadBandwidth(bwOpts);
  results.bandwidth.end = bwEnd;
  results.loadAverageEnd = os.loadavg();
  results.seconds = (Date.now() - t0) / 1000;
  log(`read bandwidth at the end ${bwEnd.bestGBps.toFixed(1)} GB/s (best; median ${bwEnd.medianGBps.toFixed(1)}); the limits use the bandwidth sampled around each decode run (the larger of the samples before its prompt and after it)`);

  const { text, failures } = buildTable(results);
  results.table = text;
  results.failures = failures;
  const header = `node-mamba vs llama.cpp ${llamaVersion || '(node-llama-cpp not installed)'} — ${machine.cpuModel}, ${threads} threads, ${machine.isa}; ` +
    `read bandwidth ${bwStart.bestGBps.toFixed(1)} GB/s (best of ${bwStart.repeats} at the start; ${bwEnd.bestGBps.toFixed(1)} at the end; medians ${bwStart.medianGBps.toFixed(1)}, ${bwEnd.medianGBps.toFixed(1)}); ` +
    `arithmetic peak f32 ${peak.f32Gflops.best.toFixed(0)} GFLOP/s, int8 ${peak.int8Gops.best.toFixed(0)} GOP/s (${peak.int8Op}); ` +
    `commit ${git.commit.slice(0, 10)}${git.dirty ? '+dirty' : ''}; ${results.seconds.toFixed(0)} s; medians, ratio = node-mamba / llama.cpp; ` +
    `node-mamba inputRounding 'auto' (bf16 / q8_0 matrices get bf16 / int8 inputs, as in llama.cpp)`;
  console.log(`${header}\n\n${text}`);
  if (/\d\*/.test(text)) console.log(`\n* other processes used more than ${100 * BUSY}% of the CPUs during that measurement (otherCpuShare in the JSON): noisy.`);
  if (failures.length) console.log(`\nNot measured:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
  const busy = [];
  for (const [name, m] of Object.entries(results.models)) {
    for (const [p, c] of Object.entries(m.cells)) {
      for (const [e, cell] of Object.entries(c)) if (cell.otherCpuShare > BUSY) busy.push(`${name} ${p} ${e} ${(100 * cell.otherCpuShare).toFixed(0)}%`);
    }
  }
  results.contended = busy;
  if (busy.length) console.log(`\nWarning: other processes used the CPUs during ${busy.length} measurement(s): ${busy.join(', ')}.`);
  if (o.save) {
    const dir = path.join(__dirname, 'results');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, o.quick ? 'latest-quick.json' : 'latest.json');
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(results, null, 2) + '\n');
    fs.renameSync(tmp, file);
    fs.appendFileSync(path.join(dir, 'history.jsonl'), JSON.stringify(historyLine(results)) + '\n');
    log(`wrote ${path.relative(process.cwd(), file)} and appended to bench/results/history.jsonl`);
  }
}

/** One short line per run: commit, date, machine, and the headline medians. */
function historyLine(r) {
  const h = {
    commit: r.commit, dirty: r.dirty, date: r.date, quick: r.quick,
    machine: `${r.machine.cpuModel}, ${r.machine.physicalCores} cores, ${r.machine.isa}`, threads: r.threads,
    bandwidthGBps: +r.bandwidth.start.bestGBps.toFixed(2), nodeLlamaCpp: r.nodeLlamaCpp, models: {},
  };
  const med = (cell, k) => (cell && !cell.error && cell[k] && !cell[k].error ? +cell[k].median.toFixed(2) : null);
  for (const [name, m] of Object.entries(r.models)) {
    const s = {};
    for (const [p, c] of Object.entries(m.cells)) {
      for (const [e, tag] of [['node-mamba', 'nm'], ['llama.cpp', 'llama']]) {
        if (!c[e]) continue;
        for (const k of ['decode', 'prefill512', 'prefill2048', 'batch']) {
          const v = med(c[e], k);
          if (v !== null) s[`${tag}.${k}.${p}`] = v;
        }
      }
    }
    h.models[name] = s;
  }
  return h;
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
