// Writes small Jamba and Granite 4.0-H checkpoints as transformers saves them
// (config.json + model.safetensors or shards + index), with the stored names
// and shapes of shared/REFERENCE.md section 7 worked out here from the raw
// config, independently of lib/model/blocks, so that the loader is checked
// against a second reading. Tensor bytes are a pattern unique to each tensor
// and position: the tests compare the bytes at a resolved offset with the
// bytes written. The configs given here spell out every key the writer reads.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeAtomically, writeSafetensors, type StDtype, type StTensor } from './safetensors_writer';

export type Raw = Record<string, unknown>;

/** A tiny Jamba: layers 0 mamba/mlp, 1 mamba/moe, 2 attention/mlp, 3 mamba/moe. */
export function jambaConfig(over: Raw = {}): Raw {
  return {
    architectures: ['JambaForCausalLM'], model_type: 'jamba', hidden_act: 'silu',
    hidden_size: 16, num_hidden_layers: 4, vocab_size: 40, intermediate_size: 24,
    num_attention_heads: 4, num_key_value_heads: 2, num_experts: 4, num_experts_per_tok: 2,
    attn_layer_period: 4, attn_layer_offset: 2, expert_layer_period: 2, expert_layer_offset: 1,
    mamba_d_state: 4, mamba_d_conv: 3, mamba_expand: 2, mamba_dt_rank: 'auto', mamba_conv_bias: true, mamba_proj_bias: false,
    rms_norm_eps: 1e-6, tie_word_embeddings: false, max_position_embeddings: 1024,
    bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, sliding_window: null, use_mamba_kernels: false, torch_dtype: 'float32',
    ...over,
  };
}

/** A tiny Granite 4.0-H: layers mamba, attention, mamba; 3 experts of width 8 and a shared MLP of 12. */
export function graniteConfig(over: Raw = {}): Raw {
  return {
    architectures: ['GraniteMoeHybridForCausalLM'], model_type: 'granitemoehybrid', hidden_act: 'silu',
    hidden_size: 16, num_hidden_layers: 3, vocab_size: 40, intermediate_size: 8, shared_intermediate_size: 12,
    num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 3, num_experts_per_tok: 2,
    layer_types: ['mamba', 'attention', 'mamba'],
    mamba_n_heads: 4, mamba_n_groups: 1, mamba_d_state: 8, mamba_d_head: 'auto', mamba_d_conv: 4, mamba_expand: 2,
    mamba_chunk_size: 64, mamba_conv_bias: true, mamba_proj_bias: false,
    position_embedding_type: 'nope', rope_theta: 10000, attention_bias: false,
    embedding_multiplier: 12, residual_multiplier: 0.25, attention_multiplier: 0.0625, logits_scaling: 3,
    rms_norm_eps: 1e-5, tie_word_embeddings: true, max_position_embeddings: 131072,
    bos_token_id: 0, eos_token_id: 0, pad_token_id: 0, torch_dtype: 'bfloat16',
    ...over,
  };
}

const n = (raw: Raw, k: string) => raw[k] as number;

