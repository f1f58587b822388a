#include "emulate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "attention_math.cuh"
#include "conv1d_math.cuh"
#include "elementwise_math.cuh"
#include "hadamard_math.cuh"
#include "kernels_validate.h"
#include "linear_math.cuh"
#include "linear_mma_math.cuh"
#include "qlinear_mma_math.cuh"
#include "f16split_math.cuh"
#include "moe_math.cuh"
#include "norm_math.cuh"
#include "qlinear_math.cuh"
#include "qlinear_row_math.cuh"
#include "selective_scan_math.cuh"
#include "selective_scan_tiles_math.cuh"
#include "attention_tiles_math.cuh"
#include "gemv_q8_math.cuh"
#include "ssm_q8_math.cuh"
#include "ssd_chunks_math.cuh"
#include "ssd_math.cuh"

namespace nm::cuda::emulate {

namespace {

cudaError_t status(Check c) {
  return c == Check::kInvalid ? cudaErrorInvalidValue : c == Check::kUnsupported ? cudaErrorNotSupported : cudaSuccess;
}

}  // namespace

cudaError_t embedding(const EmbeddingArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  const int64_t row_bytes = dtype_row_bytes(a.dtype, a.dim);
  for (int64_t t = 0; t < a.n; ++t)
    for (int64_t k = 0; k < a.dim; ++k) {
      const int32_t row = a.tokens[t];
      a.out[t * a.dim + k] = row >= 0 && row < a.rows ? embedding_value(a, row_bytes, row, k) : 0.0f;
    }
  return cudaSuccess;
}

cudaError_t scale(float* x, int64_t n, float s) {
  if (n < 0 || (n > 0 && !x)) return cudaErrorInvalidValue;
  if (s != 1.0f)
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] * s;
  return cudaSuccess;
}

cudaError_t add(const float* a, const float* b, float* out, int64_t n) {
  if (n < 0 || (n > 0 && (!a || !b || !out))) return cudaErrorInvalidValue;
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  return cudaSuccess;
}

cudaError_t swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride, int64_t rows,
                        int64_t I) {
  if (rows < 0 || I < 0) return cudaErrorInvalidValue;
  if (rows == 0 || I == 0) return cudaSuccess;
  if (!gu || !h || gu_stride < 0 || h_stride < I || up_off < I) return cudaErrorInvalidValue;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < I; ++i) h[r * h_stride + i] = swiglu_value(gu + r * gu_stride, up_off, i);
  return cudaSuccess;
}

cudaError_t rms_norm(const RmsNormArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  float sh[kNormRowThreads];
  const int T = rms_norm_threads(a);
  for (int64_t r = 0; r < a.rows; ++r) {  // block r
    for (int t = 0; t < T; ++t) sh[t] = rms_norm_partial(a, r, t, T);
    const float scale = norm_scale(tree_sum_host(sh, T), a.dim, a.eps);
    for (int t = 0; t < T; ++t) rms_norm_store(a, r, t, T, scale);
  }
  return cudaSuccess;
}

cudaError_t gated_rms_norm(const GatedRmsNormArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  float sh[kNormThreads];
  const int64_t groups = a.dim / a.group_size;
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {  // block (r, g)
      for (int t = 0; t < kNormThreads; ++t) sh[t] = gated_rms_norm_partial(a, r, g, t);
      const float scale = norm_scale(tree_sum_host(sh, kNormThreads), a.group_size, a.eps);
      for (int t = 0; t < kNormThreads; ++t) gated_rms_norm_store(a, r, g, t, scale);
    }
  return cudaSuccess;
}

namespace {

// cuda/conv1d_kernels.cuh's kernels for an activation I/O.
template <class Io>
void conv_kernels(const CausalConv1dArgs& a, const Io& io) {
  // The two kernels write disjoint buffers from inputs neither writes: any order.
  for (int64_t tb = 0; tb * kConvTokensPerThread < a.tokens; ++tb)
    for (int64_t ch = 0; ch < a.channels; ++ch) conv_prefill_block(a, io, tb, ch);
  if (a.final_state)
    for (int64_t s = 0; s < a.nseq; ++s)
      for (int64_t ch = 0; ch < a.channels; ++ch)
        for (int64_t j = 0; j < a.width - 1; ++j) conv_final_state_point(a, io, s, ch, j);
}

template <class Io>
void conv_update_kernel(const CausalConv1dUpdateArgs& a, const Io& io) {
  for (int64_t r = 0; r < a.batch; ++r)
    for (int64_t ch = 0; ch < a.channels; ++ch) conv_update_point(a, io, r, ch);
}

// cuda/state_update_kernel.cuh's kernel for an operand reader. Rows are
// independent: each row's lanes, then its tree, then lane 0.
template <class Ops>
void state_update_kernel(const SelectiveStateUpdateArgs& a, const Ops& o) {
  const int tpr = update_threads_per_row(a.dstate);
  float sh[32];
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t r = 0; r < a.nheads * a.headdim; ++r) {
      for (int l = 0; l < tpr; ++l) sh[l] = selective_state_update_partial(a, o, b, r, l, tpr);
      selective_state_update_finish(a, o, b, r, tree_sum_host(sh, tpr));
    }
}

}  // namespace

cudaError_t causal_conv1d(const CausalConv1dArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  conv_kernels(a, ConvFloatIo::of(a));
  return cudaSuccess;
}

cudaError_t causal_conv1d_update(const CausalConv1dUpdateArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  conv_update_kernel(a, ConvFloatIo::of(a));
  return cudaSuccess;
}

namespace {

// The three phases in launch order; within a phase the threads are
// independent, except the parts of a channel in phase 3, which add their
// partial sums per token (the device's shuffle: part 0's sum + part 1's).
template <int NMAX, int PARTS>
void scan_phases(const SelectiveScanArgs& a, int64_t len, const ScanWorkspace& ws) {
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t k = 0; k + 1 < ws.chunks; ++k)
      for (int64_t d = 0; d < a.dim; ++d)
        for (int part = 0; part < PARTS; ++part) scan_chunk_summary<NMAX, PARTS>(a, len, ws, b, k, d, part);
  if (ws.chunks > 1)
    for (int64_t b = 0; b < a.batch; ++b)
      for (int64_t n = 0; n < a.dstate; ++n)
        for (int64_t d = 0; d < a.dim; ++d) scan_carry(a, ws, b, n, d);
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t k = 0; k < ws.chunks; ++k)
      for (int64_t d = 0; d < a.dim; ++d) {
        ScanOut<NMAX, PARTS> o[PARTS] = {};
        for (int part = 0; part < PARTS; ++part) scan_out_begin<NMAX, PARTS>(a, len, ws, b, k, d, part, o[part]);
        for (int64_t l = o[0].l0; l < o[0].l1; ++l) {
          float y = 0.0f, ul = 0.0f, zl = 0.0f;
          for (int part = 0; part < PARTS; ++part) {
            float u1, z1;
            const float p = scan_out_token<NMAX, PARTS>(a, o[part], l, u1, z1);
            if (part == 0) y = p, ul = u1, zl = z1;
            else y = y + p;
          }
          scan_out_write<NMAX, PARTS>(a, o[0], l, y, ul, zl);
        }
        for (int part = 0; part < PARTS; ++part) scan_out_end<NMAX, PARTS>(a, ws, b, k, o[part]);
      }
}

// The one-pass scan, a block at a time: each step of the kernel (between
// its barriers) for every thread of the block, the warps' shuffles as reads
// of the lanes kTileChannels x off below (values from before the step).
void scan_tiles(const SelectiveScanArgs& a) {
  const int64_t N = a.dstate, cgroups = (a.dim + kTileChannels - 1) / kTileChannels;
  std::vector<TileThread> T(kTileThreads);
  std::vector<float> carry((size_t)(2 * N * kTileChannels));
  ScanStep s[kTileThreads][kTileStates], ex[kTileThreads][kTileStates], prev[kTileThreads];
  ScanStep agg[kTileStates][kTileChannels][kTileWarps];
  const auto seg_in_warp = [](int tid) { return (tid / kTileChannels) % kTileWarpSegments; };
  for (int64_t blk = 0; blk < scan_tile_blocks(a); ++blk) {
    const int64_t b = blk / cgroups, d0 = (blk % cgroups) * kTileChannels;
    for (int64_t i = 0; i < N * kTileChannels; ++i)
      carry[(size_t)i] = tile_initial_state(a, b, d0 + i % kTileChannels, i / kTileChannels);
    for (int tid = 0; tid < kTileThreads; ++tid) tile_thread_init(a, b, d0 + tid % kTileChannels, T[tid]);
    int cp = 0;
    const int64_t tiles = (a.seqlen + kTileTokens - 1) / kTileTokens;
    for (int64_t tile = 0; tile < tiles; ++tile) {
      for (int tid = 0; tid < kTileThreads; ++tid)
        tile_load(a, tile * kTileTokens + (tid / kTileChannels) * kTileItems, T[tid]);
      const float* cin = carry.data() + cp * N * kTileChannels;
      float* cout = carry.data() + (cp ^ 1) * N * kTileChannels;
      for (int64_t n0 = 0; n0 < N; n0 += kTileStates) {
        const int nn = N - n0 < kTileStates ? (int)(N - n0) : kTileStates;
        for (int tid = 0; tid < kTileThreads; ++tid) tile_segment_steps(a, n0, nn, T[tid], s[tid]);
        for (int j = 0; j < kTileStates; ++j) {
          for (int off = 1; off < kTileWarpSegments; off <<= 1) {
            for (int tid = 0; tid < kTileThreads; ++tid) prev[tid] = s[tid][j];
            for (int tid = 0; tid < kTileThreads; ++tid)
              if (seg_in_warp(tid) >= off) s[tid][j] = scan_then(prev[tid - off * kTileChannels], prev[tid]);
          }
          for (int tid = 0; tid < kTileThreads; ++tid) {
            const int sl = seg_in_warp(tid);
            ex[tid][j] = sl >= 1 ? s[tid - kTileChannels][j] : ScanStep{1.0f, 0.0f};
            if (sl == kTileWarpSegments - 1) agg[j][tid % kTileChannels][tid / 32] = s[tid][j];
          }
        }
        for (int tid = 0; tid < kTileThreads; ++tid) {
          const int ch = tid % kTileChannels, w = tid / 32;
          float h[kTileStates];
          for (int j = 0; j < kTileStates; ++j) {
            const float start = j < nn ? tile_warp_start(cin[(n0 + j) * kTileChannels + ch], agg[j][ch], w) : 0.0f;
            h[j] = scan_apply(ex[tid][j], start);
            if (w == kTileWarps - 1 && seg_in_warp(tid) == kTileWarpSegments - 1 && j < nn)
              cout[(n0 + j) * kTileChannels + ch] = scan_apply(s[tid][j], start);
          }
          tile_segment_apply(a, n0, nn, h, T[tid]);
        }
      }
      for (int tid = 0; tid < kTileThreads; ++tid) tile_store(a, T[tid]);
      cp ^= 1;
    }
    if (!a.last_state) continue;
    const float* fin = carry.data() + cp * N * kTileChannels;
    for (int64_t i = 0; i < N * kTileChannels; ++i) {
      const int64_t d = d0 + i % kTileChannels, n = i / kTileChannels;
      if (d < a.dim) a.last_state[b * a.last_state_batch_stride + d * N + n] = fin[i];
    }
  }
}

}  // namespace

