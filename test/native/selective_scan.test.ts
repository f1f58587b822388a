// Selective scan (Mamba-1 prefill) and selective state update (Mamba-1 and
// Mamba-2 decode) against float64 references written from the published
// semantics (state-spaces/mamba selective_scan_ref / selective_state_update).
import t, { Test } from 'tap';
import { kernels } from '../../lib';
import { assertClose, forEachIsa, randn, rng, silu, softplus, uniform } from '../helpers/reference';

// Tolerance. The kernels compute in float32 with a polynomial exp (~2 ulp on
// AVX) and a polynomial softplus (~3 ulp); each step multiplies the state by
// exp(dt*A) < 1, so relative errors of a few ulp per step compound over the
// recurrence's memory (1 / (1 - exp(dt*A)) steps, up to ~50 here) and are then
// summed over dstate terms of y. With A = -exp(U(-1, 1.5)) (as A = -exp(A_log)
// in checkpoints) and dt = softplus of small values, states stay O(1) and the
// observed worst error is ~8e-6 (N = 256, scalar path); we allow
// |err| <= 2e-5 + 2e-5 * |expected| on out and state.
const ATOL = 2e-5, RTOL = 2e-5;

/** Bit-exact equality of two float arrays, as one assertion (tap's deep equality is slow on big typed arrays). */
function sameBits(t: Test, a: ArrayLike<number>, b: ArrayLike<number>, msg: string): void {
  let bad = a.length === b.length ? -1 : 0;
  for (let i = 0; bad < 0 && i < a.length; i++) if (!Object.is(a[i], b[i])) bad = i;
  t.ok(bad < 0, bad < 0 ? msg : `${msg} (first difference at ${bad}: ${a[bad]} vs ${b[bad]}; lengths ${a.length}, ${b.length})`);
}

type F64 = Float64Array;

interface ScanCase {
  batch: number; seqlen: number; dim: number; dstate: number; ngroups: number;
  u: Float32Array; delta: Float32Array; A: Float32Array; B: Float32Array; C: Float32Array;
  D?: Float32Array; z?: Float32Array; deltaBias?: Float32Array; deltaSoftplus?: boolean; initialState?: Float32Array;
}

/** Sequential float64 selective_scan_ref on token-major tensors. */
function scanRef(c: ScanCase): { out: F64; last: F64 } {
  const { batch, seqlen: L, dim, dstate: N, ngroups: G } = c;
  const out = new Float64Array(batch * L * dim), last = new Float64Array(batch * dim * N);
  const hd = dim / G, x = new Float64Array(N);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < dim; d++) {
      const g = Math.floor(d / hd);
      for (let n = 0; n < N; n++) x[n] = c.initialState ? c.initialState[(b * dim + d) * N + n] : 0;
      for (let l = 0; l < L; l++) {
        const ti = (b * L + l) * dim + d;
        let dt = c.delta[ti] + (c.deltaBias ? c.deltaBias[d] : 0);
        if (c.deltaSoftplus) dt = softplus(dt);
        const u = c.u[ti], bc = ((b * L + l) * G + g) * N;
        let y = 0;
        for (let n = 0; n < N; n++) {
          x[n] = Math.exp(dt * c.A[d * N + n]) * x[n] + dt * c.B[bc + n] * u;
          y += x[n] * c.C[bc + n];
        }
        let o = y + (c.D ? u * c.D[d] : 0);
        if (c.z) o *= silu(c.z[ti]);
        out[ti] = o;
      }
      for (let n = 0; n < N; n++) last[(b * dim + d) * N + n] = x[n];
    }
  }
  return { out, last };
}

interface UpdCase {
  batch: number; nheads: number; headdim: number; dstate: number; ngroups: number; mamba2: boolean;
  state: ArrayLike<number>; x: Float32Array; dt: Float32Array; A: Float32Array; B: Float32Array; C: Float32Array;
  D?: Float32Array; z?: Float32Array; dtBias?: Float32Array; dtSoftplus?: boolean;
}

