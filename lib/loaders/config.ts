// config.json -> MambaConfig, for both dialects:
// - Hugging Face (`model_type` 'mamba' | 'mamba2', hidden_size, num_hidden_layers,
//   state_size, ...), the one transformers writes; its vocab_size is used as is
//   (it is already the embedding's row count); the hybrids `jamba` and
//   `granitemoehybrid` are read by config_jamba.ts and config_granite.ts;
// - original state-spaces/mamba (`d_model`, `n_layer`, `ssm_cfg`, vocab_size
//   padded up to pad_vocab_size_multiple, `tie_embeddings`).
// A config that has `model_type` is read as Hugging Face even when it also
// carries the legacy fields (state-spaces/mamba-130m-hf does).
// Defaults for absent keys are state-spaces/mamba's (Mamba-1: d_state 16,
// d_conv 4, expand 2, dt_rank ceil(d_model/16); Mamba-2: d_state 128, headdim
// 64, ngroups 1, chunk 256), also in the HF dialect, where transformers'
// Mamba2Config would default to Codestral's (n_groups 8, 128 heads); real
// config.json files spell these out, and checkpoint.ts checks them against
// the tensors anyway. tie_word_embeddings defaults as in transformers: true
// for mamba, false for mamba2.
// Mamba models get family 'mamba' | 'mamba2' (= arch) and nLayer layers of
// { mixer: 'mamba1' | 'mamba2', ffn: 'none' }.
// Every wrong type, impossible size or unsupported architecture is a
// ModelLoadError naming the config key (dotted for nested keys: ssm_cfg.d_state).
import { ModelLoadError } from '../errors';
import { mambaLayers, type MambaConfig } from '../model/config';
import { parseQuantizationConfig } from '../quant/config';
import { finish, innerSize, isPlainObject, Reader } from './config_reader';
import { fromJamba } from './config_jamba';
import { fromGranite } from './config_granite';

/**
 * Parses config.json text. Python's json module writes float('inf') as the bare
 * token `Infinity` (Mamba2Config.time_step_limit does), which JSON.parse
 * rejects: bare Infinity / -Infinity / NaN outside strings are accepted here.
 */
export function parseConfigJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (first) {
    const marked = markNonFinite(text);
    if (marked !== text) {
      try {
        return JSON.parse(marked, (_k, v) =>
          v === NONFINITE.inf ? Infinity : v === NONFINITE.ninf ? -Infinity : v === NONFINITE.nan ? NaN : v);
      } catch {
        // fall through to the original message
      }
    }
    throw new ModelLoadError(`config is not valid JSON (${(first as Error).message})`, { file, cause: first });
  }
}

const NONFINITE = { inf: '\u0000node-mamba:Infinity', ninf: '\u0000node-mamba:-Infinity', nan: '\u0000node-mamba:NaN' };

