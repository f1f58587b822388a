// Writes random-weight Hugging Face checkpoints of the hybrid families
// `jamba` (transformers jamba/configuration_jamba.py, modeling_jamba.py) and
// `granitemoehybrid` (IBM Granite 4.0-H; granitemoehybrid/
// configuration_granitemoehybrid.py, modeling_granitemoehybrid.py): config.json
// with the real HF keys and the tensors under their real HF names (REFERENCE.md
// section 7 (a), (b)). Returns the config as written and every weight AS STORED
// (rounded to the dtype) in float64, keyed by the stored name, plus the layer
// schedule the writer meant (so that a loader's reading of the config can be
// checked against it).
//
// Like the Mamba writer (random_checkpoint.ts), it is independent of the
// loaders and uses the same seedable RNG and initialisation so that a forward
// pass stays well scaled: linear weights N(0, 1/fan_in), conv weights
// U(-0.5, 0.5), norm weights 1 + N(0, 0.1), A_log = log U(1, 16),
// D = 1 + N(0, 0.1), dt bias = softplus^-1(dt) with dt log-uniform in
// [0.001, 0.1], conv bias U(-0.5, 0.5). Hybrid-specific:
//   - q_proj / k_proj N(0, g^2/d) with g = (scale * sqrt(head_dim))^(-1/2),
//     so that the scores q.k * scale have unit std whatever the attention
//     scale (Jamba 1/sqrt(head_dim): g = 1; Granite attention_multiplier);
//   - router weights N(0, (ROUTER_STD/sqrt(d))^2): router logits of a normed
//     input have std ~ROUTER_STD, so routing is neither uniform nor one-hot,
//     and the gap between the k-th and (k+1)-th logits is rarely small;
//   - Jamba embedding N(0, 1); Granite embedding N(0, 1/embedding_multiplier^2)
//     (h = embed * embedding_multiplier starts at unit scale) and an untied
//     Granite lm_head N(0, logits_scaling^2 / d) (logits / logits_scaling of
//     unit scale).
import { randomDraws, type WeightDtype } from './random_checkpoint';
import { writeHfCheckpoint, type TensorSpec } from './checkpoint_files';

export type HybridFamily = 'jamba' | 'granitemoehybrid';

/** What a layer is, in the engine contract's words (docs/hybrid-engine.md). */
export interface HybridLayerKind {
  mixer: 'mamba1' | 'mamba2' | 'attention';
  ffn: 'mlp' | 'moe';
}

interface HybridCommonOptions {
  hiddenSize: number;
  nLayer: number;
  vocabSize: number;
  nHeads: number;
  nKvHeads: number;
  /** Experts of a MoE layer. Jamba: 1 = every layer dense. Granite: 0 = the shared MLP only. */
  experts: number;
  topK: number;
  /** intermediate_size: Jamba's dense MLP and each expert; Granite's each expert. */
  expertDim: number;
  /** Default 16 (Jamba), 256 (Granite), as in the HF configs. */
  mambaDState?: number;
  /** Default 4. */
  mambaDConv?: number;
  /** Default 2. */
  mambaExpand?: number;
  /** Default true. */
  mambaConvBias?: boolean;
  /** in_proj / out_proj biases; default false. */
  mambaProjBias?: boolean;
  /** Default 1e-6 (both HF configs). */
  rmsNormEps?: number;
  tied: boolean;
  dtype: WeightDtype;
  seed: number;
  /** > 1 writes model-0000k-of-0000n.safetensors and the index. */
  shards?: number;
}

export interface JambaOptions extends HybridCommonOptions {
  family: 'jamba';
  /** Layer i is attention iff i % attnLayerPeriod == attnLayerOffset (HF defaults 8, 4). */
  attnLayerPeriod: number;
  attnLayerOffset: number;
  /** Layer i is MoE iff experts > 1 and i % expertLayerPeriod == expertLayerOffset (HF defaults 2, 1). */
  expertLayerPeriod: number;
  expertLayerOffset: number;
  /** Default ceil(hiddenSize / 16) ("auto"). */
  mambaDtRank?: number;
}

export interface GraniteOptions extends HybridCommonOptions {
  family: 'granitemoehybrid';
  /** One per layer. */
  layerTypes: Array<'mamba' | 'attention'>;
  /** shared_intermediate_size (>= 1: HF always builds the shared MLP). */
  sharedDim: number;
  mambaNHeads: number;
  /** Default 1. */
  mambaNGroups?: number;
  /** Default 256. */
  mambaChunkSize?: number;
  /** All default 1 (HF defaults). */
  embeddingMultiplier?: number;
  residualMultiplier?: number;
  attentionMultiplier?: number;
  logitsScaling?: number;
  /** Default 'nope' (no RoPE; HF: anything but "rope"). */
  positionEmbeddingType?: 'rope' | 'nope';
  /** Default 10000. */
  ropeTheta?: number;
  /** Written as time_step_limit only when given. */
  timeStepLimit?: [number, number];
}