/** float64 selective_state_update (Mamba-1: headdim 1, A per state; Mamba-2: scalar A per head). */
function updateRef(c: UpdCase): { out: F64; state: F64 } {
  const { batch, nheads: H, headdim: P, dstate: N, ngroups: G } = c;
  const state = Float64Array.from(c.state), out = new Float64Array(batch * H * P);
  const hpg = H / G;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / hpg);
      let dt = c.dt[b * H + h] + (c.dtBias ? c.dtBias[h] : 0);
      if (c.dtSoftplus) dt = softplus(dt);
      for (let p = 0; p < P; p++) {
        const r = h * P + p, xv = c.x[b * H * P + r], s0 = ((b * H + h) * P + p) * N, bc = (b * G + g) * N;
        let y = 0;
        for (let n = 0; n < N; n++) {
          const dA = Math.exp(dt * (c.mamba2 ? c.A[h] : c.A[h * N + n]));
          state[s0 + n] = state[s0 + n] * dA + dt * c.B[bc + n] * xv;
          y += state[s0 + n] * c.C[bc + n];
        }
        let o = y + (c.D ? xv * c.D[h] : 0);
        if (c.z) o *= silu(c.z[b * H * P + r]);
        out[b * H * P + r] = o;
      }
    }
  }
  return { out, state };
}

/** A like checkpoints: -exp(U(-1, 1.5)). */
const negExpA = (r: () => number, n: number) => uniform(r, n, -1, 1.5).map((v) => -Math.exp(v));
/** Raw step sizes whose softplus is small (~0.05 .. 1). */
const rawDelta = (r: () => number, n: number) => randn(r, n, 0.7).map((v) => v - 1.5);

function makeScan(seed: number, batch: number, seqlen: number, dim: number, dstate: number, ngroups: number,
  opt: { D: boolean; z: boolean; bias: boolean; init: boolean; softplus: boolean }): ScanCase {
  const r = rng(seed);
  const tok = batch * seqlen * dim, bc = batch * seqlen * ngroups * dstate;
  const d = rawDelta(r, tok);
  return {
    batch, seqlen, dim, dstate, ngroups,
    u: randn(r, tok), delta: opt.softplus ? d : d.map(softplus), A: negExpA(r, dim * dstate),
    B: randn(r, bc), C: randn(r, bc),
    D: opt.D ? randn(r, dim) : undefined,
    z: opt.z ? randn(r, tok, 1.5) : undefined,
    deltaBias: opt.bias ? (opt.softplus ? randn(r, dim, 0.3) : uniform(r, dim, 0, 0.2)) : undefined,
    deltaSoftplus: opt.softplus ? true : undefined,
    initialState: opt.init ? randn(r, batch * dim * dstate, 0.5) : undefined,
  };
}

t.test('selectiveScan matches the sequential float64 reference (awkward sizes, every optional, every ISA)', (t) => {
  const cases: [number, number, number, number, number][] = [
    // batch, seqlen, dim, dstate, ngroups
    [1, 1, 1, 1, 1], [2, 7, 5, 3, 1], [3, 33, 24, 16, 2], [1, 130, 67, 17, 1], [2, 130, 24, 64, 3],
    [3, 7, 67, 16, 1], [1, 33, 5, 64, 5], [2, 1, 24, 17, 3], [2, 33, 67, 3, 1], [1, 7, 24, 1, 2],
    [3, 130, 5, 16, 1], [1, 7, 3, 256, 1], [2, 33, 64, 16, 2], [1, 1, 67, 64, 1], [2, 7, 48, 33, 3],
  ];
  const keys = ['D', 'z', 'bias', 'init', 'softplus'] as const;
  const pick = rng(99);
  let seed = 1000;
  for (const [batch, seqlen, dim, dstate, ngroups] of cases) {
    const variants = [
      { D: true, z: true, bias: true, init: true, softplus: true },
      { D: false, z: false, bias: false, init: false, softplus: false },
      Object.fromEntries(keys.map((k) => [k, pick() < 0.5])) as Record<(typeof keys)[number], boolean>,
    ];
    for (const opt of variants) {
      const c = makeScan(seed++, batch, seqlen, dim, dstate, ngroups, opt);
      const ref = scanRef(c);
      const tag = `b${batch} L${seqlen} d${dim} N${dstate} G${ngroups} ${keys.filter((k) => opt[k]).join('+') || 'plain'}`;
      forEachIsa((isa) => {
        const got = kernels.selectiveScan(c);
        assertClose(t, got.out, ref.out, ATOL, RTOL, `out ${tag} ${isa}`);
        assertClose(t, got.lastState, ref.last, ATOL, RTOL, `lastState ${tag} ${isa}`);
      });
    }
  }
  t.end();
});

