#include "kernels/linear.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"
#include "kernels/linear_dot.h"
#include "kernels/ggml_panels.h"

namespace nm {

NM_DECLARE_ISA_FN(void linear_gemv(const LinearArgs& a, const float* xp, int64_t n0, int64_t n1))
NM_DECLARE_ISA_FN(void linear_gemv_x_layout(int64_t* lanes, int64_t* chunk_rows))
NM_DECLARE_ISA_FN(void linear_gemm(const LinearArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float* scratch))
NM_DECLARE_ISA_FN(void linear_gemv_split_rows(int64_t M, int64_t* rows))
NM_DECLARE_ISA_FN(void linear_gemm_geometry(int64_t* mr, int64_t* nr, int64_t* scratch_floats))
NM_DECLARE_ISA_FN(void linear_small_m_geometry(int64_t K, int64_t* lanes, int64_t* max_rows_f32, int64_t* max_rows_other,
                                                int64_t* wbuf_floats))
NM_DECLARE_ISA_FN(void linear_pack_xt(const LinearArgs& a, int64_t s0, int64_t s1, float* xt))
NM_DECLARE_ISA_FN(void linear_gemm_t(const LinearArgs& a, const float* xt, int64_t n0, int64_t n1, float* wbuf,
                                      const LinearSwiglu* sw))

namespace {

// Splits N over the pool in units of `unit` weight rows and calls
// gemv(n0, n1) for each range of rows. Guided ranges (long ones first, as
// qlinear's decode calls): a thread the machine stalls or slows holds up the
// call by one short range at most, not by half of it (bench/NOTES.md).
template <typename Gemv>
void split_gemv(const LinearArgs& a, int64_t unit, Gemv&& gemv) {
  // A task should stream at least ~16K weights (or do ~64K FMAs) to be worth
  // a thread wake-up: at 64K, dt_proj [1536x48] (74K weights) ran on one
  // thread, 1.4-1.7x slower than on two (bench/NOTES.md).
  const int64_t units = (a.N + unit - 1) / unit;
  const int64_t per_unit = unit * std::max<int64_t>(a.K, 1) * std::max<int64_t>(a.M, 1);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / per_unit);
  cpu::parallel_for_guided(units, grain, 1, [&](int64_t u0, int64_t u1) { gemv(u0 * unit, std::min(a.N, u1 * unit)); });
}

// Scratch of the calling thread, reused across calls (64-byte aligned).
// Slot 0: the rounded copy of x (or the dot-product GEMV's quantized x),
// slot 1: x interleaved for the GEMV; both can be live in one call.
void* scratch_bytes(int64_t bytes, int slot = 0) {
  thread_local std::vector<char> bufs[2];
  std::vector<char>& buf = bufs[slot];
  if ((int64_t)buf.size() < bytes + 64) buf.resize((size_t)(bytes + 64));
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<void*>((p + 63) / 64 * 64);
}

// x interleaved for the GEMV tiles (linear_impl.h gemv_rows_dt): chunks of
// `rows` input rows, within a chunk of mb rows vector j of row m at
// (j * mb + m) * lanes, zero past K; one pointer then reaches every row of a
// tile. Packed once per call, by the calling thread, into its scratch.
const float* pack_gemv_x(const LinearArgs& a) {
  int64_t lanes = 1, rows = 1;
  NM_ISA_CALL(linear_gemv_x_layout, &lanes, &rows);
  const int64_t kv = (a.K + lanes - 1) / lanes, chunks = (a.M + rows - 1) / rows;
  float* buf = static_cast<float*>(scratch_bytes(chunks * rows * kv * lanes * (int64_t)sizeof(float), 1));
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t m0 = c * rows, mb = std::min(rows, a.M - m0);
    float* dst = buf + c * rows * kv * lanes;
    for (int64_t m = 0; m < mb; ++m) {
      const float* xr = linear_x_row(a.x, a.x_stride, a.x_rows, m0 + m);
      for (int64_t j = 0; j < kv; ++j) {
        float* d = dst + (j * mb + m) * lanes;
        const int64_t k0 = j * lanes, t = std::min(lanes, a.K - k0);
        std::memcpy(d, xr + k0, (size_t)t * sizeof(float));
        for (int64_t i = t; i < lanes; ++i) d[i] = 0.0f;
      }
    }
  }
  return buf;
}

