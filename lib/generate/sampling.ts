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
 * The next token id from `logits` (one row, vocabulary-sized).
 * `rng` is only used when temperature > 0.
 * Throws RangeError for bad options, a NaN logit or a history id outside the row.
 */
export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, rng: Rng): number {
  const o = validateSamplingOptions(options);
  const x = penalisedLogits(logits, o, options.history);
  if (o.temperature === 0) return argmax(x);
  const p = warpedProbabilities(x, o);
  const u = rng.next();
  let cum = 0, last = -1;
  for (let i = 0; i < p.length; i++) {
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
  const x = penalisedLogits(logits, o, options.history);
  if (o.temperature === 0) {
    const p = new Float64Array(x.length);
    p[argmax(x)] = 1;
    return p;
  }
  return warpedProbabilities(x, o);
}

/** The logits as float64, checked, with the repetition penalty applied (step 1). */
function penalisedLogits(logits: ArrayLike<number>, o: ResolvedSamplingOptions, history: ArrayLike<number> | undefined): Float64Array {
  const V = logits.length;
  if (V === 0) throw new RangeError('logits must not be empty');
  const x = new Float64Array(V);
  for (let i = 0; i < V; i++) {
    const v = logits[i];
    if (Number.isNaN(v)) throw new RangeError(`logits[${i}] is NaN`);
    x[i] = v;
  }
  let finite = false;
  for (let i = 0; i < V && !finite; i++) finite = x[i] > -Infinity;
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
  return x;
}

/** Steps 2-5 (temperature > 0): temperature, top-k, top-p, min-p; returns the probabilities. Modifies x. */
function warpedProbabilities(x: Float64Array, o: ResolvedSamplingOptions): Float64Array {
  const V = x.length;
  // 2. temperature
  if (o.temperature !== 1) for (let i = 0; i < V; i++) x[i] /= o.temperature;

  // 3. top-k: drop logits below the k-th largest (ties with it stay)
  if (o.topK > 0 && o.topK < V) {
    const kth = kthLargest(x, o.topK);
    for (let i = 0; i < V; i++) if (x[i] < kth) x[i] = -Infinity;
  }

  // 4. top-p, as HF: sort ascending, drop tokens whose cumulative probability
  //    is <= 1 - topP; the most likely token always stays.
  if (o.topP < 1) {
    const p = softmax(x);
    const order: number[] = [];
    for (let i = 0; i < V; i++) if (p[i] > 0) order.push(i);
    order.sort((a, b) => p[a] - p[b] || b - a); // ascending; among equals the higher id first (dropped first)
    let cum = 0;
    for (let j = 0; j < order.length - 1; j++) {
      cum += p[order[j]];
      if (cum > 1 - o.topP) break;
      x[order[j]] = -Infinity;
    }
  }

  // 5. min-p: drop tokens with probability < minP * the largest probability
  if (o.minP > 0) {
    const p = softmax(x);
    let pmax = 0;
    for (let i = 0; i < V; i++) if (p[i] > pmax) pmax = p[i];
    const floor = o.minP * pmax;
    for (let i = 0; i < V; i++) if (p[i] < floor) x[i] = -Infinity;
  }
  return softmax(x);
}

/** Index of the largest value; ties go to the lowest index. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** softmax in float64 with the maximum subtracted (an all -Infinity row is rejected earlier, and every filter keeps the maximum). */
function softmax(x: Float64Array): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > m) m = x[i];
  const p = new Float64Array(x.length);
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

/** The k-th largest value (1-based) of x. */
function kthLargest(x: Float64Array, k: number): number {
  const sorted = Float64Array.from(x).sort(); // ascending
  return sorted[x.length - k];
}
