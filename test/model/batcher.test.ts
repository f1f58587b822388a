// The decode batcher (lib/model/batcher.ts) against a fake native model that
// records its steps: requests of one turn join one native step; once every
// sequence of the last step has asked again the next step starts at once
// (not a turn later); a sequence that does not ask again (finished) leaves the
// others to the end of the turn; a new sequence joins the step after.
import t from 'tap';
import { DecodeBatcher } from '../../lib/model/batcher';
import type { NativeModel } from '../../lib/native/types';
import { validateSamplingOptions } from '../../lib/generate/sampling';

interface Call { slots: number[]; tokens: number[]; mode: string; finish(): void }

function fakeNative(): { native: NativeModel; calls: Call[] } {
  const calls: Call[] = [];
  const step = (slots: Int32Array, tokens: Int32Array, mode = 'logits'): Promise<Int32Array> =>
    new Promise((resolve) => {
      // The greedy "next token" of a row: its token + 1.
      calls.push({ slots: Array.from(slots), tokens: Array.from(tokens), mode, finish: () => resolve(Int32Array.from(tokens, (x) => x + 1)) });
    });
  // stepChained: each row's next token is its token + 100 (the native model resolves a plain array).
  const stepChained = (slots: Int32Array, tokens: Int32Array): Promise<number[]> =>
    new Promise((resolve) => {
      calls.push({ slots: Array.from(slots), tokens: Array.from(tokens), mode: 'chained', finish: () => resolve(Array.from(tokens, (x) => x + 100)) });
    });
  return { native: { step, stepChained } as unknown as NativeModel, calls };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
// A few turns of the event loop: time for a finished step's promises to settle and the next to start.
const turns = async (): Promise<void> => { for (let i = 0; i < 4; i++) await turn(); };

t.test('requests of one turn share a native step; a full re-request starts the next at once', async (t) => {
  const { native, calls } = fakeNative();
  const b = new DecodeBatcher(() => native, 10);
  const p = [0, 1, 2].map((slot) => b.stepGreedy(slot, 10 * slot));
  t.equal(calls.length, 0, 'the first step waits for the turn to end');
  await turn();
  t.equal(calls.length, 1, 'one native step');
  t.same(calls[0].slots, [0, 1, 2]);
  t.same(calls[0].tokens, [0, 10, 20]);
  t.equal(calls[0].mode, 'greedy');
  calls[0].finish();
  t.same(await Promise.all(p), [1, 11, 21], 'each sequence gets its row');

  // All three ask again: the step starts at the third request, synchronously.
  const q = [b.stepGreedy(0, 1), b.stepGreedy(1, 11)];
  t.equal(calls.length, 1, 'two of three asked: still waiting');
  q.push(b.stepGreedy(2, 21));
  t.equal(calls.length, 2, 'the third request started the step without waiting for the turn');
  t.same(calls[1].slots, [0, 1, 2]);
  calls[1].finish();
  t.same(await Promise.all(q), [2, 12, 22]);

  // Slot 2 has finished: slots 0 and 1 wait for the turn's end, and a new slot 5 asking in that
  // turn joins them.
  const r = [b.stepGreedy(0, 2), b.stepGreedy(1, 12)];
  t.equal(calls.length, 2, 'a sequence of the last step did not ask: wait for the turn');
  r.push(b.stepGreedy(5, 50));
  await turn();
  t.equal(calls.length, 3);
  t.same(calls[2].slots, [0, 1, 5], 'the new sequence joined within the turn');
  calls[2].finish();
  t.same(await Promise.all(r), [3, 13, 51]);
});

t.test('requests made while a step runs join the next one; one request per slot per step', async (t) => {
  const { native, calls } = fakeNative();
  const b = new DecodeBatcher(() => native, 10);
  const first = b.stepGreedy(0, 1);
  await turn();
  t.equal(calls.length, 1);
  // While step 1 runs: slot 1 asks, slot 0 asks twice (its second request waits a step).
  const a = b.stepGreedy(1, 7), c = b.stepGreedy(0, 3), d = b.stepGreedy(0, 4);
  await turn();
  t.equal(calls.length, 1, 'nothing starts while a step runs');
  calls[0].finish();
  t.equal(await first, 2);
  await turns();
  t.equal(calls.length, 2);
  t.same(calls[1].slots, [1, 0], 'the queued requests of distinct slots, in order');
  calls[1].finish();
  t.same(await Promise.all([a, c]), [8, 4]);
  await turns();
  t.equal(calls.length, 3, "slot 0's second request in the step after");
  t.same(calls[2].slots, [0]);
  calls[2].finish();
  t.equal(await d, 5);
});

t.test('a batch holds at most maxBatch sequences', async (t) => {
  const { native, calls } = fakeNative();
  const b = new DecodeBatcher(() => native, 10, 2);
  const p = [0, 1, 2].map((s) => b.stepGreedy(s, s));
  await turn();
  t.same(calls[0].slots, [0, 1]);
  calls[0].finish();
  await turns();
  t.same(calls[1].slots, [2]);
  calls[1].finish();
  t.same(await Promise.all(p), [1, 2, 3]);
});

t.test('chained requests take their own native call beside the others of their batch', async (t) => {
  const { native, calls } = fakeNative();
  const b = new DecodeBatcher(() => native, 10);
  const greedy = validateSamplingOptions({ temperature: 0 });
  // Chained only (generate()): one native call.
  const c0 = b.stepChained(0, 1, greedy, null, 0, 0.5);
  const c1 = b.stepChained(1, 2, greedy, null, 0, NaN);
  await turn();
  t.same(calls.map((c) => [c.mode, c.slots]), [['chained', [0, 1]]]);
  calls[0].finish();
  t.same(await Promise.all([c0, c1]), [101, 102]);
  // Chained and greedy requests in one turn: a call each, each request settled with its row.
  const d0 = b.stepChained(0, 101, greedy, null, 0, 0.5);
  const g2 = b.stepGreedy(2, 7);
  await turns();
  t.same(calls.slice(1).map((c) => [c.mode, c.slots]), [['chained', [0]], ['greedy', [2]]]);
  calls[2].finish();
  await turn();
  calls[1].finish();
  t.same(await Promise.all([d0, g2]), [201, 8]);
});
