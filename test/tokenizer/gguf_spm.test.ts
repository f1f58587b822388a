// GGUF files with a 'llama' (SentencePiece BPE) tokenizer: ggufTokenizer
// encodes exactly as llama.cpp's SPM tokenizer does (checked against the plain
// reference in test/helpers/spm_reference.ts, and against llama.cpp itself
// through node-llama-cpp where it is available) and decodes losslessly.
//
// Vocabularies: a hand-made one (scores under which merging greedily by score
// differs from merging left to right, pieces of equal score competing, '▁▁'
// pieces, characters that are not pieces and fall back to bytes, a control and
// a user-defined token), random ones built from substrings of sample text
// (distinct float scores, integer scores with many ties, all scores equal as
// llama.cpp's converter writes for a vocabulary read from a tokenizer.json),
// and the flags add_space_prefix / add_bos_token / add_eos_token.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, loadModel, ModelLoadError } from '../../lib';
import { GgufValueType, readGgufHeader, type GgufFile } from '../../lib/loaders/gguf';
import { GgufWriter } from '../../lib/export/gguf_writer';
import { ggufTokenizer, ggufTokenizerJson } from '../../lib/tokenizer/gguf_tokenizer';
import type { HfTokenizer } from '../../lib/tokenizer';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';
import { writeTinyTokenizer } from '../helpers/gguf_fixtures';
import { llamaOrSkip } from '../helpers/llama_cpp';
import { addSpmKeys, byteToken, spmReference, spmVocab, T, writeSpmGguf, type SpmVocab } from '../helpers/spm_reference';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-spm-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const SPACE = '\u2581';

const SAMPLES = [
  'Hello world', 'The quick brown fox jumps over the lazy dog.', 'and then there were none',
  "It's a café, naïve as it is: (really) 42!", 'Ωμέγα and 日本の text', 'xyzxyz wxyzz abcbc pqrs',
  'the other theory is in order; another one',
];
/** Characters that are no piece of any vocabulary here: they fall back to bytes. */
const EXCLUDED = ['\n', '\t', '😀', '👍', '🏽', 'ü', '語', 'テ', '€', 'ß'];

const STRINGS = [
  '', ' ', '  ', '   ', 'a', 'abc', 'abcbc', 'xyz', 'xyzxyz', 'wxyzz', 'pqr', 'pqrs',
  'Hello world', ' Hello world', '  Hello world', 'Hello  world', 'Hello world ', 'Hello world  ',
  'Hello    world    and    the    other', 'the quick brown fox', 'The lazy dog.',
  'line one\nline two', '\n', '\n\n', 'a\n', '\nb', 'tab\there', ' \n ', 'naïve café', 'café', ' café ',
  '日本の text', '日本語のテキスト', 'Ωμέγα', 'emoji 😀👍🏽!', '😀', 'über straße', 'price: 42 €',
  "It's (really) 42!", 'AbC xYz PQR', '.,!?', '0123456789',
];

