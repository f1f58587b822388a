// Paged KV cache, paged attention and RoPE against float64 references written
// from the semantics (csrc/kernels/attention.h; REFERENCE.md §7).
import t from 'tap';
import { kernels } from '../../lib';
import { assertClose, forEachIsa, fromF16, randn, rng, toF16, worstError } from '../helpers/reference';

type CacheDtype = 'f32' | 'f16';

interface SeqSpec { kvLen: number; qLen: number }

interface Setup {
  D: number; H: number; Hk: number; pageSize: number; numPages: number; maxPages: number; dtype: CacheDtype;
  seqs: SeqSpec[];
  /** Per sequence, the logical K and V rows [kvLen, Hk, D] (float32 values). */
  K: Float32Array[]; V: Float32Array[];
  blockTable: Int32Array;
}

/** Random distinct pages for every sequence (shuffled, so pages are not in order); unused entries -1. */
function makeBlockTable(r: () => number, seqs: SeqSpec[], pageSize: number, maxPages: number, spare = 3) {
  const need = seqs.map((s) => Math.ceil(s.kvLen / pageSize));
  const numPages = need.reduce((a, b) => a + b, 0) + spare;
  const ids = Array.from({ length: numPages }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  const bt = new Int32Array(seqs.length * maxPages).fill(-1);
  let k = 0;
  seqs.forEach((_, s) => { for (let p = 0; p < need[s]; p++) bt[s * maxPages + p] = ids[k++]; });
  return { blockTable: bt, numPages };
}

function makeSetup(seed: number, D: number, H: number, Hk: number, pageSize: number, dtype: CacheDtype,
  seqs: SeqSpec[], kvScale = 1): Setup {
  const r = rng(seed);
  const maxPages = Math.max(1, ...seqs.map((s) => Math.ceil(s.kvLen / pageSize))) + 1;
  const { blockTable, numPages } = makeBlockTable(r, seqs, pageSize, maxPages);
  const K = seqs.map((s) => randn(r, s.kvLen * Hk * D, kvScale));
  const V = seqs.map((s) => randn(r, s.kvLen * Hk * D));
  return { D, H, Hk, pageSize, numPages, maxPages, dtype, seqs, K, V, blockTable };
}

function emptyCache(s: Setup): kernels.KvCacheData {
  const n = s.numPages * s.pageSize * s.Hk * s.D;
  return s.dtype === 'f16' ? { data: new Uint16Array(n), dtype: 'f16' } : new Float32Array(n);
}

/** The cache data as float32 values. */
const cacheValues = (c: kernels.KvCacheData): Float32Array => (c instanceof Float32Array ? c : fromF16(c.data));

/** cu_seqlens of a list of lengths. */
function cuOf(lens: number[]): Int32Array {
  const cu = new Int32Array(lens.length + 1);
  lens.forEach((l, i) => { cu[i + 1] = cu[i] + l; });
  return cu;
}

/** Rows [r0, r1) of each sequence's [rows, w] array, packed. */
function pack(arrs: Float32Array[], w: number, ranges: [number, number][]): Float32Array {
  const total = ranges.reduce((a, [r0, r1]) => a + (r1 - r0), 0);
  const out = new Float32Array(total * w);
  let o = 0;
  arrs.forEach((a, s) => { const [r0, r1] = ranges[s]; out.set(a.subarray(r0 * w, r1 * w), o); o += (r1 - r0) * w; });
  return out;
}

/** Appends positions [p0[s], p1[s]) of every sequence's logical K/V into the cache. */
function append(s: Setup, k: kernels.KvCacheData, v: kernels.KvCacheData, p0: number[], p1: number[]) {
  const w = s.Hk * s.D;
  const ranges = p0.map((a, i) => [a, p1[i]] as [number, number]);
  const cu = cuOf(ranges.map(([a, b]) => b - a));
  return kernels.kvCacheAppend({
    kCache: k, vCache: v, k: pack(s.K, w, ranges), v: pack(s.V, w, ranges), startPos: Int32Array.from(p0),
    cuSeqlens: cu, tokens: cu[cu.length - 1], blockTable: s.blockTable, numPages: s.numPages, pageSize: s.pageSize,
    nKvHeads: s.Hk, headDim: s.D, maxPagesPerSeq: s.maxPages,
  });
}

/**
 * softmax(q·kᵀ·scale, causal)·v in float64, per sequence from its logical
 * K/V (rounded to f16 first for an f16 cache). Query i of sequence s is at
 * position kvLen - qLen + i; head h uses kv head h / (H / Hk).
 */
function attentionRef(s: Setup, q: Float32Array, scale: number, qLens: number[], kvLens: number[]): Float64Array {
  const { D, H, Hk } = s, hpg = H / Hk;
  const out = new Float64Array(q.length);
  let t0 = 0;
  for (let si = 0; si < s.seqs.length; si++) {
    const round = (a: Float32Array) => (s.dtype === 'f16' ? fromF16(toF16(a)) : a);
    const K = round(s.K[si]), V = round(s.V[si]);
    const qLen = qLens[si], kvLen = kvLens[si];
    for (let i = 0; i < qLen; i++) {
      const pos = kvLen - qLen + i;
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / hpg), qo = ((t0 + i) * H + h) * D;
        const sc = new Float64Array(pos + 1);
        let mx = -Infinity;
        for (let j = 0; j <= pos; j++) {
          let d = 0;
          for (let c = 0; c < D; c++) d += q[qo + c] * K[(j * Hk + g) * D + c];
          sc[j] = d * scale;
          mx = Math.max(mx, sc[j]);
        }
        let sum = 0;
        for (let j = 0; j <= pos; j++) { sc[j] = Math.exp(sc[j] - mx); sum += sc[j]; }
        for (let c = 0; c < D; c++) {
          let acc = 0;
          for (let j = 0; j <= pos; j++) acc += sc[j] * V[(j * Hk + g) * D + c];
          out[qo + c] = acc / sum;
        }
      }
    }
    t0 += qLen;
  }
  return out;
}

