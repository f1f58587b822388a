// The generation loop: prefill the prompt, then sample and step one token at
// a time, streaming text as it becomes final. Steps of concurrent
// generations on one model are batched by the model (lib/model/batcher.ts).
import type { Sequence } from '../model/sequence';
import { StreamingDetokenizer, type Tokenizer } from '../tokenizer';
import { createRng } from './rng';
import { validateSamplingOptions, type SamplingOptions } from './sampling';
import { StopMatcher } from './stop';

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate (default 128). */
  maxTokens?: number;
  /** Seed of the sampler: the same seed gives the same output (default: random). */
  seed?: number;
  /** Stop when the generated text contains one of these; the stop string is not returned. */
  stop?: string[];
  /** Stop at the end-of-sequence token (default true; the id comes from the config or the tokenizer). */
  stopAtEos?: boolean;
  /** Aborting ends the generation within one step, frees its sequence and rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface GenerationChunk {
  /** The sampled token id (for the final chunk after an end-of-sequence token, that id). */
  token: number;
  /** Text that became final with this token ('' while a multi-byte character or a possible stop string is pending). */
  text: string;
}

/** What generate() needs of a model. */
export interface GenerationHost {
  readonly tokenizer: Tokenizer;
  readonly config: { eosTokenId?: number; bosTokenId?: number };
  createSequence(): Promise<Sequence>;
}

function abortError(signal: AbortSignal): Error {
  if (signal.reason instanceof Error) return signal.reason;
  const e = new Error('node-mamba: generation aborted');
  e.name = 'AbortError';
  return e;
}

function checkOptions(o: GenerateOptions): void {
  if (o === null || typeof o !== 'object') throw new TypeError("node-mamba: generate: 'options' must be an object");
  if (o.maxTokens !== undefined && !(Number.isInteger(o.maxTokens) && o.maxTokens >= 0)) {
    throw new RangeError("node-mamba: generate: 'maxTokens' must be an integer >= 0");
  }
  if (o.seed !== undefined && !Number.isFinite(o.seed)) throw new RangeError("node-mamba: generate: 'seed' must be a finite number");
  if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== 'string' || s.length === 0))) {
    throw new TypeError("node-mamba: generate: 'stop' must be an array of non-empty strings");
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new TypeError("node-mamba: generate: 'signal' must be an AbortSignal");
  validateSamplingOptions(o);
}

export async function* generate(
  model: GenerationHost, prompt: string | ArrayLike<number>, options: GenerateOptions = {},
): AsyncGenerator<GenerationChunk, void, undefined> {
  checkOptions(options);
  const { maxTokens = 128, stop = [], stopAtEos = true, signal } = options;
  const ids = typeof prompt === 'string' ? model.tokenizer.encode(prompt) : Array.from(prompt);
  if (ids.length === 0) {
    const bos = model.config.bosTokenId ?? model.tokenizer.bosTokenId ?? model.config.eosTokenId ?? model.tokenizer.eosTokenId;
    if (bos === undefined) throw new RangeError("node-mamba: generate: 'prompt' is empty and the model has no BOS token");
    ids.push(bos);
  }
  const eos = model.config.eosTokenId ?? model.tokenizer.eosTokenId;
  const rng = createRng(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  if (signal?.aborted) throw abortError(signal);
  if (maxTokens === 0) return;

  // The prefill and the steps choose the next token in native code with the
  // same rng numbers as sampleToken takes them (the argmax at temperature 0;
  // the penalty with the history so far), so that a seed gives the same
  // tokens as sampling the logits in JavaScript.
  const sampling = validateSamplingOptions(options);
  const seq = await model.createSequence();
  // The step that consumes the token just yielded runs while the consumer
  // handles its chunk (writes it to a socket, say): it starts before the
  // yield, once the token is known not to end the generation. And each step
  // runs ahead natively with the token it chose (Sequence.stepChained), so
  // that no round trip to JavaScript separates two steps.
  let pending: Promise<number> | undefined;
  try {
    const history = ids.slice();
    let next = await seq.prefillSample(ids, { ...sampling, history }, rng);
    const detok = new StreamingDetokenizer(model.tokenizer);
    const stopper = new StopMatcher(stop);
    // Text still held by the detokenizer or the stop matcher, at the end.
    const rest = (): string => {
      const r = stopper.push(detok.flush());
      return r.stopped ? r.emit : r.emit + stopper.flush();
    };
    for (let i = 0; ; i++) {
      if (signal?.aborted) throw abortError(signal);
      const id = next;
      history.push(id);
      if (stopAtEos && id === eos) {
        const tail = rest();
        if (tail) yield { token: id, text: tail };
        return;
      }
      const r = stopper.push(detok.push(id));
      if (r.stopped) {
        yield { token: id, text: r.emit };
        return;
      }
      if (i + 1 >= maxTokens) {
        yield { token: id, text: r.emit + rest() };
        return;
      }
      // The draw's rng number is taken here, in token order, as before a yield. The step after
      // this one runs ahead natively unless the token it returns is the last (maxTokens).
      pending = seq.stepChained(id, { ...sampling, history }, rng, i + 2 >= maxTokens);
      // Handled now, so that a failure while the consumer holds the chunk is
      // not an unhandled rejection; the await below still throws it.
      pending.catch(() => undefined);
      yield { token: id, text: r.emit };
      next = await pending;
      pending = undefined;
    }
  } finally {
    // A consumer that stops early (break, return, throw) leaves a step in
    // flight: it ends before the sequence is freed (a step of a freed
    // sequence would fail the batch it shares). The native free is not
    // waited for: after an end of sequence, a stop string or an abort, the
    // step run ahead (csrc/napi/step_chain.h) may still hold the model for
    // up to one step, and the generation ends without it.
    if (pending) await pending.catch(() => undefined);
    void seq.dispose().catch(() => undefined);
  }
}

export async function complete(
  model: GenerationHost, prompt: string | ArrayLike<number>, options: GenerateOptions = {},
): Promise<string> {
  let text = '';
  for await (const chunk of generate(model, prompt, options)) text += chunk.text;
  return text;
}