/** The hand-made vocabulary: characters, common pieces, and pieces whose scores make merge order matter. */
function handVocab(): SpmVocab {
  const pieces: Array<[string, number]> = [
    ['▁t', -1], ['he', -2], ['▁the', -3], ['in', -4], ['▁a', -5], ['er', -6], ['on', -7], ['re', -8],
    ['▁w', -9], ['or', -10], ['ld', -11], ['orld', -12], ['▁world', -13], ['ll', -14], ['llo', -15],
    ['▁H', -16], ['▁He', -17], ['▁Hello', -18], ['▁▁', -19], ['▁▁▁▁', -20], ['an', -21], ['nd', -22],
    ['▁and', -23], ['ca', -24], ['caf', -25], ['café', -26], ['▁café', -27], ['日本', -28], ['▁日本', -29],
    // Greedy by score: "abc" is a + bc (bc scores higher), not ab + c as left to right would have it.
    ['bc', -30], ['ab', -40], ['abcb', -41], ['cbc', -42],
    // Equal scores: in "xyz" xy and yz tie and the leftmost (xy) goes first, though yz has the lower id.
    ['yz', -50], ['xy', -50], ['zx', -50], ['zz', -50], ['wx', -50],
    // The same piece from two splits: pqr = pq + r = p + qr.
    ['qr', -61], ['pq', -60], ['pqr', -55], ['rs', -70],
    ['▁▁▁', -80], ['th', -81], ['▁o', -82], ['ther', -83], ['▁other', -84],
  ];
  const chars = new Set<string>([SPACE]);
  for (const c of Array.from('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?\'-:;()éïΩμέγα日本の')) chars.add(c === ' ' ? SPACE : c);
  for (const [p] of pieces) for (const c of Array.from(p)) chars.add(c);
  let s = -1000;
  for (const c of chars) pieces.push([c, s--]);
  return spmVocab(pieces, [['<tool>', T.USER_DEFINED], ['<|im_start|>', T.CONTROL]]);
}

/** mulberry32 */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** A vocabulary of the sample text's characters and `n` random substrings of it, scored by `score`. */
function randomVocab(seed: number, n: number, score: (r: () => number) => number): SpmVocab {
  const r = rng(seed);
  const text = SAMPLES.map((s) => SPACE + s.replaceAll(' ', SPACE)).join('');
  const cps = Array.from(text);
  const seen = new Set<string>();
  const pieces: Array<[string, number]> = [];
  for (const c of cps) {
    if (!seen.has(c)) {
      seen.add(c);
      pieces.push([c, -1000 - pieces.length]);
    }
  }
  for (let k = 0; k < n * 4 && pieces.length < n + seen.size; k++) {
    const len = 2 + Math.floor(r() * 7);
    const at = Math.floor(r() * (cps.length - len));
    const p = cps.slice(at, at + len).join('');
    if (seen.has(p)) continue;
    seen.add(p);
    pieces.push([p, score(r)]);
  }
  // Shuffle so that ids say nothing about scores.
  for (let i = pieces.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [pieces[i], pieces[j]] = [pieces[j], pieces[i]];
  }
  return spmVocab(pieces);
}

/** Random strings over the sample characters, spaces, newlines and the excluded characters. */
function randomStrings(seed: number, count: number): string[] {
  const r = rng(seed);
  const alphabet = [...new Set(Array.from(SAMPLES.join(' ')))].concat(EXCLUDED, [' ', ' ', ' ']);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) {
      const s = SAMPLES[Math.floor(r() * SAMPLES.length)];
      const a = Math.floor(r() * s.length);
      out.push(s.slice(a, a + 1 + Math.floor(r() * 30)).replace(/^[\udc00-\udfff]|[\ud800-\udbff]$/g, ''));
    } else {
      const len = Math.floor(r() * 40);
      let s = '';
      for (let k = 0; k < len; k++) s += alphabet[Math.floor(r() * alphabet.length)];
      out.push(s);
    }
  }
  return out;
}

let fileNo = 0;
async function gguf(v: SpmVocab, more?: (w: GgufWriter) => void): Promise<GgufFile> {
  return writeSpmGguf(path.join(root, `v${fileNo++}.gguf`), v, more);
}

/** encode equals the reference on every string; decode(encode(s)) is s (BOS skipped). */
function checkStrings(t: Test, name: string, tok: HfTokenizer, v: SpmVocab, strings: string[], opts: { roundTrip?: boolean } = {}): void {
  const bad: string[] = [];
  const badTrip: string[] = [];
  for (const s of strings) {
    const ours = tok.encode(s);
    const ref = spmReference(v, s);
    if (JSON.stringify(ours) !== JSON.stringify(ref)) {
      bad.push(`${JSON.stringify(s)}: ours ${JSON.stringify(ours.map((i) => v.tokens[i]))}, llama.cpp's ${JSON.stringify(ref.map((i) => v.tokens[i]))}`);
    }
    if (opts.roundTrip !== false) {
      const back = tok.decode(ours, { skipSpecialTokens: true });
      if (back !== s) badTrip.push(`${JSON.stringify(s)} -> ${JSON.stringify(back)}`);
    }
  }
  t.same(bad, [], `${name}: encode equals the reference on ${strings.length} strings`);
  if (opts.roundTrip !== false) t.same(badTrip, [], `${name}: decode(encode(s)) === s on ${strings.length} strings`);
}