cudaError_t selective_scan(const SelectiveScanArgs& a, const ScanTuning& t) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  const int method = scan_method(a, t.method);
  if (method == 0 || t.chunk_len < 0) return cudaErrorInvalidValue;
  if (method == 2) {
    scan_tiles(a);
    return cudaSuccess;
  }
  const int parts = scan_parts(a, t.parts);
  if (t.chunk_len < 0 || parts == 0) return cudaErrorInvalidValue;
  const int64_t len = scan_chunk_len(a, t.chunk_len), chunks = scan_chunks(a, len);
  std::vector<float> buf((size_t)scan_workspace_floats(a, chunks));
  const ScanWorkspace ws = scan_workspace(a, buf.data(), chunks);
  if (a.dstate == 16 && parts == 2) scan_phases<16, 2>(a, len, ws);
  else if (a.dstate == 16) scan_phases<16, 1>(a, len, ws);
  else scan_phases<(int)kSelectiveScanMaxDstate, 1>(a, len, ws);
  return cudaSuccess;
}

namespace {
void ssd_mma_chunks(const SsdChunkScanArgs& a);  // below, beside the mma emulation
}  // namespace

// Method as ssd.cu's ssd_method, for a device with sm_90's shared memory.
cudaError_t ssd_chunk_scan(const SsdChunkScanArgs& a, const SsdTuning& t) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  if (t.chunk_len < 0) return cudaErrorInvalidValue;
  const bool fits = ssd_chunks_apply(a, kSsdEmulatedSmem);
  if (t.method < 0 || t.method > 2) return cudaErrorInvalidValue;
  if (t.method == 2 && !fits) return cudaErrorNotSupported;
  if (t.method != 1 && fits) {
    ssd_mma_chunks(a);
    return cudaSuccess;
  }
  const int64_t chunk_len = t.chunk_len;
  const int parts = ssd_parts(a.dstate);
  const int64_t dim = a.nheads * a.headdim;
  for (int64_t s = 0; s < a.nseq; ++s)
    for (int64_t ch = 0; ch < dim; ++ch)
      for (int64_t n = 0; n < a.dstate; ++n) ssd_empty_final(a, s, ch, n);
  if (a.tokens == 0) return cudaSuccess;
  const int64_t len = ssd_chunk_len(a, chunk_len), chunks = ssd_chunks(a, len);
  std::vector<float> buf((size_t)ssd_workspace_floats(a, chunks));
  const SsdWorkspace ws = ssd_workspace(a, buf.empty() ? nullptr : buf.data(), chunks);
  for (int64_t k = 0; k + 1 < chunks; ++k)
    for (int64_t ch = 0; ch < dim; ++ch)
      for (int part = 0; part < parts; ++part) ssd_chunk_summary(a, len, ws, k, ch, part);
  if (chunks > 1)
    for (int64_t ch = 0; ch < dim; ++ch)
      for (int64_t n = 0; n < a.dstate; ++n) ssd_carry(a, ws, ch, n);
  // Phase 3: a channel's parts token by token; their partial sums in the
  // device's butterfly order (tree_sum_host), part 0 writing.
  std::vector<SsdLane> lanes((size_t)parts);
  std::vector<int64_t> seq((size_t)parts);
  float p[32];
  for (int64_t k = 0; k < chunks; ++k)
    for (int64_t ch = 0; ch < dim; ++ch) {
      int64_t t0 = 0, t1 = 0;
      for (int part = 0; part < parts; ++part)
        ssd_out_begin(a, len, ws, k, ch, part, lanes[(size_t)part], seq[(size_t)part], t0, t1);
      for (int64_t t = t0; t < t1; ++t) {
        bool last = false;
        for (int part = 0; part < parts; ++part) p[part] = ssd_out_token(a, t, lanes[(size_t)part], seq[(size_t)part], last);
        ssd_write_out(a, t, lanes[0], tree_sum_host(p, parts));
        if (last)
          for (int part = 0; part < parts; ++part) ssd_write_final(a, seq[(size_t)part], lanes[(size_t)part]);
      }
    }
  return cudaSuccess;
}

namespace {

// One row through the kernel's three steps (each step's threads are
// independent between the block's barriers).
void hadamard_row(std::vector<float>& y, int m, int64_t p, bool tr, float scale) {
  const int64_t n = (int64_t)y.size();
  for (int64_t h = 1; h < p; h *= 2)
    for (int64_t q = 0; q < n / 2; ++q) had_butterfly_pair(y.data(), p, h, q);
  for (int64_t j = 0; j < (m == 1 ? n : p); ++j) had_mix(y.data(), m, p, j, tr, scale);
}

}  // namespace

cudaError_t hadamard_transform(const HadamardArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  int m = 0;
  int64_t p = 0;
  had_decompose(a.n, &m, &p);
  const float scale = (float)(1.0 / std::sqrt((double)a.n));
  std::vector<float> y((size_t)a.n);
  for (int64_t r = 0; r < a.rows; ++r) {
    std::copy(a.x + r * a.x_stride, a.x + r * a.x_stride + a.n, y.begin());
    hadamard_row(y, m, p, a.transpose, scale);
    std::copy(y.begin(), y.end(), a.out + r * a.out_stride);
  }
  return cudaSuccess;
}

cudaError_t hadamard_quantize(const HadamardQuantArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  int m = 0;
  int64_t p = 0;
  had_decompose(a.n, &m, &p);
  const float fold = (float)((double)a.inv_scale / std::sqrt((double)a.n));
  std::vector<float> y((size_t)a.n);
  for (int64_t r = 0; r < a.rows; ++r) {
    std::copy(a.x + r * a.x_stride, a.x + r * a.x_stride + a.n, y.begin());
    hadamard_row(y, m, p, false, m == 1 ? 1.0f : fold);
    for (int64_t i = 0; i < a.n; ++i) a.out[r * a.out_stride + i] = had_quantize(y[(size_t)i], m == 1 ? fold : 1.0f);
  }
  return cudaSuccess;
}

namespace {

std::vector<float> dequantized(const Int8Operand& o, int64_t batch, int64_t tokens, int64_t width) {
  std::vector<float> out((size_t)(batch * tokens * width));
  for (int64_t i = 0; i < batch * tokens * width; ++i) dequantize_point(o, tokens, width, i, out.data());
  return out;
}

}  // namespace

cudaError_t quantize_channels_int8(int64_t rows, int64_t channels, const float* x, int64_t x_stride,
                                   const float* scale, int8_t* q, int64_t q_stride) {
  if (rows < 0 || channels < 0) return cudaErrorInvalidValue;
  if (rows == 0 || channels == 0) return cudaSuccess;
  if (!x || !scale || !q || x_stride < channels || q_stride < channels) return cudaErrorInvalidValue;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < channels; ++c) q[r * q_stride + c] = quantize_channel(x[r * x_stride + c], scale[c]);
  return cudaSuccess;
}

cudaError_t causal_conv1d_q8(const CausalConv1dQ8Args& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  conv_kernels(a.conv, ConvQ8Io{a.io});
  return cudaSuccess;
}

cudaError_t causal_conv1d_update_q8(const CausalConv1dUpdateQ8Args& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  conv_update_kernel(a.conv, ConvQ8Io{a.io});
  return cudaSuccess;
}

cudaError_t selective_state_update_q8(const SelectiveStateUpdateQ8Args& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  state_update_kernel(a.upd, UpdateQ8Operands{a.x, a.B, a.C});
  return cudaSuccess;
}

cudaError_t selective_scan_q8(const SelectiveScanQ8Args& a) {
  SelectiveScanArgs s = a.scan;
  const int64_t Bt = s.batch, L = s.seqlen, D = s.dim, GN = s.ngroups * s.dstate;
  std::vector<float> u = dequantized(a.u, Bt, L, D), b = dequantized(a.B, Bt, L, GN), c = dequantized(a.C, Bt, L, GN);
  s.u = u.data(), s.u_batch_stride = L * D, s.u_token_stride = D;
  s.B = b.data(), s.B_batch_stride = L * GN, s.B_token_stride = GN;
  s.C = c.data(), s.C_batch_stride = L * GN, s.C_token_stride = GN;
  return emulate::selective_scan(s);
}

cudaError_t ssd_chunk_scan_q8(const SsdChunkScanQ8Args& a) {
  SsdChunkScanArgs s = a.ssd;
  const int64_t T = s.tokens, D = s.nheads * s.headdim, GN = s.ngroups * s.dstate;
  std::vector<float> x = dequantized({a.x.q, 0, a.x.token_stride, a.x.scale}, 1, T, D);
  std::vector<float> b = dequantized({a.B.q, 0, a.B.token_stride, a.B.scale}, 1, T, GN);
  std::vector<float> c = dequantized({a.C.q, 0, a.C.token_stride, a.C.scale}, 1, T, GN);
  s.x = x.data(), s.x_stride = D, s.B = b.data(), s.B_stride = GN, s.C = c.data(), s.C_stride = GN;
  return emulate::ssd_chunk_scan(s);
}

cudaError_t kv_cache_append(const KvCacheAppendArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  for (int64_t t = 0; t < a.tokens; ++t)
    for (int64_t hk = 0; hk < a.cache.n_kv_heads; ++hk)
      for (int64_t d = 0; d < a.cache.head_dim; ++d) kv_append_point(a, t, hk, d);
  return cudaSuccess;
}

