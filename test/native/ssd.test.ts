// Mamba-2 SSD chunked scan against a float64 sequential recurrence.
import t from 'tap';
import { kernels } from '../../lib';
import { assertClose, forEachIsa, randn, rng, silu, softplus, uniform } from '../helpers/reference';

interface Case {
  tokens: number; nheads: number; headdim: number; dstate: number; ngroups: number;
  x: Float32Array; dt: Float32Array; A: Float32Array; B: Float32Array; C: Float32Array;
  D?: Float32Array; z?: Float32Array; dtBias?: Float32Array; initialStates?: Float32Array;
  cuSeqlens?: Int32Array; dtSoftplus?: boolean; dtMin?: number; dtMax?: number;
}

/**
 * The published recurrence (REFERENCE.md §2), token by token in float64:
 * state = exp(dt·A)·state + dt·x ⊗ B; y = state·C + D·x; y *= silu(z).
 */
function ssdRef(c: Case): { out: Float64Array; fin: Float64Array } {
  const { tokens, nheads: H, headdim: P, dstate: N, ngroups: G } = c;
  const cu = c.cuSeqlens ?? Int32Array.from([0, tokens]);
  const nseq = cu.length - 1;
  const out = new Float64Array(tokens * H * P), fin = new Float64Array(nseq * H * P * N);
  const st = new Float64Array(P * N);
  for (let s = 0; s < nseq; s++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      for (let i = 0; i < P * N; i++) st[i] = c.initialStates ? c.initialStates[(s * H + h) * P * N + i] : 0;
      for (let tk = cu[s]; tk < cu[s + 1]; tk++) {
        let d = c.dt[tk * H + h] + (c.dtBias ? c.dtBias[h] : 0);
        if (c.dtSoftplus) d = softplus(d);
        if (c.dtMin !== undefined) d = Math.max(d, c.dtMin);
        if (c.dtMax !== undefined) d = Math.min(d, c.dtMax);
        const dA = Math.exp(d * c.A[h]);
        for (let p = 0; p < P; p++) {
          const xv = c.x[(tk * H + h) * P + p];
          let y = 0;
          for (let n = 0; n < N; n++) {
            const v = dA * st[p * N + n] + d * xv * c.B[(tk * G + g) * N + n];
            st[p * N + n] = v;
            y += v * c.C[(tk * G + g) * N + n];
          }
          if (c.D) y += c.D[h] * xv;
          if (c.z) y *= silu(c.z[(tk * H + h) * P + p]);
          out[(tk * H + h) * P + p] = y;
        }
      }
      fin.set(st, (s * H + h) * P * N);
    }
  }
  return { out, fin };
}

interface Opts { D?: boolean; z?: boolean; bias?: boolean; init?: boolean; softplus?: boolean; clamp?: boolean }

/**
 * Random inputs like a real checkpoint: A = -exp(U(-1, 1)); dt = softplus of
 * small values (raw dt ~ N(-1, 0.5) when the kernel applies the softplus,
 * else U(0.05, 0.6)), so every decay is in (0, 1) and the state stays bounded.
 */
function makeCase(seed: number, tokens: number, nheads: number, headdim: number, dstate: number, ngroups: number,
  o: Opts, cuSeqlens?: Int32Array): Case {
  const r = rng(seed);
  const nseq = cuSeqlens ? cuSeqlens.length - 1 : 1;
  const A = uniform(r, nheads, -1, 1).map((v) => -Math.exp(v));
  const dt = o.softplus ? randn(r, tokens * nheads, 0.5).map((v) => v - 1) : uniform(r, tokens * nheads, 0.05, 0.6);
  return {
    tokens, nheads, headdim, dstate, ngroups, A, dt, cuSeqlens,
    x: randn(r, tokens * nheads * headdim),
    B: randn(r, tokens * ngroups * dstate, 0.5),
    C: randn(r, tokens * ngroups * dstate, 0.5),
    D: o.D ? randn(r, nheads) : undefined,
    z: o.z ? randn(r, tokens * nheads * headdim) : undefined,
    dtBias: o.bias ? (o.softplus ? uniform(r, nheads, -0.5, 0.5) : uniform(r, nheads, 0, 0.2)) : undefined,
    initialStates: o.init ? randn(r, nseq * nheads * headdim * dstate) : undefined,
    dtSoftplus: o.softplus,
    dtMin: o.clamp ? 0.1 : undefined,
    dtMax: o.clamp ? 0.5 : undefined,
  };
}

