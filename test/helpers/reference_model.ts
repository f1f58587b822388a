// Float64 reference forward pass of a whole Mamba / Mamba-2 language model,
// written from the published semantics with plain loops (REFERENCE.md sections
// 1-2; state-spaces/mamba modules/mamba_simple.py, modules/mamba2.py,
// modules/block.py, models/mixer_seq_simple.py; Hugging Face modeling_mamba.py /
// modeling_mamba2.py slow paths). It is deliberately naive: the sequential
// recurrence, no chunking, no fusion, so that it is easy to check by reading.
//
// It imports nothing from lib/ except the config type, so it runs without the
// native addon.
//
// Layouts (canonical Hugging Face names, row-major):
//   Linear weight [out, in]:  y[o] = sum_i W[o*in + i] * x[i] (+ b[o])
//   conv1d.weight [C, 1, K] flattened to C*K: out[t][c] = b[c] + sum_k w[c*K + k] * x[t-(K-1)+k][c]
//   (cross-correlation: w[c*K + K-1] multiplies the current token; earlier taps read zeros before t=0)
import type { MambaConfig } from '../../lib/model/config';

export type ReferenceWeights = Map<string, Float64Array>;

/**
 * How the input of the linear layer with weight `name` is rounded before the
 * product (kernels/linear.h "Rounded activations"; the engine's inputRounding
 * 'auto' rounds for bf16 weights to bf16 and for q8_0 / q4_0 weights to int8
 * per 32 values). Default: none.
 */
export type InputRoundingRule = (weightName: string) => RoundMode;
// The int8 SSM path (csrc/kernels/ssm_q8.h) asks the same rule for the
// mixer's activation taps, named `<mixer prefix>conv1d:input` (the conv's
// input channels), `conv1d:output` (after SiLU) and, Mamba-1, `B` / `C`.

/** Columns [c0, c0 + width) of x [L, stride] replaced by their rounding under `mode` (no-op for 'none'). */
function roundColumns(x: Float64Array, L: number, stride: number, c0: number, width: number, mode: RoundMode): void {
  if (mode === 'none') return;
  const r = roundRows(x, L, width, mode, stride, c0);
  for (let t = 0; t < L; t++) for (let c = 0; c < width; c++) x[t * stride + c0 + c] = r[t * width + c];
}
/** 'none', 'bf16', 'q8', or any per-row map of the float32-rounded input row (quantized schemes). */
export type RoundMode = 'none' | 'bf16' | 'q8' | ((row: Float64Array) => Float64Array);

/** The rule of inputRounding 'auto' for a checkpoint whose matrices are all bf16. */
export const bf16MatrixInputs: InputRoundingRule = (name) =>
  /(in_proj|x_proj|dt_proj|out_proj)\.weight$|^lm_head\.weight$|^backbone\.embeddings\.weight$/.test(name) ? 'bf16' : 'none';

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
/** float32 x rounded to bfloat16, nearest even (finite inputs). */
function toBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  u32buf[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32buf[0];
}
/** Round half to even (nearbyint in the default rounding mode). */
function rne(v: number): number {
  const f = Math.floor(v), r = v - f;
  return r > 0.5 || (r === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/**
 * Rows [L, inDim] (row stride `stride`, from column `c0`) of x rounded as
 * `mode`, into a new [L, inDim] array ('none': the values as they are). The engine's activations are float32,
 * so x is first rounded to float32 and the scale arithmetic is float32:
 *   bf16: x32 to bfloat16;
 *   q8:   per run of 32 values, amax = max |x32|, d = f32(amax / 127),
 *         q = rne(f32(x32 * f32(127 / amax))) clamped to [-127, 127], value d * q
 *         (ggml's Q8_0 quantization of activations).
 */
export function roundRows(x: Float64Array, L: number, inDim: number, mode: RoundMode, stride = inDim, c0 = 0): Float64Array {
  if (mode === 'none' && stride === inDim && c0 === 0) return x;
  const out = new Float64Array(L * inDim);
  for (let t = 0; t < L; t++) {
    if (mode === 'none') {
      for (let i = 0; i < inDim; i++) out[t * inDim + i] = x[t * stride + c0 + i];
      continue;
    }
    const row = Array.from({ length: inDim }, (_, i) => Math.fround(x[t * stride + c0 + i]));
    if (typeof mode === 'function') {
      out.set(mode(Float64Array.from(row)), t * inDim);
      continue;
    }
    for (let b = 0; b < inDim; b += 32) {
      const e = Math.min(inDim, b + 32);
      if (mode === 'bf16') {
        for (let i = b; i < e; i++) out[t * inDim + i] = toBf16(row[i]);
      } else if (mode === 'q8') {
        let amax = 0;
        for (let i = b; i < e; i++) amax = Math.max(amax, Math.abs(row[i]));
        const d = Math.fround(amax / 127), id = amax > 0 ? Math.fround(127 / amax) : 0;
        for (let i = b; i < e; i++) out[t * inDim + i] = d * Math.min(127, Math.max(-127, rne(Math.fround(row[i] * id))));
      }
    }
  }
  return out;
}

const silu = (x: number): number => x / (1 + Math.exp(-x));
/** softplus with PyTorch's threshold (x > 20 -> x), as the reference kernels use. */
const softplus = (x: number): number => (x <= 20 ? Math.log1p(Math.exp(x)) : x);

/** A tensor by name, checked for its element count; a clear error if absent or misshapen. */
function need(weights: ReferenceWeights, name: string, size: number): Float64Array {
  const w = weights.get(name);
  if (!w) throw new Error(`reference model: missing tensor ${name}`);
  if (w.length !== size) throw new Error(`reference model: tensor ${name} has ${w.length} elements, expected ${size}`);
  return w;
}

/** An optional tensor: undefined when absent, checked when present. */
function maybe(weights: ReferenceWeights, name: string, size: number): Float64Array | undefined {
  return weights.has(name) ? need(weights, name, size) : undefined;
}

/** y[L, out] = x[L, in] W^T (+ b). */
export function linear(x: Float64Array, L: number, inDim: number, w: Float64Array, outDim: number, b?: Float64Array): Float64Array {
  const y = new Float64Array(L * outDim);
  for (let t = 0; t < L; t++) {
    for (let o = 0; o < outDim; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inDim; i++) s += w[o * inDim + i] * x[t * inDim + i];
      y[t * outDim + o] = s;
    }
  }
  return y;
}

/** RMSNorm of each row: x * (mean(x^2) + eps)^-1/2 * w. */
export function rmsNorm(x: Float64Array, L: number, dim: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(L * dim);
  for (let t = 0; t < L; t++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[t * dim + j] ** 2;
    const s = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) y[t * dim + j] = x[t * dim + j] * s * w[j];
  }
  return y;
}

