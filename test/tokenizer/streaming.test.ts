// StreamingDetokenizer: chunks concatenate to exactly decode(all ids) and never
// contain a broken character, even where one character spans several tokens.
import t from 'tap';
import { loadTokenizer, StreamingDetokenizer, type Tokenizer } from '../../lib/tokenizer';

const tok = loadTokenizer();
const TEXTS = [
  'Hey how are you doing?',
  'Crème brûlée, naïve façade — ¿qué tal? Ωμέγα Ελληνικά',
  '日本語のテキストと中文字符，还有한국어 문장。',
  'Emoji: 😀👍🏽🇫🇷👨‍👩‍👧‍👦 done 🦀 🧪!',
  'mixed: a😀b日c\u0301d 𝔘𝔫𝔦𝔠𝔬𝔡𝔢\n\ttabs',
];

function stream(d: StreamingDetokenizer, ids: number[]): string[] {
  const chunks = ids.map((id) => d.push(id));
  chunks.push(d.flush());
  return chunks;
}

t.test('multi-byte text: chunks join to decode(all), no U+FFFD mid-stream', (t) => {
  let heldSomewhere = false;
  for (const text of TEXTS) {
    const ids = tok.encode(text);
    const naive = ids.map((id) => tok.decode([id]));
    const chunks = stream(new StreamingDetokenizer(tok), ids);
    t.equal(chunks.join(''), tok.decode(ids), `joined chunks equal decode(all): ${JSON.stringify(text)}`);
    t.equal(chunks.join(''), text.normalize('NFC'), 'and the text itself (GPT-NeoX normalises to NFC)');
    t.notOk(chunks.some((c) => c.includes('\uFFFD')), 'no chunk has U+FFFD');
    t.equal(chunks[chunks.length - 1], '', 'nothing left for flush after complete text');
    if (naive.some((c) => c.includes('\uFFFD'))) {
      heldSomewhere = true;
      t.ok(chunks.slice(0, -1).some((c) => c === ''), 'tokens of a split character were held back');
    }
  }
  t.ok(heldSomewhere, 'the texts include characters split across tokens (decoding token by token gives U+FFFD)');
  t.end();
});

t.test('context (the prompt) is not emitted; the continuation is', (t) => {
  const prompt = tok.encode('Le café 日');
  const gen = tok.encode('本語 😀 ok');
  const d = new StreamingDetokenizer(tok, { context: prompt });
  const chunks = stream(d, gen);
  const all = tok.decode([...prompt, ...gen]);
  t.equal(chunks.join(''), all.slice(tok.decode(prompt).length));
  t.notOk(chunks.some((c) => c.includes('\uFFFD')));
  t.end();
});

t.test('flush after a cut-off character gives what decode gives', (t) => {
  const ids = tok.encode('ok 😀');
  // drop the last token: the emoji is incomplete
  const cut = ids.slice(0, -1);
  t.ok(tok.decode(cut).endsWith('\uFFFD'), 'the cut sequence ends mid-character');
  const d = new StreamingDetokenizer(tok);
  const mid = cut.map((id) => d.push(id));
  t.ok(d.pending, 'tokens are held');
  t.notOk(mid.some((c) => c.includes('\uFFFD')), 'nothing broken emitted before flush');
  const rest = d.flush();
  t.equal(mid.join('') + rest, tok.decode(cut), 'flush emits the rest, as decode does');
  t.notOk(d.pending);
  t.equal(d.flush(), '', 'a second flush is empty');
  // the stream can go on after a flush
  t.equal(d.push(tok.encode(' more')[0]), ' more');
  t.end();
});

t.test('a decoder that treats the first token specially still joins exactly', (t) => {
  // A SentencePiece-like toy: "_" marks a space, stripped at the very start of a decode.
  const pieces = ['_Hello', ',', '_wor', 'ld', '_again'];
  const toy: Tokenizer = {
    vocabSize: pieces.length,
    encode: () => { throw new Error('unused'); },
    decode: (ids) => Array.from(ids).map((i) => pieces[i]).join('').replace(/_/g, ' ').replace(/^ /, ''),
  };
  const ids = [0, 1, 2, 3, 4];
  const chunks = stream(new StreamingDetokenizer(toy), ids);
  t.equal(chunks.join(''), 'Hello, world again');
  t.same(chunks, ['Hello', ',', ' wor', 'ld', ' again', '']);
  t.end();
});

t.test('options are checked', (t) => {
  t.throws(() => new StreamingDetokenizer(tok, { contextTokens: -1 }), RangeError);
  t.throws(() => new StreamingDetokenizer(tok, { contextTokens: 1.5 }), RangeError);
  t.end();
});