void run_gemv(const LinearArgs& a) {
  // Work is split over units of weight rows that keep the impl's tiles
  // whole: one tile (R rows) when all M input rows form one chunk, else a
  // group of kGemvGroup (24) rows, whose rows stay in L2 for every chunk.
  // Splitting by tiles evens out small N (x_proj, N = 80: 40 + 40 rows
  // instead of 48 + 32 with 24-row groups).
  int64_t unit = 24;
  NM_ISA_CALL(linear_gemv_split_rows, a.M, &unit);
  const float* xp = a.M > 1 ? pack_gemv_x(a) : nullptr;
  split_gemv(a, unit, [&](int64_t n0, int64_t n1) { NM_ISA_CALL(linear_gemv, a, xp, n0, n1); });
}

// The GEMV with rounded activations on the dot-product instructions, where
// the level, the CPU and the weight type allow it. Returns false otherwise.
bool run_dot_gemv(const LinearArgs& a) {
#if NM_LINEAR_DOT
  if (cpu::active_isa() >= cpu::Isa::Avx2 && cpu::active_isa() < cpu::Isa::Avx512Vnni) {
    // Q4_0 only: Q8_0's integer GEMV was no faster than its float one here
    // (linear_dot_avx2.cpp).
    if (a.x_rounding != ActRounding::Q8Block || a.w_dtype != DType::Q4_0) return false;
    const avx512vnni::Q8Rows q = avx512vnni::q8_rows_at(scratch_bytes(avx512vnni::q8_rows_bytes(a.M, a.K)), a.M, a.K);
    avx2dot::quantize_q8_rows(a.x, a.x_stride, a.x_rows, a.M, a.K, q);
    split_gemv(a, avx2dot::dot_split_rows(a.M), [&](int64_t n0, int64_t n1) { avx2dot::gemv_q4dot(a, q, n0, n1); });
    return true;
  }
  if (cpu::active_isa() < cpu::Isa::Avx512Vnni) return false;
  const int64_t unit = avx512vnni::dot_split_rows(a.M, a.w_dtype);
  if (a.x_rounding == ActRounding::Q8Block && (a.w_dtype == DType::Q8_0 || a.w_dtype == DType::Q4_0)) {
    const avx512vnni::Q8Rows q = avx512vnni::q8_rows_at(scratch_bytes(avx512vnni::q8_rows_bytes(a.M, a.K)), a.M, a.K);
    avx512vnni::quantize_q8_rows(a.x, a.x_stride, a.x_rows, a.M, a.K, q);
    split_gemv(a, unit, [&](int64_t n0, int64_t n1) { avx512vnni::gemv_q8dot(a, q, n0, n1); });
    return true;
  }
  if (a.x_rounding == ActRounding::BF16 && a.w_dtype == DType::BF16 && cpu::has_avx512_bf16()) {
    auto* xb = static_cast<uint16_t*>(scratch_bytes(a.M * avx512vnni::bf16_row_elems(a.K) * 2));
    avx512vnni::round_bf16_rows(a.x, a.x_stride, a.x_rows, a.M, a.K, xb);
    split_gemv(a, unit, [&](int64_t n0, int64_t n1) { avx512vnni::gemv_bf16dot(a, xb, n0, n1); });
    return true;
  }
#endif
  return false;
}

// Threads worth waking for a product of this size: below ~1M FMAs one
// thread is faster than waking another.
int64_t gemm_threads(const LinearArgs& a, int64_t tasks) {
  const double fmas = (double)a.M * (double)a.N * (double)std::max<int64_t>(a.K, 1);
  const int64_t max_tasks = fmas < double(1 << 20) ? 1 : std::min<int64_t>(tasks, 1 << 16);
  return std::min<int64_t>(max_tasks, cpu::pool().size());
}

// Per-thread float scratch: `threads` slices of at least `floats` each, each
// slice 64-byte aligned. Not zeroed.
class ThreadSlices {
 public:
  ThreadSlices(int64_t floats, int64_t threads)
      : slice_((floats + 15) / 16 * 16), buf_(new float[(size_t)(slice_ * threads + 16)]) {
    base_ = buf_.get() + (16 - (reinterpret_cast<uintptr_t>(buf_.get()) / sizeof(float)) % 16) % 16;
  }
  float* operator[](int64_t i) const { return base_ + slice_ * i; }

