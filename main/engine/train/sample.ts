/**
 * Sample generations during training: at each evaluation the loop can ask for a short greedy continuation of a
 * fixed prompt with the adapter being trained, so the user sees what the model now says, not only a loss.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLM, KVCache } from '../models/types';
import type { TokenizedExample } from './tokenize';

/** How many tokens of a text-only row (no prompt part) to use as the prompt. */
const TEXT_PROMPT_TOKENS = 8;

/**
 * The prompt part of a tokenized row: the ids before its first trained token (the chat template's user turn and
 * the assistant header, or a completion's prompt). A row that trains from its first token (plain text) gives
 * its first few tokens instead; an empty row gives null.
 */
export function samplePromptOf(row: TokenizedExample): number[] | null {
  const firstTrained = row.train.indexOf(1);
  const cut = firstTrained > 0 ? firstTrained : Math.min(TEXT_PROMPT_TOKENS, Math.floor(row.ids.length / 2));
  return cut > 0 ? row.ids.slice(0, cut) : null;
}

export interface SampleOptions {
  readonly maxNewTokens: number;
  readonly decode: (ids: readonly number[]) => string;
  readonly eosTokenIds?: readonly number[];
}

/** Greedy continuation of `promptIds` with the model as it is now (active adapters included), as text. */
export async function greedySample(model: CausalLM, promptIds: readonly number[], options: SampleOptions): Promise<string> {
  const eos = new Set(options.eosTokenIds ?? model.config.eosTokenIds);
  const room = Math.max(0, model.config.maxPositions - promptIds.length);
  const cache = cacheOf(model);
  const sequence = [...promptIds];
  const generated: number[] = [];
  try {
    let feed: readonly number[] = promptIds;
    while (generated.length < Math.min(options.maxNewTokens, room)) {
      const next = await lastArgmax(model, feed, cache);
      if (eos.has(next)) break;
      generated.push(next);
      sequence.push(next);
      feed = cache ? [next] : sequence;
    }
  } finally {
    cache?.dispose();
  }
  return options.decode(generated);
}

function cacheOf(model: CausalLM): KVCache | null {
  try {
    return model.createCache();
  } catch {
    return null; // a model without a cache recomputes the whole sequence each token
  }
}

/** argmax over the vocabulary at the last position after feeding `ids` (only the new ones when cached). */
async function lastArgmax(model: CausalLM, ids: readonly number[], cache: KVCache | null): Promise<number> {
  const best = tf.tidy(() => {
    const input = tf.tensor2d(Int32Array.from(ids), [1, ids.length], 'int32');
    const logits = model.forward(input, cache ? { cache } : {}); // [1, T, V]
    const V = logits.shape[2];
    return tf.argMax(tf.reshape(tf.slice(logits, [0, ids.length - 1, 0], [1, 1, V]), [V]));
  });
  const value = (await best.data())[0] ?? 0;
  best.dispose();
  return value;
}
