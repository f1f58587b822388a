// The Hugging Face tokenizer wrapper with the shipped GPT-NeoX-20B file, and its
// errors for missing and malformed files.
import t, { type Test } from 'tap';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ModelLoadError } from '../../lib/errors';
import { DEFAULT_TOKENIZER_FILE, HfTokenizer, loadTokenizer } from '../../lib/tokenizer';

// The opening of tinyshakespeare.txt; the whole corpus is used too where the
// workspace has it (../shared/corpus, outside the repository).
const OPENING = 'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n'
  + 'First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n'
  + "First Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n\nAll:\nWe know't, we know't.\n\n"
  + "First Citizen:\nLet us kill him, and we'll have corn at our own price.\nIs't a verdict?\n\n"
  + "All:\nNo more talking on't; let it be done: away, away!\n";
const CORPUS = path.join(__dirname, '..', '..', '..', 'shared', 'corpus', 'tinyshakespeare.txt');

t.test('the shipped GPT-NeoX-20B tokenizer.json is the pinned file', (t) => {
  const sha = crypto.createHash('sha256').update(fs.readFileSync(DEFAULT_TOKENIZER_FILE)).digest('hex');
  t.equal(sha, '56ac4821e129d2c520fdaba60abd920fa852ada51b45c0dd52bbb6bd8c985ade');
  t.end();
});

t.test('GPT-NeoX-20B: known ids, round trips, special tokens', (t) => {
  const tok = loadTokenizer();
  t.equal(loadTokenizer(), tok, 'the default is loaded once');
  t.same(tok.encode('Hey how are you doing?'), [8262, 849, 403, 368, 2509, 32]);
  t.equal(tok.decode([8262, 849, 403, 368, 2509, 32]), 'Hey how are you doing?');
  t.equal(tok.decode(Int32Array.from([8262, 849])), 'Hey how', 'typed arrays decode too');
  t.equal(tok.decode([]), '', 'no ids, no text');
  t.same(tok.encode(''), [], 'no text, no ids');
  t.equal(tok.vocabSize, 50277, '50254 BPE entries + added tokens up to id 50276');
  t.equal(tok.eosTokenId, 0);
  t.equal(tok.bosTokenId, 0);
  t.equal(tok.tokenToId('<|endoftext|>'), 0);

  const ids = tok.encode(OPENING);
  t.ok(ids.length > 60 && ids.length < OPENING.length / 2, `a paragraph is ~2-5 characters per token (${ids.length} tokens)`);
  t.equal(tok.decode(ids), OPENING, 'Shakespeare round trip');
  if (fs.existsSync(CORPUS)) {
    const text = fs.readFileSync(CORPUS, 'utf8').slice(0, 20000);
    t.ok(text.startsWith(OPENING), 'the corpus starts with the embedded opening');
    t.equal(tok.decode(tok.encode(text)), text, 'round trip of 20k characters of the corpus');
  }

  // decode is lossless: no clean-up of spaces before punctuation
  const spaced = "Hello , world . I do n't know ?  two  spaces\n\n\ttab";
  t.equal(tok.decode(tok.encode(spaced)), spaced, 'spaces before punctuation survive');
  const multi = 'naïve café — 日本語 😀👍🏽 Ωμέγα';
  t.equal(tok.decode(tok.encode(multi)), multi, 'multi-byte round trip');

  t.equal(tok.decode([0, 8262]), '<|endoftext|>Hey', 'special tokens kept by default');
  t.equal(tok.decode([0, 8262], { skipSpecialTokens: true }), 'Hey', 'skipSpecialTokens');
  t.equal(tok.decode([50277, 50279]), '', 'padding rows beyond the tokenizer decode to nothing');
  t.throws(() => tok.decode([1, -1]), { name: 'RangeError', message: /ids\[1\]/ });
  t.throws(() => tok.decode([1.5]), RangeError);
  t.throws(() => tok.encode(3 as unknown as string), TypeError);
  t.end();
});

