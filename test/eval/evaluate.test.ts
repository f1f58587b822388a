// evaluate(): perplexity, bits per byte, KL divergence and top-1 agreement
// against an independent float64 computation from model.forward() logits,
// the windows it scores (one window, several with a tail, overlapping with a
// stride), string input through a tokenizer, and its errors.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  evaluate, exportGguf, loadModel, MambaModel, VocabularyMismatchError, type EvaluateProgress, type Tokenizer,
} from '../../lib';
import { rng, writeRandomCheckpoint } from '../helpers/checkpoint_writer';
import { writeTinyTokenizer } from '../helpers/gguf_fixtures';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-eval-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const dirA = path.join(root, 'a'), dirA16 = path.join(root, 'a-bf16'), dirB = path.join(root, 'b'), dirC = path.join(root, 'c'), dirBig = path.join(root, 'big');
writeRandomCheckpoint(dirA, { arch: 'mamba', dModel: 32, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: false, dialect: 'hf', seed: 31 });
// A's weights rounded to bf16: a close model, as a quantized one is to its original.
writeRandomCheckpoint(dirA16, { arch: 'mamba', dModel: 32, nLayer: 2, vocabSize: 300, dtype: 'bf16', tied: false, dialect: 'hf', seed: 31 });
// A with noise on its lm_head (relative 0.5): some argmaxes change, not all.
const dirAn = path.join(root, 'a-noisy');
fs.cpSync(dirA, dirAn, { recursive: true });
{
  const file = path.join(dirAn, 'model.safetensors');
  const buf = fs.readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const entry = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'))['lm_head.weight'] as { dtype: string; data_offsets: [number, number] };
  const noise = rng(99);
  for (let o = 8 + headerLen + entry.data_offsets[0]; o < 8 + headerLen + entry.data_offsets[1]; o += 4) {
    buf.writeFloatLE(buf.readFloatLE(o) * (1 + (noise() - 0.5)), o);
  }
  fs.writeFileSync(file, buf);
}
writeRandomCheckpoint(dirB, { arch: 'mamba2', dModel: 32, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: true, dialect: 'hf', seed: 32, headdim: 16, dState: 16 });
writeRandomCheckpoint(dirC, { arch: 'mamba', dModel: 32, nLayer: 1, vocabSize: 320, dtype: 'f32', tied: true, dialect: 'hf', seed: 33 });
// The GPT-NeoX vocabulary (50277, padded to 50280): string input through the default tokenizer.
writeRandomCheckpoint(dirBig, { arch: 'mamba', dModel: 32, nLayer: 1, vocabSize: 50277, padVocabMultiple: 8, dtype: 'f16', tied: true, dialect: 'hf', seed: 34 });

// Relative tolerance between evaluate() and the test's own float64 sums over
// the same float32 logits: only the order of float64 additions differs.
const REL = 1e-9;
const close = (t: Test, got: number, want: number, what: string) =>
  t.ok(Math.abs(got - want) <= REL * Math.max(1, Math.abs(want)), `${what}: ${got} vs ${want}`);

const random = rng(7);
const randomIds = (n: number, vocab = 300) => Array.from({ length: n }, () => Math.floor(random() * vocab));

/** log-softmax of one row in float64, written independently of lib/eval. */
function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - max);
  const lse = max + Math.log(s);
  return Float64Array.from(row, (x) => x - lse);
}
const argmax = (a: ArrayLike<number>) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };

interface Expected { tokens: number; windows: number; nll: number; kl?: number; top1?: number; refNll?: number; targets: number[][] }

/**
 * The Hugging Face perplexity recipe, written out: windows begin every
 * `stride` tokens, each scores the labels after the previous window's end
 * (trg_len), the first label of a window has no prediction; stop at the end.
 */
