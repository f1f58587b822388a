// node-mamba public API.
import * as kernels from './kernels';

export { kernels };
export { loadModel, MambaModel, type LoadModelOptions, type KvCacheType, type Device } from './model/model';
export { Sequence, type SequenceState } from './model/sequence';
export type {
  MambaConfig, Architecture, ModelFamily, LayerKind, MixerKind, FfnKind, AttentionConfig, MoeConfig, MoeRouter, Multipliers,
} from './model/config';
export type { GenerateOptions, GenerationChunk } from './generate/generate';
export { sampleToken, tokenProbabilities, type SamplingOptions } from './generate/sampling';
export { createRng, Xoshiro128, type Rng } from './generate/rng';
export { loadTokenizer, StreamingDetokenizer, type Tokenizer } from './tokenizer';
export { exportGguf, type ExportGgufOptions, type ExportGgufResult, type GgufExportType } from './export/export_gguf';
export {
  evaluate, type EvaluateOptions, type EvaluateResult, type EvaluateProgress, type ReferenceComparison,
} from './eval/evaluate';
export {
  MambaError, ModelLoadError, DisposedError, VocabularyMismatchError, QuantizeError, SnapshotError, DeviceUnavailableError,
} from './errors';
export {
  quantize, MIN_CALIBRATION_TOKENS,
  type QuantizeOptions, type QuantizeSummary, type QuantizeProgress, type QuantizeStage, type QuantRecipe, type ResolvedRecipe,
} from './quant/quantize';
export type { QuantScheme, QuantizationConfig } from './quant/config';
