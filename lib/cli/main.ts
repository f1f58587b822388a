#!/usr/bin/env node
// node-mamba command line: generate, info, logits, demo. Uses only the public API.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, type GenerateOptions, type MambaModel } from '../index';
import { numberFlag, parseArgs, stringFlag, UsageError, type ParsedArgs } from './args';
import { writeRandomCheckpoint } from '../testing/random_checkpoint';

const USAGE = `usage: node-mamba <command> [options]

commands:
  demo     [--model DIR] [--prompt TEXT] [--max-tokens N]
           with no --model: writes a small RANDOM-WEIGHT checkpoint, loads it and streams
           tokens (its text is noise); with --model: runs that checkpoint. Prints tokens/s.
  generate --model DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K]
           [--top-p P] [--min-p P] [--repetition-penalty R] [--seed S] [--stop TEXT]
           streams the continuation to stdout; timing to stderr
  info     --model DIR                 prints the normalised config and memory use (JSON)
  logits   --model DIR --tokens 1,2,3 [--out FILE]
           logits of every position: JSON to stdout, or raw little-endian float32 to FILE
  options for every command: --threads N, --input-rounding auto|none
           (none: exact float32 inputs for bf16 / q8_0 / q4_0 matrices; default auto)`;

function generateOptions(p: ParsedArgs): GenerateOptions {
  const o: GenerateOptions = {};
  const maxTokens = numberFlag(p, 'max-tokens');
  if (maxTokens !== undefined) o.maxTokens = maxTokens;
  const map: Array<[string, keyof GenerateOptions]> = [
    ['temperature', 'temperature'], ['top-k', 'topK'], ['top-p', 'topP'], ['min-p', 'minP'],
    ['repetition-penalty', 'repetitionPenalty'], ['seed', 'seed'],
  ];
  for (const [flag, key] of map) {
    const v = numberFlag(p, flag);
    if (v !== undefined) (o as Record<string, unknown>)[key] = v;
  }
  const stop = stringFlag(p, 'stop');
  if (stop !== undefined) o.stop = [stop];
  return o;
}

async function open(p: ParsedArgs, dir: string): Promise<MambaModel> {
  const threads = numberFlag(p, 'threads');
  const rounding = stringFlag(p, 'input-rounding');
  if (rounding !== undefined && rounding !== 'auto' && rounding !== 'none') {
    throw new UsageError(`--input-rounding must be 'auto' or 'none', got '${rounding}'`);
  }
  return loadModel(dir, {
    ...(threads !== undefined ? { threads } : {}),
    ...(rounding !== undefined ? { inputRounding: rounding } : {}),
  });
}

async function stream(model: MambaModel, prompt: string, opts: GenerateOptions, out: NodeJS.WritableStream): Promise<void> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const t0 = performance.now();
  let first = 0, n = 0;
  try {
    for await (const chunk of model.generate(prompt, { ...opts, signal: controller.signal })) {
      if (n === 0) first = performance.now();
      n++;
      out.write(chunk.text);
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  const t1 = performance.now();
  const decodeRate = n > 1 ? ((n - 1) / ((t1 - first) / 1000)).toFixed(1) : 'n/a';
  process.stderr.write(`\n[node-mamba] ${n} tokens; first token after ${(first - t0).toFixed(0)} ms; decode ${decodeRate} tokens/s\n`);
}

async function demo(p: ParsedArgs): Promise<void> {
  let dir = stringFlag(p, 'model');
  let scratch: string | undefined;
  if (dir === undefined) {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-demo-'));
    dir = scratch;
    process.stderr.write(
      '[node-mamba] No --model given, and no weights can be downloaded here: writing a small checkpoint with\n' +
        '[node-mamba] RANDOM WEIGHTS (Mamba-1, d_model 256, 8 layers, GPT-NeoX vocabulary) in the Hugging Face layout\n' +
        `[node-mamba] to ${dir}. Its output is noise; point --model at a real checkpoint (e.g. a local mamba-130m-hf) for text.\n`,
    );
    writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 256, nLayer: 8, vocabSize: 50277, padVocabMultiple: 8, dtype: 'f32', tied: false, dialect: 'hf', seed: 1 });
  }
  try {
    const t0 = performance.now();
    const model = await open(p, dir);
    const c = model.config;
    process.stderr.write(`[node-mamba] loaded ${c.arch} (d_model ${c.dModel}, ${c.nLayer} layers, vocab ${c.vocabSize}) in ${(performance.now() - t0).toFixed(0)} ms\n`);
    const prompt = stringFlag(p, 'prompt') ?? 'The state space model';
    process.stdout.write(prompt);
    await stream(model, prompt, { maxTokens: 64, temperature: 0.8, seed: 1, ...generateOptions(p) }, process.stdout);
    model.dispose();
  } finally {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  }
}

async function generateCmd(p: ParsedArgs): Promise<void> {
  const model = await open(p, stringFlag(p, 'model', true));
  await stream(model, stringFlag(p, 'prompt', true), generateOptions(p), process.stdout);
  model.dispose();
}

async function info(p: ParsedArgs): Promise<void> {
  const model = await open(p, stringFlag(p, 'model', true));
  process.stdout.write(JSON.stringify({ path: model.path, config: model.config, memory: model.memory }, null, 2) + '\n');
  model.dispose();
}

async function logits(p: ParsedArgs): Promise<void> {
  const model = await open(p, stringFlag(p, 'model', true));
  const text = stringFlag(p, 'tokens', true);
  const tokens = text.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n)) throw new UsageError(`--tokens must be comma-separated integers, got '${s}'`);
    return n;
  });
  const out = stringFlag(p, 'out');
  const values = await model.forward(tokens);
  if (out !== undefined) {
    const tmp = `${out}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
    fs.renameSync(tmp, out);
    process.stdout.write(JSON.stringify({ shape: [tokens.length, model.vocabSize], dtype: 'float32', file: out }) + '\n');
  } else {
    process.stdout.write(JSON.stringify({ shape: [tokens.length, model.vocabSize], logits: Array.from(values) }) + '\n');
  }
  model.dispose();
}

export async function main(argv: string[]): Promise<number> {
  const p = parseArgs(argv);
  try {
    switch (p.command) {
      case 'demo': await demo(p); break;
      case 'generate': await generateCmd(p); break;
      case 'info': await info(p); break;
      case 'logits': await logits(p); break;
      case undefined: case 'help': case '--help': process.stdout.write(USAGE + '\n'); return p.command ? 0 : 2;
      default: throw new UsageError(`unknown command '${p.command}'`);
    }
    return 0;
  } catch (err) {
    const e = err as Error;
    process.stderr.write(`node-mamba: ${e.name === 'UsageError' ? `${e.message}\n${USAGE}` : `${e.name}: ${e.message}`}\n`);
    return e.name === 'UsageError' ? 2 : 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
