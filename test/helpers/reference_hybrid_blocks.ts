// Float64 reference blocks of the hybrid models, each carrying its own
// per-sequence state so that a sequence can be fed in pieces (prefill, then
// one token at a time): the Mamba-1 mixer (with Jamba's inner norms), the
// Mamba-2 mixer (with a gated RMSNorm over a configurable group), causal
// grouped-query attention (optional RoPE), the SwiGLU MLP and the MoE layer
// with both routers. Written plainly from the published semantics
// (REFERENCE.md sections 1, 2, 7): the sequential recurrence, an explicit score
// matrix, a loop over experts. Row-major layouts as in reference_model.ts.
//
// The row-wise pieces (linear, rmsNorm) are reference_model.ts's; nothing here
// needs the native addon.
import { linear, rmsNorm } from './reference_model';

export const silu = (x: number): number => x / (1 + Math.exp(-x));
/** softplus with PyTorch's threshold (x > 20 -> x). */
export const softplus = (x: number): number => (x <= 20 ? Math.log1p(Math.exp(x)) : x);

/** A tensor by its full name, checked for its element count (throws when absent or misshapen). */
export type NeedTensor = (name: string, size: number) => Float64Array;
/** An optional tensor: undefined when absent, checked when present. */
export type MaybeTensor = (name: string, size: number) => Float64Array | undefined;

export interface TensorSource {
  need: NeedTensor;
  maybe: MaybeTensor;
}

/** need / maybe over a name -> values map. */
export function tensorSource(weights: Map<string, Float64Array>, who = 'reference'): TensorSource {
  const need: NeedTensor = (name, size) => {
    const w = weights.get(name);
    if (!w) throw new Error(`${who}: missing tensor ${name}`);
    if (w.length !== size) throw new Error(`${who}: tensor ${name} has ${w.length} elements, expected ${size}`);
    return w;
  };
  return { need, maybe: (name, size) => (weights.has(name) ? need(name, size) : undefined) };
}

// ---------------------------------------------------------------------------
// Causal depthwise conv with a carried window (causal_conv1d_ref with
// initial_states; causal_conv1d_update_ref for one token).

/** The last K-1 conv inputs of C channels, oldest first ([K-1, C]); zeros at the start of a sequence. */
export interface ConvState {
  K: number;
  C: number;
  window: Float64Array;
}

export function newConvState(K: number, C: number): ConvState {
  return { K, C, window: new Float64Array((K - 1) * C) };
}

/**
 * out[t][c] = silu(b[c] + sum_k w[c*K + k] * in[t-(K-1)+k][c]) over columns
 * [c0, c0 + C) of x [L, stride], where inputs before this call come from the
 * state's window (cross-correlation: w[c*K + K-1] multiplies the current
 * token). The window then holds the last K-1 inputs. Returns [L, C].
 */
export function convSilu(
  state: ConvState, x: Float64Array, L: number, stride: number, c0: number, w: Float64Array, b?: Float64Array,
): Float64Array {
  const { K, C } = state;
  const hist = state.window;
  const input = (j: number, c: number): number => (j >= 0 ? x[j * stride + c0 + c] : hist[(K - 1 + j) * C + c]);
  const y = new Float64Array(L * C);
  for (let t = 0; t < L; t++) {
    for (let c = 0; c < C; c++) {
      let s = b ? b[c] : 0;
      for (let k = 0; k < K; k++) s += w[c * K + k] * input(t - (K - 1) + k, c);
      y[t * C + c] = silu(s);
    }
  }
  const next = new Float64Array((K - 1) * C);
  for (let j = 0; j < K - 1; j++) for (let c = 0; c < C; c++) next[j * C + c] = input(L - (K - 1) + j, c);
  state.window = next;
  return y;
}

// ---------------------------------------------------------------------------
// Mamba-1 (mamba_simple.py; Jamba: JambaMambaMixer.slow_forward).

export interface Mamba1Dims {
  d: number;
  di: number;
  N: number;
  R: number;
  K: number;
  /** Jamba: RMSNorm (this epsilon) of dt, B and C right after the x_proj split, weights dt_layernorm / b_layernorm / c_layernorm. */
  innerNormEps?: number;
}