namespace {

// The tiled kernel, a block at a time: each step between its barriers for
// every thread, the warps' butterflies as fmaxf / tree_sum_host over the
// lanes (every lane of the device gets the same sums).
void attention_tiles(const PagedAttentionArgs& a) {
  const int64_t hd = a.cache.head_dim, dp = attn_tile_dp(hd);
  std::vector<float> smem((size_t)attn_tile_smem_floats(hd));
  const AttnTileSmem sm = attn_tile_smem(smem.data(), hd);
  std::vector<AttnTileLane> w((size_t)(kAttnTileWarps * 32));
  float sc[32], part[32];
  for (int64_t t0 = 0; t0 < a.tokens; t0 += kAttnTileQ)
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t hk = h / (a.n_heads / a.cache.n_kv_heads);
      const int64_t t1 = t0 + kAttnTileQ < a.tokens ? t0 + kAttnTileQ : a.tokens;
      const int64_t s0 = sequence_of(a.cu_seqlens_q, a.nseq, t0), s1 = sequence_of(a.cu_seqlens_q, a.nseq, t1 - 1);
      for (int64_t s = s0; s <= s1; ++s) {
        const AttnTileSeq q = attn_tile_seq(a, s, t0, t1);
        if (q.hi <= q.lo) continue;
        for (int64_t i = 0; i < kAttnTileQ * dp; ++i) attn_tile_load_q(a, h, t0, q, i, sm.q);
        for (auto& l : w) attn_tile_lane_init(l);
        for (int64_t k0 = 0; k0 < q.kend; k0 += kAttnTileK) {
          for (int64_t i = 0; i < kAttnTileK * dp; ++i) attn_tile_load_kv(a, s, hk, k0, q.kend, i, sm);
          for (int warp = 0; warp < kAttnTileWarps; ++warp) {
            AttnTileLane* lanes = w.data() + warp * 32;
            float* p = sm.p + warp * kAttnWarpQ * kAttnTileK;
            for (int qi = 0; qi < kAttnWarpQ; ++qi) {
              float mx = -INFINITY;
              for (int l = 0; l < 32; ++l) {
                sc[l] = attn_tile_lane_score(a, sm, q, t0, k0, warp, qi, l);
                mx = fmaxf(mx, sc[l]);
              }
              const float m_new = attn_tile_new_max(lanes[0], qi, mx), corr = attn_tile_corr(lanes[0], qi, m_new);
              for (int l = 0; l < 32; ++l) part[l] = p[qi * kAttnTileK + l] = attn_tile_p(sc[l], m_new);
              const float ps = tree_sum_host(part, 32);
              for (int l = 0; l < 32; ++l) attn_tile_rescale(lanes[l], qi, m_new, corr, ps);
            }
            const int nk = q.kend - k0 < kAttnTileK ? (int)(q.kend - k0) : kAttnTileK;
            for (int l = 0; l < 32; ++l) attn_tile_lane_pv(a, sm, warp, l, nk, lanes[l]);
          }
        }
        for (int warp = 0; warp < kAttnTileWarps; ++warp)
          for (int l = 0; l < 32; ++l) attn_tile_lane_store(a, q, t0, h, warp, l, w[(size_t)(warp * 32 + l)]);
      }
    }
}

}  // namespace

cudaError_t paged_attention(const PagedAttentionArgs& a, int method) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  const int m = attention_method(a, method);
  if (m == 0) return cudaErrorInvalidValue;
  if (m == 2) {
    attention_tiles(a);
    return cudaSuccess;
  }
  std::vector<AttnLane> w(kAttnLanes);
  float part[kAttnLanes];
  AttnSplitSmem sm;
  for (int64_t t = 0; t < a.tokens; ++t)
    for (int64_t h = 0; h < a.n_heads; ++h) {  // block (t, h)
      for (int warp = 0; warp < kAttnSplitWarps; ++warp) {
        for (int l = 0; l < kAttnLanes; ++l) attn_lane_begin(a, t, h, l, w[(size_t)l]);
        int64_t p0, p1;
        attn_split_range(w[0].npos, warp, p0, p1);
        for (int64_t pos = p0; pos < p1; ++pos) {
          for (int l = 0; l < kAttnLanes; ++l) part[l] = attn_lane_score(a, w[(size_t)l], pos, l);
          const float sc = tree_sum_host(part, kAttnLanes);
          for (int l = 0; l < kAttnLanes; ++l) attn_lane_update(a, w[(size_t)l], pos, l, sc);
        }
        for (int l = 0; l < kAttnLanes; ++l) attn_split_stage(w[(size_t)l], warp, l, sm);
      }
      for (int l = 0; l < kAttnLanes; ++l) attn_split_finish(a, sm, t, h, l);
    }
  return cudaSuccess;
}

cudaError_t rope(const RopeArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  for (int64_t t = 0; t < a.tokens; ++t)
    for (int64_t h = 0; h < a.n_heads; ++h)
      for (int64_t i = 0; i < a.rotary_dim / 2; ++i) rope_point(a, t, h, i);
  return cudaSuccess;
}

cudaError_t selective_state_update(const SelectiveStateUpdateArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  state_update_kernel(a, UpdateFloatOperands::of(a));
  return cudaSuccess;
}

namespace {

// Every row n of the GEMV: its warp's (or, split, its warps') lane
// partials, each warp's tree, the warps' sum, the store.
template <DType WT, int C>
void gemv_rows(const LinearArgs& a) {
  constexpr int MB = (int)kGemvMaxRows;
  const int W = gemv_row_warps(a, C);
  float acc[MB], p[MB][kWarpSize], ws[MB][kGemvWarps];
  for (int64_t n = 0; n < a.N; ++n) {
    for (int w = 0; w < W; ++w) {
      for (int l = 0; l < kWarpSize; ++l) {
        gemv_lane_partial<WT, C, MB>(a, n, (int64_t)w * kWarpSize + l, (int64_t)W * kWarpSize, 0, acc);
        for (int m = 0; m < MB; ++m) p[m][l] = acc[m];
      }
      for (int m = 0; m < MB; ++m) ws[m][w] = tree_sum_host(p[m], kWarpSize);
    }
    for (int64_t m = 0; m < a.M; ++m) gemv_store(a, m, n, gemv_warps_sum(ws[m], W));
  }
}

// The SIMT GEMM (M > 16, cuda/linear_gemm.cu): its 64 x 64 output tiles and
// 32-wide k tiles through the same loaders, each output's fmaf chain in
// ascending k (zeros past K included).
template <DType WT>
void gemm_simt(const LinearArgs& a) {
  constexpr int T = 64, KT = 32;
  std::vector<float> xs(T * KT), ws(T * KT), acc(T * T);
  for (int64_t m0 = 0; m0 < a.M; m0 += T)
    for (int64_t n0 = 0; n0 < a.N; n0 += T) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t k0 = 0; k0 < a.K; k0 += KT) {
        const int len = a.K - k0 < KT ? (int)(a.K - k0) : KT;
        float v[KT];
        for (int r = 0; r < T; ++r) {
          if (m0 + r < a.M) gemv_load_x<KT>(a, m0 + r, k0, len, 0, v);
          else std::fill(v, v + KT, 0.0f);
          std::copy(v, v + KT, xs.begin() + r * KT);
          if (n0 + r < a.N) gemv_load_w<WT, KT>(a, n0 + r, k0, len, 0, v);
          else std::fill(v, v + KT, 0.0f);
          std::copy(v, v + KT, ws.begin() + r * KT);
        }
        for (int kk = 0; kk < KT; ++kk)
          for (int i = 0; i < T; ++i)
            for (int j = 0; j < T; ++j)
              acc[(size_t)(i * T + j)] = fmaf(xs[(size_t)(i * KT + kk)], ws[(size_t)(j * KT + kk)], acc[(size_t)(i * T + j)]);
      }
      for (int i = 0; i < T && m0 + i < a.M; ++i)
        for (int j = 0; j < T && n0 + j < a.N; ++j) gemv_store(a, m0 + i, n0 + j, acc[(size_t)(i * T + j)]);
    }
}

// The pipelined tensor-core GEMMs (cuda/linear_gemm.cu gemm_bf16_mma_kernel,
// cuda/qlinear_gemm.cu qgemm_int8_mma_kernel), lane by lane: the staged rows,
// each k tile's 16-byte copies as mma_chunk places them (zero-filled past the
// bytes read), ldmatrix.x4 from the lanes' row addresses, mma.sync from the
// fragments, the accumulators stored at mma_c_row / mma_c_col. ldmatrix and
// mma follow the PTX ISA's layouts (below), not the kernels' code: a wrong
// address or a wrong fragment order in the kernels' functions shows here as a
// wrong result. (The stages of the pipeline are not emulated: one tile at a
// time.)

// ldmatrix.m8n8.x4.b16: lanes 8q .. 8q + 7 give the row addresses of matrix
// q; lane t receives in register q the two 16-bit elements (row t / 4,
// columns 2 (t % 4) and + 1) of matrix q, the lower column in the low half.
void emulate_ldmatrix_x4(const uint16_t* smem, const int (&addr)[32], uint32_t (&r)[32][4]) {
  for (int t = 0; t < 32; ++t)
    for (int q = 0; q < 4; ++q) {
      const uint16_t* row = smem + addr[8 * q + t / 4];
      r[t][q] = (uint32_t)row[2 * (t % 4)] | ((uint32_t)row[2 * (t % 4) + 1] << 16);
    }
}

float bf16_elem(uint32_t reg, int e) { return bits_to_float((e ? reg >> 16 : reg & 0xffffu) << 16); }
float f16_elem(uint32_t reg, int e) { return half_bits_to_float((uint16_t)(e ? reg >> 16 : reg & 0xffffu)); }
int32_t s8_elem(uint32_t reg, int e) { return (int32_t)(int8_t)(reg >> (8 * e)); }

// mma.sync.m16n8kK.row.col, D = A B + C, for the warp's registers, with E =
// K / 8 elements per register (2 bf16 / f16, 4 s8; elem(reg, e) the e-th,
// lowest first): with g = t / 4 and c = t % 4, A[g][E c + e] = a0,
// A[g + 8][E c + e] = a1, A[g][E c + K/2 + e] = a2, A[g + 8][E c + K/2 + e] =
// a3; B[E c + e][g] = b0, B[E c + K/2 + e][g] = b1; C / D[g][2c + q] = d0,
// d1 and C / D[g + 8][2c + q] = d2, d3. Float accumulators take each product
// by fmaf in k order, int32 ones exactly.
template <int K, class Acc, class Elem>
void emulate_mma(const uint32_t (&af)[32][4], const uint32_t (&b0)[32], const uint32_t (&b1)[32], Acc (&d)[32][4],
                 Elem elem) {
  constexpr int E = K / 8;
  Acc A[16][K], B[K][8];
  for (int t = 0; t < 32; ++t) {
    const int g = t / 4, c = t % 4;
    for (int e = 0; e < E; ++e) {
      A[g][E * c + e] = elem(af[t][0], e);
      A[g + 8][E * c + e] = elem(af[t][1], e);
      A[g][E * c + K / 2 + e] = elem(af[t][2], e);
      A[g + 8][E * c + K / 2 + e] = elem(af[t][3], e);
      B[E * c + e][g] = elem(b0[t], e);
      B[E * c + K / 2 + e][g] = elem(b1[t], e);
    }
  }
  for (int t = 0; t < 32; ++t) {
    const int g = t / 4, c = t % 4;
    for (int q = 0; q < 4; ++q) {
      const int row = g + (q / 2) * 8, col = 2 * c + q % 2;
      Acc v = d[t][q];
      for (int k = 0; k < K; ++k) {
        if constexpr (std::is_same_v<Acc, float>) v = fmaf(A[row][k], B[k][col], v);
        else v += A[row][k] * B[k][col];
      }
      d[t][q] = v;
    }
  }
}

// The three instructions: m16n8k16 bf16 / f16 (f32 accumulators) and
// m16n8k32 s8 (s32).
template <bool F16>
void emulate_mma_16816(const uint32_t (&af)[32][4], const uint32_t (&b0)[32], const uint32_t (&b1)[32],
                       float (&d)[32][4]) {
  emulate_mma<16>(af, b0, b1, d, F16 ? f16_elem : bf16_elem);
}
void emulate_mma_16832_s8(const uint32_t (&af)[32][4], const uint32_t (&b0)[32], const uint32_t (&b1)[32],
                          int32_t (&d)[32][4]) {
  emulate_mma<32>(af, b0, b1, d, s8_elem);
}

