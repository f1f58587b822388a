// Quamba2's sort-and-cluster of the Mamba-2 SSM input x (arXiv:2503.22879
// §4.1, App. E): inside each SSD group, heads whose channel-magnitude
// profiles look alike are clustered into m head groups, each head's channels
// are sorted by magnitude, and the sorted positions are cut into n
// contiguous ranges; x then gets one int8 scale per (SSD group, head group,
// channel range) instead of one per tensor. The weights are permuted offline
// so that the float model computes the same function:
//   - the SSD is independent per (head, channel), and heads move only inside
//     their SSD group (same B / C); each channel keeps its own z, gated-norm
//     weight and out_proj column; the grouped gated RMSNorm sums over a whole
//     SSD group's channels, in any order.
// Steps, per SSD group (statistic: max |x| per channel of the conv output,
// the paper's channel maximum):
//   1. sort each head's channels ascending; L2-normalise each sorted profile;
//   2. Ward agglomerative clustering of those profiles into m head groups
//      (ties to the lowest indices); head groups ordered by their largest
//      value, heads inside a group in their original order;
//   3. per head group, the n contiguous ranges of sorted positions that
//      minimise the within-range sum of squares of the heads' sorted values
//      (an exact segmentation by dynamic programming; Quamba runs KMeans
//      initialised at every headdim/n-th position and asserts the same
//      contiguity).
import type { MambaConfig } from '../model/config';
import type { FloatTensor } from './rotate';

export interface SortAndClusterLayout {
  nheads: number;
  headdim: number;
  ngroups: number;
  /** New head h holds old head headIndex[h] (int32 [nheads]). */
  headIndex: Int32Array;
  /** New x channel c holds old channel channelIndex[c] (int32 [nheads · headdim]). */
  channelIndex: Int32Array;
  /** Per SSD group, the end (exclusive, heads from the group's first) of each head group: int32 [ngroups, m]. */
  headGroupRange: Int32Array;
  /** Per (SSD group, head group), the end (exclusive) of each channel range: int32 [ngroups, m, n]. */
  dimGroupRange: Int32Array;
  m: number;
  n: number;
}

/** The layout for one layer from its per-channel statistic (max |x|, [nheads · headdim], original order). */
export function sortAndCluster(stat: ArrayLike<number>, nheads: number, headdim: number, ngroups: number, m = 4, n = 4): SortAndClusterLayout {
  const P = headdim, Hg = nheads / ngroups;
  const mm = Math.min(m, Hg), nn = Math.min(n, P);
  const headIndex = new Int32Array(nheads), channelIndex = new Int32Array(nheads * P);
  const headGroupRange = new Int32Array(ngroups * mm), dimGroupRange = new Int32Array(ngroups * mm * nn);
  for (let g = 0; g < ngroups; g++) {
    // 1. sorted profiles
    const order: number[][] = [], sorted: number[][] = [], unit: number[][] = [];
    for (let i = 0; i < Hg; i++) {
      const h = g * Hg + i;
      const o = Array.from({ length: P }, (_, p) => p).sort((a, b) => stat[h * P + a] - stat[h * P + b] || a - b);
      const v = o.map((p) => stat[h * P + p]);
      const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0)) || 1;
      order.push(o); sorted.push(v); unit.push(v.map((x) => x / norm));
    }
    // 2. head groups
    const clusters = wardClusters(unit, mm);
    clusters.sort((a, b) => Math.max(...a.map((i) => sorted[i][P - 1])) - Math.max(...b.map((i) => sorted[i][P - 1])) || a[0] - b[0]);
    let next = 0;
    clusters.forEach((members, j) => {
      for (const i of members) {
        const h = g * Hg + next, old = g * Hg + i;
        headIndex[h] = old;
        for (let p = 0; p < P; p++) channelIndex[h * P + p] = old * P + order[i][p];
        next++;
      }
      headGroupRange[g * mm + j] = next;
      // 3. channel ranges of this head group
      const ends = segment(members.map((i) => sorted[i]), P, nn);
      ends.forEach((e, k) => { dimGroupRange[(g * mm + j) * nn + k] = e; });
    });
  }
  return { nheads, headdim, ngroups, headIndex, channelIndex, headGroupRange, dimGroupRange, m: mm, n: nn };
}

/**
 * Ward agglomerative clustering of `points` into k clusters: repeatedly merge
 * the two clusters whose union increases the within-cluster sum of squares
 * least, Δ = |A|·|B| / (|A| + |B|) · ‖μ_A − μ_B‖² (ties: the lowest indices).
 */
function wardClusters(points: number[][], k: number): number[][] {
  let clusters = points.map((p, i) => ({ members: [i], mean: p.slice() }));
  while (clusters.length > k) {
    let best = Infinity, bi = 0, bj = 1;
    for (let i = 0; i < clusters.length; i++) {
      for (let j = i + 1; j < clusters.length; j++) {
        const a = clusters[i], b = clusters[j];
        let d2 = 0;
        for (let q = 0; q < a.mean.length; q++) d2 += (a.mean[q] - b.mean[q]) ** 2;
        const delta = (a.members.length * b.members.length) / (a.members.length + b.members.length) * d2;
        if (delta < best) { best = delta; bi = i; bj = j; }
      }
    }
    const a = clusters[bi], b = clusters[bj], na = a.members.length, nb = b.members.length;
    const merged = { members: [...a.members, ...b.members].sort((x, y) => x - y), mean: a.mean.map((v, q) => (v * na + b.mean[q] * nb) / (na + nb)) };
    clusters = clusters.filter((_, i) => i !== bi && i !== bj);
    clusters.splice(bi, 0, merged);
  }
  return clusters.map((c) => c.members);
}

