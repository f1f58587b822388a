// JS entry points of the attention kernels (layouts in lib/kernels/attention.ts).
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

constexpr int64_t kMaxHeadDim = 256, kMaxHeads = 1 << 16, kMaxPageSize = 1 << 16;

std::string num(int64_t v) { return std::to_string(v); }

// cuSeqlens: Int32Array [nseq + 1], 0 first, non-decreasing, last = tokens. Returns nseq.
int64_t read_cu_seqlens(const ArgReader& r, const char* name, int64_t tokens, const int32_t** out) {
  ArrayArg cu = int32_array(r, name, true, -1, "[nseq + 1]");
  if (cu.length < 1) r.range_error(name, "must have at least 1 element ([nseq + 1])");
  if (cu.length - 1 > INT32_MAX) r.range_error(name, "is too long");
  const int32_t* c = cu.as<int32_t>();
  const int64_t nseq = cu.length - 1;
  if (c[0] != 0) r.range_error(name, "must start with 0, got " + num(c[0]));
  for (int64_t i = 1; i <= nseq; ++i)
    if (c[i] < c[i - 1])
      r.range_error(name, "must be non-decreasing: element " + num(i) + " (" + num(c[i]) + ") < element " +
                              num(i - 1) + " (" + num(c[i - 1]) + ")");
  if (c[nseq] != tokens) r.range_error(name, "must end with tokens (" + num(tokens) + "), got " + num(c[nseq]));
  *out = c;
  return nseq;
}

// The cache description shared by both kernels: shape, dtype, the two arrays.
struct CacheArgs {
  int64_t num_pages, page_size, n_kv_heads, head_dim, max_pages, elems;
  ArrayArg k, v;
};

CacheArgs read_cache(const ArgReader& r) {
  CacheArgs c;
  c.num_pages = r.integer("numPages", 1, INT32_MAX);
  c.page_size = r.integer("pageSize", 1, kMaxPageSize);
  c.n_kv_heads = r.integer("nKvHeads", 1, kMaxHeads);
  c.head_dim = r.integer("headDim", 1, kMaxHeadDim);
  c.max_pages = r.integer("maxPagesPerSeq", 1, INT32_MAX);
  c.elems = checked_product(r, "kCache", {c.num_pages, c.page_size, c.n_kv_heads, c.head_dim});
  const std::string shp = shape_str({c.num_pages, c.page_size, c.n_kv_heads, c.head_dim});
  c.k = float_array(r, "kCache", kF32 | kF16, true, c.elems, shp);
  c.v = float_array(r, "vCache", kF32 | kF16, true, c.elems, shp);
  if (c.v.dtype != c.k.dtype)
    r.type_error("vCache", std::string("has dtype ") + dtype_name(c.v.dtype) + " but kCache has " +
                               dtype_name(c.k.dtype) + "; both must be the same");
  return c;
}

PagedKvCache cache_view(const CacheArgs& c, void* k, void* v) {
  PagedKvCache p;
  p.dtype = c.k.dtype;
  p.k = k;
  p.v = v;
  p.num_pages = c.num_pages;
  p.page_size = c.page_size;
  p.n_kv_heads = c.n_kv_heads;
  p.head_dim = c.head_dim;
  p.head_stride = c.head_dim;
  p.slot_stride = c.n_kv_heads * c.head_dim;
  p.page_stride = c.page_size * p.slot_stride;
  return p;
}

// Block table Int32Array [nseq, maxPagesPerSeq].
const int32_t* read_block_table(const ArgReader& r, int64_t nseq, const CacheArgs& c) {
  const int64_t n = checked_product(r, "blockTable", {nseq, c.max_pages});
  ArrayArg bt = int32_array(r, "blockTable", true, n, shape_str({nseq, c.max_pages}));
  return bt.as<int32_t>();
}

// Sequence s uses positions [p0, p1): they must fit its block-table row, and
// the page ids they touch must be valid.
void check_positions(const ArgReader& r, const char* what, const int32_t* bt, const CacheArgs& c, int64_t s,
                     int64_t p0, int64_t p1) {
  if (p1 <= p0) return;
  const int64_t cap = c.max_pages * c.page_size;
  if (p1 > cap)
    r.range_error("blockTable", "is too short for sequence " + num(s) + ": " + what + " needs positions up to " +
                                    num(p1 - 1) + " but maxPagesPerSeq (" + num(c.max_pages) + ") * pageSize (" +
                                    num(c.page_size) + ") holds " + num(cap));
  for (int64_t i = p0 / c.page_size; i <= (p1 - 1) / c.page_size; ++i) {
    const int32_t pg = bt[s * c.max_pages + i];
    if (pg < 0 || pg >= c.num_pages)
      r.range_error("blockTable", "element [" + num(s) + ", " + num(i) + "] is page " + num(pg) +
                                      ", outside [0, numPages = " + num(c.num_pages) + ")");
  }
}

