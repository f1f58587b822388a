// The tokenizer stored in a GGUF file's tokenizer.ggml.* keys, as an
// HfTokenizer: a Hugging Face tokenizer.json is built in memory.
//
// Supported tokenizer.ggml.model values:
//
// 'gpt2': byte-level BPE (tokens in their byte-level spelling, merges "a b")
// with a pre-tokenizer that splits as GPT-2 does (tokenizer.ggml.pre absent,
// 'default', 'gpt-2', 'olmo' (GPT-NeoX-20B's, which Mamba uses), 'mpt',
// 'phi-2', 'roberta-bpe'). No normalizer is applied, as llama.cpp applies none
// (GPT-NeoX-20B's tokenizer.json has NFC: text that is not NFC-normalised may
// split differently from the shipped tokenizer, exactly as it does in llama.cpp).
//
// 'llama': SentencePiece BPE, read as llama.cpp's SPM tokenizer reads it
// (Llama, Mistral, Jamba, ...): pieces spell spaces as '▁',
// tokenizer.ggml.scores ranks them, and the 256 byte tokens <0x00>..<0xFF> spell
// characters that are not pieces (byte fallback). llama.cpp starts from the
// text's characters and repeatedly merges the adjacent pair whose concatenation
// is the piece of highest score (of equal scores, the leftmost pair), then
// writes each remaining character that is not a piece as its UTF-8 bytes. Here
// that is a BPE model with byte_fallback whose merges are every split (a, b) of
// a piece into two pieces, ordered by the piece's score, highest first (equal
// scores: by the piece's id, then the shorter left part). A BPE model applies
// the leftmost of equal-rank pairs first, so ggufTokenizer gives merges of equal
// score one rank (HfTokenizer.setMergeRanks): llama.cpp's leftmost rule, which
// a tokenizer.json cannot express (the JSON alone, as quantize writes it,
// orders them as above; files whose scores are all equal, as llama.cpp's
// converter writes for vocabularies from a tokenizer.json, then differ).
// tokenizer.ggml.add_space_prefix (default true) puts '▁' before the text and
// after each special token (llama.cpp's "space after special") through the
// normalizer, which also turns spaces into '▁'; nothing is pre-split (a piece
// may span several words). A post-processor adds BOS when
// tokenizer.ggml.add_bos_token (default true) and EOS when add_eos_token
// (default false); the decoder turns '▁' into spaces, fuses byte tokens into
// UTF-8 and drops the prefix space, so decode(encode(s)) is s for text without
// special tokens (skipping BOS). As in llama.cpp: BOS and EOS default to ids 1
// and 2 when their keys are absent, tokenizer.ggml.pre and merges are
// ignored, scores default to 0, an empty token is named [EMPTY_{id}], and a
// token listed twice is an error. Exact as long as every character of a piece
// is a piece itself (true of SentencePiece vocabularies): llama.cpp can merge a
// character that is not a piece, a BPE model cannot.
//
// Token types (llama.cpp's): 1 normal, 2 unknown, 3 control, 4 user-defined,
// 5 unused, 6 byte. Control tokens are special added tokens, user-defined ones
// other added tokens (matched in the raw text, before the normalizer, for
// 'llama', as llama.cpp does); for 'llama' the unknown token is special too
// (llama.cpp matches it with the control tokens). Unused tokens named [PAD{i}]
// (the rows of a padded vocabulary) are left out, as they are not in the
// original tokenizer either. Anything else is a ModelLoadError naming the key:
// pass { tokenizer } to loadModel instead.
import { ModelLoadError } from '../errors';
import { GgufValueType, type GgufFile } from '../loaders/gguf';
import { GgufMeta } from '../loaders/gguf_meta';
import { HfTokenizer } from './tokenizer';

export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Pre-tokenizer names of llama.cpp that split text with GPT-2's regex. */
export const GPT2_SPLIT_PRE = ['default', 'gpt-2', 'olmo', 'mpt', 'phi-2', 'roberta-bpe'];

/** SentencePiece's meta symbol for a space (U+2581). */
export const SPM_SPACE = '\u2581';