/** Replaces bare Infinity, -Infinity and NaN tokens outside strings by marker strings. */
function markNonFinite(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const rest = text.startsWith('-Infinity', i) ? ['-Infinity', NONFINITE.ninf]
      : text.startsWith('Infinity', i) ? ['Infinity', NONFINITE.inf]
        : text.startsWith('NaN', i) ? ['NaN', NONFINITE.nan] : null;
    if (rest) {
      out += JSON.stringify(rest[1]);
      i += rest[0].length;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

const SUPPORTED_MODEL_TYPES = ['mamba', 'mamba2', 'jamba', 'granitemoehybrid'];

/**
 * Normalises a parsed config.json (either dialect) to MambaConfig. `file` is
 * only used in error messages.
 */
export function normalizeConfig(raw: unknown, file: string): MambaConfig {
  if (!isPlainObject(raw)) throw new ModelLoadError('config is not a JSON object', { file });
  const withQuant = (c: MambaConfig): MambaConfig => {
    if (raw.quantization_config !== undefined && raw.quantization_config !== null) {
      c.quantization = parseQuantizationConfig(raw.quantization_config, file);
    }
    return c;
  };
  if (raw.model_type !== undefined) return withQuant(fromHuggingFace(new Reader(raw, file)));
  if (raw.d_model !== undefined) return withQuant(fromOriginal(new Reader(raw, file)));
  throw new ModelLoadError(
    'config has neither model_type (Hugging Face dialect) nor d_model (state-spaces dialect)',
    { file, field: 'model_type' },
  );
}

function fromHuggingFace(r: Reader): MambaConfig {
  const mt = r.obj.model_type;
  if (typeof mt !== 'string' || !SUPPORTED_MODEL_TYPES.includes(mt)) {
    r.fail('model_type', `unsupported model_type ${JSON.stringify(mt)} (node-mamba reads ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  if (mt === 'jamba') return fromJamba(r);
  if (mt === 'granitemoehybrid') return fromGranite(r);
  const arch = mt as 'mamba' | 'mamba2';
  r.only('hidden_act', 'silu', 'an activation other than silu');
  const dModel = r.posInt('hidden_size');
  const nLayer = r.posInt('num_hidden_layers');
  const vocabSize = r.posInt('vocab_size');
  const expand = r.posNum('expand', 2);
  const dInner = innerSize(r, 'expand', expand, dModel);
  if (r.has('intermediate_size') && r.posInt('intermediate_size') !== dInner) {
    r.fail('intermediate_size', `is ${r.obj.intermediate_size} but expand * hidden_size = ${dInner}`);
  }
  const common = {
    family: arch, dModel, nLayer, vocabSize, expand, dInner,
    dConv: r.posInt('conv_kernel', 4),
    normEps: r.posNum('layer_norm_epsilon', 1e-5),
    residualInFp32: r.bool('residual_in_fp32', true),
    useBias: r.bool('use_bias', false),
    convBias: r.bool('use_conv_bias', true),
    bosTokenId: r.optTokenId('bos_token_id'),
    eosTokenId: r.optTokenId('eos_token_id'),
    padTokenId: r.optTokenId('pad_token_id'),
  };
  if (arch === 'mamba') {
    return finish({
      arch, layers: mambaLayers(arch, nLayer), ...common,
      dState: r.posInt('state_size', 16),
      dtRank: r.autoInt('time_step_rank', Math.ceil(dModel / 16)),
      headdim: 0, nheads: 0, ngroups: 1, chunkSize: 0,
      tieEmbeddings: r.bool('tie_word_embeddings', true),
      timeStepLimit: [0, Infinity],
    });
  }
  r.only('rms_norm', true, 'rms_norm false (LayerNorm)');
  const headdim = r.posInt('head_dim', 64);
  if (dInner % headdim !== 0) r.fail('head_dim', `${headdim} does not divide d_inner = ${dInner}`);
  const nheads = r.posInt('num_heads', dInner / headdim);
  if (nheads * headdim !== dInner) {
    r.fail('num_heads', `num_heads * head_dim = ${nheads} * ${headdim} is not d_inner = expand * hidden_size = ${dInner}`);
  }
  const ngroups = r.posInt('n_groups', 1);
  if (nheads % ngroups !== 0) r.fail('n_groups', `${ngroups} does not divide num_heads = ${nheads}`);
  return finish({
    arch, layers: mambaLayers(arch, nLayer), ...common,
    dState: r.posInt('state_size', 128),
    dtRank: 0, headdim, nheads, ngroups,
    chunkSize: r.posInt('chunk_size', 256),
    tieEmbeddings: r.bool('tie_word_embeddings', false),
    timeStepLimit: r.limit('time_step_limit'),
  });
}

function fromOriginal(r: Reader): MambaConfig {
  const dModel = r.posInt('d_model');
  const nLayer = r.posInt('n_layer');
  const rawVocab = r.posInt('vocab_size');
  const pad = r.posInt('pad_vocab_size_multiple', 8);
  const vocabSize = Math.ceil(rawVocab / pad) * pad;
  if (r.nonNegInt('d_intermediate', 0) !== 0) r.fail('d_intermediate', 'an MLP after each mixer (d_intermediate > 0) is not supported');
  const attn = r.obj.attn_layer_idx;
  if (attn !== undefined && attn !== null && !(Array.isArray(attn) && attn.length === 0)) {
    r.fail('attn_layer_idx', `attention layers (hybrid models) are not supported (got ${JSON.stringify(attn)})`);
  }
  r.only('rms_norm', true, 'rms_norm false (LayerNorm)');
  const ssmRaw = r.obj.ssm_cfg ?? {};
  if (!isPlainObject(ssmRaw)) r.fail('ssm_cfg', `must be an object, got ${JSON.stringify(ssmRaw)}`);
  const s = new Reader(ssmRaw, r.file, 'ssm_cfg.');
  const layer = ssmRaw.layer ?? 'Mamba1';
  if (layer !== 'Mamba1' && layer !== 'Mamba2') {
    s.fail('layer', `unsupported mixer layer ${JSON.stringify(layer)} (node-mamba reads Mamba1, Mamba2)`);
  }
  const expand = s.posNum('expand', 2);
  const dInner = innerSize(s, 'expand', expand, dModel);
  const common = {
    dModel, nLayer, vocabSize, expand, dInner,
    dConv: s.posInt('d_conv', 4),
    normEps: 1e-5,
    residualInFp32: r.bool('residual_in_fp32', true),
    useBias: s.bool('bias', false),
    convBias: s.bool('conv_bias', true),
    tieEmbeddings: r.bool('tie_embeddings', true),
  };
  if (layer === 'Mamba1') {
    return finish({
      arch: 'mamba', family: 'mamba', layers: mambaLayers('mamba', nLayer), ...common,
      dState: s.posInt('d_state', 16),
      dtRank: s.autoInt('dt_rank', Math.ceil(dModel / 16)),
      headdim: 0, nheads: 0, ngroups: 1, chunkSize: 0,
      timeStepLimit: [0, Infinity],
    });
  }
  s.only('rmsnorm', true, 'rmsnorm false (ungated output)');
  s.only('norm_before_gate', false, 'norm_before_gate true');
  s.only('D_has_hdim', false, 'D_has_hdim true');
  if (s.has('d_ssm') && s.posInt('d_ssm') !== dInner) s.fail('d_ssm', `d_ssm != d_inner (${dInner}), i.e. a gated MLP inside the mixer, is not supported`);
  const headdim = s.posInt('headdim', 64);
  if (dInner % headdim !== 0) s.fail('headdim', `${headdim} does not divide d_inner = ${dInner}`);
  const nheads = dInner / headdim;
  const ngroups = s.posInt('ngroups', 1);
  if (nheads % ngroups !== 0) s.fail('ngroups', `${ngroups} does not divide nheads = ${nheads}`);
  return finish({
    arch: 'mamba2', family: 'mamba2', layers: mambaLayers('mamba2', nLayer), ...common,
    dState: s.posInt('d_state', 128),
    dtRank: 0, headdim, nheads, ngroups,
    chunkSize: s.posInt('chunk_size', 256),
    timeStepLimit: s.limit('dt_limit'),
  });
}