t.test('selectiveScan: softplus across its threshold, seqlen 0, the inputs are not modified', (t) => {
  // Raw deltas spanning [-30, 30] cross the threshold of 20 both ways.
  const r = rng(7);
  const c = makeScan(7, 2, 33, 20, 5, 1, { D: true, z: true, bias: false, init: true, softplus: true });
  c.delta = uniform(r, c.delta.length, -30, 30);
  c.A = uniform(r, c.A.length, -0.3, -0.01);
  const ref = scanRef(c);
  const before = Float32Array.from(c.delta);
  forEachIsa((isa) => {
    const got = kernels.selectiveScan(c);
    assertClose(t, got.out, ref.out, ATOL, RTOL, `out softplus extremes ${isa}`);
    assertClose(t, got.lastState, ref.last, ATOL, RTOL, `lastState softplus extremes ${isa}`);
  });
  sameBits(t, c.delta, before, 'delta unchanged');
  // seqlen 0: empty out, lastState = initialState (or zeros).
  const e = makeScan(8, 2, 0, 5, 3, 1, { D: true, z: true, bias: true, init: true, softplus: true });
  forEachIsa((isa) => {
    const got = kernels.selectiveScan(e);
    t.equal(got.out.length, 0, `seqlen 0 out empty ${isa}`);
    sameBits(t, got.lastState, e.initialState!, `seqlen 0 lastState = initialState ${isa}`);
    const z = kernels.selectiveScan({ ...e, initialState: undefined });
    sameBits(t, z.lastState, new Float32Array(2 * 5 * 3), `seqlen 0 lastState zeros ${isa}`);
  });
  t.end();
});

/** Token l of a [batch, seqlen, ...inner] token-major tensor, as [batch, ...inner]. */
function tokenSlice(a: Float32Array, batch: number, seqlen: number, inner: number, l: number): Float32Array {
  const o = new Float32Array(batch * inner);
  for (let b = 0; b < batch; b++) o.set(a.subarray((b * seqlen + l) * inner, (b * seqlen + l + 1) * inner), b * inner);
  return o;
}
/** Tokens [l0, l1) of a [batch, seqlen, ...inner] tensor. */
function tokenRange(a: Float32Array, batch: number, seqlen: number, inner: number, l0: number, l1: number): Float32Array {
  const o = new Float32Array(batch * (l1 - l0) * inner);
  for (let b = 0; b < batch; b++) o.set(a.subarray((b * seqlen + l0) * inner, (b * seqlen + l1) * inner), b * (l1 - l0) * inner);
  return o;
}

