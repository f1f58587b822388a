// Choosing the next token from one row of logits. The order of operations is
// that of Hugging Face transformers' logits processors and warpers:
//   repetition penalty -> temperature -> top-k -> top-p -> min-p -> sample
// (temperature 0 means greedy: argmax after the repetition penalty).
import type { Rng } from './rng';

export interface SamplingOptions {
  /** 0 = greedy (argmax, ties to the lowest id); otherwise logits are divided by it. Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (ties at the k-th value kept, as HF does); 0 = off. Default 0. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability sums to >= topP; 1 = off. Default 1. */
  topP?: number;
  /** Drop tokens whose probability is below minP times the most likely one's; 0 = off. Default 0. */
  minP?: number;
  /**
   * HF semantics: for each distinct id in `history`, a logit > 0 is divided by
   * it and a logit <= 0 multiplied by it; 1 = off. Default 1.
   */
  repetitionPenalty?: number;
  /** Token ids seen so far (prompt and generated), for the repetition penalty. */
  history?: ArrayLike<number>;
}

/** Options with every default filled in, as validateSamplingOptions returns them. */
export interface ResolvedSamplingOptions {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
}

function check(ok: boolean, name: string, expected: string, value: unknown): void {
  if (!ok) throw new RangeError(`${name} must be ${expected}, got ${String(value)}`);
}

/** The one place sampling options are checked; throws RangeError naming the option. */
export function validateSamplingOptions(o: SamplingOptions = {}): ResolvedSamplingOptions {
  const r: ResolvedSamplingOptions = {
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    minP: o.minP ?? 0,
    repetitionPenalty: o.repetitionPenalty ?? 1,
  };
  check(typeof r.temperature === 'number' && Number.isFinite(r.temperature) && r.temperature >= 0, 'temperature', 'a finite number >= 0', r.temperature);
  check(Number.isSafeInteger(r.topK) && r.topK >= 0, 'topK', 'an integer >= 0', r.topK);
  check(typeof r.topP === 'number' && r.topP > 0 && r.topP <= 1, 'topP', 'a number in (0, 1]', r.topP);
  check(typeof r.minP === 'number' && r.minP >= 0 && r.minP <= 1, 'minP', 'a number in [0, 1]', r.minP);
  check(typeof r.repetitionPenalty === 'number' && Number.isFinite(r.repetitionPenalty) && r.repetitionPenalty > 0,
    'repetitionPenalty', 'a finite number > 0', r.repetitionPenalty);
  return r;
}

/**
 * Buffers reused from call to call: sampling is synchronous, so no call sees
 * another's. Vocabulary-sized float64 rows allocated per token (three of
 * them before, with a comparison sort of the vocabulary for top-p) had cost
 * more than a decode step (bench/NOTES.md).
 */
const scratch = {
  x: new Float64Array(0), p: new Float64Array(0), idx: new Int32Array(0), keep: new Uint8Array(0),
};
function scratchFor(V: number): typeof scratch {
  if (scratch.x.length < V) {
    scratch.x = new Float64Array(V);
    scratch.p = new Float64Array(V);
    scratch.idx = new Int32Array(V);
    scratch.keep = new Uint8Array(V);
  }
  return scratch;
}

/**
 * The next token id from `logits` (one row, vocabulary-sized).
 * `rng` is only used when temperature > 0.
 * Throws RangeError for bad options, a NaN logit or a history id outside the row.
 */
export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, rng: Rng): number {
  const o = validateSamplingOptions(options);
  const V = logits.length;
  if (V === 0) throw new RangeError('logits must not be empty');
  const s = scratchFor(V);
  const x = s.x.subarray(0, V);
  penalisedLogits(logits, o, options.history, x);
  if (o.temperature === 0) return argmax(x);
  const p = warpedProbabilities(x, o, s.p.subarray(0, V));
  const u = rng.next();
  let cum = 0, last = -1;
  for (let i = 0; i < V; i++) {
    if (p[i] <= 0) continue;
    cum += p[i];
    last = i;
    if (u < cum) return i;
  }
  return last; // u within rounding of 1
}

