// Float64 reference forward of whole Jamba / GraniteMoeHybrid language models
// over the STORED Hugging Face tensor names and the raw config.json object
// (REFERENCE.md section 7 (a), (b); transformers jamba/modeling_jamba.py,
// granitemoehybrid/modeling_granitemoehybrid.py). Stateful: `prefill` and
// `step` continue the same sequence (conv and SSM states of the Mamba layers,
// keys and values of the attention layers), so tests can check prefill then
// decode against one prefill. Pure TypeScript, no native addon.
//
//   Jamba:   h = embed; per layer h += mixer(rms(h, input_layernorm));
//            h += ffn(rms(h, pre_ff_layernorm)); logits = rms(h, final_layernorm) lm_head^T
//   Granite: h = embed * embedding_multiplier; per layer
//            h += mixer(rms(h, input_layernorm)) * residual_multiplier;
//            x = rms(h, post_attention_layernorm); h += (moe(x) + shared_mlp(x)) * residual_multiplier
//            (num_local_experts 0: shared_mlp(x) only);
//            logits = rms(h, model.norm) lm_head^T / logits_scaling
import { linear, rmsNorm } from './reference_model';
import {
  attentionBlock, mamba1Block, mamba2Block, moeBlock, newKvCache, newMamba1State, newMamba2State, swiGlu, tensorSource,
  type AttentionDims, type KvCache, type Mamba1Dims, type Mamba1State, type Mamba2Dims, type Mamba2State,
  type RouterKind, type Routing, type SwiGluWeights, type TensorSource,
} from './reference_hybrid_blocks';

export type HybridWeights = Map<string, Float64Array>;

export interface HybridLayerLayout {
  mixer: 'mamba1' | 'mamba2' | 'attention';
  ffn: 'mlp' | 'moe';
}

/** What the reference reads from config.json (HF defaults where a key is absent). */
export interface HybridLayout {
  family: 'jamba' | 'granitemoehybrid';
  d: number;
  V: number;
  nLayer: number;
  eps: number;
  tied: boolean;
  layers: HybridLayerLayout[];
  attention: AttentionDims;
  mamba1?: Mamba1Dims;
  mamba2?: Mamba2Dims;
  /** Jamba: dense MLP width (intermediate_size); Granite: shared MLP width (shared_intermediate_size). */
  mlpDim: number;
  moe: { E: number; k: number; I: number; router: RouterKind };
  embeddingMultiplier: number;
  residualMultiplier: number;
  logitsScaling: number;
}

type Raw = Record<string, unknown>;

function num(c: Raw, key: string, dflt?: number): number {
  const v = c[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`reference: config ${key} must be a finite number (got ${JSON.stringify(c[key])})`);
  return v;
}
function bool(c: Raw, key: string, dflt: boolean): boolean {
  const v = c[key] ?? dflt;
  if (typeof v !== 'boolean') throw new Error(`reference: config ${key} must be a boolean`);
  return v;
}