t.test('prefill of L tokens then k Mamba-1 state updates equals one prefill of L + k', (t) => {
  for (const [batch, L, k, dim, dstate, ngroups, withInit] of [
    [2, 33, 5, 24, 16, 2, true], [3, 7, 4, 67, 17, 1, false], [1, 1, 3, 5, 3, 5, true], [2, 130, 2, 48, 64, 3, false],
  ] as [number, number, number, number, number, number, boolean][]) {
    const full = makeScan(4000 + L, batch, L + k, dim, dstate, ngroups, { D: true, z: true, bias: true, init: withInit, softplus: true });
    const ref = scanRef(full);
    const gi = ngroups * dstate;
    const tag = `b${batch} L${L}+${k} d${dim} N${dstate} G${ngroups}`;
    forEachIsa((isa) => {
      const one = kernels.selectiveScan(full);
      const pre = kernels.selectiveScan({
        ...full, seqlen: L,
        u: tokenRange(full.u, batch, L + k, dim, 0, L), delta: tokenRange(full.delta, batch, L + k, dim, 0, L),
        z: tokenRange(full.z!, batch, L + k, dim, 0, L),
        B: tokenRange(full.B, batch, L + k, gi, 0, L), C: tokenRange(full.C, batch, L + k, gi, 0, L),
      });
      sameBits(t, pre.out, tokenRange(one.out, batch, L + k, dim, 0, L), `prefill of the first L tokens is bit-identical ${tag} ${isa}`);
      let state = pre.lastState;
      for (let i = 0; i < k; i++) {
        const l = L + i;
        const step = kernels.selectiveStateUpdate({
          state, batch, dim, dstate, ngroups,
          x: tokenSlice(full.u, batch, L + k, dim, l), dt: tokenSlice(full.delta, batch, L + k, dim, l),
          z: tokenSlice(full.z!, batch, L + k, dim, l),
          B: tokenSlice(full.B, batch, L + k, gi, l), C: tokenSlice(full.C, batch, L + k, gi, l),
          A: full.A, D: full.D, dtBias: full.deltaBias, dtSoftplus: true,
        });
        const want = tokenSlice(one.out, batch, L + k, dim, l);
        assertClose(t, step.out, want, ATOL, RTOL, `step ${i} out vs one prefill ${tag} ${isa}`);
        assertClose(t, step.out, tokenSlice(Float32Array.from(ref.out), batch, L + k, dim, l), ATOL, RTOL, `step ${i} out vs float64 ${tag} ${isa}`);
        state = step.state;
      }
      assertClose(t, state, one.lastState, ATOL, RTOL, `final state vs one prefill ${tag} ${isa}`);
      assertClose(t, state, ref.last, ATOL, RTOL, `final state vs float64 ${tag} ${isa}`);
    });
  }
  t.end();
});

function makeUpdate(seed: number, batch: number, nheads: number, headdim: number, dstate: number, ngroups: number,
  mamba2: boolean, opt: { D: boolean; z: boolean; bias: boolean; softplus: boolean }): UpdCase {
  const r = rng(seed);
  const rows = batch * nheads * headdim, bc = batch * ngroups * dstate;
  const dt = rawDelta(r, batch * nheads);
  return {
    batch, nheads, headdim, dstate, ngroups, mamba2,
    state: randn(r, rows * dstate, 0.5), x: randn(r, rows),
    dt: opt.softplus ? dt : dt.map(softplus), A: negExpA(r, mamba2 ? nheads : nheads * dstate),
    B: randn(r, bc), C: randn(r, bc),
    D: opt.D ? randn(r, nheads) : undefined, z: opt.z ? randn(r, rows, 1.5) : undefined,
    dtBias: opt.bias ? (opt.softplus ? randn(r, nheads, 0.3) : uniform(r, nheads, 0, 0.2)) : undefined,
    dtSoftplus: opt.softplus ? true : undefined,
  };
}

function updateArgs(c: UpdCase, state: Float32Array): kernels.SelectiveStateUpdateOptions {
  const shape = c.mamba2 ? { nheads: c.nheads, headdim: c.headdim } : { dim: c.nheads };
  return {
    ...shape, state, batch: c.batch, dstate: c.dstate, ngroups: c.ngroups, x: c.x, dt: c.dt, A: c.A, B: c.B, C: c.C,
    D: c.D, z: c.z, dtBias: c.dtBias, dtSoftplus: c.dtSoftplus,
  };
}