function attend(s: Setup, k: kernels.KvCacheData, v: kernels.KvCacheData, q: Float32Array, qLens: number[],
  kvLens: number[], scale?: number): Float32Array {
  const cu = cuOf(qLens);
  return kernels.pagedAttention({
    q, kCache: k, vCache: v, cuSeqlens: cu, kvLens: Int32Array.from(kvLens), tokens: cu[cu.length - 1],
    blockTable: s.blockTable, numPages: s.numPages, pageSize: s.pageSize, nHeads: s.H, nKvHeads: s.Hk,
    headDim: s.D, maxPagesPerSeq: s.maxPages, scale,
  });
}

// Tolerance. The kernel computes in float32: dot products over head_dim
// (|q·k·scale| ~ 1), exp (AVX polynomial ~2 ulp, libm on scalar), the
// online-softmax rescaling exp(m_old - m_new) once per key block of 64, and a
// sum over up to ~100 keys. The output is a convex combination of v rows
// (|v| ~ N(0, 1), so |out| < ~4), so its error is absolute: a few 1e-7 per
// element observed; bound atol 1e-5 + rtol 1e-5.
const ATOL = 1e-5, RTOL = 1e-5;

// Several sequences in one call: a whole prefill, a decode (q_len 1), a
// chunk after a cached prefix, an empty sequence, a 1-token sequence, and a
// sequence with cached tokens but no queries.
const SEQS: SeqSpec[] = [
  { kvLen: 37, qLen: 37 }, { kvLen: 70, qLen: 1 }, { kvLen: 0, qLen: 0 }, { kvLen: 90, qLen: 23 },
  { kvLen: 1, qLen: 1 }, { kvLen: 12, qLen: 0 }, { kvLen: 130, qLen: 66 },
];

t.test('kvCacheAppend + pagedAttention match the float64 reference (head dims, GQA, page sizes, f32/f16, every ISA)', (t) => {
  let seed = 1;
  for (const D of [40, 64, 80, 128]) {
    for (const [H, Hk] of [[8, 2], [6, 6], [4, 1]]) {
      for (const pageSize of [16, 5]) {
        for (const dtype of ['f32', 'f16'] as CacheDtype[]) {
          if (D === 128 && pageSize === 5 && dtype === 'f16' && H === 6) continue;  // keep the run short
          const s = makeSetup(seed++, D, H, Hk, pageSize, dtype, SEQS);
          const tag = `D${D} H${H}/${Hk} page${pageSize} ${dtype}`;
          const kvLens = SEQS.map((x) => x.kvLen), qLens = SEQS.map((x) => x.qLen);
          const filled = append(s, emptyCache(s), emptyCache(s), SEQS.map(() => 0), kvLens);
          // Cache contents: each logical row at its page and slot (f16: round to nearest even).
          let bad = 0;
          const kc = cacheValues(filled.kCache), vc = cacheValues(filled.vCache);
          const kr = s.K.map((a) => (dtype === 'f16' ? fromF16(toF16(a)) : a));
          const vr = s.V.map((a) => (dtype === 'f16' ? fromF16(toF16(a)) : a));
          SEQS.forEach((x, si) => {
            for (let p = 0; p < x.kvLen; p++) {
              const page = s.blockTable[si * s.maxPages + Math.floor(p / pageSize)];
              const base = (page * pageSize + (p % pageSize)) * Hk * D;
              for (let e = 0; e < Hk * D; e++) {
                if (!Object.is(kc[base + e], kr[si][p * Hk * D + e])) bad++;
                if (!Object.is(vc[base + e], vr[si][p * Hk * D + e])) bad++;
              }
            }
          });
          t.equal(bad, 0, `cache holds every appended row exactly ${tag}`);

          const r = rng(1000 + seed);
          const q = randn(r, qLens.reduce((a, b) => a + b, 0) * H * D);
          const scale = 1 / Math.sqrt(D);
          const ref = attentionRef(s, q, scale, qLens, kvLens);
          forEachIsa((isa) => {
            const got = attend(s, filled.kCache, filled.vCache, q, qLens, kvLens, scale);
            assertClose(t, got, ref, ATOL, RTOL, `attention ${tag} ${isa}`);
          });
        }
      }
    }
  }
  t.end();
});

