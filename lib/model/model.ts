// MambaModel: a loaded checkpoint, its tokenizer and its sequences.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DisposedError, MambaError, ModelLoadError } from '../errors';
import { resolveCheckpoint, type Checkpoint } from '../loaders/checkpoint';
import { loadGgufCheckpoint, type GgufCheckpoint } from '../loaders/gguf_model';
import { GGUF_MAGIC } from '../loaders/gguf';
import { native } from '../native/binding';
import type { NativeModel } from '../native/types';
import { loadTokenizer, type Tokenizer } from '../tokenizer';
import { ggufHasTokenizer, ggufTokenizer, ggufTokenizerJson } from '../tokenizer/gguf_tokenizer';
import { LazyTokenizer } from '../tokenizer/lazy';
import { generate, complete, type GenerateOptions, type GenerationChunk } from '../generate/generate';
import { DecodeBatcher } from './batcher';
import type { MambaConfig } from './config';
import { Sequence, type SequenceHost, type SnapshotInfo } from './sequence';
import type { SnapshotLayer } from './snapshot';
import { modelFingerprint, type FingerprintTensor } from './fingerprint';
import { toTokenArray } from './tokens';
import { chooseDevice, nativeBackend, type DeviceChoice } from './device';
import { checkLoadOptions, contextSizeFor, type Device, type KvCacheType, type LoadModelOptions } from './load_options';
import { nativeLoadArgs } from './native_args';

export type { LoadModelOptions, KvCacheType, Device } from './load_options';

export class MambaModel implements SequenceHost {
  readonly batcher: DecodeBatcher;
  private native: NativeModel | undefined;
  private readonly sequences = new Set<Sequence>();
  private snapshotMeta: SnapshotInfo | undefined;

  /** @internal use loadModel() */
  constructor(
    nativeModel: NativeModel,
    /** The normalised configuration. */
    readonly config: MambaConfig,
    readonly tokenizer: Tokenizer,
    /** The checkpoint directory. */
    readonly path: string,
    maxBatch: number,
    /** The weight files and tensor table (for the snapshot fingerprint). */
    private readonly source: { files: string[]; tensors: Map<string, FingerprintTensor> },
    /** Most tokens a sequence may hold (bounds the attention layers' K/V cache; Mamba layers have no limit). */
    readonly contextSize: number = Infinity,
    /** The element type of the attention layers' K/V cache. */
    readonly kvCacheType: KvCacheType = 'f16',
    /** The device the model runs on, and why (loadModel's `device` option). */
    private readonly placement: DeviceChoice = { device: 'cpu', reason: "asked for ('cpu')" },
  ) {
    this.native = nativeModel;
    this.batcher = new DecodeBatcher(() => this.nativeModel(), config.vocabSize, maxBatch);
  }

  /** Rows of the logits (the padded vocabulary of the checkpoint). */
  /** The device the model runs on ('cpu' or 'cuda'; see loadModel's `device` option). */
  get device(): Device {
    return this.placement.device;
  }

