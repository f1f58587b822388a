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
// Top-p's buckets: a float64's high word shifted right by this (11 exponent
// bits and the top 4 of the mantissa: 1/16 of an octave).
const kBucketShift = 16;
const scratch = {
  x: new Float64Array(0), p: new Float64Array(0), e: new Float64Array(0), vals: new Float64Array(0),
  hist: new Float64Array(1 << (31 - kBucketShift)),
};
function scratchFor(V: number): typeof scratch {
  if (scratch.x.length < V) {
    scratch.x = new Float64Array(V);
    scratch.p = new Float64Array(V);
    scratch.e = new Float64Array(V);
    scratch.vals = new Float64Array(V);
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

  let m = -Infinity;
  for (let i = 0; i < V; i++) if (x[i] > m) m = x[i];
  if (m === Infinity || (o.topP >= 1 && o.minP <= 0)) return softmaxInto(x, p);
  // Top-p and min-p each need the softmax of what is left, and so does the
  // result: every filter keeps the largest logit, so the terms exp(x - max)
  // of the first softmax serve them all (a dropped token's term set to 0, as
  // exp(-Infinity - max) is), each summed again in id order: the same
  // float64 values as a fresh softmax after each step, one exp per token.
  const e = s.e.subarray(0, V), q = s.p.subarray(0, V);
  let sum = 0;
  for (let i = 0; i < V; i++) { e[i] = Math.exp(x[i] - m); sum += e[i]; }

  // 4. top-p, as HF: in ascending order of probability (among equals the
  //    higher id first) drop tokens while the cumulative probability is
  //    <= 1 - topP; the most likely token always stays.
  if (o.topP < 1) {
    for (let i = 0; i < V; i++) q[i] = e[i] / sum;
    keepTopP(x, o.topP, q, e);
    sum = 0;
    for (let i = 0; i < V; i++) sum += e[i];
  }

  // 5. min-p: drop tokens with probability < minP * the largest probability
  if (o.minP > 0) {
    let pmax = 0;
    for (let i = 0; i < V; i++) { q[i] = e[i] / sum; if (q[i] > pmax) pmax = q[i]; }
    const floor = o.minP * pmax;
    for (let i = 0; i < V; i++) if (q[i] < floor) { x[i] = -Infinity; e[i] = 0; }
    sum = 0;
    for (let i = 0; i < V; i++) sum += e[i];
  }
  for (let i = 0; i < V; i++) p[i] = e[i] / sum;
  return p;
}

/**
 * Top-p without sorting the vocabulary. With S the total probability, a
 * token's ascending cumulative sum is S minus the mass ranked above it
 * (descending probability, among equals the lower id first), so HF's rule
 * keeps exactly the tokens whose mass ranked above is < topP - (1 - S): a
 * prefix of the descending order, that is every probability above a
 * threshold t and the c lowest ids of those equal to it. Sets the other
 * tokens' logits to -Infinity and their softmax terms e to 0.
 *
 * t is found in two steps: the probabilities' mass per bucket of their
 * float64 exponent and top 4 mantissa bits (monotone in the value: equal
 * probabilities share a bucket), summed from the top bucket down to the one
 * the boundary falls in; then, among that bucket's values only, partitions
 * around pivots as a selection does.
 */
function keepTopP(x: Float64Array, topP: number, p: Float64Array, e: Float64Array): void {
  const V = x.length;
  const s = scratchFor(V);
  const bits = new Uint32Array(p.buffer, p.byteOffset, 2 * V);  // little-endian: word 2i + 1 holds p[i]'s sign, exponent, mantissa top
  const hist = s.hist;
  hist.fill(0);
  let total = 0;
  for (let i = 0; i < V; i++) {
    const q = p[i];
    if (q > 0) { hist[bits[2 * i + 1] >>> kBucketShift] += q; total += q; }
  }
  const target = topP - (1 - total);
  // The boundary's bucket: the mass of the buckets above it is < target, with its own >= target.
  let above = 0, bucket = hist.length - 1;
  for (; bucket > 0; bucket--) {
    if (above + hist[bucket] >= target) break;
    above += hist[bucket];
  }
  // Its values (at least one while target > 0: the top bucket holds the maximum).
  const vals = s.vals;
  let n = 0;
  for (let i = 0; i < V; i++) if (p[i] > 0 && bits[2 * i + 1] >>> kBucketShift === bucket) vals[n++] = p[i];
  // vals[lo, hi): undecided, each below every kept value (whose mass is
  // `above`); kept so far: every value above t and c of those equal to it.
  let lo = 0, hi = n, t = Infinity, c = 0;
  while (lo < hi && above < target) {
    // Three-way partition of the undecided around the median of three:
    // [G | E | L] for > v, == v, < v.
    const a = vals[lo], b = vals[(lo + hi) >> 1], d = vals[hi - 1];
    const v = a < b ? (b < d ? b : a < d ? d : a) : (a < d ? a : b < d ? d : b);
    let g = lo, e = lo, l = hi;  // [lo, g) G, [g, e) E, [e, l) unseen, [l, hi) L
    while (e < l) {
      const q = vals[e];
      if (q > v) { vals[e] = vals[g]; vals[g] = q; g++; e++; }
      else if (q < v) { l--; vals[e] = vals[l]; vals[l] = q; }
      else e++;
    }
    let massG = 0;
    for (let j = lo; j < g; j++) massG += vals[j];
    if (above + massG >= target) { hi = g; continue; }  // the boundary is within G; E and L dropped
    above += massG;
    // E: equal probabilities, the lower ids first.
    t = v;
    c = 0;
    while (c < e - g && above < target) { above += v; c++; }
    lo = e;
    if (c < e - g) break;  // the rest of E and all of L dropped
  }
  if (t === Infinity) {  // the most likely token always stays
    t = p[argmax(p)];
    c = 1;
  }
  for (let i = 0; i < V; i++) {
    if (p[i] > t) continue;
    if (p[i] === t && c > 0) c--;
    else { x[i] = -Infinity; e[i] = 0; }
  }
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

/**
 * The k-th largest value (1-based) of x, by selection in `tmp` (x's length).
 * For a k small against the row (top-k's usual 20-100 of tens of thousands)
 * the values at or above a bound taken from a strided sample are selected
 * from instead, when they are at least k (then the k-th largest is among
 * them); otherwise the whole row.
 */
function kthLargest(x: Float64Array, k: number, tmp: Float64Array): number {
  const V = x.length;
  if (V >= 4096 && k <= V >> 6) {
    const S = 1024, stride = Math.floor(V / S);
    for (let j = 0; j < S; j++) tmp[j] = x[j * stride];
    // About 4k / V of the sample (at least 8 values) is above the bound.
    const r = Math.min(S, Math.max(8, Math.ceil((4 * k * S) / V)));
    const bound = selectAscending(tmp, 0, S - 1, S - r);
    let n = 0;
    for (let i = 0; i < V; i++) if (x[i] >= bound) tmp[n++] = x[i];
    if (n >= k) return selectAscending(tmp, 0, n - 1, n - k);
  }
  tmp.set(x);
  return selectAscending(tmp, 0, V - 1, V - k);
}

/** The value at index `want` of a[lo..hi] sorted ascending (a reordered in place). */
function selectAscending(a: Float64Array, lo: number, hi: number, want: number): number {
  while (lo < hi) {
    // Three-way partition of a[lo, hi] around the median of three.
    const p = a[lo], q = a[(lo + hi) >> 1], r = a[hi];
    const v = p < q ? (q < r ? q : p < r ? r : p) : (p < r ? p : q < r ? r : q);
    let lt = lo, i = lo, gt = hi;  // [lo, lt) < v, [lt, i) == v, (gt, hi] > v
    while (i <= gt) {
      const t = a[i];
      if (t < v) { a[i] = a[lt]; a[lt] = t; lt++; i++; }
      else if (t > v) { a[i] = a[gt]; a[gt] = t; gt--; }
      else i++;
    }
    if (want < lt) hi = lt - 1;
    else if (want > gt) lo = gt + 1;
    else return v;
  }
  return a[lo];
}
