// The samplers' vector part, compiled once per level (see
// kernels/simd/README.md): the softmax terms exp(x - m) and their sum.
#include <math.h>
#include <stdint.h>

namespace nm {
namespace NM_ISA {

// e[i] = exp(x[i] - m) for i < n (0 where x[i] is -Infinity); *sum = their
// sum (lane partial sums, then the tail in order).
void exp_shifted_sum(const double* x, int64_t n, double m, double* e, double* sum) {
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
  *sum = s;
}

}  // namespace NM_ISA
}  // namespace nm