/** Stored tensor names and shapes of a Jamba or Granite config, in the order transformers' modules define them. */
export function hybridTensors(raw: Raw): Array<{ name: string; shape: number[] }> {
  const out: Array<{ name: string; shape: number[] }> = [];
  const add = (name: string, shape: number[]) => out.push({ name, shape });
  const d = n(raw, 'hidden_size'), L = n(raw, 'num_hidden_layers'), V = n(raw, 'vocab_size');
  const hd = d / n(raw, 'num_attention_heads');
  const q = n(raw, 'num_attention_heads') * hd, kv = n(raw, 'num_key_value_heads') * hd;
  const di = n(raw, 'mamba_expand') * d, N = n(raw, 'mamba_d_state'), K = n(raw, 'mamba_d_conv');
  add('model.embed_tokens.weight', [V, d]);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    add(`${p}input_layernorm.weight`, [d]);
    const attention = raw.model_type === 'jamba'
      ? i % n(raw, 'attn_layer_period') === n(raw, 'attn_layer_offset')
      : (raw.layer_types as string[])[i] === 'attention';
    if (attention) {
      add(`${p}self_attn.q_proj.weight`, [q, d]);
      add(`${p}self_attn.k_proj.weight`, [kv, d]);
      add(`${p}self_attn.v_proj.weight`, [kv, d]);
      add(`${p}self_attn.o_proj.weight`, [d, q]);
    } else if (raw.model_type === 'jamba') {
      const R = raw.mamba_dt_rank === 'auto' ? Math.ceil(d / 16) : n(raw, 'mamba_dt_rank');
      add(`${p}mamba.in_proj.weight`, [2 * di, d]);
      add(`${p}mamba.conv1d.weight`, [di, 1, K]);
      add(`${p}mamba.conv1d.bias`, [di]);
      add(`${p}mamba.x_proj.weight`, [R + 2 * N, di]);
      add(`${p}mamba.dt_proj.weight`, [di, R]);
      add(`${p}mamba.dt_proj.bias`, [di]);
      add(`${p}mamba.A_log`, [di, N]);
      add(`${p}mamba.D`, [di]);
      add(`${p}mamba.out_proj.weight`, [d, di]);
      add(`${p}mamba.dt_layernorm.weight`, [R]);
      add(`${p}mamba.b_layernorm.weight`, [N]);
      add(`${p}mamba.c_layernorm.weight`, [N]);
    } else {
      const H = n(raw, 'mamba_n_heads'), G = n(raw, 'mamba_n_groups');
      add(`${p}mamba.in_proj.weight`, [2 * di + 2 * G * N + H, d]);
      add(`${p}mamba.conv1d.weight`, [di + 2 * G * N, 1, K]);
      add(`${p}mamba.conv1d.bias`, [di + 2 * G * N]);
      add(`${p}mamba.dt_bias`, [H]);
      add(`${p}mamba.A_log`, [H]);
      add(`${p}mamba.D`, [H]);
      add(`${p}mamba.norm.weight`, [di]);
      add(`${p}mamba.out_proj.weight`, [d, di]);
    }
    if (raw.model_type === 'jamba') {
      const I = n(raw, 'intermediate_size'), E = n(raw, 'num_experts');
      add(`${p}pre_ff_layernorm.weight`, [d]);
      if (E > 1 && i % n(raw, 'expert_layer_period') === n(raw, 'expert_layer_offset')) {
        add(`${p}feed_forward.router.weight`, [E, d]);
        for (let e = 0; e < E; e++) {
          add(`${p}feed_forward.experts.${e}.gate_proj.weight`, [I, d]);
          add(`${p}feed_forward.experts.${e}.up_proj.weight`, [I, d]);
          add(`${p}feed_forward.experts.${e}.down_proj.weight`, [d, I]);
        }
      } else {
        add(`${p}feed_forward.gate_proj.weight`, [I, d]);
        add(`${p}feed_forward.up_proj.weight`, [I, d]);
        add(`${p}feed_forward.down_proj.weight`, [d, I]);
      }
    } else {
      const I = n(raw, 'intermediate_size'), E = n(raw, 'num_local_experts'), Is = n(raw, 'shared_intermediate_size');
      if (E > 0) {
        add(`${p}block_sparse_moe.input_linear.weight`, [E, 2 * I, d]);
        add(`${p}block_sparse_moe.output_linear.weight`, [E, d, I]);
        add(`${p}block_sparse_moe.router.layer.weight`, [E, d]);
      }
      add(`${p}shared_mlp.input_linear.weight`, [2 * Is, d]);
      add(`${p}shared_mlp.output_linear.weight`, [d, Is]);
      add(`${p}post_attention_layernorm.weight`, [d]);
    }
  }
  add(raw.model_type === 'jamba' ? 'model.final_layernorm.weight' : 'model.norm.weight', [d]);
  if (raw.tie_word_embeddings !== true) add('lm_head.weight', [V, d]);
  return out;
}

const ELEM: Record<StDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** Bytes unique to (tensor k, byte i): byte i of a Uint32 pattern seeded by k. */
function pattern(k: number, nbytes: number): Uint8Array {
  const out = new Uint8Array(nbytes);
  for (let i = 0; i < nbytes; i++) out[i] = (Math.imul(k + 1, 2654435761) + Math.imul(i, 40503) + (i >> 8)) & 0xff;
  return out;
}

export interface WrittenHybrid {
  dir: string;
  files: string[];
  /** Stored name -> what was written. */
  tensors: Map<string, { shape: number[]; dtype: StDtype; bytes: Uint8Array; file: string }>;
}

/**
 * Writes config.json and the tensors of `raw` (after `mutate`, which may rename,
 * reshape or drop stored tensors; a reshaped tensor gets fresh bytes).
 */
export function writeHybridCheckpoint(dir: string, raw: Raw, opts: { dtype?: StDtype; shards?: number; mutate?: (ts: Array<{ name: string; shape: number[] }>) => void } = {}): WrittenHybrid {
  const dtype = opts.dtype ?? 'F32';
  const list = hybridTensors(raw);
  opts.mutate?.(list);
  const st: StTensor[] = list.map((t, k) => ({ name: t.name, dtype, shape: t.shape, data: pattern(k, t.shape.reduce((a, b) => a * b, 1) * ELEM[dtype]) }));
  fs.mkdirSync(dir, { recursive: true });
  writeAtomically(path.join(dir, 'config.json'), JSON.stringify(raw, null, 2));
  const shards = opts.shards ?? 1;
  const files: string[] = [];
  const tensors: WrittenHybrid['tensors'] = new Map();
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const part = st.slice(Math.floor((s * st.length) / shards), Math.floor(((s + 1) * st.length) / shards));
    const base = shards === 1 ? 'model.safetensors' : `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const file = path.join(dir, base);
    writeSafetensors(file, part, { format: 'pt' });
    files.push(file);
    for (const t of part) {
      weightMap[t.name] = base;
      tensors.set(t.name, { shape: t.shape, dtype, bytes: t.data, file });
    }
  }
  if (shards > 1) writeAtomically(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return { dir, files, tensors };
}
