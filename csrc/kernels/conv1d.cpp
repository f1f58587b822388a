#include "kernels/conv1d.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"
#include "kernels/ssm_q8.h"

namespace nm {

NM_DECLARE_ISA_FN(void causal_conv1d_tile(const CausalConv1dArgs& a, int64_t s, int64_t t0, int64_t t1, int64_t c0, int64_t c1))
NM_DECLARE_ISA_FN(void causal_conv1d_q8_tile(const CausalConv1dArgs& a, const ConvInt8Io& io, const float* out_inv, int64_t s,
                                              int64_t t0, int64_t t1, int64_t c0, int64_t c1))
NM_DECLARE_ISA_FN(void causal_conv1d_update_tile(const CausalConv1dUpdateArgs& a, int64_t r0, int64_t r1, int64_t c0, int64_t c1))
NM_DECLARE_ISA_FN(void causal_conv1d_update_q8_tile(const CausalConv1dUpdateArgs& a, const ConvInt8Io& io, const float* out_inv,
                                                     int64_t r0, int64_t r1, int64_t c0, int64_t c1))

namespace {

// Channels per tile: a multiple of every vector width (16 floats = 1 cache line).
constexpr int64_t kChannelBlock = 64;
// Tokens per prefill tile: long sequences are split so that one long
// sequence with few channels still uses every core.
constexpr int64_t kTokenBlock = 256;
// Below this many multiply-adds a call stays on the calling thread.
constexpr int64_t kSerialWork = 1 << 16;

struct TokenBlock {
  int64_t seq, t0, t1;  // tokens [t0, t1) relative to the sequence start
};

// Asks for every cache line of [p, p + bytes) (a hint: never faults).
void prefetch_range(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off);
}

}  // namespace

namespace {

// Every prefill tile (sequence, token block, channel block) of `a`:
// tile(seq, t0, t1, c0, c1), on the pool when the call is large enough.
template <class Tile>
void for_each_prefill_tile(const CausalConv1dArgs& a, const char* what, Tile&& tile) {
  if (a.width < 1 || a.width > kConv1dMaxWidth) throw std::invalid_argument(std::string(what) + ": width out of range");
  if (!a.cu_seqlens && a.nseq != 1) throw std::invalid_argument(std::string(what) + ": nseq must be 1 without cu_seqlens");
  if (a.channels <= 0 || a.nseq <= 0) return;

  // Every sequence gets at least one block (an empty one still writes its
  // final state).
  std::vector<TokenBlock> blocks;
  for (int64_t s = 0; s < a.nseq; ++s) {
    const int64_t len = a.cu_seqlens ? (int64_t)a.cu_seqlens[s + 1] - a.cu_seqlens[s] : a.tokens;
    if (len <= 0) { blocks.push_back({s, 0, 0}); continue; }
    for (int64_t t0 = 0; t0 < len; t0 += kTokenBlock) blocks.push_back({s, t0, std::min(len, t0 + kTokenBlock)});
  }
  const int64_t ncb = (a.channels + kChannelBlock - 1) / kChannelBlock;
  const int64_t tiles = (int64_t)blocks.size() * ncb;
  const int64_t work = std::max<int64_t>(a.tokens, 1) * a.channels * a.width;
  const int64_t max_tasks = std::max<int64_t>(1, std::min<int64_t>(tiles, work / kSerialWork));

  auto run_tile = [&](int64_t i) {
    const TokenBlock& b = blocks[(size_t)(i / ncb)];
    const int64_t c0 = (i % ncb) * kChannelBlock, c1 = std::min(a.channels, c0 + kChannelBlock);
    tile(b.seq, b.t0, b.t1, c0, c1);
  };
  if (max_tasks == 1) {
    for (int64_t i = 0; i < tiles; ++i) run_tile(i);
    return;
  }
  // Dynamic scheduling: sequences may have very different lengths.
  std::atomic<int64_t> next{0};
  cpu::pool().run((int)std::min<int64_t>(max_tasks, 1 << 20), [&](int, int) {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < tiles;) run_tile(i);
  });
}

// 1 / out_scale in float32 per channel, as the quantize pass takes it (the
// calling thread's buffer, reused).
const float* out_inverse(const ConvInt8Io& io, int64_t channels) {
  thread_local std::vector<float> inv;
  if (channels > 0) {
    if ((int64_t)inv.size() < channels) inv.resize((size_t)channels);
    for (int64_t c = 0; c < channels; ++c) inv[(size_t)c] = 1.0f / io.out_scale[c];
  }
  return inv.data();
}