// m16n8k8 tf32 (f32 accumulators): a register holds one element.
float tf32_elem(uint32_t reg, int) { return bits_to_float(reg); }

// ssd.cu's warp_mma_tf32x3, lane by lane: acc[j] += A B over `ksteps` k
// steps of 8, for the n8 tiles j < tiles, each product in three tf32 terms
// (the small ones first).
template <int kMaxTiles>
void warp_mma_tf32x3(float (&acc)[kMaxTiles][32][4], const SmemMat& A, const SmemMat& B, int m0, int ksteps,
                     int tiles) {
  for (int ks = 0; ks < ksteps; ++ks) {
    uint32_t ah[32][4], al[32][4];
    for (int l = 0; l < 32; ++l) tf32_frag_a(A, m0, ks * 8, l, ah[l], al[l]);
    for (int j = 0; j < kMaxTiles && j < tiles; ++j) {
      uint32_t bh0[32], bh1[32], bl0[32], bl1[32];
      for (int l = 0; l < 32; ++l) {
        uint32_t hi[2], lo[2];
        tf32_frag_b(B, ks * 8, j * 8, l, hi, lo);
        bh0[l] = hi[0], bh1[l] = hi[1], bl0[l] = lo[0], bl1[l] = lo[1];
      }
      emulate_mma<8>(al, bh0, bh1, acc[j], tf32_elem);
      emulate_mma<8>(ah, bl0, bl1, acc[j], tf32_elem);
      emulate_mma<8>(ah, bh0, bh1, acc[j], tf32_elem);
    }
  }
}

// The chunks (cuda/ssd.cu ssd_chunks_launch): the table, every (chunk,
// head) block of the state kernel, the passing, every block of the output
// kernel, warp by warp between the barriers. Shared memory starts each
// block as NaN, so that a read of anything the block did not stage shows.
void ssd_mma_chunks(const SsdChunkScanArgs& a) {
  const SsdChunkLayout L = ssd_chunk_layout(a);
  std::vector<float> buf((size_t)(ssd_chunks_workspace_bytes(a) + 3) / 4);
  const SsdChunkWs ws = ssd_chunk_ws(a, buf.data());
  ssd_chunk_table(a, ws.table);
  const int64_t chunks = ssd_chunks_max(a), ratio = a.nheads / a.ngroups;
  std::vector<float> smem((size_t)std::max(L.out_floats, L.state_floats));
  float* sm = smem.data();
  auto fresh = [&] { std::fill(smem.begin(), smem.end(), NAN); };
  SsdChunk c;
  if (a.tokens > 0)
    for (int64_t j = 0; j < chunks; ++j)
      for (int64_t h = 0; h < a.nheads; ++h) {
        if (!ssd_chunk_at(a, ws.table, j, c)) continue;
        fresh();
        float *dt = sm + L.sdt, *cum = sm + L.scum;
        for (int i = 0; i < kSsdQ; ++i) ssd_chunk_dt(a, c, h, i, dt);
        ssd_chunk_cumsum(a, h, dt, cum);
        for (int i = 0; i < kSsdQ; ++i) dt[i] = ssd_chunk_weight(dt, cum, i);
        for (int64_t i = 0; i < kSsdQ * L.np; ++i)
          ssd_stage(sm + L.sb, L.ldb, L.np, a.B + (h / ratio) * a.dstate, a.B_stride, c, a.dstate, nullptr, i);
        for (int64_t i = 0; i < kSsdQ * L.pp; ++i)
          ssd_stage(sm + L.sw, L.ldw, L.pp, a.x + h * a.headdim, a.x_stride, c, a.headdim, dt, i);
        const SmemMat Bt{sm + L.sb, 1, L.ldb}, WX{sm + L.sw, L.ldw, 1};
        const int ksteps = (int)((c.len + 7) / 8), ptiles = (int)(L.pp / 8);
        float* S = ws.h + (j * a.nheads + h) * a.headdim * a.dstate;
        for (int mt = 0; mt < L.np / 16; ++mt) {
          float acc[kSsdChunkMaxPTiles][32][4] = {};
          warp_mma_tf32x3(acc, Bt, WX, mt * 16, ksteps, ptiles);
          for (int jt = 0; jt < ptiles; ++jt)
            for (int l = 0; l < 32; ++l)
              for (int q = 0; q < 4; ++q) {
                const int64_t n = mt * 16 + tf32_c_row(l, q), p = jt * 8 + tf32_c_col(l, q);
                if (n < a.dstate && p < a.headdim) S[p * a.dstate + n] = acc[jt][l][q];
              }
        }
        ws.decay[j * a.nheads + h] = scan_exp2(cum[kSsdQ - 1]);
      }
  for (int64_t i = 0; i < a.nseq * a.nheads * a.headdim * a.dstate; ++i) ssd_chunk_pass(a, ws, i);
  if (a.tokens == 0) return;
  const int ntiles = (int)(L.np / 8), ptiles = (int)(L.pp / 8);
  for (int64_t j = 0; j < chunks; ++j)
    for (int64_t h = 0; h < a.nheads; ++h) {
      if (!ssd_chunk_at(a, ws.table, j, c)) continue;
      fresh();
      const int64_t g = h / ratio;
      float *dt = sm + L.dt, *cum = sm + L.cum;
      for (int i = 0; i < kSsdQ; ++i) ssd_chunk_dt(a, c, h, i, dt);
      ssd_chunk_cumsum(a, h, dt, cum);
      for (int64_t i = 0; i < kSsdQ * L.np; ++i) {
        ssd_stage(sm + L.c, L.ldn, L.np, a.C + g * a.dstate, a.C_stride, c, a.dstate, nullptr, i);
        ssd_stage(sm + L.bh, L.ldn, L.np, a.B + g * a.dstate, a.B_stride, c, a.dstate, nullptr, i);
      }
      for (int64_t i = 0; i < kSsdQ * L.pp; ++i)
        ssd_stage(sm + L.x, L.ldx, L.pp, a.x + h * a.headdim, a.x_stride, c, a.headdim, nullptr, i);
      const SmemMat Cm{sm + L.c, L.ldn, 1}, Bm{sm + L.bh, 1, L.ldn};
      for (int w = 0; w < kSsdChunkWarps; ++w) {
        const int m0 = 16 * w, stiles = 2 * w + 2;
        if (m0 >= c.len) continue;
        float acc[kSsdQTiles][32][4] = {};
        warp_mma_tf32x3(acc, Cm, Bm, m0, ntiles, stiles);
        for (int jt = 0; jt < stiles; ++jt)
          for (int l = 0; l < 32; ++l)
            for (int q = 0; q < 4; ++q) {
              const int t = m0 + tf32_c_row(l, q), s = jt * 8 + tf32_c_col(l, q);
              sm[L.g + t * L.ldq + s] = ssd_chunk_score(acc[jt][l][q], dt, cum, t, s);
            }
      }
      const bool carry = !c.first || a.initial_states;
      if (carry)
        for (int64_t i = 0; i < L.pp * L.np; ++i)
          ssd_stage_h(a, L, sm + L.bh, ws.h + (j * a.nheads + h) * a.headdim * a.dstate, i);
      const SmemMat Hm{sm + L.bh, 1, L.ldn}, Gm{sm + L.g, L.ldq, 1}, Xm{sm + L.x, L.ldx, 1};
      for (int w = 0; w < kSsdChunkWarps; ++w) {
        const int m0 = 16 * w, stiles = 2 * w + 2;
        if (m0 >= c.len) continue;
        float y[kSsdChunkMaxPTiles][32][4] = {};
        if (carry) {
          warp_mma_tf32x3(y, Cm, Hm, m0, ntiles, ptiles);
          for (int l = 0; l < 32; ++l) {
            const float e0 = scan_exp2(cum[m0 + tf32_c_row(l, 0)]), e1 = scan_exp2(cum[m0 + tf32_c_row(l, 2)]);
            for (int jt = 0; jt < kSsdChunkMaxPTiles; ++jt)
              y[jt][l][0] *= e0, y[jt][l][1] *= e0, y[jt][l][2] *= e1, y[jt][l][3] *= e1;
          }
        }
        warp_mma_tf32x3(y, Gm, Xm, m0, stiles, ptiles);
        for (int jt = 0; jt < ptiles; ++jt)
          for (int l = 0; l < 32; ++l)
            for (int q = 0; q < 4; ++q) {
              const int t = m0 + tf32_c_row(l, q);
              const int64_t p = jt * 8 + tf32_c_col(l, q);
              if (t < c.len && p < a.headdim) ssd_chunk_write(a, c, h, t, p, y[jt][l][q]);
            }
      }
    }
}

// The accumulators of a block tile: [warp][m16 tile i][n8 tile j][lane][register q].
template <class Acc>
using MmaTileAcc = Acc[kMmaThreads / 32][4][4][32][4];

// Runs the block tiles of an M x N x K GEMM from staged A [M, a_ld] and W
// [N, w_ld] (elements of eb bytes): per block tile, acc starts at 0, each k
// tile runs each warp's 32-byte k steps (ldmatrix, then mma(af, b0, b1, d)
// per m16 x n8 tile, then after_step(warp, b, m0, n0, acc[warp]) with b the
// step's index along K), then after_tile(kt, KT, m0, n0, acc); at the end
// store(m0, n0, acc).
template <class Acc, class Mma, class AfterStep, class AfterTile, class Store>
void emulate_mma_gemm(int64_t M, int64_t N, int64_t K, const void* A, int64_t a_ld, const void* W, int64_t w_ld,
                      int eb, Mma mma, AfterStep after_step, AfterTile after_tile, Store store) {
  static MmaTileAcc<Acc> acc;
  std::vector<uint16_t> st((size_t)(kMmaStageBytes / 2));
  const int64_t tile_k = kMmaTileKBytes / eb, KT = (K + tile_k - 1) / tile_k;
  for (int64_t m0 = 0; m0 < M; m0 += kMmaTileM)
    for (int64_t n0 = 0; n0 < N; n0 += kMmaTileN) {
      std::memset(acc, 0, sizeof acc);
      for (int64_t kt = 0; kt < KT; ++kt) {
        std::fill(st.begin(), st.end(), (uint16_t)0x7fc1);  // unwritten shared memory: NaN bf16s, odd int8s
        uint8_t* sb = reinterpret_cast<uint8_t*>(st.data());
        for (int tid = 0; tid < kMmaThreads; ++tid)
          for (int i = 0; i < kMmaChunks / kMmaThreads; ++i) {
            const MmaChunk ch = mma_chunk(tid + i * kMmaThreads, m0, n0, kt * tile_k, M, N, K, a_ld, w_ld, eb);
            const uint8_t* src = static_cast<const uint8_t*>(ch.is_b ? W : A) + ch.src;
            for (int e = 0; e < 16; ++e) sb[ch.smem + e] = e < ch.bytes ? src[e] : 0;
          }
        for (int warp = 0; warp < kMmaThreads / 32; ++warp) {
          const int wm = warp / 4, wn = warp % 4;
          for (int kk = 0; kk < kMmaTileKBytes / 2; kk += 16) {
            static uint32_t af[4][32][4], bf[2][32][4];
            int addr[32];
            for (int i = 0; i < 4; ++i) {
              for (int l = 0; l < 32; ++l) addr[l] = mma_a_offset(wm, i, kk, l);
              emulate_ldmatrix_x4(st.data(), addr, af[i]);
            }
            for (int jp = 0; jp < 2; ++jp) {
              for (int l = 0; l < 32; ++l) addr[l] = mma_b_offset(wn, jp, kk, l);
              emulate_ldmatrix_x4(st.data(), addr, bf[jp]);
            }
            for (int i = 0; i < 4; ++i)
              for (int j = 0; j < 4; ++j) {
                uint32_t b0[32], b1[32];
                for (int l = 0; l < 32; ++l) b0[l] = bf[j / 2][l][(j % 2) * 2], b1[l] = bf[j / 2][l][(j % 2) * 2 + 1];
                mma(af[i], b0, b1, acc[warp][i][j]);
              }
            after_step(warp, kt * (kMmaTileKBytes / 32) + kk / 16, m0, n0, acc[warp]);
          }
        }
        after_tile(kt, KT, m0, n0, acc);
      }
      store(m0, n0, acc);
    }
}

