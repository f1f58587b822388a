// lib/model/load_options.ts: loadModel's options, checked before anything is
// read (TypeError for a wrong type, RangeError out of range), their defaults,
// and the default contextSize per model. No native addon needed.
import t from 'tap';
import { checkLoadOptions, contextSizeFor, DEFAULT_CONTEXT_SIZE, MAX_CONTEXT_SIZE, type LoadModelOptions } from '../../lib/model/load_options';

t.test('defaults', async (t) => {
  t.same(checkLoadOptions(undefined), { device: 'cpu', maxBatch: 16, inputRounding: 'auto', kvCacheType: 'f16' });
  t.same(checkLoadOptions({ threads: 3, contextSize: 100, kvCacheType: 'f32', maxBatch: 2, inputRounding: 'none' }),
    { device: 'cpu', threads: 3, maxBatch: 2, inputRounding: 'none', kvCacheType: 'f32', contextSize: 100 });
  t.equal(checkLoadOptions({ device: 'cuda' }).device, 'cuda');
  t.equal(checkLoadOptions({ device: 'auto' }).device, 'auto');
  t.same(checkLoadOptions({ contextSize: MAX_CONTEXT_SIZE }).contextSize, MAX_CONTEXT_SIZE);
  t.equal(checkLoadOptions({ tokenizer: '/x/tokenizer.json' }).tokenizer, '/x/tokenizer.json');
});

t.test('contextSize default: max_position_embeddings capped at 4096', async (t) => {
  t.equal(DEFAULT_CONTEXT_SIZE, 4096);
  t.equal(contextSizeFor({}, undefined), 4096, 'no max_position_embeddings (Mamba)');
  t.equal(contextSizeFor({ maxPositionEmbeddings: 262144 }, undefined), 4096, 'Jamba');
  t.equal(contextSizeFor({ maxPositionEmbeddings: 2048 }, undefined), 2048, 'Granite default');
  t.equal(contextSizeFor({ maxPositionEmbeddings: 2048 }, 9000), 9000, 'the option wins, past max_position_embeddings too');
});

t.test('bad options', async (t) => {
  const bad = (o: unknown, cls: typeof TypeError | typeof RangeError, msg: RegExp) =>
    t.throws(() => checkLoadOptions(o as LoadModelOptions), { name: cls.name, message: msg }, JSON.stringify(o));
  bad({ contextSize: '4096' }, TypeError, /'contextSize' must be a number/);
  bad({ contextSize: 0 }, RangeError, /'contextSize' must be an integer in \[1, 2147483647\], got 0/);
  bad({ contextSize: 1.5 }, RangeError, /'contextSize'/);
  bad({ contextSize: NaN }, RangeError, /'contextSize'/);
  bad({ contextSize: 2 ** 31 }, RangeError, /'contextSize'/);
  bad({ kvCacheType: 16 }, TypeError, /'kvCacheType' must be a string/);
  bad({ kvCacheType: 'bf16' }, RangeError, /'kvCacheType' must be 'f16' or 'f32', got 'bf16'/);
  bad({ threads: 0 }, RangeError, /'threads'/);
  bad({ maxBatch: 257 }, RangeError, /'maxBatch'/);
  bad({ inputRounding: 'bf16' }, RangeError, /'inputRounding'/);
  bad({ device: 'gpu' }, RangeError, /'device' must be 'cpu', 'cuda' or 'auto', got 'gpu'/);
  bad(7, TypeError, /'options' must be an object/);
});