template <typename T>
T copy_array(Napi::Env env, const ArrayArg& a) {
  T out = T::New(env, (size_t)a.length);
  if (a.length > 0) std::memcpy(out.Data(), a.data, (size_t)a.length * sizeof(*out.Data()));
  return out;
}

// { kCache, vCache, k, v, cuSeqlens, startPos, blockTable, tokens, numPages,
//   pageSize, nKvHeads, headDim, maxPagesPerSeq } -> { kCache, vCache } (updated copies)
Napi::Value kv_cache_append_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "kvCacheAppend");
  const int64_t tokens = r.integer("tokens", 0, INT32_MAX);
  CacheArgs c = read_cache(r);
  const int64_t n_kv = checked_product(r, "k", {tokens, c.n_kv_heads, c.head_dim});
  const std::string shp_kv = shape_str({tokens, c.n_kv_heads, c.head_dim});
  ArrayArg k = float_array(r, "k", kF32, true, n_kv, shp_kv);
  ArrayArg v = float_array(r, "v", kF32, true, n_kv, shp_kv);
  const int32_t* cu;
  const int64_t nseq = read_cu_seqlens(r, "cuSeqlens", tokens, &cu);
  ArrayArg sp = int32_array(r, "startPos", true, nseq, shape_str({nseq}));
  const int32_t* start = sp.as<int32_t>();
  const int32_t* bt = read_block_table(r, nseq, c);
  std::vector<int64_t> slots;
  slots.reserve((size_t)tokens);
  for (int64_t s = 0; s < nseq; ++s) {
    if (start[s] < 0) r.range_error("startPos", "element " + num(s) + " is " + num(start[s]) + "; must be >= 0");
    const int64_t p0 = start[s], p1 = p0 + (cu[s + 1] - cu[s]);
    check_positions(r, "the appended tokens", bt, c, s, p0, p1);
    for (int64_t p = p0; p < p1; ++p)
      slots.push_back((int64_t)bt[s * c.max_pages + p / c.page_size] * c.page_size + p % c.page_size);
  }
  // One call must not write a cache slot twice (pages shared between sequences).
  std::sort(slots.begin(), slots.end());
  for (size_t i = 1; i < slots.size(); ++i)
    if (slots[i] == slots[i - 1])
      r.range_error("blockTable", "maps two appended tokens to the same cache slot (page " +
                                      num(slots[i] / c.page_size) + ", slot " + num(slots[i] % c.page_size) + ")");

  Napi::TypedArray k_out, v_out;
  void *kd, *vd;
  if (c.k.dtype == DType::F16) {
    Napi::Uint16Array ko = copy_array<Napi::Uint16Array>(r.env, c.k), vo = copy_array<Napi::Uint16Array>(r.env, c.v);
    kd = ko.Data(); vd = vo.Data(); k_out = ko; v_out = vo;
  } else {
    Napi::Float32Array ko = copy_array<Napi::Float32Array>(r.env, c.k), vo = copy_array<Napi::Float32Array>(r.env, c.v);
    kd = ko.Data(); vd = vo.Data(); k_out = ko; v_out = vo;
  }
  KvCacheAppendArgs a;
  a.cache = cache_view(c, kd, vd);
  a.nseq = nseq; a.tokens = tokens;
  a.k = k.as<float>(); a.k_stride_tok = c.n_kv_heads * c.head_dim; a.k_stride_head = c.head_dim;
  a.v = v.as<float>(); a.v_stride_tok = c.n_kv_heads * c.head_dim; a.v_stride_head = c.head_dim;
  a.cu_seqlens = cu; a.start_pos = start;
  a.block_table = bt; a.block_table_stride = c.max_pages; a.max_pages_per_seq = c.max_pages;
  kv_cache_append(a);

  Napi::Object o = Napi::Object::New(r.env);
  o.Set("kCache", k_out);
  o.Set("vCache", v_out);
  return o;
}

