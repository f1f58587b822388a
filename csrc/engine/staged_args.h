// The host index arrays each kernel entry reads (token ids, sequence slots,
// cu_seqlens, positions, KV block tables; backend.h), replaced by a device
// backend's staged copies: `stage(host, n)` returns the device copy of n
// int32s (nullptr for none). Shared by the CUDA and device-emulation
// backends so that both stage exactly the same arrays.
#pragma once
#include <stdexcept>
#include <string>

#include "engine/backend.h"

namespace nm::engine {

// The token ids of an embedding lookup, checked on the host before they are
// staged (a device cannot report a bad one).
inline void check_tokens(const EmbeddingArgs& a) {
  for (int64_t t = 0; t < a.n; ++t)
    if (a.tokens[t] < 0 || a.tokens[t] >= a.rows)
      throw std::invalid_argument("node-mamba: embedding: token " + std::to_string(a.tokens[t]) + " outside [0, " +
                                  std::to_string(a.rows) + ")");
}

template <class Stage>
EmbeddingArgs staged_args(EmbeddingArgs a, Stage&& stage) {
  a.tokens = stage(a.tokens, a.n);
  return a;
}
template <class Stage>
CausalConv1dArgs staged_args(CausalConv1dArgs a, Stage&& stage) {
  a.cu_seqlens = stage(a.cu_seqlens, a.nseq + 1);
  return a;
}
template <class Stage>
CausalConv1dUpdateArgs staged_args(CausalConv1dUpdateArgs a, Stage&& stage) {
  a.state_indices = stage(a.state_indices, a.batch);
  return a;
}
template <class Stage>
SsdChunkScanArgs staged_args(SsdChunkScanArgs a, Stage&& stage) {
  a.cu_seqlens = stage(a.cu_seqlens, a.nseq + 1);
  return a;
}
template <class Stage>
SelectiveStateUpdateArgs staged_args(SelectiveStateUpdateArgs a, Stage&& stage) {
  a.state_indices = stage(a.state_indices, a.batch);
  return a;
}
template <class Stage>
CausalConv1dQ8Args staged_args(CausalConv1dQ8Args a, Stage&& stage) {
  a.conv = staged_args(a.conv, stage);
  return a;
}
template <class Stage>
CausalConv1dUpdateQ8Args staged_args(CausalConv1dUpdateQ8Args a, Stage&& stage) {
  a.conv = staged_args(a.conv, stage);
  return a;
}
template <class Stage>
SsdChunkScanQ8Args staged_args(SsdChunkScanQ8Args a, Stage&& stage) {
  a.ssd = staged_args(a.ssd, stage);
  return a;
}
template <class Stage>
SelectiveStateUpdateQ8Args staged_args(SelectiveStateUpdateQ8Args a, Stage&& stage) {
  a.upd = staged_args(a.upd, stage);
  return a;
}
template <class Stage>
RopeArgs staged_args(RopeArgs a, Stage&& stage) {
  a.positions = stage(a.positions, a.tokens);
  return a;
}
template <class Stage>
KvCacheAppendArgs staged_args(KvCacheAppendArgs a, Stage&& stage) {
  a.cu_seqlens = stage(a.cu_seqlens, a.nseq + 1);
  a.start_pos = stage(a.start_pos, a.nseq);
  a.block_table = stage(a.block_table, a.nseq * a.block_table_stride);
  return a;
}
template <class Stage>
PagedAttentionArgs staged_args(PagedAttentionArgs a, Stage&& stage) {
  a.cu_seqlens_q = stage(a.cu_seqlens_q, a.nseq + 1);
  a.kv_lens = stage(a.kv_lens, a.nseq);
  a.block_table = stage(a.block_table, a.nseq * a.block_table_stride);
  return a;
}

}  // namespace nm::engine