/**
 * The distribution sampleToken draws from (float64, sums to 1); for
 * temperature 0, all the mass on the greedy choice.
 */
export function tokenProbabilities(logits: ArrayLike<number>, options: SamplingOptions): Float64Array {
  const o = validateSamplingOptions(options);
  const V = logits.length;
  if (V === 0) throw new RangeError('logits must not be empty');
  const x = scratchFor(V).x.subarray(0, V);
  penalisedLogits(logits, o, options.history, x);
  const p = new Float64Array(V);
  if (o.temperature === 0) {
    p[argmax(x)] = 1;
    return p;
  }
  return warpedProbabilities(x, o, p);
}

/** Step 1 into x: the logits as float64, checked, with the repetition penalty applied. */
function penalisedLogits(logits: ArrayLike<number>, o: ResolvedSamplingOptions, history: ArrayLike<number> | undefined, x: Float64Array): void {
  const V = logits.length;
  let finite = false;
  for (let i = 0; i < V; i++) {
    const v = logits[i];
    if (Number.isNaN(v)) throw new RangeError(`logits[${i}] is NaN`);
    x[i] = v;
    finite ||= v > -Infinity;
  }
  if (!finite) throw new RangeError('logits are all -Infinity');
  // each distinct id once, like HF's gather/scatter
  if (o.repetitionPenalty !== 1 && history) {
    const seen = new Uint8Array(V);
    for (let i = 0; i < history.length; i++) {
      const id = history[i];
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`history[${i}] must be a token id in [0, ${V}), got ${id}`);
      if (seen[id]) continue;
      seen[id] = 1;
      x[id] = x[id] > 0 ? x[id] / o.repetitionPenalty : x[id] * o.repetitionPenalty;
    }
  }
}

/** Steps 2-5 (temperature > 0): temperature, top-k, top-p, min-p; the probabilities into p (returned). Modifies x. */
function warpedProbabilities(x: Float64Array, o: ResolvedSamplingOptions, p: Float64Array): Float64Array {
  const V = x.length;
  const s = scratchFor(V);
  // 2. temperature
  if (o.temperature !== 1) for (let i = 0; i < V; i++) x[i] /= o.temperature;

  // 3. top-k: drop logits below the k-th largest (ties with it stay)
  if (o.topK > 0 && o.topK < V) {
    const kth = kthLargest(x, o.topK, s.p.subarray(0, V));
    for (let i = 0; i < V; i++) if (x[i] < kth) x[i] = -Infinity;
  }

  // 4. top-p, as HF: in ascending order of probability (among equals the
  //    higher id first) drop tokens while the cumulative probability is
  //    <= 1 - topP; the most likely token always stays.
  if (o.topP < 1) keepTopP(x, o.topP, s.p.subarray(0, V), s.idx, s.keep);

  // 5. min-p: drop tokens with probability < minP * the largest probability
  if (o.minP > 0) {
    const q = softmaxInto(x, s.p.subarray(0, V));
    let pmax = 0;
    for (let i = 0; i < V; i++) if (q[i] > pmax) pmax = q[i];
    const floor = o.minP * pmax;
    for (let i = 0; i < V; i++) if (q[i] < floor) x[i] = -Infinity;
  }
  return softmaxInto(x, p);
}

/**
 * Top-p without sorting the vocabulary. With S the total probability, a
 * token's ascending cumulative sum is S minus the mass ranked above it
 * (descending probability, among equals the lower id first), so HF's rule
 * keeps exactly the tokens whose mass ranked above is < topP - (1 - S): a
 * prefix of the descending order, found by partitioning around pivots as a
 * selection does (expected linear time). Sets the others' logits to
 * -Infinity.
 */
