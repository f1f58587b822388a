// Int8-activation SSM kernels (csrc/kernels/ssm_q8.h) against float64
// references of the quantized semantics: inputs are q·s (exact), the
// recurrence / conv in float64, and the conv's output quantized as the kernel
// documents (q = clamp(roundHalfEven(v · f32(1/s)), -127, 127)). Every ISA
// level, awkward sizes, several sequences, bad arguments.
import t, { Test } from 'tap';
import { kernels } from '../../lib';
import { assertClose, forEachIsa, randn, rng, silu, softplus, uniform } from '../helpers/reference';

// Scan tolerances as the float kernels' tests (float32 recurrence with a
// polynomial exp / softplus against float64): 2e-5 absolute + relative.
const ATOL = 2e-5, RTOL = 2e-5;

function randInt8(r: () => number, n: number): Int8Array {
  const q = new Int8Array(n);
  for (let i = 0; i < n; i++) q[i] = Math.floor(r() * 255) - 127;
  return q;
}
/** Per-channel scales of varied size (an awkward mix: per-tensor blocks and per-channel values). */
function scales(r: () => number, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => Math.fround(0.002 + 0.03 * r()));
}
function deq(q: Int8Array, s: Float32Array): Float64Array {
  const C = s.length, out = new Float64Array(q.length);
  for (let i = 0; i < q.length; i++) out[i] = Math.fround(q[i] * s[i % C]);
  return out;
}
const roundHalfEven = (v: number) => {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
};

/**
 * int8 outputs against float64 pre-quantization values v (already divided by
 * the scale): equal where v is more than 1e-3 from a rounding boundary, at
 * most one step apart elsewhere.
 */
function assertQuantized(t: Test, got: Int8Array, v: Float64Array, msg: string) {
  let bad = -1, near = 0, clamped = 0;
  for (let i = 0; i < got.length && bad < 0; i++) {
    if (Math.abs(v[i]) > 127) clamped++;
    const want = Math.max(-127, Math.min(127, roundHalfEven(v[i])));
    const frac = Math.abs(v[i] - Math.floor(v[i]) - 0.5);
    if (frac < 1e-3 && Math.abs(v[i]) < 127.5) { near++; if (Math.abs(got[i] - want) > 1) bad = i; }
    else if (got[i] !== want) bad = i;
  }
  t.ok(bad < 0, bad < 0 ? `${msg} (${got.length} values, ${clamped} clamped, ${near} within 1e-3 of a rounding boundary)` : `${msg}: element ${bad} is ${got[bad]}, reference ${v[bad]}`);
}

t.test('causalConv1dQ8: packed sequences, initial state, SiLU, per-channel scales', (t) => {
  const r = rng(11);
  for (const [channels, width, lens] of [[37, 4, [5, 0, 13, 2]], [130, 3, [64]], [16, 1, [3, 7]], [200, 4, [1, 1, 1]]] as Array<[number, number, number[]]>) {
    const tokens = lens.reduce((a, b) => a + b, 0), nseq = lens.length, sw = width - 1;
    const cu = new Int32Array(nseq + 1);
    lens.forEach((l, i) => { cu[i + 1] = cu[i] + l; });
    // Output scales put most results inside [-127, 127] (a few clamp).
    const x = randInt8(r, tokens * channels), xScale = scales(r, channels);
    const outScale = Float32Array.from({ length: channels }, () => Math.fround(0.01 + 0.04 * r()));
    const weight = uniform(r, channels * width, -0.5, 0.5), bias = uniform(r, channels, -0.2, 0.2);
    const initialState = randn(r, nseq * channels * sw, 0.5);
    const xd = deq(x, xScale);
    const v = new Float64Array(tokens * channels), state = new Float64Array(nseq * channels * sw);
    for (let s = 0; s < nseq; s++) {
      const inp = (p: number, c: number) => (p >= 0 ? xd[(cu[s] + p) * channels + c] : initialState[(s * channels + c) * sw + sw + p]);
      for (let tt = 0; tt < lens[s]; tt++) {
        for (let c = 0; c < channels; c++) {
          let acc = bias[c];
          for (let k = 0; k < width; k++) acc += weight[c * width + k] * inp(tt - (width - 1) + k, c);
          v[(cu[s] + tt) * channels + c] = silu(acc) / outScale[c];
        }
      }
      for (let c = 0; c < channels; c++) for (let j = 0; j < sw; j++) state[(s * channels + c) * sw + j] = inp(lens[s] - sw + j, c);
    }
    forEachIsa((isa) => {
      const res = kernels.causalConv1dQ8({ x, xScale, outScale, weight, bias, tokens, channels, width, cuSeqlens: cu, initialState, activation: 'silu' });
      t.type(res.out, Int8Array);
      assertQuantized(t, res.out, v, `${isa} C=${channels} W=${width} lens=${lens}: int8 output`);
      assertClose(t, res.convState, state, 1e-12, 1e-7, `${isa}: final state = the last dequantized inputs`);
      // The update continues from that state, one token per sequence.
      const x1 = randInt8(r, nseq * channels);
      const up = kernels.causalConv1dUpdateQ8({ x: x1, xScale, outScale, weight, bias, batch: nseq, channels, width, convState: res.convState, activation: 'silu' });
      const x1d = deq(x1, xScale), v1 = new Float64Array(nseq * channels), st1 = new Float64Array(nseq * channels * sw);
      for (let s = 0; s < nseq; s++) {
        for (let c = 0; c < channels; c++) {
          const win = [...Array.from({ length: sw }, (_, j) => state[(s * channels + c) * sw + j]), x1d[s * channels + c]];
          let acc = bias[c];
          for (let k = 0; k < width; k++) acc += weight[c * width + k] * win[k];
          v1[s * channels + c] = silu(acc) / outScale[c];
          for (let j = 0; j < sw; j++) st1[(s * channels + c) * sw + j] = win[j + 1];
        }
      }
      assertQuantized(t, up.out, v1, `${isa}: update output`);
      assertClose(t, up.convState, st1, 1e-12, 1e-7, `${isa}: update state`);
    });
  }
  t.end();
});

