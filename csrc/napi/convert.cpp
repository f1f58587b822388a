#include "napi/convert.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <sstream>

#include "napi/host_blocks.h"

namespace nm::napi {

void ArgReader::type_error(const std::string& name, const std::string& what) const {
  throw Napi::TypeError::New(env, "node-mamba: " + kernel + ": argument '" + name + "' " + what);
}
void ArgReader::range_error(const std::string& name, const std::string& what) const {
  throw Napi::RangeError::New(env, "node-mamba: " + kernel + ": argument '" + name + "' " + what);
}

bool ArgReader::has(const char* name) const {
  Napi::Value v = obj.Get(name);
  return !v.IsUndefined() && !v.IsNull();
}

int64_t ArgReader::integer(const char* name, int64_t min, int64_t max) const {
  Napi::Value v = obj.Get(name);
  if (v.IsUndefined() || v.IsNull()) type_error(name, "is required (an integer)");
  if (!v.IsNumber()) type_error(name, "must be an integer number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) type_error(name, "must be an integer, got " + std::to_string(d));
  if (d < (double)min || d > (double)max) {
    std::ostringstream os;
    os << "must be in [" << min << ", " << max << "], got " << (std::abs(d) < 1e18 ? std::to_string((int64_t)d) : std::to_string(d));
    range_error(name, os.str());
  }
  return (int64_t)d;
}

int64_t ArgReader::integer_or(const char* name, int64_t min, int64_t max, int64_t def) const {
  return has(name) ? integer(name, min, max) : def;
}

double ArgReader::number_or(const char* name, double def) const {
  if (!has(name)) return def;
  Napi::Value v = obj.Get(name);
  if (!v.IsNumber()) type_error(name, "must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) range_error(name, "must be finite");
  return d;
}

bool ArgReader::boolean_or(const char* name, bool def) const {
  if (!has(name)) return def;
  Napi::Value v = obj.Get(name);
  if (!v.IsBoolean()) type_error(name, "must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string shape_str(std::initializer_list<int64_t> dims) {
  std::ostringstream os;
  os << "[";
  bool first = true;
  for (int64_t d : dims) { os << (first ? "" : ", ") << d; first = false; }
  os << "]";
  return os.str();
}

int64_t checked_product(const ArgReader& r, const char* what, std::initializer_list<int64_t> dims) {
  int64_t p = 1;
  for (int64_t d : dims) {
    if (d < 0) r.range_error(what, "has a negative size");
    if (d != 0 && p > kMaxElements / d) r.range_error(what, "is too large: shape " + shape_str(dims) + " exceeds 2^40 elements");
    p *= d;
  }
  if (p > kMaxElements) r.range_error(what, "is too large: shape " + shape_str(dims) + " exceeds 2^40 elements");
  return p;
}

// Data pointer of a typed array (any backing store, SharedArrayBuffer included).
static void* typed_array_data(const ArgReader& r, const Napi::TypedArray& ta, const char* name) {
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value buffer;
  if (napi_get_typedarray_info(r.env, ta, &type, &length, &data, &buffer, &offset) != napi_ok)
    r.type_error(name, "could not be read as a typed array");
  return data;
}

static std::string length_msg(int64_t expected, const std::string& shape, int64_t got) {
  return "must have " + std::to_string(expected) + " elements (shape " + shape + "), got " + std::to_string(got);
}

ArrayArg float_array(const ArgReader& r, const char* name, unsigned allowed, bool required,
                     int64_t expected, const std::string& shape) {
  ArrayArg a;
  Napi::Value v = r.obj.Get(name);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) r.type_error(name, "is required (a typed array of shape " + shape + ")");
    return a;
  }
  if (!v.IsTypedArray()) r.type_error(name, "must be a Float32Array (or Uint16Array with a f16/bf16 dtype)");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  std::string dtype_key = std::string(name) + "Dtype";
  Napi::Value dt = r.obj.Get(dtype_key);
  auto type = ta.TypedArrayType();
  if (type == napi_float32_array) {
    if (!dt.IsUndefined() && !(dt.IsString() && dt.As<Napi::String>().Utf8Value() == "f32"))
      r.type_error(dtype_key, "must be 'f32' (or absent) for a Float32Array");
    a.dtype = DType::F32;
  } else if (type == napi_uint16_array) {
    std::string s = dt.IsString() ? dt.As<Napi::String>().Utf8Value() : "";
    if (s == "f16") a.dtype = DType::F16;
    else if (s == "bf16") a.dtype = DType::BF16;
    else r.type_error(name, "is a Uint16Array, so '" + dtype_key + "' must be 'f16' or 'bf16'");
  } else {
    r.type_error(name, "must be a Float32Array (or Uint16Array with a f16/bf16 dtype)");
  }
  unsigned bit = a.dtype == DType::F32 ? kF32 : a.dtype == DType::F16 ? kF16 : kBF16;
  if (!(allowed & bit)) {
    std::string ok;
    if (allowed & kF32) ok += "f32 ";
    if (allowed & kF16) ok += "f16 ";
    if (allowed & kBF16) ok += "bf16 ";
    r.type_error(name, std::string("has dtype ") + dtype_name(a.dtype) + "; allowed: " + ok);
  }
  a.length = (int64_t)ta.ElementLength();
  a.data = typed_array_data(r, ta, name);
  a.present = true;
  if (expected >= 0 && a.length != expected) r.range_error(name, length_msg(expected, shape, a.length));
  return a;
}

ArrayArg int32_array(const ArgReader& r, const char* name, bool required, int64_t expected,
                     const std::string& shape) {
  ArrayArg a;
  Napi::Value v = r.obj.Get(name);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) r.type_error(name, "is required (an Int32Array of shape " + shape + ")");
    return a;
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    r.type_error(name, "must be an Int32Array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  a.length = (int64_t)ta.ElementLength();
  a.data = typed_array_data(r, ta, name);
  a.present = true;
  if (expected >= 0 && a.length != expected) r.range_error(name, length_msg(expected, shape, a.length));
  return a;
}

bool is_int8_array(const ArgReader& r, const char* name) {
  Napi::Value v = r.obj.Get(name);
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int8_array;
}

ArrayArg int8_array(const ArgReader& r, const char* name, bool required, int64_t expected,
                    const std::string& shape) {
  ArrayArg a;
  Napi::Value v = r.obj.Get(name);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) r.type_error(name, "is required (an Int8Array of shape " + shape + ")");
    return a;
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int8_array)
    r.type_error(name, "must be an Int8Array (the other int8 operands are)");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  a.length = (int64_t)ta.ElementLength();
  a.data = typed_array_data(r, ta, name);
  a.dtype = DType::I8;
  a.present = true;
  if (expected >= 0 && a.length != expected) r.range_error(name, length_msg(expected, shape, a.length));
  return a;
}

