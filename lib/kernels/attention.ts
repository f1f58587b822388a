// Attention for hybrid models (Granite 4.0-H, Jamba): a paged KV cache,
// causal grouped-query attention over it (prefill and decode), and RoPE.
// Semantics and layouts: csrc/kernels/attention.h.
import { native } from '../native/binding';
import { floatArg } from './tensor';

/**
 * A K or V cache tensor [numPages, pageSize, nKvHeads, headDim], row-major
 * (headDim contiguous): a Float32Array (f32), or IEEE binary16 bits as
 * `{ data: Uint16Array, dtype: 'f16' }`. K and V must have the same dtype.
 */
export type KvCacheData = Float32Array | { data: Uint16Array; dtype: 'f16' };

/** The shape of a paged cache and the per-sequence block table, shared by kvCacheAppend and pagedAttention. */
export interface PagedCacheOptions {
  /** Key cache, [numPages, pageSize, nKvHeads, headDim]. */
  kCache: KvCacheData;
  /** Value cache, same shape and dtype as kCache. */
  vCache: KvCacheData;
  /** Pages in the cache, >= 1. */
  numPages: number;
  /** Token slots per page, 1..65536. Position pos of a sequence lives in page blockTable[s][pos / pageSize], slot pos % pageSize. */
  pageSize: number;
  /** KV heads, >= 1. */
  nKvHeads: number;
  /** Channels per head, 1..256 (any value; 40, 80, 96 work). */
  headDim: number;
  /** Columns of blockTable (page ids per sequence), >= 1. */
  maxPagesPerSeq: number;
  /**
   * Per-sequence page ids, Int32Array [nseq, maxPagesPerSeq] (row-major).
   * Every entry a call touches must be in [0, numPages); others are ignored
   * (e.g. -1 for unallocated pages).
   */
  blockTable: Int32Array;
  /**
   * Sequence boundaries in the packed token axis, Int32Array [nseq + 1]: 0
   * first, non-decreasing, last = tokens (sequences with no tokens allowed).
   */
  cuSeqlens: Int32Array;
  /** Total packed tokens, 0 ≤ tokens < 2^31. */
  tokens: number;
}

export interface KvCacheAppendOptions extends PagedCacheOptions {
  /** New keys, float32 [tokens, nKvHeads, headDim], packed by cuSeqlens. */
  k: Float32Array;
  /** New values, float32 [tokens, nKvHeads, headDim], packed by cuSeqlens. */
  v: Float32Array;
  /**
   * Int32Array [nseq], >= 0: token i of sequence s is written at position
   * startPos[s] + i. The positions must fit the sequence's block-table row,
   * and no two tokens of one call may map to the same (page, slot).
   */
  startPos: Int32Array;
}

export interface KvCacheAppendResult {
  /** Updated copy of kCache, in the same form (Float32Array, or `{ data, dtype: 'f16' }`). */
  kCache: KvCacheData;
  /** Updated copy of vCache. */
  vCache: KvCacheData;
}

export interface PagedAttentionOptions extends PagedCacheOptions {
  /**
   * Queries, float32 [tokens, nHeads, headDim], packed by cuSeqlens. The
   * q_len_s queries of sequence s are its LAST q_len_s positions: query i
   * is at position kvLens[s] - q_len_s + i.
   */
  q: Float32Array;
  /** Query heads; nKvHeads must divide it. Head h reads kv head h / (nHeads / nKvHeads). */
  nHeads: number;
  /** Int32Array [nseq]: cached tokens of each sequence, including the queries' own; kvLens[s] >= q_len_s. */
  kvLens: Int32Array;
  /**
   * Softmax scale, finite. Default 1 / sqrt(headDim) (Jamba); Granite 4.0-H
   * uses its config's attention_multiplier.
   */
  scale?: number;
}

export interface RopeOptions {
  /** Query or key rows, float32 [tokens, nHeads, headDim] (headDim contiguous). Not modified. */
  x: Float32Array;
  /** Absolute position of each token, Int32Array [tokens], >= 0. */
  positions: Int32Array;
  tokens: number;
  nHeads: number;
  /** Channels per head, >= 2. */
  headDim: number;
  /** Channels rotated, even, 2..headDim (partial rotary leaves the rest). Default headDim. */
  rotaryDim?: number;
  /** Base of the frequencies (rope_theta), > 0. Default 10000. */
  theta?: number;
  /**
   * Pair channel 2i with 2i + 1 (llama.cpp's RoPE over its reordered q / k rows) instead of i
   * with i + rotaryDim / 2 (Hugging Face's rotate_half, the default). Same angles.
   */
  interleaved?: boolean;
}

function cacheArgs(opts: PagedCacheOptions): Record<string, unknown> {
  return { ...floatArg('kCache', opts?.kCache), ...floatArg('vCache', opts?.vCache) };
}

/**
 * Writes new K/V rows into a paged cache: token i of sequence s goes to
 * position startPos[s] + i (page blockTable[s][pos / pageSize], slot
 * pos % pageSize). An f16 cache gets round-to-nearest-even. Returns updated
 * copies of both caches (the inputs are not modified).
 */
export function kvCacheAppend(opts: KvCacheAppendOptions): KvCacheAppendResult {
  const r = native.kvCacheAppend({ ...opts, ...cacheArgs(opts) });
  const wrap = (out: Float32Array | Uint16Array): KvCacheData =>
    out instanceof Uint16Array ? { data: out, dtype: 'f16' } : out;
  return { kCache: wrap(r.kCache), vCache: wrap(r.vCache) };
}

/**
 * Causal grouped-query attention over a paged cache, for prefill and decode
 * alike: `out[t, h] = Σ_j softmax_j(scale · q[t, h]·k_j) v_j` over the
 * cache positions j <= the query's position, with k/v of kv head
 * h / (nHeads / nKvHeads). Computed flash-attention style (online softmax,
 * float32). Returns float32 [tokens, nHeads, headDim].
 */
export function pagedAttention(opts: PagedAttentionOptions): Float32Array {
  const scale = opts?.scale === undefined && typeof opts?.headDim === 'number' ? 1 / Math.sqrt(opts.headDim) : opts?.scale;
  return native.pagedAttention({ ...opts, ...cacheArgs(opts), scale });
}

/**
 * Rotary position embedding, Hugging Face's default (rotate_half / "neox")
 * convention: channel i < rotaryDim/2 pairs with i + rotaryDim/2,
 * `x1' = x1·cos − x2·sin`, `x2' = x2·cos + x1·sin`, angle = position ·
 * theta^(−2i/rotaryDim) (inverse frequency in float32, the angle rounded to
 * float32 as HF computes it). Returns a rotated copy of x.
 */
export function rope(opts: RopeOptions): Float32Array {
  return native.rope({ ...opts, theta: opts?.theta ?? 10000 });
}
