// evaluate(): perplexity and bits per byte of a model over a text, and with a
// reference model the mean KL divergence and top-1 agreement per token. The
// measuring tool of the quantization work: a quantized model is evaluated
// with the unquantized one as reference.
//
// Windows. The N tokens read are cut into windows of at most `windowSize`
// tokens starting every `stride` tokens: window k covers [b_k, e_k) with
// b_k = k * stride and e_k = min(b_k + windowSize, N), and the last window is
// the first one with e_k = N. Each window is a fresh sequence
// (`model.forward(window)`): nothing carries over from the window before.
// The logits at position t - 1 predict token t, so the TARGETS scored in
// window k are the positions t in [max(b_k + 1, e_{k-1}), e_k) (e_{-1} = 0):
//   - stride = windowSize (default, non-overlapping): every token of a window
//     except its first; the first token of each window is never scored, so
//     N - (number of windows) tokens are scored. A tail window of a single
//     token would score nothing and is not run.
//   - stride < windowSize (overlapping, the usual Hugging Face perplexity
//     recipe): the first window scores its tokens 1 .. e_0 - 1, every later
//     window only the targets after the previous window's end (the last
//     `stride` of a full window), with the tokens before as context. Every
//     token but the first is scored exactly once: N - 1 tokens.
//
// Scores (float64, log-softmax with the row's maximum subtracted):
//   nll          mean over scored targets of -log P_model(target | window so far), nats
//   perplexity   exp(nll)
//   bytes        sum over windows of the UTF-8 byte length of
//                tokenizer.decode(that window's scored targets)
//   bitsPerByte  (nll * tokens / ln 2) / bytes: the model's code length of the
//                scored text per byte of it (NaN when the scored ids decode to no bytes)
//   reference.klDivergence  mean over scored positions of KL(P_ref || P_model) =
//                sum_v P_ref(v) (log P_ref(v) - log P_model(v)), nats
//   reference.top1Agreement fraction of scored positions where the argmax of
//                both models' logits is the same token (first index on ties)
//
// Memory: one window's logits at a time, windowSize x vocabSize float32 per
// model (1024 x 50280 x 4 B = 206 MB with the default window and the
// GPT-NeoX vocabulary), plus one float64 row.
import { VocabularyMismatchError } from '../errors';
import { loadModel, MambaModel, type LoadModelOptions } from '../model/model';
import { toTokenArray } from '../model/tokens';

export interface EvaluateProgress {
  stage: 'eval';
  /** Windows finished. */
  done: number;
  /** Windows in all. */
  total: number;
}

export interface EvaluateOptions {
  /** The model to measure: a loaded model (left loaded), or a checkpoint directory / .gguf file (loaded, then disposed). */
  model: MambaModel | string;
  /** The text: a string (tokenized with the model's tokenizer) or its token ids. */
  text: string | ArrayLike<number>;
  /** A model to compare with, token by token (same vocabulary size): loaded model or path, as `model`. */
  reference?: MambaModel | string;
  /** Tokens per window (default 1024; a shorter text is one window). Integer >= 2. */
  windowSize?: number;
  /** Tokens between window starts (default windowSize). Integer in [1, windowSize]; below windowSize the windows overlap. */
  stride?: number;
  /** Read at most this many tokens of the text (default: all). Integer >= 2. */
  maxTokens?: number;
  /** Options for models given as paths (threads, inputRounding, ...). */
  loadOptions?: LoadModelOptions;
  /** Called after each window. */
  onProgress?: (progress: EvaluateProgress) => void;
  /** Aborting stops the evaluation within one window and rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface ReferenceComparison {
  /** Mean over scored positions of KL(P_reference || P_model), nats. */
  klDivergence: number;
  /** Fraction of scored positions where both models' most likely token is the same. */
  top1Agreement: number;
  /** The reference's mean negative log-likelihood of the same targets, nats. */
  referenceNll: number;
  /** exp(referenceNll). */
  referencePerplexity: number;
}

export interface EvaluateResult {
  /** Targets scored (see the module comment for which). */
  tokens: number;
  /** Mean negative log-likelihood of the scored targets, nats per token. */
  nll: number;
  /** exp(nll). */
  perplexity: number;
  /** Total NLL in bits over `bytes`. */
  bitsPerByte: number;
  /** UTF-8 bytes of the scored targets' text: per window, the bytes of tokenizer.decode(its targets). */
  bytes: number;
  /** Windows run. */
  windows: number;
  /** Tokens of the text read (after maxTokens). */
  textTokens: number;
  windowSize: number;
  stride: number;
  /** Wall time of the windows (forward passes and scoring), not of loading or tokenizing. */
  seconds: number;
  /** With a reference model. */
  reference?: ReferenceComparison;
}