t.test('hand-made vocabulary: greedy by score, ties to the left, byte fallback, round trips', async (t) => {
  const v = handVocab();
  const g = await gguf(v);
  const tok = ggufTokenizer(g);
  const id = (s: string) => v.tokens.indexOf(s);
  const pieces = (s: string) => tok.encode(s).map((i) => v.tokens[i]);

  t.same(pieces('abc'), ['<s>', '▁a', 'bc'], 'bc (score -30) before ab (-40)');
  t.same(pieces('xyz'), ['<s>', '▁', 'xy', 'z'], 'xy and yz tie: the leftmost merges first');
  t.same(pieces('pqr'), ['<s>', '▁', 'pqr'], 'pqr from either split');
  t.same(pieces('Hello world'), ['<s>', '▁Hello', '▁world']);
  t.same(pieces(' Hello'), ['<s>', '▁', '▁Hello'], 'a leading space is kept: the prefix ▁, then ▁Hello (▁H scores above ▁▁)');
  t.same(pieces('a\n'), ['<s>', '▁a', '<0x0A>'], 'a newline is a byte token');
  t.same(pieces('語'), ['<s>', '▁', '<0xE8>', '<0xAA>', '<0x9E>'], 'a character that is no piece: its UTF-8 bytes');
  t.same(tok.encode(''), [1], 'the empty string: BOS only');
  t.same(pieces('a<tool>b'), ['<s>', '▁a', '<tool>', '▁', 'b'], 'user-defined tokens are cut out first, a space follows them');
  t.same(pieces('<|im_start|>x'), ['<s>', '<|im_start|>', '▁', 'x'], 'control tokens too');
  t.equal(tok.bosTokenId, 1);
  t.equal(tok.eosTokenId, 2);
  t.equal(tok.vocabSize, v.tokens.length);
  t.equal(tok.tokenToId('<0x0A>'), 3 + 10);
  t.equal(tok.decode([id('▁Hello'), id('▁world')]), 'Hello world', 'the prefix space is dropped');
  t.equal(tok.decode([1, id('▁Hello')]), '<s> Hello', 'special tokens kept by default (as Hugging Face decodes)');
  t.equal(tok.decode([id('▁a'), 3 + 0xc3, 3 + 0xa9, id('▁'), id('b')]), 'aé b', 'byte tokens fuse into UTF-8');
  t.equal(tok.decode([v.tokens.length, v.tokens.length + 5]), '', 'ids beyond the vocabulary decode to nothing');

  const special = ['a<tool>b', '<tool>', ' <tool> ', 'x<|im_start|>y', '<|im_start|><tool>', '<s>Hello</s>', '<unk>'];
  checkStrings(t, 'hand-made', tok, v, [...STRINGS, ...SAMPLES, ...randomStrings(1, 400)]);
  checkStrings(t, 'hand-made, special tokens', tok, v, special, { roundTrip: false });

  // The tokenizer.json alone (as quantize writes it) orders equal scores by piece id.
  const { tokenizerJson, mergeRanks } = ggufTokenizerJson(g);
  const model = tokenizerJson.model as { merges: Array<[string, string]>; byte_fallback: boolean };
  t.ok(mergeRanks, 'equal scores: merge ranks');
  t.equal(model.byte_fallback, true);
  const at = (a: string, b: string) => model.merges.findIndex(([l, r]) => l === a && r === b);
  t.ok(at('b', 'c') < at('a', 'b'), 'merges ordered by score');
  t.ok(at('y', 'z') < at('x', 'y'), 'equal scores: by id');
  t.equal(mergeRanks![at('y', 'z')], mergeRanks![at('x', 'y')], 'equal scores: one rank');
  t.ok(at('▁▁', '▁▁') >= 0 && at('▁', '▁▁▁') >= 0 && at('▁▁▁', '▁') >= 0, '▁▁▁▁ from every split');
});

