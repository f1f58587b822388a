// Layer kind -> block. A new kind: its file in this directory and one line here.
#include "engine/blocks/block.h"

namespace nm::engine {

std::unique_ptr<Mixer> make_mamba1_mixer(const BlockContext& ctx);
std::unique_ptr<Mixer> make_mamba2_mixer(const BlockContext& ctx);
std::unique_ptr<Mixer> make_attention_mixer(const BlockContext& ctx);
std::unique_ptr<FeedForward> make_mlp_ffn(const BlockContext& ctx);
std::unique_ptr<FeedForward> make_moe_ffn(const BlockContext& ctx);

std::unique_ptr<Mixer> make_mixer(MixerKind kind, const BlockContext& ctx) {
  switch (kind) {
    case MixerKind::Mamba1: return make_mamba1_mixer(ctx);
    case MixerKind::Mamba2: return make_mamba2_mixer(ctx);
    case MixerKind::Attention: return make_attention_mixer(ctx);
  }
  throw LoadError("layer " + std::to_string(ctx.layer) + " has an unknown mixer kind", "", "layers");
}

std::unique_ptr<FeedForward> make_ffn(FfnKind kind, const BlockContext& ctx) {
  switch (kind) {
    case FfnKind::None: return nullptr;
    case FfnKind::Mlp: return make_mlp_ffn(ctx);
    case FfnKind::Moe: return make_moe_ffn(ctx);
  }
  throw LoadError("layer " + std::to_string(ctx.layer) + " has an unknown feed-forward kind", "", "layers");
}

}  // namespace nm::engine
