// A checkpoint directory -> the normalised config plus, for every tensor the
// architecture uses, where its bytes are (file, absolute offset, size), its
// dtype and its shape. Reads headers only; the engine maps the data.
//
// Layout: config.json plus model.safetensors, or shards listed by
// model.safetensors.index.json (weight_map: tensor name -> shard file). A
// directory with exactly one other *.safetensors file is read as that file.
//
// Names: lib/model/blocks/ declares every tensor of every block with its
// canonical name (the engine's: Hugging Face Mamba's, docs/hybrid-engine.md)
// and the name each checkpoint family stores it under: Mamba checkpoints
// store the canonical names (a leading `model.` is stripped and the original
// dialect's `backbone.embedding.weight` becomes `backbone.embeddings.weight`),
// Jamba and Granite their own (`model.layers.i.mamba.in_proj.weight`, ...).
// A canonical tensor may be a row range of a stored one (Granite's packed
// gate/up and expert tensors): it gets its own offset, byte size and 2-D
// shape. Tensors the model does not use are ignored (for example
// in_proj.bias when the config says use_bias false, as transformers ignores
// them).
//
// Tied heads: without lm_head.weight the head is the embedding; a config that
// says untied is then an error naming lm_head.weight. With lm_head.weight
// present the stored head is used even when the config says tied (original
// checkpoints save the tied copy too), and the returned config has
// tieEmbeddings false: tieEmbeddings is true exactly when the tensors map has
// no lm_head.weight.
//
// Every shape is checked against the config; a mismatch is a ModelLoadError
// naming the tensor as stored (a packed tensor's whole shape is checked),
// with the expected and actual shape and, where it tells something, the size
// the tensor implies (d_inner, dt_rank, heads, groups, vocab, experts). A
// missing tensor is named as its family stores it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelLoadError } from '../errors';
import type { MambaConfig } from '../model/config';
import { normalizeConfig, parseConfigJson } from './config';
import { readTextFile } from './text_file';
import { readSafetensorsHeader, type SafetensorsFile, type SafetensorsDtype } from './safetensors';
import { i4RowBytes, quantScaleShape } from '../quant/formats';
import { modelTensors, type ModelTensor } from '../model/blocks';

export type WeightDtype = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'i8' | 'i4';

export interface CheckpointTensor {
  /** Index into Checkpoint.files. */
  file: number;
  /** Absolute path of that file. */
  fileName: string;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  nbytes: number;
  dtype: WeightDtype;
  shape: number[];
}

export interface Checkpoint {
  dir: string;
  config: MambaConfig;
  /** Absolute path of config.json. */
  configFile: string;
  /** Absolute paths of the safetensors files. */
  files: string[];
  /** Canonical name -> location, for exactly the tensors the architecture uses. */
  tensors: Map<string, CheckpointTensor>;
}

const DTYPES: Partial<Record<SafetensorsDtype, WeightDtype>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** Canonical (Hugging Face) name of a stored tensor name. */
export function canonicalTensorName(name: string): string {
  let n = name.startsWith('model.') ? name.slice('model.'.length) : name;
  if (n === 'backbone.embedding.weight') n = 'backbone.embeddings.weight';
  return n;
}

/** A tensor the model needs: lib/model/blocks/ declares them, for every checkpoint family. */
export type TensorSpec = ModelTensor;

/**
 * Every tensor the model needs, with the shape the config implies and the
 * name (and row range) its family stores it under, in a stable order
 * (embedding, layers in order, final norm, lm_head when untied).
 */
export function expectedTensors(c: MambaConfig): TensorSpec[] {
  return modelTensors(c);
}

