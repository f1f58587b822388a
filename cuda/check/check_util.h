// Shared pieces of the standalone GPU check (gpu_check.cpp): random inputs,
// the side under test (host emulation or the device), comparisons and the
// report.
#pragma once
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace nm::check {

// nm_gpu_check --skip: case groups, kernels, timed kernels and models left
// out of the run. A name matches an entry equal to it or to its first word
// ("qlinear" leaves out "qlinear w8a8"). A device fault is sticky: it fails
// every later launch of the process, so a faulting kernel is skipped to see
// the rest.
inline std::vector<std::string>& skip_list() {
  static std::vector<std::string> names;
  return names;
}
inline bool skipped(const std::string& name) {
  for (const std::string& s : skip_list())
    if (name == s || (name.size() > s.size() && name.compare(0, s.size(), s) == 0 && name[s.size()] == ' '))
      return true;
  return false;
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * (float)((next() >> 40) * (1.0 / 16777216.0)); }
  int64_t below(int64_t n) { return (int64_t)(next() % (uint64_t)n); }
};

inline std::vector<float> rand_vec(Rng& r, int64_t n, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v((size_t)(n > 0 ? n : 0));
  for (auto& x : v) x = r.uniform(lo, hi);
  return v;
}

// n values in [lo, hi) stored as `t` (f32 / f16 / bf16), as raw bytes.
inline std::vector<uint8_t> rand_typed(Rng& r, int64_t n, DType t, float lo = -1.0f, float hi = 1.0f) {
  const int64_t es = t == DType::F32 ? 4 : 2;
  std::vector<uint8_t> v((size_t)(n * es));
  for (int64_t i = 0; i < n; ++i) {
    const float x = r.uniform(lo, hi);
    if (t == DType::F32) {
      std::memcpy(v.data() + i * 4, &x, 4);
    } else {
      const uint16_t h = t == DType::F16 ? f32_to_f16(x) : f32_to_bf16(x);
      std::memcpy(v.data() + i * 2, &h, 2);
    }
  }
  return v;
}

// Where the tested implementation runs: the host emulation (host pointers)
// or the device (each host vector mirrored once in device memory, copied
// back by finish()).
class Side {
 public:
  explicit Side(bool gpu) : gpu_(gpu) {}
  Side(const Side&) = delete;
  Side& operator=(const Side&) = delete;
  ~Side() {
    for (auto& b : bufs_) cudaFree(b.dev);
  }
  template <class T>
  T* put(std::vector<T>& v) {
    if (v.empty()) return nullptr;
    if (!gpu_) return v.data();
    for (auto& b : bufs_)
      if (b.host == (void*)v.data()) return static_cast<T*>(b.dev);
    const size_t bytes = v.size() * sizeof(T);
    void* d = nullptr;
    cudaError_t e = cudaMalloc(&d, bytes);
    if (e == cudaSuccess) e = cudaMemcpy(d, v.data(), bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
      if (err_ == cudaSuccess) err_ = e;
      if (d) cudaFree(d);
      return nullptr;
    }
    bufs_.push_back({v.data(), d, bytes});
    return static_cast<T*>(d);
  }
  // After the launch (status e): waits for the device and copies every
  // mirrored buffer back. Returns the first error.
  cudaError_t finish(cudaError_t e) {
    if (err_ != cudaSuccess) return err_;
    if (!gpu_ || e != cudaSuccess) return e;
    e = cudaDeviceSynchronize();
    for (auto& b : bufs_)
      if (e == cudaSuccess) e = cudaMemcpy(b.host, b.dev, b.bytes, cudaMemcpyDeviceToHost);
    return e;
  }

 private:
  struct Buf {
    void* host;
    void* dev;
    size_t bytes;
  };
  bool gpu_;
  cudaError_t err_ = cudaSuccess;
  std::vector<Buf> bufs_;
};

// max |got - ref| / max(max |ref|, 1e-30) over the whole buffers (padding
// included: both sides start from the same contents); inf on a NaN or a
// size mismatch.
inline double rel_error(const std::vector<float>& ref, const std::vector<float>& got) {
  if (ref.size() != got.size()) return INFINITY;
  double scale = 0, worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) scale = std::fmax(scale, std::fabs((double)ref[i]));
  scale = std::fmax(scale, 1e-30);
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(ref[i]) != std::isnan(got[i])) return INFINITY;
    if (std::isnan(ref[i])) continue;
    worst = std::fmax(worst, std::fabs((double)got[i] - (double)ref[i]) / scale);
  }
  return worst;
}

}  // namespace nm::check
