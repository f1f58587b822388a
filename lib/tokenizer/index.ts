// Tokenizers: the interface, the Hugging Face tokenizer.json implementation and
// the default GPT-NeoX-20B file, and incremental detokenization for streaming.
export { type Tokenizer, type DecodeOptions, HfTokenizer, loadTokenizer, DEFAULT_TOKENIZER_FILE } from './tokenizer';
export { StreamingDetokenizer, type StreamingDetokenizerOptions } from './streaming';