t.test('the default scale is 1/sqrt(headDim); an explicit scale (Granite attention_multiplier) is used', (t) => {
  const seqs = [{ kvLen: 20, qLen: 20 }, { kvLen: 9, qLen: 1 }];
  const s = makeSetup(77, 96, 4, 2, 16, 'f32', seqs);
  const f = append(s, emptyCache(s), emptyCache(s), [0, 0], [20, 9]);
  const q = randn(rng(5), 21 * 4 * 96);
  const def = attend(s, f.kCache, f.vCache, q, [20, 1], [20, 9]);
  assertClose(t, def, attentionRef(s, q, 1 / Math.sqrt(96), [20, 1], [20, 9]), ATOL, RTOL, 'default scale');
  const g = attend(s, f.kCache, f.vCache, q, [20, 1], [20, 9], 0.015625);
  assertClose(t, g, attentionRef(s, q, 0.015625, [20, 1], [20, 9]), ATOL, RTOL, 'scale 0.015625');
  t.end();
});

t.test('large scores (scale 1, |q·k| in the hundreds): the online softmax stays finite and exact', (t) => {
  // Integer q and k in [-8, 8]: every score is an exact float32 integer (|q·k| < 2^24),
  // spread over hundreds, so exp without the running max would overflow float32.
  const seqs = [{ kvLen: 150, qLen: 150 }, { kvLen: 200, qLen: 1 }, { kvLen: 77, qLen: 13 }];
  for (const dtype of ['f32', 'f16'] as CacheDtype[]) {
    const s = makeSetup(91, 64, 8, 2, 16, dtype, seqs);
    const r = rng(92);
    const ints = (n: number) => Float32Array.from({ length: n }, () => Math.floor(r() * 17) - 8);
    s.K = s.K.map((a) => ints(a.length));
    const kvLens = seqs.map((x) => x.kvLen), qLens = seqs.map((x) => x.qLen);
    const f = append(s, emptyCache(s), emptyCache(s), [0, 0, 0], kvLens);
    const q = ints(164 * 8 * 64);
    const ref = attentionRef(s, q, 1, qLens, kvLens);
    let maxScore = 0;
    for (let i = 0; i < 64; i++) maxScore += Math.abs(q[i] * s.K[0][i]);
    forEachIsa((isa) => {
      const got = attend(s, f.kCache, f.vCache, q, qLens, kvLens, 1);
      t.ok(got.every(Number.isFinite), `all finite ${dtype} ${isa}`);
      assertClose(t, got, ref, ATOL, RTOL, `large scores ${dtype} ${isa} (|q0·k0| = ${maxScore})`);
    });
  }
  t.end();
});

t.test('prefill in chunks (append + attend per chunk) equals one prefill, bit for bit; decode steps after it', (t) => {
  const L = 83, chunks = [0, 30, 31, 64, 83];
  for (const [pageSize, dtype] of [[5, 'f16'], [16, 'f32']] as [number, CacheDtype][]) {
    const s = makeSetup(300 + pageSize, 80, 6, 2, pageSize, dtype, [{ kvLen: L + 3, qLen: L }]);
    const w = s.H * s.D;
    const qAll = randn(rng(301), (L + 3) * w);
    forEachIsa((isa) => {
      const whole = append(s, emptyCache(s), emptyCache(s), [0], [L]);
      const one = attend(s, whole.kCache, whole.vCache, qAll.subarray(0, L * w), [L], [L]);
      let k = emptyCache(s), v = emptyCache(s);
      const parts = new Float32Array(L * w);
      for (let c = 0; c + 1 < chunks.length; c++) {
        const [a, b] = [chunks[c], chunks[c + 1]];
        ({ kCache: k, vCache: v } = append(s, k, v, [a], [b]));
        parts.set(attend(s, k, v, qAll.subarray(a * w, b * w), [b - a], [b]), a * w);
      }
      t.same(Array.from(parts), Array.from(one), `chunked == whole page${pageSize} ${dtype} ${isa}`);
      t.same(Array.from(cacheValues(k)), Array.from(cacheValues(whole.kCache)), `same K cache ${isa}`);
      const ref = attentionRef(s, qAll.subarray(0, L * w), 1 / Math.sqrt(s.D), [L], [L]);
      assertClose(t, one, ref, ATOL, RTOL, `whole prefill vs reference page${pageSize} ${dtype} ${isa}`);
      // Three decode steps after the prefill.
      for (let p = L; p < L + 3; p++) {
        ({ kCache: k, vCache: v } = append(s, k, v, [p], [p + 1]));
        const qp = qAll.subarray(p * w, (p + 1) * w);
        const got = attend(s, k, v, qp, [1], [p + 1]);
        const full = attentionRef(s, qAll.subarray(0, (p + 1) * w), 1 / Math.sqrt(s.D), [p + 1], [p + 1]);
        assertClose(t, got, full.subarray(p * w), ATOL, RTOL, `decode at ${p} ${dtype} ${isa}`);
      }
    });
  }
  t.end();
});