t.test('selectiveScanQ8: int8 u, B, C with per-channel / per-state scales', (t) => {
  const r = rng(12);
  for (const [batch, seqlen, dim, dstate, ngroups] of [[2, 17, 24, 16, 1], [1, 65, 130, 7, 2], [3, 1, 8, 33, 4]]) {
    const nTok = batch * seqlen * dim, nBC = batch * seqlen * ngroups * dstate;
    const u = randInt8(r, nTok), B = randInt8(r, nBC), C = randInt8(r, nBC);
    const uScale = scales(r, dim), BScale = scales(r, ngroups * dstate), CScale = scales(r, ngroups * dstate);
    const delta = uniform(r, nTok, -3, 0), A = Float32Array.from(uniform(r, dim * dstate, -1, 1.5), (v) => -Math.exp(v));
    const D = uniform(r, dim), z = randn(r, nTok), deltaBias = uniform(r, dim, -0.5, 0.5);
    const initialState = randn(r, batch * dim * dstate, 0.3);
    const ud = deq(u, uScale), Bd = deq(B, BScale), Cd = deq(C, CScale);
    const out = new Float64Array(nTok), last = new Float64Array(batch * dim * dstate), hd = dim / ngroups;
    for (let b = 0; b < batch; b++) {
      for (let d = 0; d < dim; d++) {
        const g = Math.floor(d / hd), x = Array.from({ length: dstate }, (_, n) => initialState[(b * dim + d) * dstate + n]);
        for (let l = 0; l < seqlen; l++) {
          const ti = (b * seqlen + l) * dim + d, bc = ((b * seqlen + l) * ngroups + g) * dstate;
          const dt = softplus(delta[ti] + deltaBias[d]);
          let y = 0;
          for (let n = 0; n < dstate; n++) {
            x[n] = Math.exp(dt * A[d * dstate + n]) * x[n] + dt * Bd[bc + n] * ud[ti];
            y += x[n] * Cd[bc + n];
          }
          out[ti] = (y + ud[ti] * D[d]) * silu(z[ti]);
        }
        for (let n = 0; n < dstate; n++) last[(b * dim + d) * dstate + n] = x[n];
      }
    }
    forEachIsa((isa) => {
      const res = kernels.selectiveScanQ8({ u, uScale, B, BScale, C, CScale, delta, A, D, z, deltaBias, deltaSoftplus: true, initialState, batch, seqlen, dim, dstate, ngroups });
      assertClose(t, res.out, out, ATOL, RTOL, `${isa} ${batch}x${seqlen}x${dim} N=${dstate} G=${ngroups}: out`);
      assertClose(t, res.lastState, last, ATOL, RTOL, `${isa}: last state`);
    });
  }
  t.end();
});