/** The tokenizer.json of a file's tokenizer.ggml.* keys. */
export interface GgufTokenizerJson {
  tokenizerJson: Record<string, unknown>;
  /** bos_token / eos_token, as tokenizer_config.json has them. */
  tokenizerConfig: Record<string, unknown>;
  /**
   * 'llama' only, when some merges share a score: the rank of each merge of
   * tokenizerJson.model.merges (equal for equal scores), for HfTokenizer.setMergeRanks.
   */
  mergeRanks?: Int32Array;
}

/** True when the file carries a tokenizer (tokenizer.ggml.model). */
export function ggufHasTokenizer(g: GgufFile): boolean {
  return g.metadata.has('tokenizer.ggml.model');
}

/** The tokenizer.json (and tokenizer_config.json) equivalent of the file's tokenizer.ggml.* keys. */
export function ggufTokenizerJson(g: GgufFile): GgufTokenizerJson {
  const m: GgufMeta = new GgufMeta(g);
  const model = m.string('tokenizer.ggml.model', true);
  if (model === 'gpt2') return gpt2TokenizerJson(m);
  if (model === 'llama') return spmTokenizerJson(m);
  return m.fail(
    `tokenizer model ${JSON.stringify(model)} is not supported (node-mamba reads 'gpt2' byte-level BPE and 'llama' SentencePiece BPE); pass { tokenizer } to loadModel`,
    'tokenizer.ggml.model',
  );
}

/** tokenizer.ggml.tokens and tokenizer.ggml.token_type (undefined when absent: all normal). */
function tokensAndTypes(m: GgufMeta, model: string): { tokens: string[]; types: number[] | undefined } {
  const tokens = m.array('tokenizer.ggml.tokens', GgufValueType.STRING) as string[] | undefined;
  if (!tokens || tokens.length === 0) m.fail(`a ${model} tokenizer needs a non-empty token list`, 'tokenizer.ggml.tokens');
  const types = m.array('tokenizer.ggml.token_type', GgufValueType.INT32) as number[] | undefined;
  if (types && types.length !== tokens.length) {
    m.fail(`has ${types.length} entries, tokenizer.ggml.tokens has ${tokens.length}`, 'tokenizer.ggml.token_type');
  }
  return { tokens, types };
}

function isPadding(tok: string, type: number): boolean {
  return type === TOKEN_TYPE.UNUSED && /^\[PAD\d+\]$/.test(tok);
}

function addedToken(id: number, content: string, special: boolean, normalized: boolean): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized, special };
}

function gpt2TokenizerJson(m: GgufMeta): GgufTokenizerJson {
  const pre = m.string('tokenizer.ggml.pre') ?? 'default';
  if (!GPT2_SPLIT_PRE.includes(pre)) {
    m.fail(`pre-tokenizer ${JSON.stringify(pre)} is not supported (node-mamba splits as GPT-2: ${GPT2_SPLIT_PRE.join(', ')}); pass { tokenizer } to loadModel`, 'tokenizer.ggml.pre');
  }
  const { tokens, types } = tokensAndTypes(m, 'gpt2');
  const merges = m.array('tokenizer.ggml.merges', GgufValueType.STRING);
  if (!merges) m.fail('a gpt2 tokenizer needs merges', 'tokenizer.ggml.merges');
  for (let i = 0; i < merges.length; i++) {
    const s = merges[i] as string;
    const sp = s.indexOf(' ', 1);
    if (sp <= 0 || sp === s.length - 1) m.fail(`merge ${i} ${JSON.stringify(s)} is not two tokens separated by a space`, 'tokenizer.ggml.merges');
  }

  const vocab: Record<string, number> = {};
  const added: Array<Record<string, unknown>> = [];
  for (let id = 0; id < tokens.length; id++) {
    const tok = tokens[id];
    const type = types ? types[id] : TOKEN_TYPE.NORMAL;
    if (isPadding(tok, type)) continue;
    if (!Object.prototype.hasOwnProperty.call(vocab, tok)) vocab[tok] = id;
    if (type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.USER_DEFINED) {
      added.push(addedToken(id, tok, type === TOKEN_TYPE.CONTROL, type === TOKEN_TYPE.USER_DEFINED));
    }
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, use_regex: false },
    decoder: { ...byteLevel, use_regex: false },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, vocab, merges,
    },
  };
  const tokenizerConfig: Record<string, unknown> = {};
  const special = (key: string, field: string) => {
    const id = m.int(key);
    if (id === undefined) return;
    if (id >= tokens.length) m.fail(`token id ${id} is outside the ${tokens.length}-token vocabulary`, key);
    tokenizerConfig[field] = tokens[id];
  };
  special('tokenizer.ggml.bos_token_id', 'bos_token');
  special('tokenizer.ggml.eos_token_id', 'eos_token');
  return { tokenizerJson, tokenizerConfig };
}

