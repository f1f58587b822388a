// Quamba2's sort-and-cluster (lib/quant/sort_cluster.ts): the layout's
// invariants, Ward clustering that separates obvious head families, an
// optimal channel segmentation (checked by brute force), block maxima, and
// the permuted weights computing the same function as the original (float64
// reference and engine).
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../../lib';
import { blockMaxima, permuteMamba2Layer, sortAndCluster, type SortAndClusterLayout } from '../../lib/quant/sort_cluster';
import type { FloatTensor } from '../../lib/quant/rotate';
import { hfConfigJson } from '../../lib/quant/hf_config';
import { writeRandomCheckpoint, rng } from '../../lib/testing/random_checkpoint';
import { writeSafetensors } from '../../lib/testing/safetensors_writer';
import { referenceForward } from '../helpers/reference_model';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-sortcluster-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

function checkLayout(t: Test, l: SortAndClusterLayout, stat: ArrayLike<number>, label: string) {
  const { nheads: H, headdim: P, ngroups: G } = l, Hg = H / G;
  const heads = Array.from(l.headIndex).sort((a, b) => a - b);
  t.same(heads, Array.from({ length: H }, (_, i) => i), `${label}: headIndex is a permutation`);
  let inGroup = true, channelsOk = true, sortedOk = true;
  for (let h = 0; h < H; h++) {
    if (Math.floor(l.headIndex[h] / Hg) !== Math.floor(h / Hg)) inGroup = false;
    for (let p = 0; p < P; p++) {
      const old = l.channelIndex[h * P + p];
      if (Math.floor(old / P) !== l.headIndex[h]) channelsOk = false;
      if (p > 0 && stat[old] < stat[l.channelIndex[h * P + p - 1]]) sortedOk = false;
    }
  }
  t.ok(inGroup, `${label}: heads stay inside their SSD group`);
  t.ok(channelsOk, `${label}: each new head's channels come from its old head`);
  t.same(Array.from(l.channelIndex).sort((a, b) => a - b), Array.from({ length: H * P }, (_, i) => i), `${label}: channelIndex is a permutation`);
  t.ok(sortedOk, `${label}: channels ascend by the statistic inside each head`);
  let rangesOk = true;
  for (let g = 0; g < G; g++) {
    let prev = 0;
    for (let j = 0; j < l.m; j++) {
      const e = l.headGroupRange[g * l.m + j];
      if (e <= prev) rangesOk = false;
      prev = e;
      let pp = 0;
      for (let k = 0; k < l.n; k++) { const d = l.dimGroupRange[(g * l.m + j) * l.n + k]; if (d <= pp) rangesOk = false; pp = d; }
      if (pp !== P) rangesOk = false;
    }
    if (prev !== Hg) rangesOk = false;
  }
  t.ok(rangesOk, `${label}: head-group and channel ranges are non-empty, increasing, and cover the group / head`);
}

t.test('layout invariants on random statistics, awkward sizes', (t) => {
  const r = rng(5);
  for (const [H, P, G] of [[24, 64, 1], [8, 16, 2], [3, 5, 1], [12, 3, 3], [2, 2, 2]]) {
    const stat = Float32Array.from({ length: H * P }, () => Math.exp(2 * r() - 1) * (r() < 0.05 ? 20 : 1));
    const l = sortAndCluster(stat, H, P, G);
    t.equal(l.m, Math.min(4, H / G), `H=${H} P=${P} G=${G}: m`);
    t.equal(l.n, Math.min(4, P), `H=${H} P=${P} G=${G}: n`);
    checkLayout(t, l, stat, `H=${H} P=${P} G=${G}`);
  }
  t.end();
});

t.test('Ward clustering separates head families; the channel ranges are the optimal segmentation', (t) => {
  // 8 heads of 8 channels: heads 1, 4, 6 have one huge channel, the others are flat-ish
  const H = 8, P = 8, r = rng(9);
  const stat = new Float32Array(H * P);
  for (let h = 0; h < H; h++) for (let p = 0; p < P; p++) stat[h * P + p] = 1 + 0.1 * r() + ([1, 4, 6].includes(h) && p === 3 ? 50 : 0);
  const l = sortAndCluster(stat, H, P, 1, 2, 3);
  const groupOf = (old: number) => { const h = Array.from(l.headIndex).indexOf(old); return h < l.headGroupRange[0] ? 0 : 1; };
  t.same([1, 4, 6].map(groupOf), [1, 1, 1], 'the outlier heads form the second head group (ordered by their largest value)');
  t.same([0, 2, 3, 5, 7].map(groupOf), [0, 0, 0, 0, 0], 'the flat heads form the first');
  // brute force over all 3-range cuts of the first head group's sorted profiles
  const members = Array.from(l.headIndex).slice(0, l.headGroupRange[0]);
  const profiles = members.map((h) => Array.from(stat.slice(h * P, (h + 1) * P)).sort((a, b) => a - b));
  const sse = (a: number, b: number) => profiles.reduce((s, v) => { const seg = v.slice(a, b), m = seg.reduce((x, y) => x + y, 0) / seg.length; return s + seg.reduce((x, y) => x + (y - m) ** 2, 0); }, 0);
  let best = Infinity;
  for (let a = 1; a < P - 1; a++) for (let b = a + 1; b < P; b++) best = Math.min(best, sse(0, a) + sse(a, b) + sse(b, P));
  const e = Array.from(l.dimGroupRange.slice(0, 3));
  const got = sse(0, e[0]) + sse(e[0], e[1]) + sse(e[1], P);
  t.ok(Math.abs(got - best) <= 1e-9 * (1 + best), `segmentation cost ${got.toExponential(4)} equals the brute-force optimum ${best.toExponential(4)} (cuts ${e})`);
  t.end();
});

