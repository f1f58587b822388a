// The sampler as first written (lib/generate/sampling.ts before its rewrite
// for speed): each of HF's steps spelled out on fresh float64 rows, top-k by
// a full sort, top-p by sorting every token by probability and summing in
// ascending order. The tests compare the library's sampler with it.
import type { Rng } from '../../lib/generate/rng';
import { argmax, validateSamplingOptions, type ResolvedSamplingOptions, type SamplingOptions } from '../../lib/generate/sampling';

export function referenceSampleToken(logits: ArrayLike<number>, options: SamplingOptions, rng: Rng): number {
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
  return last;
}

export function referenceTokenProbabilities(logits: ArrayLike<number>, options: SamplingOptions): Float64Array {
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
