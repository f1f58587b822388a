// Arithmetic-peak probe for the benchmark (bench/): the pool's threads each
// run independent chains of the active level's float32 multiply-add and of
// the int8 dot-product step the qlinear kernels use, with no memory traffic,
// and report the rates. This is the machine's limit for a compute-bound
// prefill, measured in the same process and at the same level as the engine:
//   f32:  vfmadd (zmm at the AVX-512 levels, ymm at AVX2), 2 flops per lane;
//   int8: the step of the W8A8 prefill tiles: vpdpbusd (avx512vnni); at
//         AVX-512 without VNNI and at AVX2 products of int8 values widened
//         to int16, vpmaddwd / vpaddd (kernels/qlinear_wide.h); 2 ops per
//         multiply-add.
// The portable level runs plain loops (whatever the baseline compiler makes
// of them).
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/threadpool.h"
#include "napi/bindings.h"
#include "napi/convert.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define NM_PEAK_X86 1
#endif

namespace nm::napi {

namespace {

// The probes touch no memory in their loops; under the sanitizer build
// (scripts/test-asan.sh) instrumentation would otherwise keep the chains'
// arrays on the stack, and the loops would time stores and loads instead of
// arithmetic (~1-8 G/s at every level).
#if defined(__GNUC__) || defined(__clang__)
#define NM_PEAK_PROBE __attribute__((no_sanitize("address", "undefined")))
#else
#define NM_PEAK_PROBE
#endif

// Independent accumulator chains per loop: enough to cover a multiply-add's
// latency (4-5 cycles) on two pipes.
constexpr int kChains = 12;

// Each function runs `iters` iterations and returns the multiply-adds done;
// `sink` keeps the results observable.

NM_PEAK_PROBE int64_t f32_scalar(int64_t iters, float* sink) {
  float a[kChains];
  for (int c = 0; c < kChains; ++c) a[c] = 0.001f * (float)c;
  float x = 0.999f, y = 1e-4f;
  for (int64_t i = 0; i < iters; ++i) {
    __asm__ volatile("" : "+r"(x));
    for (int c = 0; c < kChains; ++c) a[c] = a[c] * x + y;
  }
  float s = 0;
  for (float v : a) s += v;
  *sink += s;
  return iters * kChains;
}

NM_PEAK_PROBE int64_t i8_scalar(int64_t iters, float* sink) {
  int32_t a[kChains] = {};
  int8_t w[4] = {3, -5, 7, -11}, x[4] = {2, -3, 4, -5};
  for (int64_t i = 0; i < iters; ++i) {
    __asm__ volatile("" : : "r"(x) : "memory");
    for (int c = 0; c < kChains; ++c)
      for (int k = 0; k < 4; ++k) a[c] += (int32_t)w[k] * (int32_t)x[(k + c) & 3];
  }
  int32_t s = 0;
  for (int32_t v : a) s += v;
  *sink += (float)s;
  return iters * kChains * 4;
}

#if defined(NM_PEAK_X86) && (defined(__GNUC__) || defined(__clang__))
NM_PEAK_PROBE __attribute__((target("avx2,fma"))) int64_t f32_avx2(int64_t iters, float* sink) {
  __m256 a[kChains];
  for (int c = 0; c < kChains; ++c) a[c] = _mm256_set1_ps(0.001f * (float)c);
  __m256 x = _mm256_set1_ps(0.999f);
  const __m256 y = _mm256_set1_ps(1e-4f);
  for (int64_t i = 0; i < iters; ++i) {
    __asm__ volatile("" : "+x"(x));
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) a[c] = _mm256_fmadd_ps(a[c], x, y);
  }
  __m256 s = a[0];
  for (int c = 1; c < kChains; ++c) s = _mm256_add_ps(s, a[c]);
  alignas(32) float t[8];
  _mm256_store_ps(t, s);
  *sink += t[0];
  return iters * kChains * 8;
}

// AVX2: W8A8 prefill multiplies in int16 (kernels/qlinear_wide.h): per
// step 2 input broadcasts x 4 weight vectors, vpmaddwd + vpaddd, 16 products
// each. Written as asm: GCC kept some accumulators of the intrinsics version
// on the stack.
NM_PEAK_PROBE __attribute__((target("avx2,fma"))) int64_t i8_avx2(int64_t iters, float* sink) {
  __m256i a0 = _mm256_set1_epi32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const __m256i w0 = _mm256_set1_epi16(3), w1 = _mm256_set1_epi16(-5), w2 = _mm256_set1_epi16(7),
                w3 = _mm256_set1_epi16(-9), x0 = _mm256_set1_epi16(2), x1 = _mm256_set1_epi16(-3);
  for (int64_t i = 0; i < iters; ++i) {
#define NM_PEAK_MADD(a, w, x) "vpmaddwd %[" #w "], %[" #x "], %%ymm15\n\tvpaddd %%ymm15, %[" #a "], %[" #a "]\n\t"
    __asm__ volatile(NM_PEAK_MADD(a0, w0, x0) NM_PEAK_MADD(a1, w1, x0) NM_PEAK_MADD(a2, w2, x0) NM_PEAK_MADD(a3, w3, x0)
                     NM_PEAK_MADD(a4, w0, x1) NM_PEAK_MADD(a5, w1, x1) NM_PEAK_MADD(a6, w2, x1) NM_PEAK_MADD(a7, w3, x1)
                     : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5),
                       [a6] "+x"(a6), [a7] "+x"(a7)
                     : [w0] "x"(w0), [w1] "x"(w1), [w2] "x"(w2), [w3] "x"(w3), [x0] "x"(x0), [x1] "x"(x1)
                     : "xmm15");
#undef NM_PEAK_MADD
  }
  const __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                                     _mm256_add_epi32(_mm256_add_epi32(a4, a5), _mm256_add_epi32(a6, a7)));
  *sink += (float)_mm256_extract_epi32(s, 0);
  return iters * 8 * 16;
}

