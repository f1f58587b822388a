// Causal depthwise conv1d (prefill over packed sequences, one-token update)
// against float64 references written from the F.conv1d definition.
import t from 'tap';
import { kernels } from '../../lib';
import type { FloatData } from '../../lib/kernels';
import { assertClose, forEachIsa, randn, rng, silu, toBf16, fromBf16, toF16, fromF16 } from '../helpers/reference';

type Dt = 'f32' | 'f16' | 'bf16';

/** The array as passed to the kernel, and the values it holds (what the reference uses). */
function asDtype(v: Float32Array, dt: Dt): { arg: FloatData; eff: Float32Array } {
  if (dt === 'f32') return { arg: v, eff: v };
  const h = dt === 'f16' ? toF16(v) : toBf16(v);
  return { arg: { data: h, dtype: dt }, eff: dt === 'f16' ? fromF16(h) : fromBf16(h) };
}

function cuFromLens(lens: number[]): Int32Array {
  const cu = new Int32Array(lens.length + 1);
  for (let i = 0; i < lens.length; i++) cu[i + 1] = cu[i] + lens[i];
  return cu;
}

/**
 * float64 reference: per sequence and channel, xp = cat(initialState (or W-1
 * zeros), x) — F.conv1d(x, w.unsqueeze(1), bias, padding=W-1,
 * groups=C)[..., :L] when there is no initial state — then
 * out[t] = b + sum_k w[k] * xp[t + k], state = xp[L .. L+W-2].
 */
function convRef(
  x: Float32Array, w: ArrayLike<number>, bias: ArrayLike<number> | null, C: number, W: number,
  cu: Int32Array, init: Float32Array | null, act: boolean,
): { out: Float64Array; state: Float64Array } {
  const nseq = cu.length - 1, S = W - 1;
  const out = new Float64Array(cu[nseq] * C), state = new Float64Array(nseq * C * S);
  for (let s = 0; s < nseq; s++) {
    const start = cu[s], L = cu[s + 1] - cu[s];
    for (let c = 0; c < C; c++) {
      const xp: number[] = [];
      for (let j = 0; j < S; j++) xp.push(init ? init[(s * C + c) * S + j] : 0);
      for (let p = 0; p < L; p++) xp.push(x[(start + p) * C + c]);
      for (let p = 0; p < L; p++) {
        let v = bias ? bias[c] : 0;
        for (let k = 0; k < W; k++) v += w[c * W + k] * xp[p + k];
        out[(start + p) * C + c] = act ? silu(v) : v;
      }
      for (let j = 0; j < S; j++) state[(s * C + c) * S + j] = xp[L + j];
    }
  }
  return { out, state };
}

/** float64 reference of the decode step (causal_conv1d_update_ref): x_new = cat(state, x). */
function updateRef(
  x: Float32Array, state: Float32Array, w: ArrayLike<number>, bias: ArrayLike<number> | null,
  B: number, C: number, W: number, idx: Int32Array | null, act: boolean,
): { out: Float64Array; state: Float64Array } {
  const S = W - 1, out = new Float64Array(B * C), ns = Float64Array.from(state);
  for (let b = 0; b < B; b++) {
    const slot = idx ? idx[b] : b;
    for (let c = 0; c < C; c++) {
      const xn: number[] = [];
      for (let j = 0; j < S; j++) xn.push(state[(slot * C + c) * S + j]);
      xn.push(x[b * C + c]);
      let v = bias ? bias[c] : 0;
      for (let k = 0; k < W; k++) v += w[c * W + k] * xn[k];
      out[b * C + c] = act ? silu(v) : v;
      for (let j = 0; j < S; j++) ns[(slot * C + c) * S + j] = xn[j + 1];
    }
  }
  return { out, state: ns };
}

// Tolerance: at most 8 products of |x| ~ 1 (randn) by |w| <= ~1.5 plus a
// bias, accumulated in float32 (each fma rounds once, ~6e-8 relative to the
// running sum), then SiLU whose AVX exp is ~2 ulp: atol = rtol = 2e-6 (worst seen ~0.2 of it).
// States are copies of inputs and must match exactly (atol 1e-30).
const ATOL = 2e-6, RTOL = 2e-6, EXACT = 1e-30;

