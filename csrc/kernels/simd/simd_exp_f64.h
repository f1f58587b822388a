// exp in float64 on VD, shared by every level (included inside nm::NM_ISA
// after VD, fmadd, vmax, vmin, vfloor and vpow2i exist): the same operations in
// the same order everywhere, so every level returns the same bits.
//   x = n·ln 2 + r, n = round(x / ln 2), |r| <= ln 2 / 2, with ln 2 split in
//   two (ln2_hi has 21 trailing zero bits: n·ln2_hi is exact for |n| < 2^32);
//   exp(r) by its Taylor series to r^13 / 13! (truncation < 5e-18 relative
//   at |r| = ln 2 / 2), Horner with fused multiply-adds: within ~1 ulp;
//   times 2^n as 2^floor(n/2) · 2^(n - floor(n/2)): both factors normal for
//   every n from -1076 to 1024, so the one rounding (the second product)
//   gives subnormal results and overflow correctly.
// Inputs below -746 (-Infinity included) give 0; above 710, +Infinity. NaN is
// not an input (the sampler rejects NaN logits first).
static inline VD vexp_f64(VD x) {
  x = vmin(vmax(x, VD::set1(-746.0)), VD::set1(710.0));
  const VD magic = VD::set1(0x1.8p52);  // x·log2 e + 1.5·2^52 rounds to an integer
  const VD n = fmadd(x, VD::set1(0x1.71547652b82fep+0), magic) - magic;
  VD r = fmadd(n, VD::set1(-0x1.62e42fee00000p-1), x);
  r = fmadd(n, VD::set1(-0x1.a39ef35793c76p-33), r);
  VD p = VD::set1(0x1.6124613a86d09p-33);  // 1/13!
  p = fmadd(p, r, VD::set1(0x1.1eed8eff8d898p-29));
  p = fmadd(p, r, VD::set1(0x1.ae64567f544e4p-26));
  p = fmadd(p, r, VD::set1(0x1.27e4fb7789f5cp-22));
  p = fmadd(p, r, VD::set1(0x1.71de3a556c734p-19));
  p = fmadd(p, r, VD::set1(0x1.a01a01a01a01ap-16));
  p = fmadd(p, r, VD::set1(0x1.a01a01a01a01ap-13));
  p = fmadd(p, r, VD::set1(0x1.6c16c16c16c17p-10));
  p = fmadd(p, r, VD::set1(0x1.1111111111111p-7));
  p = fmadd(p, r, VD::set1(0x1.5555555555555p-5));
  p = fmadd(p, r, VD::set1(0x1.5555555555555p-3));
  p = fmadd(p, r, VD::set1(0x1.0p-1));
  p = fmadd(p, r, VD::set1(1.0));
  p = fmadd(p, r, VD::set1(1.0));
  const VD n1 = vfloor(n * VD::set1(0.5));
  return (p * vpow2i(n1)) * vpow2i(n - n1);
}