export type RandomHybridOptions = JambaOptions | GraniteOptions;

export interface RandomHybridCheckpoint {
  /** config.json's object, as written. */
  config: Record<string, unknown>;
  /** Stored HF name -> values as stored (rounded to the dtype), row-major. */
  weights: Map<string, Float64Array>;
  /** Stored HF name -> shape. */
  shapes: Map<string, number[]>;
  /** Absolute paths of the safetensors files, in order. */
  files: string[];
  /** The schedule the writer meant, one entry per layer. */
  layers: HybridLayerKind[];
}

/** Router logits of a unit-scale input have about this standard deviation. */
export const ROUTER_STD = 2;

/** The layer schedule of Jamba's config keys (configuration_jamba.py layers_block_type / layers_num_experts). */
export function jambaSchedule(o: Pick<JambaOptions, 'nLayer' | 'experts' | 'attnLayerPeriod' | 'attnLayerOffset' | 'expertLayerPeriod' | 'expertLayerOffset'>): HybridLayerKind[] {
  return Array.from({ length: o.nLayer }, (_, i) => ({
    mixer: i % o.attnLayerPeriod === o.attnLayerOffset ? 'attention' : 'mamba1',
    ffn: o.experts > 1 && i % o.expertLayerPeriod === o.expertLayerOffset ? 'moe' : 'mlp',
  }));
}

/** The layer schedule of Granite's config keys (layer_types; num_local_experts 0 = shared MLP only). */
export function graniteSchedule(o: Pick<GraniteOptions, 'layerTypes' | 'experts'>): HybridLayerKind[] {
  return o.layerTypes.map((t) => ({ mixer: t === 'attention' ? 'attention' : 'mamba2', ffn: o.experts > 0 ? 'moe' : 'mlp' }));
}

function check(cond: boolean, msg: string): void {
  if (!cond) throw new Error(`writeRandomHybridCheckpoint: ${msg}`);
}

const TORCH_DTYPE: Record<WeightDtype, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