const seqConfigs: number[][] = [
  [6],                          // one sequence
  [0, 3, 1, 9, 2, 0, 17],       // unequal, empty, shorter than W-1
  [300, 0, 1, 600, 2],          // long: several token blocks per sequence, threaded
];

t.test('causalConv1d matches the float64 reference (widths, channels, packing, state, bias, activation, dtypes, every ISA)', (t) => {
  const r = rng(11);
  let cfg = 0;
  for (const W of [1, 2, 3, 4, 5, 8]) {
    for (const C of [1, 7, 37, 200]) {
      for (const lens of seqConfigs) {
        if (lens.length === 5 && C < 37 && W !== 4) continue; // keep the long config to a few cases
        const cu = cuFromLens(lens), T = cu[cu.length - 1], nseq = lens.length;
        const x = randn(r, T * C), w32 = randn(r, C * W, 0.5), b32 = randn(r, C, 0.5);
        const init = randn(r, nseq * C * (W - 1));
        for (const dt of ['f32', 'f16', 'bf16'] as const) {
          const w = asDtype(w32, dt), b = asDtype(b32, dt);
          for (const withInit of [false, true]) {
            for (const withBias of [false, true]) {
              for (const act of ['none', 'silu'] as const) {
                cfg++;
                const ref = convRef(x, w.eff, withBias ? b.eff : null, C, W, cu, withInit ? init : null, act === 'silu');
                // The single-sequence config also runs without cuSeqlens (its default).
                const cuArg = lens.length === 1 && cfg % 2 === 0 ? undefined : cu;
                forEachIsa((isa) => {
                  const got = kernels.causalConv1d({
                    x, weight: w.arg, bias: withBias ? b.arg : undefined, tokens: T, channels: C, width: W,
                    cuSeqlens: cuArg, initialState: withInit ? init : undefined, activation: act,
                  });
                  const tag = `W=${W} C=${C} lens=[${lens}] ${dt} init=${withInit} bias=${withBias} ${act} ${isa}`;
                  assertClose(t, got.out, ref.out, ATOL, RTOL, `out ${tag}`);
                  assertClose(t, got.convState, ref.state, EXACT, 0, `convState ${tag}`);
                });
              }
            }
          }
        }
      }
    }
  }
  t.end();
});

t.test('causalConv1dUpdate matches the float64 reference (every ISA, dtypes, stateIndices)', (t) => {
  const r = rng(12);
  for (const W of [1, 2, 3, 4, 5, 8]) {
    for (const [B, C] of [[1, 1], [3, 7], [2, 37], [5, 200]]) {
      const x = randn(r, B * C), w32 = randn(r, C * W, 0.5), b32 = randn(r, C, 0.5);
      const slots = 2 * B + 1;
      const pool = randn(r, slots * C * (W - 1));
      // A permutation of B distinct slots out of `slots`, not in order.
      const idx = new Int32Array(B);
      for (let i = 0; i < B; i++) idx[i] = slots - 1 - 2 * i;
      if (new Set(idx).size !== B) throw new Error('test setup: indices not distinct');
      for (const dt of ['f32', 'f16', 'bf16'] as const) {
        const w = asDtype(w32, dt), b = asDtype(b32, dt);
        for (const withBias of [false, true]) {
          for (const act of ['none', 'silu'] as const) {
            const bias = withBias ? b.eff : null;
            const direct = pool.subarray(0, B * C * (W - 1));
            const ref = updateRef(x, direct, w.eff, bias, B, C, W, null, act === 'silu');
            const refIdx = updateRef(x, pool, w.eff, bias, B, C, W, idx, act === 'silu');
            forEachIsa((isa) => {
              const tag = `W=${W} B=${B} C=${C} ${dt} bias=${withBias} ${act} ${isa}`;
              const directCopy = direct.slice();
              const got = kernels.causalConv1dUpdate({
                x, convState: directCopy, weight: w.arg, bias: withBias ? b.arg : undefined,
                batch: B, channels: C, width: W, activation: act,
              });
              assertClose(t, got.out, ref.out, ATOL, RTOL, `out ${tag}`);
              assertClose(t, got.convState, ref.state, EXACT, 0, `convState ${tag}`);
              t.same(Array.from(directCopy), Array.from(direct), `input convState untouched ${tag}`);
              const gotIdx = kernels.causalConv1dUpdate({
                x, convState: pool, weight: w.arg, bias: withBias ? b.arg : undefined,
                batch: B, channels: C, width: W, activation: act, stateIndices: idx, stateSlots: slots,
              });
              assertClose(t, gotIdx.out, refIdx.out, ATOL, RTOL, `out (stateIndices) ${tag}`);
              assertClose(t, gotIdx.convState, refIdx.state, EXACT, 0, `convState (stateIndices, unused slots unchanged) ${tag}`);
            });
          }
        }
      }
    }
  }
  t.end();
});