/** Causal depthwise conv over columns [c0, c0+C) of x [L, stride], then SiLU. Returns [L, C]. */
export function causalConvSilu(
  x: Float64Array, L: number, stride: number, c0: number, C: number, K: number, w: Float64Array, b?: Float64Array,
): Float64Array {
  const y = new Float64Array(L * C);
  for (let t = 0; t < L; t++) {
    for (let c = 0; c < C; c++) {
      let s = b ? b[c] : 0;
      for (let k = 0; k < K; k++) {
        const src = t - (K - 1) + k;
        if (src >= 0) s += w[c * K + k] * x[src * stride + c0 + c];
      }
      y[t * C + c] = silu(s);
    }
  }
  return y;
}

/** Mamba-1 mixer (mamba_simple.py Mamba.forward, slow path): h [L, d] -> [L, d]. */
export function mamba1Mixer(
  config: MambaConfig, weights: ReferenceWeights, prefix: string, h: Float64Array, L: number, round: InputRoundingRule = () => 'none',
): Float64Array {
  const rin = (name: string, x: Float64Array, inDim: number, stride = inDim, c0 = 0) => roundRows(x, L, inDim, round(prefix + name), stride, c0);
  const d = config.dModel, di = config.dInner, N = config.dState, R = config.dtRank, K = config.dConv;
  const inW = need(weights, prefix + 'in_proj.weight', 2 * di * d);
  const inB = config.useBias ? maybe(weights, prefix + 'in_proj.bias', 2 * di) : undefined;
  const convW = need(weights, prefix + 'conv1d.weight', di * K);
  const convB = maybe(weights, prefix + 'conv1d.bias', di);
  const xProjW = need(weights, prefix + 'x_proj.weight', (R + 2 * N) * di);
  const dtW = need(weights, prefix + 'dt_proj.weight', di * R);
  const dtB = maybe(weights, prefix + 'dt_proj.bias', di);
  const Alog = need(weights, prefix + 'A_log', di * N);
  const D = need(weights, prefix + 'D', di);
  const outW = need(weights, prefix + 'out_proj.weight', d * di);
  const outB = config.useBias ? maybe(weights, prefix + 'out_proj.bias', d) : undefined;

  // 1. in_proj -> [x (first di) | z (second di)]
  const xz = linear(rin('in_proj.weight', h, d), L, d, inW, 2 * di, inB);
  // 2. x = silu(causal conv(x)) (int8 SSM path: its input and output rounded)
  const xzc = Float64Array.from(xz);
  roundColumns(xzc, L, 2 * di, 0, di, round(prefix + 'conv1d:input'));
  const x = causalConvSilu(xzc, L, 2 * di, 0, di, K, convW, convB);
  roundColumns(x, L, di, 0, di, round(prefix + 'conv1d:output'));
  // 3. x_proj -> [dt (R) | B (N) | C (N)]
  const xdbl = linear(rin('x_proj.weight', x, di), L, di, xProjW, R + 2 * N);
  const dtInRaw = Float64Array.from(xdbl);
  roundColumns(xdbl, L, R + 2 * N, R, N, round(prefix + 'B'));
  roundColumns(xdbl, L, R + 2 * N, R + N, N, round(prefix + 'C'));
  const dtIn = rin('dt_proj.weight', dtInRaw, R, R + 2 * N, 0); // [L, R]: the dt part of each row
  // 4-5. delta = softplus(dt_proj.weight . dt + dt_proj.bias); A = -exp(A_log)
  const A = Alog.map((v) => -Math.exp(v));
  const y = new Float64Array(L * di);
  const state = new Float64Array(di * N); // starts at zero
  for (let t = 0; t < L; t++) {
    const row = t * (R + 2 * N);
    for (let c = 0; c < di; c++) {
      let dtRaw = dtB ? dtB[c] : 0;
      for (let r = 0; r < R; r++) dtRaw += dtW[c * R + r] * dtIn[t * R + r];
      const delta = softplus(dtRaw);
      const u = x[t * di + c];
      let acc = 0;
      for (let n = 0; n < N; n++) {
        const Bn = xdbl[row + R + n], Cn = xdbl[row + R + N + n];
        const s = Math.exp(delta * A[c * N + n]) * state[c * N + n] + delta * Bn * u;
        state[c * N + n] = s;
        acc += s * Cn;
      }
      // 6. y = (C . state + D x) * silu(z)
      y[t * di + c] = (acc + D[c] * u) * silu(xz[t * 2 * di + di + c]);
    }
  }
  // 7. out_proj
  return linear(rin('out_proj.weight', y, di), L, di, outW, d, outB);
}