interface Located {
  file: number;
  storedName: string;
  info: { dtype: SafetensorsDtype; shape: number[]; offset: number; nbytes: number };
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function readJson(file: string, what: string): unknown {
  return parseConfigJson(readTextFile(file, what), file);
}

export function resolveCheckpoint(dir: string): Checkpoint {
  const root = path.resolve(dir);
  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch (err) {
    throw new ModelLoadError('checkpoint directory not found', { file: root, cause: err });
  }
  if (!st.isDirectory()) throw new ModelLoadError('not a checkpoint directory (expected a directory with config.json)', { file: root });

  const configFile = path.join(root, 'config.json');
  const config = normalizeConfig(readJson(configFile, 'config.json'), configFile);

  const { files, located, source } = locateTensors(root);

  // lm_head: stored one wins; absent means tied, which an untied config forbids.
  const head = located.get('lm_head.weight');
  if (!head && !config.tieEmbeddings) {
    throw new ModelLoadError('config says the head is not tied to the embedding (tie_word_embeddings / tie_embeddings false) but the checkpoint has no lm_head.weight', {
      file: source, field: 'lm_head.weight',
    });
  }
  if (head) config.tieEmbeddings = false;

  const tensors = new Map<string, CheckpointTensor>();
  // A quantized checkpoint (node-mamba's own format) stores every tensor
  // under its canonical name, whole, whatever the family (a hybrid's packed
  // expert tensors as one tensor per expert and projection).
  const canonicalNames = config.quantization !== undefined;
  for (const declared of expectedTensors(config)) {
    const spec: TensorSpec = canonicalNames ? { ...declared, stored: declared.name, slice: undefined } : declared;
    const loc = located.get(canonicalTensorName(spec.stored));
    if (!loc) {
      throw new ModelLoadError(`tensor is missing from the checkpoint (${files.length > 1 ? 'in no shard' : 'not in the file'})`, {
        file: source,
        field: spec.stored, expected: spec.slice?.storedShape ?? spec.shape,
      });
    }
    const fileName = files[loc.file];
    const { info } = loc;
    const quantized = spec.linear && !spec.slice && config.quantization ? quantizedWeight(spec, loc, fileName) : undefined;
    if (quantized) {
      tensors.set(spec.name, { file: loc.file, fileName, offset: info.offset, nbytes: info.nbytes, dtype: quantized, shape: spec.shape.slice() });
      addScaleTensors(spec, quantized, located, files, source, tensors);
      continue;
    }
    const dtype = DTYPES[info.dtype];
    if (!dtype) {
      throw new ModelLoadError(`unsupported dtype ${info.dtype} (node-mamba reads F32, F16 and BF16 weights${spec.linear ? ', and I8 / U8 (i4) linear weights in checkpoints with a quantization_config' : ''})`, {
        file: fileName, field: loc.storedName,
      });
    }
    const want = spec.slice?.storedShape ?? spec.shape;
    const same = info.shape.length === want.length && info.shape.every((v, k) => v === want[k]);
    if (!same) {
      const why = spec.explain?.(info.shape);
      throw new ModelLoadError(`tensor shape disagrees with config.json${why ? ` (${why})` : ''}`, {
        file: fileName, field: loc.storedName, expected: want, actual: info.shape,
      });
    }
    tensors.set(spec.name, { file: loc.file, fileName, dtype, ...(spec.slice ? rowRange(info, spec.slice.rows, spec.shape) : { offset: info.offset, nbytes: info.nbytes, shape: info.shape.slice() }) });
  }
  if (config.quantization?.ssmActivations === 'int8') addSsmScaleTensors(config, located, files, source, tensors);
  return { dir: root, config, configFile, files, tensors };
}

/**
 * Rows [first, first + count) of a stored tensor seen as 2-D [product of all
 * dims but the last, last dim]: their own offset and byte size, and the
 * canonical 2-D shape [count, last dim].
 */
function rowRange(info: Located['info'], [first, count]: [number, number], shape: number[]): { offset: number; nbytes: number; shape: number[] } {
  const rows = info.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const rowBytes = info.nbytes / rows;
  return { offset: info.offset + first * rowBytes, nbytes: count * rowBytes, shape: shape.slice() };
}

/**
 * A linear weight of a quantized checkpoint stored as I8 [rows, cols] (i8) or
 * as U8 [rows, ceil(cols / 64) · 32] (i4, packed nibbles): its format, or
 * undefined for a float weight. Any other integer layout is an error.
 */
function quantizedWeight(spec: TensorSpec, loc: Located, fileName: string): 'i8' | 'i4' | undefined {
  const { info } = loc;
  const [rows, cols] = spec.shape;
  const stored = (shape: number[]) => info.shape.length === 2 && info.shape[0] === shape[0] && info.shape[1] === shape[1];
  if (info.dtype === 'I8') {
    if (!stored([rows, cols])) {
      throw new ModelLoadError('i8 weight shape disagrees with config.json', { file: fileName, field: loc.storedName, expected: spec.shape, actual: info.shape });
    }
    return 'i8';
  }
  if (info.dtype === 'U8') {
    const packed = [rows, i4RowBytes(cols)];
    if (!stored(packed)) {
      throw new ModelLoadError(`i4 weight (packed nibbles) must have shape [${packed.join(', ')}] for a [${spec.shape.join(', ')}] matrix`, {
        file: fileName, field: loc.storedName, expected: packed, actual: info.shape,
      });
    }
    return 'i4';
  }
  return undefined;
}

/**
 * The scale tensors of a quantized linear weight "<base>.weight": "<base>.weight_scale"
 * (F32, [rows] for i8, [rows, ceil(cols / 128)] for i4; required) and
 * "<base>.input_scale" (F32, [] or [1]; required for i8, absent for float inputs;
 * for the embedding, a lookup, only as the input scale of a head tied to it).
 */
function addScaleTensors(spec: TensorSpec, dtype: 'i8' | 'i4', located: Map<string, Located>, files: string[], source: string,
  tensors: Map<string, CheckpointTensor>): void {
  const base = spec.name.replace(/\.weight$/, '');
  addScaleTensor(`${base}.weight_scale`, [quantScaleShape(dtype, spec.shape[0], spec.shape[1])], true, located, files, source, tensors, `of the ${dtype} weight ${spec.name}`);
  // (a lookup's input scale is its tied head's, when the head is the quantized embedding)
  addScaleTensor(`${base}.input_scale`, [[], [1]], dtype === 'i8' && !spec.lookup, located, files, source, tensors, `of the ${dtype} weight ${spec.name}`);
}

/**
 * The static activation scales of int8 SSM paths (quantization_config
 * ssm_activations "int8", lib/quant/config.ts): per layer
 * Mamba layer "mixer.conv1d.input_scale" ([] or [conv_dim]), and Mamba-2
 * "mixer.conv1d.output_scale" ([] or [conv_dim]) or Mamba-1 "mixer.B_scale"
 * and "mixer.C_scale" ([] or [d_state]); all F32.
 */
function addSsmScaleTensors(config: MambaConfig, located: Map<string, Located>, files: string[], source: string,
  tensors: Map<string, CheckpointTensor>): void {
  const convDim = config.arch === 'mamba2' ? config.dInner + 2 * config.ngroups * config.dState : config.dInner;
  for (let i = 0; i < config.nLayer; i++) {
    if (config.layers[i].mixer === 'attention') continue;
    const mx = `backbone.layers.${i}.mixer.`;
    const names: Array<[string, number]> = config.arch === 'mamba2'
      ? [['conv1d.input_scale', convDim], ['conv1d.output_scale', convDim]]
      : [['conv1d.input_scale', convDim], ['B_scale', config.dState], ['C_scale', config.dState]];
    for (const [n, len] of names) addScaleTensor(mx + n, [[], [1], [len]], true, located, files, source, tensors, 'of the int8 SSM path');
  }
}

function addScaleTensor(name: string, shapes: number[][], required: boolean, located: Map<string, Located>, files: string[], source: string,
  tensors: Map<string, CheckpointTensor>, what: string): void {
  const loc = located.get(name);
  if (!loc) {
    if (!required) return;
    throw new ModelLoadError(`scale tensor ${what} is missing`, { file: source, field: name, expected: shapes[0] });
  }
  const fileName = files[loc.file];
  if (loc.info.dtype !== 'F32') {
    throw new ModelLoadError(`scale tensors must be F32, got ${loc.info.dtype}`, { file: fileName, field: loc.storedName });
  }
  const ok = shapes.some((s) => s.length === loc.info.shape.length && s.every((v, k) => v === loc.info.shape[k]));
  if (!ok) {
    throw new ModelLoadError('scale tensor has the wrong shape', { file: fileName, field: loc.storedName, expected: shapes[shapes.length - 1], actual: loc.info.shape });
  }
  tensors.set(name, { file: loc.file, fileName, offset: loc.info.offset, nbytes: loc.info.nbytes, dtype: 'f32', shape: loc.info.shape.slice() });
}

interface TensorIndex {
  files: string[];
  located: Map<string, Located>;
  /** The file to name when a tensor is missing: the single file, or the index. */
  source: string;
}

/** Finds the safetensors file(s) and maps canonical names to their locations. */
function locateTensors(root: string): TensorIndex {
  const single = path.join(root, 'model.safetensors');
  const indexFile = path.join(root, 'model.safetensors.index.json');
  if (isFile(single)) return fromSingle(single);
  if (isFile(indexFile)) return fromIndex(root, indexFile);

  let entries: string[] = [];
  try {
    entries = fs.readdirSync(root);
  } catch {
    // reported below as a missing model.safetensors
  }
  const others = entries.filter((e) => e.endsWith('.safetensors') && isFile(path.join(root, e)));
  if (others.length === 1) return fromSingle(path.join(root, others[0]));
  const bins = entries.filter((e) => /^pytorch_model.*\.bin$|\.pt$|\.pth$|\.ckpt$/.test(e));
  if (bins.length > 0) {
    throw new ModelLoadError(
      `only PyTorch pickle weights found (${bins.join(', ')}); node-mamba reads safetensors only: convert them to safetensors ` +
        '(for example transformers `model.save_pretrained(dir, safe_serialization=True)`, or safetensors.torch.save_file(state_dict))',
      { file: path.join(root, bins[0]) },
    );
  }
  throw new ModelLoadError(
    others.length > 1
      ? `no model.safetensors or model.safetensors.index.json, and several other .safetensors files (${others.join(', ')})`
      : 'no model.safetensors or model.safetensors.index.json in the checkpoint directory',
    { file: single },
  );
}

function addTensors(st: SafetensorsFile, fileIndex: number, located: Map<string, Located>, only?: (name: string) => boolean): void {
  for (const [storedName, info] of st.tensors) {
    if (only && !only(storedName)) continue;
    const name = canonicalTensorName(storedName);
    const prev = located.get(name);
    if (prev) {
      throw new ModelLoadError(`tensor is stored twice (also as ${prev.storedName})`, { file: st.file, field: storedName });
    }
    located.set(name, { file: fileIndex, storedName, info });
  }
}

function fromSingle(file: string): TensorIndex {
  const located = new Map<string, Located>();
  addTensors(readSafetensorsHeader(file), 0, located);
  return { files: [file], located, source: file };
}

function fromIndex(root: string, indexFile: string): TensorIndex {
  const index = readJson(indexFile, 'model.safetensors.index.json');
  if (typeof index !== 'object' || index === null || Array.isArray(index)) {
    throw new ModelLoadError('index is not a JSON object', { file: indexFile });
  }
  const weightMap = (index as Record<string, unknown>).weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new ModelLoadError('index has no weight_map object', { file: indexFile, field: 'weight_map' });
  }
  // shard file -> tensor names mapped to it
  const byShard = new Map<string, Set<string>>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
      throw new ModelLoadError(`weight_map entry is not a shard file name inside the directory: ${JSON.stringify(shard)}`, {
        file: indexFile, field: `weight_map.${name}`,
      });
    }
    let set = byShard.get(shard);
    if (!set) byShard.set(shard, (set = new Set()));
    set.add(name);
  }
  if (byShard.size === 0) throw new ModelLoadError('weight_map is empty', { file: indexFile, field: 'weight_map' });

  const files: string[] = [];
  const located = new Map<string, Located>();
  for (const [shard, names] of byShard) {
    const file = path.join(root, shard);
    if (!isFile(file)) {
      throw new ModelLoadError(`shard listed in model.safetensors.index.json is missing (needed for ${names.values().next().value} and ${names.size - 1} more)`, {
        file, field: names.values().next().value,
      });
    }
    const st = readSafetensorsHeader(file);
    for (const n of names) {
      if (!st.tensors.has(n)) {
        throw new ModelLoadError('tensor mapped to this shard by model.safetensors.index.json is not in it', { file, field: n });
      }
    }
    files.push(file);
    addTensors(st, files.length - 1, located, (n) => names.has(n));
  }
  return { files, located, source: indexFile };
}
