// The attention mixer of hybrid models (REFERENCE.md section 7): q, k, v
// projections, RoPE when the config asks for it (Granite's "rope"; Jamba and
// Granite 4.0-H's "nope" have none), the new K/V rows appended to the
// sequence's pages of this layer's cache, causal grouped-query attention
// over the cache with the config's softmax scale (Granite's
// attention_multiplier, else 1/sqrt(head_dim)), then o_proj. No biases.
#include <cmath>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/blocks/block.h"
#include "engine/ops.h"
#include "engine/tensor_table.h"
#include "kernels/attention.h"

namespace nm::engine {

namespace {

class AttentionMixer final : public Mixer {
 public:
  explicit AttentionMixer(const BlockContext& ctx) : layer_(ctx.layer) {
    const ModelConfig& c = ctx.model.config();
    TensorTable& tt = ctx.tensors;
    using Q = TensorTable::Quant;
    Hq_ = c.n_heads; Hkv_ = c.n_kv_heads; hd_ = c.head_dim;
    if (Hq_ <= 0 || Hkv_ <= 0 || hd_ <= 0 || Hq_ % Hkv_ != 0)
      throw LoadError("attention needs heads > 0, KV heads > 0 dividing them and a head size > 0", "", "num_key_value_heads");
    if (c.rope_theta > 0.0 && (c.rope_dim < 2 || c.rope_dim > hd_ || c.rope_dim % 2 != 0))
      throw LoadError("the rotary dimension must be even and in [2, head_dim]", "", "rope_dim");
    if (c.context_size <= 0) throw LoadError("attention layers need a context size > 0", "", "contextSize");
    scale_ = c.attn_scale > 0.0f ? c.attn_scale : (float)(1.0 / std::sqrt((double)hd_));
    const int64_t d = c.d_model;
    const std::string mx = mixer_name(layer_);
    q_ = tt.get(mx + "q_proj.weight", {{Hq_ * hd_, d}}, true, Q::Any);
    k_ = tt.get(mx + "k_proj.weight", {{Hkv_ * hd_, d}}, true, Q::Any);
    v_ = tt.get(mx + "v_proj.weight", {{Hkv_ * hd_, d}}, true, Q::Any);
    o_ = tt.get(mx + "o_proj.weight", {{d, Hq_ * hd_}}, true, Q::Any);
    kv_layer_ = ctx.model.kv().add_layer(Hkv_, hd_);
  }

  void prefill(Model& m, int32_t slot, int64_t pos0, const float* hn, int64_t n, float* out) override {
    const std::vector<int32_t>& pages = m.kv().pages(slot);
    const int32_t cu[2] = {0, (int32_t)n};
    const int32_t start[1] = {(int32_t)pos0};
    const int32_t kv_len[1] = {(int32_t)(pos0 + n)};
    std::vector<int32_t> positions((size_t)n);
    for (int64_t t = 0; t < n; ++t) positions[(size_t)t] = (int32_t)(pos0 + t);
    run(m, 1, n, hn, cu, start, kv_len, positions.data(), pages.data(), (int64_t)pages.size(), out);
  }

  void step(Model& m, const int32_t* slots, const int32_t* pos, const float* hn, int64_t B, float* out) override {
    // One row of the block table per sequence, padded with a valid page id
    // to a power of two: the staged table's size (part of a decode graph's
    // recording) changes at doublings only, not at every new page.
    int64_t maxp = 1;
    for (int64_t b = 0; b < B; ++b)
      while (maxp < (int64_t)m.kv().pages(slots[b]).size()) maxp *= 2;
    std::vector<int32_t> table((size_t)(B * maxp), 0), cu((size_t)B + 1), kv_len((size_t)B);
    for (int64_t b = 0; b < B; ++b) {
      const std::vector<int32_t>& p = m.kv().pages(slots[b]);
      std::copy(p.begin(), p.end(), table.begin() + b * maxp);
      cu[(size_t)b] = (int32_t)b;
      kv_len[(size_t)b] = pos[b] + 1;
    }
    cu[(size_t)B] = (int32_t)B;
    run(m, B, B, hn, cu.data(), pos, kv_len.data(), pos, table.data(), maxp, out);
  }