/** Random int8 x / B / C with scales, dt, A, D, z, states and slot indices of a decode update. */
function updateInputs(r: () => number, batch: number, nheads: number, headdim: number, dstate: number, ngroups: number,
  mamba2: boolean, slotStep: number) {
  const rows = nheads * headdim, slots = batch + 2;
  const x = randInt8(r, batch * rows), B = randInt8(r, batch * ngroups * dstate), C = randInt8(r, batch * ngroups * dstate);
  const xScale = scales(r, rows), BScale = scales(r, ngroups * dstate), CScale = scales(r, ngroups * dstate);
  const dt = uniform(r, batch * nheads, -3, 0), dtBias = uniform(r, nheads, -0.5, 0.5), D = uniform(r, nheads);
  const A = mamba2 ? Float32Array.from(uniform(r, nheads, -1, 1.5), (v) => -Math.exp(v)) : Float32Array.from(uniform(r, nheads * dstate, -1, 1.5), (v) => -Math.exp(v));
  const z = randn(r, batch * rows), state = randn(r, slots * rows * dstate, 0.3);
  const stateIndices = Int32Array.from({ length: batch }, (_, b) => (b * slotStep + 1) % slots);
  return { rows, slots, x, B, C, xScale, BScale, CScale, dt, dtBias, D, A, z, state, stateIndices };
}

t.test('selectiveStateUpdateQ8: Mamba-1 and Mamba-2 shapes, indexed slots', (t) => {
  const r = rng(13);
  for (const [batch, nheads, headdim, dstate, ngroups, mamba2] of [[3, 40, 1, 16, 1, false], [2, 6, 12, 9, 3, true], [1, 4, 64, 128, 1, true]] as Array<[number, number, number, number, number, boolean]>) {
    const { rows, slots, x, B, C, xScale, BScale, CScale, dt, dtBias, D, A, z, state, stateIndices } =
      updateInputs(r, batch, nheads, headdim, dstate, ngroups, mamba2, 2);
    const xd = deq(x, xScale), Bd = deq(B, BScale), Cd = deq(C, CScale);
    const outRef = new Float64Array(batch * rows), stRef = Float64Array.from(state), hpg = nheads / ngroups;
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < nheads; h++) {
        const g = Math.floor(h / hpg), d = softplus(dt[b * nheads + h] + dtBias[h]);
        for (let p = 0; p < headdim; p++) {
          const rr = h * headdim + p, base = (stateIndices[b] * rows + rr) * dstate;
          let y = 0;
          for (let n = 0; n < dstate; n++) {
            const a = mamba2 ? A[h] : A[h * dstate + n];
            stRef[base + n] = stRef[base + n] * Math.exp(d * a) + d * Bd[(b * ngroups + g) * dstate + n] * xd[b * rows + rr];
            y += stRef[base + n] * Cd[(b * ngroups + g) * dstate + n];
          }
          outRef[b * rows + rr] = (y + xd[b * rows + rr] * D[h]) * silu(z[b * rows + rr]);
        }
      }
    }
    const shapes = mamba2 ? { nheads, headdim } : { dim: nheads };
    forEachIsa((isa) => {
      const res = kernels.selectiveStateUpdateQ8({ ...shapes, x, xScale, B, BScale, C, CScale, dt, dtBias, dtSoftplus: true, A, D, z, state, stateIndices, stateSlots: slots, batch, dstate, ngroups });
      assertClose(t, res.out, outRef, ATOL, RTOL, `${isa} ${mamba2 ? 'Mamba-2' : 'Mamba-1'} H=${nheads} P=${headdim} N=${dstate}: out`);
      assertClose(t, res.state, stRef, ATOL, RTOL, `${isa}: state`);
    });
  }
  t.end();
});