export interface Mamba1State {
  conv: ConvState;
  /** [di, N] */
  ssm: Float64Array;
}

export function newMamba1State(m: Mamba1Dims): Mamba1State {
  return { conv: newConvState(m.K, m.di), ssm: new Float64Array(m.di * m.N) };
}

/** Mamba-1 mixer over h [L, d] (prefix e.g. 'model.layers.3.mamba.'), continuing `state`. Returns [L, d]. */
export function mamba1Block(src: TensorSource, prefix: string, m: Mamba1Dims, state: Mamba1State, h: Float64Array, L: number): Float64Array {
  const { d, di, N, R, K } = m;
  const inW = src.need(prefix + 'in_proj.weight', 2 * di * d);
  const inB = src.maybe(prefix + 'in_proj.bias', 2 * di);
  const convW = src.need(prefix + 'conv1d.weight', di * K);
  const convB = src.maybe(prefix + 'conv1d.bias', di);
  const xProjW = src.need(prefix + 'x_proj.weight', (R + 2 * N) * di);
  const dtW = src.need(prefix + 'dt_proj.weight', di * R);
  const dtB = src.maybe(prefix + 'dt_proj.bias', di);
  const A = src.need(prefix + 'A_log', di * N).map((v) => -Math.exp(v));
  const D = src.need(prefix + 'D', di);
  const outW = src.need(prefix + 'out_proj.weight', d * di);
  const outB = src.maybe(prefix + 'out_proj.bias', d);

  // in_proj -> [x (first di) | z (second di)]; x = silu(conv(x))
  const xz = linear(h, L, d, inW, 2 * di, inB);
  const x = convSilu(state.conv, xz, L, 2 * di, 0, convW, convB);
  // x_proj -> [dt (R) | B (N) | C (N)]
  const xdbl = linear(x, L, di, xProjW, R + 2 * N);
  let dtIn: Float64Array = new Float64Array(L * R), Bm: Float64Array = new Float64Array(L * N), Cm: Float64Array = new Float64Array(L * N);
  for (let t = 0; t < L; t++) {
    const row = t * (R + 2 * N);
    dtIn.set(xdbl.subarray(row, row + R), t * R);
    Bm.set(xdbl.subarray(row + R, row + R + N), t * N);
    Cm.set(xdbl.subarray(row + R + N, row + R + 2 * N), t * N);
  }
  if (m.innerNormEps !== undefined) {
    // JambaMambaMixer: dt_layernorm, b_layernorm, c_layernorm after the split, before dt_proj and the scan.
    dtIn = rmsNorm(dtIn, L, R, src.need(prefix + 'dt_layernorm.weight', R), m.innerNormEps);
    Bm = rmsNorm(Bm, L, N, src.need(prefix + 'b_layernorm.weight', N), m.innerNormEps);
    Cm = rmsNorm(Cm, L, N, src.need(prefix + 'c_layernorm.weight', N), m.innerNormEps);
  }
  // delta = softplus(dt_proj.weight . dt + dt_proj.bias); s = exp(delta A) s + delta B u; y = C.s + D u; y *= silu(z)
  const s = state.ssm;
  const y = new Float64Array(L * di);
  for (let t = 0; t < L; t++) {
    for (let c = 0; c < di; c++) {
      let raw = dtB ? dtB[c] : 0;
      for (let r = 0; r < R; r++) raw += dtW[c * R + r] * dtIn[t * R + r];
      const delta = softplus(raw);
      const u = x[t * di + c];
      let acc = 0;
      for (let n = 0; n < N; n++) {
        const v = Math.exp(delta * A[c * N + n]) * s[c * N + n] + delta * Bm[t * N + n] * u;
        s[c * N + n] = v;
        acc += v * Cm[t * N + n];
      }
      y[t * di + c] = (acc + D[c] * u) * silu(xz[t * 2 * di + di + c]);
    }
  }
  return linear(y, L, di, outW, d, outB);
}