 private:
  int64_t slice_;
  std::unique_ptr<float[]> buf_;
  float* base_;
};

// Whether the few-row GEMM (linear_impl.h, "GEMM for few input rows") takes
// this product at the active level: M small enough for it to win.
bool small_m_applies(const LinearArgs& a, int64_t* lanes, int64_t* wbuf_floats) {
  int64_t max_f32 = 0, max_other = 0;
  NM_ISA_CALL(linear_small_m_geometry, a.K, lanes, &max_f32, &max_other, wbuf_floats);
  return *lanes > 0 && a.M <= (a.w_dtype == DType::F32 ? max_f32 : max_other);
}

// The few-row GEMM: x^T packed once by the calling thread, N split over the
// pool in tiles of `lanes` weight rows (lanes / 2 output columns with sw).
void run_gemm_small_m(const LinearArgs& a, int64_t lanes, int64_t wbuf_floats, const LinearSwiglu* sw) {
  const int64_t strips = (a.M + lanes - 1) / lanes, tn = sw ? lanes / 2 : lanes, tiles = (a.N + tn - 1) / tn;
  float* xt = static_cast<float*>(scratch_bytes(strips * a.K * lanes * (int64_t)sizeof(float), 1));
  NM_ISA_CALL(linear_pack_xt, a, 0, strips, xt);
  const int64_t want = gemm_threads(a, tiles);
  const ThreadSlices wbuf(wbuf_floats, want);  // per-thread rows of converted weights
  cpu::pool().run((int)want, [&](int ith, int nth) {
    const int64_t n0 = std::min(a.N, tiles * ith / nth * tn), n1 = std::min(a.N, tiles * (ith + 1) / nth * tn);
    if (n0 < n1) NM_ISA_CALL(linear_gemm_t, a, xt, n0, n1, wbuf[ith], sw);
  });
}

void run_gemm(const LinearArgs& a) {
  int64_t lanes = 0, wbuf_floats = 0;
  if (small_m_applies(a, &lanes, &wbuf_floats)) {
    run_gemm_small_m(a, lanes, wbuf_floats, nullptr);
    return;
  }
  int64_t mr = 1, nr = 1, scratch_floats = 0;
  NM_ISA_CALL(linear_gemm_geometry, &mr, &nr, &scratch_floats);
  const int64_t strips = (a.N + nr - 1) / nr, mtiles = (a.M + mr - 1) / mr;
  const int64_t want = gemm_threads(a, strips * mtiles);
  // Not zeroed: every element is written before it is read (pack_b
  // and the bias strip fill what the micro-kernel reads).
  const ThreadSlices scratch(scratch_floats, want);
  if (want > 1 && strips >= 4 * want) {
    // Column strips in dynamic chunks of about a quarter of a thread's
    // share: one share per thread waited for whichever thread the machine
    // slowed (bench/NOTES.md). Each y element is still one thread's fma
    // chain over k, so the result does not depend on the split.
    const int64_t chunks = 4 * want;
    std::atomic<int64_t> next{0};
    cpu::pool().run((int)want, [&](int ith, int) {
      for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
        const int64_t n0 = std::min(a.N, strips * c / chunks * nr), n1 = std::min(a.N, strips * (c + 1) / chunks * nr);
        if (n0 < n1) NM_ISA_CALL(linear_gemm, a, 0, a.M, n0, n1, scratch[ith]);
      }
    });
    return;
  }
  cpu::pool().run((int)want, [&](int ith, int nth) {
    // Split N across threads while there are enough column strips, and M
    // as well when N is narrow.
    const int64_t tn = std::min<int64_t>(nth, strips);
    const int64_t tm = std::min<int64_t>(std::max<int64_t>(1, nth / tn), mtiles);
    if (ith >= tn * tm) return;
    const int64_t in = ith % tn, im = ith / tn;
    const int64_t n0 = std::min(a.N, strips * in / tn * nr), n1 = std::min(a.N, strips * (in + 1) / tn * nr);
    const int64_t m0 = std::min(a.M, mtiles * im / tm * mr), m1 = std::min(a.M, mtiles * (im + 1) / tm * mr);
    if (n0 < n1 && m0 < m1) NM_ISA_CALL(linear_gemm, a, m0, m1, n0, n1, scratch[ith]);
  });
}

}  // namespace