/** Reads a jamba / granitemoehybrid config.json object (configuration_jamba.py / configuration_granitemoehybrid.py defaults). */
export function hybridLayout(c: Raw): HybridLayout {
  const family = c.model_type;
  if (family !== 'jamba' && family !== 'granitemoehybrid') throw new Error(`reference: model_type ${JSON.stringify(family)} is not jamba or granitemoehybrid`);
  if ((c.hidden_act ?? 'silu') !== 'silu') throw new Error('reference: only hidden_act silu');
  if (c.attention_bias === true) throw new Error('reference: attention_bias is not supported');
  const d = num(c, 'hidden_size', 4096);
  const nLayer = num(c, 'num_hidden_layers', 32);
  const Hq = num(c, 'num_attention_heads', 32);
  const Hkv = num(c, 'num_key_value_heads', family === 'jamba' ? 8 : Hq);
  const eps = num(c, 'rms_norm_eps', 1e-6);
  const expand = num(c, 'mamba_expand', 2);
  const di = expand * d;
  const K = num(c, 'mamba_d_conv', 4);
  const tied = bool(c, 'tie_word_embeddings', false);
  const base = { family, d, V: num(c, 'vocab_size', family === 'jamba' ? 65536 : 32000), nLayer, eps, tied } as const;

  if (family === 'jamba') {
    const E = num(c, 'num_experts', 16);
    const ap = num(c, 'attn_layer_period', 8), ao = num(c, 'attn_layer_offset', 4);
    const ep = num(c, 'expert_layer_period', 2), eo = num(c, 'expert_layer_offset', 1);
    if (ao >= ap || eo >= ep) throw new Error('reference: a Jamba layer offset is not smaller than its period');
    const hd = d / Hq;
    const rank = c.mamba_dt_rank ?? 'auto';
    const R = rank === 'auto' ? Math.ceil(d / 16) : num(c, 'mamba_dt_rank');
    const I = num(c, 'intermediate_size', 14336);
    return {
      ...base,
      // layers_block_type / layers_num_experts: attention iff i % period == offset; MoE iff num_experts > 1 too
      layers: Array.from({ length: nLayer }, (_, i) => ({
        mixer: i % ap === ao ? 'attention' : 'mamba1',
        ffn: E > 1 && i % ep === eo ? 'moe' : 'mlp',
      })),
      attention: { d, Hq, Hkv, hd, scale: 1 / Math.sqrt(hd), ropeTheta: 0 },
      mamba1: { d, di, N: num(c, 'mamba_d_state', 16), R, K, innerNormEps: eps },
      mlpDim: I,
      moe: { E, k: num(c, 'num_experts_per_tok', 2), I, router: 'softmax_topk' },
      embeddingMultiplier: 1,
      residualMultiplier: 1,
      logitsScaling: 1,
    };
  }

  const types = (c.layer_types ?? c.layers_block_type ?? null) as unknown;
  let layerTypes: string[];
  if (types === null) layerTypes = Array(nLayer).fill('mamba');
  else if (Array.isArray(types) && types.length === nLayer && types.every((t) => t === 'mamba' || t === 'attention')) layerTypes = types;
  else throw new Error('reference: layer_types must list "mamba" / "attention" once per layer');
  const E = num(c, 'num_local_experts', 8);
  const hd = typeof c.head_dim === 'number' ? c.head_dim : d / Hq;
  const H = num(c, 'mamba_n_heads', 128), G = num(c, 'mamba_n_groups', 1);
  const P = c.mamba_d_head === undefined || c.mamba_d_head === 'auto' ? di / H : num(c, 'mamba_d_head');
  const rope = c.position_embedding_type === 'rope';
  if (rope && c.rope_scaling) throw new Error('reference: rope_scaling is not supported');
  const ropeParams = (c.rope_parameters ?? {}) as Raw;
  const ropeTheta = typeof ropeParams.rope_theta === 'number' ? ropeParams.rope_theta : num(c, 'rope_theta', 10000);
  const lim = c.time_step_limit;
  let dtLimit: [number, number] = [0, Infinity];
  if (lim !== undefined && lim !== null) {
    if (!Array.isArray(lim) || lim.length !== 2 || lim.some((v) => typeof v !== 'number')) throw new Error('reference: time_step_limit must be [lo, hi]');
    dtLimit = [lim[0], lim[1]];
  }
  return {
    ...base,
    layers: layerTypes.map((t) => ({ mixer: t === 'attention' ? 'attention' : 'mamba2', ffn: E > 0 ? 'moe' : 'mlp' })),
    attention: { d, Hq, Hkv, hd, scale: num(c, 'attention_multiplier', 1), ropeTheta: rope ? ropeTheta : 0 },
    // GraniteMoeHybridRMSNormGated: the gated norm over the whole inner size (no groups), eps rms_norm_eps
    mamba2: { d, di, N: num(c, 'mamba_d_state', 256), H, P, G, K, normEps: eps, normGroupSize: di, dtLimit },
    mlpDim: num(c, 'shared_intermediate_size', 1024),
    moe: { E, k: num(c, 'num_experts_per_tok', 2), I: num(c, 'intermediate_size', 11008), router: 'topk_softmax' },
    embeddingMultiplier: num(c, 'embedding_multiplier', 1),
    residualMultiplier: num(c, 'residual_multiplier', 1),
    logitsScaling: num(c, 'logits_scaling', 1),
  };
}

