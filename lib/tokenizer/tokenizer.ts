// The tokenizer interface the engine uses, implemented over
// @huggingface/tokenizers (pure JavaScript) from a Hugging Face
// `tokenizer.json` (+ `tokenizer_config.json` when present). With no path, the
// GPT-NeoX-20B tokenizer shipped in assets/ (the one original Mamba checkpoints use).
import * as fs from 'fs';
import * as path from 'path';
import { BPE as HfBpeModel, Tokenizer as HfTokenizerCore } from '@huggingface/tokenizers';
import { ModelLoadError } from '../errors';
import { readTextFile } from '../loaders/text_file';

/** What the engine needs from a tokenizer; any object of this shape can stand in for the built-in one. */
export interface Tokenizer {
  /** Token ids of `text` (with the tokenizer's own special tokens, if its post-processor adds any). */
  encode(text: string): number[];
  /** Text of `ids`. */
  decode(ids: ArrayLike<number>): string;
  /** 1 + the largest id the tokenizer knows (the model's embedding may have more rows: padding). */
  readonly vocabSize: number;
  readonly eosTokenId?: number;
  readonly bosTokenId?: number;
}

export interface DecodeOptions {
  /** Leave out special tokens such as `<|endoftext|>` (default false). */
  skipSpecialTokens?: boolean;
}

/** The package root: lib/tokenizer/x.ts and dist/tokenizer/x.js both sit two levels below it. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

/** Path of the shipped GPT-NeoX-20B tokenizer.json. */
export const DEFAULT_TOKENIZER_FILE = path.join(PACKAGE_ROOT, 'assets', 'tokenizers', 'gpt-neox-20b', 'tokenizer.json');

type Json = Record<string, unknown>;

/** A special token in tokenizer_config.json: a string or an AddedToken object `{ content }`. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

/**
 * A Hugging Face tokenizer.json behind the `Tokenizer` interface.
 *
 * decode() is lossless: it never applies `clean_up_tokenization_spaces` (which
 * would turn "a ." into "a." and make streamed text differ from decoded text),
 * whatever tokenizer_config.json says. Ids the tokenizer does not know (rows of
 * a padded embedding) decode to nothing.
 */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly eosTokenId?: number;
  readonly bosTokenId?: number;
  /** Where the tokenizer came from (for messages). */
  readonly source: string;
  private readonly core: HfTokenizerCore;

  /**
   * @param tokenizerJson the parsed tokenizer.json
   * @param tokenizerConfig the parsed tokenizer_config.json, or {} (eos/bos tokens come from it)
   * @param source the file named in errors
   */
  constructor(tokenizerJson: unknown, tokenizerConfig: unknown = {}, source = '<tokenizer.json>') {
    this.source = source;
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || Array.isArray(tokenizerJson)) {
      throw new ModelLoadError('tokenizer.json is not a JSON object', { file: source });
    }
    const json = tokenizerJson as Json;
    if (!json.model || typeof json.model !== 'object') {
      throw new ModelLoadError('tokenizer.json has no "model" object', { file: source, field: 'model' });
    }
    const config = (tokenizerConfig && typeof tokenizerConfig === 'object' ? tokenizerConfig : {}) as Json;
    try {
      this.core = new HfTokenizerCore(json, config);
    } catch (err) {
      throw new ModelLoadError(`tokenizer.json could not be used: ${(err as Error).message}`, { file: source, cause: err });
    }
    let maxId = -1;
    for (const id of this.core.get_vocab(true).values()) if (id > maxId) maxId = id;
    if (maxId < 0) throw new ModelLoadError('tokenizer.json has an empty vocabulary', { file: source, field: 'model.vocab' });
    this.vocabSize = maxId + 1;

    const special = (field: 'eos_token' | 'bos_token'): number | undefined => {
      if (config[field] === undefined || config[field] === null) return undefined;
      const content = tokenContent(config[field]);
      const id = content === undefined ? undefined : this.core.token_to_id(content);
      if (id === undefined) {
        throw new ModelLoadError(`${field} ${JSON.stringify(content ?? config[field])} is not a token of the vocabulary`, { file: source, field });
      }
      return id;
    };
    // GPT-NeoX-style vocabularies use <|endoftext|> as both bos and eos (and ship no config).
    const endOfText = this.core.token_to_id('<|endoftext|>');
    this.eosTokenId = special('eos_token') ?? endOfText;
    this.bosTokenId = special('bos_token') ?? endOfText;
  }

  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode: text must be a string, got ${typeof text}`);
    return this.core.encode(text).ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const list = Array.from(ids);
    for (let i = 0; i < list.length; i++) {
      const id = list[i];
      if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`decode: ids[${i}] must be a non-negative integer, got ${id}`);
    }
    // Ids that are no token (rows of a padded embedding, left-out padding tokens) decode to nothing.
    const known = list.filter((id) => this.core.id_to_token(id) !== undefined);
    if (known.length === 0) return '';
    return this.core.decode(known, {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  /** The id of a token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.core.token_to_id(token);
  }

  /**
   * Gives merge i of the BPE model (model.merges[i] of the tokenizer.json) the
   * rank ranks[i] in place of i, so that merges can share a rank: of pairs of
   * equal rank, @huggingface/tokenizers' BPE merges the leftmost first (a tie
   * that a tokenizer.json cannot express; llama.cpp's SentencePiece tokenizer
   * merges pieces of equal score that way, see gguf_tokenizer.ts).
   */
  setMergeRanks(ranks: ArrayLike<number>): void {
    const model = this.core.model;
    if (!(model instanceof HfBpeModel)) throw new Error(`setMergeRanks: ${this.source} is not a BPE tokenizer`);
    if (ranks.length !== model.merges.length) {
      throw new RangeError(`setMergeRanks: ${ranks.length} ranks for ${model.merges.length} merges`);
    }
    for (let i = 0; i < ranks.length; i++) {
      const key = JSON.stringify(model.merges[i]);
      if (!model.bpe_ranks.has(key)) throw new Error(`setMergeRanks: merge ${i} ${key} is not in the BPE model's ranks`);
      model.bpe_ranks.set(key, ranks[i]);
    }
    model.clear_cache();
  }
}

