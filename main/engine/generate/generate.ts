/**
 * The generation loop (the chat, `lorasmith generate` and training samples all run this one): a forward pass
 * over the prompt, then one position per step with the KV cache (models without one recompute the sequence).
 * Stops on an EOS id, a stop string, max new tokens, the model's context length, or an aborted signal; streams
 * each token and the text it completes through a callback, holding back an incomplete UTF-8 character.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ModelIoError } from '../io/errors';
import type { TextTokenizer } from '../io/prompt';
import type { CausalLM, KVCache } from '../models/types';
import { tokenIds } from '../models/weights';
import { Sampler, type SamplingOptions } from './sampling';

export interface GenerateOptions extends SamplingOptions {
  /** Default 64. */
  readonly maxNewTokens?: number;
  /** Ids that end generation (kept in `ids`); default: the model's and the tokenizer's EOS ids. */
  readonly eosTokenIds?: readonly number[];
  /** Strings that end generation; the text is cut before the first one. Needs a tokenizer. */
  readonly stopStrings?: readonly string[];
  /** Decodes text (special tokens skipped) for the result, stop strings and streaming. */
  readonly tokenizer?: TextTokenizer;
}

export interface TokenEvent {
  readonly id: number;
  /** Index among the generated tokens. */
  readonly index: number;
  /** The new text this token completes (empty while a multi-byte character is still incomplete). */
  readonly text: string;
}

export type StopReason = 'eos' | 'stop-string' | 'max-tokens' | 'context-length' | 'aborted';

export interface GenerateResult {
  /** The generated ids only (the prompt excluded). */
  readonly ids: number[];
  /** Decoded generated text (EOS and special tokens skipped, cut at a stop string), when a tokenizer was given. */
  readonly text?: string;
  readonly stopReason: StopReason;
  readonly promptTokens: number;
  /** Generated tokens over the whole call's wall time (prompt pass included). */
  readonly tokensPerSecond: number;
  /** Tokens per second after the first (the decode loop alone). */
  readonly decodeTokensPerSecond: number;
  readonly timeToFirstTokenMs: number;
}

/** The last position's logits [V] after feeding `ids` [1, T] (with a cache, only the ids it has not seen). */
async function nextLogits(model: CausalLM, ids: readonly number[], cache: KVCache | null): Promise<Float32Array> {
  const row = tf.tidy(() => {
    const input = tokenIds(ids, [1, ids.length]);
    const logits = model.forward(input, cache ? { cache } : {}); // [1, T, V]
    const V = logits.shape[2];
    return tf.reshape(tf.slice(logits, [0, ids.length - 1, 0], [1, 1, V]), [V]);
  });
  try {
    return Float32Array.from((await row.data()) as Float32Array);
  } finally {
    row.dispose();
  }
}

function cacheOf(model: CausalLM): KVCache | null {
  try {
    return model.createCache();
  } catch {
    return null; // a model without a cache recomputes the whole sequence for each token
  }
}

/** Streams decoded text: emits what is new since the last token, holding back an incomplete UTF-8 tail. */
class TextStream {
  private emitted = 0;
  constructor(private readonly tokenizer: TextTokenizer | undefined) {}

  text(ids: readonly number[]): string {
    return this.tokenizer ? this.tokenizer.decode(ids, { skipSpecialTokens: true }) : '';
  }

  /** `full` is text(ids), cut at a stop string where one was found (then it is final too). */
  delta(full: string, final: boolean): string {
    const ready = !final && full.endsWith('\uFFFD') ? full.slice(0, full.lastIndexOf('\uFFFD')) : full;
    if (ready.length <= this.emitted) return '';
    const out = ready.slice(this.emitted);
    this.emitted = ready.length;
    return out;
  }
}

function firstStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    const i = s.length > 0 ? text.indexOf(s) : -1;
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

export async function generate(
  model: CausalLM,
  promptIds: readonly number[],
  options: GenerateOptions = {},
  onToken?: (event: TokenEvent) => void,
  signal?: AbortSignal,
): Promise<GenerateResult> {
  if (promptIds.length === 0) throw new ModelIoError('TOKEN_OUT_OF_RANGE', 'the prompt is empty: give at least one token id');
  const maxNew = options.maxNewTokens ?? 64;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new ModelIoError('TOKEN_OUT_OF_RANGE', `max new tokens must be a non-negative integer, got ${maxNew}`);
  const stops = options.stopStrings ?? [];
  if (stops.length > 0 && !options.tokenizer) throw new ModelIoError('INVALID_TOKENIZER', 'stop strings need a tokenizer to decode text');
  const sampler = new Sampler(options);
  const eos = new Set(options.eosTokenIds ?? [...model.config.eosTokenIds, ...(options.tokenizer?.eosTokenIds ?? [])]);
  const room = model.config.maxPositions - promptIds.length;
  const stream = new TextStream(options.tokenizer);

  const started = performance.now();
  let firstTokenAt = started;
  const history = [...promptIds];
  const generated: number[] = [];
  let stopReason: StopReason = 'max-tokens';
  let cutAt = -1;
  const cache = cacheOf(model);
  try {
    let input: readonly number[] = promptIds;
    while (generated.length < maxNew) {
      if (signal?.aborted) {
        stopReason = 'aborted';
        break;
      }
      if (generated.length >= room) {
        stopReason = 'context-length';
        break;
      }
      const next = sampler.next(await nextLogits(model, input, cache), history);
      if (generated.length === 0) firstTokenAt = performance.now();
      generated.push(next);
      history.push(next);
      input = cache ? [next] : history;
      if (eos.has(next)) {
        onToken?.({ id: next, index: generated.length - 1, text: '' });
        stopReason = 'eos';
        break;
      }
      const full = stream.text(generated);
      cutAt = firstStop(full, stops);
      const last = cutAt >= 0 || generated.length >= maxNew || generated.length >= room;
      onToken?.({ id: next, index: generated.length - 1, text: stream.delta(cutAt >= 0 ? full.slice(0, cutAt) : full, last) });
      if (cutAt >= 0) {
        stopReason = 'stop-string';
        break;
      }
      // Let the event loop run between tokens: Ctrl-C, cancellation and progress get through.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    cache?.dispose();
  }
  const ended = performance.now();
  const seconds = Math.max(ended - started, 1e-6) / 1000;
  const decodeSeconds = Math.max(ended - firstTokenAt, 1e-6) / 1000;
  let text: string | undefined;
  if (options.tokenizer) {
    text = stream.text(stopReason === 'eos' ? generated.slice(0, -1) : generated);
    if (cutAt >= 0) text = text.slice(0, cutAt);
  }
  return {
    ids: generated,
    ...(text !== undefined ? { text } : {}),
    stopReason,
    promptTokens: promptIds.length,
    tokensPerSecond: generated.length / seconds,
    decodeTokensPerSecond: generated.length > 1 ? (generated.length - 1) / decodeSeconds : 0,
    timeToFirstTokenMs: generated.length > 0 ? firstTokenAt - started : 0,
  };
}
