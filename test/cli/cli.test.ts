// The node-mamba CLI (dist/cli/main.js, as installed): demo, info, logits, eval,
// generate, and its errors.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';
import { graniteTinyPreset, writeRandomHybridCheckpoint } from '../../lib/testing/random_hybrid_checkpoint';

const cli = path.resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 256 * 1024 * 1024 });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-cli-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const model = path.join(dir, 'model');
writeRandomCheckpoint(model, { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 50277, padVocabMultiple: 8, dtype: 'f16', tied: true, dialect: 'hf', seed: 4, headdim: 16, dState: 16 });

t.test('the CLI is built (npm run build)', (t) => {
  t.ok(fs.existsSync(cli), cli);
  t.end();
});

t.test('doctor names the addon and why it loaded, the CPU level and the CUDA status', (t) => {
  const r = run('doctor');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^node-mamba on Node\.js v\d+/);
  t.match(r.stdout, /addon: +\S+\.node\n +(named by NODE_MAMBA_ADDON|a local build|the prebuild for)/);
  t.match(r.stdout, /CPU: +(scalar|avx2|avx512|avx512vnni) kernels \(best this CPU has: \w+\), \d+ threads?/);
  t.match(r.stdout, /CUDA: +(usable|not usable: .+)\n +kernels compiled in: (yes|no)/);
  const j = run('doctor', '--json');
  t.equal(j.status, 0, j.stderr);
  const report = JSON.parse(j.stdout);
  t.match(report.addon.source, /^(NODE_MAMBA_ADDON|local build|prebuild)$/);
  t.type(report.cuda.compiled, 'boolean');
  t.same(Object.keys(report).sort(), ['addon', 'cpu', 'cuda', 'node', 'platform']);
  const bad = run('doctor', '--json=maybe');
  t.equal(bad.status, 2, 'a bad switch is a usage error');
  t.end();
});

t.test('demo without a model runs the shipped trained model and streams text', (t) => {
  const r = run('demo', '--max-tokens', '40');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /running the small model the package ships/);
  t.match(r.stderr, /40 tokens; first token after \d+ ms; decode [\d.]+ tokens\/s/);
  t.match(r.stdout, /^ROMEO:\n/, 'the default prompt');
  // a trained byte-level model writes mostly letters and spaces, not noise
  const text = r.stdout.slice('ROMEO:\n'.length);
  const letters = (text.match(/[A-Za-z ,.;:'!?\n]/g) ?? []).length;
  t.ok(text.length >= 20 && letters / text.length > 0.9, `text, not noise: ${JSON.stringify(text)}`);
  t.end();
});

t.test('info prints the normalised config', (t) => {
  const r = run('info', '--model', model);
  t.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  t.equal(o.config.arch, 'mamba2');
  t.equal(o.config.dModel, 64);
  t.ok(o.memory.weightBytes > 0);
  t.end();
});

t.test('logits to stdout and to a file agree', (t) => {
  const a = run('logits', '--model', model, '--tokens', '1,2,3');
  t.equal(a.status, 0, a.stderr);
  const o = JSON.parse(a.stdout);
  t.same(o.shape, [3, 50280]);
  const file = path.join(dir, 'logits.bin');
  const b = run('logits', '--model', model, '--tokens', '1,2,3', '--out', file);
  t.equal(b.status, 0, b.stderr);
  const buf = fs.readFileSync(file);
  const f = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  t.equal(f.length, 3 * 50280);
  t.same(Array.from(f.subarray(0, 5)), o.logits.slice(0, 5));
  t.end();
});

t.test('--input-rounding: auto (default) rounds the inputs of bf16 matrices, none keeps them exact', (t) => {
  const bf = path.join(dir, 'bf16');
  writeRandomCheckpoint(bf, { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'bf16', tied: true, dialect: 'hf', seed: 5 });
  const logits = (...extra: string[]) => {
    const r = run('logits', '--model', bf, '--tokens', '1,2,3', ...extra);
    t.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout).logits as number[];
  };
  const auto = logits(), autoFlag = logits('--input-rounding', 'auto'), none = logits('--input-rounding', 'none');
  t.same(autoFlag, auto, 'auto is the default');
  t.ok(none.some((v, i) => v !== auto[i]), 'none gives other logits');
  const bad = run('logits', '--model', bf, '--tokens', '1', '--input-rounding', 'fast');
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--input-rounding must be 'auto' or 'none'/);
  t.end();
});