t.test('selectiveStateUpdateQ8 equals the float update on the dequantized inputs, bit for bit (every ISA)', (t) => {
  // x is dequantized in the update's units as they read it (B and C in a
  // pass): the same float32 inputs, so the same outputs and states as the
  // float kernel. Mamba-1 rows past whole 4-row groups and vectors, 8 rows
  // with indexed slots, Mamba-2 heads with several groups.
  const r = rng(19);
  for (const [batch, nheads, headdim, dstate, ngroups, mamba2] of [[8, 100, 1, 16, 1, false], [3, 37, 1, 16, 1, false], [2, 6, 12, 9, 3, true], [2, 4, 64, 128, 2, true]] as Array<[number, number, number, number, number, boolean]>) {
    const { slots, x, B, C, xScale, BScale, CScale, dt, dtBias, D, A, z, state, stateIndices } =
      updateInputs(r, batch, nheads, headdim, dstate, ngroups, mamba2, 3);
    const shapes = mamba2 ? { nheads, headdim } : { dim: nheads };
    const common = { ...shapes, dt, dtBias, dtSoftplus: true, A, D, z, stateIndices, stateSlots: slots, batch, dstate, ngroups };
    forEachIsa((isa) => {
      const q = kernels.selectiveStateUpdateQ8({ ...common, x, xScale, B, BScale, C, CScale, state: state.slice() });
      const f = kernels.selectiveStateUpdate({ ...common, x: Float32Array.from(deq(x, xScale)), B: Float32Array.from(deq(B, BScale)), C: Float32Array.from(deq(C, CScale)), state: state.slice() });
      const tag = `${isa} ${mamba2 ? 'Mamba-2' : 'Mamba-1'} batch=${batch} H=${nheads} P=${headdim} N=${dstate} G=${ngroups}`;
      t.same(Array.from(q.out), Array.from(f.out), `${tag}: out`);
      t.same(Array.from(q.state), Array.from(f.state), `${tag}: state`);
    });
  }
  t.end();
});

t.test('ssdChunkScanQ8: packed sequences, initial states, chunk boundaries', (t) => {
  const r = rng(14);
  for (const [nheads, headdim, dstate, ngroups, lens, chunk] of [[4, 8, 16, 2, [70, 0, 5], 32], [3, 5, 7, 1, [33], 64], [2, 64, 32, 1, [1, 130], 16]] as Array<[number, number, number, number, number[], number]>) {
    const tokens = lens.reduce((a, b) => a + b, 0), nseq = lens.length, rows = nheads * headdim, GN = ngroups * dstate;
    const cu = new Int32Array(nseq + 1);
    lens.forEach((l, i) => { cu[i + 1] = cu[i] + l; });
    const x = randInt8(r, tokens * rows), B = randInt8(r, tokens * GN), C = randInt8(r, tokens * GN);
    const xScale = scales(r, rows), BScale = scales(r, GN), CScale = scales(r, GN);
    const dt = uniform(r, tokens * nheads, -3, 0), dtBias = uniform(r, nheads, -0.5, 0.5), D = uniform(r, nheads);
    const A = Float32Array.from(uniform(r, nheads, -1, 1.5), (v) => -Math.exp(v)), z = randn(r, tokens * rows);
    const initialStates = randn(r, nseq * rows * dstate, 0.3);
    const xd = deq(x, xScale), Bd = deq(B, BScale), Cd = deq(C, CScale);
    const out = new Float64Array(tokens * rows), fin = new Float64Array(nseq * rows * dstate), hpg = nheads / ngroups;
    for (let s = 0; s < nseq; s++) {
      const st = initialStates.slice(s * rows * dstate, (s + 1) * rows * dstate).map(Number);
      const S = Float64Array.from(st);
      for (let tt = cu[s]; tt < cu[s + 1]; tt++) {
        for (let h = 0; h < nheads; h++) {
          const g = Math.floor(h / hpg), d = softplus(dt[tt * nheads + h] + dtBias[h]), dA = Math.exp(d * A[h]);
          for (let p = 0; p < headdim; p++) {
            const rr = h * headdim + p, xv = xd[tt * rows + rr];
            let y = 0;
            for (let n = 0; n < dstate; n++) {
              S[rr * dstate + n] = dA * S[rr * dstate + n] + d * xv * Bd[tt * GN + g * dstate + n];
              y += S[rr * dstate + n] * Cd[tt * GN + g * dstate + n];
            }
            out[tt * rows + rr] = (y + D[h] * xv) * silu(z[tt * rows + rr]);
          }
        }
      }
      fin.set(S, s * rows * dstate);
    }
    forEachIsa((isa) => {
      const res = kernels.ssdChunkScanQ8({ x, xScale, B, BScale, C, CScale, dt, dtBias, dtSoftplus: true, A, D, z, cuSeqlens: cu, initialStates, tokens, nheads, headdim, ngroups, dstate, chunkSize: chunk });
      assertClose(t, res.out, out, ATOL, RTOL, `${isa} H=${nheads} P=${headdim} N=${dstate} G=${ngroups} lens=${lens} chunk=${chunk}: out`);
      assertClose(t, res.finalStates, fin, ATOL, RTOL, `${isa}: final states`);
    });
  }
  t.end();
});