// ---------------------------------------------------------------------------
// Mamba-2 (mamba2.py; Granite: GraniteMoeHybridMambaLayer.torch_forward, whose
// chunked SSD is the same recurrence; we run the recurrence).

export interface Mamba2Dims {
  d: number;
  di: number;
  N: number;
  /** SSM heads */
  H: number;
  /** head dim */
  P: number;
  /** B/C groups */
  G: number;
  K: number;
  normEps: number;
  /** Channels the gated RMSNorm normalises together: di for HF (Granite, MambaRMSNormGated), di/G for state-spaces. */
  normGroupSize: number;
  /** dt clamp (time_step_limit); [0, Infinity] = none. */
  dtLimit: [number, number];
}

export interface Mamba2State {
  conv: ConvState;
  /** [H, P, N] */
  ssm: Float64Array;
}

export function newMamba2State(m: Mamba2Dims): Mamba2State {
  return { conv: newConvState(m.K, m.di + 2 * m.G * m.N), ssm: new Float64Array(m.H * m.P * m.N) };
}

/** Mamba-2 mixer over h [L, d], continuing `state`. Returns [L, d]. */
export function mamba2Block(src: TensorSource, prefix: string, m: Mamba2Dims, state: Mamba2State, h: Float64Array, L: number): Float64Array {
  const { d, di, N, H, P, G, K } = m;
  if (H * P !== di) throw new Error(`reference: Mamba-2 heads ${H} x head dim ${P} != inner ${di}`);
  if (H % G !== 0 || di % m.normGroupSize !== 0) throw new Error('reference: Mamba-2 groups do not divide');
  const convDim = di + 2 * G * N, proj = di + convDim + H;
  const inW = src.need(prefix + 'in_proj.weight', proj * d);
  const inB = src.maybe(prefix + 'in_proj.bias', proj);
  const convW = src.need(prefix + 'conv1d.weight', convDim * K);
  const convB = src.maybe(prefix + 'conv1d.bias', convDim);
  const dtBias = src.need(prefix + 'dt_bias', H);
  const A = src.need(prefix + 'A_log', H).map((v) => -Math.exp(v));
  const D = src.need(prefix + 'D', H);
  const normW = src.need(prefix + 'norm.weight', di);
  const outW = src.need(prefix + 'out_proj.weight', d * di);
  const outB = src.maybe(prefix + 'out_proj.bias', d);
  const [dtMin, dtMax] = m.dtLimit;

  // in_proj -> [z (di) | xBC (di + 2GN) | dt (H)]; silu(conv(xBC)) -> [x (di) | B (GN) | C (GN)]
  const zxbcdt = linear(h, L, d, inW, proj, inB);
  const xBC = convSilu(state.conv, zxbcdt, L, proj, di, convW, convB);
  const s = state.ssm;
  const y = new Float64Array(L * di);
  for (let t = 0; t < L; t++) {
    const xb = t * convDim, pb = t * proj;
    for (let hh = 0; hh < H; hh++) {
      const g = Math.floor(hh / (H / G));
      const Boff = xb + di + g * N, Coff = xb + di + G * N + g * N;
      // dt = clamp(softplus(dt + dt_bias), time_step_limit); dA = exp(dt A_h)
      const dt = Math.min(Math.max(softplus(zxbcdt[pb + di + convDim + hh] + dtBias[hh]), dtMin), dtMax);
      const dA = Math.exp(dt * A[hh]);
      for (let p = 0; p < P; p++) {
        const c = hh * P + p, xv = xBC[xb + c];
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const v = dA * s[c * N + n] + dt * xv * xBC[Boff + n];
          s[c * N + n] = v;
          acc += v * xBC[Coff + n];
        }
        y[t * di + c] = acc + D[hh] * xv;
      }
    }
    // gated RMSNorm (norm_before_gate=False): rms(y * silu(z)) * w, per group of normGroupSize channels
    const gs = m.normGroupSize;
    for (let g0 = 0; g0 < di; g0 += gs) {
      let ss = 0;
      for (let j = g0; j < g0 + gs; j++) {
        const v = y[t * di + j] * silu(zxbcdt[pb + j]);
        y[t * di + j] = v;
        ss += v * v;
      }
      const r = 1 / Math.sqrt(ss / gs + m.normEps);
      for (let j = g0; j < g0 + gs; j++) y[t * di + j] *= r * normW[j];
    }
  }
  return linear(y, L, di, outW, d, outB);
}

