/**
 * Streamed chat generation on the resident base: the prompt is rendered with the model's chat template,
 * tokens are sampled one at a time (temperature, top-k, top-p, repetition penalty, seeded) and each is
 * reported as the text it adds. Stops at EOS, at maxNewTokens, or between tokens when the signal aborts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KVCache } from '../engine/models/types';
import { fallbackChatTemplate } from '../engine/train/tokenize';
import { Rng } from '../engine/train/rng';
import type { LoadedBase } from './model-loader';
import type { WireChatMessage, WireSampling } from './protocol';

export interface GenerateResult {
  readonly text: string;
  readonly tokens: number;
  readonly tokensPerSecond: number;
  readonly stopped: boolean;
}

export function renderPrompt(base: LoadedBase, messages: readonly WireChatMessage[]): number[] {
  const { tokenizer } = base;
  let text: string;
  try {
    text = tokenizer.applyChatTemplate
      ? tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true })
      : fallbackChatTemplate(messages, true);
  } catch {
    text = fallbackChatTemplate(messages, true);
  }
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  return tokenizer.bosTokenId != null && ids[0] !== tokenizer.bosTokenId && !tokenizer.applyChatTemplate
    ? [tokenizer.bosTokenId, ...ids]
    : ids;
}

/** Picks the next token from one row of logits [V]. */
export function sampleToken(logits: Float32Array, history: readonly number[], s: WireSampling, rng: Rng): number {
  const scores = Float64Array.from(logits);
  if (s.repetitionPenalty !== 1) {
    for (const id of new Set(history)) {
      const v = scores[id];
      if (v !== undefined) scores[id] = v > 0 ? v / s.repetitionPenalty : v * s.repetitionPenalty;
    }
  }
  if (s.temperature <= 0) return argmax(scores);
  let order = Array.from(scores.keys()).sort((a, b) => (scores[b] ?? 0) - (scores[a] ?? 0));
  if (s.topK > 0) order = order.slice(0, s.topK);
  const top = scores[order[0] ?? 0] ?? 0;
  let probs = order.map((id) => Math.exp(((scores[id] ?? 0) - top) / s.temperature));
  const total = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / total);
  if (s.topP > 0 && s.topP < 1) {
    let cumulative = 0;
    let keep = 0;
    while (keep < probs.length && cumulative < s.topP) cumulative += probs[keep++] ?? 0;
    order = order.slice(0, keep);
    probs = probs.slice(0, keep).map((p) => p / cumulative);
  }
  let r = rng.next();
  for (let i = 0; i < order.length; i++) {
    r -= probs[i] ?? 0;
    if (r <= 0) return order[i] ?? 0;
  }
  return order[order.length - 1] ?? 0;
}

function argmax(values: Float64Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] ?? -Infinity) > (values[best] ?? -Infinity)) best = i;
  return best;
}

function tryCache(base: LoadedBase): KVCache | null {
  try {
    return base.model.createCache();
  } catch {
    return null; // a model without a cache recomputes the whole context each step
  }
}

/** Logits [V] of the last position after feeding `ids` (the new ids only, when a cache holds the rest). */
async function lastLogits(base: LoadedBase, ids: readonly number[], cache: KVCache | null): Promise<Float32Array> {
  const last = tf.tidy(() => {
    const input = tf.tensor2d(Int32Array.from(ids), [1, ids.length], 'int32');
    const logits = base.model.forward(input, cache ? { cache } : {}); // [1, T, V]
    const V = logits.shape[2];
    return tf.reshape(tf.slice(logits, [0, ids.length - 1, 0], [1, 1, V]), [V]);
  });
  const data = (await last.data()) as Float32Array;
  last.dispose();
  return data;
}

export async function generateStream(
  base: LoadedBase,
  messages: readonly WireChatMessage[],
  sampling: WireSampling,
  signal: AbortSignal,
  onToken: (text: string, tokenId: number) => void,
): Promise<GenerateResult> {
  const started = performance.now();
  const prompt = renderPrompt(base, messages);
  const eos = new Set([...base.model.config.eosTokenIds, ...(base.tokenizer.eosTokenId != null ? [base.tokenizer.eosTokenId] : [])]);
  const rng = new Rng(sampling.seed);
  const cache = tryCache(base);
  const generated: number[] = [];
  let text = '';
  let stopped = false;
  try {
    let feed: readonly number[] = prompt;
    while (generated.length < sampling.maxNewTokens) {
      await new Promise((resolve) => setImmediate(resolve)); // let a stop request in between tokens
      if (signal.aborted) {
        stopped = true;
        break;
      }
      const logits = await lastLogits(base, feed, cache);
      const next = sampleToken(logits, [...prompt, ...generated], sampling, rng);
      if (eos.has(next)) break;
      generated.push(next);
      const full = base.tokenizer.decode(generated);
      onToken(full.slice(text.length), next);
      text = full;
      feed = cache ? [next] : [...prompt, ...generated];
    }
  } finally {
    cache?.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  return { text, tokens: generated.length, tokensPerSecond: seconds > 0 ? generated.length / seconds : 0, stopped };
}
