// sampleToken's algorithm (lib/generate/sampling.ts) on float32 logits rows:
// each step below is the one of the same name there, on the same float64
// values, so that the two agree as kernels/sampling.h says.
#include "kernels/sampling.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"

namespace nm {

NM_DECLARE_ISA_FN(void exp_shifted_sum(const double* x, int64_t n, double m, double* e, double* sum))

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Top-p's buckets: a float64's high word shifted right by this (11 exponent
// bits and the top 4 of the mantissa: 1/16 of an octave), as sampling.ts.
constexpr int kBucketShift = 16;
constexpr int64_t kBuckets = int64_t(1) << (31 - kBucketShift);

// Rows reused from call to call, per thread (rows run on the pool). hist is
// all zero between calls (keep_top_p clears what it touched).
struct Scratch {
  std::vector<double> x, p, e, vals, hist;
};

Scratch& scratch_for(int64_t V) {
  thread_local Scratch s;
  if ((int64_t)s.x.size() < V) {
    s.x.resize((size_t)V);
    s.p.resize((size_t)V);
    s.e.resize((size_t)V);
    s.vals.resize((size_t)V);
  }
  if (s.hist.empty()) s.hist.assign((size_t)kBuckets, 0.0);
  return s;
}

void exp_terms(const double* x, int64_t n, double m, double* e, double* sum) {
  NM_ISA_CALL(exp_shifted_sum, x, n, m, e, sum);
}

int64_t argmax(const double* x, int64_t n) {
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
    constexpr int64_t S = 1024;
    const int64_t stride = V / S;
    for (int64_t j = 0; j < S; ++j) tmp[j] = x[j * stride];
    // About 4k / V of the sample (at least 8 values) is above the bound.
    const int64_t r = std::min<int64_t>(S, std::max<int64_t>(8, (int64_t)std::ceil((double)(4 * k * S) / (double)V)));
    const double bound = select_ascending(tmp, 0, S - 1, S - r);
    int64_t n = 0;
    for (int64_t i = 0; i < V; ++i)
      if (x[i] >= bound) tmp[n++] = x[i];
    if (n >= k) return select_ascending(tmp, 0, n - 1, n - k);
  }
  std::memcpy(tmp, x, (size_t)V * sizeof(double));
  return select_ascending(tmp, 0, V - 1, V - k);
}

inline int64_t bucket_of(double q) {
  uint64_t b;
  std::memcpy(&b, &q, 8);
  return (int64_t)(b >> (32 + kBucketShift));
}

// Top-p (sampling.ts keepTopP): keeps the tokens whose mass ranked above
// them (descending probability, among equals the lower id first) is <
// topP - (1 - S); sets the others' x to -Infinity and e to 0.
void keep_top_p(double* x, int64_t V, double top_p, const double* p, double* e, Scratch& s) {
  double* hist = s.hist.data();
  int64_t bmin = kBuckets, bmax = -1;
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
  int64_t bucket = bmax < 0 ? kBuckets - 1 : bmax;
  for (; bucket > 0; --bucket) {
    if (above + hist[bucket] >= target) break;
    above += hist[bucket];
  }
  if (bmax >= 0) std::memset(hist + bmin, 0, (size_t)(bmax - bmin + 1) * sizeof(double));
  double* vals = s.vals.data();
  int64_t n = 0;
  for (int64_t i = 0; i < V; ++i)
    if (p[i] > 0 && bucket_of(p[i]) == bucket) vals[n++] = p[i];
  // vals[lo, hi): undecided, each below every kept value (whose mass is
  // `above`); kept so far: every value above t and c of those equal to it.
  int64_t lo = 0, hi = n, c = 0;
  double t = kInf;
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
  if (t == kInf) {  // the most likely token always stays
    t = p[argmax(p, V)];
    c = 1;
  }
  for (int64_t i = 0; i < V; ++i) {
    if (p[i] > t) continue;
    if (p[i] == t && c > 0) --c;
    else { x[i] = -kInf; e[i] = 0; }
  }
}

int32_t sample_row(const float* logits, int64_t V, const SampleParams& o) {
  Scratch& s = scratch_for(V);
  double* x = s.x.data();
  // 1. the logits as float64, checked
  bool nan = false, finite = false;
  for (int64_t i = 0; i < V; ++i) {
    const float v = logits[i];
    nan |= v != v;
    finite |= v > -std::numeric_limits<float>::infinity();
    x[i] = (double)v;
  }
  if (nan) return kSampleNaN;
  if (!finite) return kSampleNoFinite;
  if (o.temperature == 0) return (int32_t)argmax(x, V);
  // 2. temperature
  if (o.temperature != 1)
    for (int64_t i = 0; i < V; ++i) x[i] /= o.temperature;
  // 3. top-k: drop logits below the k-th largest (ties with it stay)
  if (o.top_k > 0 && o.top_k < V) {
    const double kth = kth_largest(x, V, o.top_k, s.p.data());
    for (int64_t i = 0; i < V; ++i)
      if (x[i] < kth) x[i] = -kInf;
  }
  double m = -kInf;
  for (int64_t i = 0; i < V; ++i) m = x[i] > m ? x[i] : m;
  double* p = s.p.data();
  double* e = s.e.data();
  if (m == kInf) {  // +Infinity logits share all the mass
    int64_t n = 0;
    for (int64_t i = 0; i < V; ++i) n += x[i] == kInf;
    for (int64_t i = 0; i < V; ++i) p[i] = x[i] == kInf ? 1.0 / (double)n : 0.0;
  } else {
    // One exp per token: top-p, min-p and the result share the terms (a
    // dropped token's set to 0), each summed again.
    double sum = 0;
    exp_terms(x, V, m, e, &sum);
    // 4. top-p
    if (o.top_p < 1) {
      for (int64_t i = 0; i < V; ++i) p[i] = e[i] / sum;
      keep_top_p(x, V, o.top_p, p, e, s);
      sum = 0;
      for (int64_t i = 0; i < V; ++i) sum += e[i];
    }
    // 5. min-p: drop tokens with probability < minP * the largest one
    if (o.min_p > 0) {
      double pmax = 0;
      for (int64_t i = 0; i < V; ++i) {
        p[i] = e[i] / sum;
        pmax = p[i] > pmax ? p[i] : pmax;
      }
      const double floor = o.min_p * pmax;
      for (int64_t i = 0; i < V; ++i)
        if (p[i] < floor) { x[i] = -kInf; e[i] = 0; }
      sum = 0;
      for (int64_t i = 0; i < V; ++i) sum += e[i];
    }
    for (int64_t i = 0; i < V; ++i) p[i] = e[i] / sum;
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

void sample_tokens(const float* logits, int64_t rows, int64_t vocab, int64_t stride, const SampleParams* params,
                   int32_t* out) {
  cpu::parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) out[r] = sample_row(logits + r * stride, vocab, params[r]);
  });
}

}  // namespace nm