t.test('prefill of L tokens then k updates equals one prefill of L+k tokens', (t) => {
  const r = rng(13);
  for (const W of [1, 2, 4, 5, 8]) {
    for (const C of [7, 200]) {
      const lens = [0, 1, W - 1, 5, 40], k = 6, nseq = lens.length;
      const fullLens = lens.map((l) => l + k), cuFull = cuFromLens(fullLens), cuPre = cuFromLens(lens);
      const xFull = randn(r, cuFull[nseq] * C), w = randn(r, C * W, 0.5), b = randn(r, C, 0.5);
      const init = randn(r, nseq * C * (W - 1));
      const xPre = new Float32Array(cuPre[nseq] * C);
      for (let s = 0; s < nseq; s++) xPre.set(xFull.subarray(cuFull[s] * C, (cuFull[s] + lens[s]) * C), cuPre[s] * C);
      for (const withInit of [false, true]) {
        forEachIsa((isa) => {
          const common = { weight: w, bias: b, channels: C, width: W, activation: 'silu' as const };
          const initialState = withInit ? init : undefined;
          const full = kernels.causalConv1d({ ...common, x: xFull, tokens: cuFull[nseq], cuSeqlens: cuFull, initialState });
          const pre = kernels.causalConv1d({ ...common, x: xPre, tokens: cuPre[nseq], cuSeqlens: cuPre, initialState });
          const tag = `W=${W} C=${C} init=${withInit} ${isa}`;
          const outFull = new Float32Array(full.out.length);
          for (let s = 0; s < nseq; s++) outFull.set(pre.out.subarray(cuPre[s] * C, cuPre[s + 1] * C), cuFull[s] * C);
          let state = pre.convState;
          for (let step = 0; step < k; step++) {
            const xs = new Float32Array(nseq * C);
            for (let s = 0; s < nseq; s++) xs.set(xFull.subarray((cuFull[s] + lens[s] + step) * C, (cuFull[s] + lens[s] + step + 1) * C), s * C);
            const u = kernels.causalConv1dUpdate({ ...common, x: xs, convState: state, batch: nseq });
            for (let s = 0; s < nseq; s++) outFull.set(u.out.subarray(s * C, (s + 1) * C), (cuFull[s] + lens[s] + step) * C);
            state = u.convState;
          }
          // Same float32 operations in the same order except for SiLU: tight.
          assertClose(t, outFull, full.out, 1e-6, 1e-6, `out ${tag}`);
          assertClose(t, state, full.convState, EXACT, 0, `convState ${tag}`);
        });
      }
    }
  }
  t.end();
});

t.test('packed sequences equal separate runs (no leakage across sequences)', (t) => {
  const r = rng(14);
  const W = 4, C = 37, lens = [5, 0, 2, 300, 1, 3];
  const cu = cuFromLens(lens), nseq = lens.length, S = W - 1;
  const x = randn(r, cu[nseq] * C), w = toBf16(randn(r, C * W, 0.5)), b = randn(r, C);
  const init = randn(r, nseq * C * S);
  // Huge values in the neighbours would show up in any leaked product.
  x.fill(1e30, cu[3] * C, cu[4] * C - 7 * C);
  forEachIsa((isa) => {
    const common = { weight: { data: w, dtype: 'bf16' as const }, bias: b, channels: C, width: W, activation: 'silu' as const };
    const packed = kernels.causalConv1d({ ...common, x, tokens: cu[nseq], cuSeqlens: cu, initialState: init });
    for (let s = 0; s < nseq; s++) {
      const one = kernels.causalConv1d({
        ...common, x: x.slice(cu[s] * C, cu[s + 1] * C), tokens: lens[s],
        initialState: init.slice(s * C * S, (s + 1) * C * S),
      });
      assertClose(t, packed.out.subarray(cu[s] * C, cu[s + 1] * C), one.out, EXACT, 0, `out seq ${s} ${isa}`);
      assertClose(t, packed.convState.subarray(s * C * S, (s + 1) * C * S), one.convState, EXACT, 0, `state seq ${s} ${isa}`);
    }
  });
  t.end();
});

