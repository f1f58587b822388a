// loadModel's options: their defaults and their checks (a TypeError for a
// value of the wrong type, a RangeError for one out of range), before
// anything is read.
import type { Tokenizer } from '../tokenizer';
import type { MambaConfig } from './config';

/** Element type of the attention layers' key/value cache. */
export type KvCacheType = 'f16' | 'f32';

/** A device a model runs on. */
export type Device = 'cpu' | 'cuda';

export interface LoadModelOptions {
  /** Thread-pool size for the kernels (default: physical cores). Process-wide. */
  threads?: number;
  /**
   * Where the model runs: 'cpu' (default); 'cuda' (an NVIDIA GPU: rejects
   * with a DeviceUnavailableError saying why when it cannot); 'auto' (the GPU
   * when the model can run there, else the CPU). `model.device` says which
   * was chosen and `model.deviceReason` why. 'cuda' needs the addon built
   * with CUDA (the optional @node-mamba/<platform>-<arch>-cuda package, or a
   * local build with -DNODE_MAMBA_CUDA=ON), a driver, and a GPU of compute
   * capability 7.5 or newer: `kernels.runtimeInfo().cuda` says which is
   * missing.
   */
  device?: Device | 'auto';
  /**
   * Tokenizer: a Tokenizer object, or a path to a tokenizer.json (or a
   * directory holding one). Default: the checkpoint's tokenizer.json, else
   * the GPT-NeoX-20B tokenizer that state-spaces Mamba checkpoints use.
   */
  tokenizer?: Tokenizer | string;
  /** Most sequences decoded together in one step (default 16). */
  maxBatch?: number;
  /**
   * Rounding of the inputs of the linear layers. 'auto' (default), as
   * llama.cpp does: with bf16 weights the input is rounded to bf16, with q8_0 /
   * q4_0 weights quantized to int8 per 32 values (ggml's Q8_0), which lets the
   * CPU use its bf16 / int8 dot-product instructions (AVX512_BF16, VNNI):
   * 1.3-2x faster matrix-vector products, at a relative error of ~2^-9 (bf16)
   * or ~1/254 of each 32 values' largest magnitude (int8) in those inputs.
   * 'none': exact float32 inputs for every weight type. f32 and f16 weights
   * always get exact inputs.
   */
  inputRounding?: 'auto' | 'none';
  /**
   * Most tokens one sequence may hold (prompt and generated), an integer >= 1.
   * It bounds the key/value cache of hybrid models' attention layers; past it a
   * sequence's prefill or step is a RangeError. Mamba layers keep a fixed-size
   * state and have no limit. Default: the config's max_position_embeddings,
   * at most 4096 (DEFAULT_CONTEXT_SIZE); 4096 when the config has none.
   */
  contextSize?: number;
  /** Element type of the attention layers' key/value cache: 'f16' (default, half the memory) or 'f32'. */
  kvCacheType?: KvCacheType;
}

/** loadModel's default contextSize, and its cap on max_position_embeddings as a default. */
export const DEFAULT_CONTEXT_SIZE = 4096;
/** The largest contextSize (positions are 32-bit in the engine). */
export const MAX_CONTEXT_SIZE = 2 ** 31 - 1;

export interface CheckedLoadOptions {
  device: Device | 'auto';
  threads?: number;
  tokenizer?: Tokenizer | string;
  maxBatch: number;
  inputRounding: 'auto' | 'none';
  /** undefined: the default for the model (contextSizeFor). */
  contextSize?: number;
  kvCacheType: KvCacheType;
}

const where = 'node-mamba: loadModel:';

/** Checks every option and applies the defaults that do not depend on the model. */
export function checkLoadOptions(options: LoadModelOptions | undefined): CheckedLoadOptions {
  const opts = options ?? {};
  if (typeof opts !== 'object') throw new TypeError(`${where} 'options' must be an object`);
  const device = opts.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda' && device !== 'auto') {
    throw new RangeError(`${where} 'device' must be 'cpu', 'cuda' or 'auto', got '${String(device)}'`);
  }
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1 && opts.threads <= 1024)) {
    throw new RangeError(`${where} 'threads' must be an integer in [1, 1024]`);
  }
  const maxBatch = opts.maxBatch ?? 16;
  if (!(Number.isInteger(maxBatch) && maxBatch >= 1 && maxBatch <= 256)) {
    throw new RangeError(`${where} 'maxBatch' must be an integer in [1, 256]`);
  }
  const inputRounding = opts.inputRounding ?? 'auto';
  if (inputRounding !== 'auto' && inputRounding !== 'none') {
    throw new RangeError(`${where} 'inputRounding' must be 'auto' or 'none', got '${String(inputRounding)}'`);
  }
  const { contextSize } = opts;
  if (contextSize !== undefined) {
    if (typeof contextSize !== 'number') throw new TypeError(`${where} 'contextSize' must be a number, got ${typeof contextSize}`);
    if (!(Number.isInteger(contextSize) && contextSize >= 1 && contextSize <= MAX_CONTEXT_SIZE)) {
      throw new RangeError(`${where} 'contextSize' must be an integer in [1, ${MAX_CONTEXT_SIZE}], got ${contextSize}`);
    }
  }
  const kvCacheType = opts.kvCacheType ?? 'f16';
  if (typeof kvCacheType !== 'string') throw new TypeError(`${where} 'kvCacheType' must be a string, got ${typeof kvCacheType}`);
  if (kvCacheType !== 'f16' && kvCacheType !== 'f32') {
    throw new RangeError(`${where} 'kvCacheType' must be 'f16' or 'f32', got '${kvCacheType}'`);
  }
  return {
    device,
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    ...(opts.tokenizer !== undefined ? { tokenizer: opts.tokenizer } : {}),
    maxBatch, inputRounding, kvCacheType,
    ...(contextSize !== undefined ? { contextSize } : {}),
  };
}

/** The contextSize a model gets: the option, else max_position_embeddings capped at DEFAULT_CONTEXT_SIZE. */
export function contextSizeFor(config: Pick<MambaConfig, 'maxPositionEmbeddings'>, requested: number | undefined): number {
  return requested ?? Math.min(config.maxPositionEmbeddings ?? DEFAULT_CONTEXT_SIZE, DEFAULT_CONTEXT_SIZE);
}
