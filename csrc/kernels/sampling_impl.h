// sampleToken's algorithm (lib/generate/sampling.ts) on one float32 logits
// row, compiled once per level (see kernels/simd/README.md): each step below
// is the one of the same name there, on the same float64 values, so that
// the two agree as kernels/sampling.h says. The passes over the row are
// vector code (the softmax terms through vexp_f64, sums and maxima in VD
// lanes); the selections are scalar.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/sampling.h"

namespace nm {
namespace NM_ISA {

namespace {

// x[i] = logits[i] as float64; 1 if a logit is NaN, 2 if every one is
// -Infinity, else 0. (The checks on the float bits: integer max and
// and-reductions, which vectorize.)
int load_row(const float* logits, int64_t V, double* x) {
  uint32_t amax = 0, all_neg_inf = 1;
  for (int64_t i = 0; i < V; ++i) {
    uint32_t b;
    memcpy(&b, logits + i, 4);
    const uint32_t a = b & 0x7fffffffu;
    amax = a > amax ? a : amax;
    all_neg_inf &= (uint32_t)(b == 0xff800000u);
    x[i] = (double)logits[i];
  }
  if (amax > 0x7f800000u) return 1;  // a NaN's magnitude bits are above infinity's
  if (all_neg_inf) return 2;
  return 0;
}

// The repetition penalty: each distinct id of the history once (marked in
// seen, cleared after), x > 0 divided by rp, x <= 0 multiplied.
void penalise(double* x, const int32_t* history, int64_t n, double rp, uint8_t* seen) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = history[i];
    if (seen[id]) continue;
    seen[id] = 1;
    x[id] = x[id] > 0 ? x[id] / rp : x[id] * rp;
  }
  for (int64_t i = 0; i < n; ++i) seen[history[i]] = 0;
}

// Σ a[i] in VD lanes, then the lanes and the tail.
double sum_row(const double* a, int64_t n) {
  constexpr int W = VD::W;
  VD acc0 = VD::set1(0.0), acc1 = VD::set1(0.0);
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    acc0 = acc0 + VD::load(a + i);
    acc1 = acc1 + VD::load(a + i + W);
  }
  double s = reduce_sum(acc0 + acc1);
  for (; i < n; ++i) s += a[i];
  return s;
}

double max_row(const double* a, int64_t n) {
  constexpr int W = VD::W;
  VD acc = VD::set1(-INFINITY);
  int64_t i = 0;
  for (; i + W <= n; i += W) acc = vmax(acc, VD::load(a + i));
  double lanes[W];
  acc.store(lanes);
  double m = -INFINITY;
  for (int j = 0; j < W; ++j) m = lanes[j] > m ? lanes[j] : m;
  for (; i < n; ++i) m = a[i] > m ? a[i] : m;
  return m;
}

// p[i] = e[i] / s.
void divide_row(const double* e, int64_t n, double s, double* p) {
  for (int64_t i = 0; i < n; ++i) p[i] = e[i] / s;
}

// e[i] = exp(x[i] - m) (0 where x[i] is -Infinity); returns their sum.
double exp_row(const double* x, int64_t n, double m, double* e) {
  constexpr int W = VD::W;
  const VD mv = VD::set1(m);
  VD acc = VD::set1(0.0);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const VD v = vexp_f64(VD::load(x + i) - mv);
    v.store(e + i);
    acc = acc + v;
  }
  double s = reduce_sum(acc);
  if (i < n) {
    double in[W], out[W];
    for (int j = 0; j < W; ++j) in[j] = i + j < n ? x[i + j] : -INFINITY;
    vexp_f64(VD::load(in) - mv).store(out);
    for (int j = 0; i + j < n; ++j) e[i + j] = out[j], s += out[j];
  }
  return s;
}