export function writeRandomHybridCheckpoint(dir: string, opts: RandomHybridOptions): RandomHybridCheckpoint {
  const d = opts.hiddenSize, V = opts.vocabSize, nLayer = opts.nLayer;
  const Hq = opts.nHeads, Hkv = opts.nKvHeads;
  const granite = opts.family === 'granitemoehybrid';
  check(d > 0 && nLayer > 0 && V > 0, 'hiddenSize, nLayer and vocabSize must be positive');
  check(d % Hq === 0, `nHeads ${Hq} must divide hiddenSize ${d}`);
  check(Hq % Hkv === 0, `nKvHeads ${Hkv} must divide nHeads ${Hq}`);
  const hd = d / Hq;
  const K = opts.mambaDConv ?? 4;
  const expand = opts.mambaExpand ?? 2;
  const di = expand * d;
  check(Number.isInteger(di), 'mambaExpand * hiddenSize must be an integer');
  const N = opts.mambaDState ?? (granite ? 256 : 16);
  const convBias = opts.mambaConvBias ?? true;
  const projBias = opts.mambaProjBias ?? false;
  const eps = opts.rmsNormEps ?? 1e-6;
  const E = opts.experts, k = opts.topK, I = opts.expertDim;

  let layers: HybridLayerKind[];
  if (opts.family === 'jamba') {
    check(opts.attnLayerOffset < opts.attnLayerPeriod, 'attnLayerOffset must be smaller than attnLayerPeriod (HF rejects it)');
    check(opts.expertLayerOffset < opts.expertLayerPeriod, 'expertLayerOffset must be smaller than expertLayerPeriod (HF rejects it)');
    check(E >= 1, 'Jamba needs experts >= 1 (1: all dense)');
    layers = jambaSchedule(opts);
  } else {
    check(opts.layerTypes.length === nLayer, `layerTypes has ${opts.layerTypes.length} entries for ${nLayer} layers`);
    check(opts.sharedDim >= 1, 'Granite needs sharedDim >= 1');
    check(E >= 0, 'experts must be >= 0');
    layers = graniteSchedule(opts);
  }
  if (layers.some((l) => l.ffn === 'moe')) check(k >= 1 && k <= E, `topK ${k} must be in [1, experts ${E}]`);
  const R = opts.family === 'jamba' ? opts.mambaDtRank ?? Math.ceil(d / 16) : 0;
  const H = granite ? (opts as GraniteOptions).mambaNHeads : 0;
  const G = granite ? (opts as GraniteOptions).mambaNGroups ?? 1 : 1;
  if (granite) {
    check(di % H === 0, `mambaNHeads ${H} must divide mambaExpand * hiddenSize ${di}`);
    check(H % G === 0, `mambaNGroups ${G} must divide mambaNHeads ${H}`);
  }
  const P = granite ? di / H : 0;
  if (granite && (opts as GraniteOptions).positionEmbeddingType === 'rope') check(hd % 2 === 0, 'RoPE needs an even head dim');

  // Random draws, in the order the tensors are listed (deterministic per seed).
  const { normal, unif, linear, normW, logA, dtBias } = randomDraws(opts.seed);

  const specs: TensorSpec[] = [];
  const add = (name: string, shape: number[], values: Float64Array) => specs.push({ name, shape, values });

  // q.k * scale has unit std when q and k elements have std (scale sqrt(hd))^(-1/2) each
  // (1 for Jamba's 1/sqrt(hd); hd^(1/4) for a Granite attention_multiplier of 1/hd).
  const attnScale = granite ? (opts as GraniteOptions).attentionMultiplier ?? 1 : 1 / Math.sqrt(hd);
  check(attnScale > 0, 'attentionMultiplier must be positive');
  const qkGain = 1 / Math.sqrt(attnScale * Math.sqrt(hd));
  const embStd = granite ? 1 / ((opts as GraniteOptions).embeddingMultiplier ?? 1) : 1;
  add('model.embed_tokens.weight', [V, d], normal(V * d, embStd));
  for (let i = 0; i < nLayer; i++) {
    const p = `model.layers.${i}.`;
    const kind = layers[i];
    add(`${p}input_layernorm.weight`, [d], normW(d));
    if (kind.mixer === 'attention') {
      // JambaAttention / GraniteMoeHybridAttention: no biases (attention_bias false).
      const a = `${p}self_attn.`;
      add(`${a}q_proj.weight`, [Hq * hd, d], normal(Hq * hd * d, qkGain / Math.sqrt(d)));
      add(`${a}k_proj.weight`, [Hkv * hd, d], normal(Hkv * hd * d, qkGain / Math.sqrt(d)));
      add(`${a}v_proj.weight`, [Hkv * hd, d], linear(Hkv * hd, d));
      add(`${a}o_proj.weight`, [d, Hq * hd], linear(d, Hq * hd));
    } else if (kind.mixer === 'mamba1') {
      // JambaMambaMixer: Mamba-1 plus RMSNorms of dt, B, C after x_proj.
      const m = `${p}mamba.`;
      add(`${m}in_proj.weight`, [2 * di, d], linear(2 * di, d));
      if (projBias) add(`${m}in_proj.bias`, [2 * di], normal(2 * di, 0.1));
      add(`${m}conv1d.weight`, [di, 1, K], unif(di * K, -0.5, 0.5));
      if (convBias) add(`${m}conv1d.bias`, [di], unif(di, -0.5, 0.5));
      add(`${m}x_proj.weight`, [R + 2 * N, di], linear(R + 2 * N, di));
      add(`${m}dt_layernorm.weight`, [R], normW(R));
      add(`${m}b_layernorm.weight`, [N], normW(N));
      add(`${m}c_layernorm.weight`, [N], normW(N));
      add(`${m}dt_proj.weight`, [di, R], linear(di, R));
      add(`${m}dt_proj.bias`, [di], dtBias(di));
      add(`${m}A_log`, [di, N], logA(di * N));
      add(`${m}D`, [di], normal(di, 0.1, 1));
      add(`${m}out_proj.weight`, [d, di], linear(d, di));
      if (projBias) add(`${m}out_proj.bias`, [d], normal(d, 0.1));
    } else {
      // GraniteMoeHybridMambaLayer: Mamba-2, in_proj rows [z (di) | xBC (di + 2GN) | dt (H)].
      const m = `${p}mamba.`;
      const convDim = di + 2 * G * N, inRows = di + convDim + H;
      add(`${m}in_proj.weight`, [inRows, d], linear(inRows, d));
      if (projBias) add(`${m}in_proj.bias`, [inRows], normal(inRows, 0.1));
      add(`${m}conv1d.weight`, [convDim, 1, K], unif(convDim * K, -0.5, 0.5));
      if (convBias) add(`${m}conv1d.bias`, [convDim], unif(convDim, -0.5, 0.5));
      add(`${m}dt_bias`, [H], dtBias(H));
      add(`${m}A_log`, [H], logA(H));
      add(`${m}D`, [H], normal(H, 0.1, 1));
      add(`${m}norm.weight`, [di], normW(di));
      add(`${m}out_proj.weight`, [d, di], linear(d, di));
      if (projBias) add(`${m}out_proj.bias`, [d], normal(d, 0.1));
    }
    if (opts.family === 'jamba') {
      add(`${p}pre_ff_layernorm.weight`, [d], normW(d));
      const f = `${p}feed_forward.`;
      if (kind.ffn === 'moe') {
        add(`${f}router.weight`, [E, d], normal(E * d, ROUTER_STD / Math.sqrt(d)));
        for (let e = 0; e < E; e++) {
          add(`${f}experts.${e}.gate_proj.weight`, [I, d], linear(I, d));
          add(`${f}experts.${e}.up_proj.weight`, [I, d], linear(I, d));
          add(`${f}experts.${e}.down_proj.weight`, [d, I], linear(d, I));
        }
      } else {
        add(`${f}gate_proj.weight`, [I, d], linear(I, d));
        add(`${f}up_proj.weight`, [I, d], linear(I, d));
        add(`${f}down_proj.weight`, [d, I], linear(d, I));
      }
    } else {
      add(`${p}post_attention_layernorm.weight`, [d], normW(d));
      if (kind.ffn === 'moe') {
        // GraniteMoeHybridMoE: packed experts, input_linear [E, 2I, d] (gate rows then up rows), output_linear [E, d, I].
        const b = `${p}block_sparse_moe.`;
        add(`${b}router.layer.weight`, [E, d], normal(E * d, ROUTER_STD / Math.sqrt(d)));
        add(`${b}input_linear.weight`, [E, 2 * I, d], linear(E * 2 * I, d));
        add(`${b}output_linear.weight`, [E, d, I], linear(E * d, I));
      }
      const Is = (opts as GraniteOptions).sharedDim;
      add(`${p}shared_mlp.input_linear.weight`, [2 * Is, d], linear(2 * Is, d));
      add(`${p}shared_mlp.output_linear.weight`, [d, Is], linear(d, Is));
    }
  }
  add(granite ? 'model.norm.weight' : 'model.final_layernorm.weight', [d], normW(d));
  if (!opts.tied) {
    const headStd = granite ? ((opts as GraniteOptions).logitsScaling ?? 1) / Math.sqrt(d) : 1 / Math.sqrt(d);
    add('lm_head.weight', [V, d], normal(V * d, headStd));
  }

  const common = {
    vocab_size: V,
    hidden_size: d,
    intermediate_size: I,
    num_hidden_layers: nLayer,
    num_attention_heads: Hq,
    num_key_value_heads: Hkv,
    hidden_act: 'silu',
    initializer_range: 0.02,
    rms_norm_eps: eps,
    use_cache: true,
    tie_word_embeddings: opts.tied,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: 2,
    attention_dropout: 0.0,
    num_experts_per_tok: k,
    output_router_logits: false,
    router_aux_loss_coef: 0.001,
    mamba_d_state: N,
    mamba_d_conv: K,
    mamba_expand: expand,
    mamba_conv_bias: convBias,
    mamba_proj_bias: projBias,
    torch_dtype: TORCH_DTYPE[opts.dtype],
  };
  let config: Record<string, unknown>;
  if (opts.family === 'jamba') {
    config = {
      architectures: ['JambaForCausalLM'],
      model_type: 'jamba',
      ...common,
      num_experts: E,
      expert_layer_period: opts.expertLayerPeriod,
      expert_layer_offset: opts.expertLayerOffset,
      attn_layer_period: opts.attnLayerPeriod,
      attn_layer_offset: opts.attnLayerOffset,
      mamba_dt_rank: R,
      use_mamba_kernels: false,
      num_logits_to_keep: 1,
      sliding_window: null,
      max_position_embeddings: 262144,
    };
  } else {
    const g = opts;
    config = {
      architectures: ['GraniteMoeHybridForCausalLM'],
      model_type: 'granitemoehybrid',
      ...common,
      num_local_experts: E,
      shared_intermediate_size: g.sharedDim,
      layer_types: [...g.layerTypes],
      mamba_n_heads: H,
      mamba_n_groups: G,
      mamba_d_head: P,
      mamba_chunk_size: g.mambaChunkSize ?? 256,
      embedding_multiplier: g.embeddingMultiplier ?? 1.0,
      residual_multiplier: g.residualMultiplier ?? 1.0,
      attention_multiplier: g.attentionMultiplier ?? 1.0,
      logits_scaling: g.logitsScaling ?? 1.0,
      position_embedding_type: g.positionEmbeddingType ?? 'nope',
      rope_theta: g.ropeTheta ?? 10000.0,
      rope_scaling: null,
      attention_bias: false,
      normalization_function: 'rmsnorm',
      max_position_embeddings: 131072,
    };
    if (g.timeStepLimit) config.time_step_limit = [...g.timeStepLimit];
  }

  const written = writeHfCheckpoint(dir, config, specs, opts.dtype, opts.shards ?? 1);
  return { config, ...written, layers };
}