ArrayArg scale_array(const ArgReader& r, const char* name, int64_t n) {
  ArrayArg a = float_array(r, name, kF32, true, n, "[" + std::to_string(n) + "]");
  const float* p = a.as<float>();
  for (int64_t i = 0; i < n; ++i)
    if (!(p[i] > 0.0f) || !std::isfinite(p[i]))
      r.range_error(name, "element " + std::to_string(i) + " is " + std::to_string(p[i]) +
                              "; int8 scales must be finite and > 0");
  return a;
}

Napi::Float32Array new_f32(Napi::Env env, int64_t n) {
  return Napi::Float32Array::New(env, (size_t)n);
}

void HostBuffer::Free::operator()(void* p) const { host_block_free(p, bytes); }

void HostBuffer::allocate(size_t bytes, bool zeroed) {
  void* p = host_block_alloc(bytes);  // 64-byte aligned, host_block_size(bytes) bytes
  if (zeroed) std::memset(p, 0, host_block_size(bytes));
  p_ = std::unique_ptr<void, Free>(p, Free(bytes));
  bytes_ = bytes;
}

Napi::ArrayBuffer adopt_array_buffer(Napi::Env env, HostBuffer& h) {
  const size_t n = h.size();
  if (!h.data()) return Napi::ArrayBuffer::New(env, 0);
  napi_value ab = nullptr;
  // The hint carries the byte count the finalizer gives back to V8's accounting.
  const napi_status st = napi_create_external_arraybuffer(
      env, h.data(), n,
      [](napi_env e, void* d, void* hint) {
        int64_t ignored = 0;
        napi_adjust_external_memory(e, -(int64_t)(uintptr_t)hint, &ignored);
        host_block_free(d, (size_t)(uintptr_t)hint);
      },
      reinterpret_cast<void*>((uintptr_t)n), &ab);
  if (st == napi_ok) {
    h.release();  // V8's now: freed by the finalizer
    Napi::MemoryManagement::AdjustExternalMemory(env, (int64_t)n);
    return Napi::ArrayBuffer(env, ab);
  }
  // e.g. napi_no_external_buffers_allowed: a pending exception may not be left behind.
  if (env.IsExceptionPending()) env.GetAndClearPendingException();
  Napi::ArrayBuffer copy = Napi::ArrayBuffer::New(env, n);
  std::memcpy(copy.Data(), h.data(), n);
  h = HostBuffer();
  return copy;
}

Napi::Float32Array adopt_f32(Napi::Env env, HostBuffer& h) {
  const size_t n = h.size() / sizeof(float);
  return Napi::Float32Array::New(env, n, adopt_array_buffer(env, h), 0);
}

Napi::Value guarded(const Napi::CallbackInfo& info, Napi::Value (*body)(const Napi::CallbackInfo&)) {
  Napi::Env env = info.Env();
  try {
    return body(info);
  } catch (const Napi::Error&) {
    throw;  // node-addon-api turns it into the JS exception
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "node-mamba: out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("node-mamba: internal error: ") + e.what());
  } catch (...) {
    throw Napi::Error::New(env, "node-mamba: unknown internal error");
  }
}

ArgReader reader(const Napi::CallbackInfo& info, const char* kernel) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray())
    throw Napi::TypeError::New(env, std::string("node-mamba: ") + kernel + ": expected one options object");
  return ArgReader{env, info[0].As<Napi::Object>(), kernel};
}

}  // namespace nm::napi
