// JS entry points of the Hadamard kernels (layouts in lib/kernels/hadamard.ts).
#include <napi.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "kernels/hadamard.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

// The same words as lib/quant/hadamard.ts hadamardSizes.
const char* const kSizes = "2^k, 12*2^k or 40*2^k (k >= 0: 1, 2, 4, ..., 12, 24, 48, ..., 40, 80, 160, ...)";

// rows, n (a supported size), xStride? (>= n, default n).
struct RowsLayout {
  int64_t rows, n, x_stride, x_len;
};

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

RowsLayout read_layout(const ArgReader& r) {
  RowsLayout l;
  l.rows = r.integer("rows", 0, kMaxElements);
  l.n = r.integer("n", 0, kMaxElements);
  if (!hadamard_size_supported(l.n)) r.range_error("n", std::string("must be ") + kSizes + ", got " + std::to_string(l.n));
  l.x_stride = r.integer_or("xStride", l.n, kMaxElements, l.n);
  l.x_len = checked_product(r, "x", {l.rows, l.x_stride});
  return l;
}

// { x: f32 [rows, xStride], rows, n, transpose?, xStride?, inPlace? }
//   -> f32 [rows, n], or x itself (its rows transformed in place, the gaps untouched)
Napi::Value hadamard_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "hadamard");
  RowsLayout l = read_layout(r);
  ArrayArg x = float_array(r, "x", kF32, true, l.x_len, shape_str({l.rows, l.x_stride}));
  const bool transpose = r.boolean_or("transpose", false);
  const bool in_place = r.boolean_or("inPlace", false);

  HadamardArgs a;
  a.rows = l.rows; a.n = l.n;
  a.x = x.as<float>(); a.x_stride = l.x_stride;
  a.transpose = transpose;
  Napi::Value result;
  if (in_place) {
    a.out = x.as<float>(); a.out_stride = l.x_stride;
    result = r.obj.Get("x");
  } else {
    Napi::Float32Array out = new_f32(r.env, checked_product(r, "x", {l.rows, l.n}));
    a.out = out.Data(); a.out_stride = l.n;
    result = out;
  }
  hadamard_transform(a);
  return result;
}

// { x: f32 [rows, xStride], rows, n, scale, xStride? } -> int8 [rows, n]
Napi::Value hadamard_quantize_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "hadamardQuantize");
  RowsLayout l = read_layout(r);
  ArrayArg x = float_array(r, "x", kF32, true, l.x_len, shape_str({l.rows, l.x_stride}));
  if (!r.has("scale")) r.type_error("scale", "is required (a number > 0)");
  const double scale = r.number_or("scale", 1.0);
  if (!(scale > 0)) r.range_error("scale", "must be > 0, got " + num(scale));
  const float inv = (float)(1.0 / scale);  // = Math.fround(1 / scale)
  if (!std::isfinite(inv) || inv == 0.0f)
    r.range_error("scale", "must have a finite, non-zero float32 reciprocal (about 2.9e-39 to 7e45), got " + num(scale));

  Napi::Int8Array out = Napi::Int8Array::New(r.env, (size_t)checked_product(r, "x", {l.rows, l.n}));
  HadamardQuantArgs a;
  a.rows = l.rows; a.n = l.n;
  a.x = x.as<float>(); a.x_stride = l.x_stride;
  a.inv_scale = inv;
  a.out = out.Data(); a.out_stride = l.n;
  hadamard_quantize(a);
  return out;
}

}  // namespace

void register_hadamard(Napi::Env env, Napi::Object exports) {
  exports.Set("hadamard", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, hadamard_js); }));
  exports.Set("hadamardQuantize", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, hadamard_quantize_js); }));
}

}  // namespace nm::napi