t.test('--context-size and --kv-cache reach a hybrid model: logits, and errors naming the option', (t) => {
  const hyb = path.join(dir, 'granite');
  writeRandomHybridCheckpoint(hyb, graniteTinyPreset({ seed: 6 }));
  const logits = (...extra: string[]) => run('logits', '--model', hyb, '--tokens', '1,2,3,4,5,6', ...extra);
  const f32 = logits('--kv-cache', 'f32'), f16 = logits();
  t.equal(f32.status, 0, f32.stderr);
  t.equal(f16.status, 0, f16.stderr);
  const a = JSON.parse(f32.stdout).logits as number[], b = JSON.parse(f16.stdout).logits as number[];
  t.ok(a.some((v, i) => v !== b[i]), 'an f32 K/V cache gives other logits than the default f16 one');
  const short = logits('--context-size', '4');
  t.not(short.status, 0, 'six tokens do not fit a context of 4');
  t.match(short.stderr, /contextSize of 4/);
  const bad = logits('--kv-cache', 'f64');
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--kv-cache must be 'f16' or 'f32'/);
  t.end();
});

t.test('generate streams to stdout', (t) => {
  const r = run('generate', '--model', model, '--prompt', 'abc', '--max-tokens', '5', '--seed', '1', '--temperature', '0');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /5 tokens/);
  t.end();
});

t.test('errors: missing flag, missing model directory, bad token id', (t) => {
  const a = run('generate', '--model', model);
  t.equal(a.status, 2);
  t.match(a.stderr, /missing --prompt/);
  const b = run('info', '--model', path.join(dir, 'nope'));
  t.equal(b.status, 1);
  t.match(b.stderr, /ModelLoadError: .*nope/);
  const c = run('logits', '--model', model, '--tokens', '1,60000');
  t.equal(c.status, 1);
  t.match(c.stderr, /RangeError: .*tokens\[1\]/);
  const d = run('frobnicate');
  t.equal(d.status, 2);
  t.end();
});

t.test('eval: perplexity, bits per byte and tokens; --json; --reference', (t) => {
  const textFile = path.join(dir, 'text.txt');
  const text = 'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n'
    + 'First Citizen:\nYou are all resolved rather to die than to famish?\n';
  fs.writeFileSync(textFile, text);
  const human = run('eval', '--model', model, '--text', textFile, '--window', '16');
  t.equal(human.status, 0, human.stderr);
  t.match(human.stdout, /^perplexity\s+[\d.e+]+$/m);
  t.match(human.stdout, /^bits per byte\s+[\d.e+]+$/m);
  t.match(human.stdout, /^tokens scored\s+\d+ of \d+ \(\d+ windows of 16, stride 16; \d+ bytes\)$/m);
  t.notMatch(human.stdout, /KL divergence/);

  const json = run('eval', '--model', model, '--text', textFile, '--window', '16', '--json');
  t.equal(json.status, 0, json.stderr);
  const r = JSON.parse(json.stdout);
  t.equal(r.tokens, r.textTokens - r.windows, 'every token but the first of each window');
  t.ok(Math.abs(r.perplexity - Math.exp(r.nll)) <= 1e-9 * r.perplexity);
  t.ok(Math.abs(r.bitsPerByte - (r.nll * r.tokens) / Math.LN2 / r.bytes) <= 1e-12 * r.bitsPerByte);
  t.ok(r.bytes > 0 && r.bytes < Buffer.byteLength(text));
  const shown = Number(/^perplexity\s+(\S+)$/m.exec(human.stdout)![1]);
  t.ok(Math.abs(shown - r.perplexity) <= 1e-5 * r.perplexity, `the same perplexity in both forms (${shown}, ${r.perplexity})`);

  const opts = run('eval', '--model', model, '--text', textFile, '--window', '8', '--stride', '4', '--max-tokens', '20', '--json');
  t.equal(opts.status, 0, opts.stderr);
  const o = JSON.parse(opts.stdout);
  t.same([o.textTokens, o.windows, o.tokens, o.windowSize, o.stride], [20, 4, 19, 8, 4], 'windows [0,8) [4,12) [8,16) [12,20): tokens 1..19');

  const self = run('eval', '--model', model, '--text', textFile, '--reference', model, '--window', '16', '--json');
  t.equal(self.status, 0, self.stderr);
  const s = JSON.parse(self.stdout);
  t.ok(Math.abs(s.reference.klDivergence) <= 1e-9, 'KL against itself is 0');
  t.equal(s.reference.top1Agreement, 1);
  t.equal(s.reference.referencePerplexity, s.perplexity);

  const other = path.join(dir, 'other');
  writeRandomCheckpoint(other, { arch: 'mamba', dModel: 32, nLayer: 1, vocabSize: 50277, padVocabMultiple: 8, dtype: 'f16', tied: true, dialect: 'hf', seed: 6 });
  const ref = run('eval', '--model', model, '--text', textFile, '--reference', other, '--window', '16');
  t.equal(ref.status, 0, ref.stderr);
  t.match(ref.stdout, /^reference perplexity\s+[\d.e+]+$/m);
  t.match(ref.stdout, /^KL divergence\s+[\d.e+-]+ nats\/token/m);
  t.match(ref.stdout, /^top-1 agreement\s+[\d.]+%$/m);
  const kl = Number(/^KL divergence\s+(\S+)/m.exec(ref.stdout)![1]);
  t.ok(kl > 0, `KL against another model: ${kl}`);
  t.end();
});