function keepTopP(x: Float64Array, topP: number, p: Float64Array, idx: Int32Array, keep: Uint8Array): void {
  const V = x.length;
  softmaxInto(x, p);
  let n = 0, total = 0;
  for (let i = 0; i < V; i++) if (p[i] > 0) { idx[n++] = i; total += p[i]; }
  const target = topP - (1 - total);
  // idx[0, lo): kept; idx[lo, hi): undecided, each ranked below every kept
  // one (whose mass is `above`); idx[hi, n): dropped.
  let lo = 0, hi = n, above = 0;
  while (lo < hi && above < target) {
    // Three-way partition of the undecided around the median of three:
    // [G | E | L] for probability > v, == v, < v.
    const a = p[idx[lo]], b = p[idx[(lo + hi) >> 1]], c = p[idx[hi - 1]];
    const v = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
    let g = lo, e = lo, l = hi;  // [lo, g) G, [g, e) E, [e, l) unseen, [l, hi) L
    while (e < l) {
      const id = idx[e], q = p[id];
      if (q > v) { idx[e] = idx[g]; idx[g] = id; g++; e++; }
      else if (q < v) { l--; idx[e] = idx[l]; idx[l] = id; }
      else e++;
    }
    let massG = 0;
    for (let j = lo; j < g; j++) massG += p[idx[j]];
    if (above + massG >= target) { hi = g; continue; }  // the boundary is within G; E and L dropped
    above += massG;
    lo = g;
    // Equal probabilities: the lower ids rank first.
    idx.subarray(g, e).sort();
    while (lo < e && above < target) { above += v; lo++; }
    if (lo < e) hi = lo;  // the rest of E and all of L dropped
  }
  keep.fill(0, 0, V);
  if (lo === 0) keep[argmax(p)] = 1;  // the most likely token always stays
  for (let j = 0; j < lo; j++) keep[idx[j]] = 1;
  for (let i = 0; i < V; i++) if (!keep[i]) x[i] = -Infinity;
}

/** Index of the largest value; ties go to the lowest index. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** softmax of x into p (returned), in float64 with the maximum subtracted (an all -Infinity row is rejected earlier, and every filter keeps the maximum). */
function softmaxInto(x: Float64Array, p: Float64Array): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > m) m = x[i];
  if (m === Infinity) { // +Infinity logits share all the mass
    let n = 0;
    for (let i = 0; i < x.length; i++) if (x[i] === Infinity) n++;
    for (let i = 0; i < x.length; i++) p[i] = x[i] === Infinity ? 1 / n : 0;
    return p;
  }
  let s = 0;
  for (let i = 0; i < x.length; i++) { p[i] = Math.exp(x[i] - m); s += p[i]; }
  for (let i = 0; i < x.length; i++) p[i] /= s;
  return p;
}

/** The k-th largest value (1-based) of x, by selection on a copy in `tmp` (x's length). */
function kthLargest(x: Float64Array, k: number, tmp: Float64Array): number {
  tmp.set(x);
  const want = x.length - k;  // its index in ascending order
  let lo = 0, hi = x.length - 1;
  while (lo < hi) {
    // Three-way partition of tmp[lo, hi] around the median of three.
    const a = tmp[lo], b = tmp[(lo + hi) >> 1], c = tmp[hi];
    const v = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
    let lt = lo, i = lo, gt = hi;  // [lo, lt) < v, [lt, i) == v, (gt, hi] > v
    while (i <= gt) {
      const t = tmp[i];
      if (t < v) { tmp[i] = tmp[lt]; tmp[lt] = t; lt++; i++; }
      else if (t > v) { tmp[i] = tmp[gt]; tmp[gt] = t; gt--; }
      else i++;
    }
    if (want < lt) hi = lt - 1;
    else if (want > gt) lo = gt + 1;
    else return v;
  }
  return tmp[lo];
}