t.test('selectiveStateUpdate matches the float64 reference over several steps (Mamba-1 and Mamba-2 shapes, every ISA)', (t) => {
  const cases: [boolean, number, number, number, number, number][] = [
    // mamba2, batch, nheads (= dim for Mamba-1), headdim, dstate, ngroups
    [false, 1, 1, 1, 1, 1], [false, 3, 67, 1, 17, 1], [false, 2, 24, 1, 3, 3], [false, 2, 130, 1, 16, 2],
    [false, 1, 5, 1, 64, 5], [false, 2, 70, 1, 8, 2],
    [true, 1, 1, 1, 1, 1], [true, 2, 5, 7, 17, 1], [true, 3, 6, 16, 64, 3], [true, 1, 3, 64, 128, 1],
    [true, 2, 40, 3, 16, 4], [true, 1, 2, 130, 33, 2], [true, 2, 4, 65, 256, 2],
  ];
  const keys = ['D', 'z', 'bias', 'softplus'] as const;
  const pick = rng(5);
  let seed = 7000;
  for (const [mamba2, batch, nheads, headdim, dstate, ngroups] of cases) {
    for (const opt of [
      { D: true, z: true, bias: true, softplus: true },
      { D: false, z: false, bias: false, softplus: false },
      Object.fromEntries(keys.map((k) => [k, pick() < 0.5])) as Record<(typeof keys)[number], boolean>,
    ]) {
      const tag = `${mamba2 ? 'mamba2' : 'mamba1'} b${batch} H${nheads} P${headdim} N${dstate} G${ngroups} ${keys.filter((k) => opt[k]).join('+') || 'plain'}`;
      // 4 steps with fresh x, dt, B, C, z each step; the state carries over.
      const steps = [0, 1, 2, 3].map((i) => makeUpdate(seed + i, batch, nheads, headdim, dstate, ngroups, mamba2, opt));
      seed += 4;
      forEachIsa((isa) => {
        let refState: ArrayLike<number> = steps[0].state;
        let state: Float32Array = Float32Array.from(steps[0].state);
        for (let i = 0; i < steps.length; i++) {
          const c = { ...steps[i], A: steps[0].A, D: steps[0].D, dtBias: steps[0].dtBias };
          const ref = updateRef({ ...c, state: refState });
          const input = Float32Array.from(state);
          const got = kernels.selectiveStateUpdate(updateArgs(c, state));
          sameBits(t, state, input, 'input state not modified');
          assertClose(t, got.out, ref.out, ATOL, RTOL, `out step ${i} ${tag} ${isa}`);
          assertClose(t, got.state, ref.state, ATOL, RTOL, `state step ${i} ${tag} ${isa}`);
          refState = ref.state;
          state = got.state;
        }
      });
    }
  }
  t.end();
});

t.test('selectiveStateUpdate with stateIndices updates exactly the indexed slots of a pool', (t) => {
  for (const mamba2 of [false, true]) {
    const [batch, nheads, headdim, dstate, ngroups] = mamba2 ? [3, 6, 5, 17, 2] : [3, 24, 1, 16, 3];
    const c = makeUpdate(mamba2 ? 91 : 92, batch, nheads, headdim, dstate, ngroups, mamba2,
      { D: true, z: true, bias: true, softplus: true });
    const slots = 5, per = nheads * headdim * dstate, idx = Int32Array.from([4, 0, 2]);
    const pool = randn(rng(93), slots * per, 0.5);
    // The rows' own states, gathered from the pool.
    const gathered = new Float32Array(batch * per);
    idx.forEach((s, b) => gathered.set(pool.subarray(s * per, (s + 1) * per), b * per));
    forEachIsa((isa) => {
      const plain = kernels.selectiveStateUpdate(updateArgs(c, gathered));
      const got = kernels.selectiveStateUpdate({ ...updateArgs(c, pool), stateIndices: idx, stateSlots: slots });
      sameBits(t, got.out, plain.out, `${mamba2 ? 'mamba2' : 'mamba1'} out equals the gathered update ${isa}`);
      for (let s = 0; s < slots; s++) {
        const b = idx.indexOf(s);
        const want = b >= 0 ? plain.state.subarray(b * per, (b + 1) * per) : pool.subarray(s * per, (s + 1) * per);
        sameBits(t, got.state.subarray(s * per, (s + 1) * per), want, `${mamba2 ? 'mamba2' : 'mamba1'} slot ${s} ${b >= 0 ? `= row ${b}` : 'untouched'} ${isa}`);
      }
    });
  }
  t.end();
});