template <class Acc>
void no_step(int, int64_t, int64_t, int64_t, Acc (&)[4][4][32][4]) {}
template <class Acc>
void no_tile(int64_t, int64_t, int64_t, int64_t, MmaTileAcc<Acc>&) {}

// f(w, i, j, l, q, m, n) for each accumulator of block tile (m0, n0) of
// registers q < qs (4: all; 2: c0, c1), m and n its output row (of the staged
// rows) and column.
template <class F>
void for_each_acc(int64_t m0, int64_t n0, int qs, F f) {
  for (int w = 0; w < kMmaThreads / 32; ++w)
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l)
          for (int q = 0; q < qs; ++q) f(w, i, j, l, q, mma_out_row(m0, w, i, l, q), mma_out_col(n0, w, j, l, q));
}

void gemm_bf16_mma(const LinearArgs& a) {
  const int64_t a_ld = mma_a_ld(a.K);
  std::vector<uint16_t> xb((size_t)(a.M * a_ld));
  for (int64_t m = 0; m < a.M; ++m)
    for (int64_t k = 0; k < a_ld; ++k) xb[(size_t)(m * a_ld + k)] = k < a.K ? mma_bf16_bits(x_row(a, m)[k]) : 0;
  emulate_mma_gemm<float>(
      a.M, a.N, a.K, xb.data(), a_ld, a.w, a.w_stride, 2, emulate_mma_16816<false>, no_step<float>, no_tile<float>,
      [&](int64_t m0, int64_t n0, MmaTileAcc<float>& acc) {
        for_each_acc(m0, n0, 4, [&](int w, int i, int j, int l, int q, int64_t m, int64_t n) {
          if (m < a.M && n < a.N) gemv_store(a, m, n, acc[w][i][j][l][q]);
        });
      });
}

// f16 weights with float inputs (cuda/linear_gemm.cu gemm_f16_mma_kernel):
// the staged hi / lo rows, the warps' f16 mma steps, each output the sum of
// its hi and lo accumulators over s_m.
void gemm_f16_mma(const LinearArgs& a) {
  const int64_t M2 = f16split_rows(a.M), a_ld = mma_ld(a.K, 2);
  std::vector<uint16_t> xs((size_t)(M2 * a_ld));
  std::vector<float> scale((size_t)a.M);
  f16split_stage_host(a, xs.data(), a_ld, scale.data());
  emulate_mma_gemm<float>(
      M2, a.N, a.K, xs.data(), a_ld, a.w, a.w_stride, 2, emulate_mma_16816<true>, no_step<float>, no_tile<float>,
      [&](int64_t m0, int64_t n0, MmaTileAcc<float>& acc) {
        for_each_acc(m0, n0, 2, [&](int w, int i, int j, int l, int q, int64_t R, int64_t n) {
          const int64_t m = f16split_x_row(R);
          if (m < a.M && n < a.N)
            gemv_store(a, m, n, (acc[w][i][j][l][q] + acc[w][i][j][l][q + 2]) * (1.0f / scale[(size_t)m]));
        });
      });
}

// Q8_0 / Q4_0 weights with Q8Block inputs (cuda/linear_gemm.cu
// gemm_q8_mma_kernel): the staged int8 rows and block scales, the warps' mma
// steps, each k32 step folded into the float sums with its blocks' scales.
template <DType WT>
void gemm_q8_mma(const LinearArgs& a) {
  const int64_t KB = a.K / kQ8Block;
  std::vector<int8_t> xq((size_t)(a.M * a.K)), w8((size_t)(a.N * a.K));
  std::vector<float> dx((size_t)(a.M * KB)), dw((size_t)(a.N * KB));
  for (int64_t m = 0; m < a.M; ++m)
    for (int64_t b = 0; b < KB; ++b) {
      int8_t q[kQ8Block];
      dx[(size_t)(m * KB + b)] = q8block_stage_x(a, m, b, q);
      std::memcpy(&xq[(size_t)(m * a.K + b * kQ8Block)], q, kQ8Block);
    }
  for (int64_t n = 0; n < a.N; ++n)
    for (int64_t b = 0; b < KB; ++b) {
      int8_t q[kQ8Block];
      dw[(size_t)(n * KB + b)] = ggml_stage_w<WT>(a, n, b, q);
      std::memcpy(&w8[(size_t)(n * a.K + b * kQ8Block)], q, kQ8Block);
    }
  static MmaTileAcc<float> f;
  emulate_mma_gemm<int32_t>(
      a.M, a.N, a.K, xq.data(), a.K, w8.data(), a.K, 1, emulate_mma_16832_s8,
      [&](int w, int64_t b, int64_t m0, int64_t n0, int32_t (&acc)[4][4][32][4]) {
        if (b >= KB) return;
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 32; ++l)
              for (int q = 0; q < 4; ++q) {
                const int64_t m = mma_out_row(m0, w, i, l, q), n = mma_out_col(n0, w, j, l, q);
                const float sx = m < a.M ? dx[(size_t)(m * KB + b)] : 0.0f, sw = n < a.N ? dw[(size_t)(n * KB + b)] : 0.0f;
                f[w][i][j][l][q] = q8_block_step(f[w][i][j][l][q], acc[i][j][l][q], sx, sw);
                acc[i][j][l][q] = 0;
              }
      },
      no_tile<int32_t>,
      [&](int64_t m0, int64_t n0, MmaTileAcc<int32_t>&) {
        for_each_acc(m0, n0, 4, [&](int w, int i, int j, int l, int q, int64_t m, int64_t n) {
          if (m < a.M && n < a.N) gemv_store(a, m, n, f[w][i][j][l][q]);
        });
        std::memset(f, 0, sizeof f);  // the next block tile's sums start at 0
      });
}

// The integer Q8_0 / Q4_0 GEMV: the block's staging (every thread block
// stages the same values), then every warp's lanes, tree and store.
template <DType WT>
void gemv_q8(const LinearArgs& a) {
  constexpr int MB = (int)kGemvMaxRows;
  const int64_t nb = a.K / kQ8Block;
  std::vector<uint32_t> sx((size_t)(gemv_q8_x_bytes(a) / 4));
  std::vector<float> sd((size_t)(a.M * nb));
  for (int64_t i = 0; i < a.M * nb; ++i) gemv_q8_stage(a, i / nb, i % nb, sx.data(), sd.data());
  float f[MB], p[MB][kWarpSize];
  for (int64_t n = 0; n < a.N; ++n) {
    for (int l = 0; l < kWarpSize; ++l) {
      gemv_q8_lane_partial<WT, MB>(a, n, l, 0, sx.data(), sd.data(), f);
      for (int m = 0; m < MB; ++m) p[m][l] = f[m];
    }
    for (int64_t m = 0; m < a.M; ++m) gemv_store(a, m, n, tree_sum_host(p[m], kWarpSize));
  }
}

template <DType WT>
void gemv_plain(const LinearArgs& a) {
  if (gemv_chunk(WT, a.x_rounding) == 32) gemv_rows<WT, 32>(a);
  else gemv_rows<WT, 8>(a);
}

}  // namespace

cudaError_t linear_gemm_simt(const LinearArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  switch (a.w_dtype) {
    case DType::F32: gemm_simt<DType::F32>(a); break;
    case DType::F16: gemm_simt<DType::F16>(a); break;
    case DType::BF16: gemm_simt<DType::BF16>(a); break;
    case DType::Q8_0: gemm_simt<DType::Q8_0>(a); break;
    case DType::Q4_0: gemm_simt<DType::Q4_0>(a); break;
    default: return cudaErrorNotSupported;
  }
  return cudaSuccess;
}

cudaError_t linear(const LinearArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  if (a.M > kGemvMaxRows) {
    // bf16 on the tensor cores: the pipelined mma.sync kernel is emulated
    // lane by lane; the WMMA one (W not 16-byte aligned) is not.
    if (a.w_dtype == DType::BF16 && a.x_rounding == ActRounding::BF16) {
      if (!mma_usable(a)) return cudaErrorNotSupported;
      gemm_bf16_mma(a);
      return cudaSuccess;
    }
    // f16 with float inputs: the f16 tensor-core GEMM on split inputs.
    if (a.w_dtype == DType::F16 && a.x_rounding == ActRounding::None && mma_usable(a)) {
      gemm_f16_mma(a);
      return cudaSuccess;
    }
    // Q8_0 / Q4_0 with Q8Block inputs: the int8 tensor-core GEMM, lane by lane.
    if (a.x_rounding == ActRounding::Q8Block && a.w_dtype == DType::Q8_0) {
      gemm_q8_mma<DType::Q8_0>(a);
      return cudaSuccess;
    }
    if (a.x_rounding == ActRounding::Q8Block && a.w_dtype == DType::Q4_0) {
      gemm_q8_mma<DType::Q4_0>(a);
      return cudaSuccess;
    }
    return linear_gemm_simt(a);
  }
  if (gemv_q8_usable(a)) {
    if (a.w_dtype == DType::Q8_0) gemv_q8<DType::Q8_0>(a);
    else gemv_q8<DType::Q4_0>(a);
    return cudaSuccess;
  }
  switch (a.w_dtype) {
    case DType::F32: gemv_plain<DType::F32>(a); break;
    case DType::F16: gemv_plain<DType::F16>(a); break;
    case DType::BF16: gemv_plain<DType::BF16>(a); break;
    case DType::Q8_0: gemv_rows<DType::Q8_0, 32>(a); break;
    case DType::Q4_0: gemv_rows<DType::Q4_0, 32>(a); break;
    default: return cudaErrorNotSupported;
  }
  return cudaSuccess;
}

