// kernels.measureReadBandwidth (the benchmark's memory-bandwidth probe):
// plausible figures on every ISA path, the same checksum whatever the path
// (every word read exactly once), and checked arguments. No timing asserted.
import t from 'tap';
import { kernels } from '../../lib';

const detected = kernels.runtimeInfo().detectedIsa;
const levels = ['scalar', 'avx2', 'avx512', 'avx512vnni'] as const;
const isas = levels.slice(0, levels.indexOf(detected) + 1);

t.teardown(() => void kernels.setIsa(detected));

t.test('figures and checksum on every ISA path', async (t) => {
  const bytes = 4 << 20;
  // Word i holds i * 0x9E3779B97F4A7C15 (mod 2^64); the checksum is the sum over
  // all repeats, mod 2^52.
  const words = BigInt(bytes / 8);
  const golden = 0x9e3779b97f4a7c15n;
  const perRepeat = ((words * (words - 1n)) / 2n * golden) & ((1n << 64n) - 1n);
  const repeats = 3;
  const expected = Number((perRepeat * BigInt(repeats)) & ((1n << 64n) - 1n) & ((1n << 52n) - 1n));
  for (const isa of isas) {
    kernels.setIsa(isa);
    for (const threads of [1, kernels.runtimeInfo().threads]) {
      const r = kernels.measureReadBandwidth({ bytes, repeats, threads });
      t.equal(r.isa, isa, `${isa}: isa reported`);
      t.equal(r.bytes, bytes);
      t.equal(r.repeats, repeats);
      t.equal(r.threads, threads);
      t.ok(r.bestGBps > 0 && Number.isFinite(r.bestGBps), `${isa} ${threads} threads: best ${r.bestGBps.toFixed(1)} GB/s`);
      t.ok(r.worstGBps <= r.medianGBps && r.medianGBps <= r.bestGBps, 'worst <= median <= best');
      t.equal(r.checksum, expected, `${isa} ${threads} threads: every word read once per repeat`);
    }
  }
});

t.test('bytes round down to whole cache lines; defaults', async (t) => {
  const r = kernels.measureReadBandwidth({ bytes: (1 << 20) + 100, repeats: 1 });
  t.equal(r.bytes, (1 << 20) + 64);
  t.equal(r.threads, kernels.runtimeInfo().threads);
});

t.test('bad arguments throw naming the argument', async (t) => {
  const threads = kernels.runtimeInfo().threads;
  t.throws(() => kernels.measureReadBandwidth({ threads: threads + 1 }), { name: 'RangeError', message: /threads/ });
  t.throws(() => kernels.measureReadBandwidth({ threads: 0 }), { name: 'RangeError', message: /threads/ });
  t.throws(() => kernels.measureReadBandwidth({ bytes: 1000 }), { name: 'RangeError', message: /bytes/ });
  t.throws(() => kernels.measureReadBandwidth({ repeats: 0 }), { name: 'RangeError', message: /repeats/ });
  t.throws(() => kernels.measureReadBandwidth({ repeats: 'x' as unknown as number }), { name: 'TypeError', message: /repeats/ });
  t.throws(() => (kernels.measureReadBandwidth as unknown as (x: unknown) => unknown)(5), { name: 'TypeError', message: /options/ });
});