t.test('selective scan kernels reject bad input with named errors', (t) => {
  const c = makeScan(5, 2, 3, 6, 4, 2, { D: true, z: true, bias: true, init: true, softplus: true });
  const ok = kernels.selectiveScan(c);
  t.equal(ok.out.length, 36);
  const bad = (patch: Record<string, unknown>) => () => kernels.selectiveScan({ ...c, ...patch } as never);
  t.throws(bad({ u: new Float32Array(35) }), { name: 'RangeError', message: /selectiveScan.*'u' must have 36 elements/ });
  t.throws(bad({ delta: new Float32Array(37) }), { name: 'RangeError', message: /'delta'/ });
  t.throws(bad({ B: new Float32Array(47) }), { name: 'RangeError', message: /'B' must have 48/ });
  t.throws(bad({ C: new Float32Array(0) }), { name: 'RangeError', message: /'C'/ });
  t.throws(bad({ A: new Float32Array(23) }), { name: 'RangeError', message: /'A'/ });
  t.throws(bad({ D: new Float32Array(5) }), { name: 'RangeError', message: /'D'/ });
  t.throws(bad({ z: new Float32Array(5) }), { name: 'RangeError', message: /'z'/ });
  t.throws(bad({ deltaBias: new Float32Array(7) }), { name: 'RangeError', message: /'deltaBias'/ });
  t.throws(bad({ initialState: new Float32Array(47) }), { name: 'RangeError', message: /'initialState'/ });
  t.throws(bad({ delta: new Float64Array(36) }), { name: 'TypeError', message: /'delta'/ });
  t.throws(bad({ A: new Uint16Array(24), ADtype: 'f16' }), { name: 'TypeError', message: /'A' has dtype f16/ });
  t.throws(bad({ u: undefined }), { name: 'TypeError', message: /'u' is required/ });
  t.throws(bad({ deltaSoftplus: 1 }), { name: 'TypeError', message: /'deltaSoftplus'/ });
  t.throws(bad({ dstate: 0 }), { name: 'RangeError', message: /'dstate'/ });
  t.throws(bad({ dstate: 257 }), { name: 'RangeError', message: /'dstate'/ });
  t.throws(bad({ ngroups: 4 }), { name: 'RangeError', message: /'ngroups' must divide dim/ });
  t.throws(bad({ ngroups: 0 }), { name: 'RangeError', message: /'ngroups'/ });
  t.throws(bad({ batch: -1 }), { name: 'RangeError', message: /'batch'/ });
  t.throws(bad({ seqlen: 2.5 }), { name: 'TypeError', message: /'seqlen'/ });
  t.throws(bad({ batch: 2 ** 30, seqlen: 2 ** 20 }), { name: 'RangeError', message: /too large/ });
  t.throws(() => kernels.selectiveScan(undefined as never), { name: 'TypeError' });

  const m1 = makeUpdate(6, 2, 6, 1, 4, 2, false, { D: true, z: true, bias: true, softplus: true });
  const m2 = makeUpdate(6, 2, 4, 3, 4, 2, true, { D: true, z: true, bias: true, softplus: true });
  const u1 = (patch: Record<string, unknown>) => () => kernels.selectiveStateUpdate({ ...updateArgs(m1, Float32Array.from(m1.state)), ...patch } as never);
  const u2 = (patch: Record<string, unknown>) => () => kernels.selectiveStateUpdate({ ...updateArgs(m2, Float32Array.from(m2.state)), ...patch } as never);
  t.equal(kernels.selectiveStateUpdate(updateArgs(m2, Float32Array.from(m2.state))).out.length, 24);
  t.throws(u1({ state: new Float32Array(47) }), { name: 'RangeError', message: /selectiveStateUpdate.*'state' must have 48/ });
  t.throws(u1({ x: new Float32Array(13) }), { name: 'RangeError', message: /'x'/ });
  t.throws(u1({ A: new Float32Array(6) }), { name: 'RangeError', message: /'A' must have 24/ });
  t.throws(u2({ A: new Float32Array(16) }), { name: 'RangeError', message: /'A' must have 4/ });
  t.throws(u2({ dt: new Float32Array(24) }), { name: 'RangeError', message: /'dt' must have 8/ });
  t.throws(u2({ D: new Float32Array(12) }), { name: 'RangeError', message: /'D'/ });
  t.throws(u2({ dtBias: new Float32Array(12) }), { name: 'RangeError', message: /'dtBias'/ });
  t.throws(u2({ z: new Float32Array(8) }), { name: 'RangeError', message: /'z'/ });
  t.throws(u2({ B: new Float32Array(15) }), { name: 'RangeError', message: /'B'/ });
  t.throws(u2({ ngroups: 3 }), { name: 'RangeError', message: /'ngroups' must divide nheads/ });
  t.throws(u2({ dim: 13 }), { name: 'RangeError', message: /'dim'/ });
  t.throws(u2({ nheads: undefined }), { name: 'TypeError', message: /'nheads' is required/ });
  t.throws(u1({ nheads: 6 }), { name: 'TypeError', message: /'nheads'/ });
  t.throws(u1({ dim: undefined }), { name: 'TypeError', message: /'dim' is required/ });
  t.throws(u1({ dstate: 0 }), { name: 'RangeError', message: /'dstate'/ });
  t.throws(u1({ x: new Int32Array(12) }), { name: 'TypeError', message: /'x'/ });
  t.throws(u1({ stateSlots: 2 }), { name: 'TypeError', message: /'stateSlots'/ });
  t.throws(u1({ stateIndices: Int32Array.from([0, 1]) }), { name: 'TypeError', message: /'stateSlots' is required/ });
  t.throws(u1({ stateIndices: Int32Array.from([0, 2]), stateSlots: 2 }), { name: 'RangeError', message: /'stateIndices' element 1 is 2/ });
  t.throws(u1({ stateIndices: Int32Array.from([-1, 0]), stateSlots: 2 }), { name: 'RangeError', message: /'stateIndices'/ });
  t.throws(u1({ stateIndices: Int32Array.from([1, 1]), stateSlots: 2 }), { name: 'RangeError', message: /'stateIndices' has the slot 1 more than once/ });
  t.throws(u1({ stateIndices: Int32Array.from([0]), stateSlots: 2 }), { name: 'RangeError', message: /'stateIndices' must have 2/ });
  t.throws(u1({ stateIndices: Float32Array.from([0, 1]), stateSlots: 2 }), { name: 'TypeError', message: /'stateIndices'/ });
  t.throws(u1({ stateIndices: Int32Array.from([0, 1]), stateSlots: 3 }), { name: 'RangeError', message: /'state' must have 72/ });
  t.throws(u1({ batch: 2 ** 40, dim: 2 ** 20 }), { name: 'RangeError' });
  t.end();
});