namespace {

// The quantized GEMM (M > 16, cuda/qlinear_gemm.cu), output by output: the
// exact integer sums, W4A8's group chain, W4A16's ascending-k fmaf chain.
void qgemm(const QLinearArgs& a, float inv) {
  const int64_t G = (a.K + kI4Group - 1) / kI4Group;
  for (int64_t m = 0; m < a.M; ++m) {
    bool nan = false;
    std::vector<int32_t> xq((size_t)a.K);
    if (a.x_scale > 0.0f)
      for (int64_t k = 0; k < a.K; ++k)
        xq[(size_t)k] = a.xq ? (int32_t)a.xq[m * a.xq_stride + k] : quantize_x(x_row(a, m)[k], inv, nan);
    for (int64_t n = 0; n < a.N; ++n) {
      if (a.w_dtype == DType::I8) {
        int32_t sum = 0;
        for (int64_t k = 0; k < a.K; ++k) sum += qweight_value(a, n, k) * xq[(size_t)k];
        w8a8_store(a, m, n, sum, nan);
      } else if (a.x_scale > 0.0f) {
        float f = 0.0f;
        for (int64_t g = 0; g < G; ++g) {
          int32_t sum = 0;
          for (int64_t k = g * kI4Group; k < (g + 1) * kI4Group && k < a.K; ++k) sum += qweight_value(a, n, k) * xq[(size_t)k];
          f = w4a8_step(f, sum, a.w_scales[n * G + g]);
        }
        w4a8_store(a, m, n, f, nan);
      } else {
        float acc = 0.0f;
        for (int64_t k = 0; k < a.K; ++k) {
          const float w = a.w_scales[n * G + k / kI4Group] * nibble_minus_8((uint32_t)(qweight_value(a, n, k) + 8));
          acc = fmaf(w, x_row(a, m)[k], acc);
        }
        w4a16_store(a, m, n, acc);
      }
    }
  }
}

// The int8 tensor-core GEMM (cuda/qlinear_gemm.cu qgemm_int8_mma_kernel):
// its staging, the warps' mma steps, W4A8's group chain after each group's
// k tiles, the stores.
void qgemm_int8_mma(const QLinearArgs& a, float inv) {
  const int64_t a_ld = mma_ld(a.K, 1), w_ld = qmma_w_in_place(a) ? a.w_stride : mma_ld(a.K, 1);
  const int64_t G = (a.K + kI4Group - 1) / kI4Group;
  std::vector<int8_t> xq((size_t)(a.M * a_ld)), w8;
  std::vector<int> nan_rows((size_t)a.M, 0);
  for (int64_t m = 0; m < a.M; ++m) {
    bool nan = false;
    for (int64_t k = 0; k < a_ld; ++k) xq[(size_t)(m * a_ld + k)] = qmma_stage_x(a, m, k, inv, nan);
    nan_rows[(size_t)m] = nan;
  }
  const void* W = a.w;
  if (!qmma_w_in_place(a)) {
    w8.resize((size_t)(a.N * w_ld));
    for (int64_t n = 0; n < a.N; ++n)
      for (int64_t k = 0; k < w_ld; ++k) w8[(size_t)(n * w_ld + k)] = qmma_stage_w(a, n, k);
    W = w8.data();
  }
  const bool i4 = a.w_dtype == DType::I4;
  static MmaTileAcc<float> f;
  emulate_mma_gemm<int32_t>(
      a.M, a.N, a.K, xq.data(), a_ld, W, w_ld, 1, emulate_mma_16832_s8, no_step<int32_t>,
      [&](int64_t kt, int64_t KT, int64_t m0, int64_t n0, MmaTileAcc<int32_t>& acc) {
        if (!i4 || !qmma_group_ends(kt, KT)) return;
        const int64_t g = kt / kQMmaTilesPerGroup;
        for_each_acc(m0, n0, 4, [&](int w, int i, int j, int l, int q, int64_t m, int64_t n) {
          const float sc = n < a.N ? a.w_scales[n * G + g] : 0.0f;
          f[w][i][j][l][q] = w4a8_step(f[w][i][j][l][q], acc[w][i][j][l][q], sc);
          acc[w][i][j][l][q] = 0;
        });
      },
      [&](int64_t m0, int64_t n0, MmaTileAcc<int32_t>& acc) {
        for_each_acc(m0, n0, 4, [&](int w, int i, int j, int l, int q, int64_t m, int64_t n) {
          if (m >= a.M || n >= a.N) return;
          if (i4) w4a8_store(a, m, n, f[w][i][j][l][q], nan_rows[(size_t)m] != 0);
          else w8a8_store(a, m, n, acc[w][i][j][l][q], nan_rows[(size_t)m] != 0);
        });
        std::memset(f, 0, sizeof f);  // the next block tile's chains start at 0
      });
}

// W4A16 on the f16 tensor cores (cuda/qlinear_gemm.cu qgemm_w4a16_mma_kernel):
// the split inputs, the widened weights, the group chain on both partial
// sums after each group's four k tiles, y = (f_hi + f_lo) / s_m.
void qgemm_w4a16_mma(const QLinearArgs& a) {
  const int64_t M2 = f16split_rows(a.M), a_ld = mma_ld(a.K, 2), w_ld = mma_ld(a.K, 2);
  const int64_t G = (a.K + kI4Group - 1) / kI4Group;
  std::vector<uint16_t> xs((size_t)(M2 * a_ld)), w16((size_t)(a.N * w_ld));
  std::vector<float> scale((size_t)a.M);
  f16split_stage_host(a, xs.data(), a_ld, scale.data());
  for (int64_t n = 0; n < a.N; ++n)
    for (int64_t k = 0; k < w_ld; ++k) w16[(size_t)(n * w_ld + k)] = qmma_stage_w_f16(a, n, k);
  static MmaTileAcc<float> f;
  emulate_mma_gemm<float>(
      M2, a.N, a.K, xs.data(), a_ld, w16.data(), w_ld, 2, emulate_mma_16816<true>, no_step<float>,
      [&](int64_t kt, int64_t KT, int64_t m0, int64_t n0, MmaTileAcc<float>& acc) {
        if (!qmma_w4a16_group_ends(kt, KT)) return;
        const int64_t g = kt / kQMmaF16TilesPerGroup;
        for_each_acc(m0, n0, 4, [&](int w, int i, int j, int l, int q, int64_t m, int64_t n) {
          const float sc = n < a.N ? a.w_scales[n * G + g] : 0.0f;
          f[w][i][j][l][q] = fmaf(acc[w][i][j][l][q], sc, f[w][i][j][l][q]);
          acc[w][i][j][l][q] = 0.0f;
        });
      },
      [&](int64_t m0, int64_t n0, MmaTileAcc<float>&) {
        for_each_acc(m0, n0, 2, [&](int w, int i, int j, int l, int q, int64_t R, int64_t n) {
          const int64_t m = f16split_x_row(R);
          if (m < a.M && n < a.N)
            w4a16_store(a, m, n, (f[w][i][j][l][q] + f[w][i][j][l][q + 2]) * (1.0f / scale[(size_t)m]));
        });
        std::memset(f, 0, sizeof f);  // the next block tile's chains start at 0
      });
}

// qlinear.cu's qrows_kernel, block by block and warp-step by warp-step: the
// staged rows (and for I4 their group sums), the lanes' sums, the steps' (I8)
// or quads' (I4) sums, then each (weight row, input row)'s sum or chain.
template <int MB>
void qrows(const QLinearArgs& a, float inv, const QRowLayout& L) {
  const bool i4 = a.w_dtype != DType::I8;
  std::vector<int8_t> xs((size_t)(MB * L.Kpad), 0);
  std::vector<int32_t> xsum((size_t)(MB * L.G), 0), sums((size_t)(L.R * MB * L.stride), 0);
  uint32_t nan = 0;
  for (int64_t m = 0; m < a.M; ++m)
    for (int64_t k = 0; k < L.Kpad; ++k) {
      xs[(size_t)(m * L.Kpad + k)] = (int8_t)qx_value(a, m, k, inv, nan);
      if (i4) xsum[(size_t)(m * L.G + k / kI4Group)] += xs[(size_t)(m * L.Kpad + k)];
    }
  const uint8_t* w0 = static_cast<const uint8_t*>(a.w);
  for (int64_t n0 = 0; n0 < a.N; n0 += L.R) {  // block
    for (int i = 0; i < kQRowSteps; ++i) {  // warp-step
      int r, s;
      qrow_item((int)L.S, i, r, s);
      if (r >= L.R || n0 + r >= a.N) continue;
      int32_t lanes[kWarpSize][MB];
      for (int l = 0; l < kWarpSize; ++l) {
        uint32_t w[4];
        qrow_load(a, w0 + (n0 + r) * a.w_stride, s, l, 0, w);
        if (i4) qrow_i4_lane_sums<MB>(L, w, xs.data(), a.M, s, l, lanes[l]);
        else qrow_i8_lane_sums<MB>(L, w, xs.data(), a.M, s, l, lanes[l]);
      }
      for (int64_t m = 0; m < a.M; ++m) {
        int32_t* row = &sums[(size_t)((r * MB + m) * L.stride)];
        if (!i4) {
          int32_t t = 0;
          for (int l = 0; l < kWarpSize; ++l) t += lanes[l][m];
          row[s] = t;
          continue;
        }
        for (int j = 0; j < kW4A8StepGroups; ++j) {
          const int64_t g = (int64_t)s * kW4A8StepGroups + j;
          if (g < L.G)
            row[g] = qrow_i4_group_sum(lanes[4 * j][m] + lanes[4 * j + 1][m] + lanes[4 * j + 2][m] + lanes[4 * j + 3][m],
                                       xsum[(size_t)(m * L.G + g)]);
        }
      }
    }
    for (int64_t r = 0; r < L.R && n0 + r < a.N; ++r)  // thread (r, m)
      for (int64_t m = 0; m < a.M; ++m) {
        const int32_t* row = &sums[(size_t)((r * MB + m) * L.stride)];
        if (i4) {
          float f = 0.0f;
          for (int64_t g = 0; g < L.G; ++g) f = w4a8_step(f, row[g], a.w_scales[(n0 + r) * L.G + g]);
          w4a8_store(a, m, n0 + r, f, (nan >> m) & 1u);
        } else {
          int32_t sum = 0;
          for (int64_t s = 0; s < L.S; ++s) sum += row[s];
          w8a8_store(a, m, n0 + r, sum, (nan >> m) & 1u);
        }
      }
  }
}

}  // namespace

cudaError_t qlinear_gemm_simt(const QLinearArgs& args) {
  const Check c = check_args(args);
  if (c != Check::kValid) return status(c);
  QLinearArgs a = args;
  if (!(a.x_scale > 0.0f)) a.xq = nullptr;
  qgemm(a, a.x_scale > 0.0f ? 1.0f / a.x_scale : 0.0f);
  return cudaSuccess;
}