type LayerState = { kind: 'mamba1'; s: Mamba1State } | { kind: 'mamba2'; s: Mamba2State } | { kind: 'attention'; s: KvCache };

function cloneState(st: LayerState): LayerState {
  switch (st.kind) {
    case 'mamba1':
    case 'mamba2':
      return { kind: st.kind, s: { conv: { ...st.s.conv, window: st.s.conv.window.slice() }, ssm: st.s.ssm.slice() } } as LayerState;
    case 'attention':
      return { kind: 'attention', s: { keys: st.s.keys.map((k) => k.slice()), values: st.s.values.map((v) => v.slice()) } };
  }
}

/** One MoE layer's routing of one token, as the reference computed it. */
export interface RoutingRecord extends Routing {
  layer: number;
  position: number;
}

/**
 * A sequence of a hybrid model, in float64: `prefill(tokens)` and `step(token)`
 * feed tokens (continuing whatever came before) and return their logits.
 */
export class HybridReference {
  readonly layout: HybridLayout;
  /** Every MoE routing decision so far, in order (layer-major within each call). */
  readonly routing: RoutingRecord[] = [];
  private readonly src: TensorSource;
  private states: LayerState[];
  private pos = 0;

  constructor(readonly config: Raw, readonly weights: HybridWeights) {
    this.layout = hybridLayout(config);
    this.src = tensorSource(weights, 'hybrid reference');
    this.states = this.layout.layers.map((l): LayerState =>
      l.mixer === 'attention' ? { kind: 'attention', s: newKvCache() }
        : l.mixer === 'mamba1' ? { kind: 'mamba1', s: newMamba1State(this.layout.mamba1!) }
          : { kind: 'mamba2', s: newMamba2State(this.layout.mamba2!) });
  }

  /** Tokens fed so far. */
  get position(): number {
    return this.pos;
  }

  /** An independent copy of this sequence (states, position and routing log). */
  clone(): HybridReference {
    const c = new HybridReference(this.config, this.weights);
    c.states = this.states.map(cloneState);
    c.pos = this.pos;
    c.routing.push(...this.routing.map((r) => ({ ...r, experts: [...r.experts], weights: [...r.weights] })));
    return c;
  }

  /** Smallest top-k gap over every routing so far (Infinity when none): a routing flip needs an error this large. */
  minRouterGap(): number {
    return this.routing.reduce((m, r) => Math.min(m, r.gap), Infinity);
  }

