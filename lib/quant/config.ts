// The `quantization_config` section of a Quamba-style checkpoint's
// config.json (the key Hugging Face uses for quantized checkpoints), written
// by quantize() and read by the loader:
//   {
//     "quant_method": "quamba", "format": "node-mamba", "format_version": 1,
//     "scheme": "w8a8" | "w4a8" | "w4a16",
//     "hadamard": true | false,        // out_proj input rotated online (and the residual stream)
//     "residual_rotation": "folded" | "online" | "none",
//                                      // folded: embedding rows and lm_head rotated offline (Quamba;
//                                      // the head untied); online: the engine rotates the embedding
//                                      // output and rotates back before norm_f (embedding, norm_f and a
//                                      // tied head unchanged); none: no rotation (hadamard false)
//     "ssm_activations": "int8" | "float",   // format_version 2; absent = "float"
//                                      // int8: the mixer's conv1d input and output, and the scan's
//                                      // x, B, C are int8 with static scales (kernels/ssm_q8.h)
//     "recipe": { ...the switches the checkpoint was made with (informational) }
//   }
// The tensors say the rest: an I8 / I4 weight `<layer>.weight` comes with
// `<layer>.weight_scale` and (int8 inputs) `<layer>.input_scale`. With int8
// SSM activations every layer's mixer has `conv1d.input_scale` ([] or
// [conv_dim]); Mamba-2 `conv1d.output_scale` ([] or [conv_dim]: x, then B and
// C per group and state); Mamba-1 `B_scale` and `C_scale` ([] or [d_state]),
// its conv output being x_proj's int8 input (scale `x_proj.input_scale`).
import { ModelLoadError } from '../errors';

export type QuantScheme = 'w8a8' | 'w4a8' | 'w4a16';
export const QUANT_SCHEMES: readonly QuantScheme[] = ['w8a8', 'w4a8', 'w4a16'];
export const QUANT_FORMAT_VERSION = 2;

export interface QuantizationConfig {
  quantMethod: 'quamba';
  formatVersion: number;
  scheme: QuantScheme;
  /** The out_proj input is rotated online (and the residual stream, see residualRotation). */
  hadamard: boolean;
  /** How the residual stream is rotated: offline into embedding and head ('folded'), or at both ends by the engine ('online'). */
  residualRotation: 'folded' | 'online' | 'none';
  /** int8: the SSM path's activations are int8 with static scales (format_version 2). */
  ssmActivations: 'int8' | 'float';
  recipe: Record<string, unknown>;
}

export function parseQuantizationConfig(raw: unknown, file: string): QuantizationConfig {
  const field = (k: string) => `quantization_config.${k}`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelLoadError('quantization_config is not a JSON object', { file, field: 'quantization_config' });
  }
  const o = raw as Record<string, unknown>;
  if (o.quant_method !== 'quamba') {
    throw new ModelLoadError(`unsupported quantization method ${JSON.stringify(o.quant_method)} (node-mamba reads its own "quamba" checkpoints; GGUF files carry their own quantization)`, {
      file, field: field('quant_method'),
    });
  }
  const v = o.format_version;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new ModelLoadError(`format_version must be a positive integer, got ${JSON.stringify(v)}`, { file, field: field('format_version') });
  }
  if (v > QUANT_FORMAT_VERSION) {
    throw new ModelLoadError(`format_version ${v} is newer than this node-mamba reads (${QUANT_FORMAT_VERSION}): update node-mamba`, { file, field: field('format_version') });
  }
  if (typeof o.scheme !== 'string' || !(QUANT_SCHEMES as readonly string[]).includes(o.scheme)) {
    throw new ModelLoadError(`unknown scheme ${JSON.stringify(o.scheme)} (expected ${QUANT_SCHEMES.join(', ')})`, { file, field: field('scheme') });
  }
  if (typeof o.hadamard !== 'boolean') {
    throw new ModelLoadError(`hadamard must be true or false, got ${JSON.stringify(o.hadamard)}`, { file, field: field('hadamard') });
  }
  const rr = o.residual_rotation === undefined ? (o.hadamard ? 'folded' : 'none') : o.residual_rotation;
  if (rr !== 'folded' && rr !== 'online' && rr !== 'none') {
    throw new ModelLoadError(`residual_rotation must be "folded", "online" or "none", got ${JSON.stringify(rr)}`, { file, field: field('residual_rotation') });
  }
  if ((rr === 'none') === o.hadamard) {
    throw new ModelLoadError(`residual_rotation ${JSON.stringify(rr)} contradicts hadamard ${o.hadamard}`, { file, field: field('residual_rotation') });
  }
  const ssm = o.ssm_activations === undefined ? 'float' : o.ssm_activations;
  if (ssm !== 'int8' && ssm !== 'float') {
    throw new ModelLoadError(`ssm_activations must be "int8" or "float", got ${JSON.stringify(ssm)}`, { file, field: field('ssm_activations') });
  }
  if (ssm === 'int8' && o.scheme === 'w4a16') {
    throw new ModelLoadError('ssm_activations "int8" contradicts scheme "w4a16" (float activations)', { file, field: field('ssm_activations') });
  }
  const recipe = o.recipe === undefined ? {} : o.recipe;
  if (typeof recipe !== 'object' || recipe === null || Array.isArray(recipe)) {
    throw new ModelLoadError('recipe must be an object', { file, field: field('recipe') });
  }
  return { quantMethod: 'quamba', formatVersion: v, scheme: o.scheme as QuantScheme, hadamard: o.hadamard, residualRotation: rr, ssmActivations: ssm, recipe: recipe as Record<string, unknown> };
}

/** The config.json section for a QuantizationConfig. */
export function quantizationConfigJson(q: QuantizationConfig): Record<string, unknown> {
  return {
    quant_method: q.quantMethod, format: 'node-mamba', format_version: q.formatVersion, scheme: q.scheme,
    hadamard: q.hadamard, residual_rotation: q.residualRotation, ssm_activations: q.ssmActivations, recipe: q.recipe,
  };
}
