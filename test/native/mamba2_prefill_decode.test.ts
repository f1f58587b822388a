// Mamba-2 across kernels: a chunked SSD prefill of L tokens followed by k
// single-token selectiveStateUpdate steps (Mamba-2 shapes) gives the outputs
// and final state of one SSD prefill of L + k tokens; the conv1d prefill +
// update pair does the same for the convolution in front of it.
import t from 'tap';
import { kernels } from '../../lib';
import { assertClose, forEachIsa, randn, rng, uniform } from '../helpers/reference';

// Both paths compute in float32 with different summation orders (chunked
// products vs the step recurrence): atol 2e-5, rtol 2e-5 relative to values O(1).
const ATOL = 2e-5, RTOL = 2e-5;

t.test('SSD prefill then Mamba-2 state updates equals one longer SSD prefill', (t) => {
  const r = rng(7);
  for (const [L, k, nheads, headdim, dstate, ngroups, chunk, clamp] of [
    [37, 5, 4, 8, 16, 2, 16, 0],
    [64, 3, 3, 5, 17, 1, 64, 0],
    [1, 4, 6, 16, 32, 3, 8, 0],
    [100, 2, 2, 64, 128, 1, 64, 0],
    [29, 6, 4, 8, 16, 2, 8, 1], // dt clamped to [0.05, 0.3] (Mamba-2 time_step_limit)
  ]) {
    const T = L + k;
    const x = randn(r, T * nheads * headdim);
    const dt = uniform(r, T * nheads, -3, 0.5);
    const A = Float32Array.from(uniform(r, nheads, -1, 1), (v) => -Math.exp(v));
    const B = randn(r, T * ngroups * dstate, 0.5), C = randn(r, T * ngroups * dstate, 0.5);
    const D = randn(r, nheads), dtBias = uniform(r, nheads, -1, 0), z = randn(r, T * nheads * headdim);
    const common = { A, D, dtBias, nheads, headdim, dstate, ngroups, dtSoftplus: true, ...(clamp ? { dtMin: 0.05, dtMax: 0.3 } : {}) };
    const slice = (a: Float32Array, per: number, from: number, to: number) => a.subarray(from * per, to * per);
    forEachIsa((isa) => {
      const full = kernels.ssdChunkScan({ ...common, x, dt, B, C, z, tokens: T, chunkSize: chunk });
      const pre = kernels.ssdChunkScan({
        ...common, tokens: L, chunkSize: chunk,
        x: slice(x, nheads * headdim, 0, L), dt: slice(dt, nheads, 0, L),
        B: slice(B, ngroups * dstate, 0, L), C: slice(C, ngroups * dstate, 0, L), z: slice(z, nheads * headdim, 0, L),
      });
      assertClose(t, pre.out, full.out.subarray(0, L * nheads * headdim), ATOL, RTOL, `prefill part L=${L} ${isa}`);
      let state = pre.finalStates;
      for (let i = L; i < T; i++) {
        const step = kernels.selectiveStateUpdate({
          ...common, batch: 1, state,
          x: slice(x, nheads * headdim, i, i + 1), dt: slice(dt, nheads, i, i + 1),
          B: slice(B, ngroups * dstate, i, i + 1), C: slice(C, ngroups * dstate, i, i + 1), z: slice(z, nheads * headdim, i, i + 1),
          A,
        });
        assertClose(t, step.out, slice(full.out, nheads * headdim, i, i + 1), ATOL, RTOL, `step ${i - L} L=${L} ${isa}`);
        state = step.state;
      }
      assertClose(t, state, full.finalStates, ATOL, RTOL, `final state L=${L} k=${k} ${isa}`);
    });
  }
  t.end();
});

t.test('conv1d prefill then updates equals one longer prefill (Mamba-2 conv_dim)', (t) => {
  const r = rng(8);
  const channels = 2 * 24 + 2 * 2 * 16, width = 4, L = 9, k = 4, T = L + k;
  const x = randn(r, T * channels), weight = randn(r, channels * width, 0.5), bias = randn(r, channels);
  forEachIsa((isa) => {
    const full = kernels.causalConv1d({ x, weight, bias, tokens: T, channels, width, activation: 'silu' });
    const pre = kernels.causalConv1d({ x: x.subarray(0, L * channels), weight, bias, tokens: L, channels, width, activation: 'silu' });
    let convState = pre.convState;
    for (let i = L; i < T; i++) {
      const step = kernels.causalConv1dUpdate({ x: x.subarray(i * channels, (i + 1) * channels), convState, weight, bias, batch: 1, channels, width, activation: 'silu' });
      assertClose(t, step.out, full.out.subarray(i * channels, (i + 1) * channels), 1e-6, 1e-6, `conv step ${i} ${isa}`);
      convState = step.convState;
    }
    t.same(Array.from(convState), Array.from(full.convState), `conv state is exact ${isa}`);
  });
  t.end();
});