// The decode update's tiles over (channel block, row) items, rows fastest,
// on the pool: tile(r0, r1, c0, c1).
template <class Tile>
void for_each_update_tile(const CausalConv1dUpdateArgs& a, const Tile& tile) {
  if (a.width < 1 || a.width > kConv1dMaxWidth) throw std::invalid_argument("causal_conv1d_update: width out of range");
  if (a.channels <= 0 || a.batch <= 0) return;
  const int64_t ncb = (a.channels + kChannelBlock - 1) / kChannelBlock;
  // Work per item ~ kChannelBlock * width multiply-adds plus the state gathers
  // and scatters (channel-strided, element by element). Low bar: at batch 1
  // a layer's update is ~10 us, serial unless split, and a decode step runs
  // one per layer (a d_inner of 1536 splits in 6 items of 4 blocks).
  const int64_t grain = std::max<int64_t>(1, kSerialWork / 64 / (kChannelBlock * a.width));
  // Items are (channel block, row), rows fastest, so that a range of items
  // shares the channel block's weights.
  // Dynamic chunks (see selective_state_update).
  const int64_t items = a.batch * ncb;
  cpu::parallel_for_dynamic(items, cpu::balanced_chunk(items, grain), [&](int64_t i0, int64_t i1) {
    // At decode a layer's conv weights and states were evicted by the other
    // layers' weight streams since the last token, and the tiles' strided
    // reads would wait for one line at a time: request all of this task's
    // lines first.
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t cb = i / a.batch, r = i % a.batch;
      const int64_t c0 = cb * kChannelBlock, c1 = std::min(a.channels, c0 + kChannelBlock);
      const int64_t slot = a.state_indices ? a.state_indices[r] : r;
      if (r == 0 || i == i0)  // the first of this task's items on this channel block
        prefetch_range(static_cast<const char*>(a.weight) + c0 * a.weight_stride * dtype_size(a.weight_dtype),
                       (c1 - c0) * a.weight_stride * dtype_size(a.weight_dtype));
      prefetch_range(a.conv_state + slot * a.state_slot_stride + c0 * a.state_ch_stride,
                     (c1 - c0) * a.state_ch_stride * (int64_t)sizeof(float));
    }
    for (int64_t i = i0; i < i1;) {
      const int64_t cb = i / a.batch, r0 = i % a.batch, r1 = std::min(a.batch, r0 + (i1 - i));
      const int64_t c0 = cb * kChannelBlock;
      tile(r0, r1, c0, std::min(a.channels, c0 + kChannelBlock));
      i += r1 - r0;
    }
  });
}

}  // namespace

void causal_conv1d(const CausalConv1dArgs& a) {
  for_each_prefill_tile(a, "causal_conv1d", [&](int64_t s, int64_t t0, int64_t t1, int64_t c0, int64_t c1) {
    NM_ISA_CALL(causal_conv1d_tile, a, s, t0, t1, c0, c1);
  });
}

// The int8 form (ssm_q8.h): the tiles dequantize their inputs as they load
// them and quantize their outputs as they store them.
void causal_conv1d_q8(const CausalConv1dQ8Args& q) {
  const CausalConv1dArgs& a = q.conv;
  const float* out_inv = out_inverse(q.io, a.channels);
  for_each_prefill_tile(a, "causal_conv1d", [&](int64_t s, int64_t t0, int64_t t1, int64_t c0, int64_t c1) {
    NM_ISA_CALL(causal_conv1d_q8_tile, a, q.io, out_inv, s, t0, t1, c0, c1);
  });
}

void causal_conv1d_update(const CausalConv1dUpdateArgs& a) {
  for_each_update_tile(a, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    NM_ISA_CALL(causal_conv1d_update_tile, a, r0, r1, c0, c1);
  });
}

// The int8 form (ssm_q8.h), as causal_conv1d_q8.
void causal_conv1d_update_q8(const CausalConv1dUpdateQ8Args& q) {
  const CausalConv1dUpdateArgs& a = q.conv;
  const float* out_inv = out_inverse(q.io, a.channels);
  for_each_update_tile(a, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    NM_ISA_CALL(causal_conv1d_update_q8_tile, a, q.io, out_inv, r0, r1, c0, c1);
  });
}

}  // namespace nm