/**
 * The n contiguous ranges of positions 0..P-1 minimising the sum over ranges of
 * Σ_heads Σ_{p ∈ range} (v_head[p] − mean_range(v_head))²; returns the exclusive ends.
 */
function segment(profiles: number[][], P: number, n: number): number[] {
  // cost(a, b) of positions [a, b) from prefix sums per head
  const H = profiles.length;
  const s1 = profiles.map((v) => { const c = [0]; for (let p = 0; p < P; p++) c.push(c[p] + v[p]); return c; });
  const s2 = profiles.map((v) => { const c = [0]; for (let p = 0; p < P; p++) c.push(c[p] + v[p] * v[p]); return c; });
  const cost = (a: number, b: number) => {
    let c = 0;
    for (let h = 0; h < H; h++) { const s = s1[h][b] - s1[h][a]; c += s2[h][b] - s2[h][a] - (s * s) / (b - a); }
    return c;
  };
  // best[k][b]: cost of positions [0, b) in k ranges; from[k][b]: start of the last range
  const best = Array.from({ length: n + 1 }, () => new Array<number>(P + 1).fill(Infinity));
  const from = Array.from({ length: n + 1 }, () => new Array<number>(P + 1).fill(0));
  best[0][0] = 0;
  for (let k = 1; k <= n; k++) {
    for (let b = k; b <= P; b++) {
      for (let a = k - 1; a < b; a++) {
        const c = best[k - 1][a] + cost(a, b);
        if (c < best[k][b]) { best[k][b] = c; from[k][b] = a; }
      }
    }
  }
  const ends: number[] = [];
  for (let k = n, b = P; k >= 1; k--) { ends.unshift(b); b = from[k][b]; }
  return ends;
}

/** Rows [r0, r0 + n) of a row-major matrix with `cols` columns, reordered by perm (new row i = old row r0 + perm[i]). */
function permuteRows(data: Float32Array, cols: number, r0: number, perm: Int32Array): void {
  const block = data.slice(r0 * cols, (r0 + perm.length) * cols);
  for (let i = 0; i < perm.length; i++) data.set(block.subarray(perm[i] * cols, (perm[i] + 1) * cols), (r0 + i) * cols);
}

/**
 * Applies a layout to a Mamba-2 layer's float weights (Hugging Face names,
 * prefix "backbone.layers.<i>.mixer."), in place: in_proj rows of z and x
 * and conv1d's x channels by channelIndex, in_proj's dt rows, A_log, D and
 * dt_bias by headIndex, the gated norm weight and out_proj's input columns by
 * channelIndex. The float function is unchanged.
 */
export function permuteMamba2Layer(weights: Map<string, FloatTensor>, prefix: string, c: MambaConfig, l: SortAndClusterLayout): void {
  const di = c.dInner, GN = c.ngroups * c.dState, conv = di + 2 * GN;
  const get = (name: string) => weights.get(prefix + name);
  for (const name of ['in_proj.weight', 'in_proj.bias']) {
    const t = get(name);
    if (!t) continue;
    const cols = t.shape.length === 2 ? t.shape[1] : 1;
    permuteRows(t.data, cols, 0, l.channelIndex);        // z
    permuteRows(t.data, cols, di, l.channelIndex);       // x
    permuteRows(t.data, cols, di + conv, l.headIndex);   // dt
  }
  for (const name of ['conv1d.weight', 'conv1d.bias']) {
    const t = get(name);
    if (t) permuteRows(t.data, t.data.length / conv, 0, l.channelIndex);
  }
  for (const name of ['A_log', 'D', 'dt_bias']) {
    const t = get(name);
    if (t) permuteRows(t.data, t.data.length / c.nheads, 0, l.headIndex);
  }
  const norm = get('norm.weight');
  if (norm) permuteRows(norm.data, 1, 0, l.channelIndex);
  const out = get('out_proj.weight');
  if (out) {
    const [rows, cols] = out.shape;
    for (let r = 0; r < rows; r++) {
      const row = out.data.slice(r * cols, (r + 1) * cols);
      for (let i = 0; i < di; i++) out.data[r * cols + i] = row[l.channelIndex[i]];
    }
  }
}

/** Per-channel values [nheads · headdim] in the layout's new order. */
export function permuteChannels(v: ArrayLike<number>, l: SortAndClusterLayout): Float32Array {
  return Float32Array.from(l.channelIndex, (old) => v[old]);
}

/**
 * One value per (SSD group, head group, channel range) block: the maximum of
 * `absmax` (new order) over the block's channels, spread back to every channel.
 */
export function blockMaxima(absmax: ArrayLike<number>, l: SortAndClusterLayout): Float32Array {
  const P = l.headdim, Hg = l.nheads / l.ngroups, out = new Float32Array(l.nheads * P);
  for (let g = 0; g < l.ngroups; g++) {
    let h0 = 0;
    for (let j = 0; j < l.m; j++) {
      const h1 = l.headGroupRange[g * l.m + j];
      let p0 = 0;
      for (let k = 0; k < l.n; k++) {
        const p1 = l.dimGroupRange[(g * l.m + j) * l.n + k];
        let mx = 0;
        for (let h = h0; h < h1; h++) for (let p = p0; p < p1; p++) mx = Math.max(mx, absmax[(g * Hg + h) * P + p]);
        for (let h = h0; h < h1; h++) for (let p = p0; p < p1; p++) out[(g * Hg + h) * P + p] = mx;
        p0 = p1;
      }
      h0 = h1;
    }
  }
  return out;
}