  /** Why the model runs on `device` (with `device: 'auto'`, why not on the GPU). */
  get deviceReason(): string {
    return this.placement.reason;
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  get isDisposed(): boolean {
    return this.native === undefined;
  }

  /** Sequences created and not yet disposed (generate() disposes its own). */
  get sequenceCount(): number {
    return this.sequences.size;
  }

  /**
   * Bytes of weights (memory-mapped), of the weights one decode step reads (all but an
   * untied embedding, of which a step reads its tokens' rows, and the experts a token
   * is not routed to), of one sequence's fixed (Mamba) state, and of the attention
   * layers' key/value cache per token a sequence holds.
   */
  get memory(): { weightBytes: number; decodeBytesPerToken: number; stateBytesPerSequence: number; kvBytesPerToken: number } {
    const i = this.nativeModel().info();
    return {
      weightBytes: i.weightBytes, decodeBytesPerToken: i.decodeBytes, stateBytesPerSequence: i.stateBytes, kvBytesPerToken: i.kvBytesPerToken,
    };
  }

  /** @internal */
  nativeModel(): NativeModel {
    if (!this.native) throw new DisposedError('model');
    return this.native;
  }

  /** @internal the fingerprint (computed once) and state layout snapshots carry */
  snapshotInfo(): SnapshotInfo {
    if (!this.snapshotMeta) {
      const c = this.config;
      const kinds = c.layers;
      const conv = (m: string) => [m === 'mamba2' ? c.dInner + 2 * c.ngroups * c.dState : c.dInner, c.dConv - 1];
      const ssm = (m: string) => (m === 'mamba2' ? [c.nheads, c.headdim, c.dState] : [c.dInner, c.dState]);
      const att = c.attention;
      const dtype = this.kvCacheType;
      const layout = (position: number): SnapshotLayer[] => kinds.map((k) => (k.mixer === 'attention'
        ? { kind: 'attention' as const, tokens: position, kvHeads: att!.nKvHeads, headDim: att!.headDim, dtype }
        : { kind: 'mamba' as const, conv: conv(k.mixer), ssm: ssm(k.mixer) }));
      const size = (n: number[]) => n.reduce((a, b) => a * b, 1);
      const fixed = layout(0).reduce((a, l) => a + (l.kind === 'mamba' ? 4 * (size(l.conv) + size(l.ssm)) : 0), 0);
      const perToken = layout(1).reduce((a, l) => a + (l.kind === 'attention' ? 2 * l.kvHeads * l.headDim * (l.dtype === 'f16' ? 2 : 4) : 0), 0);
      const info = this.nativeModel().info();
      if (fixed !== info.stateBytes || perToken !== info.kvBytesPerToken) {
        throw new MambaError(`node-mamba: internal error: the engine's state is ${info.stateBytes} + ${info.kvBytesPerToken}/token bytes, the layers describe ${fixed} + ${perToken}/token`);
      }
      this.snapshotMeta = {
        fingerprint: modelFingerprint(c, this.source.files, this.source.tensors),
        layers: layout,
        stateBytes: (position) => fixed + position * perToken,
      };
    }
    return this.snapshotMeta;
  }

  /** @internal */
  onSequenceDisposed(seq: Sequence): void {
    this.sequences.delete(seq);
  }

  /** A new sequence with an empty state. Dispose it when done (or use `await using`). */
  async createSequence(): Promise<Sequence> {
    const slot = await this.nativeModel().allocSequence();
    const seq = new Sequence(this, slot);
    this.sequences.add(seq);
    return seq;
  }

  /**
   * Logits of every position of `tokens` from an empty state, as one
   * row-major Float32Array [tokens.length, vocabSize].
   */
  async forward(tokens: ArrayLike<number>): Promise<Float32Array> {
    const ids = toTokenArray(tokens, this.vocabSize);
    if (ids.length === 0) throw new RangeError("node-mamba: 'tokens' must not be empty");
    const seq = await this.createSequence();
    try {
      return (await this.nativeModel().prefill(seq.slot, ids, 'all')) as Float32Array;
    } finally {
      await seq.dispose();
    }
  }

  /** Streams generated tokens: an async iterable of { token, text } chunks. */
  generate(prompt: string | ArrayLike<number>, options: GenerateOptions = {}): AsyncIterable<GenerationChunk> {
    return generate(this, prompt, options);
  }

  /** The generated text (prompt excluded). */
  complete(prompt: string | ArrayLike<number>, options: GenerateOptions = {}): Promise<string> {
    return complete(this, prompt, options);
  }

  /** Frees the weights' mappings and every sequence's state now. Safe to call twice. */
  dispose(): void {
    if (!this.native) return;
    for (const s of [...this.sequences]) void s.dispose();
    this.native.dispose();
    this.native = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

// An explicit tokenizer path is read at load (its errors belong there); the
// checkpoint's own or the default tokenizer is built on first use.
function resolveTokenizer(dir: string, opt: Tokenizer | string | undefined): Tokenizer {
  if (opt !== undefined && typeof opt !== 'string') return opt;
  if (typeof opt === 'string') return loadTokenizer(opt);
  const own = fs.existsSync(path.join(dir, 'tokenizer.json'));
  return new LazyTokenizer(() => (own ? loadTokenizer(dir) : loadTokenizer()));
}

/** The tokenizer of a GGUF model: the option, else the file's tokenizer.ggml.*, else the default. */
function resolveGgufTokenizer(ck: GgufCheckpoint, opt: Tokenizer | string | undefined): Tokenizer {
  if (opt !== undefined && typeof opt !== 'string') return opt;
  if (typeof opt === 'string') return loadTokenizer(opt);
  if (!ggufHasTokenizer(ck.gguf)) return new LazyTokenizer(() => loadTokenizer());
  ggufTokenizerJson(ck.gguf); // checks the tokenizer.ggml.* keys now, so their errors come from loadModel
  return new LazyTokenizer(() => ggufTokenizer(ck.gguf));
}

/** A path to read as GGUF: a name ending in .gguf, or a regular file that starts with the GGUF magic. */
function isGgufPath(p: string): boolean {
  if (p.toLowerCase().endsWith('.gguf')) return true;
  try {
    if (!fs.statSync(p).isFile()) return false;
    const fd = fs.openSync(p, 'r');
    try {
      const b = Buffer.alloc(4);
      return fs.readSync(fd, b, 0, 4, 0) === 4 && b.readUInt32LE(0) === GGUF_MAGIC;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

/**
 * Loads a checkpoint directory in the Hugging Face layout (config.json +
 * model.safetensors, or shards with model.safetensors.index.json; both the
 * Hugging Face and the original state-spaces config dialects). Weights stay
 * memory-mapped in their stored dtype (f32, f16, bf16). Also a llama.cpp GGUF
 * file (architecture mamba, mamba2, jamba or granitehybrid; tensor types F32,
 * F16, BF16, Q8_0, Q4_0), with its tokenizer from the file's tokenizer.ggml.* keys. Rejects
 * with a ModelLoadError naming the file and the tensor or field at fault.
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<MambaModel> {
  if (typeof dir !== 'string') throw new TypeError("node-mamba: loadModel: 'path' must be a string");
  const opts = checkLoadOptions(options);
  const placement = chooseDevice(opts.device, native.runtimeInfo().cuda);
  const abs = path.resolve(dir);
  let ck: Checkpoint;
  let tokenizer: Tokenizer;
  if (isGgufPath(abs)) {
    const gck = loadGgufCheckpoint(abs);
    ck = gck;
    tokenizer = resolveGgufTokenizer(gck, opts.tokenizer);
  } else {
    ck = resolveCheckpoint(abs);
    tokenizer = resolveTokenizer(abs, opts.tokenizer);
  }
  let nm: NativeModel;
  try {
    nm = await native.loadModel(nativeLoadArgs(ck, {
      backend: nativeBackend(placement.device),
      threads: opts.threads,
      roundActivations: opts.inputRounding === 'auto',
      contextSize: contextSizeFor(ck.config, opts.contextSize),
      kvDtype: opts.kvCacheType,
    }));
  } catch (err) {
    const e = err as Error & { code?: string; file?: string; field?: string };
    if (e && e.code === 'ERR_MODEL_LOAD') {
      // For a GGUF file, name the tensor as the file does (blk.0.ssm_a, not backbone.layers.0.mixer.A).
      const field = e.field ? ((ck as Partial<GgufCheckpoint>).ggufNames?.get(e.field) ?? e.field) : undefined;
      throw new ModelLoadError(e.message, { file: e.file || ck.configFile, field, cause: err });
    }
    throw err instanceof Error ? err : new MambaError(String(err));
  }
  const hasAttention = ck.config.layers.some((l) => l.mixer === 'attention');
  return new MambaModel(nm, ck.config, tokenizer, abs, opts.maxBatch, { files: ck.files, tensors: ck.tensors },
    hasAttention ? contextSizeFor(ck.config, opts.contextSize) : Infinity, opts.kvCacheType, placement);
}