function tmpdir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-tok-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('loads from a directory or a file, with tokenizer_config.json', (t) => {
  const dir = tmpdir(t);
  fs.copyFileSync(DEFAULT_TOKENIZER_FILE, path.join(dir, 'tokenizer.json'));
  const plain = loadTokenizer(dir);
  t.ok(plain instanceof HfTokenizer);
  t.not(plain, loadTokenizer(), 'a path gives a fresh tokenizer');
  t.same(plain.encode('Hey how are you doing?'), [8262, 849, 403, 368, 2509, 32]);
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({
    eos_token: '<|padding|>', bos_token: { content: '<|endoftext|>', special: true }, clean_up_tokenization_spaces: true,
  }));
  for (const p of [dir, path.join(dir, 'tokenizer.json')]) {
    const tok = loadTokenizer(p);
    t.equal(tok.eosTokenId, 1, `eos_token from tokenizer_config.json (${path.basename(p)})`);
    t.equal(tok.bosTokenId, 0, 'bos_token given as an AddedToken object');
    t.equal(tok.decode(tok.encode('a , b .')), 'a , b .', 'clean_up_tokenization_spaces is not applied');
  }
  t.end();
});

/** Asserts fn throws an error satisfying check (and shows the error when it does not). */
function throwsWith(t: Test, fn: () => unknown, check: (e: unknown) => boolean): void {
  try {
    fn();
    t.fail('expected an error');
  } catch (e) {
    t.ok(check(e), `error: ${(e as Error).name}: ${(e as Error).message}`);
  }
}

t.test('bad files raise ModelLoadError naming the file and field', (t) => {
  const dir = tmpdir(t);
  const missing = path.join(dir, 'nope');
  throwsWith(t, () => loadTokenizer(missing), (e: unknown) => e instanceof ModelLoadError && e.file === missing && /not found/.test(e.message));
  // a directory without tokenizer.json
  const emptyDir = path.join(dir, 'empty');
  fs.mkdirSync(emptyDir);
  throwsWith(t, () => loadTokenizer(emptyDir), (e: unknown) =>
    e instanceof ModelLoadError && e.file === path.join(emptyDir, 'tokenizer.json') && /tokenizer\.json not found/.test(e.message));

  const bad = (name: string, body: string): string => {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'tokenizer.json'), body);
    return d;
  };
  const truncated = bad('truncated', fs.readFileSync(DEFAULT_TOKENIZER_FILE, 'utf8').slice(0, 5000));
  throwsWith(t, () => loadTokenizer(truncated), (e: unknown) =>
    e instanceof ModelLoadError && e.file === path.join(truncated, 'tokenizer.json') && /not valid JSON/.test(e.message));
  const arr = bad('array', '[1, 2]');
  throwsWith(t, () => loadTokenizer(arr), (e: unknown) => e instanceof ModelLoadError && /not a JSON object/.test(e.message));
  const noModel = bad('nomodel', JSON.stringify({ version: '1.0', added_tokens: [] }));
  throwsWith(t, () => loadTokenizer(noModel), (e: unknown) => e instanceof ModelLoadError && e.field === 'model');
  const noDecoder = bad('nodecoder', JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] } }));
  throwsWith(t, () => loadTokenizer(noDecoder), (e: unknown) =>
    e instanceof ModelLoadError && e.file === path.join(noDecoder, 'tokenizer.json') && /could not be used/.test(e.message));

  const cfgDir = path.join(dir, 'cfg');
  fs.mkdirSync(cfgDir);
  fs.copyFileSync(DEFAULT_TOKENIZER_FILE, path.join(cfgDir, 'tokenizer.json'));
  const cfgFile = path.join(cfgDir, 'tokenizer_config.json');
  fs.writeFileSync(cfgFile, '{"eos_token": ');
  throwsWith(t, () => loadTokenizer(cfgDir), (e: unknown) => e instanceof ModelLoadError && e.file === cfgFile && /not valid JSON/.test(e.message));
  fs.writeFileSync(cfgFile, JSON.stringify({ eos_token: '</s>' }));
  throwsWith(t, () => loadTokenizer(cfgDir), (e: unknown) =>
    e instanceof ModelLoadError && e.file === cfgFile && e.field === 'eos_token' && /eos_token "<\/s>" is not a token/.test(e.message));
  t.throws(() => loadTokenizer(''), TypeError);
  t.end();
});
