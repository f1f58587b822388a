// Helpers for the GGUF tests: a tiny byte-level BPE tokenizer.json (so small
// random checkpoints can carry their own tokenizer), and a raw GGUF builder
// for malformed-file tests (every field under the test's control).
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

/** Raw GGUF bytes, little-endian, written exactly as told. */
export class RawGguf {
  private parts: Buffer[] = [];

  u8(v: number): this { const b = Buffer.alloc(1); b.writeUInt8(v); this.parts.push(b); return this; }
  u32(v: number): this { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); this.parts.push(b); return this; }
  i32(v: number): this { const b = Buffer.alloc(4); b.writeInt32LE(v); this.parts.push(b); return this; }
  f32(v: number): this { const b = Buffer.alloc(4); b.writeFloatLE(v); this.parts.push(b); return this; }
  u64(v: number | bigint): this { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.parts.push(b); return this; }
  str(s: string): this { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.parts.push(b); return this; }
  raw(b: Uint8Array): this { this.parts.push(Buffer.from(b)); return this; }
  pad(align: number): this {
    const n = this.length;
    this.parts.push(Buffer.alloc((align - (n % align)) % align));
    return this;
  }
  get length(): number { return this.parts.reduce((a, b) => a + b.length, 0); }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}