NM_PEAK_PROBE __attribute__((target("avx512f,avx512bw"))) int64_t f32_avx512(int64_t iters, float* sink) {
  __m512 a[kChains];
  for (int c = 0; c < kChains; ++c) a[c] = _mm512_set1_ps(0.001f * (float)c);
  __m512 x = _mm512_set1_ps(0.999f);
  const __m512 y = _mm512_set1_ps(1e-4f);
  for (int64_t i = 0; i < iters; ++i) {
    __asm__ volatile("" : "+v"(x));
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) a[c] = _mm512_fmadd_ps(a[c], x, y);
  }
  __m512 s = a[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, a[c]);
  alignas(64) float t[16];
  _mm512_store_ps(t, s);
  *sink += t[0];
  return iters * kChains * 16;
}

// AVX-512 without VNNI: as AVX2 (int16 products, kernels/qlinear_wide.h)
// on 512-bit vectors, 32 products per vpmaddwd.
NM_PEAK_PROBE __attribute__((target("avx512f,avx512bw"))) int64_t i8_avx512(int64_t iters, float* sink) {
  __m512i a0 = _mm512_set1_epi32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const __m512i w0 = _mm512_set1_epi16(3), w1 = _mm512_set1_epi16(-5), w2 = _mm512_set1_epi16(7),
                w3 = _mm512_set1_epi16(-9), x0 = _mm512_set1_epi16(2), x1 = _mm512_set1_epi16(-3);
  for (int64_t i = 0; i < iters; ++i) {
#define NM_PEAK_MADD(a, w, x) "vpmaddwd %[" #w "], %[" #x "], %%zmm31\n\tvpaddd %%zmm31, %[" #a "], %[" #a "]\n\t"
    __asm__ volatile(NM_PEAK_MADD(a0, w0, x0) NM_PEAK_MADD(a1, w1, x0) NM_PEAK_MADD(a2, w2, x0) NM_PEAK_MADD(a3, w3, x0)
                     NM_PEAK_MADD(a4, w0, x1) NM_PEAK_MADD(a5, w1, x1) NM_PEAK_MADD(a6, w2, x1) NM_PEAK_MADD(a7, w3, x1)
                     : [a0] "+v"(a0), [a1] "+v"(a1), [a2] "+v"(a2), [a3] "+v"(a3), [a4] "+v"(a4), [a5] "+v"(a5),
                       [a6] "+v"(a6), [a7] "+v"(a7)
                     : [w0] "v"(w0), [w1] "v"(w1), [w2] "v"(w2), [w3] "v"(w3), [x0] "v"(x0), [x1] "v"(x1)
                     : "xmm31");
#undef NM_PEAK_MADD
  }
  const __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                     _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
  alignas(64) int32_t t[16];
  _mm512_store_si512((void*)t, s);
  *sink += (float)t[0];
  return iters * 8 * 32;
}