t.test('blockMaxima: one value per (group, head group, channel range)', (t) => {
  const r = rng(3), H = 6, P = 5, G = 2;
  const stat = Float32Array.from({ length: H * P }, () => r());
  const l = sortAndCluster(stat, H, P, G, 2, 2);
  const v = Float32Array.from({ length: H * P }, () => r());
  const got = blockMaxima(v, l);
  let ok = true;
  const Hg = H / G;
  for (let g = 0; g < G; g++) for (let h = 0; h < Hg; h++) for (let p = 0; p < P; p++) {
    const j = h < l.headGroupRange[g * 2] ? 0 : 1, h0 = j === 0 ? 0 : l.headGroupRange[g * 2], h1 = l.headGroupRange[g * 2 + j];
    const k = p < l.dimGroupRange[(g * 2 + j) * 2] ? 0 : 1, p0 = k === 0 ? 0 : l.dimGroupRange[(g * 2 + j) * 2], p1 = l.dimGroupRange[(g * 2 + j) * 2 + k];
    let mx = 0;
    for (let hh = h0; hh < h1; hh++) for (let pp = p0; pp < p1; pp++) mx = Math.max(mx, v[(g * Hg + hh) * P + pp]);
    if (got[(g * Hg + h) * P + p] !== mx) ok = false;
  }
  t.ok(ok, 'every channel holds its block maximum');
  t.end();
});

t.test('the permuted Mamba-2 weights compute the same function (float64 reference and engine)', async (t) => {
  const dir = path.join(root, 'src');
  const ck = writeRandomCheckpoint(dir, { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 96, dtype: 'f32', tied: true, dialect: 'hf', seed: 8, dState: 16, headdim: 8, ngroups: 2, useBias: true });
  const c = ck.config;
  const tokens = Array.from({ length: 19 }, (_, i) => (i * 37 + 5) % 96);
  const want = referenceForward(c, ck.weights, tokens);
  const r = rng(2);
  const w = new Map<string, FloatTensor>();
  for (const [name, v] of ck.weights) {
    let shape = [v.length];
    if (name.endsWith('out_proj.weight')) shape = [c.dModel, c.dInner];
    else if (name.endsWith('in_proj.weight')) shape = [v.length / c.dModel, c.dModel];
    else if (name.endsWith('embeddings.weight')) shape = [c.vocabSize, c.dModel];
    else if (name.endsWith('conv1d.weight')) shape = [v.length / c.dConv, 1, c.dConv];
    w.set(name, { data: Float32Array.from(v), shape });
  }
  for (let i = 0; i < c.nLayer; i++) {
    const stat = Float32Array.from({ length: c.dInner }, () => Math.exp(3 * r()));
    const l = sortAndCluster(stat, c.nheads, c.headdim, c.ngroups);
    checkLayout(t, l, stat, `layer ${i}`);
    permuteMamba2Layer(w, `backbone.layers.${i}.mixer.`, c, l);
  }
  let moved = 0;
  for (const [name, v] of w) if (v.data.some((x, k) => x !== Math.fround(ck.weights.get(name)![k]))) moved++;
  t.ok(moved >= 10, `the permutation moved ${moved} tensors`);
  const got = referenceForward(c, new Map([...w].map(([n, v]) => [n, Float64Array.from(v.data)])), tokens);
  let worst = 0, scale = 0;
  for (let i = 0; i < got.length; i++) { worst = Math.max(worst, Math.abs(got[i] - want[i])); scale = Math.max(scale, Math.abs(want[i])); }
  t.ok(worst <= 1e-9 * scale, `float64 reference: permuted equals original (max err ${worst.toExponential(2)} of ${scale.toFixed(2)})`);
  const out = path.join(root, 'permuted');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(hfConfigJson(c)));
  writeSafetensors(path.join(out, 'model.safetensors'), [...w].map(([name, v]) => ({ name, dtype: 'F32' as const, shape: v.shape, data: new Uint8Array(v.data.buffer) })));
  const m0 = await loadModel(dir), m1 = await loadModel(out);
  const a = await m0.forward(tokens), b = await m1.forward(tokens);
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  t.ok(e <= 1e-4 * scale, `engine: permuted equals original (max diff ${e.toExponential(2)}; float32 sums in another order)`);
  m0.dispose(); m1.dispose();
});
