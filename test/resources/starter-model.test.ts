import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../main/engine/backend/index';
import { loadModel } from '../../main/engine/models/registry';
import { loadTokenizer, type ModelTokenizer } from '../../main/engine/io/tokenizer';
import { readSafetensors } from '../../main/engine/io/safetensors';
import { generate } from '../../main/engine/generate/generate';
import type { CausalLM } from '../../main/engine/models/types';
import { forward, forwardContext, type StarterConfig } from '../../scripts/starter/tiny-llama';

const starterDir = join(import.meta.dirname, '../../resources/starter');
/** Every word of the starter corpus (KJV), lower-cased: test/resources/kjv-words.txt. */
const WORDS = new Set(readFileSync(join(import.meta.dirname, 'kjv-words.txt'), 'utf8').split('\n').filter(Boolean));

let model: CausalLM;
let tokenizer: ModelTokenizer;
beforeAll(async () => {
  await initBackend('cpu');
  model = await loadModel(starterDir);
  tokenizer = await loadTokenizer(starterDir);
});
afterAll(() => model?.dispose());

/** The share of generated words (letters only) that are words of the corpus. */
function englishShare(text: string): { share: number; words: number } {
  const words = text.match(/[A-Za-z]+/g) ?? [];
  const known = words.filter((w) => WORDS.has(w.toLowerCase())).length;
  return { share: words.length === 0 ? 0 : known / words.length, words: words.length };
}

describe('starter model (resources/starter)', () => {
  it('loads as a small Llama with the layout its config describes', () => {
    const c = model.config;
    expect(c.modelType).toBe('llama');
    expect([c.vocabSize, c.hiddenSize, c.numLayers, c.numHeads, c.numKvHeads, c.intermediateSize]).toEqual([4096, 256, 4, 4, 4, 704]);
    expect(c.tieWordEmbeddings).toBe(true);
    expect(c.eosTokenIds).toEqual(expect.arrayContaining([0, 2]));
    // embeddings + per layer (q, k, v, o: H*H each; gate, up, down: 3*H*I; two norms) + final norm
    const h = 256;
    const perLayer = 4 * h * h + 3 * h * 704 + 2 * h;
    expect(model.parameterCount()).toBe(4096 * h + 4 * perLayer + h);
  });

  it("the engine's forward pass agrees with the pretraining script's own implementation", () => {
    const { tensors } = readSafetensors(join(starterDir, 'model.safetensors'));
    const raw = JSON.parse(readFileSync(join(starterDir, 'config.json'), 'utf8')) as Record<string, number>;
    const config: StarterConfig = {
      vocabSize: raw.vocab_size as number, hiddenSize: raw.hidden_size as number,
      intermediateSize: raw.intermediate_size as number, numLayers: raw.num_hidden_layers as number,
      numHeads: raw.num_attention_heads as number, numKvHeads: raw.num_key_value_heads as number,
      maxPositions: raw.max_position_embeddings as number, rmsNormEps: raw.rms_norm_eps as number,
      ropeTheta: raw.rope_theta as number,
    };
    const ids = tokenizer.encode('And the LORD spake unto Moses, saying,', { addSpecialTokens: false });
    const [engineLogits, scriptLogits] = tf.tidy(() => {
      const weights = new Map<string, tf.Tensor>();
      for (const [name, t] of tensors) weights.set(name, tf.tensor(t.data, t.shape));
      const input = tf.tensor2d([ids], [1, ids.length], 'int32');
      const ctx = forwardContext(config, ids.length);
      const ours = forward(weights, config, ctx, input);
      const theirs = tf.reshape(model.forward(input), [ids.length, config.vocabSize]);
      return [theirs.arraySync() as number[][], ours.arraySync() as number[][]];
    });
    let maxDiff = 0;
    engineLogits.forEach((row, t) => row.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - (scriptLogits[t]?.[j] ?? NaN))))));
    expect(maxDiff).toBeLessThan(1e-3);
  });

  it('greedily continues prompts in recognisable English', async () => {
    const prompts = ['And the LORD said unto', 'In the beginning', 'Blessed are they that', 'And the king'];
    let known = 0;
    let total = 0;
    const distinct = new Set<string>();
    for (const prompt of prompts) {
      const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
      const result = await generate(model, [0, ...ids], { maxNewTokens: 40, tokenizer, repetitionPenalty: 1.1 });
      const text = result.text ?? '';
      const { share, words } = englishShare(text);
      expect(words, `"${prompt}" -> "${text}"`).toBeGreaterThan(15);
      // Not a degenerate loop such as "the the the": no word three times in a row.
      expect(text, `"${prompt}" -> "${text}"`).not.toMatch(/\b(\w+)(\W+\1\b){2}/i);
      known += share * words;
      total += words;
      for (const w of text.toLowerCase().match(/[a-z]+/g) ?? []) if (WORDS.has(w)) distinct.add(w);
    }
    expect(known / total).toBeGreaterThan(0.9);
    expect(distinct.size).toBeGreaterThanOrEqual(20);
  });

  it('does not leak tensors across generations', async () => {
    const ids = tokenizer.encode('And God said', { addSpecialTokens: false });
    await generate(model, ids, { maxNewTokens: 4 });
    const before = tf.memory().numTensors;
    await generate(model, ids, { maxNewTokens: 4 });
    expect(tf.memory().numTensors).toBe(before);
  });
});