t.test('random vocabularies: distinct scores, many ties, all scores equal', async (t) => {
  const strings = [...STRINGS, ...SAMPLES, ...randomStrings(7, 600), SAMPLES.join(' ').repeat(20)];
  const cases: Array<[string, SpmVocab]> = [
    ['float scores', randomVocab(11, 300, (r) => -r() * 100)],
    ['integer scores (ties)', randomVocab(12, 300, (r) => -Math.floor(r() * 12))],
    ['all -1000 (ties everywhere)', randomVocab(13, 300, () => -1000)],
    ['large', randomVocab(14, 3000, (r) => -Math.floor(r() * 5000))],
  ];
  for (const [name, v] of cases) {
    const tok = ggufTokenizer(await gguf(v));
    checkStrings(t, name, tok, v, strings);
  }
});

t.test('flags: add_space_prefix, add_bos_token, add_eos_token, special ids', async (t) => {
  const base = handVocab();
  {
    const v = { ...base, addSpacePrefix: false };
    const tok = ggufTokenizer(await gguf(v));
    t.same(tok.encode('Hello world').map((i) => v.tokens[i]), ['<s>', 'H', 'e', 'llo', '▁world'], 'no prefix space');
    checkStrings(t, 'add_space_prefix false', tok, v, [...STRINGS, ...randomStrings(3, 200)]);
    checkStrings(t, 'add_space_prefix false, special tokens', tok, v, ['a<tool>b', 'x<|im_start|> y'], { roundTrip: false });
  }
  {
    const v = { ...base, addBos: false, addEos: true, bos: 2, eos: 1 };
    const tok = ggufTokenizer(await gguf(v));
    t.same(tok.encode('a'), [v.tokens.indexOf('▁a'), 1], 'no BOS, EOS (id 1) last');
    t.same(tok.encode(''), [1], 'the empty string: EOS only');
    t.equal(tok.bosTokenId, 2);
    t.equal(tok.eosTokenId, 1);
    checkStrings(t, 'EOS, no BOS', tok, v, [...STRINGS, ...randomStrings(4, 100)]);
  }
  {
    const v = { ...base, addBos: false };
    const tok = ggufTokenizer(await gguf(v));
    t.same(tok.encode(''), [], 'neither: the empty string has no tokens');
    t.equal(tok.decode(tok.encode(' two  spaces ')), ' two  spaces ', 'without BOS decode(encode(s)) is s as it is');
  }
  {
    // Padding rows ([PAD{i}], unused) at the end, as llama.cpp's converter writes them: left out.
    const v = { ...base, tokens: [...base.tokens, '[PAD0]', '[PAD1]'], scores: [...base.scores, -1000, -1000], types: [...base.types, T.UNUSED, T.UNUSED] };
    const tok = ggufTokenizer(await gguf(v));
    t.equal(tok.vocabSize, base.tokens.length, 'padding rows are not tokens');
    t.equal(tok.decode([v.tokens.indexOf('▁a'), base.tokens.length]), 'a', 'a padding row decodes to nothing');
  }
  {
    // Integer scores and no token types, or no scores at all (all 0): accepted, as llama.cpp accepts them.
    const write = async (name: string, scores: number[] | undefined) => {
      const file = path.join(root, name);
      const gw = new GgufWriter();
      gw.string('tokenizer.ggml.model', 'llama');
      gw.array('tokenizer.ggml.tokens', GgufValueType.STRING, base.tokens);
      if (scores) gw.array('tokenizer.ggml.scores', GgufValueType.INT32, scores);
      await gw.write(file);
      return ggufTokenizer(readGgufHeader(file));
    };
    const noScores = await write('noscores.gguf', undefined);
    t.same(noScores.encode('abc xyz').map((i) => base.tokens[i]), ['<s>', '▁a', 'bc', '▁', 'xy', 'z'], 'no scores: all 0, leftmost first');
    checkStrings(t, 'no scores', noScores, { ...base, scores: base.scores.map(() => 0) }, STRINGS, { roundTrip: false }); // without types <s> is no special token: decode keeps it
    const tok = await write('intscores.gguf', base.scores);
    t.same(tok.encode('abc xyz').map((i) => base.tokens[i]), ['<s>', '▁a', 'bc', '▁', 'xy', 'z'], 'int32 scores, no token types');
  }
});