async function expected(m: MambaModel, ids: number[], windowSize: number, stride: number, ref?: MambaModel): Promise<Expected> {
  const V = m.vocabSize;
  let nll = 0, kl = 0, agree = 0, refNll = 0, tokens = 0, windows = 0, prevEnd = 0;
  const targets: number[][] = [];
  for (let begin = 0; begin < ids.length; begin += stride) {
    const end = Math.min(begin + windowSize, ids.length);
    const trgLen = end - prevEnd;
    const input = ids.slice(begin, end);
    const scoredHere: number[] = [];
    for (let j = input.length - trgLen; j < input.length; j++) if (j >= 1) scoredHere.push(j);
    if (scoredHere.length > 0) {
      windows++;
      targets.push(scoredHere.map((j) => input[j]));
      const logits = await m.forward(input);
      const refLogits = ref ? await ref.forward(input) : undefined;
      for (const j of scoredHere) {
        const lp = logSoftmax(logits.subarray((j - 1) * V, j * V));
        nll -= lp[input[j]];
        tokens++;
        if (refLogits) {
          const rowR = refLogits.subarray((j - 1) * V, j * V);
          const lr = logSoftmax(rowR);
          refNll -= lr[input[j]];
          let k = 0;
          for (let v = 0; v < V; v++) k += Math.exp(lr[v]) * (lr[v] - lp[v]);
          kl += k;
          if (argmax(rowR) === argmax(logits.subarray((j - 1) * V, j * V))) agree++;
        }
      }
    }
    prevEnd = end;
    if (end === ids.length) break;
  }
  return { tokens, windows, nll: nll / tokens, targets, ...(ref ? { kl: kl / tokens, top1: agree / tokens, refNll: refNll / tokens } : {}) };
}

t.test('perplexity equals the float64 computation from forward() logits', async (t) => {
  const a = await loadModel(dirA);
  t.teardown(() => a.dispose());
  const ids = randomIds(50);
  const cases: Array<{ name: string; n: number; windowSize?: number; stride?: number; windows: number; tokens: number }> = [
    { name: 'one window (default size, text shorter)', n: 20, windows: 1, tokens: 19 },
    { name: 'one window of exactly windowSize', n: 16, windowSize: 16, windows: 1, tokens: 15 },
    { name: 'several windows with a tail of 2', n: 50, windowSize: 16, windows: 4, tokens: 46 },
    { name: 'a tail of 1 token scores nothing and is not run', n: 49, windowSize: 16, windows: 3, tokens: 45 },
    { name: 'stride 5 (overlapping): every token but the first scored once', n: 50, windowSize: 16, stride: 5, windows: 8, tokens: 49 },
    { name: 'stride 1', n: 12, windowSize: 4, stride: 1, windows: 9, tokens: 11 },
  ];
  for (const c of cases) {
    const text = ids.slice(0, c.n);
    const W = c.windowSize ?? 1024;
    const want = await expected(a, text, W, c.stride ?? W);
    const r = await evaluate({ model: a, text, ...(c.windowSize ? { windowSize: c.windowSize } : {}), ...(c.stride ? { stride: c.stride } : {}) });
    t.equal(want.windows, c.windows, `${c.name}: the recipe's window count`);
    t.equal(want.tokens, c.tokens, `${c.name}: the recipe's token count`);
    t.equal(r.windows, c.windows, `${c.name}: windows`);
    t.equal(r.tokens, c.tokens, `${c.name}: tokens`);
    t.equal(r.textTokens, c.n);
    close(t, r.nll, want.nll, `${c.name}: nll`);
    close(t, r.perplexity, Math.exp(want.nll), `${c.name}: perplexity`);
    t.equal(r.reference, undefined);
    t.ok(r.seconds >= 0);
  }
  // Int32Array input and maxTokens.
  const r1 = await evaluate({ model: a, text: Int32Array.from(ids), windowSize: 16, maxTokens: 30 });
  const r2 = await evaluate({ model: a, text: ids.slice(0, 30), windowSize: 16 });
  t.same({ ...r1, seconds: 0 }, { ...r2, seconds: 0 }, 'maxTokens reads the first tokens only; Int32Array as number[]');
  t.notOk(a.isDisposed, 'a model passed in stays loaded');
  t.equal(a.sequenceCount, 0);
});

