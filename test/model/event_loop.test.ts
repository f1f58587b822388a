// The event loop keeps turning while a long prefill runs: the forward pass is
// on worker threads, so timers fire on time meanwhile.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadModel } from '../../lib';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';

// A small random Mamba model in a temporary directory, both removed at the test's end.
async function smallModel(t: Test, seed: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-loop-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 256, nLayer: 4, vocabSize: 500, dtype: 'f32', tied: true, dialect: 'hf', seed });
  const model = await loadModel(dir);
  t.teardown(() => model.dispose());
  return model;
}

t.test('a long prefill does not block the event loop', async (t) => {
  const model = await smallModel(t, 3);
  const seq = await model.createSequence();
  const tokens = Array.from({ length: 6000 }, (_, i) => (i * 7) % model.vocabSize);

  const h = monitorEventLoopDelay({ resolution: 5 });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  h.enable();
  const t0 = performance.now();
  await seq.prefill(tokens);
  const elapsed = performance.now() - t0;
  h.disable();
  clearInterval(timer);
  const maxDelayMs = h.max / 1e6;
  t.comment(`prefill of ${tokens.length} tokens took ${elapsed.toFixed(0)} ms; ${ticks} timer ticks; max loop delay ${maxDelayMs.toFixed(1)} ms, p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms`);
  t.ok(elapsed > 100, 'the prefill is long enough for the check to mean something');
  // A blocked loop would show one delay as long as the prefill and ~0 ticks.
  t.ok(maxDelayMs < Math.max(100, elapsed / 4), `max event-loop delay ${maxDelayMs.toFixed(1)} ms is far below the prefill's ${elapsed.toFixed(0)} ms`);
  t.ok(ticks >= Math.floor(elapsed / 10 / 4), `timers kept firing (${ticks} ticks in ${elapsed.toFixed(0)} ms)`);
  await seq.dispose();
});

// Jobs of one model wait for it in the model's queue, not on libuv's thread
// pool (napi/promise_worker.h JobLane): with more prefills queued than the
// pool has threads, the process's own file system work still goes through.
t.test('prefills queued together leave libuv\'s thread pool to the process', async (t) => {
  const model = await smallModel(t, 4);
  const poolThreads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  const n = poolThreads + 2;
  const seqs = [];
  for (let i = 0; i < n; i++) seqs.push(await model.createSequence());
  const tokens = Array.from({ length: 3000 }, (_, i) => (i * 11) % model.vocabSize);
  const t0 = performance.now();
  const done: number[] = [];
  const prefills = seqs.map((s) => s.prefill(tokens).then(() => { done.push(performance.now() - t0); }));
  const read = fs.promises.readFile(__filename).then(() => performance.now() - t0);
  const readAt = await read;
  await Promise.all(prefills);
  t.comment(`${n} prefills of ${tokens.length} tokens done at ${done.map((x) => x.toFixed(0)).join(', ')} ms; readFile at ${readAt.toFixed(1)} ms`);
  t.ok(done[0] > 50, 'a prefill is long enough for the check to mean something');
  // Each queued job used to hold a pool thread while it waited for the model:
  // the read came after several prefills.
  t.ok(readAt < done[0], `the read (${readAt.toFixed(1)} ms) finished before the first prefill (${done[0].toFixed(0)} ms)`);
  for (const s of seqs) await s.dispose();
});
