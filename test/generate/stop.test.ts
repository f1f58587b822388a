// StopMatcher: stop strings found across chunk boundaries, never emitted,
// text held back only while it could still start a stop string.
import t from 'tap';
import { StopMatcher } from '../../lib/generate/stop';

/** Feeds chunks; returns everything emitted (plus flush when not stopped) and whether it stopped. */
function run(stops: string[], chunks: string[]): { out: string; stopped: boolean; emits: string[]; stop?: string } {
  const m = new StopMatcher(stops);
  const emits: string[] = [];
  for (const c of chunks) {
    const r = m.push(c);
    emits.push(r.emit);
    if (r.stopped) return { out: emits.join(''), stopped: true, emits, stop: r.stop };
  }
  emits.push(m.flush());
  return { out: emits.join(''), stopped: false, emits };
}

t.test('no stop strings: text passes straight through', (t) => {
  t.same(run([], ['a', 'bc']).emits, ['a', 'bc', '']);
  t.end();
});

t.test('a stop string inside one chunk', (t) => {
  const r = run(['###'], ['Hello ### world']);
  t.same(r, { out: 'Hello ', stopped: true, emits: ['Hello '], stop: '###' });
  t.end();
});

t.test('a stop string split across chunks is never emitted, even in part', (t) => {
  const r = run(['\nUser:'], ['Sure.', '\n', 'Us', 'er', ': next']);
  t.equal(r.out, 'Sure.');
  t.ok(r.stopped);
  t.same(r.emits, ['Sure.', '', '', '', ''], 'the partial "\\nUs", "\\nUser" were held, then dropped');
  // every character split
  const text = 'abc</s>def';
  const r2 = run(['</s>'], text.split(''));
  t.equal(r2.out, 'abc');
  t.ok(r2.stopped);
  t.end();
});

t.test('held text is released when it stops matching', (t) => {
  const r = run(['STOP'], ['go ST', 'ART then ST', 'O', 'p']);
  t.same(r.emits, ['go ', 'START then ', '', 'STOp', ''], 'released as soon as it cannot be a stop prefix');
  t.notOk(r.stopped);
  t.equal(r.out, 'go START then STOp');
  // flush returns what is still held at the end
  const m = new StopMatcher(['STOP']);
  t.same(m.push('the end ST'), { emit: 'the end ', stopped: false });
  t.equal(m.flush(), 'ST');
  t.equal(m.flush(), '', 'nothing twice');
  t.end();
});

t.test('overlapping stop prefixes and self-overlapping stops', (t) => {
  // "aab" inside "aaab": the held suffix must restart at the right place
  t.equal(run(['aab'], ['a', 'a', 'a', 'b', 'x']).out, 'a');
  // two stops sharing a prefix: the one that completes first wins
  const r = run(['abcd', 'abx'], ['zab', 'x!']);
  t.same([r.out, r.stop], ['z', 'abx']);
  const r2 = run(['abcd', 'abx'], ['zab', 'cd']);
  t.same([r2.out, r2.stop], ['z', 'abcd']);
  // the earliest match in the text wins, not the first in the list
  const r3 = run(['world', 'lo'], ['hello world']);
  t.same([r3.out, r3.stop], ['hel', 'lo']);
  // at the same position, the longer stop
  const r4 = run(['ab', 'abc'], ['xabc']);
  t.same([r4.out, r4.stop], ['x', 'abc']);
  // a stop that is a suffix-prefix of another: "xyxz" with text "xyxyxz"
  t.equal(run(['xyxz'], ['xy', 'xy', 'xz']).out, 'xy');
  t.end();
});

t.test('after a stop everything is swallowed; multi-byte text', (t) => {
  const m = new StopMatcher(['😀']);
  t.same(m.push('日本 😀 more'), { emit: '日本 ', stopped: true, stop: '😀' });
  t.ok(m.stopped);
  t.same(m.push('later'), { emit: '', stopped: true });
  t.equal(m.flush(), '');
  t.end();
});

t.test('bad stop lists', (t) => {
  t.throws(() => new StopMatcher(['ok', '']), { name: 'RangeError', message: /stop\[1\]/ });
  t.throws(() => new StopMatcher([3 as unknown as string]), RangeError);
  t.throws(() => new StopMatcher('abc' as unknown as string[]), TypeError);
  t.end();
});
