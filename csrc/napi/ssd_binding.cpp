// JS entry points of the ssd kernels (layouts in lib/kernels/ssd.ts).
#include <napi.h>

#include <string>

#include "kernels/ssd.h"
#include "kernels/ssm_q8.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

constexpr int64_t kMaxHeaddim = 1024, kMaxDstate = 1024, kMaxChunk = 4096;
// Default chunk on CPU. The reference's (GPU) chunk_size is 256; on CPU
// chunks of 16..64 tokens measured ~20% faster for a mamba2-130m layer
// (C·Bᵀ and the diagonal block cost O(chunk) per token), and the chunk only
// changes float32 rounding.
constexpr int64_t kDefaultChunk = 64;

// { x, dt, A, B, C, D?, z?, dtBias?, cuSeqlens?, initialStates?, tokens, nheads,
//   headdim, ngroups?, dstate, chunkSize?, dtSoftplus?, dtMin?, dtMax? }
//   -> { out: f32 [tokens, nheads, headdim], finalStates: f32 [nseq, nheads, headdim, dstate] }
// int8 form (kernels/ssm_q8.h): x, B, C Int8Arrays with xScale f32
// [nheads * headdim], BScale, CScale f32 [ngroups * dstate].
Napi::Value ssd_chunk_scan_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "ssdChunkScan");
  const int64_t tokens = r.integer("tokens", 0, INT32_MAX);
  const int64_t nheads = r.integer("nheads", 1, 1 << 20);
  const int64_t headdim = r.integer("headdim", 1, kMaxHeaddim);
  const int64_t dstate = r.integer("dstate", 1, kMaxDstate);
  const int64_t ngroups = r.integer_or("ngroups", 1, nheads, 1);
  if (nheads % ngroups != 0)
    r.range_error("ngroups", "must divide nheads (" + std::to_string(nheads) + "), got " + std::to_string(ngroups));
  const int64_t chunk = r.integer_or("chunkSize", 1, kMaxChunk, kDefaultChunk);
  const bool softplus = r.boolean_or("dtSoftplus", false);
  const bool has_min = r.has("dtMin"), has_max = r.has("dtMax");
  const double dt_min = r.number_or("dtMin", 0.0), dt_max = r.number_or("dtMax", 0.0);
  if (has_min && has_max && dt_min > dt_max) r.range_error("dtMax", "must be >= dtMin");

  const int64_t n_x = checked_product(r, "x", {tokens, nheads, headdim});
  const std::string shp_x = shape_str({tokens, nheads, headdim});
  const int64_t n_bc = checked_product(r, "B", {tokens, ngroups, dstate});
  const std::string shp_bc = shape_str({tokens, ngroups, dstate});
  const int64_t n_dt = checked_product(r, "dt", {tokens, nheads});
  const std::string shp_h = shape_str({nheads});

  const bool q8 = is_int8_array(r, "x");
  ArrayArg x = q8 ? int8_array(r, "x", true, n_x, shp_x) : float_array(r, "x", kF32, true, n_x, shp_x);
  ArrayArg dt = float_array(r, "dt", kF32, true, n_dt, shape_str({tokens, nheads}));
  ArrayArg A = float_array(r, "A", kF32, true, nheads, shp_h);
  ArrayArg B = q8 ? int8_array(r, "B", true, n_bc, shp_bc) : float_array(r, "B", kF32, true, n_bc, shp_bc);
  ArrayArg C = q8 ? int8_array(r, "C", true, n_bc, shp_bc) : float_array(r, "C", kF32, true, n_bc, shp_bc);
  ArrayArg x_scale, B_scale, C_scale;
  if (q8) {
    x_scale = scale_array(r, "xScale", checked_product(r, "xScale", {nheads, headdim}));
    B_scale = scale_array(r, "BScale", checked_product(r, "BScale", {ngroups, dstate}));
    C_scale = scale_array(r, "CScale", checked_product(r, "CScale", {ngroups, dstate}));
  }
  ArrayArg D = float_array(r, "D", kF32, false, nheads, shp_h);
  ArrayArg z = float_array(r, "z", kF32, false, n_x, shp_x);
  ArrayArg bias = float_array(r, "dtBias", kF32, false, nheads, shp_h);

  // cuSeqlens: [nseq + 1], 0 first, non-decreasing, last = tokens.
  ArrayArg cu = int32_array(r, "cuSeqlens", false, -1, "[nseq + 1]");
  std::vector<int32_t> cu_default;
  const int32_t* cus;
  int64_t nseq;
  if (cu.present) {
    if (cu.length < 1) r.range_error("cuSeqlens", "must have at least 1 element ([nseq + 1])");
    if (cu.length - 1 > kMaxElements / 2) r.range_error("cuSeqlens", "is too long");
    cus = cu.as<int32_t>();
    nseq = cu.length - 1;
    if (cus[0] != 0) r.range_error("cuSeqlens", "must start with 0, got " + std::to_string(cus[0]));
    for (int64_t i = 1; i <= nseq; ++i)
      if (cus[i] < cus[i - 1])
        r.range_error("cuSeqlens", "must be non-decreasing: element " + std::to_string(i) + " (" +
                                       std::to_string(cus[i]) + ") < element " + std::to_string(i - 1) +
                                       " (" + std::to_string(cus[i - 1]) + ")");
    if (cus[nseq] != tokens)
      r.range_error("cuSeqlens", "must end with tokens (" + std::to_string(tokens) + "), got " +
                                     std::to_string(cus[nseq]));
  } else {
    cu_default = {0, (int32_t)tokens};
    cus = cu_default.data();
    nseq = 1;
  }
  const int64_t n_st = checked_product(r, "initialStates", {nseq, nheads, headdim, dstate});
  ArrayArg init = float_array(r, "initialStates", kF32, false, n_st, shape_str({nseq, nheads, headdim, dstate}));

  Napi::Float32Array out = new_f32(r.env, n_x), fin = new_f32(r.env, n_st);
  SsdChunkScanArgs a;
  a.tokens = tokens; a.nheads = nheads; a.headdim = headdim; a.ngroups = ngroups; a.dstate = dstate;
  a.nseq = nseq; a.chunk_size = chunk;
  a.x = q8 ? nullptr : x.as<float>(); a.x_stride = nheads * headdim;
  a.dt = dt.as<float>(); a.dt_stride = nheads;
  a.A = A.as<float>();
  a.B = q8 ? nullptr : B.as<float>(); a.B_stride = ngroups * dstate;
  a.C = q8 ? nullptr : C.as<float>(); a.C_stride = ngroups * dstate;
  a.D = D.present ? D.as<float>() : nullptr;
  a.z = z.present ? z.as<float>() : nullptr; a.z_stride = nheads * headdim;
  a.dt_bias = bias.present ? bias.as<float>() : nullptr;
  a.dt_softplus = softplus;
  if (has_min) a.dt_min = (float)dt_min;
  if (has_max) a.dt_max = (float)dt_max;
  a.cu_seqlens = cus;
  a.initial_states = init.present ? init.as<float>() : nullptr;
  a.out = out.Data(); a.out_stride = nheads * headdim;
  a.final_states = fin.Data();
  if (q8) {
    SsdChunkScanQ8Args q;
    q.ssd = a;
    q.x = {x.as<int8_t>(), 0, nheads * headdim, x_scale.as<float>()};
    q.B = {B.as<int8_t>(), 0, ngroups * dstate, B_scale.as<float>()};
    q.C = {C.as<int8_t>(), 0, ngroups * dstate, C_scale.as<float>()};
    ssd_chunk_scan_q8(q);
  } else {
    ssd_chunk_scan(a);
  }

  Napi::Object o = Napi::Object::New(r.env);
  o.Set("out", out);
  o.Set("finalStates", fin);
  return o;
}

}  // namespace

void register_ssd(Napi::Env env, Napi::Object exports) {
  exports.Set("ssdChunkScan", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, ssd_chunk_scan_js); }));
}

}  // namespace nm::napi