void round_activations(ActRounding mode, const float* x, int64_t xs, int64_t M, int64_t K, float* out, int64_t os,
                       const int32_t* x_rows) {
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = linear_x_row(x, xs, x_rows, m);
    float* o = out + m * os;
    if (mode == ActRounding::BF16) {
      for (int64_t k = 0; k < K; ++k) o[k] = bf16_to_f32(f32_to_bf16(xr[k]));
    } else if (mode == ActRounding::Q8Block) {
      for (int64_t b0 = 0; b0 < K; b0 += kQuantBlock) {
        const int64_t n = std::min<int64_t>(kQuantBlock, K - b0);
        // amax is NaN when the block holds a NaN, so that the scale d (and
        // every output that reads the block) is NaN, never a silent 0.
        float amax = 0.0f;
        for (int64_t j = 0; j < n; ++j) {
          const float v = std::fabs(xr[b0 + j]);
          if (v > amax || v != v) amax = v;
        }
        const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int64_t j = 0; j < n; ++j) {
          const float q = std::min(127.0f, std::max(-127.0f, std::nearbyint(xr[b0 + j] * id)));
          o[b0 + j] = d * q;
        }
      }
    } else {
      for (int64_t k = 0; k < K; ++k) o[k] = xr[k];
    }
  }
}

namespace {

// a with x replaced by round(x) (x_rounding) in the calling thread's scratch:
// the exact kernels then run on it.
LinearArgs with_rounded_x(const LinearArgs& a) {
  float* xr = static_cast<float*>(scratch_bytes(a.M * a.K * (int64_t)sizeof(float)));
  round_activations(a.x_rounding, a.x, a.x_stride, a.M, a.K, xr, a.K, a.x_rows);
  LinearArgs r = a;
  r.x = xr;
  r.x_stride = a.K;
  r.x_rows = nullptr;
  r.x_rounding = ActRounding::None;
  return r;
}

}  // namespace

void linear(const LinearArgs& a, LinearAlgo algo) {
  if (dtype_info(a.w_dtype).linear != LinearKernel::Float)
    throw std::invalid_argument(std::string("node-mamba: linear: weight format ") + dtype_name(a.w_dtype) +
                                " is read by qlinear, not linear");
  if (a.w_layout == WeightLayout::Panels) return linear_ggml_panels(a);  // one path for every M (it checks the rest)
  if (a.w_layout != WeightLayout::Rows)
    throw std::invalid_argument("node-mamba: linear: unknown weight layout " + std::to_string((int32_t)a.w_layout));
  if (a.M <= 0 || a.N <= 0) return;
  if (algo == LinearAlgo::Auto) algo = a.M <= kLinearGemvMaxRows ? LinearAlgo::Gemv : LinearAlgo::Gemm;
  if (a.x_rounding != ActRounding::None) {
    if (algo == LinearAlgo::Gemv && run_dot_gemv(a)) return;
    // Every other case: the exact kernels on a rounded copy of x.
    linear(with_rounded_x(a), algo);
    return;
  }
  if (algo == LinearAlgo::Gemv) run_gemv(a);
  else run_gemm(a);
}

bool linear_swiglu(const LinearArgs& a, const LinearSwiglu& sw) {
  if (dtype_info(a.w_dtype).linear != LinearKernel::Float || a.w_layout != WeightLayout::Rows || a.bias || !sw.w_up ||
      !sw.h)
    return false;
  if (a.M <= kLinearGemvMaxRows) return false;  // the GEMV's rows
  int64_t lanes = 0, wbuf_floats = 0;
  if (!small_m_applies(a, &lanes, &wbuf_floats)) return false;
  if (a.N <= 0) return true;
  // As linear(): the exact kernel on a rounded copy of x.
  run_gemm_small_m(a.x_rounding != ActRounding::None ? with_rounded_x(a) : a, lanes, wbuf_floats, &sw);
  return true;
}

}  // namespace nm