// Tolerance. The kernel computes in float32 (AVX exp ~2 ulp, float32
// cumulative sums of dt*A over up to 256 tokens, sums over dstate and chunk
// terms); the reference is exact float64. Errors scale with the size of the
// outputs (|y| reaches ~20 with dstate 128), so the bound is
// atol = 5e-6 * (1 + max|ref|) plus rtol 2e-5. Observed worst: ~1/3 of it.
function scaledAtol(ref: Float64Array): number {
  let m = 0;
  for (const v of ref) m = Math.max(m, Math.abs(v));
  return 5e-6 * (1 + m);
}
const RTOL = 2e-5;

function run(c: Case, chunkSize?: number) {
  return kernels.ssdChunkScan({ ...c, chunkSize });
}

const OPTION_SETS: Opts[] = [
  {},
  { D: true, z: true, bias: true, init: true, softplus: true, clamp: true },
  { D: true, z: true },
  { bias: true, softplus: true, init: true },
  { bias: true, clamp: true },
];

t.test('ssdChunkScan matches the sequential float64 recurrence (awkward sizes, every option, chunk sizes, every ISA)', (t) => {
  // [tokens, nheads, headdim, dstate, ngroups, chunk sizes]
  const configs: [number, number, number, number, number, number[]][] = [
    [1, 1, 1, 1, 1, [1, 256]],
    [7, 3, 5, 17, 3, [1, 8, 256]],
    [64, 4, 16, 16, 2, [8, 16, 64, 256]],
    [100, 6, 5, 128, 3, [16, 64, 256]],
    [257, 4, 64, 17, 1, [1, 64, 256]],
    [257, 6, 16, 128, 2, [8, 256]],
    [100, 1, 64, 1, 1, [16, 64]],
    [64, 3, 1, 16, 1, [8, 64]],
    [20, 2, 200, 256, 2, [8, 64]],
  ];
  let seed = 100;
  for (const [tokens, nheads, headdim, dstate, ngroups, chunks] of configs) {
    for (const o of OPTION_SETS) {
      const c = makeCase(seed++, tokens, nheads, headdim, dstate, ngroups, o);
      const ref = ssdRef(c);
      const atolOut = scaledAtol(ref.out), atolFin = scaledAtol(ref.fin);
      forEachIsa((isa) => {
        for (const q of chunks) {
          const got = run(c, q);
          const tag = `T${tokens} H${nheads} P${headdim} N${dstate} G${ngroups} Q${q} ${JSON.stringify(o)} ${isa}`;
          assertClose(t, got.out, ref.out, atolOut, RTOL, `out ${tag}`);
          assertClose(t, got.finalStates, ref.fin, atolFin, RTOL, `finalStates ${tag}`);
        }
      });
    }
  }
  t.end();
});

t.test('default options: one sequence, chunkSize SSD_CPU_CHUNK_SIZE (64), no softplus', (t) => {
  const c = makeCase(7, 300, 2, 8, 16, 1, { D: true });
  const ref = ssdRef(c);
  const got = kernels.ssdChunkScan({ x: c.x, dt: c.dt, A: c.A, B: c.B, C: c.C, D: c.D, tokens: 300, nheads: 2, headdim: 8, dstate: 16 });
  assertClose(t, got.out, ref.out, scaledAtol(ref.out), RTOL, 'out');
  assertClose(t, got.finalStates, ref.fin, scaledAtol(ref.fin), RTOL, 'finalStates');
  t.equal(got.finalStates.length, 2 * 8 * 16);
  t.equal(kernels.SSD_CPU_CHUNK_SIZE, 64);
  const explicit = kernels.ssdChunkScan({ ...c, dtSoftplus: undefined, chunkSize: kernels.SSD_CPU_CHUNK_SIZE });
  t.same(Array.from(got.out), Array.from(explicit.out), 'default chunk is SSD_CPU_CHUNK_SIZE');
  t.end();
});

/** Rows [t0, t1) of a token-major array with `row` elements per token. */
const rows = (a: Float32Array | undefined, row: number, t0: number, t1: number) => a?.slice(t0 * row, t1 * row);

function sliceCase(c: Case, t0: number, t1: number, init?: Float32Array): Case {
  const H = c.nheads, P = c.headdim, GN = c.ngroups * c.dstate;
  return {
    ...c, tokens: t1 - t0, cuSeqlens: undefined, initialStates: init,
    x: rows(c.x, H * P, t0, t1)!, z: rows(c.z, H * P, t0, t1), dt: rows(c.dt, H, t0, t1)!,
    B: rows(c.B, GN, t0, t1)!, C: rows(c.C, GN, t0, t1)!,
  };
}

