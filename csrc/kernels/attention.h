// Attention for hybrid models (Granite 4.0-H, Jamba; REFERENCE.md §7): a
// paged KV cache, causal grouped-query attention over it (one kernel for
// prefill and decode), and rotary position embedding.
//
// Paged KV cache. Each attention layer keeps K and V in pages of
// `page_size` token slots:
//   k_cache, v_cache [num_pages, page_size, n_kv_heads, head_dim], dtype F32
//   or F16, element (page, slot, kv head, d) at
//     page * page_stride + slot * slot_stride + head * head_stride + d
//   (dense: page_stride = page_size * n_kv_heads * head_dim,
//    slot_stride = n_kv_heads * head_dim, head_stride = head_dim).
// A sequence's token at absolute position pos lives in page
// block_table[s * block_table_stride + pos / page_size], slot pos % page_size.
// Pages may be shared between sequences for reading; the caller checks that
// one call never writes a slot twice.
//
// Packed sequences: per-token tensors hold the tokens of all sequences back
// to back; sequence s owns tokens cu_seqlens[s] .. cu_seqlens[s+1]-1
// (cu_seqlens [nseq + 1]: 0 first, non-decreasing, last = tokens).
//
// All strides are in ELEMENTS. Every index, length and page id is checked
// by the caller (csrc/napi/attention_binding.cpp); kernels only compute.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace nm {

struct PagedKvCache {
  DType dtype = DType::F32;  // F32 or F16 (float32 / IEEE binary16 bits)
  void* k = nullptr;         // written by kv_cache_append, read by paged_attention
  void* v = nullptr;
  int64_t num_pages = 0, page_size = 0, n_kv_heads = 0, head_dim = 0;
  int64_t page_stride = 0, slot_stride = 0, head_stride = 0;
};

// Writes K/V rows of new tokens into the cache: token i of sequence s
// (packed index cu_seqlens[s] + i) goes to position start_pos[s] + i.
// f16 caches get round-to-nearest-even (core/dtype.h f32_to_f16).
struct KvCacheAppendArgs {
  PagedKvCache cache;
  int64_t nseq = 0, tokens = 0;
  const float* k = nullptr;  // [tokens, n_kv_heads, head_dim]
  int64_t k_stride_tok = 0, k_stride_head = 0;
  const float* v = nullptr;  // [tokens, n_kv_heads, head_dim]
  int64_t v_stride_tok = 0, v_stride_head = 0;
  const int32_t* cu_seqlens = nullptr;   // [nseq + 1]
  const int32_t* start_pos = nullptr;    // [nseq], >= 0
  const int32_t* block_table = nullptr;  // [nseq, max_pages_per_seq]
  int64_t block_table_stride = 0;        // >= max_pages_per_seq
  int64_t max_pages_per_seq = 0;
};

// Multithreaded over tokens on the global pool.
void kv_cache_append(const KvCacheAppendArgs& a);

// Causal grouped-query attention over the paged cache, for prefill and
// decode alike. The q_len_s = cu_seqlens_q[s+1] - cu_seqlens_q[s] queries of
// sequence s are its LAST q_len_s positions: query i (0-based) sits at
// absolute position p = kv_lens[s] - q_len_s + i and attends to cache
// positions 0..p (so kv_lens[s] >= q_len_s; decode is q_len 1, a later
// prefill chunk also sees the earlier chunks). Query head h reads kv head
// h / (n_heads / n_kv_heads).
//   out[t, h, :] = Σ_j softmax_j(scale · q[t, h, :]·k_j) v_j
// Flash-attention style: a block of queries (all heads of one kv head)
// against blocks of keys with an online softmax (running max and sum), in
// float32; the score matrix is never materialised beyond one tile.
struct PagedAttentionArgs {
  PagedKvCache cache;
  int64_t nseq = 0, tokens = 0, n_heads = 0;  // n_heads % cache.n_kv_heads == 0
  float scale = 1.0f;
  const float* q = nullptr;  // [tokens, n_heads, head_dim]
  int64_t q_stride_tok = 0, q_stride_head = 0;
  float* out = nullptr;      // [tokens, n_heads, head_dim]; must not alias q or the cache
  int64_t out_stride_tok = 0, out_stride_head = 0;
  const int32_t* cu_seqlens_q = nullptr;  // [nseq + 1]
  const int32_t* kv_lens = nullptr;       // [nseq], kv_lens[s] >= q_len_s
  const int32_t* block_table = nullptr;   // [nseq, max_pages_per_seq]
  int64_t block_table_stride = 0;
  int64_t max_pages_per_seq = 0;
};