int64_t argmax_row(const double* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

// The value at index `want` of a[lo..hi] sorted ascending (a reordered in place).
double select_ascending(double* a, int64_t lo, int64_t hi, int64_t want) {
  while (lo < hi) {
    // Three-way partition of a[lo, hi] around the median of three.
    const double p = a[lo], q = a[(lo + hi) >> 1], r = a[hi];
    const double v = p < q ? (q < r ? q : p < r ? r : p) : (p < r ? p : q < r ? r : q);
    int64_t lt = lo, i = lo, gt = hi;  // [lo, lt) < v, [lt, i) == v, (gt, hi] > v
    while (i <= gt) {
      const double t = a[i];
      if (t < v) { a[i] = a[lt]; a[lt] = t; ++lt; ++i; }
      else if (t > v) { a[i] = a[gt]; a[gt] = t; --gt; }
      else ++i;
    }
    if (want < lt) hi = lt - 1;
    else if (want > gt) lo = gt + 1;
    else return v;
  }
  return a[lo];
}

// The k-th largest value (1-based) of x: from the values at or above a
// bound taken from a strided sample when k is small against the row.
double kth_largest(const double* x, int64_t V, int64_t k, double* tmp) {
  if (V >= 4096 && k <= V >> 6) {
    const int64_t S = 1024, stride = V / S;
    for (int64_t j = 0; j < S; ++j) tmp[j] = x[j * stride];
    // About 4k / V of the sample (at least 8 values) is above the bound.
    int64_t r = (int64_t)ceil((double)(4 * k * S) / (double)V);
    r = r < 8 ? 8 : r > S ? S : r;
    const double bound = select_ascending(tmp, 0, S - 1, S - r);
    int64_t n = 0;
    for (int64_t i = 0; i < V; ++i)
      if (x[i] >= bound) tmp[n++] = x[i];
    if (n >= k) return select_ascending(tmp, 0, n - 1, n - k);
  }
  memcpy(tmp, x, (size_t)V * sizeof(double));
  return select_ascending(tmp, 0, V - 1, V - k);
}

inline int64_t bucket_of(double q) {
  uint64_t b;
  memcpy(&b, &q, 8);
  return (int64_t)(b >> (32 + kSampleBucketShift));
}

// Top-p (sampling.ts keepTopP): keeps the tokens whose mass ranked above
// them (descending probability, among equals the lower id first) is <
// topP - (1 - S); sets the others' x to -Infinity and e to 0.
void keep_top_p(double* x, int64_t V, double top_p, const double* p, double* e, const SampleScratch& s) {
  // When the most likely token alone reaches the target, every other one has
  // at least that mass ranked above it: it stays alone (the first of equal
  // maxima). Decided on the total summed in lanes, with a margin far above
  // its rounding against the sum in id order (< V·2^-53), so that the
  // result is the general path's; a confident model's rows take it.
  const double pmax = max_row(p, V);
  if (pmax >= top_p - (1 - sum_row(p, V)) + 1e-9) {
    const int64_t keep = argmax_row(p, V);
    for (int64_t i = 0; i < V; ++i) {
      x[i] = i == keep ? x[i] : -INFINITY;
      e[i] = i == keep ? e[i] : 0.0;
    }
    return;
  }
  double* hist = s.hist;
  int64_t bmin = kSampleBuckets, bmax = -1;
  double total = 0;
  for (int64_t i = 0; i < V; ++i) {
    const double q = p[i];
    if (q > 0) {
      const int64_t b = bucket_of(q);
      hist[b] += q;
      total += q;
      bmin = b < bmin ? b : bmin;
      bmax = b > bmax ? b : bmax;
    }
  }
  const double target = top_p - (1 - total);
  // The boundary's bucket: the mass of the buckets above it is < target,
  // with its own >= target (buckets above bmax hold nothing).
  double above = 0;
  int64_t bucket = bmax < 0 ? kSampleBuckets - 1 : bmax;
  for (; bucket > 0; --bucket) {
    if (above + hist[bucket] >= target) break;
    above += hist[bucket];
  }
  if (bmax >= 0) memset(hist + bmin, 0, (size_t)(bmax - bmin + 1) * sizeof(double));
  double* vals = s.vals;
  int64_t n = 0;
  for (int64_t i = 0; i < V; ++i) {  // (branch-free: the bucket holds an unpredictable subset)
    vals[n] = p[i];
    n += p[i] > 0 && bucket_of(p[i]) == bucket;
  }
  // vals[lo, hi): undecided, each below every kept value (whose mass is
  // `above`); kept so far: every value above t and c of those equal to it.
  int64_t lo = 0, hi = n, c = 0;
  double t = INFINITY;
  while (lo < hi && above < target) {
    const double a = vals[lo], b = vals[(lo + hi) >> 1], d = vals[hi - 1];
    const double v = a < b ? (b < d ? b : a < d ? d : a) : (a < d ? a : b < d ? d : b);
    int64_t g = lo, eq = lo, l = hi;  // [lo, g) > v, [g, eq) == v, [eq, l) unseen, [l, hi) < v
    while (eq < l) {
      const double q = vals[eq];
      if (q > v) { vals[eq] = vals[g]; vals[g] = q; ++g; ++eq; }
      else if (q < v) { --l; vals[eq] = vals[l]; vals[l] = q; }
      else ++eq;
    }
    double mass_g = 0;
    for (int64_t j = lo; j < g; ++j) mass_g += vals[j];
    if (above + mass_g >= target) { hi = g; continue; }  // the boundary is within G
    above += mass_g;
    t = v;  // E: equal probabilities, the lower ids first
    c = 0;
    while (c < eq - g && above < target) { above += v; ++c; }
    lo = eq;
    if (c < eq - g) break;
  }
  if (t == INFINITY) {  // the most likely token always stays
    t = p[argmax_row(p, V)];
    c = 1;
  }
  for (int64_t i = 0; i < V; ++i) {  // (branch-free but for the rare ties with t)
    const double q = p[i];
    bool drop = q < t;
    if (q == t) {
      if (c > 0) --c;
      else drop = true;
    }
    x[i] = drop ? -INFINITY : x[i];
    e[i] = drop ? 0.0 : e[i];
  }
}

int32_t sample_one_row(const float* logits, int64_t V, const SampleParams& o, const SampleScratch& s) {
  double* x = s.x;
  // 1. the logits as float64, checked, with the repetition penalty applied
  const int bad = load_row(logits, V, x);
  if (bad) return bad == 1 ? kSampleNaN : kSampleNoFinite;
  if (o.repetition_penalty != 1 && o.history) penalise(x, o.history, o.history_len, o.repetition_penalty, s.seen);
  if (o.temperature == 0) return (int32_t)argmax_row(x, V);
  // 2. temperature
  if (o.temperature != 1)
    for (int64_t i = 0; i < V; ++i) x[i] /= o.temperature;
  // 3. top-k: drop logits below the k-th largest (ties with it stay)
  if (o.top_k > 0 && o.top_k < V) {
    const double kth = kth_largest(x, V, o.top_k, s.p);
    for (int64_t i = 0; i < V; ++i) x[i] = x[i] < kth ? -INFINITY : x[i];
  }
  const double m = max_row(x, V);
  double* p = s.p;
  double* e = s.e;
  if (m == INFINITY) {  // +Infinity logits share all the mass
    int64_t n = 0;
    for (int64_t i = 0; i < V; ++i) n += x[i] == INFINITY;
    for (int64_t i = 0; i < V; ++i) p[i] = x[i] == INFINITY ? 1.0 / (double)n : 0.0;
  } else {
    // One exp per token: top-p, min-p and the result share the terms (a
    // dropped token's set to 0), each summed again.
    double sum = exp_row(x, V, m, e);
    // 4. top-p
    if (o.top_p < 1) {
      divide_row(e, V, sum, p);
      keep_top_p(x, V, o.top_p, p, e, s);
      sum = sum_row(e, V);
    }
    // 5. min-p: drop tokens with probability < minP * the largest one
    if (o.min_p > 0) {
      divide_row(e, V, sum, p);
      const double floor = o.min_p * max_row(p, V);
      for (int64_t i = 0; i < V; ++i) {
        const bool drop = p[i] < floor;
        x[i] = drop ? -INFINITY : x[i];
        e[i] = drop ? 0.0 : e[i];
      }
      sum = sum_row(e, V);
    }
    divide_row(e, V, sum, p);
  }
  // The draw: the first token whose cumulative probability passes u.
  double cum = 0;
  int64_t last = -1;
  for (int64_t i = 0; i < V; ++i) {
    if (p[i] <= 0) continue;
    cum += p[i];
    last = i;
    if (o.u < cum) return (int32_t)i;
  }
  return (int32_t)last;  // u within rounding of 1
}

}  // namespace

void sample_row(const float* logits, int64_t V, const SampleParams& o, const SampleScratch& s, int32_t* out) {
  *out = sample_one_row(logits, V, o, s);
}

}  // namespace NM_ISA
}  // namespace nm
