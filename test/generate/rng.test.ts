// The seedable generator: the published xoshiro128** sequence, determinism,
// range and rough uniformity.
import t from 'tap';
import { createRng, Xoshiro128 } from '../../lib/generate/rng';

t.test('xoshiro128** reproduces the reference sequence from state [1, 2, 3, 4]', (t) => {
  const r = new Xoshiro128(0);
  r.setState([1, 2, 3, 4]);
  const got = Array.from({ length: 10 }, () => r.nextUint32());
  // reference output of the C implementation (Blackman & Vigna), also in rand_xoshiro's tests
  t.same(got, [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804]);
  t.end();
});

t.test('same seed, same sequence; different seeds differ; clone and state continue it', (t) => {
  const a = createRng(42), b = createRng(42), c = createRng(43);
  const sa = Array.from({ length: 100 }, () => a.next());
  t.same(Array.from({ length: 100 }, () => b.next()), sa);
  t.not(Array.from({ length: 100 }, () => c.next()).join(), sa.join());
  // seeds that differ only above 32 bits or in sign differ too
  const first = (seed: number): number => new Xoshiro128(seed).nextUint32();
  t.not(first(1), first(1 + 2 ** 32));
  t.not(first(1), first(-1));
  const d = createRng(7);
  d.next();
  const e = d.clone(), st = d.getState();
  const f = createRng(0); f.setState(st);
  const rest = Array.from({ length: 20 }, () => d.next());
  t.same(Array.from({ length: 20 }, () => e.next()), rest, 'clone continues the sequence');
  t.same(Array.from({ length: 20 }, () => f.next()), rest, 'setState(getState()) continues the sequence');
  t.not(createRng().next(), createRng().next(), 'no seed: random seeds');
  t.end();
});

t.test('next() is in [0, 1) and roughly uniform', (t) => {
  const r = createRng(123);
  const bins = new Array(10).fill(0);
  let min = 1, max = 0;
  const n = 100000;
  for (let i = 0; i < n; i++) {
    const u = r.next();
    min = Math.min(min, u); max = Math.max(max, u);
    bins[Math.floor(u * 10)]++;
  }
  t.ok(min >= 0 && max < 1, `range [${min}, ${max}]`);
  // each bin ~ 10000 +- 95 (1 sigma): allow 5 sigma
  t.ok(bins.every((b) => Math.abs(b - n / 10) < 475), `bins ${bins.join(' ')}`);
  t.end();
});

t.test('bad seeds and states', (t) => {
  t.throws(() => new Xoshiro128(1.5), { name: 'RangeError', message: /seed/ });
  t.throws(() => new Xoshiro128(2 ** 60), RangeError);
  t.throws(() => createRng(NaN), RangeError);
  const r = createRng(1);
  t.throws(() => r.setState([0, 0, 0, 0]), RangeError);
  t.throws(() => r.setState([1, 2, 3]), RangeError);
  t.end();
});