/** The byte token of byte `b`, as llama.cpp and byte_fallback spell it: <0x0A>. */
export function spmByteToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** tokenizer.ggml.scores (float32 or int32 values, as llama.cpp accepts), or all 0 when absent. */
function spmScores(m: GgufMeta, n: number): number[] {
  const key = 'tokenizer.ggml.scores';
  const e = m.g.metadata.get(key);
  if (!e) return new Array<number>(n).fill(0);
  const isInt = typeof e.value === 'object' && e.value !== null && e.value.itemType === GgufValueType.INT32;
  const scores = m.array(key, isInt ? GgufValueType.INT32 : GgufValueType.FLOAT32) as number[];
  if (scores.length !== n) m.fail(`has ${scores.length} entries, tokenizer.ggml.tokens has ${n}`, key);
  for (let i = 0; i < n; i++) if (Number.isNaN(scores[i])) m.fail(`score ${i} is NaN`, key);
  return scores;
}

interface SpmMerge {
  left: string;
  right: string;
  /** The merged piece's score and id. */
  score: number;
  id: number;
}

/**
 * Every split of a piece into two pieces, as [left, right], highest score of
 * the merged piece first (equal scores: lower merged id, then shorter left
 * part), with the rank of each (the position of the first merge of its score).
 */
function spmMerges(vocab: Map<string, number>, scores: ArrayLike<number>): { merges: Array<[string, string]>; ranks: Int32Array; ties: boolean } {
  const list: SpmMerge[] = [];
  for (const [piece, id] of vocab) {
    for (let i = 1; i < piece.length; i++) {
      const c = piece.charCodeAt(i);
      if (c >= 0xdc00 && c <= 0xdfff) {
        const p = piece.charCodeAt(i - 1);
        if (p >= 0xd800 && p <= 0xdbff) continue; // not between the halves of a surrogate pair
      }
      const left = piece.slice(0, i);
      const right = piece.slice(i);
      if (vocab.has(left) && vocab.has(right)) list.push({ left, right, score: scores[id], id });
    }
  }
  list.sort((a, b) => (a.score > b.score ? -1 : a.score < b.score ? 1 : a.id - b.id || a.left.length - b.left.length));
  const ranks = new Int32Array(list.length);
  let ties = false;
  for (let i = 0; i < list.length; i++) {
    if (i > 0 && list[i].score === list[i - 1].score) {
      ranks[i] = ranks[i - 1];
      ties = true;
    } else {
      ranks[i] = i;
    }
  }
  return { merges: list.map((x) => [x.left, x.right]), ranks, ties };
}

