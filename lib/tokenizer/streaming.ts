// Incremental detokenization: turns a stream of token ids into text chunks
// whose concatenation is exactly decode(all ids), without ever emitting half of
// a multi-byte character. A byte-level BPE token can end in the middle of a
// UTF-8 sequence (an emoji is often 2-4 tokens), which decodes to U+FFFD until
// the rest arrives; those tokens are held back.
//
// Method (as vLLM's detokenize_incrementally): keep two offsets into the ids,
// `prefix` and `read`. Decode ids[prefix, read) (text already emitted, kept as
// context so that decoders which treat the first token specially, such as
// SentencePiece's leading-space rule, see the same surroundings) and
// ids[prefix, end); the new text is the difference. If it ends in U+FFFD the
// character is incomplete: wait. Otherwise emit it and move both offsets.
import type { Tokenizer } from './tokenizer';

const REPLACEMENT = '\uFFFD';

export interface StreamingDetokenizerOptions {
  /**
   * Ids already in the sequence whose text is not to be emitted (the prompt):
   * the last few serve as decoding context for the first new tokens.
   */
  context?: ArrayLike<number>;
  /** How many trailing context ids to keep (default 4). */
  contextTokens?: number;
}

export class StreamingDetokenizer {
  private readonly tokenizer: Tokenizer;
  private ids: number[];
  private prefixOffset: number;
  private readOffset: number;

  constructor(tokenizer: Tokenizer, options: StreamingDetokenizerOptions = {}) {
    this.tokenizer = tokenizer;
    const keep = options.contextTokens ?? 4;
    if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`contextTokens must be a non-negative integer, got ${keep}`);
    const ctx = options.context ? Array.from(options.context) : [];
    this.ids = keep > 0 ? ctx.slice(Math.max(0, ctx.length - keep)) : [];
    this.prefixOffset = 0;
    this.readOffset = this.ids.length;
  }

  /** Adds one token; returns the text that became final (often '', never a broken character). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (fullText.length > prefixText.length && !fullText.endsWith(REPLACEMENT)) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      // Drop ids that no longer serve as context.
      if (this.prefixOffset > 0) {
        this.ids = this.ids.slice(this.prefixOffset);
        this.readOffset -= this.prefixOffset;
        this.prefixOffset = 0;
      }
      return fullText.slice(prefixText.length);
    }
    return '';
  }

  /** Returns whatever is held back (possibly with U+FFFD if the stream ended mid-character) and starts afresh from here. */
  flush(): string {
    if (this.readOffset === this.ids.length) return '';
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return fullText.slice(prefixText.length);
  }

  /** True when ids are held back waiting for the rest of a character. */
  get pending(): boolean {
    return this.readOffset < this.ids.length;
  }
}