t.test('unsupported or malformed llama vocabularies are ModelLoadErrors naming the key', async (t) => {
  const base = handVocab();
  const expectBad = async (what: string, v: SpmVocab, field: string, re: RegExp, more?: (w: GgufWriter) => void) => {
    const g = await gguf(v, more);
    let err: unknown;
    try {
      ggufTokenizerJson(g);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof ModelLoadError, `${what}: ModelLoadError`);
    const e = err as ModelLoadError;
    t.equal(e?.file, g.file, `${what}: names the file`);
    t.equal(e?.field, field, `${what}: names ${field} (${e?.message})`);
    t.match(e?.message ?? '', re, `${what}: says why`);
  };
  const dropByte = base.tokens.indexOf(byteToken(0x41));
  await expectBad('a byte token missing', { ...base, tokens: base.tokens.map((x, i) => (i === dropByte ? 'A_' : x)) }, 'tokenizer.ggml.tokens', /256 byte tokens.*<0x41> is missing/);
  await expectBad('a token twice', { ...base, tokens: base.tokens.map((x, i) => (i === 300 ? base.tokens[301] : x)) }, 'tokenizer.ggml.tokens', /listed twice/);
  await expectBad('scores too short', { ...base, scores: base.scores.slice(1) }, 'tokenizer.ggml.scores', /entries/);
  await expectBad('NaN score', { ...base, scores: base.scores.map((x, i) => (i === 300 ? NaN : x)) }, 'tokenizer.ggml.scores', /NaN/);
  await expectBad('bos a padding row', { ...base, tokens: [...base.tokens, '[PAD0]'], scores: [...base.scores, 0], types: [...base.types, T.UNUSED], bos: base.tokens.length }, 'tokenizer.ggml.bos_token_id', /padding/);
  await expectBad('bos out of range', { ...base, bos: base.tokens.length }, 'tokenizer.ggml.bos_token_id', /outside/);
  const noTokens = path.join(root, 'other-model.gguf');
  const w = new GgufWriter();
  w.string('tokenizer.ggml.model', 'bert');
  await w.write(noTokens);
  t.throws(() => ggufTokenizerJson(readGgufHeader(noTokens)), { name: 'ModelLoadError', field: 'tokenizer.ggml.model', message: /"bert" is not supported.*'llama'/ });
});