t.test('a model against itself: KL 0, top-1 agreement 1; against another: the float64 KL', async (t) => {
  const a = await loadModel(dirA);
  const a16 = await loadModel(dirA16);
  const an = await loadModel(dirAn);
  const b = await loadModel(dirB);
  t.teardown(() => { a.dispose(); a16.dispose(); an.dispose(); b.dispose(); });
  const ids = randomIds(40);
  const self = await evaluate({ model: a, text: ids, reference: a, windowSize: 16 });
  t.ok(self.reference, 'reference result');
  t.ok(Math.abs(self.reference!.klDivergence) <= 1e-9, `KL(a || a) = ${self.reference!.klDivergence}`);
  t.equal(self.reference!.top1Agreement, 1);
  t.equal(self.reference!.referencePerplexity, self.perplexity);
  // The same checkpoint loaded again from its path (and disposed by evaluate).
  const byPath = await evaluate({ model: a, text: ids, reference: dirA, windowSize: 16 });
  t.ok(Math.abs(byPath.reference!.klDivergence) <= 1e-9, `KL(a || a loaded from its path) = ${byPath.reference!.klDivergence}`);
  t.equal(byPath.reference!.top1Agreement, 1);

  // A random model of the other architecture (far: KL of nats, no agreement),
  // A in bf16 (close: small KL, argmaxes agree) and A with a noisy lm_head
  // (between the two) as the model measured against A.
  const pairs: Array<[string, MambaModel, MambaModel, number, number]> = [
    ['a vs reference b', a, b, 16, 16], ['a vs reference b', a, b, 16, 6], ['a-bf16 vs reference a', a16, a, 16, 16],
    ['a-noisy vs reference a', an, a, 16, 16],
  ];
  for (const [name, m, ref, W, S] of pairs) {
    const r = await evaluate({ model: m, text: ids, reference: ref, windowSize: W, stride: S });
    const want = await expected(m, ids, W, S, ref);
    t.equal(r.tokens, want.tokens);
    t.ok(r.reference!.klDivergence > 0, `${name}: KL = ${r.reference!.klDivergence} > 0`);
    close(t, r.reference!.klDivergence, want.kl!, `${name}, window ${W} stride ${S}: KL`);
    t.equal(r.reference!.top1Agreement, want.top1!, `${name}, window ${W} stride ${S}: top-1 agreement ${want.top1}`);
    if (m === an) t.ok(want.top1! > 0 && want.top1! < 1, 'the noisy head changes some argmaxes, not all');
    close(t, r.reference!.referenceNll, want.refNll!, 'reference nll');
    close(t, r.reference!.referencePerplexity, Math.exp(want.refNll!), 'reference perplexity');
    close(t, r.nll, want.nll, 'nll');
  }
});

t.test('paths are loaded and disposed; a model passed in is not', async (t) => {
  const disposed: string[] = [];
  const original = MambaModel.prototype.dispose;
  MambaModel.prototype.dispose = function (this: MambaModel) { if (!this.isDisposed) disposed.push(this.path); original.call(this); };
  t.teardown(() => { MambaModel.prototype.dispose = original; });
  const ids = randomIds(20);
  const fromPaths = await evaluate({ model: dirA, text: ids, reference: dirB, loadOptions: { inputRounding: 'none' } });
  t.same(disposed.sort(), [dirA, dirB].sort(), 'both loaded models disposed');
  const a = await loadModel(dirA);
  const passed = await evaluate({ model: a, text: ids });
  t.equal(passed.nll, fromPaths.nll, 'same result from a path and from a loaded model');
  t.notOk(a.isDisposed);
  disposed.length = 0;
  await t.rejects(evaluate({ model: dirA, text: ids, reference: dirC }), VocabularyMismatchError);
  t.same(disposed.sort(), [dirA, dirC].sort(), 'disposed on an error too');
  a.dispose();
});

// A byte-level tokenizer: one token per UTF-8 byte, so the scored bytes are known exactly.
const byteTokenizer: Tokenizer = {
  encode: (s: string) => [...Buffer.from(s, 'utf8')],
  decode: (ids: ArrayLike<number>) => Buffer.from(Array.from(ids)).toString('utf8'),
  vocabSize: 256,
};