NM_PEAK_PROBE __attribute__((target("avx512f,avx512bw,avx512vnni"))) int64_t i8_avx512vnni(int64_t iters, float* sink) {
  __m512i a[kChains];
  for (int c = 0; c < kChains; ++c) a[c] = _mm512_set1_epi32(c);
  const __m512i w0 = _mm512_set1_epi8(3), w1 = _mm512_set1_epi8(-5);
  __m512i x = _mm512_set1_epi32(0x05fd02fe);
  for (int64_t i = 0; i < iters; ++i) {
    __asm__ volatile("" : "+v"(x));
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) a[c] = _mm512_dpbusd_epi32(a[c], x, c & 1 ? w1 : w0);
  }
  __m512i s = a[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_epi32(s, a[c]);
  alignas(64) int32_t t[16];
  _mm512_store_si512((void*)t, s);
  *sink += (float)t[0];
  return iters * kChains * 64;
}
#endif

using Probe = int64_t (*)(int64_t, float*);

struct Probes {
  Probe f32, i8;
  const char* i8_op;
};

Probes probes_for(cpu::Isa isa) {
#if defined(NM_PEAK_X86) && (defined(__GNUC__) || defined(__clang__))
  if (isa == cpu::Isa::Avx512Vnni) return {f32_avx512, i8_avx512vnni, "vpdpbusd"};
  if (isa == cpu::Isa::Avx512) return {f32_avx512, i8_avx512, "vpmaddwd (int16)"};
  if (isa == cpu::Isa::Avx2) return {f32_avx2, i8_avx2, "vpmaddwd (int16)"};
#endif
  (void)isa;
  return {f32_scalar, i8_scalar, "scalar"};
}

struct Rates {
  std::vector<double> gops;  // per repeat: 2 x multiply-adds / s / 1e9, all threads
};

// Runs `probe` on `threads` threads, `repeats` times, each long enough (~20 ms).
Rates measure(Probe probe, int threads, int repeats, float* sink) {
  // Calibrate on one thread: iterations for ~20 ms.
  int64_t iters = 1 << 12;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    probe(iters, sink);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 2e-3 || iters > (int64_t(1) << 34)) {
      iters = std::max<int64_t>(1, (int64_t)((double)iters * 0.02 / std::max(s, 1e-9)));
      break;
    }
    iters *= 4;
  }
  Rates r;
  std::vector<float> sinks((size_t)threads * 16, 0.0f);  // one cache line per thread
  std::vector<int64_t> macs((size_t)threads * 8, 0);
  for (int rep = 0; rep < repeats; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    cpu::pool().run(threads, [&](int ith, int) { macs[(size_t)ith * 8] = probe(iters, &sinks[(size_t)ith * 16]); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t total = 0;
    for (int t = 0; t < threads; ++t) total += macs[(size_t)t * 8];
    r.gops.push_back(2.0 * (double)total / s / 1e9);
  }
  for (float v : sinks) *sink += v;
  return r;
}

Napi::Object summary(Napi::Env env, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  Napi::Object o = Napi::Object::New(env);
  o.Set("best", v.back());
  o.Set("median", n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
  o.Set("worst", v.front());
  return o;
}

// { repeats?: number (default 5), threads?: number (default: the pool's size) }
//   -> { f32Gflops: {best, median, worst}, int8Gops: {best, median, worst},
//        int8Op, repeats, threads, isa, checksum }
Napi::Value measure_arithmetic_peak(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object opts = info.Length() >= 1 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  if (info.Length() >= 1 && !info[0].IsObject() && !info[0].IsUndefined())
    throw Napi::TypeError::New(env, "node-mamba: measureArithmeticPeak: argument 'options' must be an object");
  ArgReader r{env, opts, "measureArithmeticPeak"};
  const int pool_size = cpu::pool().size();
  const int repeats = (int)r.integer_or("repeats", 1, 1000, 5);
  const int threads = (int)r.integer_or("threads", 1, pool_size, pool_size);
  const cpu::Isa isa = cpu::active_isa();
  const Probes p = probes_for(isa);
  float sink = 0.0f;
  const Rates f32 = measure(p.f32, threads, repeats, &sink);
  const Rates i8 = measure(p.i8, threads, repeats, &sink);

  Napi::Object o = Napi::Object::New(env);
  o.Set("f32Gflops", summary(env, f32.gops));
  o.Set("int8Gops", summary(env, i8.gops));
  o.Set("int8Op", p.i8_op);
  o.Set("repeats", repeats);
  o.Set("threads", threads);
  o.Set("isa", cpu::isa_name(isa));
  // Keeps the chains observable; meaningless otherwise.
  o.Set("checksum", (double)sink);
  return o;
}

}  // namespace

void register_arith_peak(Napi::Env env, Napi::Object exports) {
  exports.Set("measureArithmeticPeak",
              Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, measure_arithmetic_peak); }));
}

}  // namespace nm::napi