  void linear_layers(LinearList& out) const override {
    const std::string mx = mixer_name(layer_);
    out.emplace_back(mx + "q_proj", &q_);
    out.emplace_back(mx + "k_proj", &k_);
    out.emplace_back(mx + "v_proj", &v_);
    out.emplace_back(mx + "o_proj", &o_);
  }

 private:
  // `tokens` new tokens of `nseq` packed sequences (cu_seqlens), sequence s
  // starting at start_pos[s] and attending to kv_len[s] cached positions,
  // token t at positions[t]; block table [nseq, table_stride].
  void run(Model& m, int64_t nseq, int64_t tokens, const float* hn, const int32_t* cu, const int32_t* start_pos,
           const int32_t* kv_len, const int32_t* positions, const int32_t* table, int64_t table_stride, float* out) {
    const ModelConfig& c = m.config();
    const int64_t d = c.d_model, qd = Hq_ * hd_, kd = Hkv_ * hd_;
    Buf q((size_t)(tokens * qd)), k((size_t)(tokens * kd)), v((size_t)(tokens * kd)), o((size_t)(tokens * qd));
    run_linear(m, q_, nullptr, hn, d, tokens, q.data());
    run_linear(m, k_, nullptr, hn, d, tokens, k.data());
    run_linear(m, v_, nullptr, hn, d, tokens, v.data());
    if (tokens <= 8) m.backend().prefetch(o_.data, packed_weight_bytes(o_));  // read after the attention (decode)
    if (c.rope_theta > 0.0) {
      for (auto [x, heads] : {std::pair<float*, int64_t>{q.data(), Hq_}, {k.data(), Hkv_}}) {
        RopeArgs r;
        r.x = x; r.tokens = tokens; r.n_heads = heads; r.head_dim = hd_;
        r.x_stride_tok = heads * hd_; r.x_stride_head = hd_;
        r.positions = positions; r.rotary_dim = c.rope_dim; r.theta = c.rope_theta;
        r.interleaved = c.rope_interleaved;
        m.backend().rope(r);
      }
    }
    const PagedKvCache cache = m.kv().view(kv_layer_);
    KvCacheAppendArgs ap;
    ap.cache = cache;
    ap.nseq = nseq; ap.tokens = tokens;
    ap.k = k.data(); ap.k_stride_tok = kd; ap.k_stride_head = hd_;
    ap.v = v.data(); ap.v_stride_tok = kd; ap.v_stride_head = hd_;
    ap.cu_seqlens = cu; ap.start_pos = start_pos;
    ap.block_table = table; ap.block_table_stride = table_stride; ap.max_pages_per_seq = table_stride;
    m.backend().kv_cache_append(ap);
    PagedAttentionArgs at;
    at.cache = cache;
    at.nseq = nseq; at.tokens = tokens; at.n_heads = Hq_;
    at.scale = scale_;
    at.q = q.data(); at.q_stride_tok = qd; at.q_stride_head = hd_;
    at.out = o.data(); at.out_stride_tok = qd; at.out_stride_head = hd_;
    at.cu_seqlens_q = cu; at.kv_lens = kv_len;
    at.block_table = table; at.block_table_stride = table_stride; at.max_pages_per_seq = table_stride;
    m.backend().paged_attention(at);
    run_linear(m, o_, nullptr, o.data(), qd, tokens, out);
  }

  int64_t layer_;
  int64_t Hq_ = 0, Hkv_ = 0, hd_ = 0;
  float scale_ = 1.0f;
  Weight q_, k_, v_, o_;
  int32_t kv_layer_ = 0;
};

}  // namespace

std::unique_ptr<Mixer> make_attention_mixer(const BlockContext& ctx) { return std::make_unique<AttentionMixer>(ctx); }

}  // namespace nm::engine