cudaError_t qlinear(const QLinearArgs& args) {
  const Check c = check_args(args);
  if (c != Check::kValid) return status(c);
  QLinearArgs a = args;
  if (!(a.x_scale > 0.0f)) a.xq = nullptr;
  const float inv = a.x_scale > 0.0f ? 1.0f / a.x_scale : 0.0f;
  if (a.M > kGemvMaxRows) {
    // The tensor-core GEMMs, lane by lane (as on sm_80+): W8A8 / W4A8 on
    // int8, W4A16 on f16.
    if (a.w_dtype == DType::I8 || a.x_scale > 0.0f) qgemm_int8_mma(a, inv);
    else qgemm_w4a16_mma(a);
    return cudaSuccess;
  }
  QRowLayout L;
  if (qrow_applies(a, L)) {  // qlinear.cu: launch_qrow
    const int MB = qrow_mb(a.M);
    if (MB == 1) qrows<1>(a, inv, L);
    else if (MB == 2) qrows<2>(a, inv, L);
    else if (MB == 4) qrows<4>(a, inv, L);
    else qrows<8>(a, inv, L);
    return cudaSuccess;
  }
  // W4A8 float inputs small enough to stage are quantized first, as the
  // device block stages them (qlinear.cu: stage_xq), with their NaN rows.
  std::vector<int8_t> staged;
  uint32_t staged_nan = 0;
  if (a.w_dtype != DType::I8 && a.x_scale > 0.0f && !a.xq && a.M * ((a.K + 15) / 16 * 16) + 16 <= 48 * 1024) {
    staged.resize((size_t)(a.M * a.K));
    for (int64_t m = 0; m < a.M; ++m)
      for (int64_t k = 0; k < a.K; ++k) staged[(size_t)(m * a.K + k)] = (int8_t)qx_value(a, m, k, inv, staged_nan);
    a.xq = staged.data(), a.xq_stride = a.K;
  }
  constexpr int MB = (int)kGemvMaxRows;
  const int64_t G = (a.K + kI4Group - 1) / kI4Group;
  for (int64_t n = 0; n < a.N; ++n) {  // warp n
    if (a.w_dtype == DType::I8) {
      int32_t acc[MB], sum[MB] = {};
      uint32_t nan = 0, any = 0;
      for (int l = 0; l < kWarpSize; ++l) {
        w8a8_lane_partial<MB>(a, n, l, inv, 0, acc, nan);
        for (int m = 0; m < MB; ++m) sum[m] += acc[m];
        any |= nan;
      }
      for (int64_t m = 0; m < a.M; ++m) w8a8_store(a, m, n, sum[m], (any >> m) & 1u);
    } else if (a.x_scale > 0.0f && a.xq) {
      // The coalesced kernel: steps of kW4A8StepGroups groups, four lanes
      // per group, then the chain in group order.
      const uint8_t* row = static_cast<const uint8_t*>(a.w) + n * a.w_stride;
      float f[MB] = {};
      uint32_t any = staged_nan;
      for (int64_t g0 = 0; g0 < G; g0 += kW4A8StepGroups) {
        int32_t gs[kW4A8StepGroups][MB] = {};
        for (int l = 0; l < kWarpSize; ++l) {
          int32_t isum[MB];
          uint32_t w[4];
          w4a8_quarter_load(a, row, g0, l, 0, w);
          w4a8_quarter_sums<MB>(a, w, g0, l, inv, isum, any);
          for (int m = 0; m < MB; ++m) gs[l / 4][m] += isum[m];
        }
        for (int64_t j = 0; j < kW4A8StepGroups && g0 + j < G; ++j)
          for (int m = 0; m < MB; ++m) f[m] = w4a8_step(f[m], gs[j][m], a.w_scales[n * G + g0 + j]);
      }
      for (int64_t m = 0; m < a.M; ++m) w4a8_store(a, m, n, f[m], (any >> m) & 1u);
    } else if (a.x_scale > 0.0f) {
      float f[MB] = {};
      uint32_t any = 0;
      for (int64_t g = 0; g < G; ++g) {  // the chain in group order
        int32_t isum[MB];
        w4a8_group_sums<MB>(a, n, g, inv, 0, isum, any);
        for (int m = 0; m < MB; ++m) f[m] = w4a8_step(f[m], isum[m], a.w_scales[n * G + g]);
      }
      for (int64_t m = 0; m < a.M; ++m) w4a8_store(a, m, n, f[m], (any >> m) & 1u);
    } else {
      float acc[MB], p[MB][kWarpSize];
      const uint8_t* row = static_cast<const uint8_t*>(a.w) + n * a.w_stride;
      for (int l = 0; l < kWarpSize; ++l) {
        for (int m = 0; m < MB; ++m) acc[m] = 0.0f;
        for (int64_t g0 = 0; g0 < G; g0 += kW4A8StepGroups) {
          uint32_t w[4];
          w4a8_quarter_load(a, row, g0, l, 0, w);
          w4a16_quarter_partial<MB>(a, w, n, g0, l, acc);
        }
        for (int m = 0; m < MB; ++m) p[m][l] = acc[m];
      }
      for (int64_t m = 0; m < a.M; ++m) w4a16_store(a, m, n, tree_sum_host(p[m], kWarpSize));
    }
  }
  return cudaSuccess;
}

cudaError_t moe_route(const MoeRouteArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  for (int64_t t = 0; t < a.T; ++t) moe_route_token(a, t);  // thread t
  return cudaSuccess;
}

namespace {

// The align kernel's outputs: a stable counting sort of the pairs by expert.
void moe_align(const int32_t* ids, int64_t P, int64_t E, const MoeLayout& L) {
  std::vector<int64_t> count((size_t)E, 0);
  for (int64_t i = 0; i < P; ++i)
    if (ids[i] >= 0 && ids[i] < E) ++count[(size_t)ids[i]];
    else L.pos[i] = -1;
  L.offsets[0] = 0;
  for (int64_t e = 0; e < E; ++e)
    L.offsets[e + 1] = L.offsets[e] + (int32_t)((count[(size_t)e] + kMoeRows - 1) / kMoeRows * kMoeRows);
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t b = L.offsets[e] / kMoeRows; b < L.offsets[e + 1] / kMoeRows; ++b) L.block_expert[b] = (int32_t)e;
    int32_t at = L.offsets[e];
    for (int64_t i = 0; i < P; ++i)
      if (ids[i] == e) L.sorted[at] = (int32_t)i, L.pos[i] = at++;
    for (int64_t p = at; p < L.offsets[e + 1]; ++p) L.sorted[p] = -1;
  }
}

template <DType WT>
void moe_gate_up(const MoeArgs& a, const MoeLayout& L) {
  const LinearArgs xa = moe_input(a.x, a.x_stride, a.T, a.d, a.gate.x_rounding);
  for (int64_t p = 0; p < L.offsets[a.E]; ++p) {
    const int32_t pair = L.sorted[p];
    if (pair < 0) continue;
    const int64_t e = L.block_expert[p / kMoeRows];
    const LinearArgs ga = moe_weight(a.gate, e, a.I, a.d), ua = moe_weight(a.up, e, a.I, a.d);
    for (int64_t n = 0; n < a.I; ++n)
      L.h[p * a.I + n] = silu(moe_dot<WT>(xa, pair / a.k, ga, n)) * moe_dot<WT>(xa, pair / a.k, ua, n);
  }
}

template <DType WT>
void moe_down(const MoeArgs& a, const MoeLayout& L) {
  const LinearArgs xa = moe_input(L.h, a.I, L.rows, a.I, a.down.x_rounding);
  for (int64_t p = 0; p < L.offsets[a.E]; ++p) {
    const int32_t pair = L.sorted[p];
    if (pair < 0) continue;
    const LinearArgs da = moe_weight(a.down, L.block_expert[p / kMoeRows], a.d, a.I);
    for (int64_t n = 0; n < a.d; ++n) L.y[p * a.d + n] = moe_dot<WT>(xa, p, da, n) * a.weights[pair];
  }
}

// I8 / I4 experts (cuda/moe.cu moe_q_kernel): each output's fmaf chains as moe_qdot.
void moe_q_gate_up(const MoeArgs& a, const MoeLayout& L) {
  for (int64_t p = 0; p < L.offsets[a.E]; ++p) {
    const int32_t pair = L.sorted[p];
    if (pair < 0) continue;
    const int64_t e = L.block_expert[p / kMoeRows];
    const QLinearArgs g = moe_qweight(a.gate, e, a.I, a.d), u = moe_qweight(a.up, e, a.I, a.d);
    const float* x = a.x + (pair / a.k) * a.x_stride;
    for (int64_t n = 0; n < a.I; ++n) L.h[p * a.I + n] = silu(moe_qdot(g, x, n)) * moe_qdot(u, x, n);
  }
}

void moe_q_down(const MoeArgs& a, const MoeLayout& L) {
  for (int64_t p = 0; p < L.offsets[a.E]; ++p) {
    const int32_t pair = L.sorted[p];
    if (pair < 0) continue;
    const QLinearArgs dn = moe_qweight(a.down, L.block_expert[p / kMoeRows], a.d, a.I);
    for (int64_t n = 0; n < a.d; ++n) L.y[p * a.d + n] = moe_qdot(dn, L.h + p * a.I, n) * a.weights[pair];
  }
}

