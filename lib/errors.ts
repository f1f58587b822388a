// The error classes node-mamba throws. Every error the library raises on
// purpose is a MambaError with a stable string `code`; the subclasses carry
// what a caller needs to act on it (the file and tensor or field at fault).

/** Base class of node-mamba's own errors; `code` is stable across versions. */
export class MambaError extends Error {
  readonly code: string;

  constructor(message: string, code = 'ERR_MAMBA', options?: { cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'MambaError';
    this.code = code;
  }
}

export interface ModelLoadErrorDetails {
  /** The file at fault (absolute path when the loader knows it). */
  file: string;
  /** The tensor name or config key at fault, when there is one. */
  field?: string;
  /** What the loader expected (for example a shape), when that helps. */
  expected?: unknown;
  /** What it found. */
  actual?: unknown;
  cause?: unknown;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

/**
 * A checkpoint could not be loaded: a missing or unreadable file, a malformed
 * safetensors header or config.json, a tensor that disagrees with the config.
 * The message names the file and, when there is one, the tensor or field.
 */
export class ModelLoadError extends MambaError {
  readonly file: string;
  readonly field: string | undefined;
  readonly expected: unknown;
  readonly actual: unknown;
  /** The reason alone, without the file and field. */
  readonly reason: string;

  constructor(reason: string, details: ModelLoadErrorDetails) {
    const where = details.field !== undefined ? `${details.file}, field ${details.field}` : details.file;
    let msg = `${reason} (in ${where})`;
    if (details.expected !== undefined || details.actual !== undefined) {
      msg += `: expected ${describe(details.expected)}, got ${describe(details.actual)}`;
    }
    super(msg, 'ERR_MODEL_LOAD', { cause: details.cause });
    this.name = 'ModelLoadError';
    this.reason = reason;
    this.file = details.file;
    this.field = details.field;
    this.expected = details.expected;
    this.actual = details.actual;
  }
}

/** A model or sequence was used after dispose(). */
export class DisposedError extends MambaError {
  readonly what: 'model' | 'sequence';

  constructor(what: 'model' | 'sequence' = 'model') {
    super(`${what} has been disposed`, 'ERR_DISPOSED');
    this.name = 'DisposedError';
    this.what = what;
  }
}

/**
 * quantize() refused its input or options: an already quantized model, an
 * unknown scheme or recipe switch, calibration data that is empty or too
 * short, a size the Hadamard rotation cannot serve, an output path that is a
 * file. Raised before anything is written. `field` names the option (or the
 * tensor / config key) at fault.
 */
export class QuantizeError extends MambaError {
  readonly field: string | undefined;
  readonly file: string | undefined;

  constructor(message: string, details: { field?: string; file?: string; cause?: unknown } = {}) {
    super(`node-mamba: quantize: ${message}`, 'ERR_QUANTIZE', { cause: details.cause });
    this.name = 'QuantizeError';
    this.field = details.field;
    this.file = details.file;
  }
}

/**
 * Two models that must share a vocabulary (a model and the reference it is
 * evaluated against) have logits of different sizes.
 */
export class VocabularyMismatchError extends MambaError {
  readonly modelVocabSize: number;
  readonly referenceVocabSize: number;

  constructor(modelVocabSize: number, referenceVocabSize: number) {
    super(
      `the model's vocabulary has ${modelVocabSize} entries and the reference's ${referenceVocabSize}; ` +
        'comparing them token by token needs the same vocabulary',
      'ERR_VOCAB_MISMATCH',
    );
    this.name = 'VocabularyMismatchError';
    this.modelVocabSize = modelVocabSize;
    this.referenceVocabSize = referenceVocabSize;
  }
}

/**
 * Bytes given to `Sequence.restore` are not a snapshot this model can take:
 * not a node-mamba snapshot, a newer format, corrupt (the checksum or the
 * lengths disagree), or made by another model (its fingerprint differs).
 * `field` names the part at fault: 'magic', 'version', 'checksum', 'header',
 * 'fingerprint' or 'layout'.
 */
export class SnapshotError extends MambaError {
  readonly field: string;

  constructor(message: string, field: string) {
    super(`node-mamba: restore: ${message}`, 'ERR_SNAPSHOT');
    this.name = 'SnapshotError';
    this.field = field;
  }
}

/**
 * loadModel was asked for a device it cannot use: `device: 'cuda'` where the
 * CUDA runtime is unusable (no kernels in this build, no driver, no device,
 * compute capability too old), or where this version cannot run the model
 * there. `reason` says which; `device` is the device asked for.
 */
export class DeviceUnavailableError extends MambaError {
  readonly device: string;
  readonly reason: string;

  constructor(device: string, reason: string) {
    super(`node-mamba: loadModel: device '${device}' is not available: ${reason}`, 'ERR_DEVICE_UNAVAILABLE');
    this.name = 'DeviceUnavailableError';
    this.device = device;
    this.reason = reason;
  }
}