/** Overrides on top of a preset (any option of the family). */
export interface PresetOptions {
  /** Integer >= 1: multiplies the widths (hidden, head dim, Mamba inner, expert and shared widths, vocab); layers stay. */
  scale?: number;
  seed?: number;
  dtype?: WeightDtype;
}

function presetScale(scale: number | undefined): number {
  const s = scale ?? 1;
  if (!Number.isInteger(s) || s < 1) throw new Error(`hybrid preset: scale must be an integer >= 1 (got ${s})`);
  return s;
}

/**
 * A Jamba-tiny-dev-like shape scaled down (at scale s): hidden 64s, 6 layers,
 * vocab 512s, 4 heads / 2 KV heads (head dim 16s), attention at layers 1 and
 * 4 (period 3, offset 1), MoE at layers 1, 3, 5 (period 2, offset 1; so one
 * attention layer is MoE and one dense), 4 experts, top-2, expert and dense
 * width 128s, Mamba-1 d_state 16, d_conv 4, expand 2, dt_rank 4s, untied,
 * rms_norm_eps 1e-6, f32, seed 1.
 */
export function jambaTinyPreset(o: PresetOptions & Partial<Omit<JambaOptions, 'family'>> = {}): JambaOptions {
  const { scale, ...rest } = o;
  const s = presetScale(scale);
  return {
    family: 'jamba',
    hiddenSize: 64 * s, nLayer: 6, vocabSize: 512 * s,
    nHeads: 4, nKvHeads: 2,
    experts: 4, topK: 2, expertDim: 128 * s,
    attnLayerPeriod: 3, attnLayerOffset: 1, expertLayerPeriod: 2, expertLayerOffset: 1,
    mambaDState: 16, mambaDConv: 4, mambaExpand: 2,
    rmsNormEps: 1e-6, tied: false, dtype: 'f32', seed: 1,
    ...rest,
  };
}