/**
 * Mamba-2 mixer (mamba2.py Mamba2.forward with ngroups groups, rmsnorm=True,
 * norm_before_gate=False, D_has_hdim=False, d_mlp=0): h [L, d] -> [L, d].
 *
 * The gated RMSNorm normalises each group of dInner/ngroups channels separately
 * (state-spaces RMSNormGated(group_size = d_ssm // ngroups)). Hugging Face's
 * MambaRMSNormGated normalises over all dInner channels at once; the two agree
 * only when ngroups = 1 (they differ for e.g. Codestral, ngroups 8).
 * The norm's epsilon is config.normEps (state-spaces hard-codes 1e-5, HF uses
 * layer_norm_epsilon; both are 1e-5 in every published checkpoint).
 */
export function mamba2Mixer(
  config: MambaConfig, weights: ReferenceWeights, prefix: string, h: Float64Array, L: number, round: InputRoundingRule = () => 'none',
): Float64Array {
  const d = config.dModel, di = config.dInner, N = config.dState, K = config.dConv;
  const H = config.nheads, P = config.headdim, G = config.ngroups;
  if (H * P !== di) throw new Error(`reference model: nheads ${H} * headdim ${P} != dInner ${di}`);
  if (H % G !== 0) throw new Error(`reference model: nheads ${H} not divisible by ngroups ${G}`);
  const convDim = di + 2 * G * N;
  const projDim = 2 * di + 2 * G * N + H;
  const inW = need(weights, prefix + 'in_proj.weight', projDim * d);
  const inB = config.useBias ? maybe(weights, prefix + 'in_proj.bias', projDim) : undefined;
  const convW = need(weights, prefix + 'conv1d.weight', convDim * K);
  const convB = maybe(weights, prefix + 'conv1d.bias', convDim);
  const dtBias = need(weights, prefix + 'dt_bias', H);
  const Alog = need(weights, prefix + 'A_log', H);
  const D = need(weights, prefix + 'D', H);
  const normW = need(weights, prefix + 'norm.weight', di);
  const outW = need(weights, prefix + 'out_proj.weight', d * di);
  const outB = config.useBias ? maybe(weights, prefix + 'out_proj.bias', d) : undefined;
  const [dtMin, dtMax] = config.timeStepLimit;

  // in_proj -> [z (di) | xBC (di + 2GN) | dt (H)]
  const zxbcdt = linear(roundRows(h, L, d, round(prefix + 'in_proj.weight')), L, d, inW, projDim, inB);
  // silu(conv(xBC)) -> [x (di) | B (G*N) | C (G*N)]
  // (int8 SSM path: the conv's input and output rounded)
  const zxc = Float64Array.from(zxbcdt);
  roundColumns(zxc, L, projDim, di, convDim, round(prefix + 'conv1d:input'));
  const xBC = causalConvSilu(zxc, L, projDim, di, convDim, K, convW, convB);
  roundColumns(xBC, L, convDim, 0, convDim, round(prefix + 'conv1d:output'));
  const A = Alog.map((v) => -Math.exp(v));
  const headsPerGroup = H / G;
  const state = new Float64Array(H * P * N); // [H, P, N], starts at zero
  const y = new Float64Array(L * di);
  for (let t = 0; t < L; t++) {
    const xb = t * convDim, pb = t * projDim;
    for (let hh = 0; hh < H; hh++) {
      const g = Math.floor(hh / headsPerGroup);
      const Boff = xb + di + g * N, Coff = xb + di + G * N + g * N;
      // dt = clamp(softplus(dt + dt_bias), time_step_limit)
      const dt = Math.min(Math.max(softplus(zxbcdt[pb + di + convDim + hh] + dtBias[hh]), dtMin), dtMax);
      const dA = Math.exp(dt * A[hh]);
      for (let p = 0; p < P; p++) {
        const c = hh * P + p;
        const xv = xBC[xb + c];
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const s = dA * state[c * N + n] + dt * xv * xBC[Boff + n];
          state[c * N + n] = s;
          acc += s * xBC[Coff + n];
        }
        y[t * di + c] = acc + D[hh] * xv;
      }
    }
    // gated RMSNorm per group: rmsnorm(y * silu(z)) * w
    const gs = di / G;
    for (let g = 0; g < G; g++) {
      let ss = 0;
      for (let j = g * gs; j < (g + 1) * gs; j++) {
        const v = y[t * di + j] * silu(zxbcdt[pb + j]);
        y[t * di + j] = v;
        ss += v * v;
      }
      const s = 1 / Math.sqrt(ss / gs + config.normEps);
      for (let j = g * gs; j < (g + 1) * gs; j++) y[t * di + j] *= s * normW[j];
    }
  }
  return linear(roundRows(y, L, di, round(prefix + 'out_proj.weight')), L, di, outW, d, outB);
}

