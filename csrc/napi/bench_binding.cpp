// Memory read-bandwidth probe for the benchmark (bench/): streams a large
// buffer with the pool's threads, each summing its own contiguous part with
// the widest vector loads the active ISA allows, and reports GB/s. This is the
// machine's limit for a memory-bound decode step (every weight byte read once
// per token), measured in the same process and run as the engine.
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/threadpool.h"
#include "napi/bindings.h"
#include "napi/convert.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define NM_BENCH_X86 1
#endif

namespace nm::napi {

namespace {

constexpr int64_t kAlign = 64;

// Sum of 64-bit words in [p, p + n), n a multiple of 8 words (one cache line).
// Integer adds: associative, so the compiler may keep several accumulators and
// nothing waits on a floating-point add latency; the loop is load-bound.
uint64_t sum_scalar(const uint64_t* p, int64_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (int64_t i = 0; i < n; i += 8) {
    a0 += p[i] + p[i + 4];
    a1 += p[i + 1] + p[i + 5];
    a2 += p[i + 2] + p[i + 6];
    a3 += p[i + 3] + p[i + 7];
  }
  return a0 + a1 + a2 + a3;
}

#if defined(NM_BENCH_X86) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint64_t* p, int64_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {  // 4 cache lines per iteration
    a0 = _mm256_add_epi64(a0, _mm256_add_epi64(_mm256_load_si256((const __m256i*)(p + i)),
                                               _mm256_load_si256((const __m256i*)(p + i + 4))));
    a1 = _mm256_add_epi64(a1, _mm256_add_epi64(_mm256_load_si256((const __m256i*)(p + i + 8)),
                                               _mm256_load_si256((const __m256i*)(p + i + 12))));
    a2 = _mm256_add_epi64(a2, _mm256_add_epi64(_mm256_load_si256((const __m256i*)(p + i + 16)),
                                               _mm256_load_si256((const __m256i*)(p + i + 20))));
    a3 = _mm256_add_epi64(a3, _mm256_add_epi64(_mm256_load_si256((const __m256i*)(p + i + 24)),
                                               _mm256_load_si256((const __m256i*)(p + i + 28))));
  }
  __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256((__m256i*)lanes, s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + sum_scalar(p + i, n - i);
}

__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint64_t* p, int64_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {  // 4 cache lines per iteration
    a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void*)(p + i)));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void*)(p + i + 8)));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void*)(p + i + 16)));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void*)(p + i + 24)));
  }
  __m512i s = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512((void*)lanes, s);
  uint64_t t = 0;
  for (uint64_t v : lanes) t += v;
  return t + sum_scalar(p + i, n - i);
}
#endif

uint64_t sum_words(cpu::Isa isa, const uint64_t* p, int64_t n) {
#if defined(NM_BENCH_X86) && (defined(__GNUC__) || defined(__clang__))
  if (isa >= cpu::Isa::Avx512) return sum_avx512(p, n);
  if (isa == cpu::Isa::Avx2) return sum_avx2(p, n);
#endif
  return sum_scalar(p, n);
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// { bytes?: number (default 256 MiB), repeats?: number (default 10),
//   threads?: number (default: the pool's size) }
//   -> { bestGBps, medianGBps, worstGBps, bytes, repeats, threads, isa, checksum }
Napi::Value measure_read_bandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object opts = info.Length() >= 1 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  if (info.Length() >= 1 && !info[0].IsObject() && !info[0].IsUndefined())
    throw Napi::TypeError::New(env, "node-mamba: measureReadBandwidth: argument 'options' must be an object");
  ArgReader r{env, opts, "measureReadBandwidth"};
  const int pool_size = cpu::pool().size();
  int64_t bytes = r.integer_or("bytes", 1 << 20, int64_t(1) << 38, int64_t(256) << 20);
  const int repeats = (int)r.integer_or("repeats", 1, 10000, 10);
  const int threads = (int)r.integer_or("threads", 1, pool_size, pool_size);

  // Whole cache lines per thread.
  const int64_t line_words = kAlign / 8;
  const int64_t lines = bytes / kAlign;
  bytes = lines * kAlign;
  std::unique_ptr<void, FreeDeleter> mem(std::aligned_alloc(kAlign, (size_t)bytes));
  if (!mem) throw Napi::RangeError::New(env, "node-mamba: measureReadBandwidth: could not allocate " + std::to_string(bytes) + " bytes");
  uint64_t* buf = static_cast<uint64_t*>(mem.get());

  auto part = [&](int ith, int nth, int64_t* b, int64_t* e) {
    *b = lines * ith / nth * line_words;
    *e = lines * (ith + 1) / nth * line_words;
  };
  // First touch by the thread that reads the part later (pages fault in now, not while timed).
  cpu::pool().run(threads, [&](int ith, int nth) {
    int64_t b, e;
    part(ith, nth, &b, &e);
    for (int64_t i = b; i < e; i++) buf[i] = (uint64_t)i * 0x9E3779B97F4A7C15ull;
  });

  const cpu::Isa isa = cpu::active_isa();
  std::vector<uint64_t> partial((size_t)threads * 8, 0);  // one cache line per thread
  std::vector<double> gbps;
  gbps.reserve((size_t)repeats);
  uint64_t checksum = 0;
  for (int rep = 0; rep < repeats; rep++) {
    auto t0 = std::chrono::steady_clock::now();
    cpu::pool().run(threads, [&](int ith, int nth) {
      int64_t b, e;
      part(ith, nth, &b, &e);
      partial[(size_t)ith * 8] = sum_words(isa, buf + b, e - b);
    });
    auto t1 = std::chrono::steady_clock::now();
    double s = std::chrono::duration<double>(t1 - t0).count();
    gbps.push_back((double)bytes / s / 1e9);
    for (int t = 0; t < threads; t++) checksum += partial[(size_t)t * 8];
  }
  std::vector<double> sorted = gbps;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);

  Napi::Object o = Napi::Object::New(env);
  o.Set("bestGBps", sorted.back());
  o.Set("medianGBps", median);
  o.Set("worstGBps", sorted.front());
  o.Set("bytes", (double)bytes);
  o.Set("repeats", repeats);
  o.Set("threads", threads);
  o.Set("isa", cpu::isa_name(isa));
  // Keeps the sums observable (and so the loads); meaningless otherwise.
  o.Set("checksum", (double)(checksum & ((uint64_t(1) << 52) - 1)));
  return o;
}

}  // namespace

void register_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("measureReadBandwidth",
              Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, measure_read_bandwidth); }));
}

}  // namespace nm::napi
