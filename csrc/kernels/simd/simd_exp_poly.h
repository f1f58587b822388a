// Polynomial exp shared by the AVX headers (included inside nm::NM_ISA after
// VF, set1, fmadd and the bit helpers exist). Cephes expf: x = n*ln2 + r with
// |r| <= ln2/2, exp(r) ~ 1 + r + r^2 P(r) (degree-5 minimax), then scale by
// 2^n through the exponent bits. Max relative error about 2 ulp; inputs below
// -87.3 give ~1e-38 (not 0), inputs above 88.7 saturate.
static inline VF vexp(VF x) {
  const VF hi = VF::set1(88.3762626647949f), lo = VF::set1(-87.3365447505531f);
  x = vmin(vmax(x, lo), hi);
  VF n = vround(x * VF::set1(1.44269504088896341f));
  VF r = fmadd(n, VF::set1(-0.693359375f), x);
  r = fmadd(n, VF::set1(2.12194440e-4f), r);
  VF p = VF::set1(1.9875691500E-4f);
  p = fmadd(p, r, VF::set1(1.3981999507E-3f));
  p = fmadd(p, r, VF::set1(8.3334519073E-3f));
  p = fmadd(p, r, VF::set1(4.1665795894E-2f));
  p = fmadd(p, r, VF::set1(1.6666665459E-1f));
  p = fmadd(p, r, VF::set1(5.0000001201E-1f));
  VF r2 = r * r;
  p = fmadd(p, r2, r + VF::set1(1.0f));
  return vmul_pow2(p, n);
}
// 2^x for the scans' decay factors exp(dt·A) = 2^(dt·(A·log2 e)), the
// caller folding log2 e into A once: one multiply fewer than vexp and no range
// reduction by ln 2. x = n + f with n = round(x), |f| <= 1/2; 2^f by a
// degree-5 polynomial fitted here (a Lawson-weighted least-squares fit of
// relative error on Chebyshev nodes: 7.5e-8 in exact arithmetic, 2.4e-7 by
// float32 Horner), times 2^n (vmul_pow2, per level). Inputs are clamped to
// [-127, 127]: below, 0; a NaN becomes 0, as vexp's clamp makes it ~1e-38.
static inline VF vexp2(VF x) {
  x = vmin(vmax(x, VF::set1(-127.0f)), VF::set1(127.0f));
  const VF n = vround(x), f = x - n;
  VF p = VF::set1(1.327647129e-3f);
  p = fmadd(p, f, VF::set1(9.675540961e-3f));
  p = fmadd(p, f, VF::set1(5.550713092e-2f));
  p = fmadd(p, f, VF::set1(2.402212024e-1f));
  p = fmadd(p, f, VF::set1(6.931469440e-1f));
  p = fmadd(p, f, VF::set1(1.000000119e+0f));
  return vmul_pow2(p, n);
}
static inline VF vsilu(VF x) { return x * vrcp_exact(VF::set1(1.0f) + vexp(VF::zero() - x)); }