  /** Logits [T, V] of `tokens`, continuing the sequence. */
  prefill(tokens: number[]): Float64Array {
    const L = tokens.length;
    if (L === 0) return new Float64Array(0);
    const lay = this.layout, { d, V, eps } = lay, src = this.src;
    const emb = src.need('model.embed_tokens.weight', V * d);
    const head = lay.tied ? emb : src.need('lm_head.weight', V * d);
    const granite = lay.family === 'granitemoehybrid';

    const h = new Float64Array(L * d);
    tokens.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`hybrid reference: token ${id} at ${t} outside [0, ${V})`);
      for (let c = 0; c < d; c++) h[t * d + c] = emb[id * d + c] * lay.embeddingMultiplier;
    });
    const addScaled = (y: Float64Array) => {
      for (let j = 0; j < L * d; j++) h[j] += y[j] * lay.residualMultiplier;
    };

    lay.layers.forEach((kind, i) => {
      const p = `model.layers.${i}.`;
      const st = this.states[i];
      const x = rmsNorm(h, L, d, src.need(p + 'input_layernorm.weight', d), eps);
      if (st.kind === 'attention') addScaled(attentionBlock(src, p + 'self_attn.', lay.attention, st.s, x, L));
      else if (st.kind === 'mamba1') addScaled(mamba1Block(src, p + 'mamba.', lay.mamba1!, st.s, x, L));
      else addScaled(mamba2Block(src, p + 'mamba.', lay.mamba2!, st.s, x, L));

      const f = rmsNorm(h, L, d, src.need(p + (granite ? 'post_attention_layernorm.weight' : 'pre_ff_layernorm.weight'), d), eps);
      let y: Float64Array;
      if (kind.ffn === 'moe') {
        const { out, routing } = moeBlock(this.router(i), this.experts(i), lay.moe.router, lay.moe.k, f, L, d, lay.moe.I);
        routing.forEach((r, t) => this.routing.push({ ...r, layer: i, position: this.pos + t }));
        y = out;
        if (granite) {
          const sh = swiGlu(this.sharedMlp(i), f, L, d, lay.mlpDim);
          for (let j = 0; j < L * d; j++) y[j] += sh[j];
        }
      } else {
        y = swiGlu(granite ? this.sharedMlp(i) : this.denseMlp(i), f, L, d, lay.mlpDim);
      }
      addScaled(y);
    });

    const final = rmsNorm(h, L, d, src.need(granite ? 'model.norm.weight' : 'model.final_layernorm.weight', d), eps);
    const logits = linear(final, L, d, head, V);
    if (lay.logitsScaling !== 1) for (let j = 0; j < logits.length; j++) logits[j] /= lay.logitsScaling;
    this.pos += L;
    return logits;
  }

  /** Logits [V] of one more token. */
  step(token: number): Float64Array {
    return this.prefill([token]);
  }

  private router(i: number): Float64Array {
    const { d, moe } = this.layout, p = `model.layers.${i}.`;
    return this.layout.family === 'jamba'
      ? this.src.need(p + 'feed_forward.router.weight', moe.E * d)
      : this.src.need(p + 'block_sparse_moe.router.layer.weight', moe.E * d);
  }

  private experts(i: number): SwiGluWeights[] {
    const { d, moe: { E, I } } = this.layout, p = `model.layers.${i}.`;
    if (this.layout.family === 'jamba') {
      return Array.from({ length: E }, (_, e) => {
        const x = `${p}feed_forward.experts.${e}.`;
        return {
          gate: this.src.need(x + 'gate_proj.weight', I * d),
          up: this.src.need(x + 'up_proj.weight', I * d),
          down: this.src.need(x + 'down_proj.weight', d * I),
        };
      });
    }
    // input_linear [E, 2I, d]: rows [0, I) gate, [I, 2I) up (chunk(2) of the output); output_linear [E, d, I]
    const inp = this.src.need(p + 'block_sparse_moe.input_linear.weight', E * 2 * I * d);
    const outp = this.src.need(p + 'block_sparse_moe.output_linear.weight', E * d * I);
    return Array.from({ length: E }, (_, e) => ({
      gate: inp.subarray(e * 2 * I * d, e * 2 * I * d + I * d),
      up: inp.subarray(e * 2 * I * d + I * d, (e + 1) * 2 * I * d),
      down: outp.subarray(e * d * I, (e + 1) * d * I),
    }));
  }

  private denseMlp(i: number): SwiGluWeights {
    const { d, mlpDim: I } = this.layout, f = `model.layers.${i}.feed_forward.`;
    return {
      gate: this.src.need(f + 'gate_proj.weight', I * d),
      up: this.src.need(f + 'up_proj.weight', I * d),
      down: this.src.need(f + 'down_proj.weight', d * I),
    };
  }

  private sharedMlp(i: number): SwiGluWeights {
    const { d, mlpDim: Is } = this.layout, s = `model.layers.${i}.shared_mlp.`;
    const inp = this.src.need(s + 'input_linear.weight', 2 * Is * d);
    return { gate: inp.subarray(0, Is * d), up: inp.subarray(Is * d), down: this.src.need(s + 'output_linear.weight', d * Is) };
  }
}

/** Logits [T, V] of a fresh sequence: new HybridReference(config, weights).prefill(tokens). */
export function hybridReferenceForward(config: Raw, weights: HybridWeights, tokens: number[]): Float64Array {
  return new HybridReference(config, weights).prefill(tokens);
}
