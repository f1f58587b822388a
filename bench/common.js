// Helpers shared by the benchmark's orchestrator (run.js) and its child
// processes (worker.js). Plain CommonJS: runs from a clean clone after
// `npm ci && npm run build`, without a TypeScript step.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

/** The compiled library: ../dist, or NODE_MAMBA_DIST (a dist built elsewhere). */
function distDir() {
  return path.resolve(process.env.NODE_MAMBA_DIST || path.join(__dirname, '..', 'dist'));
}

function requireDist(rel = '') {
  return require(path.join(distDir(), rel));
}

/** The models of the table: random weights, real shapes. */
const MODELS = {
  'mamba-130m': { arch: 'mamba', dModel: 768, nLayer: 24 },
  'mamba-370m': { arch: 'mamba', dModel: 1024, nLayer: 48 },
  'mamba2-130m': { arch: 'mamba2', dModel: 768, nLayer: 24, dState: 128, headdim: 64 },
  // Hybrids (lib/testing/random_hybrid_checkpoint.ts options), scaled down from
  // ai21labs/Jamba-tiny-dev and ibm-granite/granite-4.0-h-tiny with their ratios:
  // Jamba one attention layer in 8 (period 8, offset 4), MoE every other
  // layer, 16 experts top-2; Granite one attention layer in 8, 64 small experts
  // top-6 plus a shared expert, Mamba-2 heads of 64, d_state 128, no RoPE.
  'jamba-tiny-dev-like': {
    arch: 'jamba', dModel: 1024, nLayer: 8, precisions: ['f32', 'f16', 'q8_0', 'q4_0', 'w8a8', 'w4a8', 'w4a16'],
    hybrid: {
      family: 'jamba', hiddenSize: 1024, nLayer: 8, nHeads: 16, nKvHeads: 8, experts: 16, topK: 2, expertDim: 1024,
      attnLayerPeriod: 8, attnLayerOffset: 4, expertLayerPeriod: 2, expertLayerOffset: 1,
      mambaDState: 16, mambaDConv: 4, mambaExpand: 2, tied: false,
    },
  },
  'granite-4.0-h-tiny-like': {
    arch: 'granitehybrid', dModel: 768, nLayer: 8, precisions: ['f32', 'f16', 'q8_0', 'q4_0', 'w8a8', 'w4a8', 'w4a16'],
    hybrid: {
      family: 'granitemoehybrid', hiddenSize: 768, nLayer: 8, nHeads: 12, nKvHeads: 4,
      layerTypes: ['mamba', 'mamba', 'mamba', 'attention', 'mamba', 'mamba', 'mamba', 'mamba'],
      experts: 64, topK: 6, expertDim: 256, sharedDim: 512,
      mambaNHeads: 24, mambaNGroups: 1, mambaDState: 128, mambaDConv: 4, mambaExpand: 2,
      embeddingMultiplier: 12, residualMultiplier: 0.22, attentionMultiplier: 1 / 64, logitsScaling: 6,
      positionEmbeddingType: 'nope', tied: true,
    },
  },
};
/** GPT-NeoX-20B tokenizer size; padded to 50280 (multiple of 8) in the checkpoints. */
const TOKENIZER_VOCAB = 50277;
const PAD_VOCAB_MULTIPLE = 8;
/** Bump when the checkpoint recipe changes (invalidates bench/.cache). */
const CACHE_VERSION = 1;

/** Resident-memory figures of this process, in bytes (Linux /proc/self/status). */
function procStatus() {
  const out = { vmHWM: NaN, vmRSS: NaN, rssAnon: NaN, rssFile: NaN };
  try {
    const text = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (key) => {
      const m = text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
      return m ? Number(m[1]) * 1024 : NaN;
    };
    out.vmHWM = kb('VmHWM');
    out.vmRSS = kb('VmRSS');
    out.rssAnon = kb('RssAnon');
    out.rssFile = kb('RssFile');
  } catch {
    /* not Linux: NaN */
  }
  return out;
}

function median(xs) {
  const a = xs.filter(Number.isFinite).sort((x, y) => x - y);
  if (a.length === 0) return NaN;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : 0.5 * (a[m - 1] + a[m]);
}

/** { median, min, max, runs } of a list of rates. */
function summary(runs) {
  const a = runs.filter(Number.isFinite);
  return { median: median(a), min: a.length ? Math.min(...a) : NaN, max: a.length ? Math.max(...a) : NaN, runs };
}

/** mulberry32 (lib/testing/random_checkpoint.ts): the same token streams for both engines. */
function rng(seed) {
  return requireDist('testing/random_checkpoint').rng(seed);
}

/** `n` token ids in [0, TOKENIZER_VOCAB), deterministic in `seed`. */
function randomTokens(n, seed) {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * TOKENIZER_VOCAB));
}

function argmax(a) {
  let best = 0;
  let v = a[0];
  for (let i = 1; i < a.length; i++) if (a[i] > v) { v = a[i]; best = i; }
  return best;
}

/** node-llama-cpp's package.json (its "exports" hide it from require.resolve), or null. */
function llamaPackage() {
  for (const dir of module.paths) {
    try {
      return JSON.parse(fs.readFileSync(path.join(dir, 'node-llama-cpp', 'package.json'), 'utf8'));
    } catch { /* next */ }
  }
  return null;
}

/** Busy and total CPU seconds of the whole machine so far (/proc/stat), or null. */
function cpuTimes() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = f[3] + (f[4] || 0);
    return { busy: (total - idle) / 100, total: total / 100 };  // USER_HZ = 100 on Linux
  } catch {
    return null;
  }
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

/** The value after `--name` on the command line, or `def`. */
function option(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

module.exports = {
  option,
  distDir, requireDist, MODELS, TOKENIZER_VOCAB, PAD_VOCAB_MULTIPLE, CACHE_VERSION,
  procStatus, cpuTimes, llamaPackage, median, summary, rng, randomTokens, argmax, now,
};