t.test('decode over long contexts: key ranges of 512 merged (flash-decoding) match the float64 reference', (t) => {
  // One query per sequence splits its keys in ranges of 512 positions, each
  // computed apart (running max, sum, unnormalised output) and merged: one
  // range per item when there are many, one kv head per item when few. A
  // prefill sequence shares the call (the general path). Row groups of 4
  // (hpg 5, 8 and 32; at 32 a prefill item is one query, on the decode body
  // over its causal range), a head dim that is not whole vectors (40), f32
  // and f16.
  // Tolerance as above: the float32 sums over up to 2100 keys add ~1e-7.
  let seed = 500;
  for (const [D, H, Hk] of [[64, 12, 4], [40, 10, 2], [128, 8, 1], [64, 4, 4], [64, 32, 1]]) {
    for (const dtype of ['f32', 'f16'] as CacheDtype[]) {
      for (const seqs of [
        [{ kvLen: 1300, qLen: 1 }, { kvLen: 513, qLen: 1 }, { kvLen: 40, qLen: 40 }, { kvLen: 512, qLen: 1 }, { kvLen: 70, qLen: 1 }],
        [{ kvLen: 1100, qLen: 1 }],  // 3 ranges: an item per kv head
        [{ kvLen: 2100, qLen: 1 }],  // 5 ranges: every kv head in each item
      ] as SeqSpec[][]) {
        const s = makeSetup(seed++, D, H, Hk, 16, dtype, seqs);
        const kvLens = seqs.map((x) => x.kvLen), qLens = seqs.map((x) => x.qLen);
        const f = append(s, emptyCache(s), emptyCache(s), seqs.map(() => 0), kvLens);
        const q = randn(rng(seed), qLens.reduce((a, b) => a + b, 0) * H * D);
        const scale = 1 / Math.sqrt(D);
        const ref = attentionRef(s, q, scale, qLens, kvLens);
        const tag = `D${D} H${H}/${Hk} ${dtype} kv ${kvLens.join(',')}`;
        forEachIsa((isa) => {
          assertClose(t, attend(s, f.kCache, f.vCache, q, qLens, kvLens, scale), ref, ATOL, RTOL, `${tag} ${isa}`);
        });
      }
    }
  }
  t.end();
});

t.test('a decode query up to 512 keys equals the same query in a prefill, bit for bit', (t) => {
  // The decode body reads the cache in place and sums W keys' scores across
  // lanes together; the general path copies key blocks and sums each alone:
  // the same float32 operations in the same order.
  for (const [D, H, Hk, dtype] of [[64, 12, 4, 'f16'], [40, 10, 2, 'f32'], [80, 6, 6, 'f16']] as [number, number, number, CacheDtype][]) {
    for (const L of [1, 17, 64, 65, 300, 512]) {
      const s = makeSetup(700 + L, D, H, Hk, 16, dtype, [{ kvLen: L, qLen: Math.min(L, 2) }]);
      const w = H * D;
      const f = append(s, emptyCache(s), emptyCache(s), [0], [L]);
      const q = randn(rng(701 + L), Math.min(L, 2) * w);
      forEachIsa((isa) => {
        const decode = attend(s, f.kCache, f.vCache, q.subarray(q.length - w), [1], [L]);
        if (L === 1) {
          assertClose(t, decode, attentionRef(s, q, 1 / Math.sqrt(D), [1], [1]), ATOL, RTOL, `L 1 ${isa}`);
          return;
        }
        const prefill = attend(s, f.kCache, f.vCache, q, [2], [L]);
        t.same(Array.from(decode), Array.from(prefill.subarray(w)), `D${D} H${H}/${Hk} ${dtype} L ${L} ${isa}`);
      });
    }
  }
  t.end();
});