/** A tiny Mamba GGUF (the embedding has one row per token) with the vocabulary's keys in place of its own. */
async function spmModelFile(name: string, v: SpmVocab): Promise<string> {
  const dir = path.join(root, `ck-${name.replace(/\W+/g, '_')}`);
  fs.mkdirSync(dir, { recursive: true });
  writeTinyTokenizer(dir);
  writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 32, nLayer: 1, vocabSize: v.tokens.length, dtype: 'f32', tied: true, dialect: 'hf', seed: 3 });
  const exported = path.join(dir, 'model.gguf');
  await exportGguf(dir, exported, { type: 'f32' });
  const g = readGgufHeader(exported);
  const w = new GgufWriter();
  for (const [k, e] of g.metadata) if (!k.startsWith('tokenizer.')) w.add(k, e.type, e.value);
  addSpmKeys(w, v);
  const bytes = fs.readFileSync(exported);
  for (const ti of g.tensors.values()) w.tensor({ name: ti.name, dims: ti.dims, type: ti.type as 'F32', data: () => bytes.subarray(ti.offset, ti.offset + ti.nbytes) });
  const file = path.join(root, `spm-${name.replace(/\W+/g, '_')}.gguf`);
  await w.write(file);
  return file;
}

t.test('loadModel reads the vocabulary of a Mamba GGUF', async (t) => {
  const v = handVocab();
  const file = await spmModelFile('loadModel', v);
  const model = await loadModel(file);
  t.teardown(() => model.dispose());
  t.equal(model.tokenizer.vocabSize, v.tokens.length);
  t.equal(model.tokenizer.bosTokenId, 1);
  t.equal(model.tokenizer.eosTokenId, 2);
  for (const s of ['Hello world', 'xyz abc', ' two  spaces\n', '日本語 😀']) {
    t.same(model.tokenizer.encode(s), spmReference(v, s), `encode ${JSON.stringify(s)}`);
  }
  const logits = await model.createSequence().then(async (seq) => {
    const out = await seq.prefill(model.tokenizer.encode('Hello world'));
    await seq.dispose();
    return out;
  });
  t.equal(logits.length, v.tokens.length, 'the model runs on the ids');
});

t.test('llama.cpp (node-llama-cpp) tokenizes as ggufTokenizer does', async (t) => {
  const llama = await llamaOrSkip(t);
  if (!llama) return;

  const cases: Array<[string, SpmVocab]> = [
    ['hand-made', handVocab()],
    ['hand-made, no prefix space', { ...handVocab(), addSpacePrefix: false }],
    ['random, integer scores', randomVocab(12, 300, (r) => -Math.floor(r() * 12))],
    ['random, all equal', randomVocab(13, 300, () => -1000)],
  ];
  const strings = [...STRINGS, ...SAMPLES, ...randomStrings(21, 300)];
  const special = ['a<tool>b', '<tool>', ' <tool> ', 'x<|im_start|>y', '<|im_start|><tool>', '<s>Hello</s>'];
  for (const [name, v] of cases) {
    const file = await spmModelFile(name, v);
    const tok = ggufTokenizer(readGgufHeader(file));
    const model = await llama.loadModel({ modelPath: file, vocabOnly: true });
    const bad: string[] = [];
    const check = (s: string, parseSpecial: boolean) => {
      // node-llama-cpp's tokenize adds no BOS (add_special false).
      const theirs = Array.from(model.tokenize(s, parseSpecial), Number);
      const ref = spmReference(v, s, { addSpecial: false, parseSpecial });
      const ours = tok.encode(s).slice(1); // without BOS
      if (JSON.stringify(theirs) !== JSON.stringify(ref)) bad.push(`reference ${JSON.stringify(s)}: llama.cpp ${JSON.stringify(theirs)}, reference ${JSON.stringify(ref)}`);
      if (parseSpecial || !/<\|im_start\|>|<s>|<\/s>|<unk>/.test(s)) {
        if (s !== '' && JSON.stringify(theirs) !== JSON.stringify(ours)) bad.push(`ours ${JSON.stringify(s)}: llama.cpp ${JSON.stringify(theirs)}, ours ${JSON.stringify(ours)}`);
      }
    };
    for (const s of strings) check(s, false);
    for (const s of special) {
      check(s, false);
      check(s, true);
    }
    await model.dispose();
    t.same(bad.slice(0, 5), [], `${name}: llama.cpp, the reference and ggufTokenizer agree on ${strings.length + 2 * special.length} tokenizations`);
  }
});
