// A plain reference of llama.cpp's SentencePiece ('llama') tokenizer, for the
// GGUF tokenizer tests, and a writer of GGUF files holding such a vocabulary.
//
// llama.cpp (src/llama-vocab.cpp, llm_tokenizer_spm_session and
// llama_vocab::impl::tokenize): special tokens are cut out of the text first
// (control and unknown tokens when parse_special, user-defined ones always;
// longest token first); each piece of text between them gets a leading space
// when add_space_prefix and it follows the start or a special token, has its
// spaces replaced by '▁', and is split into characters; then, as long as some
// adjacent pair concatenates to a token, the pair whose token has the highest
// score is merged (of equal scores, the leftmost); each final symbol is its
// token, or its UTF-8 bytes as byte tokens <0xXX>. BOS goes first when
// add_bos, EOS last when add_eos. Written here the slow, obvious way: every
// step scans all adjacent pairs.
import { GgufValueType, readGgufHeader, type GgufFile } from '../../lib/loaders/gguf';
import { GgufWriter } from '../../lib/export/gguf_writer';

export const T = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface SpmVocab {
  tokens: string[];
  scores: number[];
  types: number[];
  /** Keys written when set (llama.cpp's defaults otherwise: true, true, false, ids 1 and 2). */
  addSpacePrefix?: boolean;
  addBos?: boolean;
  addEos?: boolean;
  bos?: number;
  eos?: number;
}

export const byteToken = (b: number): string => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/**
 * <unk> (0, unknown), <s> (1, control), </s> (2, control), the 256 byte
 * tokens (3..258), then `pieces` as normal tokens, then `extra` tokens of the
 * given types (score 0).
 */
export function spmVocab(pieces: Array<[string, number]>, extra: Array<[string, number]> = []): SpmVocab {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types: number[] = [T.UNKNOWN, T.CONTROL, T.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(byteToken(b));
    types.push(T.BYTE);
  }
  const scores = tokens.map(() => 0);
  for (const [p, s] of pieces) {
    tokens.push(p);
    scores.push(s);
    types.push(T.NORMAL);
  }
  for (const [p, ty] of extra) {
    tokens.push(p);
    scores.push(0);
    types.push(ty);
  }
  return { tokens, scores, types };
}

/** Writes the vocabulary's tokenizer.ggml.* keys (and whatever `more` adds) into a GGUF without tensors. */
export async function writeSpmGguf(file: string, v: SpmVocab, more?: (w: GgufWriter) => void): Promise<GgufFile> {
  const w = new GgufWriter();
  w.string('general.architecture', 'mamba');
  addSpmKeys(w, v);
  more?.(w);
  await w.write(file);
  return readGgufHeader(file);
}

export function addSpmKeys(w: GgufWriter, v: SpmVocab): void {
  w.string('tokenizer.ggml.model', 'llama');
  w.string('tokenizer.ggml.pre', 'default');
  w.array('tokenizer.ggml.tokens', GgufValueType.STRING, v.tokens);
  w.array('tokenizer.ggml.scores', GgufValueType.FLOAT32, v.scores);
  w.array('tokenizer.ggml.token_type', GgufValueType.INT32, v.types);
  if (v.bos !== undefined) w.u32('tokenizer.ggml.bos_token_id', v.bos);
  if (v.eos !== undefined) w.u32('tokenizer.ggml.eos_token_id', v.eos);
  if (v.addBos !== undefined) w.bool('tokenizer.ggml.add_bos_token', v.addBos);
  if (v.addEos !== undefined) w.bool('tokenizer.ggml.add_eos_token', v.addEos);
  if (v.addSpacePrefix !== undefined) w.bool('tokenizer.ggml.add_space_prefix', v.addSpacePrefix);
}

/** llama.cpp's SPM session on already escaped text: greedy merges by score, then byte fallback. */
export function spmSession(v: SpmVocab, ids: Map<string, number>, text: string): number[] {
  const syms = Array.from(text);
  for (;;) {
    let best = -1;
    let bestScore = 0;
    for (let i = 0; i + 1 < syms.length; i++) {
      const id = ids.get(syms[i] + syms[i + 1]);
      if (id === undefined) continue;
      if (best < 0 || v.scores[id] > bestScore) {
        best = i;
        bestScore = v.scores[id];
      }
    }
    if (best < 0) break;
    syms.splice(best, 2, syms[best] + syms[best + 1]);
  }
  const out: number[] = [];
  for (const s of syms) {
    const id = ids.get(s);
    if (id !== undefined) {
      out.push(id);
      continue;
    }
    for (const b of Buffer.from(s, 'utf8')) out.push(ids.get(byteToken(b))!);
  }
  return out;
}

/** llama.cpp's llama_tokenize(text, add_special, parse_special) for an SPM vocabulary. */
export function spmReference(v: SpmVocab, text: string, opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
  const addSpecial = opts.addSpecial ?? true;
  const parseSpecial = opts.parseSpecial ?? true;
  const ids = new Map<string, number>();
  v.tokens.forEach((tok, i) => ids.set(tok, i));

  // Special tokens, longest first (a stable sort keeps id order among equal lengths).
  const specials: number[] = [];
  v.types.forEach((ty, i) => {
    if (ty === T.USER_DEFINED || (parseSpecial && (ty === T.CONTROL || ty === T.UNKNOWN))) specials.push(i);
  });
  specials.sort((a, b) => v.tokens[b].length - v.tokens[a].length);
  let frags: Array<string | number> = text === '' ? [] : [text];
  for (const sid of specials) {
    const sp = v.tokens[sid];
    const next: Array<string | number> = [];
    for (const f of frags) {
      if (typeof f === 'number') {
        next.push(f);
        continue;
      }
      let from = 0;
      for (let at = f.indexOf(sp); at >= 0; at = f.indexOf(sp, from)) {
        if (at > from) next.push(f.slice(from, at));
        next.push(sid);
        from = at + sp.length;
      }
      if (from < f.length) next.push(f.slice(from));
    }
    frags = next;
  }

  const addSpacePrefix = v.addSpacePrefix ?? true;
  const out: number[] = [];
  if (addSpecial && (v.addBos ?? true)) out.push(v.bos ?? 1);
  let prevSpecial = true;
  for (const f of frags) {
    if (typeof f === 'number') {
      out.push(f);
      prevSpecial = true;
      continue;
    }
    const text2 = (addSpacePrefix && prevSpecial ? ' ' : '') + f;
    out.push(...spmSession(v, ids, text2.replaceAll(' ', '\u2581')));
    prevSpecial = false;
  }
  if (addSpecial && (v.addEos ?? false)) out.push(v.eos ?? 2);
  return out;
}