t.test('string input: tokenized with the model tokenizer; bits per byte by its definition', async (t) => {
  const a = await loadModel(dirA, { tokenizer: byteTokenizer });
  t.teardown(() => a.dispose());
  const text = 'The state space model reads the text in windows.'; // 48 ASCII bytes = 48 tokens
  const r = await evaluate({ model: a, text, windowSize: 16 });
  const ids = await evaluate({ model: a, text: [...Buffer.from(text)], windowSize: 16 });
  t.equal(r.textTokens, 48);
  t.equal(r.windows, 3);
  t.equal(r.tokens, 45, '48 tokens - 3 window starts');
  t.equal(r.nll, ids.nll, 'a string scores as its token ids');
  t.equal(r.bytes, 45, 'one byte per scored token');
  close(t, r.bitsPerByte, r.nll / Math.LN2, 'bits per byte = nll / ln 2 with one byte per token');
  const want = await expected(a, [...Buffer.from(text)], 16, 16);
  close(t, r.nll, want.nll, 'nll');

  const big = await loadModel(dirBig);
  t.teardown(() => big.dispose());
  const prose = 'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak. — naïve café\n';
  const tokIds = big.tokenizer.encode(prose);
  const one = await evaluate({ model: big, text: prose });
  t.equal(one.windows, 1);
  t.equal(one.tokens, tokIds.length - 1);
  t.equal(one.bytes, Buffer.byteLength(prose) - Buffer.byteLength(big.tokenizer.decode([tokIds[0]])),
    'one window: the bytes of the text after its first token');
  close(t, one.bitsPerByte, (one.nll * one.tokens) / Math.LN2 / one.bytes, 'bits per byte = total nll in bits / bytes');
  close(t, one.nll, (await expected(big, tokIds, 1024, 1024)).nll, 'nll');
  const several = await evaluate({ model: big, text: prose, windowSize: 8 });
  const w = await expected(big, tokIds, 8, 8);
  const bytes = w.targets.reduce((s, ts) => s + Buffer.byteLength(big.tokenizer.decode(ts)), 0);
  t.equal(several.bytes, bytes, 'several windows: the bytes of each window\'s decoded targets');
  t.ok(bytes < Buffer.byteLength(prose));
  close(t, several.bitsPerByte, (several.nll * several.tokens) / Math.LN2 / bytes, 'bits per byte');
});

t.test('the use it is for: a q8_0 GGUF export measured against its f32 checkpoint, both given as paths', async (t) => {
  const dir = path.join(root, 'q');
  writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'f32', tied: false, dialect: 'hf', seed: 35 });
  writeTinyTokenizer(dir); // byte-level BPE, 263 tokens
  const gguf = path.join(root, 'q8_0.gguf');
  await exportGguf(dir, gguf, { type: 'q8_0' });
  const text = 'the thin thread in the sand is the seat of the state space; it sits in the sun. '.repeat(3);
  const r = await evaluate({ model: gguf, reference: dir, text, windowSize: 32, stride: 16 });
  const self = await evaluate({ model: dir, text, windowSize: 32, stride: 16 });
  t.equal(r.tokens, r.textTokens - 1);
  t.equal(r.reference!.referenceNll, self.nll, 'the reference scores as it does alone');
  t.ok(r.reference!.klDivergence > 0 && r.reference!.klDivergence < 5e-3, `KL(f32 || q8_0) = ${r.reference!.klDivergence}: small, not 0`);
  t.ok(r.reference!.top1Agreement > 0.9, `top-1 agreement ${r.reference!.top1Agreement}`);
  t.ok(Math.abs(r.nll - self.nll) < 0.05, `nll q8_0 ${r.nll} vs f32 ${self.nll}`);
});

