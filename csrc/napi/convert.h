// Reading kernel arguments from a JS options object, with every check the
// native side needs before touching memory. Each failure throws a JS
// TypeError or RangeError whose message names the kernel and the argument.
#pragma once
#include <napi.h>

#include <memory>

#include <cstdint>
#include <utility>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/linear.h"

namespace nm::napi {

// Largest element count any one argument may have (also keeps every
// product of sizes far from int64 overflow).
constexpr int64_t kMaxElements = int64_t(1) << 40;

struct ArgReader {
  Napi::Env env;
  Napi::Object obj;
  std::string kernel;  // for messages: "rmsNorm"

  [[noreturn]] void type_error(const std::string& name, const std::string& what) const;
  [[noreturn]] void range_error(const std::string& name, const std::string& what) const;

  bool has(const char* name) const;
  // Integer in [min, max]; `def` when absent and not required.
  int64_t integer(const char* name, int64_t min, int64_t max) const;
  int64_t integer_or(const char* name, int64_t min, int64_t max, int64_t def) const;
  double number_or(const char* name, double def) const;
  bool boolean_or(const char* name, bool def) const;
};

// A typed array argument: Float32Array (f32), or Uint16Array holding f16 or
// bf16 bits with the dtype given by the sibling property `<name>Dtype`
// ('f16' | 'bf16'). Int32Array for index arguments.
struct ArrayArg {
  void* data = nullptr;
  int64_t length = 0;  // elements
  DType dtype = DType::F32;
  bool present = false;
  template <typename T> T* as() const { return static_cast<T*>(data); }
};

enum DTypeMask : unsigned { kF32 = 1, kF16 = 2, kBF16 = 4, kHalf = kF16 | kBF16, kAnyFloat = 7 };

// Reads a float array of one of the allowed dtypes. When `expected` >= 0 the
// length must equal it exactly; `shape` describes it for the message.
ArrayArg float_array(const ArgReader& r, const char* name, unsigned allowed, bool required,
                     int64_t expected, const std::string& shape);
ArrayArg int32_array(const ArgReader& r, const char* name, bool required, int64_t expected,
                     const std::string& shape);

// Int8Array arguments (activations quantized with per-channel scales,
// kernels/ssm_q8.h), and whether `name` holds one.
bool is_int8_array(const ArgReader& r, const char* name);
ArrayArg int8_array(const ArgReader& r, const char* name, bool required, int64_t expected,
                    const std::string& shape);
// Per-channel int8 scales: a Float32Array of exactly n finite values > 0.
ArrayArg scale_array(const ArgReader& r, const char* name, int64_t n);

// Product of sizes, with a RangeError naming `what` when it exceeds kMaxElements.
int64_t checked_product(const ArgReader& r, const char* what, std::initializer_list<int64_t> dims);

// "[a, b, c]"
std::string shape_str(std::initializer_list<int64_t> dims);

// New Float32Array of n elements (n already bounded by checked_product).
Napi::Float32Array new_f32(Napi::Env env, int64_t n);

// Host bytes handed to JavaScript without a copy: a decode step's logits,
// written off the JavaScript thread, or packed weights. 64-byte aligned, as
// the engine's packed weights are (V8's own buffers are 16-byte aligned: a
// panel vector read from one spans two cache lines, which streams slower).
class HostBuffer {
 public:
  // `bytes` of unset memory (the writer sets them all), or zeroed ones.
  void allocate(size_t bytes, bool zeroed = false);
  void* data() const { return p_.get(); }
  template <typename T> T* as() const { return static_cast<T*>(p_.get()); }
  size_t size() const { return bytes_; }
  // Hands the block over (to be given back with host_block_free(p, size)).
  void* release() { bytes_ = 0; return p_.release(); }

 private:
  struct Free {
    Free() : bytes(0) {}
    explicit Free(size_t b) : bytes(b) {}
    void operator()(void* p) const;
    size_t bytes;  // the request host_block_alloc was given
  };
  std::unique_ptr<void, Free> p_;
  size_t bytes_ = 0;
};
// An ArrayBuffer over h's bytes, taken over by V8 (an external buffer that
// frees them when collected, counted as external memory); where the runtime
// allows no external buffers, a copy. h is empty afterwards.
Napi::ArrayBuffer adopt_array_buffer(Napi::Env env, HostBuffer& h);
// The same as a Float32Array (h holds whole floats).
Napi::Float32Array adopt_f32(Napi::Env env, HostBuffer& h);

// Runs `body` and turns any C++ exception into a pending JS exception, so none
// crosses the N-API boundary unconverted.
Napi::Value guarded(const Napi::CallbackInfo& info, Napi::Value (*body)(const Napi::CallbackInfo&));

ArgReader reader(const Napi::CallbackInfo& info, const char* kernel);

// An optional string option `name` mapped through `choices` (first = the
// default when absent); anything else is a TypeError naming the option.
template <typename E, size_t N>
inline E read_choice(const ArgReader& r, const char* name, const std::pair<const char*, E> (&choices)[N]) {
  if (!r.has(name)) return choices[0].second;
  std::string list;
  for (size_t i = 0; i < N; ++i) list += (i ? (i + 1 == N ? " or '" : ", '") : "'") + std::string(choices[i].first) + "'";
  Napi::Value v = r.obj.Get(name);
  if (!v.IsString()) r.type_error(name, "must be " + list);
  const std::string s = v.As<Napi::String>().Utf8Value();
  for (const auto& c : choices)
    if (s == c.first) return c.second;
  r.type_error(name, "must be " + list + ", got '" + s + "'");
}

// inputRounding: 'none' (default) | 'bf16' | 'q8' (kernels/linear.h ActRounding).
constexpr std::pair<const char*, ActRounding> kRoundings[] = {
    {"none", ActRounding::None}, {"bf16", ActRounding::BF16}, {"q8", ActRounding::Q8Block}};

}  // namespace nm::napi