// ---------------------------------------------------------------------------
// Attention (JambaAttention; GraniteMoeHybridAttention + eager_attention_forward).

export interface AttentionDims {
  d: number;
  Hq: number;
  Hkv: number;
  hd: number;
  /** Multiplies q.k: Jamba 1/sqrt(hd), Granite attention_multiplier. */
  scale: number;
  /** RoPE base (rotate_half form on q and k at absolute positions); 0 = no positional encoding. */
  ropeTheta: number;
}

/** Keys (after RoPE) and values of every position so far, one [Hkv * hd] row each. */
export interface KvCache {
  keys: Float64Array[];
  values: Float64Array[];
}

export function newKvCache(): KvCache {
  return { keys: [], values: [] };
}

/**
 * HF rotate_half RoPE of one head vector v [hd] at position pos, in place:
 * inv_freq_i = theta^(-2i/hd), angle = pos * inv_freq_i for i < hd/2 (cos/sin
 * repeated over both halves), out = v*cos + rotate_half(v)*sin with
 * rotate_half(v) = [-v2, v1].
 */
export function applyRope(v: Float64Array, off: number, hd: number, pos: number, theta: number): void {
  const half = hd / 2;
  for (let i = 0; i < half; i++) {
    const ang = pos * theta ** (-(2 * i) / hd);
    const c = Math.cos(ang), s = Math.sin(ang);
    const a = v[off + i], b = v[off + half + i];
    v[off + i] = a * c - b * s;
    v[off + half + i] = b * c + a * s;
  }
}

/** Causal GQA attention over h [L, d], appending to `cache` (positions continue from its length). Returns [L, d]. */
export function attentionBlock(src: TensorSource, prefix: string, a: AttentionDims, cache: KvCache, h: Float64Array, L: number): Float64Array {
  const { d, Hq, Hkv, hd } = a;
  const qW = src.need(prefix + 'q_proj.weight', Hq * hd * d);
  const kW = src.need(prefix + 'k_proj.weight', Hkv * hd * d);
  const vW = src.need(prefix + 'v_proj.weight', Hkv * hd * d);
  const oW = src.need(prefix + 'o_proj.weight', d * Hq * hd);
  const q = linear(h, L, d, qW, Hq * hd, src.maybe(prefix + 'q_proj.bias', Hq * hd));
  const k = linear(h, L, d, kW, Hkv * hd, src.maybe(prefix + 'k_proj.bias', Hkv * hd));
  const v = linear(h, L, d, vW, Hkv * hd, src.maybe(prefix + 'v_proj.bias', Hkv * hd));
  const past = cache.keys.length;
  for (let t = 0; t < L; t++) {
    if (a.ropeTheta > 0) {
      for (let hh = 0; hh < Hq; hh++) applyRope(q, t * Hq * hd + hh * hd, hd, past + t, a.ropeTheta);
      for (let hh = 0; hh < Hkv; hh++) applyRope(k, t * Hkv * hd + hh * hd, hd, past + t, a.ropeTheta);
    }
    cache.keys.push(k.slice(t * Hkv * hd, (t + 1) * Hkv * hd));
    cache.values.push(v.slice(t * Hkv * hd, (t + 1) * Hkv * hd));
  }
  const T = cache.keys.length;
  const out = new Float64Array(L * Hq * hd);
  const group = Hq / Hkv; // query head hh reads KV head floor(hh / group) (repeat_kv)
  for (let hh = 0; hh < Hq; hh++) {
    const kv = Math.floor(hh / group);
    // explicit score matrix [L, T] of this head; position past + t sees keys 0 ..= past + t
    const scores = new Float64Array(L * T).fill(-Infinity);
    for (let t = 0; t < L; t++) {
      for (let j = 0; j <= past + t; j++) {
        let dot = 0;
        for (let i = 0; i < hd; i++) dot += q[t * Hq * hd + hh * hd + i] * cache.keys[j][kv * hd + i];
        scores[t * T + j] = dot * a.scale;
      }
    }
    for (let t = 0; t < L; t++) {
      let mx = -Infinity;
      for (let j = 0; j < T; j++) mx = Math.max(mx, scores[t * T + j]);
      let z = 0;
      for (let j = 0; j < T; j++) z += Math.exp(scores[t * T + j] - mx);
      for (let j = 0; j < T; j++) {
        const p = Math.exp(scores[t * T + j] - mx) / z;
        if (p === 0) continue;
        for (let i = 0; i < hd; i++) out[t * Hq * hd + hh * hd + i] += p * cache.values[j][kv * hd + i];
      }
    }
  }
  return linear(out, L, Hq * hd, oW, d, src.maybe(prefix + 'o_proj.bias', d));
}