t.test('a packed batch of unequal sequences equals separate runs (lengths 0 and < chunk included)', (t) => {
  const lens = [0, 5, 37, 0, 3, 130, 1, 64];
  const cu = new Int32Array(lens.length + 1);
  for (let i = 0; i < lens.length; i++) cu[i + 1] = cu[i] + lens[i];
  const tokens = cu[lens.length], H = 4, P = 16, N = 17, G = 2;
  for (const o of [{ D: true, z: true, bias: true, softplus: true }, { init: true, D: true, bias: true, softplus: true }] as Opts[]) {
    const c = makeCase(31, tokens, H, P, N, G, o, cu);
    const ref = ssdRef(c);
    forEachIsa((isa) => {
      for (const q of [1, 16, 64, 256]) {
        const got = run(c, q);
        const tag = `Q${q} init=${!!o.init} ${isa}`;
        assertClose(t, got.out, ref.out, scaledAtol(ref.out), RTOL, `packed out vs reference ${tag}`);
        assertClose(t, got.finalStates, ref.fin, scaledAtol(ref.fin), RTOL, `packed finalStates vs reference ${tag}`);
        const sz = H * P * N;
        for (let s = 0; s < lens.length; s++) {
          const init = c.initialStates?.slice(s * sz, (s + 1) * sz);
          const one = run(sliceCase(c, cu[s], cu[s + 1], init), q);
          // Same arithmetic in the same order: bit-identical.
          t.same(Array.from(got.out.subarray(cu[s] * H * P, cu[s + 1] * H * P)), Array.from(one.out), `seq ${s} (len ${lens[s]}) out ${tag}`);
          t.same(Array.from(got.finalStates.subarray(s * sz, (s + 1) * sz)), Array.from(one.finalStates), `seq ${s} finalStates ${tag}`);
          if (lens[s] === 0) {
            const expect = init ?? new Float32Array(sz);
            t.same(Array.from(one.finalStates), Array.from(expect), `empty seq ${s} keeps its initial state ${tag}`);
          }
        }
      }
    });
  }
  t.end();
});

t.test('prefill of L then k tokens from the previous finalStates equals one prefill of L + k', (t) => {
  const H = 3, P = 16, N = 128, G = 1;
  for (const [L, k, q] of [[100, 7, 16], [64, 64, 64], [1, 200, 256], [37, 1, 8]]) {
    const c = makeCase(50 + L + k, L + k, H, P, N, G, { D: true, z: true, bias: true, softplus: true });
    forEachIsa((isa) => {
      const whole = run(c, q);
      const first = run(sliceCase(c, 0, L), q);
      const second = run(sliceCase(c, L, L + k, first.finalStates), q);
      const joined = new Float32Array(whole.out.length);
      joined.set(first.out);
      joined.set(second.out, first.out.length);
      const w64 = Float64Array.from(whole.out), f64 = Float64Array.from(whole.finalStates);
      // Chunk boundaries differ between the two schedules, so only rounding differs.
      assertClose(t, joined, w64, scaledAtol(w64), RTOL, `out L${L} k${k} Q${q} ${isa}`);
      assertClose(t, second.finalStates, f64, scaledAtol(f64), RTOL, `finalStates L${L} k${k} Q${q} ${isa}`);
      const ref = ssdRef(c);
      assertClose(t, joined, ref.out, scaledAtol(ref.out), RTOL, `split prefill vs reference L${L} k${k} ${isa}`);
    });
  }
  t.end();
});

t.test('the test can fail: a wrong A is detected', (t) => {
  const c = makeCase(9, 40, 2, 8, 16, 1, { D: true });
  const ref = ssdRef(c);
  const bad = kernels.ssdChunkScan({ ...c, A: c.A.map((v) => v * 1.01), chunkSize: 16 });
  let worst = 0;
  const atol = scaledAtol(ref.out);
  for (let i = 0; i < ref.out.length; i++) worst = Math.max(worst, Math.abs(bad.out[i] - ref.out[i]) / (atol + RTOL * Math.abs(ref.out[i])));
  t.ok(worst > 1, `1% change of A exceeds the tolerance (worst err/tol ${worst.toPrecision(3)})`);
  t.end();
});