t.test('causalConv1d: batch of equal-length sequences and zero tokens', (t) => {
  const r = rng(15);
  const W = 4, C = 16, L = 9, B = 3;
  const cu = Int32Array.from([0, L, 2 * L, 3 * L]);
  const x = randn(r, B * L * C), w = randn(r, C * W);
  const ref = convRef(x, w, null, C, W, cu, null, false);
  const got = kernels.causalConv1d({ x, weight: w, tokens: B * L, channels: C, width: W, cuSeqlens: cu });
  assertClose(t, got.out, ref.out, ATOL, RTOL, 'batch 3 x 9 tokens');
  assertClose(t, got.convState, ref.state, EXACT, 0, 'batch 3 state');
  const init = randn(r, C * (W - 1));
  const empty = kernels.causalConv1d({ x: new Float32Array(0), weight: w, tokens: 0, channels: C, width: W, initialState: init });
  t.equal(empty.out.length, 0);
  t.same(Array.from(empty.convState), Array.from(init), 'zero tokens: state = initial state');
  const none = kernels.causalConv1d({ x: new Float32Array(0), weight: w, tokens: 0, channels: C, width: W, cuSeqlens: new Int32Array([0]) });
  t.equal(none.convState.length, 0, 'zero sequences');
  const u = kernels.causalConv1dUpdate({ x: new Float32Array(0), convState: new Float32Array(0), weight: w, batch: 0, channels: C, width: W });
  t.equal(u.out.length, 0, 'update with batch 0');
  t.end();
});