// { q, kCache, vCache, cuSeqlens, kvLens, blockTable, tokens, nHeads, nKvHeads,
//   headDim, numPages, pageSize, maxPagesPerSeq, scale } -> out f32 [tokens, nHeads, headDim]
Napi::Value paged_attention_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "pagedAttention");
  const int64_t tokens = r.integer("tokens", 0, INT32_MAX);
  const int64_t n_heads = r.integer("nHeads", 1, kMaxHeads);
  CacheArgs c = read_cache(r);
  if (n_heads % c.n_kv_heads != 0)
    r.range_error("nKvHeads", "must divide nHeads (" + num(n_heads) + "), got " + num(c.n_kv_heads));
  if (!r.has("scale")) r.type_error("scale", "is required (a finite number, e.g. 1 / sqrt(headDim))");
  const double scale = r.number_or("scale", 0.0);
  if (std::fabs(scale) > 3.0e38) r.range_error("scale", "must be a finite float32");
  const int64_t n_q = checked_product(r, "q", {tokens, n_heads, c.head_dim});
  ArrayArg q = float_array(r, "q", kF32, true, n_q, shape_str({tokens, n_heads, c.head_dim}));
  const int32_t* cu;
  const int64_t nseq = read_cu_seqlens(r, "cuSeqlens", tokens, &cu);
  ArrayArg kl = int32_array(r, "kvLens", true, nseq, shape_str({nseq}));
  const int32_t* kv_lens = kl.as<int32_t>();
  const int32_t* bt = read_block_table(r, nseq, c);
  for (int64_t s = 0; s < nseq; ++s) {
    const int64_t qlen = cu[s + 1] - cu[s];
    if (kv_lens[s] < qlen)
      r.range_error("kvLens", "element " + num(s) + " is " + num(kv_lens[s]) +
                                  "; must be >= that sequence's query count (" + num(qlen) +
                                  "): the queries are its last positions");
    // Only positions up to the last query's are read.
    check_positions(r, "kvLens", bt, c, s, 0, kv_lens[s]);
  }

  Napi::Float32Array out = new_f32(r.env, n_q);
  PagedAttentionArgs a;
  a.cache = cache_view(c, c.k.data, c.v.data);
  a.nseq = nseq; a.tokens = tokens; a.n_heads = n_heads; a.scale = (float)scale;
  a.q = q.as<float>(); a.q_stride_tok = n_heads * c.head_dim; a.q_stride_head = c.head_dim;
  a.out = out.Data(); a.out_stride_tok = n_heads * c.head_dim; a.out_stride_head = c.head_dim;
  a.cu_seqlens_q = cu; a.kv_lens = kv_lens;
  a.block_table = bt; a.block_table_stride = c.max_pages; a.max_pages_per_seq = c.max_pages;
  paged_attention(a);
  return out;
}

// { x, positions, tokens, nHeads, headDim, rotaryDim?, theta, interleaved? } -> f32 [tokens, nHeads, headDim]
Napi::Value rope_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "rope");
  const int64_t tokens = r.integer("tokens", 0, INT32_MAX);
  const int64_t n_heads = r.integer("nHeads", 1, kMaxHeads);
  const int64_t head_dim = r.integer("headDim", 2, 1 << 16);
  const int64_t rd = r.integer_or("rotaryDim", 2, head_dim, head_dim);
  if (rd % 2 != 0) r.range_error("rotaryDim", "must be even, got " + num(rd));
  if (!r.has("theta")) r.type_error("theta", "is required (rope_theta, a number > 0)");
  const double theta = r.number_or("theta", 0.0);
  if (!(theta > 0.0)) r.range_error("theta", "must be > 0, got " + std::to_string(theta));
  const int64_t n = checked_product(r, "x", {tokens, n_heads, head_dim});
  ArrayArg x = float_array(r, "x", kF32, true, n, shape_str({tokens, n_heads, head_dim}));
  ArrayArg pos = int32_array(r, "positions", true, tokens, shape_str({tokens}));
  const int32_t* p = pos.as<int32_t>();
  for (int64_t t = 0; t < tokens; ++t)
    if (p[t] < 0) r.range_error("positions", "element " + num(t) + " is " + num(p[t]) + "; must be >= 0");

  Napi::Float32Array out = copy_array<Napi::Float32Array>(r.env, x);
  RopeArgs a;
  a.x = out.Data(); a.tokens = tokens; a.n_heads = n_heads; a.head_dim = head_dim;
  a.x_stride_tok = n_heads * head_dim; a.x_stride_head = head_dim;
  a.positions = p; a.rotary_dim = rd; a.theta = theta;
  a.interleaved = r.boolean_or("interleaved", false);
  rope(a);
  return out;
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("kvCacheAppend", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, kv_cache_append_js); }));
  exports.Set("pagedAttention", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, paged_attention_js); }));
  exports.Set("rope", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, rope_js); }));
}

}  // namespace nm::napi
