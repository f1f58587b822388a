// Checking token ids that come from users before they reach native code.

/** Token ids as an Int32Array; RangeError naming `what` for anything outside [0, vocabSize). */
export function toTokenArray(tokens: ArrayLike<number>, vocabSize: number, what = 'tokens'): Int32Array {
  if (tokens === null || typeof tokens !== 'object' || typeof (tokens as ArrayLike<number>).length !== 'number') {
    throw new TypeError(`node-mamba: '${what}' must be an array of token ids or an Int32Array`);
  }
  const out = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const id = tokens[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`node-mamba: '${what}[${i}]' is ${id}, outside the vocabulary [0, ${vocabSize})`);
    }
    out[i] = id;
  }
  return out;
}