t.test('conv1d kernels reject bad input with named errors', (t) => {
  const C = 3, W = 4, T = 5;
  const x = new Float32Array(T * C), w = new Float32Array(C * W), b = new Float32Array(C);
  const ok = { x, weight: w, tokens: T, channels: C, width: W };
  const cc = (o: Record<string, unknown>) => () => kernels.causalConv1d({ ...ok, ...o } as never);
  t.doesNotThrow(cc({}), 'baseline is valid');
  t.throws(cc({ x: new Float32Array(T * C - 1) }), { name: 'RangeError', message: /'x' must have 15 elements/ });
  t.throws(cc({ x: new Float64Array(T * C) }), { name: 'TypeError', message: /'x'/ });
  t.throws(cc({ weight: new Float32Array(C * W + 1) }), { name: 'RangeError', message: /'weight'/ });
  t.throws(cc({ weight: { data: new Uint16Array(C * W), dtype: 'f8' } }), { name: 'TypeError', message: /weightDtype/ });
  t.throws(cc({ weight: new Int32Array(C * W) }), { name: 'TypeError', message: /'weight'/ });
  t.throws(cc({ bias: new Float32Array(C + 1) }), { name: 'RangeError', message: /'bias'/ });
  t.throws(cc({ bias: new Uint16Array(C) }), { name: 'TypeError', message: /'bias'/ });
  t.throws(cc({ width: 0 }), { name: 'RangeError', message: /'width'/ });
  t.throws(cc({ width: 9, weight: new Float32Array(C * 9) }), { name: 'RangeError', message: /'width'/ });
  t.throws(cc({ width: 2.5 }), { name: 'TypeError', message: /'width'/ });
  t.throws(cc({ tokens: -1 }), { name: 'RangeError', message: /'tokens'/ });
  t.throws(cc({ channels: 0 }), { name: 'RangeError', message: /'channels'/ });
  t.throws(cc({ tokens: 2 ** 40, channels: 2 ** 20 }), { name: 'RangeError', message: /'x'/ });
  t.throws(cc({ cuSeqlens: new Int32Array([0, 3, 2, 5]) }), { name: 'RangeError', message: /'cuSeqlens' must be non-decreasing/ });
  t.throws(cc({ cuSeqlens: new Int32Array([0, 3, 4]) }), { name: 'RangeError', message: /'cuSeqlens' must end at tokens/ });
  t.throws(cc({ cuSeqlens: new Int32Array([0, 3, 6]) }), { name: 'RangeError', message: /'cuSeqlens' must end at tokens/ });
  t.throws(cc({ cuSeqlens: new Int32Array([1, 3, 5]) }), { name: 'RangeError', message: /'cuSeqlens' must start at 0/ });
  t.throws(cc({ cuSeqlens: new Int32Array([0, -2, 5]) }), { name: 'RangeError', message: /'cuSeqlens'/ });
  t.throws(cc({ cuSeqlens: new Int32Array([]) }), { name: 'RangeError', message: /'cuSeqlens'/ });
  t.throws(cc({ cuSeqlens: Float32Array.from([0, 5]) }), { name: 'TypeError', message: /'cuSeqlens'/ });
  t.throws(cc({ initialState: new Float32Array(C * (W - 1) + 1) }), { name: 'RangeError', message: /'initialState'/ });
  t.throws(cc({ cuSeqlens: new Int32Array([0, 2, 5]), initialState: new Float32Array(C * (W - 1)) }), { name: 'RangeError', message: /'initialState' must have 18 elements/ });
  t.throws(cc({ activation: 'relu' }), { name: 'RangeError', message: /'activation'/ });
  t.throws(cc({ activation: true }), { name: 'TypeError', message: /'activation'/ });
  t.throws(() => kernels.causalConv1d(undefined as never), { name: 'TypeError' });

  const B = 2, st = new Float32Array(B * C * (W - 1));
  const okU = { x: new Float32Array(B * C), convState: st, weight: w, bias: b, batch: B, channels: C, width: W };
  const cu = (o: Record<string, unknown>) => () => kernels.causalConv1dUpdate({ ...okU, ...o } as never);
  t.doesNotThrow(cu({}), 'baseline is valid');
  t.throws(cu({ convState: undefined }), { name: 'TypeError', message: /'convState' is required/ });
  t.throws(cu({ convState: new Float32Array(B * C * (W - 1) - 1) }), { name: 'RangeError', message: /'convState'/ });
  t.throws(cu({ x: new Float32Array(B * C + 1) }), { name: 'RangeError', message: /'x'/ });
  t.throws(cu({ width: 0 }), { name: 'RangeError', message: /'width'/ });
  t.throws(cu({ width: 100 }), { name: 'RangeError', message: /'width'/ });
  t.throws(cu({ batch: -1 }), { name: 'RangeError', message: /'batch'/ });
  t.throws(cu({ stateSlots: 5 }), { name: 'RangeError', message: /'stateSlots'/ });
  const pool = new Float32Array(4 * C * (W - 1));
  t.doesNotThrow(cu({ convState: pool, stateSlots: 4, stateIndices: Int32Array.from([3, 1]) }), 'valid indices');
  t.throws(cu({ convState: pool, stateSlots: 4, stateIndices: Int32Array.from([3, 4]) }), { name: 'RangeError', message: /'stateIndices' element 1 is 4/ });
  t.throws(cu({ convState: pool, stateSlots: 4, stateIndices: Int32Array.from([-1, 0]) }), { name: 'RangeError', message: /'stateIndices'/ });
  t.throws(cu({ convState: pool, stateSlots: 4, stateIndices: Int32Array.from([2, 2]) }), { name: 'RangeError', message: /'stateIndices' repeats slot 2/ });
  t.throws(cu({ convState: pool, stateSlots: 4, stateIndices: Int32Array.from([0]) }), { name: 'RangeError', message: /'stateIndices'/ });
  t.throws(cu({ convState: pool, stateSlots: 4, stateIndices: [0, 1] }), { name: 'TypeError', message: /'stateIndices'/ });
  t.throws(cu({ convState: pool, stateSlots: -4, stateIndices: Int32Array.from([0, 1]) }), { name: 'RangeError', message: /'stateSlots'/ });
  t.throws(cu({ convState: pool, stateIndices: Int32Array.from([0, 1]) }), { name: 'RangeError', message: /'convState'/ });
  t.throws(cu({ width: 1, weight: new Float32Array(C), convState: new Float32Array(0), stateSlots: 2 ** 31 - 1, stateIndices: Int32Array.from([2 ** 31 - 2, 2 ** 31 - 2]) }), { name: 'RangeError', message: /repeats/ });
  t.throws(cu({ weight: { data: new Uint16Array(C * W), dtype: 'bf16' }, bias: { data: new Uint16Array(C + 1), dtype: 'f16' } }), { name: 'RangeError', message: /'bias'/ });
  t.throws(cu({ activation: 'gelu' }), { name: 'RangeError', message: /'activation'/ });
  t.end();
});