t.test('results are bit-identical for any thread count (each element has one owner and a fixed order)', (t) => {
  const before = kernels.runtimeInfo().threads;
  const c = makeScan(31, 3, 40, 96, 16, 2, { D: true, z: true, bias: true, init: true, softplus: true });
  const m = makeUpdate(32, 3, 12, 64, 64, 3, true, { D: true, z: true, bias: true, softplus: true });
  try {
    forEachIsa((isa) => {
      kernels.setThreads(1);
      const s1 = kernels.selectiveScan(c), u1 = kernels.selectiveStateUpdate(updateArgs(m, Float32Array.from(m.state)));
      kernels.setThreads(3);
      const s3 = kernels.selectiveScan(c), u3 = kernels.selectiveStateUpdate(updateArgs(m, Float32Array.from(m.state)));
      sameBits(t, s3.out, s1.out, `scan out, 3 threads vs 1 ${isa}`);
      sameBits(t, s3.lastState, s1.lastState, `scan lastState, 3 threads vs 1 ${isa}`);
      sameBits(t, u3.out, u1.out, `update out, 3 threads vs 1 ${isa}`);
      sameBits(t, u3.state, u1.state, `update state, 3 threads vs 1 ${isa}`);
    });
  } finally {
    kernels.setThreads(before);
  }
  t.end();
});