t.test('eval errors: missing flags, bad window, vocabulary mismatch, --json with a value', (t) => {
  const textFile = path.join(dir, 'short.txt');
  fs.writeFileSync(textFile, 'Hello there, general Kenobi.');
  const a = run('eval', '--model', model);
  t.equal(a.status, 2);
  t.match(a.stderr, /missing --text/);
  const b = run('eval', '--model', model, '--text', textFile, '--window', '1');
  t.equal(b.status, 1);
  t.match(b.stderr, /RangeError: .*'windowSize' must be an integer >= 2/);
  const small = path.join(dir, 'small-vocab');
  writeRandomCheckpoint(small, { arch: 'mamba', dModel: 16, nLayer: 1, vocabSize: 300, dtype: 'f32', tied: true, dialect: 'hf', seed: 7 });
  const c = run('eval', '--model', small, '--text', textFile, '--reference', model);
  t.equal(c.status, 1);
  t.match(c.stderr, /VocabularyMismatchError: .*300.*50280/);
  const d = run('eval', '--model', model, '--text', textFile, '--json', 'yes');
  t.equal(d.status, 2);
  t.match(d.stderr, /--json takes no value/);
  const e = run('eval', '--model', model, '--text', path.join(dir, 'no-such.txt'));
  t.equal(e.status, 1);
  t.match(e.stderr, /no-such\.txt/);
  t.end();
});

t.test('quantize writes a checkpoint that eval reads, with plain progress lines off a terminal', (t) => {
  const text = path.join(dir, 'calib.txt');
  fs.writeFileSync(text, 'The quick brown fox jumps over the lazy dog. '.repeat(40));
  const out = path.join(dir, 'q-w8a8');
  const r = run('quantize', '--model', model, '--out', out, '--scheme', 'w8a8', '--calib', text, '--samples', '4', '--seq-len', '64');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /\[node-mamba\] calibrate: 4\/4 done in/);
  t.match(r.stdout, /w8a8, [\d.]+ MiB -> [\d.]+ MiB/);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  t.equal(cfg.quantization_config.scheme, 'w8a8');
  const e = run('eval', '--model', out, '--text', text, '--reference', model, '--window', '64', '--json');
  t.equal(e.status, 0, e.stderr);
  const o = JSON.parse(e.stdout);
  t.ok(o.reference.top1Agreement > 0.5 && o.reference.klDivergence >= 0, `agreement ${o.reference.top1Agreement}, KL ${o.reference.klDivergence}`);
  const bad = run('quantize', '--model', model, '--out', path.join(dir, 'q-bad'), '--scheme', 'w9a9', '--calib', text);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /QuantizeError: node-mamba: quantize: unknown scheme "w9a9"/);
  t.notOk(fs.existsSync(path.join(dir, 'q-bad')));
  const usage = run('quantize', '--model', model, '--out', path.join(dir, 'q-bad'), '--scheme', 'w8a8', '--percentile', '7');
  t.equal(usage.status, 2);
  // recipe flags reach the recipe
  const g = path.join(dir, 'q-w4a16-gptq');
  const rg = run('quantize', '--model', model, '--out', g, '--scheme', 'w4a16', '--gptq', '--calib', text, '--samples', '2', '--seq-len', '64');
  t.equal(rg.status, 0, rg.stderr);
  t.equal(JSON.parse(fs.readFileSync(path.join(g, 'config.json'), 'utf8')).quantization_config.recipe.gptq, true, '--gptq');
  const f = path.join(dir, 'q-w8a8-float-ssm');
  const rf = run('quantize', '--model', model, '--out', f, '--scheme', 'w8a8', '--float-ssm', '--calib', text, '--samples', '2', '--seq-len', '64');
  t.equal(rf.status, 0, rf.stderr);
  t.equal(JSON.parse(fs.readFileSync(path.join(f, 'config.json'), 'utf8')).quantization_config.ssm_activations, 'float', '--float-ssm');
  t.end();
});
