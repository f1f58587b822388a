// The tokenizer stored in a GGUF file's tokenizer.ggml.* keys, as an
// HfTokenizer: a Hugging Face tokenizer.json is built in memory.
//
// Supported: tokenizer.ggml.model 'gpt2' (byte-level BPE: tokens in their
// byte-level spelling, merges "a b") with a pre-tokenizer that splits as GPT-2
// does (tokenizer.ggml.pre absent, 'default', 'gpt-2', 'olmo' (GPT-NeoX-20B's,
// which Mamba uses), 'mpt', 'phi-2', 'roberta-bpe'). Token types (llama.cpp's):
// 1 normal, 3 control (special added tokens), 4 user-defined (other added
// tokens), 5 unused (the [PAD{i}] rows of a padded vocabulary, left out here,
// as they are not in the original tokenizer either). Anything else is a
// ModelLoadError naming the key: pass { tokenizer } to loadModel instead.
// No normalizer is applied, as llama.cpp applies none (GPT-NeoX-20B's
// tokenizer.json has NFC: text that is not NFC-normalised may split differently
// from the shipped tokenizer, exactly as it does in llama.cpp).
import { ModelLoadError } from '../errors';
import { GgufValueType, type GgufFile } from '../loaders/gguf';
import { GgufMeta } from '../loaders/gguf_model';
import { HfTokenizer } from './tokenizer';

export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Pre-tokenizer names of llama.cpp that split text with GPT-2's regex. */
export const GPT2_SPLIT_PRE = ['default', 'gpt-2', 'olmo', 'mpt', 'phi-2', 'roberta-bpe'];

/** True when the file carries a tokenizer (tokenizer.ggml.model). */
export function ggufHasTokenizer(g: GgufFile): boolean {
  return g.metadata.has('tokenizer.ggml.model');
}

/** The tokenizer.json (and tokenizer_config.json) equivalent of the file's tokenizer.ggml.* keys. */
export function ggufTokenizerJson(g: GgufFile): { tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const m: GgufMeta = new GgufMeta(g);
  const model = m.string('tokenizer.ggml.model', true);
  if (model !== 'gpt2') {
    m.fail(`tokenizer model ${JSON.stringify(model)} is not supported (node-mamba reads 'gpt2' byte-level BPE); pass { tokenizer } to loadModel`, 'tokenizer.ggml.model');
  }
  const pre = m.string('tokenizer.ggml.pre') ?? 'default';
  if (!GPT2_SPLIT_PRE.includes(pre)) {
    m.fail(`pre-tokenizer ${JSON.stringify(pre)} is not supported (node-mamba splits as GPT-2: ${GPT2_SPLIT_PRE.join(', ')}); pass { tokenizer } to loadModel`, 'tokenizer.ggml.pre');
  }
  const tokens = m.array('tokenizer.ggml.tokens', GgufValueType.STRING);
  if (!tokens || tokens.length === 0) m.fail('a gpt2 tokenizer needs a non-empty token list', 'tokenizer.ggml.tokens');
  const types = m.array('tokenizer.ggml.token_type', GgufValueType.INT32);
  if (types && types.length !== tokens.length) {
    m.fail(`has ${types.length} entries, tokenizer.ggml.tokens has ${tokens.length}`, 'tokenizer.ggml.token_type');
  }
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
    const tok = tokens[id] as string;
    const type = types ? (types[id] as number) : TOKEN_TYPE.NORMAL;
    if (type === TOKEN_TYPE.UNUSED && /^\[PAD\d+\]$/.test(tok)) continue;
    if (!Object.prototype.hasOwnProperty.call(vocab, tok)) vocab[tok] = id;
    if (type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.USER_DEFINED) {
      added.push({
        id, content: tok, single_word: false, lstrip: false, rstrip: false,
        normalized: type === TOKEN_TYPE.USER_DEFINED, special: type === TOKEN_TYPE.CONTROL,
      });
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

/** The file's tokenizer as an HfTokenizer (errors name the file and key). */
export function ggufTokenizer(g: GgufFile): HfTokenizer {
  const { tokenizerJson, tokenizerConfig } = ggufTokenizerJson(g);
  try {
    return new HfTokenizer(tokenizerJson, tokenizerConfig, g.file);
  } catch (err) {
    if (err instanceof ModelLoadError && err.file === g.file && err.field === undefined) {
      throw new ModelLoadError(err.reason, { file: g.file, field: 'tokenizer.ggml.tokens', cause: err });
    }
    if (err instanceof ModelLoadError && (err.field === 'eos_token' || err.field === 'bos_token')) {
      throw new ModelLoadError(err.reason, { file: g.file, field: `tokenizer.ggml.${err.field}_id`, cause: err });
    }
    throw err;
  }
}