t.test('ssdChunkScan rejects bad input with named errors', (t) => {
  const c = makeCase(3, 10, 4, 8, 16, 2, { D: true });
  const base = { ...c } as Record<string, unknown>;
  const call = (over: Record<string, unknown>) => () => kernels.ssdChunkScan({ ...base, ...over } as never);
  const cu = (a: number[]) => Int32Array.from(a);
  t.doesNotThrow(call({}), 'valid input');
  t.throws(call({ cuSeqlens: cu([0, 6, 4, 10]) }), { name: 'RangeError', message: /ssdChunkScan.*'cuSeqlens'.*non-decreasing/ });
  t.throws(call({ cuSeqlens: cu([0, 4, 9]) }), { name: 'RangeError', message: /'cuSeqlens' must end with tokens/ });
  t.throws(call({ cuSeqlens: cu([1, 4, 10]) }), { name: 'RangeError', message: /'cuSeqlens' must start with 0/ });
  t.throws(call({ cuSeqlens: cu([0, -3, 10]) }), { name: 'RangeError', message: /'cuSeqlens'/ });
  t.throws(call({ cuSeqlens: new Int32Array(0) }), { name: 'RangeError', message: /'cuSeqlens'/ });
  t.throws(call({ cuSeqlens: new Float32Array([0, 10]) }), { name: 'TypeError', message: /'cuSeqlens'/ });
  t.throws(call({ cuSeqlens: cu([0, 4, 10]), initialStates: new Float32Array(4 * 8 * 16) }), { name: 'RangeError', message: /'initialStates' must have 1024 elements/ });
  t.throws(call({ ngroups: 3 }), { name: 'RangeError', message: /'ngroups' must divide nheads/ });
  t.throws(call({ ngroups: 0 }), { name: 'RangeError', message: /'ngroups'/ });
  t.throws(call({ dstate: 0 }), { name: 'RangeError', message: /'dstate'/ });
  t.throws(call({ dstate: 5000 }), { name: 'RangeError', message: /'dstate'/ });
  t.throws(call({ headdim: 2000 }), { name: 'RangeError', message: /'headdim'/ });
  t.throws(call({ headdim: -1 }), { name: 'RangeError', message: /'headdim'/ });
  t.throws(call({ nheads: 2 ** 40 }), { name: 'RangeError', message: /'nheads'/ });
  t.throws(call({ tokens: 2 ** 33 }), { name: 'RangeError', message: /'tokens'/ });
  t.throws(call({ tokens: 1.5 }), { name: 'TypeError', message: /'tokens'/ });
  t.throws(call({ chunkSize: 0 }), { name: 'RangeError', message: /'chunkSize'/ });
  t.throws(call({ chunkSize: 1e6 }), { name: 'RangeError', message: /'chunkSize'/ });
  t.throws(call({ x: new Float32Array(10) }), { name: 'RangeError', message: /'x' must have 320 elements/ });
  t.throws(call({ x: new Float64Array(320) }), { name: 'TypeError', message: /'x'/ });
  t.throws(call({ x: undefined }), { name: 'TypeError', message: /'x' is required/ });
  t.throws(call({ dt: new Float32Array(39) }), { name: 'RangeError', message: /'dt'/ });
  t.throws(call({ A: new Float32Array(3) }), { name: 'RangeError', message: /'A'/ });
  t.throws(call({ A: new Uint16Array(4), ADtype: 'bf16' }), { name: 'TypeError', message: /'A'.*allowed: f32/ });
  t.throws(call({ B: new Float32Array(10 * 16) }), { name: 'RangeError', message: /'B'/ });
  t.throws(call({ C: new Float32Array(10 * 2 * 16 + 1) }), { name: 'RangeError', message: /'C'/ });
  t.throws(call({ D: new Float32Array(5) }), { name: 'RangeError', message: /'D'/ });
  t.throws(call({ z: new Float32Array(3) }), { name: 'RangeError', message: /'z'/ });
  t.throws(call({ dtBias: new Float32Array(1) }), { name: 'RangeError', message: /'dtBias'/ });
  t.throws(call({ dtSoftplus: 1 }), { name: 'TypeError', message: /'dtSoftplus'/ });
  t.throws(call({ dtMin: 1, dtMax: 0.5 }), { name: 'RangeError', message: /'dtMax'/ });
  t.throws(call({ dtMin: NaN }), { name: 'RangeError', message: /'dtMin'/ });
  t.throws(() => kernels.ssdChunkScan(undefined as never), { name: 'TypeError', message: /ssdChunkScan/ });
  t.end();
});

t.test('zero tokens: empty output, final states = initial states', (t) => {
  const init = randn(rng(4), 2 * 3 * 4 * 5);
  forEachIsa((isa) => {
    const got = kernels.ssdChunkScan({
      x: new Float32Array(0), dt: new Float32Array(0), A: new Float32Array([-1, -2, -0.5]), B: new Float32Array(0),
      C: new Float32Array(0), tokens: 0, nheads: 3, headdim: 4, dstate: 5, cuSeqlens: Int32Array.from([0, 0, 0]),
      initialStates: init.slice(0, 2 * 3 * 4 * 5), ngroups: 1,
    });
    t.equal(got.out.length, 0, isa);
    t.same(Array.from(got.finalStates), Array.from(init), `final = initial ${isa}`);
  });
  t.end();
});
