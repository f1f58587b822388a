// How fast a decode GEMV's weight reads can stream from DRAM, by access
// pattern, outside the engine (no pool, no model; AVX-512 VNNI machines):
// 256 MB of weights in the packed panel layout (core/dtype.h: panels of 16
// rows x K = 768 bytes, one 64-byte vector per 4 k), read once per pass by
// one int8 dot product per vector, against plain reads of the same bytes.
// The patterns are those qlinear_packed.h has used at one input row: micro-
// tiles of 4 panels side by side (4 streams 12 KB apart) or of one (one
// sequential stream, the panels being contiguous), with software prefetches
// into L2 (T1) or L1 (T0) or none. Median and best of 5 passes, GB/s.
//
//   g++ -O2 -std=c++17 -mavx512f -mavx512bw -mavx512vnni -pthread -o /tmp/stream_patterns bench/stream_patterns.cpp
//   /tmp/stream_patterns [threads=1] [misalignment in bytes=0]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

constexpr int64_t kK = 768, kPanelBytes = 16 * kK;

enum Hint { kNone, kL1, kL2 };

// Panels [0, npanels) of w, NP at a time; each vector's line PF bytes ahead prefetched with H.
template <int NP, int64_t PF, Hint H>
__m512i panels(const uint8_t* w, int64_t npanels, const int8_t* x) {
  __m512i total = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  for (int64_t p = 0; p + NP <= npanels; p += NP) {
    __m512i acc[NP];
    for (int j = 0; j < NP; ++j) acc[j] = _mm512_setzero_si512();
    const uint8_t* b = w + p * kPanelBytes;
    for (int64_t kb = 0; kb < kK / 4; ++kb) {
      const __m512i xv = _mm512_set1_epi32(*(const int32_t*)(x + kb * 4));
      for (int j = 0; j < NP; ++j) {
        const uint8_t* q = b + j * kPanelBytes + kb * 64;
        if (H == kL1) _mm_prefetch((const char*)q + PF, _MM_HINT_T0);
        if (H == kL2) _mm_prefetch((const char*)q + PF, _MM_HINT_T1);
        acc[j] = _mm512_dpbusd_epi32(acc[j], _mm512_xor_si512(_mm512_loadu_si512(q), flip), xv);
      }
    }
    for (int j = 0; j < NP; ++j) total = _mm512_add_epi32(total, acc[j]);
  }
  return total;
}

__m512i plain(const uint8_t* w, int64_t npanels, const int8_t*) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  const int64_t bytes = npanels * kPanelBytes;
  for (int64_t i = 0; i < bytes; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(w + i));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(w + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(w + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(w + i + 192));
  }
  return _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
}

struct Pattern {
  const char* name;
  __m512i (*run)(const uint8_t*, int64_t, const int8_t*);
};

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::max(1, atoi(argv[1])) : 1;
  const int misalign = argc > 2 ? atoi(argv[2]) : 0;
  const int64_t npanels = ((int64_t)256 << 20) / kPanelBytes / (4 * threads) * (4 * threads);
  const int64_t bytes = npanels * kPanelBytes;
  uint8_t* mem = static_cast<uint8_t*>(std::aligned_alloc(4096, (size_t)bytes + 4096));
  if (!mem) return 1;
  uint8_t* w = mem + misalign;
  for (int64_t i = 0; i < bytes; ++i) w[i] = (uint8_t)(i * 7);
  alignas(64) int8_t x[kK];
  for (int i = 0; i < kK; ++i) x[i] = (int8_t)(i * 3);

  const std::vector<Pattern> patterns = {
      {"4 panels, L2 prefetch 2 KB", panels<4, 2048, kL2>},
      {"4 panels, L1 prefetch 2 KB", panels<4, 2048, kL1>},
      {"1 panel, L1 prefetch 4 KB", panels<1, 4096, kL1>},
      {"1 panel, no prefetch", panels<1, 0, kNone>},
      {"plain read", plain},
  };
  std::vector<std::vector<double>> gbps(patterns.size());
  std::vector<long long> sink((size_t)threads);
  for (int pass = 0; pass < 5; ++pass) {
    for (size_t v = 0; v < patterns.size(); ++v) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          const int64_t p0 = npanels * t / threads, p1 = npanels * (t + 1) / threads;
          alignas(64) long long lanes[8];
          _mm512_store_si512(lanes, patterns[v].run(w + p0 * kPanelBytes, p1 - p0, x));
          for (long long l : lanes) sink[(size_t)t] += l;
        });
      for (auto& th : pool) th.join();
      gbps[v].push_back((double)bytes / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 1e9);
    }
  }
  long long check = 0;
  for (long long s : sink) check += s;
  std::printf("%d thread(s), 256 MB of panels (K = %lld), misaligned by %d bytes (checksum %lld)\n", threads,
              (long long)kK, misalign, check & 0xffff);
  for (size_t v = 0; v < patterns.size(); ++v) {
    std::vector<double> g = gbps[v];
    std::sort(g.begin(), g.end());
    std::printf("  %-28s median %5.1f GB/s  best %5.1f\n", patterns[v].name, g[g.size() / 2], g.back());
  }
  std::free(mem);
  return 0;
}