function spmTokenizerJson(m: GgufMeta): GgufTokenizerJson {
  const { tokens, types } = tokensAndTypes(m, 'llama');
  const n = tokens.length;
  const scores = spmScores(m, n);

  const vocab = new Map<string, number>();
  const added: Array<Record<string, unknown>> = [];
  for (let id = 0; id < n; id++) {
    const type = types ? types[id] : TOKEN_TYPE.NORMAL;
    if (isPadding(tokens[id], type)) continue;
    const tok = tokens[id] === '' ? `[EMPTY_${id}]` : tokens[id];
    const prev = vocab.get(tok);
    if (prev !== undefined) m.fail(`token ${JSON.stringify(tok)} is listed twice (ids ${prev} and ${id}), which llama.cpp refuses too`, 'tokenizer.ggml.tokens');
    vocab.set(tok, id);
    if (type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.UNKNOWN || type === TOKEN_TYPE.USER_DEFINED) {
      added.push(addedToken(id, tok, type !== TOKEN_TYPE.USER_DEFINED, false));
    }
  }
  for (let b = 0; b < 256; b++) {
    const name = spmByteToken(b);
    if (!vocab.has(name)) {
      m.fail(`a 'llama' (SentencePiece) vocabulary needs the 256 byte tokens <0x00>..<0xFF> for byte fallback; ${name} is missing`, 'tokenizer.ggml.tokens');
    }
  }

  // llama.cpp's defaults for SPM vocabularies.
  const addSpacePrefix = m.bool('tokenizer.ggml.add_space_prefix') ?? true;
  const addBos = m.bool('tokenizer.ggml.add_bos_token') ?? true;
  const addEos = m.bool('tokenizer.ggml.add_eos_token') ?? false;
  const special = (key: string, dflt: number): string | undefined => {
    const given = m.int(key);
    if (given !== undefined && given >= n) m.fail(`token id ${given} is outside the ${n}-token vocabulary`, key);
    const id = given ?? dflt;
    const tok = id < n ? (tokens[id] === '' ? `[EMPTY_${id}]` : tokens[id]) : undefined;
    if (tok !== undefined && vocab.get(tok) === id) return tok;
    if (given !== undefined) m.fail(`token id ${id} (${JSON.stringify(tok)}) is an unused padding token`, key);
    return undefined; // the default id is no token here
  };
  const bos = special('tokenizer.ggml.bos_token_id', 1);
  const eos = special('tokenizer.ggml.eos_token_id', 2);
  if (addBos && bos === undefined) m.fail('add_bos_token is true but the vocabulary has no BOS token', 'tokenizer.ggml.bos_token_id');
  if (addEos && eos === undefined) m.fail('add_eos_token is true but the vocabulary has no EOS token', 'tokenizer.ggml.eos_token_id');

  const { merges, ranks, ties } = spmMerges(vocab, scores);

  const toSpace = { type: 'Replace', pattern: { String: ' ' }, content: SPM_SPACE };
  const normalizer = addSpacePrefix ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPM_SPACE }, toSpace] } : toSpace;
  const decoder = {
    type: 'Sequence',
    decoders: [
      { type: 'Replace', pattern: { String: SPM_SPACE }, content: ' ' },
      { type: 'ByteFallback' },
      { type: 'Fuse' },
      ...(addSpacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
    ],
  };
  let postProcessor: Record<string, unknown> | null = null;
  if (addBos || addEos) {
    const item = (tok: string) => ({ SpecialToken: { id: tok, type_id: 0 } });
    const seq = (id: 'A' | 'B', typeId: number) => [
      ...(addBos ? [item(bos!)] : []), { Sequence: { id, type_id: typeId } }, ...(addEos ? [item(eos!)] : []),
    ];
    const specials: Record<string, unknown> = {};
    for (const tok of [addBos ? bos! : undefined, addEos ? eos! : undefined]) {
      if (tok !== undefined) specials[tok] = { id: tok, ids: [vocab.get(tok)], tokens: [tok] };
    }
    postProcessor = { type: 'TemplateProcessing', single: seq('A', 0), pair: [...seq('A', 0), ...seq('B', 1)], special_tokens: specials };
  }

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer,
    pre_tokenizer: null,
    post_processor: postProcessor,
    decoder,
    model: {
      // unk_token stays null: with all 256 byte tokens no text needs it, and ids
      // the tokenizer does not know then decode to nothing (not to <unk>).
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: Object.fromEntries(vocab), merges,
    },
  };
  const tokenizerConfig: Record<string, unknown> = {};
  if (bos !== undefined) tokenizerConfig.bos_token = bos;
  if (eos !== undefined) tokenizerConfig.eos_token = eos;
  return { tokenizerJson, tokenizerConfig, ...(ties ? { mergeRanks: ranks } : {}) };
}

/** The file's tokenizer as an HfTokenizer (errors name the file and key). */
export function ggufTokenizer(g: GgufFile): HfTokenizer {
  const { tokenizerJson, tokenizerConfig, mergeRanks } = ggufTokenizerJson(g);
  let tok: HfTokenizer;
  try {
    tok = new HfTokenizer(tokenizerJson, tokenizerConfig, g.file);
  } catch (err) {
    if (err instanceof ModelLoadError && err.file === g.file && err.field === undefined) {
      throw new ModelLoadError(err.reason, { file: g.file, field: 'tokenizer.ggml.tokens', cause: err });
    }
    if (err instanceof ModelLoadError && (err.field === 'eos_token' || err.field === 'bos_token')) {
      throw new ModelLoadError(err.reason, { file: g.file, field: `tokenizer.ggml.${err.field}_id`, cause: err });
    }
    throw err;
  }
  if (mergeRanks) tok.setMergeRanks(mergeRanks);
  return tok;
}