t.test('kvCacheAppend returns copies; f16 rounds to nearest even; untouched slots keep their values', (t) => {
  const s = makeSetup(5, 8, 2, 1, 4, 'f16', [{ kvLen: 3, qLen: 0 }]);
  s.K[0] = Float32Array.from({ length: 24 }, (_, i) => 1 + (i % 3) * 2 ** -11 + (i === 0 ? 65504 : 0));
  const k0 = { data: new Uint16Array(s.numPages * 4 * 8).fill(0x3c00), dtype: 'f16' as const };
  const v0 = { data: new Uint16Array(s.numPages * 4 * 8).fill(0x3c00), dtype: 'f16' as const };
  const out = append(s, k0, v0, [1], [3]);
  t.ok(k0.data.every((x) => x === 0x3c00), 'input cache not modified');
  const kd = (out.kCache as { data: Uint16Array }).data;
  const page = s.blockTable[0];
  const at = (pos: number, e: number) => kd[(page * 4 + pos) * 8 + e];
  t.equal(at(0, 0), 0x3c00, 'position 0 untouched');
  t.same(Array.from(kd.subarray((page * 4 + 1) * 8, (page * 4 + 3) * 8)), Array.from(toF16(s.K[0].subarray(8, 24))),
    'positions 1..2 hold K rows 1..2 rounded to nearest even');
  t.equal(toF16(Float32Array.of(1 + 2 ** -11))[0], 0x3c00, '1 + 2^-11 (a tie) rounds to even 1.0');
  t.equal(at(3, 0), 0x3c00, 'position 3 untouched');
  t.end();
});

t.test('kvCacheAppend to f16: every ISA level rounds as the reference (ties, subnormals, overflow, signed zeros, NaN)', (t) => {
  // head_dim 37: whole vectors and a partial tail at every level.
  const D = 37, rows = 3;
  const s = makeSetup(11, D, 2, 1, 4, 'f16', [{ kvLen: rows, qLen: 0 }]);
  const r = rng(77);
  const special = [0, -0, 2 ** -24, 2 ** -25, 3 * 2 ** -25, -(2 ** -20) * 1.5, 6.1e-5, 65504, 65519.99, 65520, -70000, 1 + 2 ** -11,
    1 + 3 * 2 ** -11, Infinity, -Infinity, NaN, 1e-30, -1e-8];
  s.K[0] = Float32Array.from({ length: rows * D }, (_, i) => (i < special.length ? special[i] : randn(r, 1)[0] * 10 ** ((i % 9) - 4)));
  s.V[0] = Float32Array.from(s.K[0], (x) => -x);
  const want = [toF16(s.K[0]), toF16(s.V[0])];
  const isNan16 = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
  forEachIsa((isa) => {
    const out = append(s, emptyCache(s), emptyCache(s), [0], [rows]);
    const page = s.blockTable[0];
    [out.kCache, out.vCache].forEach((c, which) => {
      const got = (c as { data: Uint16Array }).data.subarray(page * 4 * D, (page * 4 + rows) * D);
      let bad = 0;
      for (let i = 0; i < rows * D; i++) {
        const w = want[which][i];
        if (isNan16(w) ? !isNan16(got[i]) : got[i] !== w) bad++;
      }
      t.equal(bad, 0, `${which ? 'V' : 'K'} rows as binary16, round to nearest even (${isa})`);
    });
  });
  t.end();
});