// Multithreaded over (sequence, kv head, block of queries) work items,
// dynamically scheduled on the global pool, costliest first.
void paged_attention(const PagedAttentionArgs& a);

// Rotary position embedding, in place, Hugging Face's default convention
// (rotate_half / "neox": channel i pairs with i + rotary_dim/2):
//   inv_freq[i] = 1 / theta^(2i / rotary_dim), i < rotary_dim / 2
//     (computed in double, rounded to float32)
//   angle = float32(inv_freq[i] * float32(pos))  (HF's float32 product)
//   c = cos(angle), s = sin(angle) (in double, rounded to float32)
//   x'[i]        = x[i] * c - x[i + half] * s
//   x'[i + half] = x[i + half] * c + x[i] * s
// Channels >= rotary_dim are left unchanged (partial rotary).
// interleaved: channel 2i pairs with 2i + 1 instead (llama.cpp's "normal"
// RoPE of its llama-family files, whose converter reorders the q / k rows of
// each head so that pair (2i, 2i+1) holds HF's (i, i + rotary_dim/2): the
// attention scores are the same as HF's on the original rows), same angles.
struct RopeArgs {
  float* x = nullptr;  // [tokens, n_heads, head_dim]
  int64_t tokens = 0, n_heads = 0, head_dim = 0;
  int64_t x_stride_tok = 0, x_stride_head = 0;
  const int32_t* positions = nullptr;  // [tokens]
  int64_t rotary_dim = 0;              // even, 2..head_dim
  double theta = 10000.0;              // > 0
  bool interleaved = false;
};

void rope(const RopeArgs& a);

// Internal: per-thread scratch that paged_attention (attention.cpp)
// allocates and the per-ISA bodies (attention_impl.h) use. Row buffers have
// a leading dimension ldd = round_up(head_dim, 16) and rows_pad (a multiple
// of 4) rows; padding stays zero.
// Key positions per block of the online softmax.
constexpr int64_t kAttnKeyBlock = 64;

// Internal: a decode work item (attention.cpp): query i0 of sequence s (one
// position), the query heads of kv heads [g0, g1), keys [k0, k1) of the
// query's causal range. partial == nullptr: the range is the whole causal
// range and the item writes the output rows; else one of several ranges,
// whose rows (kv head g0's first) go to partial [rows, head_dim + 2]:
// running max, running sum, then the unnormalised output.
struct AttnDecodeItem {
  int64_t s = 0, i0 = 0, k0 = 0, k1 = 0, g0 = 0, g1 = 0;
  float* partial = nullptr;
};

struct AttnScratch {
  int64_t ldd = 0, bk = 0, rows_pad = 0;
  float* qs = nullptr;    // [rows_pad, ldd]  scale * q
  float* o = nullptr;     // [rows_pad, ldd]  unnormalised output accumulator
  float* p = nullptr;     // [rows_pad, bk]   scores, then probabilities of one key block
  float* m = nullptr;     // [rows_pad]       running max
  float* l = nullptr;     // [rows_pad]       running sum
  float* corr = nullptr;  // [rows_pad]       exp(m_old - m_new) of the current block
  float* kbuf = nullptr;  // [bk, ldd]        the key block's rows, contiguous float32
  float* vbuf = nullptr;  // [bk, ldd]        its value rows
};

}  // namespace nm