t.test('causalConv1dQ8 equals the float conv on the dequantized inputs, quantized, bit for bit (every ISA)', (t) => {
  // The int8 tiles dequantize and quantize in registers (no float copies):
  // the same float32 products and conv, so equal to the float kernel's
  // output quantized here (q = clamp(roundHalfEven(f32(v · f32(1/s))))), and
  // the final state equal to the float kernel's. Lengths past one token block
  // (256), channel counts not a multiple of any vector width.
  const r = rng(16);
  for (const [channels, width, lens] of [[37, 4, [5, 0, 13, 2]], [200, 4, [300, 3]], [130, 3, [64]], [19, 2, [9, 1]], [24, 1, [4]]] as Array<[number, number, number[]]>) {
    const tokens = lens.reduce((a, b) => a + b, 0), nseq = lens.length;
    const cu = new Int32Array(nseq + 1);
    lens.forEach((l, i) => { cu[i + 1] = cu[i] + l; });
    const x = randInt8(r, tokens * channels), xScale = scales(r, channels);
    const outScale = Float32Array.from({ length: channels }, () => Math.fround(0.004 + 0.02 * r()));
    const weight = uniform(r, channels * width, -0.5, 0.5), bias = uniform(r, channels, -0.2, 0.2);
    const initialState = randn(r, nseq * channels * (width - 1), 0.5);
    const inv = Float32Array.from(outScale, (s) => Math.fround(1 / s));
    forEachIsa((isa) => {
      const common = { weight, bias, tokens, channels, width, cuSeqlens: cu, initialState, activation: 'silu' as const };
      const f = kernels.causalConv1d({ ...common, x: Float32Array.from(deq(x, xScale)) });
      const q = kernels.causalConv1dQ8({ ...common, x, xScale, outScale });
      const want = new Int8Array(f.out.length);
      let clamped = 0;
      for (let i = 0; i < want.length; i++) {
        const v = Math.fround(f.out[i] * inv[i % channels]);
        if (Math.abs(v) > 127) clamped++;
        want[i] = Number.isNaN(v) ? 0 : Math.max(-127, Math.min(127, roundHalfEven(v)));
      }
      const tag = `${isa} C=${channels} W=${width} lens=${lens}`;
      t.same(Array.from(q.out), Array.from(want), `${tag}: int8 output (${clamped} of ${want.length} clamped)`);
      t.same(Array.from(q.convState), Array.from(f.convState), `${tag}: final state`);
    });
  }
  t.end();
});

t.test('causalConv1dUpdateQ8 equals the float update on the dequantized inputs, quantized, bit for bit (every ISA)', (t) => {
  // The decode tiles dequantize and quantize in registers too: width 4 in
  // whole vectors (the deinterleaving tile) and partial ones, other widths,
  // several rows; the state holds the dequantized inputs.
  const r = rng(18);
  for (const [channels, width, batch] of [[64, 4, 8], [37, 4, 3], [200, 4, 1], [130, 3, 2], [19, 2, 5], [24, 1, 2]]) {
    const x = randInt8(r, batch * channels), xScale = scales(r, channels);
    const outScale = Float32Array.from({ length: channels }, () => Math.fround(0.004 + 0.02 * r()));
    const weight = uniform(r, channels * width, -0.5, 0.5), bias = uniform(r, channels, -0.2, 0.2);
    const convState = randn(r, batch * channels * (width - 1), 0.5);
    const inv = Float32Array.from(outScale, (s) => Math.fround(1 / s));
    forEachIsa((isa) => {
      const common = { weight, bias, batch, channels, width, activation: 'silu' as const };
      const f = kernels.causalConv1dUpdate({ ...common, x: Float32Array.from(deq(x, xScale)), convState: convState.slice() });
      const q = kernels.causalConv1dUpdateQ8({ ...common, x, xScale, outScale, convState: convState.slice() });
      const want = new Int8Array(f.out.length);
      for (let i = 0; i < want.length; i++) {
        const v = Math.fround(f.out[i] * inv[i % channels]);
        want[i] = Number.isNaN(v) ? 0 : Math.max(-127, Math.min(127, roundHalfEven(v)));
      }
      const tag = `${isa} C=${channels} W=${width} B=${batch}`;
      t.same(Array.from(q.out), Array.from(want), `${tag}: int8 output`);
      t.same(Array.from(q.convState), Array.from(f.convState), `${tag}: state`);
    });
  }
  t.end();
});