/**
 * A Granite-4.0-H-Tiny-like shape scaled down (at scale s): hidden 96s, 6
 * layers with attention at layers 2 and 5, vocab 512s, 6 heads / 2 KV heads
 * (head dim 16s), 8 experts, top-2, expert width 32s, shared width 64s,
 * Mamba-2 with 12s/min(s,4) heads of head dim 16·min(s,4) (inner 192s),
 * d_state min(32s, 128), 1 group, d_conv 4; multipliers embedding 12,
 * residual 0.22, attention 1/head_dim, logits_scaling 6; no RoPE ('nope', as
 * the released H models); untied; rms_norm_eps 1e-5; f32, seed 2.
 */
export function graniteTinyPreset(o: PresetOptions & Partial<Omit<GraniteOptions, 'family'>> = {}): GraniteOptions {
  const { scale, ...rest } = o;
  const s = presetScale(scale);
  const mambaHeadDim = 16 * Math.min(s, 4);
  return {
    family: 'granitemoehybrid',
    hiddenSize: 96 * s, nLayer: 6, vocabSize: 512 * s,
    nHeads: 6, nKvHeads: 2,
    layerTypes: ['mamba', 'mamba', 'attention', 'mamba', 'mamba', 'attention'],
    experts: 8, topK: 2, expertDim: 32 * s, sharedDim: 64 * s,
    mambaNHeads: (192 * s) / mambaHeadDim, mambaNGroups: 1, mambaDState: Math.min(32 * s, 128), mambaDConv: 4, mambaExpand: 2,
    embeddingMultiplier: 12, residualMultiplier: 0.22, attentionMultiplier: 1 / (16 * s), logitsScaling: 6,
    positionEmbeddingType: 'nope', ropeTheta: 10000,
    rmsNormEps: 1e-5, tied: false, dtype: 'f32', seed: 2,
    ...rest,
  };
}