/** One window: the tokens [begin, end) run from an empty state, targets [firstTarget, end) scored. */
interface EvalWindow {
  begin: number;
  end: number;
  firstTarget: number;
}

const NAME = 'node-mamba: evaluate';

function abortError(signal: AbortSignal): Error {
  if (signal.reason instanceof Error) return signal.reason;
  const e = new Error(`${NAME}: aborted`);
  e.name = 'AbortError';
  return e;
}

function checkInteger(v: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (v === undefined) return;
  if (typeof v !== 'number') throw new TypeError(`${NAME}: '${name}' must be a number, got ${typeof v}`);
  if (!(Number.isInteger(v) && v >= min && v <= max)) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new RangeError(`${NAME}: '${name}' must be an integer ${range}, got ${v}`);
  }
}

function checkModelArg(v: unknown, name: string): void {
  if (!(v instanceof MambaModel) && typeof v !== 'string') {
    throw new TypeError(`${NAME}: '${name}' must be a loaded model or a path (string)`);
  }
}

function checkOptions(o: EvaluateOptions): void {
  if (o === null || typeof o !== 'object') throw new TypeError(`${NAME}: 'options' must be an object`);
  checkModelArg(o.model, 'model');
  if (o.reference !== undefined) checkModelArg(o.reference, 'reference');
  const t = o.text as unknown;
  if (typeof t !== 'string' && (t === null || typeof t !== 'object' || typeof (t as ArrayLike<number>).length !== 'number')) {
    throw new TypeError(`${NAME}: 'text' must be a string or an array of token ids (number[] or Int32Array)`);
  }
  checkInteger(o.windowSize, 'windowSize', 2);
  checkInteger(o.stride, 'stride', 1, o.windowSize ?? 1024);
  checkInteger(o.maxTokens, 'maxTokens', 2);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError(`${NAME}: 'onProgress' must be a function`);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new TypeError(`${NAME}: 'signal' must be an AbortSignal`);
  if (o.loadOptions !== undefined && (o.loadOptions === null || typeof o.loadOptions !== 'object')) {
    throw new TypeError(`${NAME}: 'loadOptions' must be an object`);
  }
}

/** The windows over `n` tokens (n >= 2), as described at the top of this file. */
function evalWindows(n: number, windowSize: number, stride: number): EvalWindow[] {
  const out: EvalWindow[] = [];
  let prevEnd = 0;
  for (let begin = 0; ; begin += stride) {
    const end = Math.min(begin + windowSize, n);
    const firstTarget = Math.max(begin + 1, prevEnd);
    if (firstTarget < end) out.push({ begin, end, firstTarget });
    prevEnd = end;
    if (end === n) return out;
  }
}

/**
 * log-sum-exp of row [off, off + v) in float64 (the maximum subtracted first),
 * the sum of exp(x - max), and the index of the (first) maximum; with `exps`,
 * exp(x - max) of each element is kept there.
 */
function logSumExp(x: Float32Array, off: number, v: number, exps?: Float64Array): { lse: number; sum: number; argmax: number } {
  let max = -Infinity, argmax = 0;
  for (let i = 0; i < v; i++) {
    const a = x[off + i];
    if (a > max) { max = a; argmax = i; }
  }
  if (max === -Infinity) return { lse: NaN, sum: 0, argmax }; // every element -Infinity or NaN
  let sum = 0;
  if (exps) {
    for (let i = 0; i < v; i++) { const e = Math.exp(x[off + i] - max); exps[i] = e; sum += e; }
  } else {
    for (let i = 0; i < v; i++) sum += Math.exp(x[off + i] - max);
  }
  return { lse: max + Math.log(sum), sum, argmax };
}