// The bf16 tensor-core GEMMs (cuda/moe.cu moe_bf16_mma_kernel), lane by lane: per row block and 128 columns, each k
// tile's staged rows, then each warp's ldmatrix and mma steps. `gate_up`:
// h = silu(g) · u; else y = acc · the routed weight.
void moe_mma(const MoeArgs& a, const MoeLayout& L, bool gate_up) {
  const int64_t N = gate_up ? a.I : a.d, K = gate_up ? a.d : a.I;
  const LinearArgs xa = gate_up ? moe_input(a.x, a.x_stride, a.T, a.d, a.gate.x_rounding)
                                : moe_input(L.h, a.I, L.rows, a.I, a.down.x_rounding);
  std::vector<uint16_t> xs((size_t)(kMoeRows * kMoeMmaLd)), ws[2];
  for (auto& w : ws) w.resize((size_t)(kMoeMmaTileN * kMoeMmaLd));
  static float acc[2][kMoeMmaThreads / 32][2][32][4];  // [gate / up or down][warp][n8 tile][lane][q]
  for (int64_t blk = 0; blk < L.offsets[a.E] / kMoeRows; ++blk) {
    const int64_t e = L.block_expert[blk], p0 = blk * kMoeRows;
    const LinearArgs wa[2] = {gate_up ? moe_weight(a.gate, e, a.I, a.d) : moe_weight(a.down, e, a.d, a.I),
                              gate_up ? moe_weight(a.up, e, a.I, a.d) : LinearArgs{}};
    const int mats = gate_up ? 2 : 1;
    for (int64_t n0 = 0; n0 < N; n0 += kMoeMmaTileN) {
      std::memset(acc, 0, sizeof acc);
      for (int64_t k0 = 0; k0 < K; k0 += kMoeMmaTileK) {
        const int len = K - k0 < kMoeMmaTileK ? (int)(K - k0) : kMoeMmaTileK;
        std::fill(xs.begin(), xs.end(), (uint16_t)0x7fc1);  // unwritten shared memory: NaN
        for (auto& w : ws) std::fill(w.begin(), w.end(), (uint16_t)0x7fc1);
        float v[kMoeMmaTileK];
        for (int r = 0; r < kMoeRows; ++r) {
          const int32_t pair = L.sorted[p0 + r];
          std::fill(v, v + kMoeMmaTileK, 0.0f);
          if (pair >= 0) gemv_load_x<kMoeMmaTileK>(xa, gate_up ? pair / a.k : p0 + r, k0, len, 0, v);
          moe_mma_bits(v, xs.data() + r * kMoeMmaLd);
        }
        for (int m = 0; m < mats; ++m)
          for (int r = 0; r < kMoeMmaTileN; ++r) {
            std::fill(v, v + kMoeMmaTileK, 0.0f);
            if (n0 + r < N) gemv_load_w<DType::BF16, kMoeMmaTileK>(wa[m], n0 + r, k0, len, 0, v);
            moe_mma_bits(v, ws[(size_t)m].data() + r * kMoeMmaLd);
          }
        for (int warp = 0; warp < kMoeMmaThreads / 32; ++warp)
          for (int kk = 0; kk < kMoeMmaTileK; kk += 16) {
            static uint32_t af[32][4], bf[32][4];
            int addr[32];
            for (int l = 0; l < 32; ++l) addr[l] = moe_mma_a_offset(kk, l);
            emulate_ldmatrix_x4(xs.data(), addr, af);
            for (int m = 0; m < mats; ++m) {
              for (int l = 0; l < 32; ++l) addr[l] = moe_mma_b_offset(warp, kk, l);
              emulate_ldmatrix_x4(ws[(size_t)m].data(), addr, bf);
              for (int j = 0; j < 2; ++j) {
                uint32_t b0[32], b1[32];
                for (int l = 0; l < 32; ++l) b0[l] = bf[l][2 * j], b1[l] = bf[l][2 * j + 1];
                emulate_mma_16816<false>(af, b0, b1, acc[m][warp][j]);
              }
            }
          }
      }
      for (int warp = 0; warp < kMoeMmaThreads / 32; ++warp)
        for (int j = 0; j < 2; ++j)
          for (int l = 0; l < 32; ++l)
            for (int q = 0; q < 4; ++q)
              moe_mma_store(a, L, gate_up, p0 + mma_c_row(l, q), n0 + warp * 16 + j * 8 + mma_c_col(l, q),
                            acc[0][warp][j][l][q], acc[1][warp][j][l][q]);
    }
  }
}

// The int8 tensor-core GEMMs of Q8_0 / Q4_0 experts (cuda/moe.cu
// moe_q8_mma_kernel), lane by lane: per row block, 128 columns and k tile of
// two blocks, the staged int8 rows and scales, then each warp's k steps
// (ldmatrix, mma, the fold of each step's sums).
template <DType WT>
void moe_q8_mma(const MoeArgs& a, const MoeLayout& L, bool gate_up) {
  const int64_t N = gate_up ? a.I : a.d, K = gate_up ? a.d : a.I, KB = K / kQ8Block;
  const int row_bytes = kMoeMmaLd * 2, mats = gate_up ? 2 : 1;
  const LinearArgs xa = gate_up ? moe_input(a.x, a.x_stride, a.T, a.d, a.gate.x_rounding)
                                : moe_input(L.h, a.I, L.rows, a.I, a.down.x_rounding);
  std::vector<uint16_t> xs((size_t)(kMoeRows * kMoeMmaLd)), ws[2];
  for (auto& w : ws) w.resize((size_t)(kMoeMmaTileN * kMoeMmaLd));
  float dxs[kMoeRows][2], dws[2][kMoeMmaTileN][2];
  static int32_t acc[2][kMoeMmaThreads / 32][2][32][4];
  static float f[2][kMoeMmaThreads / 32][2][32][4];
  for (int64_t blk = 0; blk < L.offsets[a.E] / kMoeRows; ++blk) {
    const int64_t e = L.block_expert[blk], p0 = blk * kMoeRows;
    const LinearArgs wa[2] = {gate_up ? moe_weight(a.gate, e, a.I, a.d) : moe_weight(a.down, e, a.d, a.I),
                              gate_up ? moe_weight(a.up, e, a.I, a.d) : LinearArgs{}};
    for (int64_t n0 = 0; n0 < N; n0 += kMoeMmaTileN) {
      std::memset(acc, 0, sizeof acc);
      std::memset(f, 0, sizeof f);
      for (int64_t k0 = 0; k0 < K; k0 += kMoeQ8TileK) {
        std::fill(xs.begin(), xs.end(), (uint16_t)0x7fc1);
        for (auto& w : ws) std::fill(w.begin(), w.end(), (uint16_t)0x7fc1);
        uint8_t* xb = reinterpret_cast<uint8_t*>(xs.data());
        for (int h = 0; h < 2; ++h) {
          const int64_t b = k0 / kQ8Block + h;
          int8_t q[kQ8Block];
          for (int r = 0; r < kMoeRows; ++r) {
            const int32_t pair = L.sorted[p0 + r];
            float d = 0.0f;
            std::fill(q, q + kQ8Block, (int8_t)0);
            if (pair >= 0 && b < KB) d = q8block_stage_x(xa, gate_up ? pair / a.k : p0 + r, b, q);
            std::memcpy(xb + r * row_bytes + h * kQ8Block, q, kQ8Block);
            dxs[r][h] = d;
          }
          for (int m = 0; m < mats; ++m)
            for (int r = 0; r < kMoeMmaTileN; ++r) {
              float d = 0.0f;
              std::fill(q, q + kQ8Block, (int8_t)0);
              if (n0 + r < N && b < KB) d = ggml_stage_w<WT>(wa[m], n0 + r, b, q);
              std::memcpy(reinterpret_cast<uint8_t*>(ws[(size_t)m].data()) + r * row_bytes + h * kQ8Block, q, kQ8Block);
              dws[m][r][h] = d;
            }
        }
        for (int warp = 0; warp < kMoeMmaThreads / 32; ++warp)
          for (int h = 0; h < 2 && k0 / kQ8Block + h < KB; ++h) {
            static uint32_t af[32][4], bf[32][4];
            int addr[32];
            for (int l = 0; l < 32; ++l) addr[l] = moe_mma_a_offset(16 * h, l);
            emulate_ldmatrix_x4(xs.data(), addr, af);
            for (int m = 0; m < mats; ++m) {
              for (int l = 0; l < 32; ++l) addr[l] = moe_mma_b_offset(warp, 16 * h, l);
              emulate_ldmatrix_x4(ws[(size_t)m].data(), addr, bf);
              for (int j = 0; j < 2; ++j) {
                uint32_t b0[32], b1[32];
                for (int l = 0; l < 32; ++l) b0[l] = bf[l][2 * j], b1[l] = bf[l][2 * j + 1];
                emulate_mma_16832_s8(af, b0, b1, acc[m][warp][j]);
                for (int l = 0; l < 32; ++l)
                  for (int q = 0; q < 4; ++q) {
                    const float dx = dxs[mma_c_row(l, q)][h], dw = dws[m][warp * 16 + j * 8 + mma_c_col(l, q)][h];
                    f[m][warp][j][l][q] = q8_block_step(f[m][warp][j][l][q], acc[m][warp][j][l][q], dx, dw);
                    acc[m][warp][j][l][q] = 0;
                  }
              }
            }
          }
      }
      for (int warp = 0; warp < kMoeMmaThreads / 32; ++warp)
        for (int j = 0; j < 2; ++j)
          for (int l = 0; l < 32; ++l)
            for (int q = 0; q < 4; ++q)
              moe_mma_store(a, L, gate_up, p0 + mma_c_row(l, q), n0 + warp * 16 + j * 8 + mma_c_col(l, q),
                            f[0][warp][j][l][q], f[1][warp][j][l][q]);
    }
  }
}

template <template <DType> class F>
bool moe_for_format(DType t, const MoeArgs& a, const MoeLayout& L) {
  switch (t) {
    case DType::F32: F<DType::F32>::run(a, L); return true;
    case DType::F16: F<DType::F16>::run(a, L); return true;
    case DType::BF16: F<DType::BF16>::run(a, L); return true;
    case DType::Q8_0: F<DType::Q8_0>::run(a, L); return true;
    case DType::Q4_0: F<DType::Q4_0>::run(a, L); return true;
    default: return false;
  }
}
template <DType WT>
struct GateUp {
  static void run(const MoeArgs& a, const MoeLayout& L) { moe_gate_up<WT>(a, L); }
};
template <DType WT>
struct Down {
  static void run(const MoeArgs& a, const MoeLayout& L) { moe_down<WT>(a, L); }
};

}  // namespace

cudaError_t moe(const MoeArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  std::vector<uint8_t> ws(moe_layout(a.T, a.k, a.E, a.d, a.I, nullptr, nullptr) + 256);
  void* base = reinterpret_cast<void*>(((uintptr_t)ws.data() + 255) / 256 * 256);
  MoeLayout L;
  moe_layout(a.T, a.k, a.E, a.d, a.I, base, &L);
  moe_align(a.ids, a.T * a.k, a.E, L);
  // The tensor-core kernels (as on sm_80+): bf16 experts with bf16 inputs,
  // Q8_0 / Q4_0 ones with Q8Block inputs.
  auto q8 = [&](const MoeWeight& w, bool gate_up) {
    if (w.dtype == DType::Q4_0) moe_q8_mma<DType::Q4_0>(a, L, gate_up);
    else moe_q8_mma<DType::Q8_0>(a, L, gate_up);
  };
  if (moe_mma_format(a.gate) && moe_mma_format(a.up)) moe_mma(a, L, true);
  else if (moe_mma_q8_format(a.gate) && a.up.dtype == a.gate.dtype && moe_mma_q8_format(a.up)) q8(a.gate, true);
  else if (moe_quamba(a.gate.dtype)) moe_q_gate_up(a, L);
  else if (!moe_for_format<GateUp>(a.gate.dtype, a, L)) return cudaErrorNotSupported;
  if (moe_mma_format(a.down)) moe_mma(a, L, false);
  else if (moe_mma_q8_format(a.down)) q8(a.down, false);
  else if (moe_quamba(a.down.dtype)) moe_q_down(a, L);
  else if (!moe_for_format<Down>(a.down.dtype, a, L)) return cudaErrorNotSupported;
  for (int64_t t = 0; t < a.T; ++t)
    for (int64_t c2 = 0; c2 < a.d; ++c2) a.out[t * a.out_stride + c2] = moe_combine_value(a, L, t, c2);
  return cudaSuccess;
}

}  // namespace nm::cuda::emulate