// ---------------------------------------------------------------------------
// Feed-forwards (JambaMLP / GraniteMoeHybridMLP; JambaSparseMoeBlock / GraniteMoeHybridMoE).

export interface SwiGluWeights {
  /** [I, d] */
  gate: Float64Array;
  /** [I, d] */
  up: Float64Array;
  /** [d, I] */
  down: Float64Array;
}

/** down(silu(gate x) * up x) over x [L, d]. Returns [L, d]. */
export function swiGlu(w: SwiGluWeights, x: Float64Array, L: number, d: number, I: number): Float64Array {
  const g = linear(x, L, d, w.gate, I), u = linear(x, L, d, w.up, I);
  const a = new Float64Array(L * I);
  for (let j = 0; j < L * I; j++) a[j] = silu(g[j]) * u[j];
  return linear(a, L, I, w.down, d);
}

/**
 * Jamba 'softmax_topk': p = softmax over all E router logits, the top-k p are
 * the weights, not renormalised. Granite 'topk_softmax': the top-k logits,
 * then softmax over those k. Ties go to the lower expert index.
 */
export type RouterKind = 'softmax_topk' | 'topk_softmax';

export interface Routing {
  /** Chosen experts, best first. */
  experts: number[];
  weights: number[];
  /** logit of the k-th choice minus the (k+1)-th (Infinity when k = E): how far the choice is from a tie. */
  gap: number;
}

export function route(logits: ArrayLike<number>, k: number, kind: RouterKind): Routing {
  const E = logits.length;
  const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => logits[b] - logits[a] || a - b);
  const experts = order.slice(0, k);
  const gap = k < E ? logits[order[k - 1]] - logits[order[k]] : Infinity;
  const mx = logits[order[0]];
  let weights: number[];
  if (kind === 'softmax_topk') {
    let z = 0;
    for (let e = 0; e < E; e++) z += Math.exp(logits[e] - mx);
    weights = experts.map((e) => Math.exp(logits[e] - mx) / z);
  } else {
    const ex = experts.map((e) => Math.exp(logits[e] - mx));
    const z = ex.reduce((a, b) => a + b, 0);
    weights = ex.map((v) => v / z);
  }
  return { experts, weights, gap };
}

/** Mixture of SwiGLU experts over x [L, d], router [E, d]. Returns the output [L, d] and each token's routing. */
export function moeBlock(
  router: Float64Array, experts: SwiGluWeights[], kind: RouterKind, k: number, x: Float64Array, L: number, d: number, I: number,
): { out: Float64Array; routing: Routing[] } {
  const E = experts.length;
  const logits = linear(x, L, d, router, E);
  const out = new Float64Array(L * d);
  const routing: Routing[] = [];
  for (let t = 0; t < L; t++) {
    const r = route(logits.subarray(t * E, (t + 1) * E), k, kind);
    routing.push(r);
    const row = x.subarray(t * d, (t + 1) * d);
    r.experts.forEach((e, j) => {
      const y = swiGlu(experts[e], row, 1, d, I);
      for (let c = 0; c < d; c++) out[t * d + c] += r.weights[j] * y[c];
    });
  }
  return { out, routing };
}