async function open(m: MambaModel | string, loadOptions: LoadModelOptions | undefined, owned: MambaModel[]): Promise<MambaModel> {
  if (m instanceof MambaModel) return m;
  const model = await loadModel(m, loadOptions);
  owned.push(model);
  return model;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Perplexity (and bits per byte) of `model` over `text`, window by window; with
 * `reference`, the mean KL divergence KL(P_reference || P_model) and the top-1
 * agreement per scored token, and the reference's own perplexity.
 *
 * Rejects with a TypeError / RangeError for bad options, a RangeError for a
 * text of fewer than 2 tokens or a token id outside the vocabulary, a
 * VocabularyMismatchError when the two models' vocabularies differ in size,
 * an AbortError when `signal` aborts.
 */
export async function evaluate(options: EvaluateOptions): Promise<EvaluateResult> {
  checkOptions(options);
  const { signal, onProgress } = options;
  const windowSize = options.windowSize ?? 1024;
  const stride = options.stride ?? windowSize;
  if (signal?.aborted) throw abortError(signal);

  const owned: MambaModel[] = [];
  try {
    const model = await open(options.model, options.loadOptions, owned);
    const reference = options.reference === undefined ? undefined : await open(options.reference, options.loadOptions, owned);
    const V = model.vocabSize;
    if (reference && reference.vocabSize !== V) throw new VocabularyMismatchError(V, reference.vocabSize);
    if (signal?.aborted) throw abortError(signal);

    const all = typeof options.text === 'string' ? model.tokenizer.encode(options.text) : options.text;
    const n = Math.min(all.length, options.maxTokens ?? Infinity);
    if (n < 2) {
      throw new RangeError(`${NAME}: 'text' has ${n} token${n === 1 ? '' : 's'}; at least 2 are needed (one to predict from, one to predict)`);
    }
    // Only the tokens read are checked against the vocabulary.
    const head = n === all.length ? all : ArrayBuffer.isView(all) ? (all as Int32Array).subarray(0, n) : Array.prototype.slice.call(all, 0, n) as number[];
    const ids = toTokenArray(head, V, 'text');
    const windows = evalWindows(n, windowSize, stride);

    const t0 = performance.now();
    let nllSum = 0, refNllSum = 0, klSum = 0, agree = 0, scored = 0, bytes = 0;
    const refExps = reference ? new Float64Array(V) : undefined;
    for (let w = 0; w < windows.length; w++) {
      if (signal?.aborted) throw abortError(signal);
      const { begin, end, firstTarget } = windows[w];
      const input = ids.subarray(begin, end);
      const logits = await model.forward(input);
      if (signal?.aborted) throw abortError(signal);
      const refLogits = reference === undefined ? undefined : reference === model ? logits : await reference.forward(input);
      if (signal?.aborted) throw abortError(signal);
      for (let t = firstTarget; t < end; t++) {
        const off = (t - 1 - begin) * V;
        const target = ids[t];
        const m = logSumExp(logits, off, V);
        nllSum += m.lse - logits[off + target];
        if (refLogits && refExps) {
          const r = logSumExp(refLogits, off, V, refExps);
          refNllSum += r.lse - refLogits[off + target];
          if (r.argmax === m.argmax) agree++;
          // sum_v p_ref(v) (log p_ref(v) - log p_model(v)), p_ref(v) = refExps[v] / sumExps
          let kl = 0;
          for (let v = 0; v < V; v++) {
            const p = refExps[v];
            if (p !== 0) kl += p * ((refLogits[off + v] - r.lse) - (logits[off + v] - m.lse));
          }
          klSum += kl / r.sum;
        }
        scored++;
        if ((t - firstTarget) % 64 === 63) {
          await yieldToEventLoop();
          if (signal?.aborted) throw abortError(signal);
        }
      }
      bytes += Buffer.byteLength(model.tokenizer.decode(ids.subarray(firstTarget, end)), 'utf8');
      onProgress?.({ stage: 'eval', done: w + 1, total: windows.length });
    }
    const seconds = (performance.now() - t0) / 1000;

    const nll = nllSum / scored;
    const result: EvaluateResult = {
      tokens: scored,
      nll,
      perplexity: Math.exp(nll),
      bitsPerByte: bytes > 0 ? nllSum / Math.LN2 / bytes : NaN,
      bytes,
      windows: windows.length,
      textTokens: n,
      windowSize,
      stride,
      seconds,
    };
    if (reference) {
      const referenceNll = refNllSum / scored;
      result.reference = {
        klDivergence: klSum / scored,
        top1Agreement: agree / scored,
        referenceNll,
        referencePerplexity: Math.exp(referenceNll),
      };
    }
    return result;
  } finally {
    for (const m of owned) m.dispose();
  }
}