/**
 * The engine's online rotation of the residual stream (quantization_config
 * residual_rotation "online"): `forward` on the embedding output, `back` on
 * the final residual before norm_f, both in place on [rows, n].
 */
export interface ResidualRotation {
  forward(x: Float64Array, rows: number, n: number): void;
  back(x: Float64Array, rows: number, n: number): void;
}

/**
 * Logits [L, vocabSize] (row-major) of the whole model for one sequence, in float64.
 * embedding -> per layer: residual = h + residual (the embedding at layer 0),
 * h = mixer(RMSNorm(residual)) -> norm_f(h + residual) -> lm_head (tied to the
 * embedding when `lm_head.weight` is absent).
 */
export function referenceForward(
  config: MambaConfig, weights: ReferenceWeights, tokens: number[], round: InputRoundingRule = () => 'none',
  rotation?: ResidualRotation,
): Float64Array {
  const d = config.dModel, V = config.vocabSize, L = tokens.length;
  const emb = need(weights, 'backbone.embeddings.weight', V * d);
  const lmHead = maybe(weights, 'lm_head.weight', V * d) ?? emb;
  let hidden: Float64Array = new Float64Array(L * d);
  for (let t = 0; t < L; t++) {
    const id = tokens[t];
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`reference model: token ${id} at ${t} outside [0, ${V})`);
    hidden.set(emb.subarray(id * d, (id + 1) * d), t * d);
  }
  rotation?.forward(hidden, L, d);
  let residual = new Float64Array(L * d); // zero: the first layer's residual is the embedding
  for (let i = 0; i < config.nLayer; i++) {
    const p = `backbone.layers.${i}.`;
    for (let j = 0; j < L * d; j++) residual[j] += hidden[j];
    const normed = rmsNorm(residual, L, d, need(weights, p + 'norm.weight', d), config.normEps);
    hidden = config.arch === 'mamba'
      ? mamba1Mixer(config, weights, p + 'mixer.', normed, L, round)
      : mamba2Mixer(config, weights, p + 'mixer.', normed, L, round);
  }
  for (let j = 0; j < L * d; j++) residual[j] += hidden[j];
  rotation?.back(residual, L, d);
  const final = rmsNorm(residual, L, d, need(weights, 'backbone.norm_f.weight', d), config.normEps);
  const headName = weights.has('lm_head.weight') ? 'lm_head.weight' : 'backbone.embeddings.weight';
  return linear(roundRows(final, L, d, round(headName)), L, d, lmHead, V);
}