// RoPE reference (HF LlamaRotaryEmbedding default + apply_rotary_pos_emb):
// inv_freq = 1 / theta^(2i/rd) as float32, angle = fround(inv_freq · pos) (HF
// multiplies in float32), then the rotation in float64 with exact cos/sin of
// that angle. The kernel's cos/sin are float32 roundings of the same values
// and its rotation is float32 (two products and a sum), so the error is a few
// float32 ulps of |x|: atol 1e-6 · (|x| ~ 4) + rtol 1e-6.
function ropeRef(x: Float32Array, pos: Int32Array, H: number, D: number, rd: number, theta: number): Float64Array {
  const out = Float64Array.from(x), half = rd / 2;
  for (let tk = 0; tk < pos.length; tk++) {
    for (let i = 0; i < half; i++) {
      const inv = Math.fround(1 / theta ** ((2 * i) / rd));
      const ang = Math.fround(inv * pos[tk]);
      const c = Math.cos(ang), s = Math.sin(ang);
      for (let h = 0; h < H; h++) {
        const o = (tk * H + h) * D, x1 = x[o + i], x2 = x[o + i + half];
        out[o + i] = x1 * c - x2 * s;
        out[o + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

// llama.cpp's pairing (RopeArgs::interleaved): channel 2i with 2i + 1, the
// same angles; on rows reordered as llama.cpp's converter stores q / k (file
// row 2i + s = checkpoint row s·r/2 + i, rows >= r unchanged), it is the HF
// rotation of the checkpoint rows, reordered the same way.
t.test('interleaved rope pairs adjacent channels: the HF rotation of reordered rows', (t) => {
  const cases: [number, number, number][] = [[3, 64, 64], [2, 40, 26], [1, 2, 2]];
  let seed = 90;
  for (const [H, D, rd] of cases) {
    const r = rng(seed++);
    const positions = Int32Array.from([0, 3, 99, 4096, 131071]);
    const tokens = positions.length;
    const x = randn(r, tokens * H * D);
    const hf = ropeRef(x, positions, H, D, rd, 10000);
    const fileRow = (c: number) => (c >= rd ? c : 2 * (c % (rd / 2)) + Math.floor(c / (rd / 2)));
    const permuted = new Float32Array(x.length), want = new Float64Array(x.length);
    for (let i = 0; i < tokens * H; i++) {
      for (let c = 0; c < D; c++) {
        permuted[i * D + fileRow(c)] = x[i * D + c];
        want[i * D + fileRow(c)] = hf[i * D + c];
      }
    }
    const got = kernels.rope({ x: permuted, positions, tokens, nHeads: H, headDim: D, rotaryDim: rd, theta: 10000, interleaved: true });
    assertClose(t, got, want, 4e-6, 1e-6, `interleaved rope H${H} D${D} rd${rd}`);
  }
  t.end();
});

t.test('rope matches the HF rotate_half formula (partial rotary, awkward sizes, large positions, every ISA)', (t) => {
  // [heads, headDim, rotaryDim, theta]
  const cases: [number, number, number | undefined, number][] = [
    [4, 64, undefined, 10000], [3, 80, 80, 1e6], [2, 128, 64, 10000], [5, 40, 26, 500000], [1, 2, 2, 10000], [2, 96, 40, 10000],
  ];
  let seed = 40;
  for (const [H, D, rdOpt, theta] of cases) {
    const r = rng(seed++);
    const positions = Int32Array.from([0, 1, 2, 7, 100, 4095, 32768, 131071, 1000003, 17]);
    const tokens = positions.length;
    const x = randn(r, tokens * H * D);
    const rd = rdOpt ?? D;
    const ref = ropeRef(x, positions, H, D, rd, theta);
    forEachIsa((isa) => {
      const got = kernels.rope({ x, positions, tokens, nHeads: H, headDim: D, rotaryDim: rdOpt, theta });
      assertClose(t, got, ref, 4e-6, 1e-6, `rope H${H} D${D} rd${rd} theta${theta} ${isa}`);
      let same = true;
      for (let tk = 0; tk < tokens; tk++)
        for (let h = 0; h < H; h++)
          for (let c = rd; c < D; c++) if (got[(tk * H + h) * D + c] !== x[(tk * H + h) * D + c]) same = false;
      t.ok(same, `channels >= rotaryDim unchanged ${isa}`);
    });
  }
  // Position 0 is the identity; the input is not modified.
  const x = randn(rng(3), 2 * 64);
  const copy = Float32Array.from(x);
  const got = kernels.rope({ x, positions: Int32Array.of(0), tokens: 1, nHeads: 2, headDim: 64 });
  t.same(Array.from(got), Array.from(x), 'position 0: identity');
  t.same(Array.from(x), Array.from(copy), 'input not modified');
  // The float32 angle matters at large positions: a float64 angle would differ.
  const big = Int32Array.of(1000003);
  const x1 = randn(rng(4), 64);
  const g1 = kernels.rope({ x: x1, positions: big, tokens: 1, nHeads: 1, headDim: 64, theta: 10000 });
  const exactAngle = Float64Array.from(x1);
  for (let i = 0; i < 32; i++) {
    const a = (1 / 10000 ** ((2 * i) / 64)) * 1000003, c = Math.cos(a), s = Math.sin(a);
    exactAngle[i] = x1[i] * c - x1[i + 32] * s;
    exactAngle[i + 32] = x1[i + 32] * c + x1[i] * s;
  }
  t.ok(worstError(g1, exactAngle, 4e-6, 1e-6).ratio > 1, 'differs from a float64-angle rotation at position 1e6 (HF rounds the angle to float32)');
  t.end();
});

t.test('the test can fail: a wrong scale or a shifted kvLen is detected', (t) => {
  const seqs = [{ kvLen: 40, qLen: 10 }];
  const s = makeSetup(8, 64, 4, 2, 16, 'f32', seqs);
  const f = append(s, emptyCache(s), emptyCache(s), [0], [40]);
  const q = randn(rng(9), 10 * 4 * 64);
  const ref = attentionRef(s, q, 0.125, [10], [40]);
  const w1 = worstError(attend(s, f.kCache, f.vCache, q, [10], [40], 0.125 * 1.01), ref, ATOL, RTOL);
  t.ok(w1.ratio > 1, `1% scale change exceeds the tolerance (${w1.ratio.toPrecision(3)})`);
  const w2 = worstError(attend(s, f.kCache, f.vCache, q, [10], [39], 0.125), ref, ATOL, RTOL);
  t.ok(w2.ratio > 1, `one key fewer exceeds the tolerance (${w2.ratio.toPrecision(3)})`);
  t.end();
});

t.test('kvCacheAppend, pagedAttention and rope reject bad input with named errors', (t) => {
  const seqs = [{ kvLen: 10, qLen: 4 }, { kvLen: 3, qLen: 3 }];
  const s = makeSetup(11, 8, 4, 2, 4, 'f32', seqs);
  const n = s.numPages * 4 * 2 * 8;
  const bt = s.blockTable;  // [2, maxPages = 4]
  const base = {
    kCache: new Float32Array(n), vCache: new Float32Array(n), numPages: s.numPages, pageSize: 4, nKvHeads: 2,
    headDim: 8, maxPagesPerSeq: s.maxPages, blockTable: bt,
  };
  const app = { ...base, k: new Float32Array(13 * 16), v: new Float32Array(13 * 16), cuSeqlens: Int32Array.of(0, 10, 13),
    tokens: 13, startPos: Int32Array.of(0, 0) };
  const A = (o: Record<string, unknown>) => () => kernels.kvCacheAppend({ ...app, ...o } as never);
  t.doesNotThrow(A({}), 'valid append');
  t.throws(A({ k: new Float32Array(5) }), { name: 'RangeError', message: /kvCacheAppend.*'k' must have 208 elements/ });
  t.throws(A({ v: undefined }), { name: 'TypeError', message: /'v' is required/ });
  t.throws(A({ k: new Float64Array(208) }), { name: 'TypeError', message: /'k'/ });
  t.throws(A({ kCache: new Float32Array(n - 1) }), { name: 'RangeError', message: /'kCache' must have/ });
  t.throws(A({ vCache: { data: new Uint16Array(n), dtype: 'f16' } }), { name: 'TypeError', message: /'vCache'.*same/ });
  t.throws(A({ kCache: { data: new Uint16Array(n), dtype: 'bf16' }, vCache: { data: new Uint16Array(n), dtype: 'bf16' } }),
    { name: 'TypeError', message: /'kCache'.*allowed: f32 f16/ });
  t.throws(A({ cuSeqlens: Int32Array.of(0, 14, 13) }), { name: 'RangeError', message: /'cuSeqlens'.*non-decreasing/ });
  t.throws(A({ cuSeqlens: Int32Array.of(0, 10, 12) }), { name: 'RangeError', message: /'cuSeqlens' must end with tokens/ });
  t.throws(A({ cuSeqlens: Int32Array.of(1, 10, 13) }), { name: 'RangeError', message: /'cuSeqlens' must start with 0/ });
  t.throws(A({ cuSeqlens: new Float32Array([0, 13]) }), { name: 'TypeError', message: /'cuSeqlens'/ });
  t.throws(A({ startPos: Int32Array.of(0) }), { name: 'RangeError', message: /'startPos' must have 2 elements/ });
  t.throws(A({ startPos: Int32Array.of(0, -1) }), { name: 'RangeError', message: /'startPos'.*>= 0/ });
  t.throws(A({ startPos: Int32Array.of(0, 14) }), { name: 'RangeError', message: /'blockTable' is too short for sequence 1/ });
  t.throws(A({ startPos: Int32Array.of(0, 9) }), { name: 'RangeError', message: /'blockTable' element \[1, 2\] is page -1/ });
  const bt2 = Int32Array.from(bt); bt2[0] = s.numPages;
  t.throws(A({ blockTable: bt2 }), { name: 'RangeError', message: /'blockTable' element \[0, 0\] is page \d+, outside/ });
  const bt3 = Int32Array.from(bt); bt3[s.maxPages] = bt[0];
  t.throws(A({ blockTable: bt3 }), { name: 'RangeError', message: /'blockTable' maps two appended tokens to the same cache slot/ });
  t.throws(A({ blockTable: new Int32Array(3) }), { name: 'RangeError', message: /'blockTable' must have 8 elements/ });
  t.throws(A({ pageSize: 0 }), { name: 'RangeError', message: /'pageSize'/ });
  t.throws(A({ headDim: 257 }), { name: 'RangeError', message: /'headDim'/ });
  t.throws(A({ numPages: 0 }), { name: 'RangeError', message: /'numPages'/ });
  t.throws(A({ tokens: 1.5 }), { name: 'TypeError', message: /'tokens'/ });
  t.throws(A({ maxPagesPerSeq: undefined }), { name: 'TypeError', message: /'maxPagesPerSeq' is required/ });

  const att = { ...base, q: new Float32Array(7 * 4 * 8), nHeads: 4, cuSeqlens: Int32Array.of(0, 4, 7), tokens: 7,
    kvLens: Int32Array.of(10, 3), scale: 0.3 };
  const P = (o: Record<string, unknown>) => () => kernels.pagedAttention({ ...att, ...o } as never);
  t.doesNotThrow(P({}), 'valid attention');
  t.throws(P({ q: new Float32Array(7) }), { name: 'RangeError', message: /pagedAttention.*'q' must have 224 elements/ });
  t.throws(P({ nHeads: 3, q: new Float32Array(7 * 3 * 8) }), { name: 'RangeError', message: /'nKvHeads' must divide nHeads/ });
  t.throws(P({ kvLens: Int32Array.of(3, 3) }), { name: 'RangeError', message: /'kvLens' element 0 is 3; must be >= .*\(4\)/ });
  t.throws(P({ kvLens: Int32Array.of(10) }), { name: 'RangeError', message: /'kvLens' must have 2 elements/ });
  t.throws(P({ kvLens: Int32Array.of(17, 3) }), { name: 'RangeError', message: /'blockTable' is too short for sequence 0/ });
  t.throws(P({ kvLens: Int32Array.of(10, 5) }), { name: 'RangeError', message: /'blockTable' element \[1, 1\] is page -1/ });
  t.throws(P({ scale: NaN }), { name: 'RangeError', message: /'scale' must be finite/ });
  t.throws(P({ scale: Infinity }), { name: 'RangeError', message: /'scale'/ });
  t.throws(P({ scale: 1e39 }), { name: 'RangeError', message: /'scale'/ });
  t.throws(P({ scale: '1' }), { name: 'TypeError', message: /'scale'/ });
  t.throws(P({ cuSeqlens: Int32Array.of(0, 3, 7) }), { name: 'RangeError', message: /'kvLens' element 1 is 3/ });
  t.throws(P({ cuSeqlens: Int32Array.of(0, 7, 4) }), { name: 'RangeError', message: /'cuSeqlens'/ });
  t.throws(P({ kCache: { data: new Uint16Array(n), dtype: 'f16' } }), { name: 'TypeError', message: /'vCache'.*same/ });
  t.throws(P({ vCache: undefined }), { name: 'TypeError', message: /'vCache' is required/ });
  t.throws(P({ nHeads: 0 }), { name: 'RangeError', message: /'nHeads'/ });
  t.throws(P({ headDim: 0 }), { name: 'RangeError', message: /'headDim'/ });
  t.throws(() => (kernels.pagedAttention as (o: unknown) => unknown)(undefined), { name: 'TypeError', message: /pagedAttention/ });

  const rp = { x: new Float32Array(3 * 2 * 8), positions: Int32Array.of(0, 1, 2), tokens: 3, nHeads: 2, headDim: 8, theta: 10000 };
  const R = (o: Record<string, unknown>) => () => kernels.rope({ ...rp, ...o } as never);
  t.doesNotThrow(R({}), 'valid rope');
  t.throws(R({ rotaryDim: 5 }), { name: 'RangeError', message: /rope.*'rotaryDim' must be even/ });
  t.throws(R({ rotaryDim: 10 }), { name: 'RangeError', message: /'rotaryDim'/ });
  t.throws(R({ rotaryDim: 0 }), { name: 'RangeError', message: /'rotaryDim'/ });
  t.throws(R({ theta: 0 }), { name: 'RangeError', message: /'theta' must be > 0/ });
  t.throws(R({ theta: -5 }), { name: 'RangeError', message: /'theta'/ });
  t.throws(R({ theta: NaN }), { name: 'RangeError', message: /'theta'/ });
  t.throws(R({ positions: Int32Array.of(0, -1, 2) }), { name: 'RangeError', message: /'positions' element 1 is -1/ });
  t.throws(R({ positions: Int32Array.of(0, 1) }), { name: 'RangeError', message: /'positions' must have 3 elements/ });
  t.throws(R({ x: new Float32Array(5) }), { name: 'RangeError', message: /'x' must have 48 elements/ });
  t.throws(R({ headDim: 1, x: new Float32Array(6) }), { name: 'RangeError', message: /'headDim'/ });
  t.end();
});
