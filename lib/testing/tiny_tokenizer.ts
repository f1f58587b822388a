// A tiny byte-level BPE tokenizer.json for small random checkpoints (the
// tests, scripts/write-gpu-check-models.js): their own vocabulary of 263
// tokens, with merges, so that a GGUF export of them has a tokenizer.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** GPT-2's byte -> printable character map (bytes_to_unicode). */
export function byteLevelAlphabet(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) out[b] = keep.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  return out;
}

/**
 * Writes dir/tokenizer.json: <|endoftext|> (id 0), the 256 byte tokens, a few
 * merges ("Ġ t" -> "Ġt", "h e" -> "he", "Ġt he" -> "Ġthe", ...): 256 + 1 + merges tokens.
 */
export function writeTinyTokenizer(dir: string): { vocabSize: number } {
  const alpha = byteLevelAlphabet();
  const vocab: Record<string, number> = { '<|endoftext|>': 0 };
  alpha.forEach((c, i) => (vocab[c] = i + 1));
  const merges = [['Ġ', 't'], ['h', 'e'], ['Ġt', 'he'], ['Ġ', 'a'], ['i', 'n'], ['Ġ', 's']];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const json = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{ id: 0, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false,
      vocab, merges: merges.map((m) => m.join(' ')),
    },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  return { vocabSize: Object.keys(vocab).length };
}