t.test('bad input: typed errors', async (t) => {
  const a = await loadModel(dirA);
  t.teardown(() => a.dispose());
  const ids = randomIds(20);
  await t.rejects(evaluate({ model: a, text: [5] }), { name: 'RangeError', message: /has 1 token; at least 2/ });
  await t.rejects(evaluate({ model: a, text: [] }), { name: 'RangeError', message: /has 0 tokens/ });
  await t.rejects(evaluate({ model: a, text: ids, maxTokens: 1 }), { name: 'RangeError', message: /'maxTokens'/ });
  await t.rejects(evaluate({ model: a, text: ids, windowSize: 1 }), { name: 'RangeError', message: /'windowSize' must be an integer >= 2, got 1/ });
  await t.rejects(evaluate({ model: a, text: ids, windowSize: 8.5 }), { name: 'RangeError', message: /'windowSize'/ });
  await t.rejects(evaluate({ model: a, text: ids, windowSize: '8' as unknown as number }), { name: 'TypeError', message: /'windowSize' must be a number/ });
  await t.rejects(evaluate({ model: a, text: ids, windowSize: 8, stride: 0 }), { name: 'RangeError', message: /'stride' must be an integer in \[1, 8\], got 0/ });
  await t.rejects(evaluate({ model: a, text: ids, windowSize: 8, stride: 9 }), { name: 'RangeError', message: /'stride'/ });
  await t.rejects(evaluate({ model: a, text: ids, stride: 2000 }), { name: 'RangeError', message: /\[1, 1024\]/ });
  await t.rejects(evaluate({ model: a, text: [1, 2, 300] }), { name: 'RangeError', message: /'text\[2\]' is 300, outside the vocabulary \[0, 300\)/ });
  await t.rejects(evaluate({ model: a, text: [1, -1] }), { name: 'RangeError', message: /text\[1\]/ });
  t.ok((await evaluate({ model: a, text: [1, 2, 300], maxTokens: 2 })).tokens === 1, 'ids past maxTokens are not read');
  await t.rejects(evaluate({ model: a, text: ids, reference: dirC }), {
    name: 'VocabularyMismatchError', code: 'ERR_VOCAB_MISMATCH', modelVocabSize: 300, referenceVocabSize: 320,
  });
  await t.rejects(evaluate({ model: {} as MambaModel, text: ids }), { name: 'TypeError', message: /'model'/ });
  await t.rejects(evaluate({ model: a, text: ids, reference: 3 as unknown as string }), { name: 'TypeError', message: /'reference'/ });
  await t.rejects(evaluate({ model: a, text: 42 as unknown as string }), { name: 'TypeError', message: /'text'/ });
  await t.rejects(evaluate(null as unknown as Parameters<typeof evaluate>[0]), TypeError);
  await t.rejects(evaluate({ model: a, text: ids, onProgress: 1 as unknown as () => void }), TypeError);
  await t.rejects(evaluate({ model: a, text: ids, signal: {} as AbortSignal }), TypeError);
  await t.rejects(evaluate({ model: path.join(root, 'nope'), text: ids }), { name: 'ModelLoadError' });
  const gone = await loadModel(dirA);
  gone.dispose();
  await t.rejects(evaluate({ model: gone, text: ids }), { name: 'DisposedError' });
});

t.test('onProgress per window; abort before and during', async (t) => {
  const a = await loadModel(dirA);
  t.teardown(() => a.dispose());
  const ids = randomIds(50);
  const seen: EvaluateProgress[] = [];
  const r = await evaluate({ model: a, text: ids, windowSize: 16, onProgress: (p) => seen.push({ ...p }) });
  t.same(seen, [1, 2, 3, 4].map((done) => ({ stage: 'eval', done, total: 4 })));
  t.equal(r.windows, 4);

  const pre = new AbortController();
  pre.abort();
  await t.rejects(evaluate({ model: a, text: ids, signal: pre.signal }), { name: 'AbortError' });
  const during = new AbortController();
  const calls: number[] = [];
  await t.rejects(evaluate({
    model: a, text: ids, windowSize: 16, signal: during.signal,
    onProgress: (p) => { calls.push(p.done); if (p.done === 1) during.abort(); },
  }), { name: 'AbortError' });
  t.same(calls, [1], 'no window after the abort');
  t.equal(a.sequenceCount, 0, 'no sequence left behind');
  const reason = new AbortController();
  reason.abort(new Error('enough'));
  await t.rejects(evaluate({ model: a, text: ids, signal: reason.signal }), { message: 'enough' }, 'the signal\'s reason is thrown');
});