function readJson(file: string, what: string): unknown {
  const text = readTextFile(file, what);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelLoadError(`${what} is not valid JSON: ${(err as Error).message}`, { file, cause: err });
  }
}

let defaultTokenizer: HfTokenizer | undefined;

/**
 * Loads a tokenizer synchronously.
 * - a directory: its `tokenizer.json` (+ `tokenizer_config.json` if present);
 * - a file: that tokenizer.json (+ `tokenizer_config.json` beside it if present);
 * - nothing: the shipped GPT-NeoX-20B tokenizer (loaded once, then shared).
 * Throws ModelLoadError naming the file (and field) when a file is missing or malformed.
 */
export function loadTokenizer(dirOrFile?: string): HfTokenizer {
  if (dirOrFile === undefined) {
    defaultTokenizer ??= loadTokenizer(DEFAULT_TOKENIZER_FILE);
    return defaultTokenizer;
  }
  if (typeof dirOrFile !== 'string' || dirOrFile === '') {
    throw new TypeError(`loadTokenizer: path must be a non-empty string, got ${String(dirOrFile)}`);
  }
  const target = path.resolve(dirOrFile);
  let isDir = false;
  try {
    isDir = fs.statSync(target).isDirectory();
  } catch (err) {
    throw new ModelLoadError('tokenizer path not found', { file: target, cause: err });
  }
  const file = isDir ? path.join(target, 'tokenizer.json') : target;
  const json = readJson(file, 'tokenizer.json');
  const configFile = path.join(path.dirname(file), 'tokenizer_config.json');
  const config = fs.existsSync(configFile) ? readJson(configFile, 'tokenizer_config.json') : {};
  if (!config || typeof config !== 'object' || Array.isArray(config)) {
    throw new ModelLoadError('tokenizer_config.json is not a JSON object', { file: configFile });
  }
  try {
    return new HfTokenizer(json, config, file);
  } catch (err) {
    // Errors about eos_token / bos_token come from tokenizer_config.json.
    if (err instanceof ModelLoadError && (err.field === 'eos_token' || err.field === 'bos_token')) {
      throw new ModelLoadError(err.reason, { file: configFile, field: err.field });
    }
    throw err;
  }
}
