// Trained byte-level models (test/fixtures/trained/, made by
// scripts/train_byte_mamba.py and, for the Granite 4.0-H-like hybrid,
// scripts/train_byte_hybrid.py, with PyTorch on tinyshakespeare): node-mamba
// must give the held-out perplexity that PyTorch measured on the same weights.
// Unlike the random-weight tests, these weights are what training produces
// (learned dt, A, conv taps, gated-norm scales), and a perplexity over 8192
// positions exercises the recurrence far past any chunk or prefill boundary.
//
// Everything read here is under test/fixtures/trained/ (README.md there says
// how it was made); PyTorch is not needed to run this test.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../../lib';

const ROOT = path.join(__dirname, '..', 'fixtures', 'trained');

interface ModelMetrics {
  model_type: 'mamba' | 'mamba2' | 'granitemoehybrid';
  window_bytes: number;
  pytorch_window_nll: number;
  pytorch_window_ppl: number;
}
interface Metrics {
  models: Record<string, ModelMetrics>;
}

const metrics = JSON.parse(fs.readFileSync(path.join(ROOT, 'metrics.json'), 'utf8')) as Metrics;
const heldout = fs.readFileSync(path.join(ROOT, 'heldout.txt'));

// Tolerance on the perplexity, relative: 2e-4. PyTorch's value is float64
// arithmetic on the stored float32 weights; node-mamba computes in float32.
// The relative error of exp(mean NLL) is the absolute error of the mean NLL;
// float32 logits carry errors of ~1e-6 relative per position, which largely
// average out over 8191 positions: the measured disagreement is ~1e-8
// (1.3e-8 mamba1-bytes, 9e-9 mamba2-bytes, 2.6e-8 granite-bytes, on a 2-core AVX-512 machine). 2e-4
// leaves room for other summation orders, thread counts and ISA levels, and
// is still far below what a semantic difference costs: on these weights,
// Hugging Face's ungrouped gated norm (MambaRMSNormGated) instead of the
// per-group one moves the mamba2 perplexity by 6%, a perturbed dt softplus
// moves the mamba1 one by 2%, reversed conv taps by a factor of 50.
const RTOL = 2e-4;

/** exp(mean over t < n-1 of -log softmax(logits[t])[ids[t+1]]), in float64. */
function perplexity(logits: Float32Array, ids: Uint8Array, V: number): number {
  let nll = 0;
  const n = ids.length;
  for (let tk = 0; tk < n - 1; tk++) {
    const row = tk * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[row + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[row + v] - max);
    nll += max + Math.log(sum) - logits[row + ids[tk + 1]];
  }
  return Math.exp(nll / (n - 1));
}

for (const dir of ['mamba1-bytes', 'mamba2-bytes', 'granite-bytes']) {
  t.test(`${dir}: held-out perplexity equals PyTorch's`, async (t) => {
    const m = metrics.models[dir];
    t.ok(m, `metrics.json has ${dir}`);
    // (the hybrid's attention layer holds the whole 8192-byte window in its KV cache)
    const hybrid = m.model_type === 'granitemoehybrid';
    const model = await loadModel(path.join(ROOT, dir), hybrid ? { contextSize: 8192, kvCacheType: 'f32' } : {});
    t.teardown(() => model.dispose());
    t.equal(hybrid ? model.config.family : model.config.arch, m.model_type, 'architecture');
    t.equal(model.vocabSize, 256, 'one token per byte');

    const window = new Uint8Array(heldout.subarray(0, m.window_bytes));
    t.equal(window.length, 8192, 'the window is the first 8192 bytes of heldout.txt');
    const logits = await model.forward(window); // token id = byte value
    t.equal(logits.length, window.length * 256, 'logits for every position');
    const ppl = perplexity(logits, window, 256);
    const rel = Math.abs(ppl - m.pytorch_window_ppl) / m.pytorch_window_ppl;
    t.ok(rel <= RTOL,
      `perplexity ${ppl.toFixed(6)} vs PyTorch ${m.pytorch_window_ppl.toFixed(6)}: relative difference ${rel.toExponential(2)} <= ${RTOL}`);
    t.ok(ppl < 10, `the model is trained (perplexity ${ppl.toFixed(3)} < 10; a byte unigram model gets ~28 here)`);

    // The checkpoint's own tokenizer.json: one token per byte, id = byte value.
    t.same(model.tokenizer.encode('Hello, world\n'), [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 10], 'encode("Hello, world\\n")');
    const text = 'Hello, world\nO Romeo, wherefore art thou? — “café” 日本 🙂';
    const bytes = [...Buffer.from(text, 'utf8')];
    t.same(model.tokenizer.encode(text), bytes, 'encode gives the UTF-8 bytes');
    t.equal(model.tokenizer.decode(bytes), text, 'decode round-trips multi-byte UTF-8');
    t.equal(model.tokenizer.vocabSize, 256, 'tokenizer vocabulary: 256 ids');
    const all = Array.from({ length: 256 }, (_, i) => i);
    t.same([...Buffer.from(model.tokenizer.decode(all.slice(0, 128)), 'utf8')], all.slice(0, 128),
      'every ASCII byte decodes to itself');
    const sample = heldout.subarray(0, 2000);
    t.same(model.tokenizer.encode(sample.toString('utf8')), [...sample], 'held-out text encodes to its bytes');
  });
}
