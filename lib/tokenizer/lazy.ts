// A tokenizer built on first use. A 50k-token BPE tokenizer costs ~60 MB and
// ~0.15 s to build; services that only pass token ids never pay for it.
import type { Tokenizer } from './tokenizer';

export class LazyTokenizer implements Tokenizer {
  private loaded: Tokenizer | undefined;

  constructor(private readonly load: () => Tokenizer) {}

  /** The underlying tokenizer (built now if it was not yet). */
  get tokenizer(): Tokenizer {
    if (!this.loaded) this.loaded = this.load();
    return this.loaded;
  }

  get isLoaded(): boolean {
    return this.loaded !== undefined;
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  decode(ids: ArrayLike<number>): string {
    return this.tokenizer.decode(ids);
  }

  get vocabSize(): number {
    return this.tokenizer.vocabSize;
  }

  get eosTokenId(): number | undefined {
    return this.tokenizer.eosTokenId;
  }

  get bosTokenId(): number | undefined {
    return this.tokenizer.bosTokenId;
  }
}
