#include "engine/load_args.h"

#include <cmath>

#include "kernels/moe.h"

namespace nm::engine {

namespace {

// layers: nLayer (mixer, ffn) pairs, mixer 'mamba1' | 'mamba2' | 'attention',
// ffn 'none' | 'mlp' | 'moe'; absent: every layer is the `arch` mixer
// ('mamba' | 'mamba2') without a feed-forward.
std::vector<LayerKind> parse_layers(const LoadArgs& a, int64_t n_layer) {
  std::vector<std::pair<std::string, std::string>> names;
  std::vector<LayerKind> out;
  if (!a.layers(names)) {
    const std::string arch = a.text_or("arch", "");
    MixerKind k = MixerKind::Mamba1;
    if (arch == "mamba2") k = MixerKind::Mamba2;
    else if (arch != "mamba") a.type_error("arch", "must be 'mamba' or 'mamba2' (or give 'layers')");
    out.assign((size_t)n_layer, LayerKind{k, FfnKind::None});
    return out;
  }
  if ((int64_t)names.size() != n_layer)
    a.type_error("layers", "must be an array of nLayer (" + std::to_string(n_layer) + ") { mixer, ffn } objects");
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string what = "layers[" + std::to_string(i) + "]";
    const std::string& mixer = names[i].first;
    const std::string& ffn = names[i].second;
    LayerKind k;
    if (mixer == "mamba1") k.mixer = MixerKind::Mamba1;
    else if (mixer == "mamba2") k.mixer = MixerKind::Mamba2;
    else if (mixer == "attention") k.mixer = MixerKind::Attention;
    else a.type_error(what + ".mixer", "must be 'mamba1', 'mamba2' or 'attention', got '" + mixer + "'");
    if (ffn == "none") k.ffn = FfnKind::None;
    else if (ffn == "mlp") k.ffn = FfnKind::Mlp;
    else if (ffn == "moe") k.ffn = FfnKind::Moe;
    else a.type_error(what + ".ffn", "must be 'none', 'mlp' or 'moe', got '" + ffn + "'");
    out.push_back(k);
  }
  return out;
}

}  // namespace

ModelConfig parse_model_config(const LoadArgs& a) {
  ModelConfig cfg;
  const int64_t big = int64_t(1) << 31;
  cfg.d_model = a.integer("dModel", 1, big);
  cfg.n_layer = a.integer("nLayer", 1, 1 << 16);
  cfg.vocab = a.integer("vocabSize", 1, big);
  cfg.layers = parse_layers(a, cfg.n_layer);
  cfg.d_state = a.integer_or("dState", 0, 1024, 0);
  cfg.d_conv = a.integer_or("dConv", 0, 8, 0);
  cfg.d_inner = a.integer_or("dInner", 0, big, 0);
  cfg.dt_rank = a.integer_or("dtRank", 0, big, 0);
  cfg.headdim = a.integer_or("headdim", 0, 1024, 0);
  cfg.nheads = a.integer_or("nheads", 0, big, 0);
  cfg.ngroups = a.integer_or("ngroups", 1, big, 1);
  cfg.norm_eps = (float)a.number_or("normEps", 1e-5);
  cfg.dt_min = (float)a.number_or("dtMin", 0.0);
  cfg.dt_max = a.has("dtMax") ? (float)a.number("dtMax") : INFINITY;
  cfg.round_activations = a.boolean_or("roundActivations", true);
  cfg.hadamard_out = a.boolean_or("hadamardOut", false);
  cfg.hadamard_residual = a.boolean_or("hadamardResidual", false);
  cfg.ssm_int8 = a.boolean_or("ssmInt8", false);
  cfg.mamba_inner_norms = a.boolean_or("mambaInnerNorms", false);
  cfg.gated_norm_group = a.integer_or("gatedNormGroupSize", 0, big, 0);
  cfg.n_heads = a.integer_or("nHeads", 0, 1 << 16, 0);
  cfg.n_kv_heads = a.integer_or("nKvHeads", 0, 1 << 16, 0);
  cfg.head_dim = a.integer_or("headDim", 0, 1 << 16, 0);
  cfg.attn_scale = (float)a.number_or("attnScale", 0.0);
  if (!(cfg.attn_scale >= 0.0f) || !std::isfinite(cfg.attn_scale)) a.range_error("attnScale", "must be a finite number >= 0");
  cfg.rope_theta = a.number_or("ropeTheta", 0.0);
  if (!(cfg.rope_theta >= 0.0) || !std::isfinite(cfg.rope_theta)) a.range_error("ropeTheta", "must be a finite number >= 0");
  cfg.rope_dim = a.integer_or("ropeDim", 0, 1 << 16, 0);
  cfg.rope_interleaved = a.boolean_or("ropeInterleaved", false);
  cfg.context_size = a.integer_or("contextSize", 0, big - 1, 0);
  const std::string kv = a.text_or("kvDtype", "f16");
  if (kv == "f16") cfg.kv_dtype = DType::F16;
  else if (kv == "f32") cfg.kv_dtype = DType::F32;
  else a.type_error("kvDtype", "must be 'f16' or 'f32'");
  cfg.mlp_dim = a.integer_or("mlpDim", 0, big, 0);
  cfg.moe_experts = a.integer_or("moeExperts", 0, 1 << 16, 0);
  cfg.moe_top_k = a.integer_or("moeTopK", 0, 1 << 16, 0);
  cfg.moe_dim = a.integer_or("moeDim", 0, big, 0);
  cfg.moe_shared_dim = a.integer_or("moeSharedDim", 0, big, 0);
  const std::string router = a.text_or("moeRouter", "softmax_topk");
  if (router == "softmax_topk") cfg.moe_router = (int32_t)MoeRouter::SoftmaxTopk;
  else if (router == "topk_softmax") cfg.moe_router = (int32_t)MoeRouter::TopkSoftmax;
  else a.type_error("moeRouter", "must be 'softmax_topk' or 'topk_softmax'");
  for (auto [key, field] : {std::pair<const char*, float*>{"embeddingMultiplier", &cfg.embedding_multiplier},
                            {"residualMultiplier", &cfg.residual_multiplier}, {"logitsScaling", &cfg.logits_scaling}}) {
    *field = (float)a.number_or(key, 1.0);
    if (!std::isfinite(*field) || *field == 0.0f) a.range_error(key, "must be a finite non-zero number");
  }
  return cfg;
}

}  // namespace nm::engine