t.test('selectiveScanQ8 equals the float scan on the dequantized inputs, bit for bit (every ISA)', (t) => {
  // The scan dequantizes u as it loads it (B and C in a pass): the same
  // float32 inputs, so the same outputs and states as the float kernel.
  // Channel counts that leave partial vectors, several groups and batch rows,
  // a dstate other than 16, a z gate and D.
  const r = rng(15);
  for (const [batch, seqlen, dim, dstate, ngroups] of [[1, 40, 48, 16, 1], [2, 19, 37, 16, 1], [1, 9, 40, 5, 2]]) {
    const u = randInt8(r, batch * seqlen * dim), B = randInt8(r, batch * seqlen * ngroups * dstate), C = randInt8(r, batch * seqlen * ngroups * dstate);
    const uScale = scales(r, dim), BScale = scales(r, ngroups * dstate), CScale = scales(r, ngroups * dstate);
    const delta = uniform(r, batch * seqlen * dim, -3, 0), A = Float32Array.from(uniform(r, dim * dstate, -1, 1.5), (v) => -Math.exp(v));
    const z = randn(r, batch * seqlen * dim), D = uniform(r, dim);
    const common = { delta, A, z, D, deltaSoftplus: true, batch, seqlen, dim, dstate, ngroups };
    forEachIsa((isa) => {
      const q = kernels.selectiveScanQ8({ ...common, u, uScale, B, BScale, C, CScale });
      const f = kernels.selectiveScan({ ...common, u: Float32Array.from(deq(u, uScale)), B: Float32Array.from(deq(B, BScale)), C: Float32Array.from(deq(C, CScale)) });
      const tag = `${isa} ${batch}x${seqlen}x${dim} N=${dstate} G=${ngroups}`;
      t.same(Array.from(q.out), Array.from(f.out), `${tag}: out`);
      t.same(Array.from(q.lastState), Array.from(f.lastState), `${tag}: last state`);
    });
  }
  t.end();
});

t.test('bad arguments: mixed int8 / float operands, bad scales', (t) => {
  const r = rng(16);
  const base = { batch: 1, seqlen: 4, dim: 8, dstate: 4, delta: new Float32Array(32), A: new Float32Array(32).fill(-1) };
  const u = randInt8(r, 32), B = randInt8(r, 16), C = randInt8(r, 16);
  const ok = { ...base, u, B, C, uScale: scales(r, 8), BScale: scales(r, 4), CScale: scales(r, 4) };
  t.doesNotThrow(() => kernels.selectiveScanQ8(ok));
  t.throws(() => kernels.selectiveScan({ ...ok, B: new Float32Array(16) } as never), { name: 'TypeError', message: /'B' must be an Int8Array/ });
  t.throws(() => kernels.selectiveScanQ8({ ...ok, uScale: scales(r, 7) }), { name: 'RangeError', message: /'uScale'/ });
  t.throws(() => kernels.selectiveScanQ8({ ...ok, BScale: new Float32Array(4) }), { name: 'RangeError', message: /'BScale' element 0 is 0/ });
  t.throws(() => kernels.selectiveScanQ8({ ...ok, CScale: Float32Array.from([1, NaN, 1, 1]) }), { name: 'RangeError', message: /'CScale'/ });
  const { uScale: _u, ...noScale } = ok;
  t.throws(() => kernels.selectiveScanQ8(noScale as never), { name: 'TypeError', message: /'uScale' is required/ });
  t.throws(() => kernels.causalConv1dQ8({ x: randInt8(r, 8), xScale: scales(r, 4), outScale: scales(r, 3), weight: new Float32Array(16), tokens: 2, channels: 4, width: 4 }),
    { name: 'RangeError', message: /'outScale'/ });
  t.throws(() => kernels.ssdChunkScanQ8({ x: randInt8(r, 8), xScale: scales(r, 8), B: randInt8(r, 4), BScale: scales(r, 4), C: randInt8(r, 4), CScale: scales(r, 4), dt: new Float32Array(1), A: new Float32Array(1), tokens: 1, nheads: 1, headdim: 8, dstate: 3 }),
    { name: 'RangeError', message: /'B'/ });
  t.end();
});
