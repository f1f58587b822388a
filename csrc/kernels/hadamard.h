// Orthogonal Hadamard transform of rows (Quamba's rotation of the out_proj
// input), and the same fused with symmetric int8 quantization.
//
// Sizes: n = m·2^k with m in {1, 12, 40}, k >= 0 (the decomposition is unique:
// 12·2^a and 40·2^b are never powers of two and never equal).
//   S_p (p = 2^k, Sylvester):  S[i][j] = (-1)^popcount(i & j)
//   H_12: Paley construction I, q = 11: chi = quadratic character mod q
//         (chi(0) = 0, 1 on non-zero squares, -1 otherwise), Jacobsthal
//         Q[i][j] = chi(j - i mod q), C = [[0, 1ᵀ], [-1, Q]], H = I + C
//   H_20: the same with q = 19;  H_40 = H_2 ⊗ H_20,  H_2 = [[1, 1], [1, -1]]
//   H_n = H_m ⊗ S_p:  H_n[a·p + b][c·p + d] = H_m[a][c]·S_p[b][d]  (H_1 = [1])
//   T(x) = H_n·x / sqrt(n),  Tᵀ(x) = H_nᵀ·x / sqrt(n) (its inverse; H_12 and
//   H_20 are not symmetric). H_n·H_nᵀ = n·I.
// Fast algorithm: with X the m×p matrix of a row (X[a] = x[a·p .. a·p + p)),
// H_n·x = vec(H_m·X·S_p): a Walsh-Hadamard butterfly over each length-p block,
// then the ±1 mix of the m blocks (H_40 as H_20 on each half, then H_2).
// O(n·(log2 p + 21)) additions per row, float32 throughout; every ISA level
// gives bit for bit the same result (same additions in the same order).
//
// Rows have their own strides (elements). `out` may equal `x` with the same
// stride (in place); otherwise the two must not overlap.
#pragma once
#include <cstdint>

namespace nm {

struct HadamardArgs {
  int64_t rows = 0, n = 0;   // n: a supported size
  const float* x = nullptr;  // [rows, n]
  int64_t x_stride = 0;
  bool transpose = false;    // Tᵀ instead of T
  float* out = nullptr;      // [rows, n]: T(x) or Tᵀ(x)
  int64_t out_stride = 0;
};

// out = clamp(nearbyint(T(x)[i] · inv_scale), -127, 127), i.e. Quamba's
// q = round(T(y) / s) with inv_scale = 1/s rounded to float32. The product
// is formed once per element as T·(inv_scale / sqrt(n)) with that factor
// rounded to float32. NaN: a NaN anywhere in a row makes every element of its
// transform NaN (each output mixes all inputs), and a NaN quantizes to 0, so
// such a row comes out all zeros. One ±Inf in a row makes every output ±Inf,
// which saturates to ±127 (two can meet as Inf - Inf = NaN, hence 0).
struct HadamardQuantArgs {
  int64_t rows = 0, n = 0;
  const float* x = nullptr;  // [rows, n]
  int64_t x_stride = 0;
  float inv_scale = 1.0f;    // finite, > 0
  int8_t* out = nullptr;     // [rows, n]
  int64_t out_stride = 0;
};

// Whether n = m·2^k with m in {1, 12, 40}.
bool hadamard_size_supported(int64_t n);

// Multithreaded over rows on the global pool. Both throw
// std::invalid_argument for an unsupported n (callers check first).
void hadamard_transform(const HadamardArgs& a);
void hadamard_quantize(const HadamardQuantArgs& a);

// Internal: n = m·p as the per-ISA bodies (hadamard_impl.h) take it.
struct HadamardShape {
  int64_t n = 0, p = 0;   // p = 2^k
  int m = 1;              // 1, 12 or 40
  bool transpose = false;
};

}  // namespace nm
